"""The scenario list: what a drop-in replacement for Pebble and
pebble-challtestsrv has to do, each scenario a function of a Ctx.

Every scenario starts the subject's programs itself (ctx.start_pebble,
ctx.start_challtestsrv) with the config files of pebble-compat/config and the
environment it names; the runner stops them afterwards whatever happens.
ctx.check records a failure and goes on, ctx.require stops the scenario,
ctx.note records what the subject really did (URLs, headers, bodies) for the
report.
"""

from __future__ import annotations

import datetime
import email.utils
import ipaddress
import json
import os
import re
import secrets
import shlex
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import josepy as jose
import requests
from acme import crypto_util, jws as acme_jws, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID, NameOID

from .core import (CONFIG_DIR, COMPAT, CTS, DIRECTORY, MGMT, TLS_CA, VENV_BIN, Ctx,
                   Scenario, ScenarioFailed, ScenarioSkipped, b64url, debian_challtestsrv,
                   dns_query, one_line)

sys.path.insert(0, str(COMPAT.parent / "acme-tests" / "e2e"))
import chisel2  # noqa: E402  pylint: disable=wrong-import-position

CA = str(TLS_CA)
ALWAYS_VALID = {"PEBBLE_VA_ALWAYS_VALID": "1"}
EAB_CONFIG = "pebble-config-external-account-bindings.json"


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def rand_name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}.example.com"


def mac_keys() -> dict:
    cfg = json.loads((CONFIG_DIR / EAB_CONFIG).read_text())
    return cfg["pebble"]["externalAccountMACKeys"]


def config_of(name: str = "pebble-config.json") -> dict:
    return json.loads((CONFIG_DIR / name).read_text())["pebble"]


def get_dir() -> dict:
    r = requests.get(DIRECTORY, verify=CA, timeout=10)
    r.raise_for_status()
    return r.json()


def client(email: str | None = None):
    return chisel2.make_client(DIRECTORY, email=email, ca_bundle=CA)


def certs_of(pem_text: str) -> list[x509.Certificate]:
    return [x509.load_pem_x509_certificate(p.encode()) for p in chisel2.split_pem_chain(pem_text)]


def cn_of(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return attrs[0].value if attrs else ""


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except Exception:  # pylint: disable=broad-except
        return False


def sans(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return ([f"dns:{n}" for n in ext.get_values_for_type(x509.DNSName)]
            + [f"ip:{i}" for i in ext.get_values_for_type(x509.IPAddress)])


def links(resp: requests.Response) -> list[tuple[str, str]]:
    """(url, rel) of every Link header, however many there are."""
    raw = resp.headers.get("Link", "")
    return [(m.group(1), m.group(2))
            for m in re.finditer(r'<([^>]*)>\s*;\s*rel="?([^";,]+)"?', raw)]


def compact(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


def root_pem(ctx: Ctx, n: int = 0) -> str:
    r = ctx.mgmt_get(f"/roots/{n}")
    ctx.require(r.status_code == 200, f"GET /roots/{n} answers 200 (got {r.status_code})")
    return r.text


def openssl_verify(ctx: Ctx, name: str, chain_pem: str, root: str) -> tuple[bool, str]:
    """openssl verify of the chain's first certificate, the rest as untrusted
    intermediates, against `root`."""
    d = ctx.path(f"verify-{name}")
    pems = chisel2.split_pem_chain(chain_pem)
    (d / "root.pem").write_text(root)
    (d / "leaf.pem").write_text(pems[0] if pems else "")
    (d / "untrusted.pem").write_text("".join(pems[1:]))
    argv = ["openssl", "verify", "-CAfile", d / "root.pem"]
    if len(pems) > 1:
        argv += ["-untrusted", d / "untrusted.pem"]
    r = ctx.run(f"openssl-verify-{name}", argv + [d / "leaf.pem"], check=False, timeout=20)
    out = " ".join((r.stdout + r.stderr).split())
    return r.returncode == 0 and out.endswith("OK"), out


def pending_order(cl, names: list[str], csr_pem: bytes, key_pem: bytes, profile=None):
    orderr = cl.new_order(csr_pem, profile=profile) if profile else cl.new_order(csr_pem)
    return chisel2.PendingOrder(list(names), orderr, csr_pem, key_pem)


def complete(cl, pending, chall_type: str = "http-01"):
    """Answer (always-valid), poll, finalize, download."""
    authzs = pending.orderr.body.authorizations
    chisel2.answer_challenges(cl, authzs, chall_type)
    chisel2.poll_authorizations(cl, authzs)
    chisel2.poll_order(cl, pending.uri, ("ready", "valid", "invalid"))
    return chisel2.finalize_and_download(cl, pending)


def problem_of(exc: Exception) -> str:
    if isinstance(exc, messages.Error):
        return f"{exc.typ} ({one_line(exc.detail or '', 100)})"
    return f"{type(exc).__name__}: {one_line(str(exc), 100)}"


def certbot_argv(d: Path, names: list[str], extra: tuple = (), hook: str = "cts-http01",
                 challenge: str = "http") -> list:
    """certbot certonly --manual with pebble-compat/hooks/<hook> add|del as the
    auth and cleanup hooks, for `challenge` ("http" or "dns")."""
    hook = shlex.quote(str(COMPAT / "hooks" / hook))
    argv = [VENV_BIN / "certbot", "certonly", "--non-interactive", "--agree-tos",
            "-m", "certbot@example.com", "--server", DIRECTORY,
            "--config-dir", d / "config", "--work-dir", d / "work", "--logs-dir", d / "logs",
            "--manual", "--preferred-challenges", challenge,
            "--manual-auth-hook", f"{hook} add", "--manual-cleanup-hook", f"{hook} del",
            "--cert-name", "compat", *extra]
    for n in names:
        argv += ["-d", n]
    return argv


def need_certbot() -> None:
    if not (VENV_BIN / "certbot").exists():
        raise ScenarioSkipped(f"{VENV_BIN / 'certbot'} missing (run scripts/test to make the venv)")


# --------------------------------------------------------------------------
# scenarios
# --------------------------------------------------------------------------

def test_config(ctx: Ctx) -> None:
    """Pebble's own test setup: the server with pebble-config.json and
    `-dnsserver 127.0.0.1:8053`, the challenge server with `-defaultIPv4
    127.0.0.1`. The directory at https://localhost:14000/dir (served with
    the runner's TLS certificate) names newNonce, newAccount, newOrder,
    revokeCert and keyChange and has meta.termsOfService; newNonce answers
    HEAD with 200 and GET with 204, both with a Replay-Nonce; the challenge
    server's DNS answers A queries for any name with the default IPv4 and its
    http-01 server on :5002 serves what /add-http01 added until /del-http01;
    POST /set-default-ipv4 and -defaultIPv4 127.0.0.3 change the A answer.
    Then `-version` prints something and exits 0, and the server starts
    with `-strict`."""
    ctx.start_challtestsrv()
    ctx.start_pebble()
    r = requests.get(DIRECTORY, verify=CA, timeout=10)
    ctx.require(r.status_code == 200, f"GET /dir answers 200 (got {r.status_code})")
    ctx.check("json" in r.headers.get("Content-Type", ""),
              f"GET /dir is JSON (Content-Type {r.headers.get('Content-Type')!r})")
    d = r.json()
    ctx.note(f"GET /dir → {compact(d)}")
    for key in ("newNonce", "newAccount", "newOrder", "revokeCert", "keyChange"):
        ctx.check(isinstance(d.get(key), str) and d[key].startswith("https://localhost:14000/"),
                  f"directory {key} is an https://localhost:14000/ URL (got {d.get(key)!r})")
    meta = d.get("meta") or {}
    ctx.check(isinstance(meta.get("termsOfService"), str) and meta["termsOfService"],
              f"directory meta.termsOfService is set (meta {compact(meta)})")
    if "newNonce" in d:
        h = requests.head(d["newNonce"], verify=CA, timeout=10)
        g = requests.get(d["newNonce"], verify=CA, timeout=10)
        ctx.check(h.status_code == 200 and h.headers.get("Replay-Nonce"),
                  f"HEAD newNonce → 200 with Replay-Nonce (got {h.status_code})")
        ctx.check(g.status_code == 204 and g.headers.get("Replay-Nonce"),
                  f"GET newNonce → 204 with Replay-Nonce (got {g.status_code})")
        ctx.note(f"HEAD newNonce → {h.status_code}, headers {dict(h.headers)}")

    # the challenge server: mock DNS with the default IPv4, http-01 responses
    name = rand_name("dns-a")
    try:
        answers = dns_query(name, "A")
    except OSError as exc:
        answers = [f"error: {exc}"]
    ctx.check(answers == ["127.0.0.1"],
              f"challtestsrv DNS answers A {name} with 127.0.0.1 (got {answers})")
    token, content = secrets.token_urlsafe(16), secrets.token_urlsafe(24)
    ctx.cts_post("/add-http01", {"token": token, "content": content})
    url = f"http://127.0.0.1:5002/.well-known/acme-challenge/{token}"
    g = requests.get(url, timeout=5)
    ctx.check(g.status_code == 200 and g.text == content,
              f"challtestsrv :5002 serves the added http-01 content (got {g.status_code} "
              f"{g.text[:40]!r})")
    ctx.cts_post("/del-http01", {"token": token})
    ctx.cts_post("/set-default-ipv4", {"ip": "127.0.0.4"})
    answers = dns_query(rand_name("dns-a"), "A")
    ctx.check(answers == ["127.0.0.4"],
              f"after /set-default-ipv4 127.0.0.4 DNS answers A with it (got {answers})")
    g = requests.get(url, timeout=5)
    ctx.note(f"GET :5002/.well-known/acme-challenge/<deleted or unknown token> → {g.status_code} "
             f"with {len(g.content)} bytes")
    ctx.check(g.text != content, f"after /del-http01 the content is no longer served "
              f"(got {g.status_code} {g.text[:40]!r})")
    ctx.stop_all()

    ctx.start_challtestsrv(("-defaultIPv4", "127.0.0.3"))
    answers = dns_query(rand_name("dns-a"), "A")
    ctx.check(answers == ["127.0.0.3"],
              f"with -defaultIPv4 127.0.0.3 DNS answers A with it (got {answers})")
    ctx.stop_all()

    r = ctx.run("pebble-version", [ctx.subject.pebble, "-version"], check=False, timeout=15)
    out = (r.stdout + r.stderr).strip()
    first = out.splitlines()[0] if out else ""
    ctx.note(f"`pebble -version` → exit {r.returncode}: {first!r}")
    ctx.check(r.returncode == 0 and out,
              f"-version exits 0 and prints a version (exit {r.returncode}: {first!r})")

    try:
        ctx.start_pebble(args=("-strict",))
        ctx.check(requests.get(DIRECTORY, verify=CA, timeout=10).status_code == 200,
                  "with -strict GET /dir answers 200")
    except ScenarioFailed as exc:
        ctx.check(False, f"starts with -strict: {exc}")


def eab_config(ctx: Ctx) -> None:
    """With pebble-config-external-account-bindings.json the directory says
    externalAccountRequired; newAccount without an externalAccountBinding is
    refused with urn:ietf:params:acme:error:externalAccountRequired, one with
    an unknown kid or a MAC made with another kid's key is refused, and one
    whose binding is signed with the configured key of kid-1 (48 bytes) or
    kid-3 (64 bytes) creates a valid account."""
    keys = mac_keys()
    ctx.start_pebble(EAB_CONFIG)
    d = get_dir()
    ctx.check((d.get("meta") or {}).get("externalAccountRequired") is True,
              f"meta.externalAccountRequired is true (meta {compact(d.get('meta'))})")

    def attempt(kid=None, hmac=None):
        cl = chisel2.uninitialized_client(DIRECTORY, ca_bundle=CA)
        eab = None
        if kid is not None:
            eab = messages.ExternalAccountBinding.from_data(
                account_public_key=cl.net.key.public_key(), kid=kid, hmac_key=hmac,
                directory=cl.directory)
        reg = messages.NewRegistration.from_data(email="eab@example.com",
                                                 terms_of_service_agreed=True,
                                                 external_account_binding=eab)
        return cl.new_account(reg)

    try:
        attempt()
        ctx.check(False, "newAccount without EAB is refused (it was accepted)")
    except messages.Error as exc:
        ctx.note(f"newAccount without EAB → {exc.typ}: {exc.detail!r}")
        ctx.check(exc.typ == "urn:ietf:params:acme:error:externalAccountRequired",
                  f"newAccount without EAB → externalAccountRequired (got {problem_of(exc)})")
    for label, kid, hmac in (("unknown kid", "kid-404", keys["kid-1"]),
                             ("kid-1 with kid-2's key", "kid-1", keys["kid-2"])):
        try:
            attempt(kid, hmac)
            ctx.check(False, f"newAccount with EAB {label} is refused (it was accepted)")
        except messages.Error as exc:
            ctx.note(f"newAccount with EAB {label} → {exc.typ}: {exc.detail!r}")
    for kid in ("kid-1", "kid-3"):
        try:
            regr = attempt(kid, keys[kid])
            ctx.check(str(regr.body.status) == "valid" and regr.uri,
                      f"newAccount with EAB {kid} creates a valid account")
            ctx.note(f"account with EAB {kid}: {regr.uri}")
        except messages.Error as exc:
            ctx.check(False, f"newAccount with EAB {kid} is accepted (got {problem_of(exc)})")


def certbot_http01(ctx: Ctx) -> None:
    """certbot (the venv's) gets a certificate with --manual and hooks that
    publish the http-01 answer through the challenge server's management API
    (/add-http01, /del-http01); the subject validates for real (no
    PEBBLE_VA_ALWAYS_VALID) by resolving the name through the challenge
    server's DNS (-dnsserver 127.0.0.1:8053 → 127.0.0.1) and fetching
    http://<name>:5002/.well-known/acme-challenge/<token>. Both hooks ran,
    the challenge server saw the validation request, and the chain verifies
    against /roots/0 with a leaf for exactly the requested name."""
    need_certbot()
    ctx.start_challtestsrv()
    ctx.start_pebble()
    name = rand_name("certbot")
    d = ctx.path("certbot")
    hooklog = d / "hooks.log"
    ctx.run("certbot", certbot_argv(d, [name]), timeout=50,
            env={"REQUESTS_CA_BUNDLE": CA, "CTS_MANAGEMENT": CTS, "HOOK_LOG": str(hooklog)})
    calls = hooklog.read_text().split("\n") if hooklog.exists() else []
    ctx.check(any(c.startswith(f"add {name} ") for c in calls)
              and any(c.startswith(f"del {name} ") for c in calls),
              f"auth and cleanup hooks both ran (hook log {calls})")
    hist = requests.post(CTS + "/http-request-history", data=json.dumps({"host": name}),
                         timeout=5)
    try:
        seen = hist.json() or []
    except ValueError:
        seen = []
    ctx.note(f"POST /http-request-history {{\"host\":\"{name}\"}} → {hist.status_code}, "
             f"{len(seen)} requests recorded, first {compact(seen[0]) if seen else None}")
    ctx.check(hist.status_code == 200 and any("/.well-known/acme-challenge/" in compact(h)
                                              for h in seen),
              f"challtestsrv recorded the validation request for {name} "
              f"({hist.status_code}, {len(seen)} entries)")
    live = d / "config" / "live" / "compat"
    ctx.require((live / "fullchain.pem").exists(), "certbot wrote live/compat/fullchain.pem")
    full = (live / "fullchain.pem").read_text()
    ok, out = openssl_verify(ctx, "certbot", full, root_pem(ctx))
    ctx.check(ok, f"fullchain.pem verifies against /roots/0 ({one_line(out, 120)})")
    leaf = certs_of(full)[0]
    ctx.check(sans(leaf) == [f"dns:{name}"], f"leaf SANs are [{name}] (got {sans(leaf)})")


NODE_CLIENTS = COMPAT.parent / "target" / "node-clients"


def node_acme_client(ctx: Ctx) -> None:
    """node acme-client (the npm package, installed by scripts/test under
    target/node-clients) gets a certificate in its auto mode, answering
    http-01 through the challenge server's /add-http01 and /del-http01; the
    subject validates for real. The chain verifies against /roots/0 and the
    leaf is for exactly the requested name."""
    module = NODE_CLIENTS / "node_modules" / "acme-client"
    node = shutil.which("node")
    if not (module.exists() and node):
        raise ScenarioSkipped(f"node or {module} missing (scripts/test installs them)")
    ctx.start_challtestsrv()
    ctx.start_pebble()
    name = rand_name("node")
    d = ctx.path("node")
    ctx.run("node-acme-client",
            [node, str(COMPAT / "clients" / "node-acme-client.js"), DIRECTORY, CTS, name, str(d)],
            timeout=50,
            env={"NODE_EXTRA_CA_CERTS": CA, "NODE_PATH": str(NODE_CLIENTS / "node_modules")})
    events = (d / "events.log").read_text().split("\n") if (d / "events.log").exists() else []
    ctx.check(f"create http-01 {name}" in events and f"remove http-01 {name}" in events,
              f"the challenge was published and removed (events {events})")
    ctx.require((d / "fullchain.pem").exists(), "acme-client returned a certificate chain")
    full = (d / "fullchain.pem").read_text()
    ok, out = openssl_verify(ctx, "node", full, root_pem(ctx))
    ctx.check(ok, f"the chain verifies against /roots/0 ({one_line(out, 120)})")
    leaf = certs_of(full)[0]
    ctx.check(sans(leaf) == [f"dns:{name}"], f"leaf SANs are [{name}] (got {sans(leaf)})")


def dns01_set_txt(ctx: Ctx) -> None:
    """The acme library orders <name> and *.<name>, answers both dns-01
    challenges by POSTing /set-txt {"host": "_acme-challenge.<name>.",
    "value": <key authorization digest>} to the challenge server (two values
    for one host: the server must keep both), the subject validates for
    real through -dnsserver, and the certificate covers both names. The
    wildcard authorization offers dns-01 and no type but the DNS-based ones
    (newer Pebble, like acme-ca pebble, adds dns-account-01 and
    dns-persist-01). /clear-txt removes the records."""
    ctx.start_challtestsrv()
    ctx.start_pebble()
    cl = client()
    name = rand_name("dns01")
    names = [name, f"*.{name}"]
    pending = chisel2.new_order(cl, names)
    host = f"_acme-challenge.{name}."
    values, challbs, wildcards = [], [], []
    for uri in pending.orderr.body.authorizations:
        authz = chisel2.get_authz(cl, uri)
        wildcards = sorted(wildcards + [bool(authz.wildcard)])
        types = [chisel2.challenge_type(c) for c in authz.challenges]
        if authz.wildcard:
            dns_types = {"dns-01", "dns-account-01", "dns-persist-01"}
            ctx.check("dns-01" in types and set(types) <= dns_types,
                      f"wildcard authorization offers only DNS-based challenges ({types})")
            ctx.check(authz.identifier.value == name,
                      f"wildcard authorization's identifier is {name} "
                      f"(got {authz.identifier.value})")
        challb = chisel2.find_challenge(authz, "dns-01")
        value = challb.chall.validation(cl.net.key)
        ctx.cts_post("/set-txt", {"host": host, "value": value})
        values.append(value)
        challbs.append(challb)
    ctx.check(len(values) == 2, f"two authorizations for {names} (got {len(values)})")
    ctx.check(wildcards == [False, True],
              f"exactly one authorization has \"wildcard\": true (got {wildcards})")
    txt = dns_query(host, "TXT")
    ctx.check(sorted(txt) == sorted(values),
              f"TXT {host} has both values set (got {len(txt)} of {len(values)})")
    for challb in challbs:
        cl.answer_challenge(challb, challb.chall.response(cl.net.key))
    chisel2.poll_authorizations(cl, pending.orderr.body.authorizations)
    chisel2.poll_order(cl, pending.uri, ("ready", "valid", "invalid"))
    issued = chisel2.finalize_and_download(cl, pending)
    ctx.check(sorted(sans(issued.leaf)) == sorted(f"dns:{n}" for n in names),
              f"certificate covers {names} (got {sans(issued.leaf)})")
    ctx.cts_post("/clear-txt", {"host": host})
    txt = dns_query(host, "TXT")
    ctx.check(txt == [], f"after /clear-txt no TXT for {host} (got {txt})")


def lego_eab(ctx: Ctx) -> None:
    """lego (Debian's) registers with --eab --kid kid-1 --hmac <key> against
    the EAB config and gets a certificate with its own http-01 server on
    :5002 (PEBBLE_VA_ALWAYS_VALID=1, no challenge server). LEGO_CA_CERTIFICATES
    trusts the runner's TLS CA. The certificate file exists and verifies
    against /roots/0."""
    lego = shutil.which("lego")
    if not lego:
        raise ScenarioSkipped("lego not installed (apt-get install -y lego)")
    ctx.start_pebble(EAB_CONFIG, env=ALWAYS_VALID)
    name = rand_name("lego")
    d = ctx.path("lego")
    ctx.run("lego", [lego, "--server", DIRECTORY, "--email", "x@example.com", "--accept-tos",
                     "--eab", "--kid", "kid-1", "--hmac", mac_keys()["kid-1"],
                     "--domains", name, "--http", "--http.port=:5002", "--path", d, "run"],
            env={"LEGO_CA_CERTIFICATES": CA}, timeout=35)
    crt = d / "certificates" / f"{name}.crt"
    ctx.require(crt.exists(), f"lego wrote certificates/{name}.crt")
    ctx.check((d / "certificates" / f"{name}.key").exists(), f"lego wrote certificates/{name}.key")
    bundle = crt.read_text()
    ctx.note(f"lego's {name}.crt holds {len(certs_of(bundle))} certificates")
    ok, out = openssl_verify(ctx, "lego", bundle, root_pem(ctx))
    ctx.check(ok, f"lego's certificate verifies against /roots/0 ({one_line(out, 120)})")
    ctx.check(sans(certs_of(bundle)[0]) == [f"dns:{name}"],
              f"leaf SANs are [{name}] (got {sans(certs_of(bundle)[0])})")


def management(ctx: Ctx) -> None:
    """The management API on :15000 (https, the runner's TLS certificate):
    /roots/0, /root-keys/0, /intermediates/0, /intermediate-keys/0 answer
    PEM; each key is the private key of its certificate, the intermediate is
    issued by the root and /roots/1 is 404 without alternates. After an
    issuance (always-valid) /cert-status-by-serial/<lowercase hex> answers
    JSON with Certificate (the issued leaf's PEM), Serial and Status "Valid";
    after an ACME revocation with reason 1 (keyCompromise) Status is
    "Revoked", Reason 1 and RevokedAt set; an unknown serial is 404."""
    ctx.start_pebble(env=ALWAYS_VALID)
    pair = {}
    for kind, keykind in (("roots", "root-keys"), ("intermediates", "intermediate-keys")):
        r = ctx.mgmt_get(f"/{kind}/0")
        ctx.require(r.status_code == 200, f"GET /{kind}/0 answers 200 (got {r.status_code})")
        ctx.note(f"GET /{kind}/0 → {r.status_code}, Content-Type {r.headers.get('Content-Type')!r}, "
                 f"Link {r.headers.get('Link')!r}")
        cert = x509.load_pem_x509_certificate(r.content)
        k = ctx.mgmt_get(f"/{keykind}/0")
        ctx.require(k.status_code == 200, f"GET /{keykind}/0 answers 200 (got {k.status_code})")
        first = k.text.strip().splitlines()[0] if k.text.strip() else ""
        ctx.note(f"GET /{keykind}/0 → {k.status_code}, Content-Type "
                 f"{k.headers.get('Content-Type')!r}, PEM {first!r}")
        try:
            key = serialization.load_pem_private_key(k.content, password=None)
            ctx.check(key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
                == cert.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
                f"/{keykind}/0 is the key of /{kind}/0")
        except ValueError as exc:
            ctx.check(False, f"/{keykind}/0 parses as a private key ({exc})")
        pair[kind] = cert
    ctx.note(f"root subject {pair['roots'].subject.rfc4514_string()!r}, intermediate subject "
             f"{pair['intermediates'].subject.rfc4514_string()!r}")
    ctx.check(issued_by(pair["intermediates"], pair["roots"]),
              "/intermediates/0 is issued by /roots/0")
    ctx.check(issued_by(pair["roots"], pair["roots"]), "/roots/0 is self-signed")
    r = ctx.mgmt_get("/roots/1")
    ctx.check(r.status_code == 404, f"/roots/1 is 404 without alternate roots (got {r.status_code})")

    cl = client()
    issued = chisel2.auth_and_issue([rand_name("mgmt")], client=cl)
    leaf = issued.leaf
    dl = chisel2.post_as_get(cl, issued.certificate_uri)
    ctx.note(f"URLs: account {chisel2.account_uri(cl)}, order {issued.order_uri}, certificate "
             f"{issued.certificate_uri}; download Content-Type {dl.headers.get('Content-Type')!r}, "
             f"Link {dl.headers.get('Link')!r}, {len(issued.pems)} PEM blocks")
    serial = format(leaf.serial_number, "x")
    r = ctx.mgmt_get(f"/cert-status-by-serial/{serial}")
    ctx.require(r.status_code == 200,
                f"GET /cert-status-by-serial/{serial} answers 200 (got {r.status_code})")
    ctx.note(f"GET /cert-status-by-serial/<hex> → {r.status_code}, headers "
             f"{ {k: v for k, v in r.headers.items() if k.lower() != 'date'} }, body "
             f"{one_line(r.text, 300)}")
    st = r.json()
    ctx.check(sorted(st) == ["Certificate", "Serial", "Status"],
              f"status JSON has exactly Certificate, Serial, Status (got {sorted(st)})")
    ctx.check(st.get("Status") == "Valid", f"Status is Valid (got {st.get('Status')!r})")
    ctx.check(st.get("Serial") == serial, f"Serial is {serial} (got {st.get('Serial')!r})")
    try:
        same = x509.load_pem_x509_certificate(st["Certificate"].encode()) == leaf
    except (KeyError, ValueError, AttributeError):
        same = False
    ctx.check(same, "Certificate is the issued leaf's PEM")
    upper = leaf.serial_number.to_bytes((leaf.serial_number.bit_length() + 7) // 8, "big").hex().upper()
    r2 = ctx.mgmt_get(f"/cert-status-by-serial/{upper}")
    ctx.note(f"openssl-style serial {upper} (uppercase, even length) → {r2.status_code}")

    cl.revoke(leaf, 1)
    r = ctx.mgmt_get(f"/cert-status-by-serial/{serial}")
    ctx.require(r.status_code == 200, f"after revocation 200 (got {r.status_code})")
    st = r.json()
    ctx.note(f"after revocation (reason 1) → {one_line(compact({k: v for k, v in st.items() if k != 'Certificate'}), 300)}")
    ctx.check(st.get("Status") == "Revoked", f"Status is Revoked (got {st.get('Status')!r})")
    ctx.check(st.get("Reason") == 1, f"Reason is 1 (got {st.get('Reason')!r})")
    ctx.check(bool(st.get("RevokedAt")), f"RevokedAt is set (got {st.get('RevokedAt')!r})")

    unknown = secrets.token_hex(8)
    r = ctx.mgmt_get(f"/cert-status-by-serial/{unknown}")
    ctx.check(r.status_code == 404, f"unknown serial → 404 (got {r.status_code})")
    r = ctx.mgmt_get("/cert-status-by-serial/not-hex")
    ctx.note(f"/cert-status-by-serial/not-hex → {r.status_code} {r.text[:80]!r}")


def management_renewal_info(ctx: Ctx) -> None:
    """ARI through the management API (Pebble ≥ 2.8): POST
    /set-renewal-info/ with {"Certificate": <leaf PEM>, "ARIResponse":
    "<renewalInfo JSON as a string>"} answers 200; then the directory's
    renewalInfo URL for the certificate's CertID (base64url of the AKI key
    identifier "." base64url of the serial) answers exactly that
    suggestedWindow."""
    ctx.start_pebble(env=ALWAYS_VALID)
    d = get_dir()
    ctx.check("renewalInfo" in d, f"directory has renewalInfo (keys {sorted(d)})")
    cl = client()
    issued = chisel2.auth_and_issue([rand_name("ari")], client=cl)
    leaf = issued.leaf
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    window = {"start": (now - datetime.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "end": (now - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    body = {"Certificate": issued.pems[0], "ARIResponse": json.dumps({"suggestedWindow": window})}
    r = requests.post(MGMT + "/set-renewal-info/", data=json.dumps(body), verify=CA, timeout=10)
    ctx.note(f"POST /set-renewal-info/ → {r.status_code} {r.text[:120]!r}")
    ctx.check(r.status_code == 200, f"POST /set-renewal-info/ answers 200 (got {r.status_code})")
    ctx.require("renewalInfo" in d, "no renewalInfo in the directory to read the window back")
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    sn = leaf.serial_number
    cert_id = f"{b64url(aki)}.{b64url(sn.to_bytes(sn.bit_length() // 8 + 1, 'big'))}"
    url = d["renewalInfo"].rstrip("/") + "/" + cert_id
    g = requests.get(url, verify=CA, timeout=10)
    ctx.note(f"GET {url} → {g.status_code}, Retry-After {g.headers.get('Retry-After')!r}, "
             f"{one_line(g.text, 200)}")
    ctx.require(g.status_code == 200, f"GET renewalInfo/<CertID> answers 200 (got {g.status_code})")
    ctx.check((g.json() or {}).get("suggestedWindow") == window,
              f"renewalInfo has the posted window (got {g.json().get('suggestedWindow')})")


def _raw_post(url: str, payload: dict, key: jose.JWK, nonce: str, kid=None) -> requests.Response:
    signed = acme_jws.JWS.sign(json.dumps(payload).encode(), key=key, alg=chisel2.alg_for(key),
                               nonce=jose.b64decode(nonce), url=url, kid=kid)
    return requests.post(url, data=signed.json_dumps(), verify=CA, timeout=10,
                         headers={"Content-Type": "application/jose+json"})


def _fresh_nonce(d: dict) -> str:
    return requests.head(d["newNonce"], verify=CA, timeout=10).headers["Replay-Nonce"]


def env_nonce_reject(ctx: Ctx) -> None:
    """PEBBLE_WFE_NONCEREJECT=100: a JWS-signed newAccount POST with a nonce
    fresh from newNonce is answered 400 urn:ietf:params:acme:error:badNonce
    (with a new Replay-Nonce), three times out of three.
    PEBBLE_WFE_NONCEREJECT=0: 20 consecutive POSTs, each with the nonce of the
    previous answer, never get badNonce."""
    key, _ = chisel2.make_account_key()
    reg = {"termsOfServiceAgreed": True, "contact": ["mailto:nonce@example.com"]}
    ctx.start_pebble(env={"PEBBLE_WFE_NONCEREJECT": "100"})
    d = get_dir()
    for i in range(3):
        r = _raw_post(d["newAccount"], reg, key, _fresh_nonce(d))
        try:
            typ = r.json().get("type")
        except ValueError:
            typ = None
        if i == 0:
            ctx.note(f"NONCEREJECT=100: newAccount → {r.status_code}, Content-Type "
                     f"{r.headers.get('Content-Type')!r}, body {one_line(r.text, 200)}")
        ctx.check(r.status_code == 400 and typ == "urn:ietf:params:acme:error:badNonce",
                  f"with NONCEREJECT=100 POST #{i + 1} → 400 badNonce (got {r.status_code} {typ})")
        ctx.check(bool(r.headers.get("Replay-Nonce")),
                  f"badNonce answer #{i + 1} carries a Replay-Nonce")
    ctx.stop_all()

    ctx.start_pebble(env={"PEBBLE_WFE_NONCEREJECT": "0"})
    d = get_dir()
    nonce = _fresh_nonce(d)
    bad, statuses = 0, []
    for _ in range(20):
        r = _raw_post(d["newAccount"], reg, key, nonce)
        statuses.append(r.status_code)
        if "badNonce" in r.text:
            bad += 1
        nonce = r.headers.get("Replay-Nonce") or _fresh_nonce(d)
    ctx.note(f"NONCEREJECT=0: 20 newAccount POSTs → statuses {sorted(set(statuses))}")
    ctx.check(bad == 0, f"with NONCEREJECT=0 no badNonce in 20 POSTs (got {bad})")
    ctx.check(statuses[0] == 201 and all(s == 200 for s in statuses[1:]),
              f"first POST creates the account (201), the rest find it (200) "
              f"(got {statuses[0]}, then {sorted(set(statuses[1:]))})")


def env_authz_reuse(ctx: Ctx) -> None:
    """PEBBLE_AUTHZREUSE=100 (always-valid): once a first order's
    authorizations for three names are valid, a second order of the same
    account for the same names lists the same authorization URLs and is
    ready at once. PEBBLE_AUTHZREUSE=0: the second order gets three new
    authorization URLs and is pending. (Three names, since Pebble draws the
    reuse percentage per identifier and its default is 50. Pebble 2.4.0
    compares `rand.Intn(100) > percent`, so at 0 it still reuses about 1% of
    valid authorizations: its column fails here now and then.)"""
    for pct, reuse in (("100", True), ("0", False)):
        ctx.start_pebble(env={**ALWAYS_VALID, "PEBBLE_AUTHZREUSE": pct})
        cl = client()
        names = [rand_name(f"reuse{pct}-{i}") for i in range(3)]
        first = chisel2.new_order(cl, names)
        a1 = list(first.orderr.body.authorizations)
        chisel2.answer_challenges(cl, a1)
        chisel2.poll_authorizations(cl, a1)
        second = chisel2.new_order(cl, names)
        a2 = list(second.orderr.body.authorizations)
        status = second.orderr.body.status.name
        if reuse:
            ctx.check(sorted(a1) == sorted(a2),
                      f"AUTHZREUSE=100: second order reuses all 3 authorizations "
                      f"({len(set(a1) & set(a2))} of 3 shared)")
            ctx.check(status == "ready", f"AUTHZREUSE=100: second order is ready at once "
                      f"(got {status})")
        else:
            ctx.check(set(a1).isdisjoint(a2), f"AUTHZREUSE=0: second order has 3 new "
                      f"authorizations ({len(set(a1) & set(a2))} of 3 shared)")
            ctx.check(status == "pending", f"AUTHZREUSE=0: second order is pending (got {status})")
        ctx.stop_all()


def env_chain_length(ctx: Ctx) -> None:
    """PEBBLE_CHAIN_LENGTH=3 (always-valid): the certificate download holds
    the leaf and 3 intermediates, each certificate issued by the next and the
    last by /roots/0."""
    ctx.start_pebble(env={**ALWAYS_VALID, "PEBBLE_CHAIN_LENGTH": "3"})
    issued = chisel2.auth_and_issue([rand_name("chain")], client=client())
    chain = certs_of(issued.chain_pem)
    ctx.note("PEBBLE_CHAIN_LENGTH=3 download: " + " ← ".join(
        cn_of(c.subject) or c.subject.rfc4514_string() for c in reversed(chain)))
    ctx.check(len(chain) == 4, f"download has leaf + 3 intermediates (got {len(chain)} certificates)")
    for a, b in zip(chain, chain[1:]):
        ctx.check(issued_by(a, b), f"{cn_of(a.subject) or 'leaf'} is issued by {cn_of(b.subject)}")
    root = x509.load_pem_x509_certificate(root_pem(ctx).encode())
    ctx.check(issued_by(chain[-1], root), f"{cn_of(chain[-1].subject)} is issued by /roots/0")
    inter0 = x509.load_pem_x509_certificate(ctx.mgmt_get("/intermediates/0").content)
    where = [i for i, c in enumerate(chain) if c == inter0]
    ctx.note(f"/intermediates/0 is chain[{where[0]}] of the download" if where
             else "/intermediates/0 is not in the download")


def env_alternate_roots(ctx: Ctx) -> None:
    """PEBBLE_ALTERNATE_ROOTS=2 (always-valid): the certificate download has
    two Link: <…>;rel="alternate" headers; each alternate is the same leaf
    with an intermediate issued by /roots/1 or /roots/2 (one each), the
    default chain goes to /roots/0, /roots/3 is 404, and /roots/0 answers
    with rel="alternate" links to /roots/1 and /roots/2. certbot with
    --preferred-chain "<CN of /roots/1>" gets a fullchain.pem whose last
    certificate is issued by that root."""
    need_certbot()
    ctx.start_challtestsrv()
    ctx.start_pebble(env={**ALWAYS_VALID, "PEBBLE_ALTERNATE_ROOTS": "2"})
    roots = {}
    for i in range(3):
        r = ctx.mgmt_get(f"/roots/{i}")
        ctx.require(r.status_code == 200, f"GET /roots/{i} answers 200 (got {r.status_code})")
        roots[i] = x509.load_pem_x509_certificate(r.content)
        if i == 0:
            ctx.note(f"GET /roots/0 Link header: {r.headers.get('Link')!r}")
            alts = sorted(u for u, rel in links(r) if rel == "alternate")
            ctx.check(alts == [f"{MGMT}/roots/1", f"{MGMT}/roots/2"],
                      f"/roots/0 links rel=alternate to /roots/1 and /roots/2 (got {alts})")
    ctx.check(ctx.mgmt_get("/roots/3").status_code == 404, "/roots/3 is 404")
    ctx.note("root CNs: " + ", ".join(f"{i}: {cn_of(c.subject)!r}" for i, c in roots.items()))

    cl = client()
    issued = chisel2.auth_and_issue([rand_name("alt")], client=cl)
    resp = chisel2.post_as_get(cl, issued.certificate_uri)
    ctx.note(f"certificate download Link header: {resp.headers.get('Link')!r}")
    alt_urls = [u for u, rel in links(resp) if rel == "alternate"]
    ctx.check(len(alt_urls) == 2, f"download has 2 rel=alternate links (got {len(alt_urls)})")
    default = certs_of(resp.text)
    ctx.check(len(default) >= 2 and issued_by(default[-1], roots[0]),
              "default chain ends with an intermediate issued by /roots/0")
    used = set()
    for url in alt_urls:
        chain = certs_of(chisel2.post_as_get(cl, url).text)
        ctx.check(chain and chain[0] == default[0], f"alternate {url} has the same leaf")
        tops = [i for i, root in roots.items() if chain and issued_by(chain[-1], root)]
        ctx.check(tops in ([1], [2]), f"alternate {url} chains to /roots/1 or /roots/2 (got {tops})")
        used.update(tops)
    ctx.check(used == {1, 2}, f"the alternates cover /roots/1 and /roots/2 (got {sorted(used)})")

    want = cn_of(roots[1].subject)
    d = ctx.path("certbot")
    ctx.run("certbot", certbot_argv(d, [rand_name("altcb")], ("--preferred-chain", want)),
            timeout=40, env={"REQUESTS_CA_BUNDLE": CA, "CTS_MANAGEMENT": CTS})
    full = certs_of((d / "config" / "live" / "compat" / "fullchain.pem").read_text())
    ctx.check(len(full) >= 2 and issued_by(full[-1], roots[1]),
              f"certbot --preferred-chain {want!r}: fullchain ends with an intermediate "
              f"issued by /roots/1 (issuer {cn_of(full[-1].issuer) if full else None!r})")


def env_orders_per_page(ctx: Ctx) -> None:
    """PEBBLE_WFE_ORDERS_PER_PAGE=3: after 5 orders, POST-as-GET of the
    account's "orders" URL answers 3 order URLs and a Link rel="next"; the
    next page has the other 2 and no next link. Again with =4 (pages of 4
    and 1), since 3 is also Pebble's default."""
    for per_page in (3, 4):
        ctx.start_pebble(env={"PEBBLE_WFE_ORDERS_PER_PAGE": str(per_page)})
        cl = client()
        made = {chisel2.new_order(cl, [rand_name(f"page{i}")]).uri for i in range(5)}
        acct = chisel2.post_as_get(cl, chisel2.account_uri(cl)).json()
        ctx.require(isinstance(acct.get("orders"), str), f"account has an orders URL (got {acct})")
        r = chisel2.post_as_get(cl, acct["orders"])
        if per_page == 3:
            ctx.note(f"orders URL {acct['orders']} → Link {r.headers.get('Link')!r}, "
                     f"body {one_line(r.text, 200)}")
        page1 = r.json().get("orders", [])
        nxt = [u for u, rel in links(r) if rel == "next"]
        ctx.check(len(page1) == per_page,
                  f"ORDERS_PER_PAGE={per_page}: first page has {per_page} orders (got {len(page1)})")
        ctx.require(len(nxt) == 1,
                    f"ORDERS_PER_PAGE={per_page}: first page has one Link rel=next (got {nxt})")
        r2 = chisel2.post_as_get(cl, nxt[0])
        if per_page == 3:
            ctx.note(f"next page {nxt[0]} → Link {r2.headers.get('Link')!r}")
        page2 = r2.json().get("orders", [])
        ctx.check(len(page2) == 5 - per_page,
                  f"ORDERS_PER_PAGE={per_page}: second page has {5 - per_page} orders "
                  f"(got {len(page2)})")
        ctx.check(not [u for u, rel in links(r2) if rel == "next"],
                  f"ORDERS_PER_PAGE={per_page}: second page has no next link")
        ctx.check(set(page1) | set(page2) == made,
                  f"ORDERS_PER_PAGE={per_page}: the two pages list exactly the 5 orders")
        ctx.stop_all()


def concurrency(ctx: Ctx) -> None:
    """PEBBLE_VA_ALWAYS_VALID=1: 8 threads, each with its own account, run
    4 whole issuances each (32 orders) at the same time with the acme
    library; all 32 certificates must be issued within 60 s."""
    ctx.start_pebble(env=ALWAYS_VALID)
    done, errs, lock = [], [], threading.Lock()

    def worker(t: int) -> None:
        try:
            cl = client()
        except Exception as exc:  # pylint: disable=broad-except
            with lock:
                errs.append(f"thread {t} account: {problem_of(exc)}")
            return
        for i in range(4):
            try:
                chisel2.auth_and_issue([rand_name(f"conc{t}-{i}")], client=cl, timeout=55)
                with lock:
                    done.append(time.monotonic())
            except Exception as exc:  # pylint: disable=broad-except
                with lock:
                    errs.append(f"thread {t} order {i}: {problem_of(exc)}")

    start = time.monotonic()
    pool = ThreadPoolExecutor(8)
    futures = [pool.submit(worker, t) for t in range(8)]
    _, not_done = wait(futures, timeout=60)
    pool.shutdown(wait=False, cancel_futures=True)
    took = time.monotonic() - start
    ctx.note(f"{len(done)}/32 issued, {len(errs)} errors, {len(not_done)} threads still busy "
             f"after {took:.1f}s" + (f"; first error: {errs[0]}" if errs else ""))
    ctx.check(not errs, f"no issuance failed ({len(errs)} did; first: {errs[0] if errs else ''})")
    ctx.check(len(done) == 32 and not not_done,
              f"32 certificates within 60 s (got {len(done)}; {len(not_done)} threads stuck)")


def no_cn_for_ip(ctx: Ctx) -> None:
    """An order for the IP identifier 127.0.0.1 alone (CSR with an empty
    subject and an IP SAN) gets a certificate with no subject CN and the IP
    in its SANs; a Must-Staple CSR (TLS Feature status_request) gets a
    certificate that carries the TLS Feature extension."""
    ctx.start_pebble(env=ALWAYS_VALID)
    cl = client()
    key = chisel2.make_cert_key_pem()
    csr = crypto_util.make_csr(key, ipaddrs=[ipaddress.ip_address("127.0.0.1")])
    pending = pending_order(cl, ["127.0.0.1"], csr, key)
    idents = [(i.typ.name, i.value) for i in pending.orderr.body.identifiers]
    ctx.check(idents == [("ip", "127.0.0.1")], f"order identifiers are [ip 127.0.0.1] (got {idents})")
    authz = chisel2.get_authz(cl, pending.orderr.body.authorizations[0])
    ctx.note("challenges offered for an IP identifier: "
             + str([chisel2.challenge_type(c) for c in authz.challenges]))
    issued = complete(cl, pending)
    leaf = issued.leaf
    ctx.note(f"IP-only leaf subject: {leaf.subject.rfc4514_string()!r}, SANs {sans(leaf)}")
    ctx.check(not leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME),
              f"IP-only certificate has no subject CN (subject {leaf.subject.rfc4514_string()!r})")
    ctx.check(sans(leaf) == ["ip:127.0.0.1"], f"SANs are [IP 127.0.0.1] (got {sans(leaf)})")

    name = rand_name("staple")
    key = chisel2.make_cert_key_pem()
    csr = crypto_util.make_csr(key, [name], must_staple=True)
    leaf = complete(cl, pending_order(cl, [name], csr, key)).leaf
    try:
        feat = leaf.extensions.get_extension_for_oid(ExtensionOID.TLS_FEATURE).value
        ok = x509.TLSFeatureType.status_request in list(feat)
    except x509.ExtensionNotFound:
        ok = False
    ctx.check(ok, "Must-Staple CSR → certificate has TLS Feature status_request")


def config_profiles(ctx: Ctx) -> None:
    """The config's "profiles" (newer Pebble): the directory's
    meta.profiles maps default and shortlived to their descriptions; an
    order without a profile gets one of the configured profiles (newer
    Pebble picks one at random): the order names it and the certificate has
    its validityPeriod; one with "profile": "shortlived" echoes the profile
    and gets 518400 s. The Retry-After headers seen (config retryAfter
    authz 3, order 5) are noted."""
    cfg = config_of()
    ctx.start_pebble(env=ALWAYS_VALID)
    meta = get_dir().get("meta") or {}
    want = {k: v["description"] for k, v in cfg["profiles"].items()}
    ctx.check(meta.get("profiles") == want,
              f"meta.profiles lists the config's profiles (got {meta.get('profiles')!r})")
    cl = client()

    name = rand_name("prof")
    pending = chisel2.new_order(cl, [name])
    r = chisel2.post_as_get(cl, pending.orderr.body.authorizations[0])
    ctx.note(f"pending authz Retry-After {r.headers.get('Retry-After')!r}; "
             f"pending order Retry-After "
             f"{chisel2.post_as_get(cl, pending.uri).headers.get('Retry-After')!r}")
    picked = chisel2.post_as_get(cl, pending.uri).json().get("profile")
    leaf = complete(cl, pending).leaf
    secs = (leaf.not_valid_after_utc - leaf.not_valid_before_utc).total_seconds()
    ctx.note(f"order without a profile: profile {picked!r}, leaf validity {secs:.0f}s "
             f"(notBefore {leaf.not_valid_before_utc}, notAfter {leaf.not_valid_after_utc})")
    ctx.check(picked in cfg["profiles"],
              f"an order without a profile names one of the configured profiles (got {picked!r})")
    if picked in cfg["profiles"]:
        want_secs = cfg["profiles"][picked]["validityPeriod"]
        ctx.check(abs(secs - want_secs) <= 60,
                  f"its certificate has {picked}'s validity ≈ {want_secs}s (got {secs:.0f}s)")

    key = chisel2.make_cert_key_pem()
    name = rand_name("short")
    csr = crypto_util.make_csr(key, [name])
    try:
        pending = pending_order(cl, [name], csr, key, profile="shortlived")
    except messages.Error as exc:
        ctx.require(False, f"newOrder with profile shortlived accepted (got {problem_of(exc)})")
    order = chisel2.post_as_get(cl, pending.uri).json()
    ctx.check(order.get("profile") == "shortlived",
              f"order echoes profile shortlived (got {order.get('profile')!r})")
    leaf = complete(cl, pending).leaf
    secs = (leaf.not_valid_after_utc - leaf.not_valid_before_utc).total_seconds()
    ctx.check(abs(secs - cfg["profiles"]["shortlived"]["validityPeriod"]) <= 60,
              f"shortlived validity ≈ {cfg['profiles']['shortlived']['validityPeriod']}s "
              f"(got {secs:.0f}s)")


def _retry_after_ok(value, seconds: int) -> bool:
    """Retry-After is `seconds` as delta-seconds, or an HTTP-date about that
    far ahead (newer Pebble picks one of the two at random)."""
    if value is None:
        return False
    if value.strip().isdigit():
        return int(value) == seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return False
    ahead = (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    return seconds - 3 <= ahead <= seconds + 1


def config_retry_after(ctx: Ctx) -> None:
    """The config's retryAfter {"authz": 3, "order": 5} (newer Pebble). The
    subject validates dns-01 for real through the challenge server, with
    PEBBLE_VA_SLEEPTIME=3 so each validation waits up to 3 s: polling the
    authorization while its challenge is processing must answer
    Retry-After 3 (delta-seconds, or an HTTP-date 3 s ahead). The finalize
    answer must carry Retry-After 5 if the order is "processing"; a subject
    that issues within the finalize request (order "valid" at once, allowed
    by RFC 8555 7.4) has no processing order for that knob, which is noted."""
    ctx.start_challtestsrv()
    ctx.start_pebble(env={"PEBBLE_VA_NOSLEEP": None, "PEBBLE_VA_SLEEPTIME": "3"})
    cl = client()
    name = rand_name("retry")
    pending = chisel2.new_order(cl, [name])
    authz_uri = pending.orderr.body.authorizations[0]
    challb = chisel2.find_challenge(chisel2.get_authz(cl, authz_uri), "dns-01")
    ctx.cts_post("/set-txt", {"host": f"_acme-challenge.{name}.",
                              "value": challb.chall.validation(cl.net.key)})
    cl.answer_challenge(challb, challb.chall.response(cl.net.key))
    processing_retry = []
    seen = set()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        r = chisel2.post_as_get(cl, authz_uri)
        status = r.json().get("status")
        chall_states = [c.get("status") for c in r.json().get("challenges", [])]
        ra = r.headers.get("Retry-After")
        seen.add((status, ra))
        if status == "pending" and "processing" in chall_states:
            processing_retry.append(ra)
        if status != "pending":
            break
        time.sleep(0.1)
    ctx.note(f"authz polls while validating: (status, Retry-After) seen {sorted(seen, key=str)}")
    ctx.check(bool(processing_retry),
              "the authorization was seen with its challenge processing (VA delay up to 3 s)")
    ctx.check(all(_retry_after_ok(ra, 3) for ra in processing_retry),
              f"authorization polls while processing carry Retry-After 3 "
              f"(got {sorted(set(map(str, processing_retry)))})")
    chisel2.poll_authorizations(cl, [authz_uri])
    order = chisel2.poll_order(cl, pending.uri, ("ready", "valid", "invalid"))
    csr = x509.load_pem_x509_csr(pending.csr_pem)
    r = cl._post(order.finalize, messages.CertificateRequest(csr=csr))  # pylint: disable=protected-access
    ra = r.headers.get("Retry-After")
    status = r.json().get("status")
    ctx.note(f"finalize → {r.status_code}, order status {status!r}, Retry-After {ra!r}")
    if status == "processing":
        ctx.check(_retry_after_ok(ra, 5), f"finalize answer (processing) has Retry-After 5 "
                  f"(got {ra!r})")
    else:
        ctx.note("the order was issued within the finalize request: no processing order "
                 "for the order knob to show in")
    chisel2.finalize_and_download(cl, pending)


def config_domain_blocklist(ctx: Ctx) -> None:
    """The config's domainBlocklist ["blocked-domain.example"]: newOrder for
    blocked-domain.example or a name under it is refused with
    urn:ietf:params:acme:error:rejectedIdentifier, while another name is
    accepted."""
    ctx.start_pebble(env=ALWAYS_VALID)
    cl = client()
    for name in ("blocked-domain.example", f"www{secrets.token_hex(2)}.blocked-domain.example"):
        try:
            chisel2.new_order(cl, [name])
            ctx.check(False, f"newOrder for {name} is refused (it was accepted)")
        except messages.Error as exc:
            ctx.note(f"newOrder {name} → {exc.typ}: {exc.detail!r}")
            ctx.check(exc.typ == "urn:ietf:params:acme:error:rejectedIdentifier",
                      f"newOrder {name} → rejectedIdentifier (got {problem_of(exc)})")
    try:
        chisel2.new_order(cl, [rand_name("allowed")])
    except messages.Error as exc:
        ctx.check(False, f"newOrder for an unlisted name is accepted (got {problem_of(exc)})")


# --------------------------------------------------------------------------
# Debian's challenge server as the only DNS, and no files at all
# --------------------------------------------------------------------------

# pebble-challtestsrv as certbot-ci starts it (certbot_integration_tests/utils/
# pebble_artifacts + acme_server): DNS and management only, A answers
# 127.0.0.1, no AAAA answers.
CERTBOT_CI_CTS_ARGS = ("-management", ":8055", "-defaultIPv6", "", "-defaultIPv4", "127.0.0.1",
                       "-http01", "", "-tlsalpn01", "", "-https01", "")
CAA_PROBLEM = "urn:ietf:params:acme:error:caa"


def need_debian_cts() -> str:
    cts = debian_challtestsrv()
    if not os.access(cts, os.X_OK):
        raise ScenarioSkipped(f"{cts} not found (apt-get install -y pebble)")
    return cts


def need_lego() -> str:
    lego = shutil.which("lego")
    if not lego:
        raise ScenarioSkipped("lego not installed (apt-get install -y lego)")
    return lego


def check_chain(ctx: Ctx, label: str, path: Path, root: str, names: list[str],
                anchor: str = "/roots/0") -> None:
    """`path` exists, its chain verifies against `root` and its leaf's SANs
    are exactly `names` (in any order)."""
    if not ctx.check(path.exists(), f"{label} wrote {path.name}"):
        return
    pem = path.read_text()
    ok, out = openssl_verify(ctx, label, pem, root)
    ctx.check(ok, f"{label}'s chain verifies against {anchor} ({one_line(out, 120)})")
    leaf_sans = sans(certs_of(pem)[0]) if certs_of(pem) else []
    want = sorted(f"dns:{n}" for n in names)
    ctx.check(sorted(leaf_sans) == want,
              f"{label}'s leaf covers exactly {names} (got {leaf_sans})")


def hook_calls(path: Path) -> list[str]:
    return [ln for ln in path.read_text().split("\n") if ln] if path.exists() else []


def debian_cts_dns01(ctx: Ctx) -> None:
    """Debian's /usr/bin/pebble-challtestsrv, whatever the subject, started
    as certbot-ci does (-management :8055 -defaultIPv6 "" -defaultIPv4
    127.0.0.1 -http01 "" -tlsalpn01 "" -https01 ""), is the subject's only
    DNS (-dnsserver 127.0.0.1:8053) and the subject validates dns-01 for real
    (no PEBBLE_VA_ALWAYS_VALID). (a) certbot (the venv's) gets a certificate
    for <name> and *.<name> with --manual --preferred-challenges dns and the
    hooks `hooks/cts-dns01 add|del` (POST /set-txt, /clear-txt); both hooks
    ran for both names. (b) lego gets one for <name2> and *.<name2> with
    --dns exec (EXEC_PATH=hooks/lego-exec-dns01, which lego calls as
    `present|cleanup <fqdn> <value>` → /set-txt, /clear-txt), --dns.resolvers
    127.0.0.1:8053 and --dns.disable-cp (lego 4.9 then only queries that
    resolver, not the zone's authoritative servers), EXEC_SEQUENCE_INTERVAL=1
    (it solves one name after the other); present and cleanup ran twice
    each. Each chain verifies against /roots/0 and its leaf covers
    exactly the two names."""
    need_certbot()
    lego = need_lego()
    ctx.start_challtestsrv(CERTBOT_CI_CTS_ARGS, binary=need_debian_cts())
    ctx.start_pebble()
    root = root_pem(ctx)

    # (a) certbot, manual dns-01 hooks
    name = rand_name("cb-dns")
    names = [name, f"*.{name}"]
    d = ctx.path("certbot")
    hooklog = d / "hooks.log"
    r = ctx.run("certbot", certbot_argv(d, names, hook="cts-dns01", challenge="dns"),
                timeout=45, check=False,
                env={"REQUESTS_CA_BUNDLE": CA, "CTS_MANAGEMENT": CTS, "HOOK_LOG": str(hooklog)})
    calls = hook_calls(hooklog)
    ctx.note(f"certbot exit {r.returncode}; hook calls {calls}")
    if ctx.check(r.returncode == 0, f"certbot exits 0 (got {r.returncode}: "
                 f"{one_line((r.stderr.strip() or r.stdout.strip())[-300:], 200)})"):
        ctx.check(sum(c.startswith(f"add {name} ") for c in calls) == 2
                  and sum(c.startswith(f"del {name} ") for c in calls) == 2,
                  f"certbot ran the auth and the cleanup hook for both names (calls {calls})")
        check_chain(ctx, "certbot", d / "config" / "live" / "compat" / "fullchain.pem",
                    root, names)

    # (b) lego, exec DNS provider
    name2 = rand_name("lego-dns")
    names2 = [name2, f"*.{name2}"]
    d2 = ctx.path("lego")
    hooklog2 = d2 / "hooks.log"
    r = ctx.run("lego", [lego, "--server", DIRECTORY, "--email", "x@example.com", "--accept-tos",
                         "--domains", name2, "--domains", f"*.{name2}", "--dns", "exec",
                         "--dns.resolvers", "127.0.0.1:8053", "--dns.disable-cp",
                         "--path", d2, "run"],
                timeout=45, check=False,
                env={"LEGO_CA_CERTIFICATES": CA, "CTS_MANAGEMENT": CTS,
                     "EXEC_PATH": str(COMPAT / "hooks" / "lego-exec-dns01"),
                     # lego 4.9 solves exec challenges one after the other,
                     # waiting EXEC_SEQUENCE_INTERVAL (default 60 s) in between.
                     "EXEC_PROPAGATION_TIMEOUT": "20", "EXEC_POLLING_INTERVAL": "1",
                     "EXEC_SEQUENCE_INTERVAL": "1",
                     "HOOK_LOG": str(hooklog2)})
    calls = hook_calls(hooklog2)
    ctx.note(f"lego exit {r.returncode}; exec calls {calls}")
    host2 = f"_acme-challenge.{name2}."
    if ctx.check(r.returncode == 0, f"lego exits 0 (got {r.returncode}: "
                 f"{one_line((r.stderr.strip() or r.stdout.strip())[-300:], 200)})"):
        ctx.check(calls.count(f"present {host2} 200") == 2
                  and calls.count(f"cleanup {host2} 200") == 2,
                  f"lego ran present and cleanup for both names (calls {calls})")
        check_chain(ctx, "lego", d2 / "certificates" / f"{name2}.crt", root, names2)


def _problem_types(problem) -> list[str]:
    """The type of an RFC 7807 problem and of its subproblems."""
    if not isinstance(problem, dict):
        return []
    out = [problem.get("type", "")]
    for sub in problem.get("subproblems") or []:
        out += _problem_types(sub)
    return out


def _dns01_attempt(ctx: Ctx, cl, name: str) -> dict:
    """Order `name`, answer dns-01 through /set-txt, wait for the
    authorization, finalize if the order gets ready. Returns what happened:
    authz and order status, every problem seen (where, problem JSON) and the
    certificate if one was issued."""
    pending = chisel2.new_order(cl, [name])
    authz_uri = pending.orderr.body.authorizations[0]
    challb = chisel2.find_challenge(chisel2.get_authz(cl, authz_uri), "dns-01")
    host = f"_acme-challenge.{name}."
    ctx.cts_post("/set-txt", {"host": host, "value": challb.chall.validation(cl.net.key)})
    cl.answer_challenge(challb, challb.chall.response(cl.net.key))
    out = {"problems": [], "issued": None}
    deadline = time.monotonic() + 20
    while True:
        authz = chisel2.post_as_get(cl, authz_uri).json()
        if authz.get("status") not in ("pending", "processing") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    out["authz"] = authz.get("status")
    for c in authz.get("challenges") or []:
        if c.get("error"):
            out["problems"].append((f"challenge {c.get('type')} ({c.get('status')})", c["error"]))
    deadline = time.monotonic() + 10
    while True:
        order = chisel2.post_as_get(cl, pending.uri).json()
        if order.get("status") not in ("pending", "processing") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if order.get("status") == "ready":
        try:
            out["issued"] = chisel2.finalize_and_download(cl, pending, timeout=15)
        except messages.Error as exc:
            out["problems"].append(("finalize", exc.to_partial_json()))
        except Exception as exc:  # pylint: disable=broad-except
            out["problems"].append(("finalize", {"type": type(exc).__name__,
                                                 "detail": one_line(str(exc), 200)}))
        order = chisel2.post_as_get(cl, pending.uri).json()
    out["order"] = order.get("status")
    if order.get("error"):
        out["problems"].append(("order", order["error"]))
    ctx.cts_post("/clear-txt", {"host": host})
    return out


def debian_cts_caa(ctx: Ctx) -> None:
    """Debian's /usr/bin/pebble-challtestsrv (started as certbot-ci does) is
    the subject's only DNS and validation is real. POST /add-caa {"host":
    "<name>.", "policies": [{"tag": "issue", "value":
    "some-other-ca.example"}]} (the challenge server must then answer CAA
    <name> with `0 issue some-other-ca.example`); the acme library orders
    <name> and answers dns-01 via /set-txt. No certificate may be issued: the
    authorization or the order ends invalid, and an
    urn:ietf:params:acme:error:caa problem is seen (challenge error, order
    error or finalize refusal, subproblems included); what happened is
    noted. A control name without CAA, ordered the same way by the same
    account, gets a certificate for exactly that name."""
    ctx.start_challtestsrv(CERTBOT_CI_CTS_ARGS, binary=need_debian_cts())
    ctx.start_pebble()
    cl = client()
    name = rand_name("caa")
    ctx.cts_post("/add-caa", {"host": f"{name}.",
                              "policies": [{"tag": "issue", "value": "some-other-ca.example"}]})
    try:
        caa = dns_query(name, "CAA")
    except (OSError, RuntimeError) as exc:
        caa = [f"error: {exc}"]
    ctx.require(caa == ["0 issue some-other-ca.example"],
                f"the challenge server answers CAA {name} with 0 issue some-other-ca.example "
                f"(got {caa})")

    out = _dns01_attempt(ctx, cl, name)
    types = [t for _, p in out["problems"] for t in _problem_types(p)]
    ctx.note(f"CAA-forbidden {name}: authz {out['authz']}, order {out['order']}, "
             f"certificate {'issued' if out['issued'] else 'none'}, problems "
             + (" ; ".join(f"{where}: {compact(p)}" for where, p in out["problems"]) or "none"))
    ctx.check(out["issued"] is None,
              f"no certificate is issued for {name} under CAA issue some-other-ca.example "
              f"(got {sans(out['issued'].leaf) if out['issued'] else 'none'})")
    ctx.check(out["authz"] == "invalid" or out["order"] == "invalid",
              f"the authorization or the order ends invalid "
              f"(authz {out['authz']}, order {out['order']})")
    ctx.check(CAA_PROBLEM in types, f"a {CAA_PROBLEM} problem is reported (types seen {types})")

    control = rand_name("nocaa")
    out = _dns01_attempt(ctx, cl, control)
    ctx.note(f"control {control} (no CAA): authz {out['authz']}, order {out['order']}, "
             f"certificate {'issued' if out['issued'] else 'none'}"
             + "".join(f"; {where}: {compact(p)}" for where, p in out["problems"]))
    ctx.check(out["issued"] is not None and sans(out["issued"].leaf) == [f"dns:{control}"],
              f"the control name without CAA gets a certificate for exactly it "
              f"(authz {out['authz']}, order {out['order']}, "
              f"problems {[compact(p) for _, p in out['problems']]})")


def no_files(ctx: Ctx) -> None:
    """`pebble` with no arguments at all (no -config, no -dnsserver), in an
    empty temporary working directory, with PEBBLE_VA_ALWAYS_VALID=1: acme-ca
    then uses Pebble's test config built in (ACME on :14000, management on
    :15000, a generated listener certificate issued by the CA whose root is
    /roots/0); Debian's Pebble has no such thing and fails. Once
    https://localhost:14000/dir answers (certificate not checked for this
    probe), /roots/0 is fetched from https://localhost:15000 (likewise) and
    saved; with that root as the only trust anchor, GET /dir verifies, lego
    (LEGO_CA_CERTIFICATES=<root>, --http --http.port :5002) and certbot
    (REQUESTS_CA_BUNDLE=<root>, --standalone --http-01-port 5002) each get a
    certificate from https://localhost:14000/dir, whose chain verifies
    against that root and whose leaf is for exactly the requested name. What
    the working directory holds afterwards is noted."""
    need_certbot()
    lego = need_lego()
    import urllib3  # pylint: disable=import-outside-toplevel
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    cwd = Path(tempfile.mkdtemp(prefix="pebble-compat-no-files-"))
    try:
        ctx.start_pebble(config=None, dnsserver=False, env=ALWAYS_VALID, cwd=cwd,
                         verify=False, timeout=20)
        r = requests.get(MGMT + "/roots/0", verify=False, timeout=10)
        ctx.require(r.status_code == 200, f"GET {MGMT}/roots/0 answers 200 (got {r.status_code})")
        root_cert = x509.load_pem_x509_certificate(r.content)
        d = ctx.path("no-files")
        rootf = d / "root.pem"
        rootf.write_text(r.text)
        ctx.note(f"/roots/0 subject {root_cert.subject.rfc4514_string()!r}")
        try:
            g = requests.get(DIRECTORY, verify=str(rootf), timeout=10)
            ok, got = g.status_code == 200, str(g.status_code)
        except requests.RequestException as exc:
            ok, got = False, one_line(f"{type(exc).__name__}: {exc}", 200)
        ctx.check(ok, f"GET {DIRECTORY} verifies with /roots/0 as the only trust anchor ({got})")

        name = rand_name("nofiles-lego")
        dl = ctx.path("lego")
        r = ctx.run("lego", [lego, "--server", DIRECTORY, "--email", "x@example.com",
                             "--accept-tos", "--domains", name, "--http", "--http.port", ":5002",
                             "--path", dl, "run"],
                    env={"LEGO_CA_CERTIFICATES": str(rootf)}, timeout=40, check=False)
        if ctx.check(r.returncode == 0, f"lego trusting only /roots/0 exits 0 (got "
                     f"{r.returncode}: {one_line((r.stderr.strip() or r.stdout.strip())[-300:], 200)})"):
            check_chain(ctx, "lego", dl / "certificates" / f"{name}.crt", rootf.read_text(),
                        [name])

        name = rand_name("nofiles-certbot")
        dc = ctx.path("certbot")
        argv = [VENV_BIN / "certbot", "certonly", "--non-interactive", "--agree-tos",
                "-m", "certbot@example.com", "--server", DIRECTORY,
                "--config-dir", dc / "config", "--work-dir", dc / "work", "--logs-dir", dc / "logs",
                "--standalone", "--preferred-challenges", "http", "--http-01-port", "5002",
                "--cert-name", "compat", "-d", name]
        r = ctx.run("certbot", argv, env={"REQUESTS_CA_BUNDLE": str(rootf)}, timeout=45,
                    check=False)
        if ctx.check(r.returncode == 0, f"certbot trusting only /roots/0 exits 0 (got "
                     f"{r.returncode}: {one_line((r.stderr.strip() or r.stdout.strip())[-300:], 200)})"):
            check_chain(ctx, "certbot", dc / "config" / "live" / "compat" / "fullchain.pem",
                        rootf.read_text(), [name])
        ctx.note(f"the working directory holds {sorted(p.name for p in cwd.iterdir())} afterwards")
    finally:
        try:
            ctx.stop_all()
        finally:
            shutil.rmtree(cwd, ignore_errors=True)


# --------------------------------------------------------------------------
# the list: name, function, per-scenario timeout in seconds
# --------------------------------------------------------------------------

SCENARIOS = [
    Scenario("test-config", test_config, 40),
    Scenario("eab-config", eab_config, 25),
    Scenario("certbot-http01", certbot_http01, 60),
    Scenario("dns01-set-txt", dns01_set_txt, 30),
    Scenario("node-acme-client", node_acme_client, 60),
    Scenario("lego-eab", lego_eab, 45),
    Scenario("management", management, 30),
    Scenario("management-renewal-info", management_renewal_info, 30),
    Scenario("env-nonce-reject", env_nonce_reject, 30),
    Scenario("env-authz-reuse", env_authz_reuse, 30),
    Scenario("env-chain-length", env_chain_length, 30),
    Scenario("env-alternate-roots", env_alternate_roots, 60),
    Scenario("env-orders-per-page", env_orders_per_page, 30),
    Scenario("concurrency", concurrency, 75),
    Scenario("no-cn-for-ip", no_cn_for_ip, 30),
    Scenario("config-profiles", config_profiles, 30),
    Scenario("config-retry-after", config_retry_after, 40),
    Scenario("config-domain-blocklist", config_domain_blocklist, 25),
    Scenario("debian-cts-dns01", debian_cts_dns01, 110),
    Scenario("debian-cts-caa", debian_cts_caa, 60),
    Scenario("no-files", no_files, 110),
]
for _s in SCENARIOS:
    _s.doc = " ".join((_s.func.__doc__ or "").split())
