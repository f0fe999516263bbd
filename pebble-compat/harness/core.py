"""The machinery of the Pebble-compatibility runner: subjects, processes,
per-scenario contexts, the throwaway TLS CA and small protocol helpers.

Nothing here knows about a particular scenario; scenarios.py holds those.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parents[2]
COMPAT = REPO / "pebble-compat"
CONFIG_DIR = COMPAT / "config"
OUT = REPO / "target" / "pebble-compat"
CERTS = OUT / "certs"
TLS_CA = CERTS / "ca.pem"          # trust anchor for https://localhost:14000 and :15000
LOGS = OUT / "logs"
VENV_BIN = REPO / "target" / "e2e-venv" / "bin"

# Both subjects are run from the repository root, so that the relative
# certificate paths in config/*.json resolve to the files made by make_tls_ca.
CWD = REPO

DIRECTORY = "https://localhost:14000/dir"
MGMT = "https://localhost:15000"
CTS = "http://127.0.0.1:8055"
DNS = ("127.0.0.1", 8053)

# Every port either program binds with the configs and flags used here.
TCP_PORTS = (14000, 15000, 5001, 5002, 5003, 8053, 8055)
UDP_PORTS = (8053,)

# Environment every subject gets unless a scenario overrides it. Any PEBBLE_*
# variable of the caller's environment is dropped first, so that a run does not
# depend on the shell it was started from.
BASE_ENV = {
    "PEBBLE_VA_NOSLEEP": "1",
    # Pebble rejects 5% of good nonces by default. The acme library retries a
    # badNonce only once, so over the few hundred requests of a run that
    # default would make results flaky; env-nonce-reject tests the knob.
    "PEBBLE_WFE_NONCEREJECT": "0",
}


# --------------------------------------------------------------------------
# subjects
# --------------------------------------------------------------------------

@dataclass
class Subject:
    """A pair of executables that take Pebble's and pebble-challtestsrv's
    command lines."""
    name: str
    pebble: str
    challtestsrv: str
    # None when the subject can run; else why every scenario is skipped.
    unavailable: Optional[str] = None
    # A failure of this subject makes the run fail (acme-ca) or is only
    # recorded (pebble, the reference).
    fatal: bool = True


def pebble_subject() -> Subject:
    peb = os.environ.get("PEBBLE_BIN") or shutil.which("pebble") or "/usr/bin/pebble"
    cts = (os.environ.get("PEBBLE_CHALLTESTSRV_BIN") or shutil.which("pebble-challtestsrv")
           or "/usr/bin/pebble-challtestsrv")
    why = None
    if not os.access(peb, os.X_OK):
        why = f"{peb} not found (apt-get install -y pebble)"
    elif not os.access(cts, os.X_OK):
        why = f"{cts} not found (apt-get install -y pebble)"
    return Subject("pebble", peb, cts, why, fatal=False)


def debian_challtestsrv() -> str:
    """Debian's pebble-challtestsrv (PEBBLE_CHALLTESTSRV_BIN overrides it, as
    for the pebble subject), for scenarios that use it whatever the subject."""
    return os.environ.get("PEBBLE_CHALLTESTSRV_BIN") or "/usr/bin/pebble-challtestsrv"


def acme_ca_subject() -> Subject:
    # The wrappers in pebble-compat/bin exec $ACME_CA_BIN (here: the debug
    # build unless the caller chose another); a missing binary is a failure
    # of the scenario (with the wrapper's message), not a skip.
    os.environ.setdefault("ACME_CA_BIN", str(COMPAT.parent / "target" / "debug" / "acme-ca"))
    return Subject("acme-ca", str(COMPAT / "bin" / "pebble"),
                   str(COMPAT / "bin" / "pebble-challtestsrv"), None, fatal=True)


# --------------------------------------------------------------------------
# outcomes
# --------------------------------------------------------------------------

class ScenarioFailed(Exception):
    """A hard failure: the scenario cannot go on."""


class ScenarioSkipped(Exception):
    """The scenario cannot run here (a tool is missing, …)."""


def one_line(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


# --------------------------------------------------------------------------
# the throwaway TLS CA
# --------------------------------------------------------------------------

def make_tls_ca() -> None:
    """A fresh CA and a localhost/127.0.0.1/::1 leaf under target/pebble-compat/certs,
    made with openssl; both subjects serve https with the same files."""
    if CERTS.exists():
        shutil.rmtree(CERTS)
    (CERTS / "localhost").mkdir(parents=True)
    ca_key, ca = CERTS / "ca.key.pem", CERTS / "ca.pem"
    key, csr, cert = (CERTS / "localhost" / n for n in ("key.pem", "req.csr", "cert.pem"))
    ext = CERTS / "localhost" / "ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n"
                   "basicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    steps = [
        ["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "7",
         "-subj", "/CN=pebble-compat throwaway TLS CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["openssl", "req", "-new", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=localhost"],
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-days", "7", "-out", cert, "-extfile", ext],
    ]
    for argv in steps:
        r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, argv[:3]))} failed: {r.stderr.strip()}")


# --------------------------------------------------------------------------
# ports and processes
# --------------------------------------------------------------------------

def busy_ports() -> list[str]:
    """Ports of TCP_PORTS/UDP_PORTS that something holds."""
    busy = []
    for proto, ports, kind in (("tcp", TCP_PORTS, socket.SOCK_STREAM),
                               ("udp", UDP_PORTS, socket.SOCK_DGRAM)):
        for port in ports:
            s = socket.socket(socket.AF_INET, kind)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("0.0.0.0", port))
            except OSError:
                busy.append(f"{proto}/{port}")
            finally:
                s.close()
    return busy


def who_holds(ports: list[str]) -> str:
    """ss's view of the holders of the given ports, for a failure message."""
    try:
        out = subprocess.run(["ss", "-Htulnp"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    nums = {p.split("/")[1] for p in ports}
    lines = [ln for ln in out.splitlines() if any(f":{n} " in ln for n in nums)]
    return "; ".join(" ".join(ln.split()[-2:]) for ln in lines)


def wait_ports_free(timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        busy = busy_ports()
        if not busy or time.monotonic() >= deadline:
            return busy
        time.sleep(0.1)


def clean_env(extra: Optional[dict] = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEBBLE_")}
    env.update(extra or {})
    return env


def tail(path: Path, n: int = 3) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-n:])


def telling_line(path: Path) -> str:
    """The line of a program's output that best says why it stopped: the
    first that looks like an error, else the last ones."""
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines()
                 if ln.strip() and not ln.startswith("# ")]
    except OSError:
        return ""
    for ln in lines:
        if re.search(r"error|panic|fatal|failed|invalid|not defined|unknown|unrecognized", ln, re.I):
            return ln
    return " | ".join(lines[-2:])


@dataclass
class Proc:
    name: str
    argv: list[str]
    popen: subprocess.Popen
    log: Path

    def exited(self) -> Optional[int]:
        return self.popen.poll()

    def why_dead(self) -> str:
        return f"{self.name} exited with status {self.popen.returncode}: {telling_line(self.log)}"


def terminate(proc: Proc, grace: float = 3.0) -> None:
    p = proc.popen
    if p.poll() is None:
        try:
            p.send_signal(signal.SIGTERM)
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
        except ProcessLookupError:
            pass


# --------------------------------------------------------------------------
# minimal DNS client (A, TXT and CAA), to look at what the challenge server serves
# --------------------------------------------------------------------------

def dns_query(name: str, qtype: str, server=DNS, timeout: float = 2.0) -> list[str]:
    """Answers of type `qtype` ("A", "TXT" or "CAA", the latter as
    "<flags> <tag> <value>") for `name` from `server` over UDP."""
    code = {"A": 1, "TXT": 16, "CAA": 257}[qtype]
    qid = random.randrange(65536)
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    packet = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", code, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(packet, server)
        data, _ = s.recvfrom(4096)
    finally:
        s.close()
    rid, _flags, qd, an = struct.unpack(">HHHH", data[:8])
    if rid != qid:
        raise RuntimeError("DNS answer id mismatch")
    off = 12

    def skip_name(o: int) -> int:
        while True:
            ln = data[o]
            if ln == 0:
                return o + 1
            if ln & 0xC0 == 0xC0:
                return o + 2
            o += ln + 1

    for _ in range(qd):
        off = skip_name(off) + 4
    out = []
    for _ in range(an):
        off = skip_name(off)
        rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", data[off:off + 10])
        off += 10
        rdata = data[off:off + rdlen]
        off += rdlen
        if rtype != code:
            continue
        if rtype == 1:
            out.append(socket.inet_ntoa(rdata))
        elif rtype == 257:
            taglen = rdata[1] if len(rdata) > 1 else 0
            out.append(f"{rdata[0] if rdata else 0} "
                       f"{rdata[2:2 + taglen].decode(errors='replace')} "
                       f"{rdata[2 + taglen:].decode(errors='replace')}")
        else:
            parts, i = [], 0
            while i < len(rdata):
                ln = rdata[i]
                parts.append(rdata[i + 1:i + 1 + ln].decode(errors="replace"))
                i += 1 + ln
            out.append("".join(parts))
    return out


# --------------------------------------------------------------------------
# the per-scenario context
# --------------------------------------------------------------------------

class Ctx:
    """What a scenario function gets: start/stop the subject's programs, run
    client tools, soft checks and notes. Runs inside the scenario's worker
    process, whose process group the runner kills when it is done."""

    def __init__(self, subject: Subject, scenario: str, logdir: Path):
        self.subject = subject
        self.scenario = scenario
        self.logdir = logdir
        self.procs: list[Proc] = []
        self.failures: list[str] = []
        self.notes: list[str] = []
        self._seq = 0
        self._log = open(logdir / "scenario.log", "a", encoding="utf-8")

    # ---- logging, checks, notes ----------------------------------------

    def log(self, msg: str) -> None:
        self._log.write(f"{time.strftime('%H:%M:%S')} {msg}\n")
        self._log.flush()

    def check(self, cond: bool, msg: str) -> bool:
        """A soft assertion: record `msg` as a failure and go on."""
        self.log(("ok    " if cond else "FAIL  ") + msg)
        if not cond:
            self.failures.append(msg)
        return bool(cond)

    def require(self, cond: bool, msg: str) -> None:
        """A hard assertion: the scenario stops here."""
        self.log(("ok    " if cond else "FAIL  ") + msg)
        if not cond:
            raise ScenarioFailed(msg)

    def note(self, msg: str) -> None:
        """An observation worth reporting whatever the outcome (exact URLs,
        headers, bodies)."""
        self.log("note  " + msg)
        self.notes.append(msg)

    def path(self, name: str) -> Path:
        """A fresh directory under this scenario's log directory."""
        p = self.logdir / name
        if p.exists():
            shutil.rmtree(p)
        p.mkdir(parents=True)
        return p

    def _logfile(self, name: str) -> Path:
        self._seq += 1
        return self.logdir / f"{self._seq:02d}-{name}.log"

    # ---- subject programs -----------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: dict,
               cwd: Optional[Path] = None) -> Proc:
        """Start a program in the background, its output in a log file; the
        working directory is the repository root unless `cwd` is given."""
        log = self._logfile(name)
        cwd = Path(cwd) if cwd is not None else CWD
        with open(log, "w", encoding="utf-8") as f:
            f.write(f"# argv: {argv}\n# cwd: {cwd}\n# env: "
                    f"{ {k: v for k, v in env.items() if k.startswith('PEBBLE_')} }\n")
            f.flush()
            popen = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=f, stderr=subprocess.STDOUT)
        proc = Proc(name, argv, popen, log)
        self.procs.append(proc)
        self.log(f"started {name} pid {popen.pid} in {cwd}: {' '.join(argv)}")
        return proc

    def start_challtestsrv(self, args: tuple = ("-defaultIPv4", "127.0.0.1"),
                           timeout: float = 10.0, binary: Optional[str] = None) -> Proc:
        """The challenge server with the given flags: the subject's, or
        `binary` (e.g. debian_challtestsrv(), whatever the subject); returns
        once its management API (:8055) accepts connections and, unless the
        flags set -dns01, its DNS server (:8053) answers a query."""
        exe = binary or self.subject.challtestsrv
        name = "challtestsrv" if binary is None else f"challtestsrv-{Path(exe).name}"
        proc = self._spawn(name, [exe, *args], clean_env())
        deadline = time.monotonic() + timeout
        while True:
            if proc.exited() is not None:
                raise ScenarioFailed(proc.why_dead())
            try:
                with socket.create_connection(("127.0.0.1", 8055), timeout=0.5):
                    break
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise ScenarioFailed(f"{name}: management port 8055 not open after "
                                     f"{timeout:.0f}s: {tail(proc.log)}")
            time.sleep(0.1)
        if "-dns01" not in args and "--dns01" not in args:
            while True:
                try:
                    dns_query("readiness-probe.example", "A", timeout=0.5)
                    break
                except (OSError, RuntimeError):
                    pass
                if proc.exited() is not None:
                    raise ScenarioFailed(proc.why_dead())
                if time.monotonic() >= deadline:
                    raise ScenarioFailed(f"{name}: DNS on 127.0.0.1:8053 not answering after "
                                         f"{timeout:.0f}s: {tail(proc.log)}")
                time.sleep(0.1)
        return proc

    def start_pebble(self, config: Optional[str] = "pebble-config.json",
                     env: Optional[dict] = None, args: tuple = (), dnsserver: bool = True,
                     timeout: float = 10.0, cwd: Optional[Path] = None,
                     verify=None) -> Proc:
        """The subject's ACME server with `-config pebble-compat/config/<config>`
        (none if `config` is None) and `-dnsserver 127.0.0.1:8053` (unless
        `dnsserver` is false), then `args`, run in `cwd` (default: the
        repository root); returns once GET /dir answers 200, checked with
        `verify` as requests' verify (default: the runner's TLS CA)."""
        import requests  # imported late: the runner re-execs itself into the venv

        argv = [self.subject.pebble]
        if config is not None:
            argv += ["-config", f"pebble-compat/config/{config}"]
        if dnsserver:
            argv += ["-dnsserver", "127.0.0.1:8053"]
        argv += list(args)
        full_env = clean_env({**BASE_ENV, **(env or {})})
        full_env = {k: v for k, v in full_env.items() if v is not None}
        proc = self._spawn("pebble", argv, full_env, cwd=cwd)
        deadline = time.monotonic() + timeout
        last = ""
        probe_verify = str(TLS_CA) if verify is None else verify
        while True:
            if proc.exited() is not None:
                raise ScenarioFailed(proc.why_dead())
            try:
                r = requests.get(DIRECTORY, verify=probe_verify, timeout=2)
                if r.status_code == 200:
                    return proc
                last = f"GET /dir: {r.status_code}"
            except requests.RequestException as exc:
                last = f"GET /dir: {type(exc).__name__}"
            if time.monotonic() >= deadline:
                raise ScenarioFailed(f"pebble not ready after {timeout:.0f}s ({last}): "
                                     f"{tail(proc.log)}")
            time.sleep(0.1)

    def stop_all(self, port_timeout: float = 10.0) -> None:
        """Stop every program this scenario started and wait for the ports."""
        for proc in reversed(self.procs):
            terminate(proc)
            self.log(f"stopped {proc.name} (status {proc.popen.returncode})")
        self.procs.clear()
        busy = wait_ports_free(port_timeout)
        if busy:
            raise ScenarioFailed(f"ports still busy after stopping: {busy} {who_holds(busy)}")

    def alive(self) -> None:
        """Fail if a started program has died."""
        for proc in self.procs:
            if proc.exited() is not None:
                raise ScenarioFailed(proc.why_dead())

    # ---- tools ------------------------------------------------------------

    def run(self, name: str, argv: list, env: Optional[dict] = None, timeout: float = 60.0,
            check: bool = True) -> subprocess.CompletedProcess:
        """Run a client tool (certbot, lego, the subject with -version, …),
        its output kept in a log file."""
        log = self._logfile(name)
        argv = [str(a) for a in argv]
        full_env = clean_env(env)
        self.log(f"run {name}: {' '.join(argv)}")
        try:
            r = subprocess.run(argv, cwd=CWD, env=full_env, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            log.write_text(f"# argv: {argv}\n# TIMEOUT after {timeout}s\n"
                           f"{exc.stdout or ''}\n{exc.stderr or ''}")
            raise ScenarioFailed(f"{name} timed out after {timeout:.0f}s (log {log.name})")
        except OSError as exc:
            raise ScenarioFailed(f"{name}: cannot run {argv[0]}: {exc}")
        log.write_text(f"# argv: {argv}\n# exit {r.returncode}\n# stdout\n{r.stdout}\n"
                       f"# stderr\n{r.stderr}\n")
        if check and r.returncode != 0:
            out = (r.stderr.strip() or r.stdout.strip()).splitlines()
            raise ScenarioFailed(f"{name} exited {r.returncode}: "
                                 f"{out[-1] if out else ''} (log {log.name})")
        return r

    # ---- HTTP helpers -------------------------------------------------------

    def mgmt_get(self, path: str):
        import requests
        return requests.get(MGMT + path, verify=str(TLS_CA), timeout=10)

    def cts_post(self, path: str, body: dict):
        import requests
        r = requests.post(CTS + path, data=json.dumps(body), timeout=10)
        self.require(r.status_code == 200,
                     f"challtestsrv POST {path} answers 200 (got {r.status_code} {r.text[:80]!r})")
        return r


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --------------------------------------------------------------------------
# running one scenario in a worker process
# --------------------------------------------------------------------------

@dataclass
class Scenario:
    name: str
    func: Callable[[Ctx], None]
    timeout: float = 45.0
    doc: str = ""


@dataclass
class Result:
    status: str                  # "pass" | "fail" | "skip"
    reason: str = ""
    failures: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    seconds: float = 0.0
    logdir: str = ""
    error: str = ""              # what stopped the scenario, if something did

    def cell(self) -> str:
        if self.status == "pass":
            return "pass"
        if self.status == "skip":
            return f"skip: {one_line(self.reason, 120)}"
        return f"FAIL: {one_line(self.reason, 160)}"


def _worker(conn, subject: Subject, scen: Scenario, logdir: Path) -> None:
    # Own process group: the runner kills the group, and with it every
    # program this worker started, whatever state the worker is in.
    os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    import logging
    logging.basicConfig(filename=str(logdir / "client-debug.log"), level=logging.DEBUG,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True)
    ctx = Ctx(subject, scen.name, logdir)
    status, error = "pass", ""
    try:
        scen.func(ctx)
        ctx.alive()
    except ScenarioSkipped as exc:
        status, error = "skip", str(exc)
    except ScenarioFailed as exc:
        status, error = "fail", str(exc)
    except AssertionError as exc:
        status, error = "fail", str(exc) or "assertion failed"
    except Exception as exc:  # pylint: disable=broad-except
        ctx.log(traceback.format_exc())
        status, error = "fail", f"{type(exc).__name__}: {exc}"
    finally:
        try:
            ctx.stop_all()
        except ScenarioFailed as exc:
            ctx.failures.append(str(exc))
    res = Result(status, error, failures=list(ctx.failures), notes=list(ctx.notes), error=error)
    if status == "skip":
        res.failures = []
    elif ctx.failures:
        # The table shows the first thing that went wrong.
        more = len(ctx.failures) - 1 + (1 if error else 0)
        res.status = "fail"
        res.reason = ctx.failures[0] + (f" (+{more} more)" if more else "")
    ctx.log(f"result {res.status}: {res.reason}")
    try:
        conn.send(res)
    finally:
        conn.close()
        sys.stdout.flush()
        # Threads a scenario left hanging (concurrency) must not keep the worker.
        os._exit(0)


def become_subreaper() -> None:
    """Make this process the reaper of the programs a killed worker leaves
    orphaned, so that they do not linger as zombies under a pid 1 that does
    not reap (as in many containers)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_group(worker) -> None:
    """SIGTERM, then SIGKILL, the worker's process group (the worker and
    every program it started), then reap."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(worker.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        if sig == signal.SIGTERM:
            worker.join(3)
    worker.join(5)
    time.sleep(0.05)
    reap()


def run_scenario(subject: Subject, scen: Scenario, log_root: Path) -> Result:
    import multiprocessing

    logdir = log_root / subject.name / scen.name
    if logdir.exists():
        shutil.rmtree(logdir)
    logdir.mkdir(parents=True)
    started = time.monotonic()
    if subject.unavailable:
        return Result("skip", subject.unavailable, logdir=str(logdir))
    busy = wait_ports_free(10)
    if busy:
        return Result("fail", f"ports busy before start: {busy} {who_holds(busy)}",
                      logdir=str(logdir))
    mp = multiprocessing.get_context("fork")
    parent, child = mp.Pipe(duplex=False)
    worker = mp.Process(target=_worker, args=(child, subject, scen, logdir), daemon=False)
    worker.start()
    child.close()
    res: Optional[Result] = None
    try:
        if parent.poll(scen.timeout):
            try:
                res = parent.recv()
            except EOFError:
                res = None
        if res is None:
            reason = (f"timed out after {scen.timeout:.0f}s" if worker.is_alive()
                      else f"worker died (exit {worker.exitcode})")
            last = tail(logdir / "scenario.log", 1)
            if last:
                reason += f"; last step: {last}"
            res = Result("fail", reason, error=reason)
    finally:
        # Whatever happened (also ^C or SIGTERM of the runner), nothing the
        # worker started outlives the scenario.
        kill_group(worker)
    busy = wait_ports_free(10)
    if busy:
        res.failures.append(f"ports still busy after the scenario: {busy} {who_holds(busy)}")
        if res.status != "fail":
            res.status, res.reason = "fail", res.failures[-1]
    res.seconds = time.monotonic() - started
    res.logdir = str(logdir)
    return res
