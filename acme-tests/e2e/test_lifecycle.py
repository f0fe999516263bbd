"""A certificate's life after issuance, against the shared server.

Covers profiles (classic / shortlived) and what they put in a certificate,
Must-Staple, pre-authorization (newAuthz) and authorization reuse, ACME
Renewal Information (RFC 9773) with `replaces`, account key rollover and
deactivation, and revocation by certbot as seen from the outside: OCSP
answers (openssl ocsp) and the CRL (openssl crl) served by the server's
plain-HTTP status listener.

Clients: certbot for revocation, the `acme` library (through chisel2) for
everything else; rawacme (signing with the same account key) for newOrder
with `replaces`, which the library cannot send and whose 409 it reduces to a
bare ConflictError, and for status codes the library turns into exceptions.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import josepy as jose
import pytest
import requests
from acme import client as acme_client
from acme import errors, jws, messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

import chisel2
from certcheck import openssl, verify_chain
from rawacme import Account, RawAcme, problem_text, problem_type
from test_certbot import certbot_bin, run_certbot

pytestmark = pytest.mark.acme_ca_only(
    "status listener (OCSP/CRL), profiles, ARI and newAuthz as acme-ca implements them")

ERR = "urn:ietf:params:acme:error:"
HOUR = 3600
DAY = 86400
UTC = datetime.timezone.utc


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client(server):
    """One registered account (ES256) shared by the module's library flows."""
    return chisel2.make_client(server.directory, ca_bundle=server.tls_ca)


@pytest.fixture
def raw(server):
    return RawAcme(server.directory, server.tls_ca)


@pytest.fixture
def status(server) -> str:
    """Base URL of the plain-HTTP status listener (OCSP, CRL, issuer)."""
    url = getattr(server, "status_url", "")
    assert url.startswith("http://"), f"server printed no 'acme-ca: status URL' line: {url!r}"
    return url.rstrip("/")


# --------------------------------------------------------------------------
# ordering through the acme library
# --------------------------------------------------------------------------

class Payload(jose.JSONDeSerializable):
    """Any JSON object as a request body for ClientV2._post (which signs with
    the account's kid), for newAuthz, which the library has no method for."""

    def __init__(self, obj: Any):
        self.obj = obj

    def to_partial_json(self) -> Any:
        return self.obj

    @classmethod
    def from_json(cls, jobj: Any) -> "Payload":  # pragma: no cover - never received
        return cls(jobj)


def acme_post(client: acme_client.ClientV2, url: str, obj: Any) -> requests.Response:
    """POST `obj` signed by the client's account; messages.Error on a problem."""
    return client._post(url, Payload(obj))  # pylint: disable=protected-access


def dns_ids(names: list[str]) -> list[dict]:
    return [{"type": "dns", "value": n} for n in names]


def place_order(client: acme_client.ClientV2, names: list[str], profile: Optional[str] = None,
                csr_pem: Optional[bytes] = None,
                key_pem: Optional[bytes] = None) -> chisel2.PendingOrder:
    """newOrder for `names` through the library's ClientV2.new_order (which
    takes `profile`). The order JSON as the server sent it is in
    `.extra["json"]`."""
    if csr_pem is None:
        csr_pem, key_pem = chisel2.make_csr_pem(names, key_pem)
    orderr = client.new_order(csr_pem, profile=profile)
    assert orderr.uri, "newOrder answered without Location"
    body = chisel2.post_as_get(client, orderr.uri).json()
    return chisel2.PendingOrder(list(names), orderr, csr_pem, key_pem or b"", {"json": body})


def same_account(raw: RawAcme, client: acme_client.ClientV2) -> Account:
    """The client's account (same key, same kid) for hand-made requests."""
    return Account(raw, client.net.key, chisel2.account_uri(client))


def replacing_order_response(raw: RawAcme, client: acme_client.ClientV2, names: list[str],
                             replaces: str) -> requests.Response:
    """newOrder with `replaces`, which ClientV2.new_order cannot send. Sent
    by hand because the library turns a 409 into a bare ConflictError
    without the problem document."""
    return same_account(raw, client).post(
        raw.dir["newOrder"], {"identifiers": dns_ids(names), "replaces": replaces})


def place_replacing_order(raw: RawAcme, client: acme_client.ClientV2, names: list[str],
                          replaces: str) -> chisel2.PendingOrder:
    """A 201 replacing order, ready to be completed with the library."""
    resp = replacing_order_response(raw, client, names, replaces)
    assert resp.status_code == 201, f"newOrder replacing {replaces}: {problem_text(resp)}"
    body = resp.json()
    csr_pem, key_pem = chisel2.make_csr_pem(names)
    orderr = messages.OrderResource(body=messages.Order.from_json(body),
                                    uri=resp.headers["Location"], csr_pem=csr_pem)
    return chisel2.PendingOrder(list(names), orderr, csr_pem, key_pem, {"json": body})


def complete(client: acme_client.ClientV2, pending: chisel2.PendingOrder) -> chisel2.Issued:
    """Answer http-01 everywhere needed, wait, finalize, download."""
    authzs = pending.orderr.body.authorizations
    chisel2.answer_challenges(client, authzs, "http-01")
    chisel2.poll_authorizations(client, authzs)
    chisel2.poll_order(client, pending.uri, ("ready", "valid", "invalid"))
    return chisel2.finalize_and_download(client, pending)


def issue(client: acme_client.ClientV2, prefix: str, **kw: Any) -> chisel2.Issued:
    """A certificate for one fresh name (keywords as for place_order)."""
    return complete(client, place_order(client, [chisel2.random_name(prefix)], **kw))


def must_staple_csr(names: list[str]) -> tuple[bytes, bytes]:
    """(csr_pem, key_pem): a CSR with the TLS Feature extension
    (status_request, i.e. OCSP Must-Staple) besides the SANs."""
    key_pem = chisel2.make_cert_key_pem("ec")
    key = serialization.load_pem_private_key(key_pem, password=None)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                          critical=False)
           .add_extension(x509.TLSFeature([x509.TLSFeatureType.status_request]), critical=False)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM), key_pem


def assert_acme_error(exc: BaseException, typ: str) -> None:
    assert isinstance(exc, messages.Error), repr(exc)
    assert exc.typ == ERR + typ, f"expected {typ}, got {exc.typ}: {exc.detail}"


# --------------------------------------------------------------------------
# certificate inspection
# --------------------------------------------------------------------------

def x509_text(pem: str) -> str:
    res = openssl("x509", "-noout", "-text", input_=pem.encode())
    assert res.returncode == 0, res.stderr.decode()
    return res.stdout.decode()


def openssl_serial(pem_path: Path) -> str:
    """The serial as `openssl x509 -serial` prints it (upper-case hex)."""
    res = openssl("x509", "-noout", "-serial", "-in", str(pem_path))
    assert res.returncode == 0, res.stderr.decode()
    out = res.stdout.decode().strip()
    assert out.startswith("serial="), out
    return out[len("serial="):]


def lifetime(cert: x509.Certificate) -> int:
    """notAfter - notBefore in seconds."""
    return int((cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds())


def aia_urls(cert: x509.Certificate, method) -> list[str]:
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return []
    return [d.access_location.value for d in aia if d.access_method == method]


def has_ext(cert: x509.Certificate, cls) -> bool:
    try:
        cert.extensions.get_extension_for_class(cls)
        return True
    except x509.ExtensionNotFound:
        return False


# --------------------------------------------------------------------------
# revocation status from the status listener
# --------------------------------------------------------------------------

def ocsp_openssl(url: str, cert_path: Path, issuer_path: Path, root_pem: str) -> str:
    """`openssl ocsp ... -resp_text`; returns stdout+stderr (openssl prints
    'Response verify OK' on stderr) after checking it exited 0."""
    res = subprocess.run(["openssl", "ocsp", "-issuer", str(issuer_path), "-cert", str(cert_path),
                          "-url", url, "-CAfile", root_pem, "-resp_text", "-timeout", "20"],
                         capture_output=True, text=True, timeout=30)
    out = res.stdout + res.stderr
    assert res.returncode == 0, f"openssl ocsp exited {res.returncode}:\n{out}"
    assert "Response verify OK" in out, out
    return out


def ocsp_cert_status(out: str, cert_path: Path) -> str:
    """'good' / 'revoked' / 'unknown' from openssl ocsp's per-certificate line."""
    m = re.search(rf"^{re.escape(str(cert_path))}: (\w+)$", out, re.M)
    assert m, f"no status line for {cert_path} in:\n{out}"
    return m.group(1)


@dataclass
class Crl:
    number: int
    entries: dict[str, str]  # serial (upper-case hex, as openssl prints it) -> reason text
    text: str


def fetch_crl(status: str, issuer_path: Path, workdir: Path) -> Crl:
    """GET the intermediate's CRL, check its content type, signature
    (openssl crl -CAfile <intermediate>) and issuing distribution point, and
    list its entries from openssl's text form."""
    resp = requests.get(f"{status}/crl/intermediate.crl", timeout=30)
    assert resp.status_code == 200, f"HTTP {resp.status_code}: {resp.text[:500]}"
    assert resp.headers.get("Content-Type", "").split(";")[0].strip() == "application/pkix-crl", \
        resp.headers
    workdir.mkdir(parents=True, exist_ok=True)
    der = workdir / "intermediate.crl"
    der.write_bytes(resp.content)
    ver = openssl("crl", "-inform", "DER", "-in", str(der), "-CAfile", str(issuer_path), "-noout")
    ver_out = (ver.stdout + ver.stderr).decode()
    assert ver.returncode == 0 and "verify OK" in ver_out, f"CRL signature:\n{ver_out}"
    res = openssl("crl", "-inform", "DER", "-in", str(der), "-text", "-noout")
    assert res.returncode == 0, res.stderr.decode()
    text = res.stdout.decode()
    num = re.search(r"X509v3 CRL Number:\s*\n\s*(\d+)", text)
    assert num, f"CRL without a CRL number:\n{text}"
    # Its scope must name the URL the certificates point at (RFC 5280 6.3.3).
    assert re.search(r"Issuing Distribution Point: critical\s*\n\s+Full Name:\s*\n\s+"
                     rf"URI:{re.escape(status)}/crl/intermediate\.crl\b", text), text
    entries = {}
    for m in re.finditer(r"Serial Number: ([0-9A-F]+)\n\s+Revocation Date:[^\n]*\n"
                         r"(?:\s+CRL entry extensions:\n\s+X509v3 CRL Reason Code:\s*\n\s+([^\n]+)\n)?",
                         text):
        entries[m.group(1)] = (m.group(2) or "").strip()
    return Crl(int(num.group(1)), entries, text)


def ocsp_request_der(cert: x509.Certificate, issuer: x509.Certificate) -> bytes:
    req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    return req.public_bytes(serialization.Encoding.DER)


def ocsp_via_get(status: str, cert: x509.Certificate, issuer: x509.Certificate
                 ) -> ocsp.OCSPResponse:
    """The RFC 6960 appendix A GET form: base64 of the DER request in the
    path, percent-encoded as the RFC says and also as many clients send it
    (raw, '/' and '+' included); both must give the same status."""
    b64 = base64.b64encode(ocsp_request_der(cert, issuer)).decode()
    answers = []
    for path in (requests.utils.quote(b64, safe=""), b64):
        resp = requests.get(f"{status}/ocsp/{path}", timeout=30)
        assert resp.status_code == 200, f"GET /ocsp/{path}: HTTP {resp.status_code}: {resp.text[:500]}"
        assert resp.headers.get("Content-Type", "").startswith("application/ocsp-response"), \
            resp.headers
        parsed = ocsp.load_der_ocsp_response(resp.content)
        assert parsed.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        assert parsed.serial_number == cert.serial_number
        answers.append(parsed)
    assert answers[0].certificate_status == answers[1].certificate_status
    return answers[0]


# --------------------------------------------------------------------------
# ARI
# --------------------------------------------------------------------------

def cert_id(cert: x509.Certificate) -> str:
    """RFC 9773 certificate identifier: base64url(AKI keyIdentifier) "."
    base64url(DER INTEGER content of the serial), without padding."""
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    serial = cert.serial_number
    # One byte more than the magnitude needs when its top bit is set.
    serial_bytes = serial.to_bytes(serial.bit_length() // 8 + 1, "big")
    return f"{jose.encode_b64jose(aki.key_identifier)}.{jose.encode_b64jose(serial_bytes)}"


def renewal_info(client: acme_client.ClientV2, ident: str) -> requests.Response:
    """Unauthenticated GET <renewalInfo>/<certID> (what clients do)."""
    return requests.get(f"{client.directory['renewalInfo']}/{ident}",
                        verify=client.net.verify_ssl, timeout=30)


def parse_time(s: str) -> datetime.datetime:
    t = datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
    assert t.tzinfo is not None, s
    return t


def window_of(resp: requests.Response) -> tuple[datetime.datetime, datetime.datetime]:
    """(start, end) of a 200 renewalInfo answer, after checking its form."""
    assert resp.status_code == 200, problem_text(resp)
    assert resp.headers.get("Content-Type", "").split(";")[0].strip() == "application/json", \
        resp.headers
    retry = resp.headers.get("Retry-After")
    assert retry is not None and retry.isdigit() and int(retry) > 0, \
        f"Retry-After {retry!r} is not a positive number of seconds"
    window = resp.json()["suggestedWindow"]
    start, end = parse_time(window["start"]), parse_time(window["end"])
    assert start < end, window
    return start, end


def assert_two_thirds_window(cert: x509.Certificate, resp: requests.Response) -> None:
    """The window opens two thirds into the certificate's lifetime (within a
    second: notAfter is inclusive) and closes before notAfter."""
    start, end = window_of(resp)
    nb, na = cert.not_valid_before_utc, cert.not_valid_after_utc
    expected = nb + (na - nb) * 2 / 3
    assert abs((start - expected).total_seconds()) <= 1, \
        f"window start {start} is not 2/3 into {nb} .. {na} (expected ~{expected})"
    assert end <= na, f"window end {end} after notAfter {na}"


# --------------------------------------------------------------------------
# certbot
# --------------------------------------------------------------------------

def certbot(ca_env, base: Path, server, *args: str) -> subprocess.CompletedProcess:
    """certbot with its config/work/logs under `base`, against the server."""
    cmd = [certbot_bin(), *args, "--server", server.directory, "--non-interactive",
           "--config-dir", str(base / "config"), "--work-dir", str(base / "work"),
           "--logs-dir", str(base / "logs"), "-v"]
    return subprocess.run(cmd, env=ca_env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=120)


def certbot_output(base: Path, res: subprocess.CompletedProcess) -> str:
    log = base / "logs" / "letsencrypt.log"
    tail = "\n".join(log.read_text().splitlines()[-60:]) if log.is_file() else "(no log)"
    return (f"certbot exited {res.returncode}\n--- stdout ---\n{res.stdout}\n--- stderr ---\n"
            f"{res.stderr}\n--- letsencrypt.log tail ---\n{tail}")


def certbot_cert(server, ca_env, tmp_path: Path) -> tuple[Path, Path, Path, str]:
    """certbot certonly for a fresh name; (certbot base dir, cert.pem,
    chain.pem, OCSP URL from the certificate)."""
    live = run_certbot(server, ca_env, tmp_path, [chisel2.random_name("lifecycle")])
    cert_path, chain_path = live / "cert.pem", live / "chain.pem"
    res = openssl("x509", "-noout", "-ocsp_uri", "-in", str(cert_path))
    ocsp_url = res.stdout.decode().strip()
    return tmp_path / "certbot", cert_path, chain_path, ocsp_url


# ==========================================================================
# revocation by certbot, seen through OCSP and the CRL
# ==========================================================================

def test_certbot_revoke_with_account_key(server, ca_env, status, tmp_path):
    """certbot revokes with its account key (keyCompromise); OCSP goes from
    good to revoked with that reason, and a fresh CRL with a higher number
    lists the serial."""
    base, cert_path, chain_path, ocsp_url = certbot_cert(server, ca_env, tmp_path)
    assert ocsp_url == f"{status}/ocsp"
    serial = openssl_serial(cert_path)

    before = ocsp_openssl(ocsp_url, cert_path, chain_path, server.root_pem)
    assert ocsp_cert_status(before, cert_path) == "good", before
    crl_before = fetch_crl(status, chain_path, tmp_path / "crl-before")
    assert serial not in crl_before.entries

    res = certbot(ca_env, base, server, "revoke", "--cert-path", str(cert_path),
                  "--reason", "keycompromise", "--no-delete-after-revoke")
    assert res.returncode == 0, certbot_output(base, res)

    after = ocsp_openssl(ocsp_url, cert_path, chain_path, server.root_pem)
    assert ocsp_cert_status(after, cert_path) == "revoked", after
    assert re.search(r"^\s*Reason: keyCompromise$", after, re.M), after

    crl = fetch_crl(status, chain_path, tmp_path / "crl-after")
    assert crl.number > crl_before.number, (crl_before.number, crl.number)
    assert serial in crl.entries, f"serial {serial} not in the CRL:\n{crl.text}"
    assert crl.entries[serial] == "Key Compromise", crl.text


def test_certbot_revoke_with_certificate_key(server, ca_env, status, tmp_path):
    """certbot, with no account of its own, revokes by signing with the
    certificate's key (superseded); OCSP (POST by openssl, GET by hand) and
    the CRL agree; revoking again fails with alreadyRevoked."""
    _, cert_path, chain_path, ocsp_url = certbot_cert(server, ca_env, tmp_path)
    key_path = cert_path.parent / "privkey.pem"
    serial = openssl_serial(cert_path)
    other = tmp_path / "no-account"  # no accounts/ under this config dir

    res = certbot(ca_env, other, server, "revoke", "--cert-path", str(cert_path),
                  "--key-path", str(key_path), "--reason", "superseded",
                  "--no-delete-after-revoke")
    assert res.returncode == 0, certbot_output(other, res)
    assert not (other / "config" / "accounts").exists(), \
        "certbot made an account instead of signing with the certificate key"

    out = ocsp_openssl(ocsp_url, cert_path, chain_path, server.root_pem)
    assert ocsp_cert_status(out, cert_path) == "revoked", out
    assert re.search(r"^\s*Reason: superseded$", out, re.M), out

    leaf = x509.load_pem_x509_certificate(cert_path.read_bytes())
    issuer = x509.load_pem_x509_certificate(chain_path.read_bytes())
    got = ocsp_via_get(status, leaf, issuer)
    assert got.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert got.revocation_reason == x509.ReasonFlags.superseded

    crl = fetch_crl(status, chain_path, tmp_path / "crl")
    assert crl.entries.get(serial) == "Superseded", f"serial {serial}:\n{crl.text}"

    again = certbot(ca_env, other, server, "revoke", "--cert-path", str(cert_path),
                    "--key-path", str(key_path), "--reason", "superseded",
                    "--no-delete-after-revoke")
    assert again.returncode != 0, certbot_output(other, again)
    # certbot's stderr shows only the problem's detail; its log of this run
    # (letsencrypt.log; the earlier ones are rotated to .1, .2) has the type.
    log = (other / "logs" / "letsencrypt.log").read_text()
    assert ERR + "alreadyRevoked" in log, certbot_output(other, again)


# ==========================================================================
# profiles
# ==========================================================================

def test_directory_lists_profiles(client):
    """meta.profiles names classic and shortlived (as the acme library parses
    it); EAB is not required; newAuthz and renewalInfo are advertised."""
    meta = client.directory.meta
    assert set(meta.profiles) == {"classic", "shortlived"}, meta.profiles
    assert all(isinstance(v, str) and v for v in meta.profiles.values()), meta.profiles
    assert client.external_account_required() is False
    for key in ("newAuthz", "renewalInfo"):
        assert client.directory[key].startswith("https://"), client.directory.to_json()


def test_unknown_profile_is_invalid_profile(client):
    csr_pem, _ = chisel2.make_csr_pem([chisel2.random_name("noprofile")])
    with pytest.raises(messages.Error) as err:
        client.new_order(csr_pem, profile="no-such-profile")
    assert_acme_error(err.value, "invalidProfile")


def test_classic_profile_certificate(server, client, status, tmp_path):
    """An order without a profile is classic: 90 days, CN, serverAuth +
    clientAuth, OCSP and caIssuers under the status URL, the CRL distribution
    point, and no TLS Feature when the CSR asks for none. The caIssuers URL
    serves the intermediate of the chain."""
    pending = place_order(client, [chisel2.random_name("classic")])
    assert pending.extra["json"].get("profile") == "classic", pending.extra["json"]
    issued = complete(client, pending)
    leaf = verify_chain(issued.chain_pem, server.root_pem, tmp_path, issued.names)
    text = x509_text(issued.pems[0])

    assert lifetime(leaf) == 90 * DAY - 1, \
        f"notAfter is inclusive: expected 90 days - 1 s, got {lifetime(leaf)} s"
    assert re.search(rf"Subject: CN\s?=\s?{re.escape(issued.names[0])}\n", text), text
    assert f"OCSP - URI:{status}/ocsp\n" in text, text
    assert f"CA Issuers - URI:{status}/issuer/intermediate.der\n" in text, text
    assert re.search(r"X509v3 CRL Distribution Points:\s*\n\s+Full Name:\s*\n\s+"
                     rf"URI:{re.escape(status)}/crl/intermediate\.crl\n", text), text
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in text, text
    assert "TLS Feature" not in text, text

    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert aia_urls(leaf, AuthorityInformationAccessOID.OCSP) == [f"{status}/ocsp"]

    resp = requests.get(f"{status}/issuer/intermediate.der", timeout=30)
    assert resp.status_code == 200, resp.text[:500]
    inter = x509.load_pem_x509_certificate(issued.pems[1].encode())
    assert resp.content == inter.public_bytes(serialization.Encoding.DER)


def test_shortlived_profile_certificate(server, client, status, tmp_path):
    """The shortlived profile through ClientV2.new_order(profile=...): 160
    hours, empty subject with a critical SAN, serverAuth only, AIA with only
    caIssuers, no CRL distribution point."""
    pending = place_order(client, [chisel2.random_name("short")], profile="shortlived")
    assert pending.orderr.body.profile == "shortlived"
    assert pending.extra["json"].get("profile") == "shortlived", pending.extra["json"]
    issued = complete(client, pending)
    leaf = verify_chain(issued.chain_pem, server.root_pem, tmp_path, issued.names)
    text = x509_text(issued.pems[0])

    assert lifetime(leaf) == 160 * HOUR - 1, \
        f"expected 576000 - 1 s (inclusive notAfter), got {lifetime(leaf)} s"
    assert leaf.subject == x509.Name([]), leaf.subject.rfc4514_string()
    assert "CN" not in re.search(r"Subject:([^\n]*)\n", text).group(1), text
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical, "SAN must be critical when the subject is empty (RFC 5280 4.2.1.6)"
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert "TLS Web Client Authentication" not in text, text
    assert "OCSP - URI" not in text, text
    assert aia_urls(leaf, AuthorityInformationAccessOID.OCSP) == []
    assert aia_urls(leaf, AuthorityInformationAccessOID.CA_ISSUERS) == \
        [f"{status}/issuer/intermediate.der"]
    assert "CRL Distribution Points" not in text, text
    assert not has_ext(leaf, x509.CRLDistributionPoints)


# ==========================================================================
# Must-Staple
# ==========================================================================

def test_must_staple_copied_into_classic(server, client, tmp_path):
    names = [chisel2.random_name("staple")]
    csr_pem, key_pem = must_staple_csr(names)
    issued = complete(client, place_order(client, names, csr_pem=csr_pem, key_pem=key_pem))
    leaf = verify_chain(issued.chain_pem, server.root_pem, tmp_path, names)
    text = x509_text(issued.pems[0])
    assert re.search(r"TLS Feature:\s*\n\s+status_request\n", text), text
    feature = leaf.extensions.get_extension_for_class(x509.TLSFeature).value
    assert list(feature) == [x509.TLSFeatureType.status_request]


def test_must_staple_refused_for_shortlived(client):
    """A shortlived certificate has no OCSP URL, so Must-Staple cannot be
    honoured: finalize answers badCSR."""
    names = [chisel2.random_name("staple-short")]
    csr_pem, key_pem = must_staple_csr(names)
    pending = place_order(client, names, profile="shortlived", csr_pem=csr_pem, key_pem=key_pem)
    chisel2.answer_challenges(client, pending.orderr.body.authorizations)
    chisel2.poll_authorizations(client, pending.orderr.body.authorizations)
    order = chisel2.poll_order(client, pending.uri, ("ready", "invalid"))
    assert order.status.name == "ready", order
    with pytest.raises(messages.Error) as err:
        chisel2.begin_finalize(client, order, csr_pem)
    assert_acme_error(err.value, "badCSR")
    after = chisel2.get_order(client, pending.uri)
    assert after.certificate is None, after


# ==========================================================================
# pre-authorization (newAuthz) and reuse
# ==========================================================================

def test_new_authz_then_order_reuses_it(server, client, tmp_path):
    """newAuthz → 201 + Location, pending; valid after http-01; then
    newOrder by the same account for that name points at the same
    authorization and is ready at once. Another account gets its own."""
    name = chisel2.random_name("preauth")
    resp = acme_post(client, client.directory["newAuthz"],
                     {"identifier": {"type": "dns", "value": name}})
    assert resp.status_code == 201, problem_text(resp)
    authz_url = resp.headers.get("Location", "")
    assert authz_url.startswith("https://"), resp.headers
    authz = messages.Authorization.from_json(resp.json())
    assert authz.status == messages.STATUS_PENDING
    assert (authz.identifier.typ.name, authz.identifier.value) == ("dns", name)
    assert chisel2.challenge_type(chisel2.find_challenge(authz, "http-01")) == "http-01"
    assert chisel2.get_authz(client, authz_url).status == messages.STATUS_PENDING

    chisel2.answer_challenges(client, [authz_url])
    (valid,) = chisel2.poll_authorizations(client, [authz_url])
    assert valid.status == messages.STATUS_VALID

    pending = place_order(client, [name])
    assert list(pending.orderr.body.authorizations) == [authz_url]
    assert pending.extra["json"]["status"] == "ready", pending.extra["json"]
    issued = chisel2.finalize_and_download(client, pending)
    verify_chain(issued.chain_pem, server.root_pem, tmp_path, [name])

    stranger = chisel2.make_client(server.directory, ca_bundle=server.tls_ca)
    theirs = place_order(stranger, [name])
    assert authz_url not in theirs.orderr.body.authorizations
    assert theirs.extra["json"]["status"] == "pending", theirs.extra["json"]


def test_new_authz_wildcard_rejected(client):
    name = "*." + chisel2.random_name("preauth-wild")
    with pytest.raises(messages.Error) as err:
        acme_post(client, client.directory["newAuthz"],
                  {"identifier": {"type": "dns", "value": name}})
    assert_acme_error(err.value, "rejectedIdentifier")


# ==========================================================================
# ARI (RFC 9773) and replaces
# ==========================================================================

def test_renewal_info_window(client):
    """renewalInfo for a classic and a shortlived certificate: 200, JSON,
    Retry-After, window from 2/3 of the lifetime; the certID computed here
    is the one the acme library computes, and ClientV2.renewal_time picks a
    time inside the window."""
    for profile in (None, "shortlived"):
        issued = issue(client, "ari", profile=profile)
        ident = cert_id(issued.leaf)
        assert ident == acme_client._renewal_info_path_component(issued.leaf)  # pylint: disable=protected-access
        resp = renewal_info(client, ident)
        assert_two_thirds_window(issued.leaf, resp)
        start, end = window_of(resp)
        when, _ = client.renewal_time(issued.pems[0].encode())
        assert when is not None and start <= when <= end, (when, start, end)


def test_renewal_info_after_revocation(client):
    """Once revoked, the suggested window lies wholly in the past."""
    issued = issue(client, "ari-revoked")
    ident = cert_id(issued.leaf)
    start, _ = window_of(renewal_info(client, ident))
    assert start > datetime.datetime.now(UTC)
    client.revoke(issued.leaf, 1)
    start, end = window_of(renewal_info(client, ident))
    now = datetime.datetime.now(UTC)
    assert start < end < now, f"window {start} .. {end} is not in the past (now {now})"


def test_replaces_once(server, client, raw):
    """An order replacing a certificate echoes `replaces`; a second one for
    the same certificate is 409 alreadyReplaced, both while the first is
    still open and after it has issued. Another account, or an order
    without the certificate's name, cannot replace it."""
    old = issue(client, "replace")
    ident = cert_id(old.leaf)
    acct = same_account(raw, client)

    stranger = raw.account()
    resp = stranger.post(raw.dir["newOrder"], {"identifiers": dns_ids(old.names),
                                                "replaces": ident})
    assert problem_type(resp) == ERR + "unauthorized" and resp.status_code == 403, \
        problem_text(resp)
    resp = acct.post(raw.dir["newOrder"], {"identifiers": dns_ids([chisel2.random_name("x")]),
                                           "replaces": ident})
    assert problem_type(resp) == ERR + "malformed" and resp.status_code == 400, \
        problem_text(resp)

    first = place_replacing_order(raw, client, old.names, ident)
    assert first.extra["json"].get("replaces") == ident, first.extra["json"]
    assert chisel2.post_as_get(client, first.uri).json().get("replaces") == ident

    def second_attempt(when: str) -> None:
        r = replacing_order_response(raw, client, old.names, ident)
        assert r.status_code == 409, f"{when}: {problem_text(r)}"
        assert problem_type(r) == ERR + "alreadyReplaced", f"{when}: {problem_text(r)}"

    second_attempt("while the replacing order is open")
    new = complete(client, first)
    assert new.leaf.serial_number != old.leaf.serial_number
    second_attempt("after the replacing order issued")


def test_replaces_again_after_replacing_order_invalid(client, raw):
    """RFC 9773 §5 only bars a second replacement while the certificate is
    replaced by an order that is not invalid. Here the replacing order turns
    invalid because its (reused) authorization is deactivated; a client must
    then be able to try again with the same `replaces`."""
    old = issue(client, "replace-retry")
    ident = cert_id(old.leaf)
    first = place_replacing_order(raw, client, old.names, ident)
    uri = first.orderr.body.authorizations[0]
    authzr = messages.AuthorizationResource(body=chisel2.get_authz(client, uri), uri=uri)
    client.deactivate_authorization(authzr)
    assert chisel2.get_order(client, first.uri).status == messages.STATUS_INVALID

    retry = place_replacing_order(raw, client, old.names, ident)
    assert retry.extra["json"].get("replaces") == ident, retry.extra["json"]
    assert retry.uri != first.uri
    complete(client, retry)


def test_renewal_info_unknown_and_malformed(client):
    """A well-formed certID of no certificate here is 404; one that is not
    a certID is 400 malformed."""
    # RFC 9773's example identifier: well-formed, not issued by this CA.
    resp = renewal_info(client, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE")
    assert resp.status_code == 404, problem_text(resp)
    for bad in ("not-a-cert-id", "aYhba4dGQEHhs3uEe6CuLN4ByNQ.gA"):
        resp = renewal_info(client, bad)
        assert resp.status_code == 400, f"{bad}: {problem_text(resp)}"
        assert problem_type(resp) == ERR + "malformed", f"{bad}: {problem_text(resp)}"


# ==========================================================================
# account key rollover and deactivation
# ==========================================================================

def key_change_jws(new_key: jose.JWK, account_url: str, old_key: jose.JWK, url: str) -> jws.JWS:
    """The inner JWS of RFC 8555 §7.3.5: signed by the new key, with its jwk
    and the keyChange URL, no nonce; payload names the account and old key."""
    payload = {"account": account_url, "oldKey": old_key.public_key().to_partial_json()}
    return jws.JWS.sign(json.dumps(payload).encode(), key=new_key, alg=chisel2.alg_for(new_key),
                        nonce=None, url=url)


def roll_key(client: acme_client.ClientV2, new_key: jose.JWK) -> requests.Response:
    """keyChange signed (outer JWS) by the client's current key; on success
    the client signs with the new key from then on."""
    url = client.directory["keyChange"]
    inner = key_change_jws(new_key, chisel2.account_uri(client), client.net.key, url)
    resp = client._post(url, inner)  # pylint: disable=protected-access
    client.net.key, client.net.alg = new_key, chisel2.alg_for(new_key)
    return resp


@pytest.mark.parametrize("new_type", ["ec", "rsa"])
def test_key_change(server, tmp_path, new_type):
    """After keyChange the new key finds the account and can issue; the old
    key finds nothing and its signatures on the account's URLs fail."""
    client = chisel2.make_client(server.directory, ca_bundle=server.tls_ca)
    url, old_key = chisel2.account_uri(client), client.net.key
    new_key, _ = chisel2.make_account_key(new_type)

    resp = roll_key(client, new_key)
    assert resp.status_code == 200, problem_text(resp)
    assert resp.headers.get("Location") == url
    assert jose.JWK.from_json(resp.json()["key"]) == new_key.public_key()

    assert chisel2.account_uri(chisel2.existing_client(server.directory, new_key,
                                                       server.tls_ca)) == url
    with pytest.raises(messages.Error) as err:
        chisel2.existing_client(server.directory, old_key, server.tls_ca)
    assert_acme_error(err.value, "accountDoesNotExist")

    stale = chisel2.uninitialized_client(server.directory, old_key, server.tls_ca)
    stale.net.account = client.net.account
    with pytest.raises(messages.Error) as err:
        chisel2.post_as_get(stale, url)
    # ES256 over a new EC key fails verification; over a new RSA key the
    # algorithm no longer fits.
    assert err.value.typ in (ERR + "malformed", ERR + "unauthorized",
                             ERR + "badSignatureAlgorithm"), err.value

    issued = issue(client, "rolled")
    verify_chain(issued.chain_pem, server.root_pem, tmp_path, issued.names)


def test_key_change_to_key_in_use(server):
    """Rolling over to a key another account already has is 409 with that
    account's URL in Location; a keyChange naming a wrong oldKey is refused."""
    client = chisel2.make_client(server.directory, ca_bundle=server.tls_ca)
    other = chisel2.make_client(server.directory, ca_bundle=server.tls_ca)
    url = client.directory["keyChange"]
    mine = chisel2.account_uri(client)

    with pytest.raises(errors.ConflictError) as err:
        client._post(url, key_change_jws(other.net.key, mine, client.net.key, url))  # pylint: disable=protected-access
    assert err.value.location == chisel2.account_uri(other)

    stranger_key, _ = chisel2.make_account_key("ec")
    fresh, _ = chisel2.make_account_key("ec")
    with pytest.raises(messages.Error) as err:
        client._post(url, key_change_jws(fresh, mine, stranger_key, url))  # pylint: disable=protected-access
    assert_acme_error(err.value, "unauthorized")
    # the account still has its key
    assert chisel2.account_uri(chisel2.existing_client(
        server.directory, client.net.key, server.tls_ca)) == mine


def test_account_deactivation(server):
    """A deactivated account cannot order, and its key's lookup is refused."""
    client = chisel2.make_client(server.directory, ca_bundle=server.tls_ca)
    regr = client.deactivate_registration(client.net.account)
    assert regr.body.status == "deactivated"
    with pytest.raises(messages.Error) as err:
        chisel2.new_order(client, [chisel2.random_name("deactivated")])
    assert_acme_error(err.value, "unauthorized")
    with pytest.raises(messages.Error) as err:
        chisel2.existing_client(server.directory, client.net.key, server.tls_ca)
    assert_acme_error(err.value, "unauthorized")
