"""Real challenge validation: acme-ca without always-valid, against the
challtestsrv binary (acme-tests) for DNS and challenge responses."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Optional

import pytest
from acme import crypto_util, messages

import chisel2
from certcheck import verify_chain
from conftest import RATE_LIMITS_OFF, REPO_ROOT, AcmeCaServer, ServerError, free_port

ERR = "urn:ietf:params:acme:error:"


class ChallTestSrv:
    """The challtestsrv binary on free local ports (IPv4 answers only)."""

    def __init__(self, log_dir: Path, command: Optional[list[str]] = None):
        """`command` runs the server (default: the challtestsrv binary,
        `$CHALLTESTSRV_BIN`); the listener flags are appended to it."""
        if command is None:
            bin_path = os.environ.get("CHALLTESTSRV_BIN", "target/debug/challtestsrv")
            path = Path(bin_path)
            command = [str(path if path.is_absolute() else REPO_ROOT / path)]
        self.dns_port, self.http_port, self.https_port = free_port(), free_port(), free_port()
        self.tls_port, self.mgmt_port = free_port(), free_port()
        self.log = open(log_dir / "challtestsrv.log", "ab")
        self.proc = subprocess.Popen(
            [*command, "-dns01", f"127.0.0.1:{self.dns_port}",
             "-http01", f"127.0.0.1:{self.http_port}",
             "-https01", f"127.0.0.1:{self.https_port}",
             "-tlsalpn01", f"127.0.0.1:{self.tls_port}",
             "-management", f"127.0.0.1:{self.mgmt_port}",
             "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.mgmt_port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise ServerError(f"challtestsrv did not start (see {self.log.name})")

    def post(self, path: str, body: dict) -> None:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.mgmt_port}{path}", data=json.dumps(body).encode(),
            method="POST")
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200, (path, resp.status)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class ValidatingAcmeCa(AcmeCaServer):
    """acme-ca validating for real, its VA pointed at challtestsrv."""

    def __init__(self, *a, dns_port: int, http_port: int, tls_port: int,
                 allow_reserved: bool = True, timeout: str = "10s", extra: str = "",
                 **kw):
        super().__init__(*a, **kw)
        self.config = self.data_dir.parent / "acme-ca.toml"
        self.config.write_text(
            "[validation]\n"
            f'dns_servers = ["127.0.0.1:{dns_port}"]\n'
            f"http_port = {http_port}\n"
            f"tls_port = {tls_port}\n"
            f"allow_reserved_addresses = {str(allow_reserved).lower()}\n"
            f'timeout = "{timeout}"\n'
            f"{extra}"
            '[acme]\ncaa_identities = ["acme-ca.test"]\n' + RATE_LIMITS_OFF)

    def command(self) -> list[str]:
        return super().command() + ["--config", str(self.config)]

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env["PEBBLE_VA_ALWAYS_VALID"] = "0"
        return env


@pytest.fixture(scope="module")
def challsrv(tmp_path_factory):
    srv = ChallTestSrv(tmp_path_factory.mktemp("challtestsrv"))
    yield srv
    srv.stop()


def _validating_server(tmp_path_factory, challsrv, http_port: int,
                       **kw) -> ValidatingAcmeCa:
    base = tmp_path_factory.mktemp("acme-ca-validating")
    srv = ValidatingAcmeCa(base / "data", base / "logs", dns_port=challsrv.dns_port,
                           http_port=http_port, tls_port=challsrv.tls_port, **kw)
    try:
        srv.start()
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    return srv


@pytest.fixture(scope="module")
def va_server(tmp_path_factory, challsrv):
    """Validates http-01 against challtestsrv's HTTP port."""
    srv = _validating_server(tmp_path_factory, challsrv, challsrv.http_port)
    yield srv
    srv.kill()


@pytest.fixture(scope="module")
def client(va_server):
    return chisel2.make_client(va_server.directory, ca_bundle=va_server.tls_ca)


def _answer(client, challsrv, pending, kind: str, publish=True) -> None:
    key = client.net.key
    for uri in pending.orderr.body.authorizations:
        authz = chisel2.get_authz(client, uri)
        challb = chisel2.find_challenge(authz, kind)
        response, validation = challb.response_and_validation(key)
        if publish and kind == "http-01":
            challsrv.post("/add-http01", {"token": challb.chall.encode("token"),
                                          "content": validation})
        elif publish and kind == "dns-01":
            challsrv.post("/set-txt", {"host": f"_acme-challenge.{authz.identifier.value}.",
                                       "value": validation})
        client.answer_challenge(challb, response)


def _wait_authz(client, uri: str) -> messages.Authorization:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        authz = chisel2.get_authz(client, uri)
        if authz.status != messages.STATUS_PENDING:
            return authz
        time.sleep(0.1)
    raise AssertionError(f"{uri} still pending")


def _issue(client, challsrv, names: list[str], kind: str):
    pending = chisel2.new_order(client, names)
    _answer(client, challsrv, pending, kind)
    for uri in pending.orderr.body.authorizations:
        assert _wait_authz(client, uri).status == messages.STATUS_VALID
    chisel2.poll_order(client, pending.uri, ("ready",), 30)
    return chisel2.finalize_and_download(client, pending, 30)


def test_http01_validated(va_server, challsrv, client, tmp_path):
    name = chisel2.random_name("http")
    issued = _issue(client, challsrv, [name], "http-01")
    verify_chain(issued.chain_pem, va_server.root_pem, tmp_path, [name])
    # The validation record names the URL fetched and the address used.
    order = chisel2.get_order(client, issued.order_uri)
    raw = chisel2.post_as_get(client, order.authorizations[0]).json()
    chall = next(c for c in raw["challenges"] if c["type"] == "http-01")
    assert chall["status"] == "valid"
    record = chall["validationRecord"][0]
    assert record["hostname"] == name
    assert record["port"] == str(challsrv.http_port)
    assert record["addressUsed"] == "127.0.0.1"


def test_dns01_validated_with_wildcard(va_server, challsrv, client, tmp_path):
    base = chisel2.random_name("dns")
    issued = _issue(client, challsrv, [f"*.{base}", base], "dns-01")
    verify_chain(issued.chain_pem, va_server.root_pem, tmp_path, [f"*.{base}", base])


def test_wrong_http01_response_is_incorrect_response(va_server, challsrv, client):
    name = chisel2.random_name("wrong")
    pending = chisel2.new_order(client, [name])
    uri = pending.orderr.body.authorizations[0]
    authz = chisel2.get_authz(client, uri)
    challb = chisel2.find_challenge(authz, "http-01")
    challsrv.post("/add-http01", {"token": challb.chall.encode("token"),
                                  "content": "not-the-key-authorization"})
    client.answer_challenge(challb, challb.chall.response(client.net.key))
    authz = _wait_authz(client, uri)
    assert authz.status == messages.STATUS_INVALID
    error = chisel2.find_challenge(authz, "http-01").error
    assert error.typ == ERR + "incorrectResponse", error
    assert f":{challsrv.http_port}/.well-known/acme-challenge/" in error.detail


def test_missing_txt_record_is_unauthorized(va_server, challsrv, client):
    name = chisel2.random_name("notxt")
    pending = chisel2.new_order(client, [name])
    _answer(client, challsrv, pending, "dns-01", publish=False)
    authz = _wait_authz(client, pending.orderr.body.authorizations[0])
    assert authz.status == messages.STATUS_INVALID
    error = chisel2.find_challenge(authz, "dns-01").error
    assert error.typ == ERR + "unauthorized", error
    assert f"_acme-challenge.{name}" in error.detail


def test_caa_for_another_ca_forbids(va_server, challsrv, client):
    name = chisel2.random_name("caa")
    challsrv.post("/add-caa", {"host": f"{name}.",
                               "policies": [{"tag": "issue", "value": "other-ca.test"}]})
    pending = chisel2.new_order(client, [name])
    _answer(client, challsrv, pending, "http-01")
    authz = _wait_authz(client, pending.orderr.body.authorizations[0])
    assert authz.status == messages.STATUS_INVALID
    error = chisel2.find_challenge(authz, "http-01").error
    assert error.typ == ERR + "caa", error


def test_caa_naming_us_allows(va_server, challsrv, client):
    name = chisel2.random_name("caaok")
    challsrv.post("/add-caa", {"host": f"{name}.",
                               "policies": [{"tag": "issue", "value": "acme-ca.test"}]})
    _issue(client, challsrv, [name], "http-01")


def test_certbot_standalone_http01(tmp_path_factory, challsrv, tmp_path):
    """certbot answers http-01 itself on the port the VA is configured for."""
    port = free_port()
    srv = _validating_server(tmp_path_factory, challsrv, port)
    try:
        name = chisel2.random_name("certbot")
        env = dict(os.environ, REQUESTS_CA_BUNDLE=srv.tls_ca)
        certbot = Path(sys.executable).with_name("certbot")
        run = subprocess.run(
            [str(certbot), "certonly", "--standalone", "--http-01-port", str(port),
             "--server", srv.directory, "-d", name, "--non-interactive", "--agree-tos",
             "--register-unsafely-without-email",
             "--config-dir", str(tmp_path / "c"), "--work-dir", str(tmp_path / "w"),
             "--logs-dir", str(tmp_path / "l")],
            env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        live = tmp_path / "c" / "live" / name
        verify_chain((live / "fullchain.pem").read_text(), srv.root_pem, tmp_path / "v", [name])
    finally:
        srv.kill()


def test_ip_identifier_http01(va_server, challsrv, client):
    """RFC 8738: an IP identifier validated by http-01 on that address."""
    key_pem = chisel2.make_cert_key_pem()
    csr_pem = crypto_util.make_csr(key_pem, ipaddrs=[ipaddress.ip_address("127.0.0.1")])
    orderr = client.new_order(csr_pem)
    pending = chisel2.PendingOrder(["127.0.0.1"], orderr, csr_pem, key_pem)
    _answer(client, challsrv, pending, "http-01")
    assert _wait_authz(client, orderr.body.authorizations[0]).status == messages.STATUS_VALID
    chisel2.poll_order(client, pending.uri, ("ready",), 30)
    issued = chisel2.finalize_and_download(client, pending, 30)
    leaf = issued.leaf
    assert not leaf.subject.rfc4514_string(), "an IP-only certificate has no CN"


LEGO = "/usr/bin/lego"


def _lego(srv, tmp_path, name, *flags, env=None):
    assert os.path.exists(LEGO), "lego is missing: scripts/test installs the Debian package"
    run_env = dict(os.environ, LEGO_CA_CERTIFICATES=srv.tls_ca, **(env or {}))
    return subprocess.run(
        [LEGO, "--server", srv.directory, "--email", "lego@example.com", "--accept-tos",
         "--domains", name, "--path", str(tmp_path / "lego"), *flags, "run"],
        env=run_env, capture_output=True, text=True, timeout=120)


def test_lego_tls_alpn01(tmp_path_factory, challsrv, tmp_path):
    """lego answers tls-alpn-01 itself on the port the VA is configured for."""
    port = free_port()
    base = tmp_path_factory.mktemp("acme-ca-tls")
    srv = ValidatingAcmeCa(base / "data", base / "logs", dns_port=challsrv.dns_port,
                           http_port=challsrv.http_port, tls_port=port)
    srv.start()
    try:
        name = chisel2.random_name("lego-tls")
        run = _lego(srv, tmp_path, name, "--tls", "--tls.port", f"127.0.0.1:{port}")
        assert run.returncode == 0, run.stdout + run.stderr
        cert = tmp_path / "lego" / "certificates" / f"{name}.crt"
        verify_chain(cert.read_text(), srv.root_pem, tmp_path / "v", [name])
    finally:
        srv.kill()


def test_lego_dns01_exec_provider(va_server, challsrv, tmp_path):
    """lego publishes the TXT record through an exec hook into challtestsrv."""
    hook = tmp_path / "hook.py"
    hook.write_text(
        "import json, sys, urllib.request\n"
        f"url = 'http://127.0.0.1:{challsrv.mgmt_port}'\n"
        "action, fqdn, value = sys.argv[1], sys.argv[2], sys.argv[3]\n"
        "path, body = ('/set-txt', {'host': fqdn, 'value': value}) if action == 'present' "
        "else ('/clear-txt', {'host': fqdn})\n"
        "urllib.request.urlopen(urllib.request.Request(url + path, "
        "data=json.dumps(body).encode(), method='POST'), timeout=5)\n")
    wrapper = tmp_path / "hook.sh"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {hook} \"$@\"\n")
    wrapper.chmod(0o755)
    name = chisel2.random_name("lego-dns")
    run = _lego(va_server, tmp_path, name, "--dns", "exec",
                "--dns.resolvers", f"127.0.0.1:{challsrv.dns_port}", "--dns.disable-cp",
                env={"EXEC_PATH": str(wrapper), "EXEC_PROPAGATION_TIMEOUT": "10",
                     "EXEC_POLLING_INTERVAL": "1"})
    assert run.returncode == 0, run.stdout + run.stderr
    cert = tmp_path / "lego" / "certificates" / f"{name}.crt"
    verify_chain(cert.read_text(), va_server.root_pem, tmp_path / "v", [name])


def test_certbot_manual_dns01_with_hooks_and_wildcard(va_server, challsrv, tmp_path):
    """certbot --manual publishes the TXT records through hooks into challtestsrv."""
    mgmt = f"http://127.0.0.1:{challsrv.mgmt_port}"
    auth = tmp_path / "auth.sh"
    auth.write_text(
        "#!/bin/sh\n"
        f"exec {sys.executable} -c \"import json,os,urllib.request;"
        f"urllib.request.urlopen(urllib.request.Request('{mgmt}/set-txt',"
        "data=json.dumps({'host':'_acme-challenge.'+os.environ['CERTBOT_DOMAIN']+'.',"
        "'value':os.environ['CERTBOT_VALIDATION']}).encode(),method='POST'))\"\n")
    cleanup = tmp_path / "cleanup.sh"
    cleanup.write_text(
        "#!/bin/sh\n"
        f"exec {sys.executable} -c \"import json,os,urllib.request;"
        f"urllib.request.urlopen(urllib.request.Request('{mgmt}/clear-txt',"
        "data=json.dumps({'host':'_acme-challenge.'+os.environ['CERTBOT_DOMAIN']+'.'}).encode(),"
        "method='POST'))\"\n")
    auth.chmod(0o755)
    cleanup.chmod(0o755)
    base = chisel2.random_name("manual")
    env = dict(os.environ, REQUESTS_CA_BUNDLE=va_server.tls_ca)
    certbot = Path(sys.executable).with_name("certbot")
    run = subprocess.run(
        [str(certbot), "certonly", "--manual", "--preferred-challenges", "dns",
         "--manual-auth-hook", str(auth), "--manual-cleanup-hook", str(cleanup),
         "--server", va_server.directory, "-d", f"*.{base}", "-d", base,
         "--non-interactive", "--agree-tos", "--register-unsafely-without-email",
         "--config-dir", str(tmp_path / "c"), "--work-dir", str(tmp_path / "w"),
         "--logs-dir", str(tmp_path / "l")],
        env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    live = tmp_path / "c" / "live" / base
    verify_chain((live / "fullchain.pem").read_text(), va_server.root_pem, tmp_path / "v",
                 [f"*.{base}", base])


def test_reserved_addresses_are_refused_by_default(tmp_path_factory, challsrv):
    """Without allow_reserved_addresses the VA will not connect to 127.0.0.1."""
    srv = _validating_server(tmp_path_factory, challsrv, challsrv.http_port,
                             allow_reserved=False)
    try:
        client = chisel2.make_client(srv.directory, ca_bundle=srv.tls_ca)
        pending = chisel2.new_order(client, [chisel2.random_name("reserved")])
        _answer(client, challsrv, pending, "http-01")
        authz = _wait_authz(client, pending.orderr.body.authorizations[0])
        assert authz.status == messages.STATUS_INVALID
        error = chisel2.find_challenge(authz, "http-01").error
        assert "127.0.0.1" in error.detail and "loopback" in error.detail, error
    finally:
        srv.kill()


def test_caa_is_checked_again_at_finalize(tmp_path_factory, challsrv):
    """With caa_recheck_after = 0 every finalize checks CAA again: a CAA
    record for another CA published after validation stops issuance."""
    srv = _validating_server(tmp_path_factory, challsrv, challsrv.http_port,
                             extra='caa_recheck_after = "0s"\n')
    try:
        client = chisel2.make_client(srv.directory, ca_bundle=srv.tls_ca)
        name = chisel2.random_name("recheck")
        pending = chisel2.new_order(client, [name])
        _answer(client, challsrv, pending, "http-01")
        assert _wait_authz(client, pending.orderr.body.authorizations[0]).status == \
            messages.STATUS_VALID
        chisel2.poll_order(client, pending.uri, ("ready",), 30)
        challsrv.post("/add-caa", {"host": f"{name}.",
                                   "policies": [{"tag": "issue", "value": "other-ca.test"}]})
        with pytest.raises(messages.Error) as err:
            chisel2.finalize_and_download(client, pending, 30)
        assert err.value.typ == ERR + "caa", err.value
    finally:
        srv.kill()


def test_processing_answers_retry_after_then_times_out(tmp_path_factory, challsrv):
    """A challenge server that accepts and never answers: the authorization
    is processing (with Retry-After) until the attempt times out."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    srv = _validating_server(tmp_path_factory, challsrv, port, timeout="2s")
    try:
        client = chisel2.make_client(srv.directory, ca_bundle=srv.tls_ca)
        pending = chisel2.new_order(client, [chisel2.random_name("silent")])
        uri = pending.orderr.body.authorizations[0]
        authz = chisel2.get_authz(client, uri)
        challb = chisel2.find_challenge(authz, "http-01")
        client.answer_challenge(challb, challb.chall.response(client.net.key))
        resp = chisel2.post_as_get(client, uri)
        body = resp.json()
        chall = next(c for c in body["challenges"] if c["type"] == "http-01")
        assert chall["status"] == "processing", body
        assert body["status"] == "pending"
        assert int(resp.headers["Retry-After"]) >= 1
        authz = _wait_authz(client, uri)
        assert authz.status == messages.STATUS_INVALID
        error = chisel2.find_challenge(authz, "http-01").error
        assert error.typ == ERR + "connection", error
    finally:
        srv.kill()
        silent.close()
