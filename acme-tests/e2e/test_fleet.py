"""Three acme-ca instances on one PostgreSQL database behind HAProxy
(fleet.py): certbot through the load balancer, a client whose every
request lands on another instance, fleet nonces, service download tokens,
the renewal scheduler run once across the fleet, and (marked fleet_slow)
an instance killed with SIGKILL and PostgreSQL stopped, both during load.

Needs ACME_CA_TEST_PG_URL (a cluster whose role may create databases):
without it the module fails when ACME_CA_TEST_PG_REQUIRED=1 and is
skipped otherwise. HAProxy is Debian's /usr/sbin/haproxy.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import itertools
import json
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import josepy as jose
import pytest
import requests
from acme import client as acme_client, errors as acme_errors, jws, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import chisel2
import fleet as fl
from certcheck import verify_chain
from conftest import ServerError
from rawacme import JOSE, problem_text, problem_type
from test_certbot import certbot_bin, free_port

pytestmark = pytest.mark.acme_ca_only("several acme-ca instances on one PostgreSQL database")

BAD_NONCE = "urn:ietf:params:acme:error:badNonce"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(autouse=True, scope="module")
def _needs_postgres_and_haproxy():
    """Every test here: fails when PostgreSQL is required and missing,
    is skipped when it is only missing; fails without HAProxy."""
    fl.require_postgres()
    fl.require_haproxy()


@pytest.fixture
def db_url():
    cluster = fl.require_postgres()
    url = fl.fresh_database(cluster)
    yield url
    fl.drop_database(cluster, url)


def start_fleet(base: Path, db_url: str, **kw) -> fl.Fleet:
    fleet = fl.Fleet(base, db_url, **kw)
    try:
        fleet.start()
    except ServerError as exc:
        fleet.kill()
        pytest.fail(str(exc), pytrace=False)
    return fleet


@pytest.fixture
def fleet(tmp_path, db_url):
    f = start_fleet(tmp_path / "fleet", db_url)
    yield f
    f.stop()


# --------------------------------------------------------------------------
# a client that sends each request to the next instance in turn
# --------------------------------------------------------------------------

class RoundRobinAcme:
    """Hand-signed ACME requests; each one goes to the next instance's own
    port (the URL it signs is the one the servers advertise: HAProxy's)."""

    def __init__(self, fleet: fl.Fleet):
        self.fleet = fleet
        self.session = requests.Session()
        self.turn = itertools.cycle(fleet.instances)
        self.nonce = None
        self.dir = self.get(fleet.directory).json()

    def _send(self, method: str, url: str, **kw) -> requests.Response:
        inst = next(self.turn)
        resp = self.session.request(method, self.fleet.via(inst, url),
                                    verify=self.fleet.root_pem, timeout=30, **kw)
        if "Replay-Nonce" in resp.headers:
            self.nonce = resp.headers["Replay-Nonce"]
        return resp

    def get(self, url: str) -> requests.Response:
        return self._send("GET", url)

    def post(self, url: str, payload, key: jose.JWK, kid=None) -> requests.Response:
        if self.nonce is None:
            self.nonce = self._send("HEAD", self.dir["newNonce"]).headers["Replay-Nonce"]
        nonce, self.nonce = self.nonce, None
        body = b"" if payload is None else json.dumps(payload).encode()
        data = jws.JWS.sign(body, key=key, alg=chisel2.alg_for(key),
                            nonce=jose.decode_b64jose(nonce), url=url, kid=kid).json_dumps()
        return self._send("POST", url, data=data, headers={"Content-Type": JOSE})


def full_flow(client: RoundRobinAcme, workdir: Path, root_pem: str) -> None:
    key, _ = chisel2.make_account_key("ec")
    r = client.post(client.dir["newAccount"], {"termsOfServiceAgreed": True}, key)
    assert r.status_code == 201, problem_text(r)
    kid = r.headers["Location"]
    names = [chisel2.random_name("rr")]
    r = client.post(client.dir["newOrder"],
                    {"identifiers": [{"type": "dns", "value": n} for n in names]}, key, kid)
    assert r.status_code == 201, problem_text(r)
    order_url, order = r.headers["Location"], r.json()
    for authz_url in order["authorizations"]:
        authz = client.post(authz_url, None, key, kid).json()
        chall = next(c for c in authz["challenges"] if c["type"] == "http-01")
        r = client.post(chall["url"], {}, key, kid)
        assert r.status_code == 200, problem_text(r)
        deadline = time.monotonic() + 30
        while authz["status"] != "valid":
            assert authz["status"] in ("pending", "processing") and \
                time.monotonic() < deadline, authz
            time.sleep(0.1)
            authz = client.post(authz_url, None, key, kid).json()
    csr, _ = chisel2.make_csr_pem(names)
    der = x509.load_pem_x509_csr(csr).public_bytes(serialization.Encoding.DER)
    r = client.post(order["finalize"], {"csr": b64url(der)}, key, kid)
    assert r.status_code == 200, problem_text(r)
    deadline = time.monotonic() + 30
    order = r.json()
    while order["status"] != "valid":
        assert order["status"] in ("ready", "processing") and time.monotonic() < deadline, order
        time.sleep(0.1)
        order = client.post(order_url, None, key, kid).json()
    r = client.post(order["certificate"], None, key, kid)
    assert r.status_code == 200, problem_text(r)
    leaf = verify_chain(r.text, root_pem, workdir, names)
    # The same bytes from every instance.
    for _ in client.fleet.instances:
        again = client.post(order["certificate"], None, key, kid)
        assert again.status_code == 200 and again.text == r.text
    r = client.post(client.dir["revokeCert"],
                    {"certificate": b64url(leaf.public_bytes(serialization.Encoding.DER))},
                    key, kid)
    assert r.status_code == 200, problem_text(r)
    r = client.post(client.dir["revokeCert"],
                    {"certificate": b64url(leaf.public_bytes(serialization.Encoding.DER))},
                    key, kid)
    assert (r.status_code, problem_type(r)) == \
        (400, "urn:ietf:params:acme:error:alreadyRevoked"), problem_text(r)


# --------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------

def serial_hex(cert: x509.Certificate) -> str:
    h = format(cert.serial_number, "x")
    return h if len(h) % 2 == 0 else "0" + h


def leaf_of(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_certbot_through_haproxy(fleet, tmp_path):
    env = dict(os.environ, REQUESTS_CA_BUNDLE=fleet.root_pem)
    base = tmp_path / "certbot"
    common = ["--non-interactive", "--config-dir", str(base / "config"),
              "--work-dir", str(base / "work"), "--logs-dir", str(base / "logs"), "-v"]

    def certbot(*args: str) -> None:
        res = subprocess.run([certbot_bin(), *args, *common], env=env, stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=180)
        if res.returncode != 0:
            log = base / "logs" / "letsencrypt.log"
            tail = "\n".join(log.read_text().splitlines()[-60:]) if log.is_file() else ""
            pytest.fail(f"certbot {args[0]} exited {res.returncode}\n{res.stderr}\n{tail}",
                        pytrace=False)

    names = [chisel2.random_name("fleetbot"), chisel2.random_name("fleetbot")]
    live = base / "config" / "live" / "e2e"
    certbot("certonly", "--standalone", "--http-01-port", str(free_port()),
            "--http-01-address", "127.0.0.1", "--server", fleet.directory, "--agree-tos",
            "--register-unsafely-without-email", "--cert-name", "e2e",
            *itertools.chain.from_iterable(("-d", n) for n in names))
    first = verify_chain((live / "fullchain.pem").read_text(), fleet.root_pem,
                         tmp_path / "c1", names)
    certbot("renew", "--force-renewal", "--no-random-sleep-on-renew",
            "--http-01-port", str(free_port()),
            "--http-01-address", "127.0.0.1")
    second = verify_chain((live / "fullchain.pem").read_text(), fleet.root_pem,
                          tmp_path / "c2", names)
    assert second.serial_number != first.serial_number
    certbot("revoke", "--cert-name", "e2e", "--server", fleet.directory,
            "--no-delete-after-revoke", "--reason", "superseded")
    # Every instance says so, straight away.
    for inst in fleet.instances:
        for cert, status in ((first, "valid"), (second, "revoked")):
            r = fleet.service("GET", f"/certs/{serial_hex(cert)}", inst=inst)
            assert r.status_code == 200, r.text
            assert r.json()["status"] == status, (inst, r.json())


def test_every_request_on_another_instance(fleet, tmp_path):
    client = RoundRobinAcme(fleet)
    # Two flows, so that each step lands on other instances the second time.
    for i in range(2):
        full_flow(client, tmp_path / f"flow{i}", fleet.root_pem)


def test_nonce_from_one_instance_is_accepted_once_anywhere(fleet):
    a, b, c = fleet.instances
    client = RoundRobinAcme(fleet)
    new_account = client.dir["newAccount"]

    def post_at(inst, nonce: str) -> requests.Response:
        key, _ = chisel2.make_account_key("ec")
        data = jws.JWS.sign(json.dumps({"termsOfServiceAgreed": True}).encode(), key=key,
                            alg=chisel2.alg_for(key), nonce=jose.decode_b64jose(nonce),
                            url=new_account).json_dumps()
        return requests.post(fleet.via(inst, new_account), data=data,
                             headers={"Content-Type": JOSE}, verify=fleet.root_pem, timeout=30)

    r = requests.head(fleet.via(a, client.dir["newNonce"]), verify=fleet.root_pem, timeout=30)
    nonce = r.headers["Replay-Nonce"]
    r = post_at(b, nonce)
    assert r.status_code == 201, problem_text(r)
    for inst in (c, b, a):
        r = post_at(inst, nonce)
        assert (r.status_code, problem_type(r)) == (400, BAD_NONCE), problem_text(r)
        assert "Replay-Nonce" in r.headers


def test_download_token_made_on_one_instance_works_once_on_another(fleet):
    a, b, c = fleet.instances
    r = fleet.service("POST", "/certs", inst=a, token=fl.REQUESTER_TOKEN, json={
        "entity_id": "fleet-dl", "profile": "server", "key_type": "ec", "key_size": 256,
        "names": ["dl.fleet.example.com"]})
    assert r.status_code == 201, r.text
    serial = r.json()["serial_number"]
    r = fleet.service("POST", f"/certs/{serial}/download-token", inst=a,
                      token=fl.REQUESTER_TOKEN)
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    r = fleet.service("GET", f"/certs/{serial}/download", inst=b, token=None,
                      params={"token": token})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/zip")
    r = fleet.service("GET", f"/certs/{serial}/download", inst=c, token=None,
                      params={"token": token})
    assert r.status_code == 403, r.text
    assert r.headers["Content-Type"] == "application/problem+json"


class ConsoleBrowser:
    """A browser on the web console: the cookies it holds, sent with each
    request to whichever instance (or HAProxy) the test names. Redirects
    are not followed, so each answer is seen where it was made."""

    COOKIE = "__Host-acme-ca-console"
    SIGNIN_COOKIE = "__Host-acme-ca-signin"

    def __init__(self, fleet: fl.Fleet):
        self.fleet = fleet
        self.cookies: dict[str, str] = {}
        self.csrf = ""

    def request(self, base: str, method: str, path: str, **kw) -> requests.Response:
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        r = requests.request(method, base + path, headers=headers, verify=self.fleet.root_pem,
                             allow_redirects=False, timeout=30, **kw)
        for c in r.raw.headers.getlist("Set-Cookie"):
            name, _, rest = c.partition("=")
            value = rest.split(";", 1)[0]
            if "Max-Age=0" in c:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return r

    def page(self, base: str, path: str) -> str:
        """A page that must load (200); remembers its CSRF token."""
        r = self.request(base, "GET", path)
        assert r.status_code == 200, (base, path, r.status_code, r.headers.get("Location"))
        m = re.search(r'name="csrf" value="([^"]+)"', r.text)
        assert m, r.text
        self.csrf = m.group(1)
        return r.text

    def post(self, base: str, path: str, **fields: str) -> requests.Response:
        """A form as the page posts it: with the CSRF token."""
        return self.request(base, "POST", path, data={"csrf": self.csrf, **fields})

    def sign_in(self, base: str, token: str) -> None:
        form = self.request(base, "GET", "/ui/signin")
        assert form.status_code == 200, form.text
        pre = self.cookies[self.SIGNIN_COOKIE]
        r = self.request(base, "POST", "/ui/signin", data={"csrf": pre, "token": token})
        assert (r.status_code, r.headers.get("Location")) == (303, "/ui/"), r.text
        assert self.COOKIE in self.cookies


def flash_of(html: str) -> str:
    m = re.search(r'<p class="flash (?:ok|err)" role="(?:status|alert)">([^<]*)</p>', html)
    return m.group(1) if m else ""


def test_console_session_signed_in_at_one_instance_works_at_every_other(fleet):
    """No sticky sessions: a browser signed in at A loads pages, posts
    forms with its CSRF token and downloads at B and C; the one-shot
    message set by one instance is shown once by another; a download asked
    for at one is used once at another; signing out at C signs out at A.
    The database holds neither the session id nor the download token."""
    a, b, c = (inst.service_url for inst in fleet.instances)
    alice = ConsoleBrowser(fleet)
    alice.sign_in(a, fl.REQUESTER_TOKEN)
    session_id = alice.cookies[ConsoleBrowser.COOKIE]
    csrf_at_a = None
    for base in (b, c, a):
        text = alice.page(base, "/ui/")
        assert "alice (requester)" in text, text
        assert csrf_at_a in (None, alice.csrf), "one session, one CSRF token"
        csrf_at_a = alice.csrf

    # A form posted at B; its message shown by C, once.
    r = alice.post(b, "/ui/issue/server", entity_id="fleet-console",
                   names="console.fleet.example.com", key="ec-256")
    assert r.status_code == 303, r.text
    detail = r.headers["Location"]
    serial = detail.rsplit("/", 1)[1]
    assert flash_of(alice.page(c, detail)) == f"Issued certificate {serial}."
    assert flash_of(alice.page(a, detail)) == ""
    # A forged token is refused at every instance.
    for base in (a, b, c):
        r = alice.request(base, "POST", f"{detail}/download-token",
                          data={"csrf": "forged", "format": "zip"})
        assert r.status_code == 403, r.text

    # A download asked for at A is offered by B and used once, at C.
    r = alice.post(a, f"{detail}/download-token", format="zip")
    assert r.status_code == 303, r.text
    assert 'id="download"' in alice.page(b, detail)
    rows = fl.psql(fleet.db_url,
                   "SELECT encode(d.session, 'hex'), encode(d.token_sealed, 'hex') "
                   "FROM console_downloads d")
    assert len(rows) == 1, rows
    assert rows[0][0] == hashlib.sha256(session_id.encode()).hexdigest(), \
        "keyed by the id's digest"
    r = alice.post(c, f"{detail}/download")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/zip" and r.content[:2] == b"PK"
    r = alice.post(b, f"{detail}/download")
    assert (r.status_code, r.headers.get("Location")) == (303, detail), "used once"
    assert "no download is ready" in flash_of(alice.page(a, detail))
    # Nothing in the database is the id or opens a download.
    dump = "\n".join("\t".join(row) for table in ("console_sessions", "console_downloads")
                     for row in fl.psql(fleet.db_url, f"SELECT t::text FROM {table} t"))
    assert session_id not in dump

    # Through HAProxy (round robin, no stickiness): every page loads.
    for _ in range(2 * len(fleet.instances)):
        alice.page(fleet.service_url, "/ui/certs")

    # Signed out at C: signed out at A and B.
    alice.page(c, "/ui/")
    signed_in_cookie = alice.cookies[ConsoleBrowser.COOKIE]
    r = alice.post(c, "/ui/signout")
    assert (r.status_code, r.headers.get("Location")) == (303, "/ui/signin"), r.text
    assert ConsoleBrowser.COOKIE not in alice.cookies
    alice.cookies[ConsoleBrowser.COOKIE] = signed_in_cookie
    for base in (a, b):
        r = alice.request(base, "GET", "/ui/")
        assert (r.status_code, r.headers.get("Location")) == (303, "/ui/signin")
    assert fl.psql(fleet.db_url, "SELECT count(*) FROM console_sessions") == [("0",)]


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_auto_renewal_runs_once_across_the_fleet(tmp_path, db_url):
    hook = fl.HookReceiver()
    fleet = fl.Fleet(tmp_path / "fleet", db_url, hooks=[hook.url])
    first = fleet.instances[0]
    try:
        # One instance issues the certificate (its scheduler ran at its
        # start, before the certificate existed, and would run again in
        # ten minutes), and stops: its lease is given back.
        try:
            fleet.start_instances([first])
        except ServerError as exc:
            pytest.fail(str(exc), pytrace=False)
        r = fleet.service("POST", "/certs", inst=first, token=fl.REQUESTER_TOKEN, json={
            "entity_id": "fleet-auto", "profile": "auto", "key_type": "ec", "key_size": 256,
            "names": ["auto.fleet.example.com"], "auto_renew": True})
        assert r.status_code == 201, r.text
        serial = r.json()["serial_number"]
        cert = fleet.service("GET", f"/certs/{serial}", inst=first).json()
        not_before, not_after = parse_time(cert["not_before"]), parse_time(cert["not_after"])
        window = datetime.timedelta(seconds=60)
        # Renewable once in its window and at least a window old.
        due = max(not_after - window, not_before + window) + datetime.timedelta(seconds=1)
        first.stop()
        now = datetime.datetime.now(datetime.timezone.utc)
        assert due < not_after - datetime.timedelta(seconds=10), (cert, now)
        if due > now:
            time.sleep((due - now).total_seconds())
        # Three instances start on a certificate due for renewal: each one's
        # scheduler checks at once if it gets the lease.
        started = time.monotonic()
        try:
            fleet.start()
        except ServerError as exc:
            pytest.fail(str(exc), pytrace=False)

        def renewed() -> list[dict]:
            return [e for e in hook.events() if e["type"] == "certificate.renewed"]

        deadline = time.monotonic() + 30
        while not renewed():
            assert time.monotonic() < deadline, f"no renewal announced: {hook.events()}"
            time.sleep(0.1)
        ev = renewed()[0]
        assert (ev["data"]["old_serial"], ev["data"]["renewed_by"]) == (serial, "scheduler"), ev
        new = ev["data"]["new_serial"]
        # The new certificate is itself in its window: a second scheduler
        # run anywhere would renew it too. Every instance has made its
        # start-up check within the first seconds; the next is ten minutes
        # away. Wait for the revocation announcement of the old one and
        # five seconds past the later of that and the fleet's start.
        deadline = time.monotonic() + 30
        while not [e for e in hook.events() if e["type"] == "certificate.revoked"
                   and e["data"]["serial"] == serial]:
            assert time.monotonic() < deadline, hook.events()
            time.sleep(0.1)
        time.sleep(max(0.0, started + 15 - time.monotonic()))
        assert len(renewed()) == 1, renewed()
        old = fleet.service("GET", f"/certs/{serial}").json()
        assert (old["status"], old["renewed_to"]) == ("revoked", new), old
        cur = fleet.service("GET", f"/certs/{new}").json()
        assert (cur["status"], cur["renewed_to"], cur["auto_renew"]) == ("valid", None, True), cur
        # (What makes a second run visible: the new one is due already.)
        nb, na = parse_time(cur["not_before"]), parse_time(cur["not_after"])
        assert max(na - window, nb + window) <= datetime.datetime.now(datetime.timezone.utc), cur
        listed = fleet.service("GET", "/certs", params={"entity": "fleet-auto"}).json()
        assert sorted(c["serial"] for c in listed["certificates"]) == sorted([serial, new]), \
            listed
        # Delivered once each: one announcement of the renewal, one of the
        # superseded revocation.
        types = sorted(e["type"] for e in hook.events())
        assert types == ["certificate.renewed", "certificate.revoked"], hook.events()
    finally:
        fleet.stop()
        hook.stop()


# --------------------------------------------------------------------------
# load through HAProxy, with faults
# --------------------------------------------------------------------------

WORKERS = 32
LOAD_SECONDS = 30.0
# finalize leases are 30 s (src/server/settings.rs): an order whose lease a
# dead instance held is ready again after that, and finished then.
FINALIZE_LEASE = 30.0
DRAIN_TIMEOUT = 180.0
SERVER_INTERNAL = "urn:ietf:params:acme:error:serverInternal"


class Broken(Exception):
    """The server broke a promise: not to be retried."""


@dataclass
class Received:
    worker: int
    order_uri: str
    cert_uri: str
    chain_pem: str
    at: float


@dataclass
class Worker:
    index: int
    key: jose.JWK
    registered: bool = False
    orders: list = field(default_factory=list)
    received: list = field(default_factory=list)
    # Error answers: (status, problem type, Retry-After, monotonic time).
    answers: list = field(default_factory=list)
    # Exceptions: (kind, text, time); kind "connection" or "answer" (one
    # that followed an error answer recorded above) or "other".
    failures: list = field(default_factory=list)
    fatal: str = ""


def retryable(answer: tuple) -> bool:
    status, typ, retry_after, _ = answer
    if status >= 500:
        return typ == SERVER_INTERNAL and retry_after is not None
    return status == 400 and typ == BAD_NONCE


class Load:
    """WORKERS threads issuing through HAProxy, each with its own account;
    on any error a worker reconnects and takes its order up where the
    server says it is. Every error answer and exception is recorded."""

    def __init__(self, fleet: fl.Fleet):
        self.fleet = fleet
        self.workers = [Worker(i, chisel2.make_account_key("ec")[0]) for i in range(WORKERS)]
        self.finish = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(w,), daemon=True,
                                         name=f"fleet-worker-{w.index}") for w in self.workers]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def stop(self, timeout: float) -> list[str]:
        self.finish.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return [t.name for t in self.threads if t.is_alive()]

    def received(self) -> list[Received]:
        return [r for w in self.workers for r in list(w.received)]

    def count_since(self, t: float) -> int:
        return sum(1 for r in self.received() if r.at >= t)

    def _client(self, w: Worker):
        net = acme_client.ClientNetwork(w.key, alg=chisel2.alg_for(w.key),
                                        verify_ssl=self.fleet.root_pem,
                                        user_agent="acme-ca-e2e-fleet", timeout=30)

        def record(resp, *a, **kw):
            if resp.status_code >= 400:
                try:
                    typ = resp.json().get("type", "")
                except ValueError:
                    typ = ""
                w.answers.append((resp.status_code, typ, resp.headers.get("Retry-After"),
                                  time.monotonic()))

        net.session.hooks["response"].append(record)
        client = acme_client.ClientV2(
            acme_client.ClientV2.get_directory(self.fleet.directory, net), net)
        if not w.registered:
            client.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
            w.registered = True
            return client
        resp = client._post(client.directory["newAccount"],  # pylint: disable=protected-access
                            messages.NewRegistration(only_return_existing=True))
        client.net.account = messages.RegistrationResource(
            body=messages.Registration.from_json(resp.json()), uri=resp.headers["Location"])
        return client

    def _run(self, w: Worker) -> None:
        client, pending = None, None
        while True:
            if pending is None and self.finish.is_set():
                return
            answers_before = len(w.answers)
            try:
                if client is None:
                    client = self._client(w)
                if pending is None:
                    pending = chisel2.new_order(client, [chisel2.random_name(f"fleet{w.index}")])
                    w.orders.append(pending.uri)
                if self._advance(w, client, pending):
                    pending = None
            except Broken as exc:
                w.fatal = str(exc)
                return
            except (messages.Error, acme_errors.Error, ValueError) as exc:
                if isinstance(exc, messages.Error) and \
                        exc.typ == "urn:ietf:params:acme:error:accountDoesNotExist":
                    w.fatal = f"the account was lost: {exc}"
                    return
                kind = "answer" if len(w.answers) > answers_before else "other"
                w.failures.append((kind, f"{type(exc).__name__}: {exc}"[:300], time.monotonic()))
                client = None
                time.sleep(0.05)
            except requests.exceptions.RequestException as exc:
                w.failures.append(("connection", f"{type(exc).__name__}: {exc}"[:300],
                                   time.monotonic()))
                client = None
                time.sleep(0.05)

    def _advance(self, w: Worker, client, pending) -> bool:
        order = chisel2.get_order(client, pending.uri)
        status = order.status.name
        if status == "pending":
            chisel2.answer_challenges(client, order.authorizations)
            chisel2.poll_authorizations(client, order.authorizations)
        elif status == "ready":
            chisel2.begin_finalize(client, order, pending.csr_pem)
        elif status == "processing":
            # (A dead instance's lease keeps it processing until it expires.)
            chisel2.poll_order(client, pending.uri, ("ready", "valid", "invalid"),
                               timeout=FINALIZE_LEASE + 30)
        elif status == "valid":
            if not order.certificate:
                raise Broken(f"valid order {pending.uri} has no certificate URL")
            chain, _ = chisel2.download(client, order.certificate)
            w.received.append(Received(w.index, pending.uri, order.certificate, chain,
                                       time.monotonic()))
            return True
        else:
            raise Broken(f"order {pending.uri} became {status}: {order.error}")
        return False

    # -- checks afterwards ----------------------------------------------
    def check_errors(self) -> dict:
        """Every error a client saw was retryable; a summary of them."""
        bad_answers = [(w.index, a) for w in self.workers for a in w.answers if not retryable(a)]
        assert not bad_answers, f"non-retryable answers: {bad_answers[:20]}"
        other = [(w.index, f) for w in self.workers for f in w.failures if f[0] == "other"]
        assert not other, f"errors that followed no error answer: {other[:20]}"
        fatal = [(w.index, w.fatal) for w in self.workers if w.fatal]
        assert not fatal, fatal
        summary: dict = {}
        for w in self.workers:
            for a in w.answers:
                summary[f"{a[0]} {a[1].rsplit(':', 1)[-1]}"] = \
                    summary.get(f"{a[0]} {a[1].rsplit(':', 1)[-1]}", 0) + 1
            for f in w.failures:
                if f[0] == "connection":
                    summary["connection"] = summary.get("connection", 0) + 1
        return summary

    def check_served(self) -> None:
        """Every certificate a client received is served, byte for byte,
        with its order valid and pointing at it."""
        by_worker: dict[int, list[Received]] = {}
        for r in self.received():
            by_worker.setdefault(r.worker, []).append(r)
        for index, got in by_worker.items():
            w = self.workers[index]
            client = chisel2.existing_client(self.fleet.directory, w.key,
                                             ca_bundle=self.fleet.root_pem)
            for r in got:
                order = chisel2.get_order(client, r.order_uri)
                assert (order.status.name, order.certificate) == ("valid", r.cert_uri), \
                    (r, order)
                chain, _ = chisel2.download(client, r.cert_uri)
                assert chain == r.chain_pem, f"{r.cert_uri} served different bytes"
        # And each order any client was given ended valid.
        received_orders = {r.order_uri for r in self.received()}
        for w in self.workers:
            assert set(w.orders) <= received_orders, \
                f"worker {w.index}: orders without a certificate: " \
                f"{set(w.orders) - received_orders}"


def leased_orders(db_url: str) -> list[tuple]:
    """Orders with a finalize lease and no certificate."""
    return fl.psql(db_url, "SELECT id, processing_until FROM orders "
                           "WHERE processing_until IS NOT NULL AND NOT EXISTS "
                           "(SELECT 1 FROM certificates c WHERE c.order_id = orders.id)")


def leases_of(db_url: str, owner: str) -> list[tuple]:
    """Orders `owner` holds an unexpired finalize lease on, uncertified
    (processing_until is in Unix seconds)."""
    assert owner and all(c.isalnum() or c in "-_." for c in owner), owner
    return fl.psql(db_url, "SELECT id FROM orders WHERE processing_owner = "
                           f"'{owner}' AND processing_until > "
                           "extract(epoch FROM clock_timestamp())::bigint "
                           "AND NOT EXISTS (SELECT 1 FROM certificates c "
                           "WHERE c.order_id = orders.id)")


def wait_until(what: str, cond, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"not within {timeout:.0f}s: {what}"
        time.sleep(0.1)


# The killed instance finalizes asynchronously, as Boulder does ([chaos]
# finalize_delay: it answers `processing` and signs this many seconds
# later), so it holds finalize leases long enough to die holding some.
VICTIM_FINALIZE_DELAY = 3


@pytest.mark.fleet_slow
def test_kill_one_instance_during_load(tmp_path, db_url):
    fleet = start_fleet(tmp_path / "fleet", db_url,
                        extra_toml={1: f"\n[chaos]\nfinalize_delay = {VICTIM_FINALIZE_DELAY}\n"})
    try:
        kill_one_instance_during_load(fleet, db_url)
    finally:
        fleet.stop()


def kill_one_instance_during_load(fleet: fl.Fleet, db_url: str) -> None:
    victim = fleet.instances[1]
    load = Load(fleet)
    started = time.monotonic()
    load.start()
    try:
        # Issuance runs on every instance; then one dies mid-load.
        wait_until("certificates issued before the kill", lambda: len(load.received()) >= 10,
                   60)
        time.sleep(max(0.0, started + LOAD_SECONDS / 3 - time.monotonic()))
        # Kill it while it holds finalize leases: its orders are then left
        # processing until the leases expire, and are finished elsewhere.
        owner = (victim.data_dir / "instance-id").read_text().strip()
        wait_until("the victim holds finalize leases", lambda: leases_of(db_url, owner), 30)
        victim.kill()
        killed = time.monotonic()
        orphaned = leases_of(db_url, owner)
        assert orphaned, "the killed instance held no finalize lease"
        wait_until("issuance after the kill", lambda: load.count_since(killed) >= 10, 60)
        time.sleep(max(0.0, started + LOAD_SECONDS - time.monotonic()))
    finally:
        stuck = load.stop(DRAIN_TIMEOUT)
    assert not stuck, f"workers still running after {DRAIN_TIMEOUT:.0f}s: {stuck}"
    assert time.monotonic() - started >= LOAD_SECONDS
    summary = load.check_errors()
    # The dead instance's leases expire; none is left on an order.
    wait_until("finalize leases released", lambda: not leased_orders(db_url),
               FINALIZE_LEASE + VICTIM_FINALIZE_DELAY + 10)
    load.check_served()
    # The orders the dead instance held ended valid (check_served: every
    # order a client was given has its certificate), after their leases.
    print(f"\n{len(load.received())} certificates, {load.count_since(killed)} after the kill, "
          f"{len(orphaned)} orders leased by the killed instance; errors seen: {summary}")


@pytest.fixture
def private_cluster():
    cluster = fl.PgCluster()
    try:
        cluster.start()
    except ServerError as exc:
        cluster.remove()
        pytest.fail(str(exc), pytrace=False)
    yield cluster
    cluster.remove()


OUTAGE = 10.0
RECOVERY_BOUND = 30.0


@pytest.mark.fleet_slow
def test_postgres_stopped_during_load(tmp_path, private_cluster):
    db_url = fl.fresh_database(private_cluster.url)
    fleet = start_fleet(tmp_path / "fleet", db_url)
    load = Load(fleet)
    try:
        started = time.monotonic()
        load.start()
        try:
            wait_until("certificates before the outage", lambda: len(load.received()) >= 10, 60)
            private_cluster.stop()
            down = time.monotonic()
            # During the outage every instance answers 503 with Retry-After.
            for inst in fleet.instances:
                r = fleet.service("GET", "/certs", inst=inst, params={"limit": 1})
                assert r.status_code == 503 and r.headers.get("Retry-After"), \
                    (inst, r.status_code, r.text)
            time.sleep(max(0.0, down + OUTAGE - time.monotonic()))
            private_cluster.start()
            up = time.monotonic()
            # Each instance answers again, without a restart.
            for inst in fleet.instances:
                def answers(inst=inst) -> bool:
                    return fleet.service("GET", "/certs", inst=inst,
                                         params={"limit": 1}).status_code == 200
                wait_until(f"instance {inst.index} answers again", answers,
                           RECOVERY_BOUND - (time.monotonic() - up))
                assert inst.alive
            wait_until("issuance after the outage", lambda: load.count_since(up) >= 10, 60)
            time.sleep(max(0.0, started + LOAD_SECONDS - time.monotonic()))
        finally:
            stuck = load.stop(DRAIN_TIMEOUT)
        assert not stuck, f"workers still running after {DRAIN_TIMEOUT:.0f}s: {stuck}"
        summary = load.check_errors()
        outage = [a for w in load.workers for a in w.answers if down <= a[3] <= up]
        assert all(a[0] == 503 for a in outage), outage[:20]
        wait_until("finalize leases released", lambda: not leased_orders(db_url),
                   FINALIZE_LEASE + 10)
        load.check_served()
        print(f"\n{len(load.received())} certificates, {load.count_since(up)} after the "
              f"outage; errors seen: {summary}")
    finally:
        fleet.stop()


def test_one_delegated_ocsp_responder_for_the_fleet(tmp_path, db_url):
    """With ocsp_delegated, every instance signs OCSP answers with the same
    responder certificate (made once, kept in the database), and the
    answers verify under it."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509 import ocsp

    delegated = "\n[status]\nocsp_delegated = true\n"
    fleet = start_fleet(tmp_path / "fleet", db_url,
                        extra_toml={i: delegated for i in range(3)})
    try:
        a = fleet.instances[0]
        r = fleet.service("POST", "/certs", inst=a, token=fl.REQUESTER_TOKEN, json={
            "entity_id": "fleet-ocsp", "profile": "server", "key_type": "ec", "key_size": 256,
            "names": ["ocsp.fleet.example.com"]})
        assert r.status_code == 201, r.text
        serial = r.json()["serial_number"]
        shown = fleet.service("GET", f"/certs/{serial}", inst=a).json()
        leaf = x509.load_pem_x509_certificate(shown["certificate"].encode())
        intermediate = x509.load_pem_x509_certificate(
            (a.data_dir / "intermediate.pem").read_bytes())
        request = ocsp.OCSPRequestBuilder().add_certificate(
            leaf, intermediate, hashes.SHA1()).build().public_bytes(serialization.Encoding.DER)
        responders = []
        for inst in fleet.instances:
            resp = requests.post(inst.status_url + "/ocsp", data=request, timeout=30,
                                 headers={"Content-Type": "application/ocsp-request"})
            assert resp.status_code == 200, f"{inst.name}: HTTP {resp.status_code}"
            parsed = ocsp.load_der_ocsp_response(resp.content)
            assert parsed.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
            assert parsed.certificate_status == ocsp.OCSPCertStatus.GOOD
            assert len(parsed.certificates) == 1, f"{inst.name}: no responder certificate"
            responder = parsed.certificates[0]
            assert responder.issuer == intermediate.subject
            responder.public_key().verify(parsed.signature, parsed.tbs_response_bytes,
                                          ec.ECDSA(parsed.signature_hash_algorithm))
            responders.append(responder.public_bytes(serialization.Encoding.DER))
        assert responders[0] == responders[1] == responders[2], \
            "the instances sign with different responders"
    finally:
        fleet.stop()
