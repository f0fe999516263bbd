"""Fixtures that run the ACME server under test as a real process.

The subject is acme-ca (`$ACME_CA_BIN`, default target/debug/acme-ca under the
repository root). `ACME_TEST_SUBJECT=pebble` runs the same tests against
Debian's pebble instead, to check the client side of the tests; tests that
need state to survive a restart, or behaviour pebble does not have, are
marked `acme_ca_only` and skipped there.

Fixtures:
  server        one server for the whole session (tests that do not kill it)
  fresh_server  a server of its own for one test (tests that kill/restart it)
Both give an object with .directory, .root_pem, .tls_ca, .data_dir, .port,
.kill(), .restart(), .stop(); see ServerProcess.
"""

from __future__ import annotations

import atexit
import datetime
import json
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Optional

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
SUBJECT = os.environ.get("ACME_TEST_SUBJECT", "acme-ca")
STARTUP_TIMEOUT = float(os.environ.get("ACME_CA_STARTUP_TIMEOUT", "30"))
STDERR_TAIL_LINES = int(os.environ.get("ACME_TEST_STDERR_LINES", "80"))

if SUBJECT not in ("acme-ca", "pebble"):
    raise pytest.UsageError(f"ACME_TEST_SUBJECT must be acme-ca or pebble, not {SUBJECT!r}")

_LIVE: set["ServerProcess"] = set()


def _kill_all_at_exit() -> None:
    for srv in list(_LIVE):
        srv.kill()


atexit.register(_kill_all_at_exit)


def _ephemeral_floor() -> int:
    """The lowest port the kernel gives outgoing connections."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# Listening ports are taken below the kernel's ephemeral range. A port
# picked in that range can be taken, between the pick and the server's
# bind, by any outgoing connection on the machine (a database pool
# opening, a health check): a server then fails to start. Below it, only
# another listener can take it, and this process never hands one out twice.
_PORT_FLOOR = 20000
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago and that no
    outgoing connection will take."""
    ceiling = _ephemeral_floor()
    if ceiling - _PORT_FLOOR < 2000:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    rng = random.SystemRandom()
    for _ in range(1000):
        port = rng.randrange(_PORT_FLOOR, ceiling)
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


class ServerError(Exception):
    pass


# ACME_CA_E2E_PG_URL (a URL of a PostgreSQL cluster whose role may create
# databases, e.g. scripts/pg-cluster's): every acme-ca server of the run
# keeps its store in PostgreSQL instead of SQLite, one database per data
# directory, so a restarted server finds its data as with SQLite.
E2E_PG_URL = os.environ.get("ACME_CA_E2E_PG_URL", "")
_PG_DATABASES: dict[str, str] = {}


def pg_database_for(data_dir: Path) -> str:
    """The URL of the database of the server in `data_dir` (made on first
    use), or "" when the run is on SQLite."""
    if not E2E_PG_URL:
        return ""
    key = str(Path(data_dir).resolve())
    if key not in _PG_DATABASES:
        import hashlib
        name = "e2e_" + hashlib.sha256(key.encode()).hexdigest()[:16]
        subprocess.run(["psql", E2E_PG_URL, "-v", "ON_ERROR_STOP=1", "-q",
                        "-c", f"DROP DATABASE IF EXISTS {name}",
                        "-c", f"CREATE DATABASE {name}"],
                       check=True, capture_output=True)
        base, _, _ = E2E_PG_URL.rpartition("/")
        _PG_DATABASES[key] = f"{base}/{name}"
    return _PG_DATABASES[key]


class ServerProcess:
    """One server process; restartable on the same port and data dir."""

    name = "server"

    def __init__(self, data_dir: Path, log_dir: Path, port: Optional[int] = None):
        self.data_dir = Path(data_dir)
        self.log_dir = Path(log_dir)
        self.port = port or free_port()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = self.log_dir / f"{self.name}-{self.port}.stderr.log"
        self.stdout_path = self.log_dir / f"{self.name}-{self.port}.stdout.log"
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0
        self.directory: str = ""
        self.root_pem: str = ""   # issuing root, to verify issued chains against
        self.tls_ca: str = ""     # what clients trust for HTTPS to the server
        self._lines: "queue.Queue[Optional[str]]" = queue.Queue()

    # -- to be provided by subclasses ------------------------------------
    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PEBBLE_VA_ALWAYS_VALID"] = "1"
        pg = pg_database_for(self.data_dir)
        if pg:
            env["ACME_CA_DATABASE_URL"] = pg
        return env

    def wait_ready(self, deadline: float) -> None:
        raise NotImplementedError

    # -- process control -------------------------------------------------
    def start(self) -> "ServerProcess":
        assert not self.alive, "already running"
        self.starts += 1
        self._lines = queue.Queue()
        with open(self.stderr_path, "ab") as f:
            f.write(f"===== start #{self.starts} {datetime.datetime.now().isoformat()}: "
                    f"{' '.join(self.command())}\n".encode())
        stderr = open(self.stderr_path, "ab")
        try:
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=stderr, env=self.environment(), cwd=self.data_dir.parent,
                start_new_session=True)
        finally:
            stderr.close()
        _LIVE.add(self)
        # Each process gets its own queue: the pump of a killed process may
        # still be draining when the next one starts.
        threading.Thread(target=self._pump_stdout, args=(self.proc, self._lines),
                         daemon=True).start()
        try:
            self.wait_ready(time.monotonic() + STARTUP_TIMEOUT)
        except BaseException:
            self.kill()
            raise
        return self

    def _pump_stdout(self, proc: subprocess.Popen, lines: "queue.Queue[Optional[str]]") -> None:
        assert proc.stdout is not None
        with open(self.stdout_path, "ab") as log:
            for raw in proc.stdout:
                log.write(raw)
                log.flush()
                lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
        lines.put(None)

    def next_line(self, deadline: float) -> Optional[str]:
        """The next stdout line; None at EOF; ServerError on timeout."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServerError(self._failure(f"not ready after {STARTUP_TIMEOUT:.0f}s"))
            try:
                return self._lines.get(timeout=min(left, 0.2))
            except queue.Empty:
                continue

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, and wait for the process to be gone."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            except PermissionError:
                self.proc.kill()
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        _LIVE.discard(self)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.alive:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def restart(self) -> "ServerProcess":
        """Kill (if running) and start again on the same port and data dir."""
        self.kill()
        old = (self.directory, self.root_pem)
        self.start()
        if (self.directory, self.root_pem) != old:
            raise ServerError(f"restart changed directory/root: {old} -> "
                              f"{(self.directory, self.root_pem)}")
        return self

    # -- diagnostics -----------------------------------------------------
    def stderr_size(self) -> int:
        try:
            return self.stderr_path.stat().st_size
        except FileNotFoundError:
            return 0

    def stderr_tail(self, since: int = 0, lines: int = STDERR_TAIL_LINES) -> str:
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(since)
                data = f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return "(no stderr file)"
        tail = data.splitlines()[-lines:]
        return "\n".join(tail) if tail else "(empty)"

    def _failure(self, what: str) -> str:
        code = self.proc.poll() if self.proc else None
        state = f"exited with {code}" if code is not None else "still running"
        return (f"{self.name} {what} ({state}); command: {' '.join(self.command())}\n"
                f"--- stderr tail ({self.stderr_path}) ---\n{self.stderr_tail()}")

    def __repr__(self) -> str:
        return f"<{self.name} {self.directory or self.port} pid={self.proc.pid if self.proc else None}>"


# The suite's servers are test CAs whose clients order as fast as the tests
# run, all from 127.0.0.1. `serve`'s production rate limits are off in
# always-valid mode (these servers' default) but on when a server validates
# for real: such servers add this to their config. test_ratelimits.py runs
# a server of its own with small limits (docs/RATELIMITS.md).
RATE_LIMITS_OFF = "[rate_limits]\nenabled = false\n"


class AcmeCaServer(ServerProcess):
    name = "acme-ca"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        bin_path = os.environ.get("ACME_CA_BIN", "target/debug/acme-ca")
        path = Path(bin_path)
        self.binary = path if path.is_absolute() else (REPO_ROOT / path)
        # The plain-HTTP listener for CRLs, OCSP and the issuer certificate.
        self.status_port = free_port()
        self.status_url = ""

    def command(self) -> list[str]:
        return [str(self.binary), "serve", "--listen", f"127.0.0.1:{self.port}",
                "--data-dir", str(self.data_dir),
                "--status-listen", f"127.0.0.1:{self.status_port}"]

    def start(self) -> "ServerProcess":
        if not self.binary.is_file():
            raise ServerError(f"acme-ca binary not found at {self.binary} "
                              f"(build it, or set ACME_CA_BIN)")
        return super().start()

    def expected_directory(self) -> str:
        """The directory URL the server must print before "ready"."""
        return f"https://127.0.0.1:{self.port}/directory"

    def wait_ready(self, deadline: float) -> None:
        prefix = "acme-ca: "
        directory = root = None
        while True:
            line = self.next_line(deadline)
            if line is None:
                # EOF on stdout: the process is exiting; give it a moment to be reaped.
                try:
                    self.proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    pass
                raise ServerError(self._failure("closed stdout before ready"))
            if not line.startswith(prefix):
                continue
            key, _, value = line[len(prefix):].partition(" ")
            if key == "directory":
                directory = value.strip()
            elif key == "root-ca":
                root = value.strip()
            elif key == "status":
                self.status_url = value.strip()
            elif key == "ready":
                break
        if not directory or not root:
            raise ServerError(self._failure(
                f"said ready without directory/root-ca lines (directory={directory!r}, "
                f"root-ca={root!r})"))
        expected = self.expected_directory()
        if directory != expected:
            raise ServerError(self._failure(f"printed directory {directory!r}, expected {expected!r}"))
        if not os.path.isabs(root) or not os.path.isfile(root):
            raise ServerError(self._failure(f"root-ca {root!r} is not an absolute path to a file"))
        self.directory, self.root_pem, self.tls_ca = directory, root, root


class ConfiguredAcmeCa(AcmeCaServer):
    """acme-ca (always-valid) started with a config file of the test
    module's own: subclasses return its text from `config_text`, called once
    the ports are chosen."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.config = self.data_dir.parent / f"{self.name}.toml"
        self.config.write_text(self.config_text())

    def config_text(self) -> str:
        raise NotImplementedError

    def command(self) -> list[str]:
        return super().command() + ["--config", str(self.config)]


def start_module_server(tmp_path_factory, cls, name: str) -> ServerProcess:
    """A server of `cls` in a fresh directory, started, or the test failed
    with the reason; the caller kills it."""
    base = tmp_path_factory.mktemp(name)
    srv = cls(base / "data", base / "logs")
    try:
        srv.start()
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    return srv


class PebbleServer(ServerProcess):
    """Debian's pebble, for checking the tests' client side. State does not
    survive a restart. Its listener certificate comes from a throwaway CA made
    here; the root of the certificates it issues is fetched from its
    management port."""

    name = "pebble"

    def __init__(self, data_dir, log_dir, port=None, tls_ca=None, tls_cert=None, tls_key=None):
        super().__init__(data_dir, log_dir, port)
        self.mgmt_port = free_port()
        self.va_http_port = free_port()
        self.va_tls_port = free_port()
        self.tls_ca, self._tls_cert, self._tls_key = tls_ca, tls_cert, tls_key
        self.config_path = self.data_dir / "pebble-config.json"
        self.config_path.write_text(json.dumps({"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
            "certificate": str(tls_cert),
            "privateKey": str(tls_key),
            "httpPort": self.va_http_port,
            "tlsPort": self.va_tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }}, indent=2))

    def command(self) -> list[str]:
        return [os.environ.get("PEBBLE_BIN", shutil.which("pebble") or "/usr/bin/pebble"),
                "-config", str(self.config_path)]

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env.update(PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0")
        return env

    def wait_ready(self, deadline: float) -> None:
        url = f"https://127.0.0.1:{self.port}/dir"
        while True:
            if not self.alive:
                raise ServerError(self._failure("exited before ready"))
            try:
                if requests.get(url, verify=self.tls_ca, timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise ServerError(self._failure("not ready"))
            time.sleep(0.05)
        resp = requests.get(f"https://127.0.0.1:{self.mgmt_port}/roots/0", verify=self.tls_ca,
                            timeout=5)
        resp.raise_for_status()
        root = self.data_dir / f"root-{self.starts}.pem"
        root.write_text(resp.text)
        self.directory, self.root_pem = url, str(root)

    def restart(self) -> "ServerProcess":
        # pebble makes a new CA on every start: only the port stays the same.
        self.kill()
        return self.start()


def _make_listener_ca(dir_: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a localhost/127.0.0.1/::1 certificate for pebble."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "e2e listener test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=7))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                         critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    dir_.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = dir_ / "minica.pem", dir_ / "cert.pem", dir_ / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_path, cert_path, key_path


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def _listener_ca(tmp_path_factory):
    if SUBJECT != "pebble":
        return None
    return _make_listener_ca(tmp_path_factory.mktemp("listener-ca"))


@pytest.fixture(scope="session")
def server_factory(tmp_path_factory, _listener_ca):
    """make() -> a started server with a fresh data dir; all killed at the end."""
    made: list[ServerProcess] = []

    def make() -> ServerProcess:
        base = tmp_path_factory.mktemp(SUBJECT)
        if SUBJECT == "pebble":
            ca, cert, key = _listener_ca
            srv: ServerProcess = PebbleServer(base / "data", base / "logs", tls_ca=str(ca),
                                              tls_cert=cert, tls_key=key)
        else:
            srv = AcmeCaServer(base / "data", base / "logs")
        made.append(srv)
        error = None
        try:
            srv.start()
        except ServerError as exc:
            error = str(exc)
        if error is not None:
            pytest.fail(error, pytrace=False)
        return srv

    try:
        yield make
    finally:
        for srv in made:
            srv.kill()


@pytest.fixture(scope="session")
def server(server_factory):
    """The shared server. Tests using it must not kill it."""
    srv = server_factory()
    yield srv
    srv.kill()


@pytest.fixture
def fresh_server(server_factory):
    """A server of this test's own: kill()/restart() as you like."""
    srv = server_factory()
    try:
        yield srv
    finally:
        srv.kill()


@pytest.fixture
def ca_env(server):
    """Environment for subprocess clients of the shared server."""
    env = dict(os.environ)
    env["REQUESTS_CA_BUNDLE"] = server.tls_ca
    env["DIRECTORY"] = server.directory
    return env


# --------------------------------------------------------------------------
# markers and failure reports
# --------------------------------------------------------------------------

def pytest_collection_modifyitems(config, items):
    if SUBJECT == "acme-ca":
        return
    for item in items:
        marker = item.get_closest_marker("acme_ca_only")
        if marker is not None:
            why = f": {marker.args[0]}" if marker.args else ""
            item.add_marker(pytest.mark.skip(reason=f"acme-ca only{why}"))


def pytest_report_header(config):
    if SUBJECT == "pebble":
        return "acme e2e subject: pebble"
    bin_path = os.environ.get("ACME_CA_BIN", "target/debug/acme-ca")
    return f"acme e2e subject: acme-ca ({bin_path})"


def _servers_of(item) -> list[ServerProcess]:
    return [v for v in getattr(item, "funcargs", {}).values() if isinstance(v, ServerProcess)]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    item._stderr_marks = {id(s): s.stderr_size() for s in _servers_of(item)}
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    marks = getattr(item, "_stderr_marks", {})
    for srv in _servers_of(item):
        since = marks.get(id(srv), 0) if rep.when == "call" else 0
        rep.sections.append((f"{srv.name} stderr tail ({srv.stderr_path})",
                             srv.stderr_tail(since)))
