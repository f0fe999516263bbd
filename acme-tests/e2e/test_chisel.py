"""The chisel2 flow and protocol-level checks against the shared server."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import josepy as jose
import pytest
from acme import messages
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

import chisel2
from certcheck import openssl, verify_chain
from conftest import SUBJECT
from rawacme import RawAcme, problem_text, problem_type

HERE = Path(__file__).resolve().parent
ERR = "urn:ietf:params:acme:error:"
DV_POLICY = "2.23.140.1.2.1"
PEM_CHAIN = "application/pem-certificate-chain"


@pytest.fixture(scope="module")
def client(server):
    """One registered account (ES256) for the module's chisel runs."""
    return chisel2.make_client(server.directory, ca_bundle=server.tls_ca)


@pytest.fixture
def raw(server):
    return RawAcme(server.directory, server.tls_ca)


@pytest.fixture(scope="module")
def issued_one(server, client):
    """One certificate for one name, shared by the checks on it."""
    return chisel2.auth_and_issue([chisel2.random_name("one")], client=client)


def assert_problem(resp: requests.Response, typ: str, status: int | None = None) -> dict:
    assert problem_type(resp) == ERR + typ, problem_text(resp)
    if status is not None:
        assert resp.status_code == status, problem_text(resp)
    assert resp.headers.get("Content-Type", "").startswith("application/problem+json"), \
        problem_text(resp)
    return resp.json()


def make_ready_order(raw: RawAcme, acct, names: list[str]) -> dict:
    """A raw order whose authorizations are valid; returns the order JSON + its URL."""
    resp = acct.new_order(names)
    assert resp.status_code == 201, problem_text(resp)
    order, url = resp.json(), resp.headers["Location"]
    for authz_url in order["authorizations"]:
        authz = acct.get(authz_url).json()
        chall = next(c for c in authz["challenges"] if c["type"] == "http-01")
        r = acct.post(chall["url"], {})
        assert r.status_code == 200, problem_text(r)
    order = poll_raw(acct, url, ("ready", "valid", "invalid"))
    assert order["status"] == "ready", order
    order["url"] = url
    return order


def poll_raw(acct, url: str, until, timeout: float = 30.0) -> dict:
    deadline, interval = time.monotonic() + timeout, 0.05
    while True:
        body = acct.get(url).json()
        if body.get("status") in until or time.monotonic() > deadline:
            return body
        time.sleep(interval)
        interval = min(interval * 2, 0.5)


# --------------------------------------------------------------------------
# the chisel flow
# --------------------------------------------------------------------------

def test_chisel_one_name(server, issued_one, tmp_path):
    assert issued_one.content_type.split(";")[0].strip() == PEM_CHAIN
    verify_chain(issued_one.chain_pem, server.root_pem, tmp_path, issued_one.names)


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_chisel_several_names(server, key_type, tmp_path):
    names = [chisel2.random_name(f"multi{i}") for i in range(3)]
    key, _ = chisel2.make_account_key(key_type)
    client = chisel2.make_client(server.directory, key=key, ca_bundle=server.tls_ca)
    issued = chisel2.auth_and_issue(names, client=client, cert_key_type=key_type)
    verify_chain(issued.chain_pem, server.root_pem, tmp_path, names)


def test_chisel_script(server, ca_env, tmp_path):
    """`python chisel2.py foo bar` with DIRECTORY and REQUESTS_CA_BUNDLE."""
    names = [chisel2.random_name("script-a"), chisel2.random_name("script-b")]
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, str(HERE / "chisel2.py"), *names, "--out-dir", str(out)],
                         env=ca_env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"chisel2.py failed:\n{res.stdout}\n{res.stderr}"
    chain = Path(res.stdout.strip().splitlines()[-1])
    assert chain == out / f"{names[0]}.chain.pem"
    assert (out / f"{names[0]}.key.pem").is_file()
    verify_chain(chain.read_text(), server.root_pem, tmp_path / "check", names)


@pytest.mark.acme_ca_only("pebble's leaves have no policy/AIA")
def test_leaf_extensions(issued_one):
    """The extensions the server promises, as openssl shows them and as parsed."""
    res = openssl("x509", "-noout", "-text", input_=issued_one.pems[0].encode())
    assert res.returncode == 0, res.stderr
    text = res.stdout.decode()
    assert re.search(r"X509v3 Basic Constraints:( critical)?\s+CA:FALSE", text), text
    assert re.search(r"X509v3 Extended Key Usage:.*\n\s+.*TLS Web Server Authentication", text), text
    assert "TLS Web Client Authentication" in text, text
    assert re.search(r"X509v3 Certificate Policies:.*\n\s+Policy: (2\.23\.140\.1\.2\.1|domain-validated)",
                     text), text
    assert re.search(r"Authority Information Access:.*\n(\s+.*\n)*?\s+CA Issuers - URI:\S+", text), text

    leaf = issued_one.leaf
    bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.value.ca is False
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    policies = leaf.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert DV_POLICY in [p.policy_identifier.dotted_string for p in policies]
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    issuers = [d.access_location.value for d in aia
               if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS]
    assert issuers and all(u.startswith(("http://", "https://")) for u in issuers), issuers


def test_wildcard_order_offers_only_dns_challenges(server, client, tmp_path):
    base = chisel2.random_name("wild")
    pending = chisel2.new_order(client, [f"*.{base}"])
    authzs = [chisel2.get_authz(client, u) for u in pending.orderr.body.authorizations]
    assert len(authzs) == 1
    authz = authzs[0]
    assert authz.identifier.value == base, "wildcard authz identifier keeps the '*.'"
    assert authz.wildcard is True
    # RFC 8555 §7.1.3: DNS-based types only; acme-ca's serve also offers
    # dns-account-01 by default (dns-persist-01 is off).
    types = [chisel2.challenge_type(c) for c in authz.challenges]
    expected = ["dns-01", "dns-account-01"] if SUBJECT == "acme-ca" else ["dns-01"]
    assert types == expected, types
    # and it can be completed with dns-01
    chisel2.answer_challenges(client, pending.orderr.body.authorizations, "dns-01")
    chisel2.poll_authorizations(client, pending.orderr.body.authorizations)
    issued = chisel2.finalize_and_download(client, pending)
    verify_chain(issued.chain_pem, server.root_pem, tmp_path, [f"*.{base}"])


def test_non_wildcard_offers_all_challenge_types(client):
    pending = chisel2.new_order(client, [chisel2.random_name("types")])
    authz = chisel2.get_authz(client, pending.orderr.body.authorizations[0])
    assert authz.status.name == "pending"
    expected = {"http-01", "dns-01", "tls-alpn-01"}
    if SUBJECT == "acme-ca":
        expected.add("dns-account-01")
    assert {chisel2.challenge_type(c) for c in authz.challenges} == expected


# --------------------------------------------------------------------------
# protocol-level checks
# --------------------------------------------------------------------------

def test_new_account_twice_same_key(raw):
    key, first = raw.new_account()
    assert first.status_code == 201, problem_text(first)
    assert first.json()["status"] == "valid"
    _, second = raw.new_account(key)
    assert second.status_code == 200, problem_text(second)
    assert second.headers["Location"] == first.headers["Location"]
    # also through the acme library's onlyReturnExisting lookup
    _, third = raw.new_account(key, onlyReturnExisting=True)
    assert third.status_code == 200, problem_text(third)
    assert third.headers["Location"] == first.headers["Location"]


def test_only_return_existing_unknown_key(raw):
    key, _ = chisel2.make_account_key("ec")
    resp = raw.post(raw.dir["newAccount"], {"onlyReturnExisting": True}, key)
    assert_problem(resp, "accountDoesNotExist", 400)


@pytest.mark.parametrize("contact,typ", [
    ("mailto:no-at-sign", "invalidContact"),
    ("mailto:", "invalidContact"),
    ("tel:+15555550100", "unsupportedContact"),
])
def test_bad_contact(raw, contact, typ):
    _, resp = raw.new_account(contact=[contact])
    assert_problem(resp, typ, 400)


@pytest.mark.acme_ca_only("pebble answers malformed, and takes foo..com")
@pytest.mark.parametrize("name", ["*.*.example.com", "foo..com"])
def test_rejected_identifier(raw, name):
    acct = raw.account()
    resp = acct.new_order([name])
    assert_problem(resp, "rejectedIdentifier", 400)


def test_finalize_pending_order(raw):
    acct = raw.account()
    name = chisel2.random_name("pending")
    resp = acct.new_order([name])
    assert resp.status_code == 201, problem_text(resp)
    order = resp.json()
    assert order["status"] == "pending"
    csr_pem, _ = chisel2.make_csr_pem([name])
    resp = acct.post(order["finalize"], {"csr": csr_b64url(csr_pem)})
    assert_problem(resp, "orderNotReady", 403)


@pytest.mark.acme_ca_only("pebble answers unauthorized")
def test_finalize_csr_for_other_names(raw):
    acct = raw.account()
    order = make_ready_order(raw, acct, [chisel2.random_name("csr")])
    csr_pem, _ = chisel2.make_csr_pem([chisel2.random_name("other")])
    resp = acct.post(order["finalize"], {"csr": csr_b64url(csr_pem)})
    assert_problem(resp, "badCSR", 400)


def test_reused_nonce(raw):
    acct = raw.account()
    nonce = raw.new_nonce()
    first = acct.get(acct.url, nonce=nonce)
    assert first.status_code == 200, problem_text(first)
    again = acct.get(acct.url, nonce=nonce)
    assert_problem(again, "badNonce", 400)
    fresh = again.headers.get("Replay-Nonce")
    assert fresh and fresh != nonce, again.headers
    # the fresh nonce works
    ok = acct.get(acct.url, nonce=fresh)
    assert ok.status_code == 200, problem_text(ok)


def new_nonce_responses(raw):
    url = raw.dir["newNonce"]
    head, get = raw.head(url), raw.get(url)
    assert head.status_code == 200
    assert get.status_code == 204
    for resp in (head, get):
        assert resp.headers.get("Replay-Nonce"), resp.headers
    assert head.headers["Replay-Nonce"] != get.headers["Replay-Nonce"]
    return head, get


def test_new_nonce(raw):
    new_nonce_responses(raw)


@pytest.mark.acme_ca_only("pebble sends no-cache")
def test_new_nonce_no_store(raw):
    for resp in new_nonce_responses(raw):
        assert "no-store" in resp.headers.get("Cache-Control", ""), resp.headers


def test_directory(server, raw):
    for key in ("newNonce", "newAccount", "newOrder", "revokeCert", "keyChange"):
        assert raw.dir.get(key, "").startswith("https://"), raw.dir


def test_every_post_response_has_nonce_and_index_link(server, raw):
    """A whole issuance by hand, plus errors; check the headers on every POST."""
    acct = raw.account()
    assert acct.get(acct.url).status_code == 200
    name = chisel2.random_name("headers")
    order = make_ready_order(raw, acct, [name])
    csr_pem, _ = chisel2.make_csr_pem([name])
    resp = acct.post(order["finalize"], {"csr": csr_b64url(csr_pem)})
    assert resp.status_code == 200, problem_text(resp)
    done = poll_raw(acct, order["url"], ("valid", "invalid"))
    assert done["status"] == "valid", done
    cert = acct.get(done["certificate"], accept=PEM_CHAIN)
    assert cert.status_code == 200, problem_text(cert)
    assert cert.headers["Content-Type"].split(";")[0].strip() == PEM_CHAIN
    # errors
    nonce = raw.new_nonce()
    acct.get(acct.url, nonce=nonce)
    assert acct.get(acct.url, nonce=nonce).status_code == 400               # badNonce
    assert acct.new_order(["*.*.example.com"]).status_code == 400           # rejectedIdentifier
    assert acct.post(order["finalize"], {"csr": csr_b64url(csr_pem)}).status_code == 403  # not ready
    unknown, _ = chisel2.make_account_key("ec")
    raw.post(raw.dir["newAccount"], {"onlyReturnExisting": True}, unknown)  # accountDoesNotExist

    assert len(raw.responses) >= 10
    for resp in raw.responses:
        what = f"{resp.request.method} {resp.url} -> {resp.status_code}"
        assert resp.headers.get("Replay-Nonce"), f"{what}: no Replay-Nonce"
        assert resp.links.get("index", {}).get("url") == server.directory, \
            f"{what}: Link {resp.headers.get('Link')!r} lacks <{server.directory}>;rel=\"index\""


def test_orders_list(raw):
    acct = raw.account()
    urls = []
    for i in range(2):
        resp = acct.new_order([chisel2.random_name(f"list{i}")])
        assert resp.status_code == 201, problem_text(resp)
        urls.append(resp.headers["Location"])
    account = acct.get(acct.url).json()
    assert "orders" in account, account
    listed, page = [], account["orders"]
    for _ in range(100):
        resp = acct.get(page)
        assert resp.status_code == 200, problem_text(resp)
        listed += resp.json()["orders"]
        page = resp.links.get("next", {}).get("url")
        if not page:
            break
    assert set(urls) <= set(listed), (urls, listed)


def test_listener_certificate(server):
    """The HTTPS listener verifies strictly (Python 3.13's default) for
    localhost, 127.0.0.1 and ::1."""
    ctx = ssl.create_default_context(cafile=server.tls_ca)
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    for host in ("localhost", "127.0.0.1", "::1"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            with ctx.wrap_socket(sock, server_hostname=host) as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")


def csr_b64url(csr_pem: bytes) -> str:
    der = x509.load_pem_x509_csr(csr_pem).public_bytes(serialization.Encoding.DER)
    return jose.encode_b64jose(der)


def test_revoke_by_account_then_already_revoked(server, client):
    issued = chisel2.auth_and_issue([chisel2.random_name("revoke")], client=client)
    client.revoke(issued.leaf, 4)
    with pytest.raises(messages.Error) as err:
        client.revoke(issued.leaf, 1)
    assert err.value.typ == ERR + "alreadyRevoked"


def test_revoke_by_certificate_key(server, client):
    issued = chisel2.auth_and_issue([chisel2.random_name("bykey")], client=client)
    key = serialization.load_pem_private_key(issued.key_pem, password=None)
    by_key = chisel2.uninitialized_client(server.directory, jose.JWKEC(key=key), server.tls_ca)
    by_key.revoke(issued.leaf, 1)


def test_revoke_unassigned_reason(server, client):
    issued = chisel2.auth_and_issue([chisel2.random_name("reason")], client=client)
    with pytest.raises(messages.Error) as err:
        client.revoke(issued.leaf, 7)
    assert err.value.typ == ERR + "badRevocationReason"


def test_deactivate_authorization(server, client):
    pending = chisel2.new_order(client, [chisel2.random_name("deact")])
    uri = pending.orderr.body.authorizations[0]
    authzr = messages.AuthorizationResource(body=chisel2.get_authz(client, uri), uri=uri)
    deactivated = client.deactivate_authorization(authzr)
    assert deactivated.body.status == messages.STATUS_DEACTIVATED
    assert chisel2.get_order(client, pending.uri).status == messages.STATUS_INVALID
