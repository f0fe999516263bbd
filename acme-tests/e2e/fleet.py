"""Several acme-ca instances on one PostgreSQL database behind HAProxy.

A `Fleet` is N real `acme-ca serve` processes (always-valid validation,
the operator service on), each with its own data directory, config file
and ports, all on one PostgreSQL database and one CA: the first instance
generates the CA, the others name its four files in `[ca]`. Every
instance advertises HAProxy's address (`server.external_url`), so the
URLs any of them writes lead through the load balancer. HAProxy (Debian's
`/usr/sbin/haproxy`, a child process with a generated config) runs in TCP
mode, TLS passing through, `balance roundrobin`, no stickiness, with a
frontend for ACME and one for the operator service.

PostgreSQL: `ACME_CA_TEST_PG_URL` names a cluster whose role may create
databases (scripts/test starts one); each fleet gets a fresh database in
it. `PgCluster` starts a private cluster (scripts/pg-cluster) for a test
that stops and starts PostgreSQL itself.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from conftest import RATE_LIMITS_OFF, REPO_ROOT, ConfiguredAcmeCa, ServerError, free_port

PG_URL = os.environ.get("ACME_CA_TEST_PG_URL", "")
PG_REQUIRED = os.environ.get("ACME_CA_TEST_PG_REQUIRED", "") == "1"

ADMIN_TOKEN = "fleet-admin-token-0123456789"
REQUESTER_TOKEN = "fleet-requester-token-0123456789"
KEK = base64.b64encode(bytes(range(32))).decode()
WEBHOOK_SECRET = base64.b64encode(b"fleet-webhook-secret-0123456789!").decode()

# The service profiles of every instance. `auto`: 90 s certificates whose
# renewal window is their last 60 s; a certificate's notBefore is
# backdated 60 s, so one is old enough for the scheduler at once and in
# its window 30 s after issuance at the latest.
PROFILES_TOML = """
[service.profiles.server]
description = "TLS server certificates"
extended_key_usages = ["serverAuth"]
required = ["names"]

[service.profiles.auto]
description = "Short auto-renewed certificates"
extended_key_usages = ["serverAuth"]
required = ["names"]
validity = "90s"
renew_before = "60s"
"""

HAPROXY_BIN = os.environ.get("HAPROXY_BIN", "/usr/sbin/haproxy")
PG_CLUSTER = REPO_ROOT / "scripts" / "pg-cluster"


def require_postgres() -> str:
    """The cluster URL; without one the test fails when PostgreSQL is
    required (ACME_CA_TEST_PG_REQUIRED=1) and is skipped otherwise."""
    if PG_URL:
        return PG_URL
    if PG_REQUIRED:
        pytest.fail("ACME_CA_TEST_PG_REQUIRED=1 but ACME_CA_TEST_PG_URL is not set", pytrace=False)
    pytest.skip("ACME_CA_TEST_PG_URL is not set: the fleet tests need a PostgreSQL cluster "
                "whose role may create databases (scripts/test starts one)")


def require_haproxy() -> str:
    if os.path.isfile(HAPROXY_BIN) and os.access(HAPROXY_BIN, os.X_OK):
        return HAPROXY_BIN
    found = shutil.which("haproxy")
    if found:
        return found
    pytest.fail(f"haproxy not found at {HAPROXY_BIN} (apt-get install haproxy; "
                f"scripts/test installs it)", pytrace=False)


def psql(url: str, *sql: str) -> list[tuple[str, ...]]:
    """Rows of the last statement, fields as text."""
    cmd = ["psql", url, "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-q"]
    for s in sql:
        cmd += ["-c", s]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60).stdout
    return [tuple(line.split("\t")) for line in out.splitlines() if line]


def fresh_database(cluster_url: str) -> str:
    """A new empty database in the cluster of `cluster_url`; its URL."""
    name = "fleet_" + secrets.token_hex(8)
    psql(cluster_url, f"CREATE DATABASE {name}")
    base, _, _ = cluster_url.rpartition("/")
    return f"{base}/{name}"


def drop_database(cluster_url: str, db_url: str) -> None:
    name = db_url.rpartition("/")[2]
    try:
        psql(cluster_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        pass


class PgCluster:
    """A private throw-away cluster (scripts/pg-cluster) on a free port in
    a directory under /tmp (reachable by the `postgres` user when root)."""

    def __init__(self) -> None:
        self.base = Path(subprocess.run(["mktemp", "-d", "/tmp/fleet-pg.XXXXXX"], check=True,
                                        capture_output=True, text=True).stdout.strip())
        os.chmod(self.base, 0o755)
        self.dir = self.base / "data"
        self.port = free_port()
        self.url = ""

    def start(self) -> str:
        res = subprocess.run(["bash", str(PG_CLUSTER), "start", str(self.dir), str(self.port)],
                             capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise ServerError(f"pg-cluster start failed: {res.stderr}")
        self.url = res.stdout.strip().splitlines()[-1]
        return self.url

    def stop(self) -> None:
        subprocess.run(["bash", str(PG_CLUSTER), "stop", str(self.dir)], capture_output=True,
                       timeout=120)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


class HookReceiver:
    """A local webhook receiver that records every POSTed body."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.received.append(json.loads(raw))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def events(self) -> list[dict]:
        with self.lock:
            return list(self.received)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Instance(ConfiguredAcmeCa):
    """One acme-ca of the fleet."""

    name = "acme-ca-fleet"

    def __init__(self, data_dir: Path, log_dir: Path, *, index: int, db_url: str,
                 public_url: str, ca_dir: Optional[Path], hooks: list[str],
                 extra_toml: str = ""):
        self.index = index
        self.extra_toml = extra_toml
        self.db_url = db_url
        self.public_url = public_url
        self.ca_dir = ca_dir
        self.hooks = hooks
        self.service_port = free_port()
        self.name = f"acme-ca-fleet{index}"
        super().__init__(data_dir, log_dir)

    @property
    def acme_url(self) -> str:
        """This instance's own ACME address (not through HAProxy)."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def service_url(self) -> str:
        return f"https://127.0.0.1:{self.service_port}"

    def config_text(self) -> str:
        lines = ["[server]", f'external_url = "{self.public_url}"', ""]
        if self.ca_dir is not None:
            lines += ["[ca]",
                      f'root_cert = "{self.ca_dir / "root.pem"}"',
                      f'root_key = "{self.ca_dir / "root.key"}"',
                      f'intermediate_cert = "{self.ca_dir / "intermediate.pem"}"',
                      f'intermediate_key = "{self.ca_dir / "intermediate.key"}"', ""]
        lines += ["[service]", "enabled = true", f'listen = "127.0.0.1:{self.service_port}"',
                  f'kek = "{KEK}"', 'download_token_lifetime = "1m"',
                  f"webhooks = {json.dumps(self.hooks)}", f'webhook_secret = "{WEBHOOK_SECRET}"',
                  "", "[[service.tokens]]", 'name = "root"', f'token = "{ADMIN_TOKEN}"',
                  'role = "admin"', "", "[[service.tokens]]", 'name = "alice"',
                  f'token = "{REQUESTER_TOKEN}"', 'role = "requester"']
        return "\n".join(lines) + "\n" + PROFILES_TOML + RATE_LIMITS_OFF + self.extra_toml

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env["ACME_CA_DATABASE_URL"] = self.db_url
        return env

    def expected_directory(self) -> str:
        return f"{self.public_url}/directory"

    def wait_ready(self, deadline: float) -> None:
        super().wait_ready(deadline)
        root = self.root_pem
        # The service listener is bound before "ready"; wait until it answers.
        while True:
            try:
                requests.get(self.service_url + "/profiles", verify=root, timeout=2)
                return
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise ServerError(self._failure("service listener does not answer"))
                time.sleep(0.05)


def haproxy_config(acme_port: int, service_port: int, instances: list[Instance]) -> str:
    """The test's HAProxy configuration (docs/DEPLOYMENT.md shows it with
    production timings): TCP mode (TLS passes through), round robin, no
    stickiness. An instance takes traffic while its status listener's
    `/ready` answers 200; a refused connection is retried on another
    instance. Each instance is listed a second time as a backup without
    health checks: when no instance is ready (the database is lost) the
    backups take the traffic, so clients get the instances' 503 with
    Retry-After rather than closed connections."""

    def servers(port_of) -> list[str]:
        out = []
        for inst in instances:
            out.append(f"    server a{inst.index} 127.0.0.1:{port_of(inst)} "
                       f"check port {inst.status_port} inter 500ms fall 1 rise 1")
        for inst in instances:
            out.append(f"    server a{inst.index}-unchecked 127.0.0.1:{port_of(inst)} backup")
        return out

    def backend(name: str, port_of) -> list[str]:
        return [f"backend {name}",
                "    balance roundrobin",
                "    option httpchk GET /ready",
                "    http-check expect status 200",
                "    option allbackups",
                *servers(port_of),
                ""]

    return "\n".join([
        "global",
        "    maxconn 4096",
        "",
        "defaults",
        "    mode tcp",
        "    timeout connect 2s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout check 2s",
        "    retries 3",
        "    option redispatch",
        "",
        "frontend acme",
        f"    bind 127.0.0.1:{acme_port}",
        "    default_backend acme_instances",
        "",
        *backend("acme_instances", lambda i: i.port),
        "frontend service",
        f"    bind 127.0.0.1:{service_port}",
        "    default_backend service_instances",
        "",
        *backend("service_instances", lambda i: i.service_port),
    ])


class HAProxy:
    """`haproxy -f cfg -db` as a child process."""

    def __init__(self, workdir: Path, acme_port: int, service_port: int):
        self.workdir = workdir
        self.acme_port = acme_port
        self.service_port = service_port
        self.cfg = workdir / "haproxy.cfg"
        self.log = workdir / "haproxy.log"
        self.proc: Optional[subprocess.Popen] = None

    def start(self, text: str) -> None:
        self.cfg.write_text(text)
        binary = require_haproxy()
        res = subprocess.run([binary, "-c", "-f", str(self.cfg)], capture_output=True, text=True)
        if res.returncode != 0:
            raise ServerError(f"haproxy refuses its config: {res.stdout}{res.stderr}")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([binary, "-f", str(self.cfg), "-db"],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
        deadline = time.monotonic() + 15
        for port in (self.acme_port, self.service_port):
            while True:
                if self.proc.poll() is not None:
                    raise ServerError(f"haproxy exited: {self.log.read_text()[-2000:]}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise ServerError(f"haproxy does not listen on {port}")
                    time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class Fleet:
    """N instances on one database behind one HAProxy."""

    def __init__(self, base: Path, db_url: str, count: int = 3,
                 hooks: Optional[list[str]] = None, extra_toml: Optional[dict] = None):
        """`extra_toml`: instance index -> TOML appended to its config."""
        self.base = base
        self.db_url = db_url
        self.acme_port = free_port()
        self.service_port = free_port()
        self.public_url = f"https://127.0.0.1:{self.acme_port}"
        self.hooks = hooks or []
        self.instances: list[Instance] = []
        first_data = base / "i0" / "data"
        for i in range(count):
            self.instances.append(Instance(
                base / f"i{i}" / "data", base / f"i{i}" / "logs", index=i, db_url=db_url,
                public_url=self.public_url, ca_dir=None if i == 0 else first_data,
                hooks=self.hooks, extra_toml=(extra_toml or {}).get(i, "")))
        self.haproxy = HAProxy(base, self.acme_port, self.service_port)

    @property
    def directory(self) -> str:
        return f"{self.public_url}/directory"

    @property
    def service_url(self) -> str:
        return f"https://127.0.0.1:{self.service_port}"

    @property
    def root_pem(self) -> str:
        return str(self.instances[0].data_dir / "root.pem")

    def start_instances(self, which: Optional[list[Instance]] = None) -> None:
        for inst in which if which is not None else self.instances:
            inst.start()
        roots = {Path(i.root_pem).read_bytes() for i in self.instances if i.root_pem}
        assert len(roots) == 1, "the instances do not share one root"

    def start(self) -> "Fleet":
        self.start_instances()
        self.haproxy.start(haproxy_config(self.acme_port, self.service_port, self.instances))
        return self

    def stop(self) -> None:
        self.haproxy.stop()
        for inst in self.instances:
            inst.stop()

    def kill(self) -> None:
        self.haproxy.stop()
        for inst in self.instances:
            inst.kill()

    def via(self, inst: Instance, url: str) -> str:
        """`url` (an address through HAProxy) sent to `inst` directly."""
        parts = urlsplit(url)
        assert parts.netloc == f"127.0.0.1:{self.acme_port}", url
        return urlunsplit(parts._replace(netloc=f"127.0.0.1:{inst.port}"))

    def service(self, method: str, path: str, *, inst: Optional[Instance] = None,
                token: Optional[str] = ADMIN_TOKEN, **kw) -> requests.Response:
        base = inst.service_url if inst is not None else self.service_url
        headers = dict(kw.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, base + path, headers=headers, verify=self.root_pem,
                                timeout=30, **kw)
