"""dns-account-01 and dns-persist-01 end to end: acme-ca validating for real
against `acme-ca challtestsrv` (DNS on loopback), driven by the `acme`
library (certbot's). The library has no classes for these drafts' types: it
reads them as UnrecognizedChallenge, so this client computes the record
names and values itself and POSTs `{}` to the challenge URL through the
library."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import josepy as jose
import pytest
from acme import messages

import chisel2
from certcheck import verify_chain
from conftest import REPO_ROOT, ServerError
from test_validation import ChallTestSrv, ValidatingAcmeCa, _wait_authz

pytestmark = pytest.mark.acme_ca_only

ERR = "urn:ietf:params:acme:error:"
ISSUER = "acme-ca.test"  # the servers' acme.caa_identities


class _EmptyObject(jose.JSONDeSerializable):
    """The `{}` a client POSTs to a challenge URL to say it is ready."""

    def to_partial_json(self) -> dict:
        return {}

    @classmethod
    def from_json(cls, jobj):  # pragma: no cover - never received
        return cls()


@pytest.fixture(scope="module")
def challsrv(tmp_path_factory):
    """`acme-ca challtestsrv`, the subcommand of the binary under test."""
    bin_path = Path(os.environ.get("ACME_CA_BIN", "target/debug/acme-ca"))
    binary = bin_path if bin_path.is_absolute() else REPO_ROOT / bin_path
    srv = ChallTestSrv(tmp_path_factory.mktemp("acme-ca-challtestsrv"),
                       command=[str(binary), "challtestsrv"])
    yield srv
    srv.stop()


def _server(tmp_path_factory, challsrv, extra: str = "") -> ValidatingAcmeCa:
    base = tmp_path_factory.mktemp("acme-ca-dns-drafts")
    srv = ValidatingAcmeCa(base / "data", base / "logs", dns_port=challsrv.dns_port,
                           http_port=challsrv.http_port, tls_port=challsrv.tls_port,
                           extra=extra)
    try:
        srv.start()
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    return srv


@pytest.fixture(scope="module")
def default_server(tmp_path_factory, challsrv):
    """`serve` with the defaults: dns-account-01 on, dns-persist-01 off."""
    srv = _server(tmp_path_factory, challsrv)
    yield srv
    srv.kill()


@pytest.fixture(scope="module")
def persist_server(tmp_path_factory, challsrv):
    """`serve` with validation.dns_persist_01 = true."""
    srv = _server(tmp_path_factory, challsrv, extra="dns_persist_01 = true\n")
    yield srv
    srv.kill()


def _account_url(client) -> str:
    return client.net.account.uri


def _types(authz: messages.Authorization) -> list[str]:
    return [chisel2.challenge_type(c) for c in authz.challenges]


def _raw_challenge(client, authz_uri: str, typ: str) -> dict:
    body = chisel2.post_as_get(client, authz_uri).json()
    return next(c for c in body["challenges"] if c["type"] == typ)


def _account_label(account_url: str) -> str:
    """draft-ietf-acme-dns-account-label: base32 of the first ten bytes of
    SHA-256(account URL), lower case."""
    digest = hashlib.sha256(account_url.encode()).digest()[:10]
    return base64.b32encode(digest).decode().lower()


def _dns_digest(client, token: str) -> str:
    """base64url(SHA-256(key authorization)), as dns-01 (RFC 8555 §8.4)."""
    thumbprint = jose.b64encode(client.net.key.thumbprint()).decode()
    key_authz = f"{token}.{thumbprint}"
    return jose.b64encode(hashlib.sha256(key_authz.encode()).digest()).decode()


def _post_empty(client, authz: messages.Authorization, typ: str) -> None:
    client.answer_challenge(chisel2.find_challenge(authz, typ), _EmptyObject())


def _finish(client, pending):
    chisel2.poll_order(client, pending.uri, ("ready",), 30)
    return chisel2.finalize_and_download(client, pending, 30)


def _invalid_error(client, uri: str, typ: str) -> messages.Error:
    authz = _wait_authz(client, uri)
    assert authz.status == messages.STATUS_INVALID
    return chisel2.find_challenge(authz, typ).error


def test_dns_account01_issuance_with_wildcard(default_server, challsrv, tmp_path):
    client = chisel2.make_client(default_server.directory, ca_bundle=default_server.tls_ca)
    base = chisel2.random_name("acct")
    names = [f"*.{base}", base]
    pending = chisel2.new_order(client, names)
    label = _account_label(_account_url(client))
    host = f"_{label}._acme-challenge.{base}."
    for uri in pending.orderr.body.authorizations:
        authz = chisel2.get_authz(client, uri)
        # On by default in serve, for wildcards too; dns-persist-01 is off.
        assert "dns-account-01" in _types(authz)
        assert "dns-persist-01" not in _types(authz)
        raw = _raw_challenge(client, uri, "dns-account-01")
        challsrv.post("/set-txt", {"host": host, "value": _dns_digest(client, raw["token"])})
        _post_empty(client, authz, "dns-account-01")
    for uri in pending.orderr.body.authorizations:
        assert _wait_authz(client, uri).status == messages.STATUS_VALID
    issued = _finish(client, pending)
    verify_chain(issued.chain_pem, default_server.root_pem, tmp_path, names)
    challsrv.post("/clear-txt", {"host": host})


def test_dns_account01_refuses_the_plain_dns01_name(default_server, challsrv):
    client = chisel2.make_client(default_server.directory, ca_bundle=default_server.tls_ca)
    name = chisel2.random_name("acct-wrong")
    pending = chisel2.new_order(client, [name])
    uri = pending.orderr.body.authorizations[0]
    raw = _raw_challenge(client, uri, "dns-account-01")
    challsrv.post("/set-txt", {"host": f"_acme-challenge.{name}.",
                               "value": _dns_digest(client, raw["token"])})
    _post_empty(client, chisel2.get_authz(client, uri), "dns-account-01")
    error = _invalid_error(client, uri, "dns-account-01")
    label = _account_label(_account_url(client))
    assert error.typ == ERR + "unauthorized", error
    assert f"_{label}._acme-challenge.{name}" in error.detail, error


def test_dns_persist01_wildcard_and_subdomain_issuance(persist_server, challsrv, tmp_path):
    client = chisel2.make_client(persist_server.directory, ca_bundle=persist_server.tls_ca)
    account = _account_url(client)
    base = chisel2.random_name("persist")
    # One record, published once, covers the name, a subdomain and the
    # wildcard.
    challsrv.post("/set-txt", {
        "host": f"_validation-persist.{base}.",
        "value": f"{ISSUER}; accounturi={account}; policy=wildcard"})
    names = [f"*.{base}", base, f"www.{base}"]
    pending = chisel2.new_order(client, names)
    for uri in pending.orderr.body.authorizations:
        authz = chisel2.get_authz(client, uri)
        raw = _raw_challenge(client, uri, "dns-persist-01")
        assert "token" not in raw, raw
        assert raw["accounturi"] == account
        assert raw["issuer-domain-names"] == [ISSUER]
        _post_empty(client, authz, "dns-persist-01")
    for uri in pending.orderr.body.authorizations:
        assert _wait_authz(client, uri).status == messages.STATUS_VALID
    issued = _finish(client, pending)
    verify_chain(issued.chain_pem, persist_server.root_pem, tmp_path, names)


@pytest.mark.parametrize("record,wildcard,problem,needle", [
    # No policy=wildcard: not for a wildcard.
    ("{issuer}; accounturi={account}", True, "unauthorized", "needs policy=wildcard"),
    # Another account's record.
    ("{issuer}; accounturi={account}x", False, "unauthorized", "is not this account"),
    # persistUntil passed.
    ("{issuer}; accounturi={account}; persistUntil=1000", False, "unauthorized",
     "has passed"),
    # A duplicated parameter.
    ("{issuer}; accounturi={account}; policy=wildcard; policy=wildcard", False,
     "malformed", "appears more than once"),
    # No accounturi.
    ("{issuer}; policy=wildcard", False, "malformed", "accounturi parameter is missing"),
    # Another CA's issuer domain name.
    ("other-ca.test; accounturi={account}", False, "unauthorized", "No TXT record for"),
])
def test_dns_persist01_refusals(persist_server, challsrv, record, wildcard, problem, needle):
    client = chisel2.make_client(persist_server.directory, ca_bundle=persist_server.tls_ca)
    account = _account_url(client)
    base = chisel2.random_name("persist-no")
    challsrv.post("/set-txt", {"host": f"_validation-persist.{base}.",
                               "value": record.format(issuer=ISSUER, account=account)})
    pending = chisel2.new_order(client, [f"*.{base}" if wildcard else base])
    uri = pending.orderr.body.authorizations[0]
    _post_empty(client, chisel2.get_authz(client, uri), "dns-persist-01")
    error = _invalid_error(client, uri, "dns-persist-01")
    assert error.typ == ERR + problem, error
    assert needle in error.detail, error


def test_dns_persist01_subdomain_needs_policy_wildcard(persist_server, challsrv):
    client = chisel2.make_client(persist_server.directory, ca_bundle=persist_server.tls_ca)
    base = chisel2.random_name("persist-sub")
    challsrv.post("/set-txt", {"host": f"_validation-persist.{base}.",
                               "value": f"{ISSUER}; accounturi={_account_url(client)}"})
    pending = chisel2.new_order(client, [f"www.{base}"])
    uri = pending.orderr.body.authorizations[0]
    _post_empty(client, chisel2.get_authz(client, uri), "dns-persist-01")
    error = _invalid_error(client, uri, "dns-persist-01")
    assert error.typ == ERR + "unauthorized", error
    assert "covers subdomains only with policy=wildcard" in error.detail, error
