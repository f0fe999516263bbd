"""The operator service (`[service]`): its REST API through `requests`
against the real acme-ca process, and docs/service-openapi.json against
what that server answers.

One server for the module, started with a --config TOML that enables the
service on a free port with five tokens (admin "root", agents "ann" and
"art", requesters "alice" and "bob"), a key-encryption key, 3 s download
tokens, the two default profiles (server, device) written out, a "short"
profile (2 h validity, renewable at once, key downloadable only in the
second of issuance: key recovery) and two webhook receivers (one that
records and checks signatures, one that always answers 500; at most 3
attempts).

Every API call goes through `Api.call`, which checks the answer against
the OpenAPI document: the status code must be documented for the
operation, the media type too, and a JSON body must validate against the
documented schema (a small checker below: jsonschema is not among the
pinned packages). A request body the server accepted (2xx) must validate
against the documented request schema.

"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import io
import json
import re
import subprocess
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

import chisel2
from conftest import RATE_LIMITS_OFF, REPO_ROOT, AcmeCaServer, ServerError, free_port

pytestmark = pytest.mark.acme_ca_only("the operator service is acme-ca's own API")

SPEC_PATH = REPO_ROOT / "docs" / "service-openapi.json"
TOKENS = {
    "root": ("admin", "svc-admin-token-0123456789"),
    "ann": ("agent", "svc-agent-ann-0123456789"),
    "art": ("agent", "svc-agent-art-0123456789"),
    "alice": ("requester", "svc-alice-token-0123456789"),
    "bob": ("requester", "svc-bob-token-01234567890"),
}
KEK = base64.b64encode(bytes(range(32))).decode()
WEBHOOK_SECRET_RAW = b"webhook-secret-for-the-e2e-tests!"
WEBHOOK_SECRET = base64.b64encode(WEBHOOK_SECRET_RAW).decode()
NO_SUCH_RESOURCE = "no such resource"


def tok(name: str) -> str:
    return TOKENS[name][1]


# --------------------------------------------------------------------------
# a minimal JSON Schema checker (the subset docs/service-openapi.json uses)
# --------------------------------------------------------------------------

DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


class SchemaError(AssertionError):
    pass


def _type_ok(inst: Any, t: str) -> bool:
    return {
        "object": lambda: isinstance(inst, dict),
        "array": lambda: isinstance(inst, list),
        "string": lambda: isinstance(inst, str),
        "integer": lambda: isinstance(inst, int) and not isinstance(inst, bool),
        "number": lambda: isinstance(inst, (int, float)) and not isinstance(inst, bool),
        "boolean": lambda: isinstance(inst, bool),
        "null": lambda: inst is None,
    }[t]()


class Spec:
    """The OpenAPI document: operations by path and method, and a checker
    of instances against its schemas."""

    def __init__(self, doc: dict):
        self.doc = doc
        self.templates = []
        for template in doc["paths"]:
            rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
            self.templates.append((re.compile(rx), template))

    def resolve(self, node: dict) -> dict:
        seen = 0
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/"), ref
            target: Any = self.doc
            for part in ref[2:].split("/"):
                target = target[part]
            node = target
            seen += 1
            assert seen < 20, f"$ref loop at {ref}"
        return node

    def template_of(self, path: str) -> Optional[str]:
        for rx, template in self.templates:
            if rx.match(path):
                return template
        return None

    def operation(self, method: str, path: str) -> Optional[dict]:
        template = self.template_of(path)
        if template is None:
            return None
        return self.doc["paths"][template].get(method.lower())

    def check(self, inst: Any, schema: dict, where: str = "$") -> None:
        schema = self.resolve(schema)
        for sub in schema.get("allOf", []):
            self.check(inst, sub, where)
        if "anyOf" in schema:
            errors = []
            for sub in schema["anyOf"]:
                try:
                    self.check(inst, sub, where)
                    break
                except SchemaError as e:
                    errors.append(str(e))
            else:
                raise SchemaError(f"{where}: matches none of anyOf: {errors}")
        if "type" in schema:
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not any(_type_ok(inst, t) for t in types):
                raise SchemaError(f"{where}: {inst!r} is not of type {types}")
        if "const" in schema and inst != schema["const"]:
            raise SchemaError(f"{where}: {inst!r} != const {schema['const']!r}")
        if "enum" in schema and not any(
                inst == e and type(inst) is type(e) for e in schema["enum"]):
            raise SchemaError(f"{where}: {inst!r} not in enum {schema['enum']}")
        if isinstance(inst, dict):
            for r in schema.get("required", []):
                if r not in inst:
                    raise SchemaError(f"{where}: required property {r!r} missing "
                                      f"(has {sorted(inst)})")
            props = schema.get("properties", {})
            for k, v in inst.items():
                if k in props:
                    self.check(v, props[k], f"{where}.{k}")
                elif schema.get("additionalProperties") is False:
                    raise SchemaError(f"{where}: property {k!r} is not allowed")
                elif isinstance(schema.get("additionalProperties"), dict):
                    self.check(v, schema["additionalProperties"], f"{where}.{k}")
        if isinstance(inst, list):
            if "maxItems" in schema and len(inst) > schema["maxItems"]:
                raise SchemaError(f"{where}: more than {schema['maxItems']} items")
            if "minItems" in schema and len(inst) < schema["minItems"]:
                raise SchemaError(f"{where}: fewer than {schema['minItems']} items")
            if "items" in schema:
                for i, v in enumerate(inst):
                    self.check(v, schema["items"], f"{where}[{i}]")
        if isinstance(inst, str):
            if "pattern" in schema and not re.search(schema["pattern"], inst):
                raise SchemaError(f"{where}: {inst!r} does not match {schema['pattern']!r}")
            if "minLength" in schema and len(inst) < schema["minLength"]:
                raise SchemaError(f"{where}: shorter than {schema['minLength']}")
            if "maxLength" in schema and len(inst) > schema["maxLength"]:
                raise SchemaError(f"{where}: longer than {schema['maxLength']}")
            if schema.get("format") == "date-time" and not DATE_TIME.match(inst):
                raise SchemaError(f"{where}: {inst!r} is not an RFC 3339 date-time")
        if _type_ok(inst, "number"):
            if "minimum" in schema and inst < schema["minimum"]:
                raise SchemaError(f"{where}: {inst} < minimum {schema['minimum']}")
            if "maximum" in schema and inst > schema["maximum"]:
                raise SchemaError(f"{where}: {inst} > maximum {schema['maximum']}")

    def check_schema_name(self, inst: Any, name: str) -> None:
        self.check(inst, {"$ref": f"#/components/schemas/{name}"}, name)

    def response_spec(self, op: dict, status: int) -> Optional[dict]:
        responses = op["responses"]
        for key in (str(status), f"{str(status)[0]}XX", "default"):
            if key in responses:
                return self.resolve(responses[key])
        return None


# --------------------------------------------------------------------------
# the API client: every answer checked against the document
# --------------------------------------------------------------------------

class Api:
    def __init__(self, base: str, verify: str, spec: Spec):
        self.base = base
        self.verify = verify
        self.spec = spec
        self.session = requests.Session()
        # (METHOD, template, status) of every documented call, for the report.
        self.seen: set[tuple[str, str, int]] = set()

    def call(self, method: str, path: str, who: Optional[str] = None, *,
             json_body: Any = None, data: Any = None, params: Any = None,
             headers: Optional[dict] = None, check: bool = True) -> requests.Response:
        h = dict(headers or {})
        if who is not None:
            h["Authorization"] = f"Bearer {tok(who)}"
        if json_body is not None:
            data = json.dumps(json_body).encode()
            h.setdefault("Content-Type", "application/json")
        resp = self.session.request(method, self.base + path, data=data, params=params,
                                    headers=h, verify=self.verify, timeout=30)
        if check:
            self.conforms(method, path, resp, json_body)
        return resp

    def conforms(self, method: str, path: str, resp: requests.Response, body: Any) -> None:
        """The answer is documented: status, media type, body schema."""
        spec = self.spec
        bare = path.split("?")[0]
        template = spec.template_of(bare)
        op = spec.operation(method, bare)
        if op is None:
            # Not documented: the server must not answer it either.
            if template is None:
                assert resp.status_code == 404 and resp.headers.get("Content-Type") == \
                    "application/problem+json" and resp.json()["detail"] == NO_SUCH_RESOURCE, \
                    f"the server answers an undocumented path: {method} {path} -> " \
                    f"{resp.status_code} {resp.text[:200]!r}"
            elif method.upper() != "HEAD" or "get" not in spec.doc["paths"][template]:
                assert resp.status_code == 405, \
                    f"the server answers an undocumented method: {method} {path} -> " \
                    f"{resp.status_code} {resp.text[:200]!r}"
            return
        self.seen.add((method.upper(), template, resp.status_code))
        what = f"{method} {path} -> {resp.status_code} {resp.text[:300]!r}"
        rspec = spec.response_spec(op, resp.status_code)
        assert rspec is not None, f"undocumented status: {what}"
        ctype = resp.headers.get("Content-Type", "").split(";")[0].strip()
        content = rspec.get("content")
        if content is None:
            assert not resp.content, f"documented without a body, but has one: {what}"
            return
        assert ctype in content, f"undocumented media type {ctype!r} (documented: " \
                                 f"{sorted(content)}): {what}"
        if ctype.endswith("json"):
            try:
                spec.check(resp.json(), content[ctype]["schema"], f"{template} {resp.status_code}")
            except SchemaError as e:
                raise AssertionError(f"{e}\n  in: {what}") from None
        for name, hspec in (rspec.get("headers") or {}).items():
            value = resp.headers.get(name)
            assert value is not None, f"documented header {name} missing: {what}"
            spec.check(value, self.spec.resolve(hspec)["schema"], name)
        if 200 <= resp.status_code < 300 and body is not None and "requestBody" in op:
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            try:
                spec.check(body, schema, f"request body of {method} {template}")
            except SchemaError as e:
                raise AssertionError(f"the server accepted a body the document refuses: {e}")

    # conveniences ------------------------------------------------------
    def issue(self, who: str, expect: int = 201, **fields) -> dict:
        body = {"entity_id": "e2e", "profile": "server", "key_type": "ec", "key_size": 256}
        body.update(fields)
        r = self.call("POST", "/certs", who, json_body=body)
        assert r.status_code == expect, r.text
        return r.json()

    def download(self, who: str, serial: str, body: Any = None, expect: int = 200) -> bytes:
        r = self.call("POST", f"/certs/{serial}/download-token", who, json_body=body)
        assert r.status_code == 200, r.text
        d = self.call("GET", f"/certs/{serial}/download", params={"token": r.json()["token"]})
        assert d.status_code == expect, d.text
        return d.content


def is_problem(r: requests.Response, status: int, detail: Optional[str] = None) -> dict:
    """The answer is an RFC 7807 problem document with this status."""
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text[:500]}"
    assert r.headers.get("Content-Type") == "application/problem+json", r.headers
    p = r.json()
    assert p["status"] == status and p["type"] == "about:blank", p
    if detail is not None:
        assert detail.lower() in p["detail"].lower(), f"{detail!r} not in {p['detail']!r}"
    return p


# --------------------------------------------------------------------------
# webhook receivers
# --------------------------------------------------------------------------

class HookReceiver:
    """A local HTTP server that records POSTed bodies; `status` is what it
    answers."""

    def __init__(self, status: int):
        self.answer = status
        self.received: list[tuple[dict, bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with receiver.lock:
                    receiver.received.append(({k.lower(): v for k, v in self.headers.items()},
                                              raw))
                self.send_response(receiver.answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self) -> list[tuple[dict, bytes]]:
        with self.lock:
            return list(self.received)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------
# the server
# --------------------------------------------------------------------------

PROFILES_TOML = """
[service.profiles.server]
description = "TLS server certificates, issued at once"
extended_key_usages = ["serverAuth"]
required = ["names"]

[service.profiles.device]
description = "Client certificates for devices, approved by an agent"
extended_key_usages = ["clientAuth"]
required = ["common_name"]
approval = "manual"
validity = "365d"

[service.profiles.short]
description = "Two hours, renewable at once, key downloadable only at issuance"
validity = "2h"
renew_before = "7199s"
key_download_window = "0s"
recovery_approvals = 2
"""


class ServiceAcmeCa(AcmeCaServer):
    """acme-ca with [service] enabled (always-valid ACME as in conftest)."""

    name = "acme-ca-service"

    def __init__(self, *a, hooks: list[str], **kw):
        super().__init__(*a, **kw)
        self.service_port = free_port()
        self.service_url = f"https://127.0.0.1:{self.service_port}"
        self.config = self.data_dir.parent / "service.toml"
        self.hooks = hooks
        self.write_config()

    def write_config(self) -> None:
        lines = ["[service]", "enabled = true", f'listen = "127.0.0.1:{self.service_port}"',
                 f'kek = "{KEK}"', 'download_token_lifetime = "3s"',
                 f"webhooks = {json.dumps(self.hooks)}", f'webhook_secret = "{WEBHOOK_SECRET}"',
                 "webhook_max_attempts = 3"]
        for name, (role, token) in TOKENS.items():
            lines += ["", "[[service.tokens]]", f'name = "{name}"', f'token = "{token}"',
                      f'role = "{role}"']
        self.config.write_text("\n".join(lines) + "\n" + PROFILES_TOML + RATE_LIMITS_OFF)

    def command(self) -> list[str]:
        return super().command() + ["--config", str(self.config)]


@pytest.fixture(scope="module")
def hooks():
    good, bad = HookReceiver(200), HookReceiver(500)
    yield good, bad
    good.stop()
    bad.stop()


@pytest.fixture(scope="module")
def svc(tmp_path_factory, hooks):
    base = tmp_path_factory.mktemp("acme-ca-service")
    good, bad = hooks
    srv = ServiceAcmeCa(base / "data", base / "logs", hooks=[good.url, bad.url])
    try:
        try:
            srv.start()
        except ServerError as exc:
            pytest.fail(str(exc), pytrace=False)
        # The listener is bound before "ready"; wait until it answers.
        deadline = time.monotonic() + 10
        while True:
            try:
                requests.get(srv.service_url + "/profiles", verify=srv.root_pem, timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield srv
    finally:
        srv.kill()


@pytest.fixture(scope="module")
def spec() -> Spec:
    return Spec(json.loads(SPEC_PATH.read_text()))


@pytest.fixture(scope="module")
def api(svc, spec) -> Api:
    return Api(svc.service_url, svc.root_pem, spec)


# --------------------------------------------------------------------------
# helpers: files, openssl
# --------------------------------------------------------------------------

def openssl(*args: str, input_: Optional[bytes] = None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], input=input_, capture_output=True, timeout=30)


def unzip(blob: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        assert z.testzip() is None
        return {n: z.read(n) for n in z.namelist()}


def split_pems(text: str) -> list[str]:
    return re.findall(r"-----BEGIN CERTIFICATE-----\n.*?-----END CERTIFICATE-----\n?", text,
                      re.S)


def pubkey_of_cert(path: Path) -> bytes:
    r = openssl("x509", "-in", str(path), "-noout", "-pubkey")
    assert r.returncode == 0, r.stderr
    return r.stdout


def pubkey_of_key(path: Path) -> bytes:
    r = openssl("pkey", "-in", str(path), "-pubout")
    assert r.returncode == 0, r.stderr
    return r.stdout


def check_bundle(files: dict[str, bytes], root_pem: str, workdir: Path,
                 with_key: bool) -> x509.Certificate:
    """ca.pem + cert.pem (+ key.pem): the chain verifies with openssl, ca.pem
    ends with the server's root, and the key is the certificate's."""
    want = ["ca.pem", "cert.pem"] + (["key.pem"] if with_key else [])
    assert sorted(files) == want, sorted(files)
    workdir.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (workdir / name).write_bytes(content)
    ca, cert = workdir / "ca.pem", workdir / "cert.pem"
    res = openssl("verify", "-CAfile", str(ca), str(cert))
    out = (res.stdout + res.stderr).decode()
    assert res.returncode == 0 and out.strip().endswith(": OK"), out
    # And against the server's root only, the intermediates untrusted.
    res = openssl("verify", "-CAfile", root_pem, "-untrusted", str(ca), str(cert))
    out = (res.stdout + res.stderr).decode()
    assert res.returncode == 0 and out.strip().endswith(": OK"), out
    chain = split_pems(files["ca.pem"].decode())
    assert len(chain) >= 2 and chain[-1].strip() == Path(root_pem).read_text().strip()
    if with_key:
        assert pubkey_of_cert(cert) == pubkey_of_key(workdir / "key.pem"), \
            "key.pem is not the key of cert.pem"
    return x509.load_pem_x509_certificate(files["cert.pem"])


def eku(cert: x509.Certificate) -> set:
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def dns_sans(cert: x509.Certificate) -> list[str]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ext.get_values_for_type(x509.DNSName)


def cert_of(api: Api, who: str, serial: str) -> dict:
    r = api.call("GET", f"/certs/{serial}", who)
    assert r.status_code == 200, r.text
    return r.json()


def make_csr(name: str) -> tuple[str, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


# --------------------------------------------------------------------------
# the document itself
# --------------------------------------------------------------------------

METHODS = ("get", "post", "put", "patch", "delete")


def sample_path(template: str) -> str:
    return (template.replace("{serial}", "00ff").replace("{name}", "server")
            .replace("{id}", "no-such-id"))


def test_schema_checker_catches_mismatches(spec):
    """The checker the other tests rely on fails where it should."""
    good = {"type": "about:blank", "title": "conflict", "status": 409, "detail": "x"}
    spec.check_schema_name(good, "Problem")
    for bad in [{**good, "status": "409"}, {k: v for k, v in good.items() if k != "detail"},
                {**good, "title": "nope"}, [good], None]:
        with pytest.raises(SchemaError):
            spec.check_schema_name(bad, "Problem")
    with pytest.raises(SchemaError):
        spec.check_schema_name({"reason": "x", "extra": 1}, "RevokeInput")
    with pytest.raises(SchemaError):
        spec.check_schema_name({"token": "t", "expires": "yesterday"}, "DownloadToken")
    with pytest.raises(SchemaError):  # allOf: certificate PEM required in the detail
        spec.check_schema_name({"serial": "01", "common_name": None,
                                "not_before": "2026-01-01T00:00:00Z",
                                "not_after": "2026-01-01T00:00:00Z", "status": "valid",
                                "source": "acme"}, "CertificateDetail")


def test_openapi_document_is_well_formed(spec):
    doc = spec.doc
    assert doc["openapi"].startswith("3.1")
    assert doc["servers"] and doc["servers"][0]["url"].startswith("https://")
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        **doc["components"]["securitySchemes"]["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert doc["security"] == [{"bearerAuth": []}]
    # Every $ref resolves.
    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                spec.resolve(node)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(doc)
    op_ids = []
    for template, item in doc["paths"].items():
        placeholders = set(re.findall(r"\{([^}]+)\}", template))
        for method, op in item.items():
            assert method in METHODS, (template, method)
            op_ids.append(op["operationId"])
            params = [spec.resolve(p) for p in op.get("parameters", [])]
            declared = {p["name"] for p in params if p["in"] == "path"}
            assert declared == placeholders, (template, method, declared)
            if op.get("security") != []:
                assert "401" in op["responses"], (template, method)
            for code in op["responses"]:
                assert re.fullmatch(r"[1-5](\d\d|XX)|default", code), (template, code)
            if "requestBody" in op:
                schema = spec.resolve(op["requestBody"]["content"]["application/json"]["schema"])
                assert schema["type"] == "object"
    assert len(op_ids) == len(set(op_ids)), "operationIds are unique"
    # Only the download goes without the bearer token.
    unauth = [(t, m) for t, item in doc["paths"].items() for m, op in item.items()
              if op.get("security") == []]
    assert unauth == [("/certs/{serial}/download", "get")]


@pytest.mark.parametrize("template", json.loads(SPEC_PATH.read_text())["paths"])
def test_documented_operations_exist(api, spec, template):
    """Each documented operation answers (401 without a token or with a
    wrong one where bearer security applies), never 404/405; a method not
    documented on the path is 405 with an Allow header listing exactly the
    documented ones."""
    item = spec.doc["paths"][template]
    path = sample_path(template)
    for method, op in item.items():
        r = api.call(method.upper(), path)
        assert r.status_code not in (404, 405), f"{method} {template}: {r.status_code} {r.text}"
        if op.get("security") == []:
            is_problem(r, 403, "download token is required")
            continue
        is_problem(r, 401, "token is required")
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="acme-ca"'
        r = api.call(method.upper(), path,
                     headers={"Authorization": "Bearer not-a-token-0000000000"})
        is_problem(r, 401, "not valid")
    r = api.call("DELETE", path, "root")
    assert r.status_code == 405, (template, r.status_code, r.text)
    allow = {m.strip() for m in r.headers.get("Allow", "").split(",") if m.strip()}
    want = {m.upper() for m in item} | ({"HEAD"} if "get" in item else set())
    assert allow == want, f"{template}: server allows {sorted(allow)}, documented {sorted(want)}"


@pytest.mark.parametrize("method,path", [
    ("GET", "/"), ("GET", "/certs/"), ("GET", "/cert"), ("GET", "/profile"),
    ("GET", "/directory"), ("GET", "/certs/00ff/key"), ("POST", "/certs/00ff/unrevoke"),
    ("GET", "/certs/00ff/download-token"), ("GET", "/certs/00ff/renew/x"),
    ("GET", "/batches"), ("POST", "/batches"), ("POST", "/requests"),
    ("POST", "/requests/x/cancel"), ("GET", "/tokens"), ("GET", "/webhooks"),
    ("GET", "/openapi.json"), ("DELETE", "/nothing/here"), ("GET", "/crl/intermediate.crl"),
    ("GET", "/batches/x/download/y"), ("POST", "/recoveries/x/cancel"),
    ("GET", "/webhooks/deliveries/x"), ("GET", "/certs/00ff/recovery"),
    ("GET", "/recoveries/x/approve"),
])
def test_undocumented_paths_are_404_problem_documents(api, spec, method, path):
    """What the document does not list does not exist: 404 problem
    documents with or without a token (except 405 on a documented path)."""
    template = spec.template_of(path)
    for who in (None, "root"):
        r = api.call(method, path, who)
        if template is not None:
            # A documented path with an undocumented method.
            assert method.lower() not in spec.doc["paths"][template], (method, path)
            assert r.status_code == 405, (method, path, r.status_code)
        else:
            is_problem(r, 404, NO_SUCH_RESOURCE)


def test_authentication(api):
    for headers in [{}, {"Authorization": "Bearer not-a-token-0000000000"},
                    {"Authorization": f"Basic {tok('root')}"},
                    {"Authorization": "Bearer "}, {"Authorization": "Bearer " + "x" * 1025},
                    {"Authorization": tok("root")}]:
        r = api.call("GET", "/profiles", headers=headers)
        p = is_problem(r, 401)
        assert p["title"] == "unauthorized"
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="acme-ca"'
    # Every configured token; the scheme in lower case too.
    for who in TOKENS:
        assert api.call("GET", "/profiles", who).status_code == 200
    r = api.call("GET", "/profiles", headers={"Authorization": f"bearer {tok('ann')}"})
    assert r.status_code == 200
    # An unauthenticated body is not even parsed.
    r = api.call("POST", "/certs", data=b"{not json")
    is_problem(r, 401)


# --------------------------------------------------------------------------
# profiles
# --------------------------------------------------------------------------

def test_profiles(api):
    r = api.call("GET", "/profiles", "bob")
    assert r.status_code == 200
    profiles = {p["name"]: p for p in r.json()["profiles"]}
    assert list(profiles) == ["device", "server", "short"]
    assert profiles["server"]["approval"] == "auto"
    assert profiles["server"]["required"] == ["names"]
    assert profiles["server"]["extended_key_usages"] == ["serverAuth"]
    assert profiles["device"]["approval"] == "manual"
    assert profiles["device"]["required"] == ["common_name"]
    assert profiles["device"]["validity_seconds"] == 365 * 86400
    short = api.call("GET", "/profiles/short", "ann").json()
    assert short == profiles["short"]
    assert (short["validity_seconds"], short["renew_before_seconds"],
            short["key_download_window_seconds"], short["recovery_approvals"]) == (7200, 7199, 0, 2)
    assert short["rsa_sizes"] == [2048, 3072, 4096] and short["ec_sizes"] == [256, 384]
    is_problem(api.call("GET", "/profiles/nope", "alice"), 404, "no profile")


# --------------------------------------------------------------------------
# issuance and its errors
# --------------------------------------------------------------------------

def test_issue_roles_and_refusals(api):
    base = {"entity_id": "e2e", "profile": "server", "names": ["refused.example.com"],
            "key_type": "ec", "key_size": 256}
    # Agents approve; they do not request.
    for who in ("ann", "art"):
        p = is_problem(api.call("POST", "/certs", who, json_body=base), 403, "may not")
        assert p["title"] == "forbidden"
    cases = [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        ({**base, "colour": "red"}, "unknown field"),
        ({k: v for k, v in base.items() if k != "key_type"}, "missing field"),
        ({**base, "profile": "nope"}, "no profile"),
        ({**base, "key_type": "rsa", "key_size": 1024}, "1024"),
        ({**base, "key_type": "rsa", "key_size": 8192}, "8192"),
        ({**base, "key_size": 521}, "521"),
        ({**base, "key_type": "dsa", "key_size": 2048}, "dsa"),
        ({**base, "key_size": -1}, "not valid JSON"),
        ({**base, "names": []}, "requires names"),
        ({**base, "names": ["bad..name"]}, "bad..name"),
        ({**base, "ip_addresses": ["300.1.1.1"]}, "not an IP address"),
        ({**base, "entity_id": "x y"}, "entity_id"),
        ({**base, "entity_id": ""}, "entity_id"),
        ({**base, "ttl": 0}, "ttl"),
        ({**base, "ttl": 91 * 86400}, "ttl"),
        ({**base, "common_name": "x" * 65}, "common_name"),
        ({**base, "profile": "device", "names": []}, "requires common_name"),
        ({**base, "names": "a.example.com"}, "not valid JSON"),
    ]
    for body, detail in cases:
        if isinstance(body, bytes):
            r = api.call("POST", "/certs", "alice", data=body,
                         headers={"Content-Type": "application/json"})
        else:
            r = api.call("POST", "/certs", "alice", json_body=body)
        p = is_problem(r, 400, detail)
        assert p["title"] == "bad request"
    # Nothing was issued by all that.
    listed = api.call("GET", "/certs", "alice", params={"common_name": "refused.example.com"})
    assert listed.json()["total"] == 0


def test_issue_and_download_zip(api, svc, tmp_path):
    v = api.issue("alice", entity_id="backend-1", names=["zip.example.com", "www.zip.example.com"],
                  ip_addresses=["192.0.2.7"], ttl=3600)
    assert v["status"] == "issued" and v["kind"] == "issue" and v["requester"] == "alice"
    serial = v["serial_number"]
    assert v["serial"] == serial and v["ttl"] == 3600
    # The certificate as the API shows it.
    c = cert_of(api, "alice", serial)
    assert (c["status"], c["source"], c["entity_id"], c["profile"], c["key_archived"],
            c["common_name"]) == ("valid", "service", "backend-1", "server", True,
                                  "zip.example.com")
    # Download: a token, then the zip without a bearer token.
    r = api.call("POST", f"/certs/{serial}/download-token", "alice")
    assert r.status_code == 200
    token = r.json()["token"]
    expires = datetime.datetime.fromisoformat(r.json()["expires"].replace("Z", "+00:00"))
    left = (expires - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    assert 0 < left <= 4, left  # download_token_lifetime = 3s
    d = api.call("GET", f"/certs/{serial}/download", params={"token": token})
    assert d.status_code == 200
    assert d.headers["Content-Type"] == "application/zip"
    assert d.headers["Content-Disposition"] == f'attachment; filename="{serial}.zip"'
    assert d.headers["Cache-Control"] == "no-store"
    cert = check_bundle(unzip(d.content), svc.root_pem, tmp_path / "zip", with_key=True)
    assert format(cert.serial_number, "x").zfill(len(serial)) == serial
    assert sorted(dns_sans(cert)) == ["www.zip.example.com", "zip.example.com"]
    ips = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
        .get_values_for_type(x509.IPAddress)
    assert [str(i) for i in ips] == ["192.0.2.7"]
    assert eku(cert) == {ExtendedKeyUsageOID.SERVER_AUTH}
    lifetime = (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds()
    assert lifetime == 3599, lifetime  # ttl, RFC 5280 inclusive: not_after = nb + ttl - 1
    # The PEM the API shows is the downloaded certificate.
    assert x509.load_pem_x509_certificate(c["certificate"].encode()) == cert


def test_p12_with_a_password(api, svc, tmp_path):
    serial = api.issue("alice", entity_id="backend-2", names=["p12.example.com"],
                       key_type="rsa", key_size=2048)["serial_number"]
    # PKCS#12 needs a password; an unknown format is refused.
    for body, detail in [({"format": "p12"}, "password"),
                         ({"format": "p12", "password": ""}, "password"),
                         ({"format": "p12", "password": "x" * 129}, "password"),
                         ({"format": "tar"}, "not zip or p12"),
                         ({"format": "zip", "passphrase": "x"}, "unknown field"),
                         (["zip"], "not valid JSON")]:
        r = api.call("POST", f"/certs/{serial}/download-token", "alice", json_body=body)
        is_problem(r, 400, detail)
    blob = api.download("alice", serial, {"format": "p12", "password": "s3cret pass"})
    p12 = tmp_path / "c.p12"
    p12.write_bytes(blob)
    res = openssl("pkcs12", "-in", str(p12), "-passin", "pass:s3cret pass", "-noenc")
    out = res.stdout.decode()
    assert res.returncode == 0, res.stderr.decode()
    assert "-----BEGIN PRIVATE KEY-----" in out
    certs = split_pems(out)
    assert len(certs) == 3, out  # leaf, intermediate, root
    leaf = [c for c in certs if "p12.example.com" in
            x509.load_pem_x509_certificate(c.encode()).subject.rfc4514_string()]
    assert len(leaf) == 1
    (tmp_path / "leaf.pem").write_text(leaf[0])
    key = re.search(r"-----BEGIN PRIVATE KEY-----.*?-----END PRIVATE KEY-----\n", out, re.S)
    (tmp_path / "key.pem").write_text(key.group(0))
    assert pubkey_of_cert(tmp_path / "leaf.pem") == pubkey_of_key(tmp_path / "key.pem")
    # A wrong password does not open it.
    res = openssl("pkcs12", "-in", str(p12), "-passin", "pass:wrong", "-noenc")
    assert res.returncode != 0
    assert b"PRIVATE KEY" not in res.stdout
    # "pkcs12" is an alias of "p12".
    blob = api.download("alice", serial, {"format": "pkcs12", "password": "x"})
    assert blob[:1] == b"\x30"


def test_download_tokens_single_use_bound_and_short_lived(api):
    s1 = api.issue("alice", names=["tok1.example.com"])["serial_number"]
    s2 = api.issue("alice", names=["tok2.example.com"])["serial_number"]

    def token(serial, who="alice"):
        r = api.call("POST", f"/certs/{serial}/download-token", who)
        assert r.status_code == 200, r.text
        return r.json()["token"]

    def get(serial, t):
        return api.call("GET", f"/certs/{serial}/download", params={"token": t})

    # Used once, then refused.
    t = token(s1)
    assert get(s1, t).status_code == 200
    is_problem(get(s1, t), 403, "unknown, used, expired")
    # Bound to its certificate; the attempt with another serial spends it.
    t = token(s1)
    is_problem(get(s2, t), 403)
    is_problem(get(s1, t), 403)
    # No token, an empty one, a made-up one.
    is_problem(api.call("GET", f"/certs/{s1}/download"), 403, "download token is required")
    is_problem(get(s1, ""), 403)
    is_problem(get(s1, "x" * 43), 403)
    # A serial that is not hex is no certificate (the token is not looked at).
    is_problem(get("not-hex", "x" * 43), 404, "hexadecimal")
    # Who may ask for one: admins and the certificate's requester.
    assert token(s1, "root")
    is_problem(api.call("POST", f"/certs/{s1}/download-token", "bob"), 404)
    is_problem(api.call("POST", f"/certs/{s1}/download-token", "ann"), 403, "may not")
    is_problem(api.call("POST", "/certs/00ffeeddcc/download-token", "alice"), 404)
    is_problem(api.call("POST", "/certs/not-hex/download-token", "root"), 404)
    # Expired: the lifetime is 3 s.
    t = token(s1)
    time.sleep(3.2)
    is_problem(get(s1, t), 403)


def test_wildcard_name_is_issued_as_requested(api, svc, tmp_path):
    serial = api.issue("alice", names=["*.wild.example.com"])["serial_number"]
    files = unzip(api.download("alice", serial))
    cert = check_bundle(files, svc.root_pem, tmp_path, with_key=True)
    assert dns_sans(cert) == ["*.wild.example.com"]


def test_head_does_not_spend_a_download_token(api):
    serial = api.issue("alice", names=["head.example.com"])["serial_number"]
    t = api.call("POST", f"/certs/{serial}/download-token", "alice").json()["token"]
    h = api.call("HEAD", f"/certs/{serial}/download", params={"token": t}, check=False)
    assert h.status_code == 200
    assert api.call("GET", f"/certs/{serial}/download", params={"token": t}).status_code == 200


# --------------------------------------------------------------------------
# listing and visibility
# --------------------------------------------------------------------------

def test_certificates_visibility_and_filters(api):
    a = api.issue("alice", entity_id="vis-a", names=["vis-a.example.com"])["serial_number"]
    b = api.issue("bob", entity_id="vis-b", names=["vis-b.example.com"])["serial_number"]
    # Shown to its requester, agents and admins; to another requester not.
    for who in ("alice", "ann", "root"):
        assert cert_of(api, who, a)["requester"] == "alice"
    is_problem(api.call("GET", f"/certs/{a}", "bob"), 404, "no such certificate")
    # Any case, 0x, leading zeros.
    for spelling in (a.upper(), "0x" + a, "00" + a):
        assert cert_of(api, "alice", spelling)["serial"] == a
    is_problem(api.call("GET", "/certs/00ffeeddccbbaa", "root"), 404)
    is_problem(api.call("GET", "/certs/zz-top", "root"), 404)
    # Lists: requesters see their own.
    alice_all = api.call("GET", "/certs", "alice", params={"limit": 500}).json()
    assert alice_all["certificates"] and all(
        c["requester"] == "alice" for c in alice_all["certificates"])
    assert b not in {c["serial"] for c in alice_all["certificates"]}
    root_all = api.call("GET", "/certs", "root", params={"limit": 500}).json()
    assert {a, b} <= {c["serial"] for c in root_all["certificates"]}
    assert root_all["total"] >= alice_all["total"] + 1
    for params, want in [({"entity": "vis-b"}, [b]), ({"common_name": "vis-a.example.com"}, [a]),
                         ({"serial": a.upper()}, [a]),
                         ({"entity": "vis-b", "status": "revoked"}, []),
                         ({"entity": "vis-a", "expiring_before": "2000-01-01T00:00:00Z"}, []),
                         ({"entity": "vis-a", "status": "valid"}, [a])]:
        v = api.call("GET", "/certs", "ann", params=params).json()
        assert [c["serial"] for c in v["certificates"]] == want, params
        assert v["total"] == len(want)
    assert api.call("GET", "/certs", "bob", params={"entity": "vis-a"}).json()["total"] == 0
    # Paging: offset and limit, limit clamped to at least 1.
    page = api.call("GET", "/certs", "root", params={"limit": 1, "offset": 1}).json()
    assert (len(page["certificates"]), page["limit"], page["offset"]) == (1, 1, 1)
    assert api.call("GET", "/certs", "root", params={"limit": 0}).json()["limit"] == 1
    # Bad queries.
    for params, detail in [({"status": "bogus"}, "status"), ({"color": "red"}, "bad query"),
                           ({"limit": "abc"}, "bad query"), ({"offset": -1}, "bad query"),
                           ({"expiring_before": "tomorrow"}, "expiring_before")]:
        is_problem(api.call("GET", "/certs", "root", params=params), 400, detail)
    # A serial filter that is not hex: 404, as documented (not 400).
    is_problem(api.call("GET", "/certs", "root", params={"serial": "zz"}), 400, "hexadecimal")


def test_acme_certificates_through_the_service(api, svc, tmp_path):
    """Certificates issued over ACME are listed, shown, downloadable (no key)
    and revocable here; not renewable; invisible to requesters."""
    name = chisel2.random_name("svc-acme")
    issued = chisel2.auth_and_issue([name], directory=svc.directory, ca_bundle=svc.tls_ca)
    serial = format(issued.leaf.serial_number, "x")
    serial = serial.zfill(len(serial) + len(serial) % 2)
    v = api.call("GET", "/certs", "ann", params={"common_name": name}).json()
    assert v["total"] == 1
    c = v["certificates"][0]
    assert (c["serial"], c["source"], c["status"]) == (serial, "acme", "valid")
    assert "entity_id" not in c and "requester" not in c
    shown = cert_of(api, "root", serial)
    assert x509.load_pem_x509_certificate(shown["certificate"].encode()) == issued.leaf
    is_problem(api.call("GET", f"/certs/{serial}", "alice"), 404)
    assert api.call("GET", "/certs", "alice", params={"common_name": name}).json()["total"] == 0
    is_problem(api.call("POST", f"/certs/{serial}/renew", "alice"), 404)
    is_problem(api.call("POST", f"/certs/{serial}/renew", "root"), 409, "renew ACME certificates")
    files = unzip(api.download("root", serial))
    check_bundle(files, svc.root_pem, tmp_path, with_key=False)
    is_problem(api.call("POST", f"/certs/{serial}/download-token", "root",
                        json_body={"format": "p12", "password": "x"}), 409)
    r = api.call("POST", f"/certs/{serial}/revoke", "art", json_body={"reason": "superseded"})
    assert r.status_code == 200 and r.json()["revocation_reason"] == "superseded", r.text


# --------------------------------------------------------------------------
# manual approval
# --------------------------------------------------------------------------

DEVICE = {"entity_id": "thing-42", "profile": "device", "common_name": "thing-42",
          "key_type": "rsa", "key_size": 2048}


def test_manual_approval_pending_approve_issued(api, svc, tmp_path):
    r = api.call("POST", "/certs", "alice", json_body=DEVICE)
    assert r.status_code == 202, r.text
    req = r.json()
    assert req["status"] == "pending" and req["serial"] is None and "serial_number" not in req
    rid = req["id"]
    pending = api.call("GET", "/requests", "ann", params={"status": "pending", "limit": 500}).json()
    assert rid in {x["id"] for x in pending["requests"]}
    assert all(x["status"] == "pending" for x in pending["requests"])
    # Visibility.
    assert api.call("GET", f"/requests/{rid}", "alice").json()["id"] == rid
    assert api.call("GET", f"/requests/{rid}", "art").status_code == 200
    is_problem(api.call("GET", f"/requests/{rid}", "bob"), 404)
    assert rid not in {x["id"] for x in api.call("GET", "/requests", "bob").json()["requests"]}
    # Requesters do not approve (theirs or others').
    is_problem(api.call("POST", f"/requests/{rid}/approve", "alice"), 403, "may not")
    is_problem(api.call("POST", f"/requests/{rid}/approve", "bob"), 403)
    is_problem(api.call("POST", "/requests/no-such-id/approve", "ann"), 404)
    # An agent approves: issued at once.
    r = api.call("POST", f"/requests/{rid}/approve", "ann")
    assert r.status_code == 200, r.text
    done = r.json()
    assert (done["status"], done["decided_by"]) == ("issued", "ann")
    assert done["decided_at"] and done["serial"]
    # Not twice; not rejected afterwards.
    is_problem(api.call("POST", f"/requests/{rid}/approve", "art"), 409, "not pending")
    is_problem(api.call("POST", f"/requests/{rid}/reject", "art", json_body={"reason": "late"}),
               409, "not pending")
    c = cert_of(api, "alice", done["serial"])
    assert (c["common_name"], c["profile"], c["request_id"]) == ("thing-42", "device", rid)
    files = unzip(api.download("alice", done["serial"]))
    cert = check_bundle(files, svc.root_pem, tmp_path, with_key=True)
    assert eku(cert) == {ExtendedKeyUsageOID.CLIENT_AUTH}
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "thing-42"
    # An admin's own request cannot be approved by that admin.
    own = api.call("POST", "/certs", "root", json_body={**DEVICE, "entity_id": "root-thing"})
    assert own.status_code == 202
    is_problem(api.call("POST", f"/requests/{own.json()['id']}/approve", "root"), 403,
               "own requester")
    assert api.call("POST", f"/requests/{own.json()['id']}/approve", "art").json()["status"] \
        == "issued"


def test_own_request_cannot_be_rejected_by_its_requester(api):
    rid = api.call("POST", "/certs", "root",
                   json_body={**DEVICE, "entity_id": "root-own"}).json()["id"]
    is_problem(api.call("POST", f"/requests/{rid}/reject", "root",
                        json_body={"reason": "changed my mind"}), 403)


def test_manual_approval_reject(api):
    rid = api.call("POST", "/certs", "bob", json_body=DEVICE).json()["id"]
    path = f"/requests/{rid}/reject"
    is_problem(api.call("POST", path, "bob", json_body={"reason": "mine"}), 403, "may not")
    is_problem(api.call("POST", path, "ann"), 400, "not valid JSON")
    is_problem(api.call("POST", path, "ann", json_body={}), 400, "missing field")
    is_problem(api.call("POST", path, "ann", json_body={"reason": "x", "why": "y"}), 400,
               "unknown field")
    is_problem(api.call("POST", path, "ann", json_body={"reason": "x" * 501}), 400, "500")
    is_problem(api.call("POST", "/requests/no-such-id/reject", "ann",
                        json_body={"reason": "x"}), 404)
    r = api.call("POST", path, "ann", json_body={"reason": "unknown device"})
    assert r.status_code == 200
    v = r.json()
    assert (v["status"], v["reason"], v["decided_by"], v["serial"]) == \
        ("rejected", "unknown device", "ann", None)
    is_problem(api.call("POST", path, "art", json_body={"reason": "again"}), 409, "rejected")
    is_problem(api.call("POST", f"/requests/{rid}/approve", "art"), 409, "rejected")
    assert api.call("GET", f"/requests/{rid}", "bob").json()["status"] == "rejected"
    # Request list filters.
    v = api.call("GET", "/requests", "bob", params={"status": "rejected"}).json()
    assert rid in {x["id"] for x in v["requests"]}
    v = api.call("GET", "/requests", "root", params={"profile": "device", "limit": 500}).json()
    assert rid in {x["id"] for x in v["requests"]} and all(
        x["profile"] == "device" for x in v["requests"])
    for params in ({"status": "nope"}, {"colour": "red"}, {"offset": "x"}):
        is_problem(api.call("GET", "/requests", "bob", params=params), 400)


# --------------------------------------------------------------------------
# CSR upload
# --------------------------------------------------------------------------

def test_csr_upload_makes_a_batch(api, svc, tmp_path):
    (pem1, key1), (pem2, _) = make_csr("csr1.example.com"), make_csr("csr2.example.com")
    body = {"profile": "server", "entity_id": "fleet-7", "name": "two", "pem": pem1 + pem2}
    is_problem(api.call("POST", "/csr", "ann", json_body=body), 403, "may not")
    r = api.call("POST", "/csr", "alice", json_body=body)
    assert r.status_code == 201, r.text
    batch_id = r.json()["batch_id"]
    reqs = r.json()["requests"]
    assert len(reqs) == 2 and {x["kind"] for x in reqs} == {"csr"}
    assert all(x["status"] == "issued" and x["batch_id"] == batch_id for x in reqs)
    b = api.call("GET", f"/batches/{batch_id}", "alice").json()
    assert (b["size"], b["issued"], b["pending"], b["rejected"], b["failed"], b["name"],
            b["profile"], b["requester"]) == (2, 2, 0, 0, 0, "two", "server", "alice")
    assert api.call("GET", f"/batches/{batch_id}", "ann").status_code == 200
    is_problem(api.call("GET", f"/batches/{batch_id}", "bob"), 404, "no such batch")
    is_problem(api.call("GET", "/batches/no-such-batch", "root"), 404)
    listed = api.call("GET", "/requests", "alice", params={"batch": batch_id}).json()
    assert listed["total"] == 2
    # The batch's certificates as one zip.
    z = api.call("GET", f"/batches/{batch_id}/download", "alice")
    assert z.status_code == 200 and z.headers["Content-Type"] == "application/zip"
    assert z.headers["Content-Disposition"] == f'attachment; filename="batch-{batch_id}.zip"'
    zipped = unzip(z.content)
    assert sorted(zipped) == sorted(["ca.pem"] + [f"{x['serial']}.pem" for x in b["requests"]])
    for x in b["requests"]:
        shown = cert_of(api, "alice", x["serial"])["certificate"].encode()
        assert x509.load_pem_x509_certificate(zipped[f"{x['serial']}.pem"]) == \
            x509.load_pem_x509_certificate(shown)
    assert zipped["ca.pem"].decode().strip().endswith(Path(svc.root_pem).read_text().strip())
    assert api.call("GET", f"/batches/{batch_id}/download", "ann").status_code == 200
    is_problem(api.call("GET", f"/batches/{batch_id}/download", "bob"), 404, "no such batch")
    is_problem(api.call("GET", "/batches/no-such-batch/download", "root"), 404)
    # The certificates carry the CSRs' keys; the server holds no key.
    by_name = {}
    for x in b["requests"]:
        files = unzip(api.download("alice", x["serial"]))
        cert = check_bundle(files, svc.root_pem, tmp_path / x["serial"], with_key=False)
        by_name[dns_sans(cert)[0]] = cert
        assert cert_of(api, "alice", x["serial"])["key_archived"] is False
    assert sorted(by_name) == ["csr1.example.com", "csr2.example.com"]
    assert by_name["csr1.example.com"].public_key().public_numbers() == \
        key1.public_key().public_numbers()
    serial = b["requests"][0]["serial"]
    is_problem(api.call("POST", f"/certs/{serial}/download-token", "alice",
                        json_body={"format": "p12", "password": "x"}), 409, "private key")
    # Refusals: one bad CSR refuses the upload; nothing; unknown field; profile.
    bad = pem1 + "-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n"
    for b2, detail in [({**body, "pem": bad}, "CSR 2"),
                       ({**body, "pem": "nothing"}, "no CERTIFICATE REQUEST"),
                       ({**body, "extra": 1}, "unknown field"),
                       ({**body, "profile": "nope"}, "no profile"),
                       ({**body, "name": "n" * 129}, "128"),
                       ({k: v for k, v in body.items() if k != "pem"}, "missing field")]:
        is_problem(api.call("POST", "/csr", "alice", json_body=b2), 400, detail)


# --------------------------------------------------------------------------
# revocation: OCSP and CRL
# --------------------------------------------------------------------------

def fetch_crl_text(status_url: str, issuer: Path, workdir: Path) -> str:
    resp = requests.get(f"{status_url}/crl/intermediate.crl", timeout=30)
    assert resp.status_code == 200
    der = workdir / "intermediate.crl"
    der.write_bytes(resp.content)
    res = openssl("crl", "-inform", "DER", "-in", str(der), "-CAfile", str(issuer), "-noout")
    assert res.returncode == 0 and b"verify OK" in res.stdout + res.stderr
    res = openssl("crl", "-inform", "DER", "-in", str(der), "-text", "-noout")
    assert res.returncode == 0
    return res.stdout.decode()


def test_revoke_key_compromise_ocsp_and_crl(api, svc, tmp_path):
    serial = api.issue("alice", names=["rv.example.com"])["serial_number"]
    files = unzip(api.download("alice", serial))
    cert = check_bundle(files, svc.root_pem, tmp_path, with_key=True)
    intermediate = tmp_path / "intermediate.pem"
    intermediate.write_text(split_pems(files["ca.pem"].decode())[0])
    # The certificate's AIA names the status listener's OCSP responder.
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    ocsp_urls = [d.access_location.value for d in aia
                 if d.access_method == AuthorityInformationAccessOID.OCSP]
    assert ocsp_urls == [f"{svc.status_url}/ocsp"]
    path = f"/certs/{serial}/revoke"
    is_problem(api.call("POST", path, "alice", json_body={"reason": "keyCompromise"}), 403)
    is_problem(api.call("POST", path, "ann", json_body={"reason": "bored"}), 400, "RFC 5280")
    is_problem(api.call("POST", path, "ann", json_body={"reason": "7"}), 400, "RFC 5280")
    is_problem(api.call("POST", path, "ann", json_body={"reason": 1}), 400, "not valid JSON")
    is_problem(api.call("POST", path, "ann", json_body={"reason": "x", "at": 1}), 400,
               "unknown field")
    is_problem(api.call("POST", path, "ann"), 400)
    is_problem(api.call("POST", "/certs/00ffeeddcc/revoke", "ann",
                        json_body={"reason": "superseded"}), 404)
    r = api.call("POST", path, "ann", json_body={"reason": "Key Compromise"})
    assert r.status_code == 200, r.text
    v = r.json()
    assert (v["status"], v["revocation_reason"]) == ("revoked", "keyCompromise")
    assert v["revoked_at"]
    is_problem(api.call("POST", path, "root", json_body={"reason": "superseded"}), 409)
    assert cert_of(api, "alice", serial)["status"] == "revoked"
    listed = api.call("GET", "/certs", "alice", params={"status": "revoked", "limit": 500}).json()
    assert serial in {c["serial"] for c in listed["certificates"]}
    # OCSP, through openssl.
    res = subprocess.run(["openssl", "ocsp", "-issuer", str(intermediate),
                          "-cert", str(tmp_path / "cert.pem"), "-url", ocsp_urls[0],
                          "-CAfile", svc.root_pem, "-resp_text", "-timeout", "20"],
                         capture_output=True, text=True, timeout=30)
    out = res.stdout + res.stderr
    assert res.returncode == 0 and "Response verify OK" in out, out
    assert re.search(rf"^{re.escape(str(tmp_path / 'cert.pem'))}: revoked$", out, re.M), out
    assert re.search(r"Reason: keyCompromise", out), out
    # The CRL lists it (it is rebuilt about a second after a revocation).
    deadline = time.monotonic() + 10
    want = format(int(serial, 16), "X")
    while True:
        text = fetch_crl_text(svc.status_url, intermediate, tmp_path)
        m = re.search(rf"Serial Number: 0*{want}\n\s+Revocation Date:[^\n]*\n\s+CRL entry "
                      r"extensions:\n\s+X509v3 CRL Reason Code:\s*\n\s+([^\n]+)\n", text)
        if m:
            assert m.group(1).strip() == "Key Compromise"
            break
        assert time.monotonic() < deadline, f"{want} not in the CRL:\n{text}"
        time.sleep(0.3)


# --------------------------------------------------------------------------
# renewal
# --------------------------------------------------------------------------

def test_renew(api, svc, tmp_path):
    v = api.issue("alice", profile="short", entity_id="rn", names=["rn.example.com"])
    old = v["serial_number"]
    path = f"/certs/{old}/renew"
    is_problem(api.call("POST", path, "ann"), 403, "may not")
    is_problem(api.call("POST", path, "bob"), 404)
    is_problem(api.call("POST", "/certs/00ffeeddcc/renew", "alice"), 404)
    r = api.call("POST", path, "alice")
    assert r.status_code == 200, r.text
    new = r.json()["serial_number"]
    assert new and new != old
    assert r.json()["previous"]["serial"] == old and r.json()["previous"]["renewed_to"] == new
    assert r.json()["certificate"]["serial"] == new and r.json()["certificate"]["status"] == "valid"
    o = cert_of(api, "alice", old)
    assert (o["status"], o["revocation_reason"], o["renewed_to"]) == ("revoked", "superseded", new)
    n = cert_of(api, "alice", new)
    assert (n["status"], n["common_name"], n["entity_id"], n["profile"], n["renewed_to"]) == \
        ("valid", "rn.example.com", "rn", "short", None)
    # A new key too (the server made the old one).
    assert x509.load_pem_x509_certificate(n["certificate"].encode()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
        x509.load_pem_x509_certificate(cert_of(api, "root", old)["certificate"].encode()) \
        .public_key().public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    # Not twice.
    is_problem(api.call("POST", path, "alice"), 409)
    # The new one renews again (admin); a server-profile certificate (90 days,
    # renewable 30 days before expiry) not yet.
    assert api.call("POST", f"/certs/{new}/renew", "root").status_code == 200
    s = api.issue("alice", names=["early.example.com"])["serial_number"]
    is_problem(api.call("POST", f"/certs/{s}/renew", "alice"), 409, "window opens")


def test_renewal_by_an_admin_stays_with_the_requester(api):
    old = api.issue("alice", profile="short", entity_id="rn-admin",
                    names=["rn-admin.example.com"])["serial_number"]
    new = api.call("POST", f"/certs/{old}/renew", "root").json()["serial_number"]
    assert cert_of(api, "root", new)["requester"] == "alice"
    assert api.call("GET", f"/certs/{new}", "alice").status_code == 200


# --------------------------------------------------------------------------
# key recovery
# --------------------------------------------------------------------------

def test_key_recovery(api, svc, tmp_path):
    serial = api.issue("alice", profile="short", entity_id="kr",
                       names=["kr.example.com"])["serial_number"]
    other = api.issue("alice", profile="short", entity_id="kr",
                      names=["kr2.example.com"])["serial_number"]
    # The key download window (0 s) closes within a second: then no key
    # without a recovery.
    time.sleep(1.1)
    files = unzip(api.download("alice", serial))
    assert sorted(files) == ["ca.pem", "cert.pem"]
    is_problem(api.call("POST", f"/certs/{serial}/download-token", "alice",
                        json_body={"format": "p12", "password": "x"}), 409, "cannot be downloaded")
    # Who may ask: the certificate's requester or an admin.
    is_problem(api.call("POST", f"/certs/{serial}/recovery", "bob"), 404)
    is_problem(api.call("POST", f"/certs/{serial}/recovery", "ann"), 403, "may not")
    is_problem(api.call("POST", "/certs/00ffeeddcc/recovery", "root"), 404)
    r = api.call("POST", f"/certs/{serial}/recovery", "alice")
    assert r.status_code == 201, r.text
    rec = r.json()
    rid = rec["id"]
    assert (rec["serial"], rec["requester"], rec["status"], rec["approvals"], rec["required"]) \
        == (serial, "alice", "pending", [], 2)
    # Not approved yet: no token.
    body = {"format": "zip", "recovery": rid}
    is_problem(api.call("POST", f"/certs/{serial}/download-token", "alice", json_body=body), 409,
               "0 of 2")
    # Approvals: agents and admins, each once, not the requester.
    is_problem(api.call("POST", f"/recoveries/{rid}/approve", "alice"), 403, "may not")
    is_problem(api.call("POST", f"/recoveries/{rid}/approve", "bob"), 403)
    is_problem(api.call("POST", "/recoveries/no-such-id/approve", "ann"), 404)
    r = api.call("POST", f"/recoveries/{rid}/approve", "ann")
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["approvals"]) == ("pending", ["ann"])
    is_problem(api.call("POST", f"/recoveries/{rid}/approve", "ann"), 409, "already approved")
    is_problem(api.call("POST", f"/certs/{serial}/download-token", "alice", json_body=body), 409,
               "1 of 2")
    # Lists and visibility.
    pending = api.call("GET", "/recoveries", "art", params={"status": "pending"}).json()
    assert rid in {x["id"] for x in pending["recoveries"]}
    assert all(x["status"] == "pending" for x in pending["recoveries"])
    assert rid in {x["id"] for x in api.call("GET", "/recoveries", "alice").json()["recoveries"]}
    assert rid not in {x["id"] for x in api.call("GET", "/recoveries", "bob").json()["recoveries"]}
    is_problem(api.call("GET", f"/recoveries/{rid}", "bob"), 404)
    for params in ({"status": "bogus"}, {"colour": "red"}, {"limit": "x"}):
        is_problem(api.call("GET", "/recoveries", "art", params=params), 400)
    r = api.call("POST", f"/recoveries/{rid}/approve", "art")
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["approvals"]) == ("approved", ["ann", "art"])
    assert api.call("GET", f"/recoveries/{rid}", "ann").json()["status"] == "approved"
    is_problem(api.call("GET", "/recoveries/no-such-id", "ann"), 404)
    is_problem(api.call("POST", f"/recoveries/{rid}/approve", "root"), 409, "not pending")
    is_problem(api.call("POST", f"/recoveries/{rid}/reject", "root",
                        json_body={"reason": "late"}), 409)
    approved = api.call("GET", "/recoveries", "root", params={"status": "approved"}).json()
    assert rid in {x["id"] for x in approved["recoveries"]}
    # The recovery is bound to its certificate and its requester.
    is_problem(api.call("POST", f"/certs/{other}/download-token", "alice",
                        json_body={"recovery": rid}), 400, "another certificate")
    is_problem(api.call("POST", f"/certs/{serial}/download-token", "alice",
                        json_body={"recovery": "no-such-id"}), 404)
    # Approved: one download with the key, outside the window. Two tokens
    # may be asked for; the second download finds the recovery used.
    first = api.call("POST", f"/certs/{serial}/download-token", "alice", json_body=body)
    second = api.call("POST", f"/certs/{serial}/download-token", "alice", json_body=body)
    assert first.status_code == second.status_code == 200
    d = api.call("GET", f"/certs/{serial}/download", params={"token": first.json()["token"]})
    assert d.status_code == 200
    check_bundle(unzip(d.content), svc.root_pem, tmp_path / "recovered", with_key=True)
    done = api.call("GET", f"/recoveries/{rid}", "alice").json()
    assert done["status"] == "completed" and done["decided_at"]
    d = api.call("GET", f"/certs/{serial}/download", params={"token": second.json()["token"]})
    is_problem(d, 409, "already used")
    is_problem(api.call("POST", f"/certs/{serial}/download-token", "alice", json_body=body), 409,
               "completed")
    # An admin asks (it cannot approve its own); an admin approves another's;
    # PKCS#12 through a recovery.
    r = api.call("POST", f"/certs/{serial}/recovery", "root")
    assert r.status_code == 201 and r.json()["requester"] == "root", r.text
    rid2 = r.json()["id"]
    is_problem(api.call("POST", f"/recoveries/{rid2}/approve", "root"), 403, "own requester")
    rid3 = api.call("POST", f"/certs/{serial}/recovery", "alice").json()["id"]
    assert api.call("POST", f"/recoveries/{rid3}/approve", "root").status_code == 200
    assert api.call("POST", f"/recoveries/{rid3}/approve", "ann").json()["status"] == "approved"
    blob = api.download("alice", serial, {"format": "p12", "password": "pw", "recovery": rid3})
    (tmp_path / "r.p12").write_bytes(blob)
    res = openssl("pkcs12", "-in", str(tmp_path / "r.p12"), "-passin", "pass:pw", "-noenc")
    assert res.returncode == 0 and b"-----BEGIN PRIVATE KEY-----" in res.stdout, res.stderr
    assert api.call("GET", f"/recoveries/{rid3}", "root").json()["status"] == "completed"
    # Rejection.
    is_problem(api.call("POST", f"/recoveries/{rid2}/reject", "ann"), 400, "not valid JSON")
    is_problem(api.call("POST", f"/recoveries/{rid2}/reject", "ann",
                        json_body={"reason": "x", "more": 1}), 400, "unknown field")
    is_problem(api.call("POST", f"/recoveries/{rid2}/reject", "ann",
                        json_body={"reason": "x" * 501}), 400, "500")
    is_problem(api.call("POST", f"/recoveries/{rid2}/reject", "alice",
                        json_body={"reason": "x"}), 403)
    is_problem(api.call("POST", "/recoveries/no-such-id/reject", "ann",
                        json_body={"reason": "x"}), 404)
    r = api.call("POST", f"/recoveries/{rid2}/reject", "ann", json_body={"reason": "no need"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["reason"], r.json()["decided_by"]) == \
        ("rejected", "no need", "ann")
    is_problem(api.call("POST", f"/recoveries/{rid2}/approve", "art"), 409, "rejected")
    is_problem(api.call("POST", f"/recoveries/{rid2}/reject", "art",
                        json_body={"reason": "again"}), 409)
    is_problem(api.call("POST", f"/certs/{serial}/download-token", "root",
                        json_body={"recovery": rid2}), 409, "rejected")
    # A certificate whose key the server never had cannot be recovered.
    pem, _ = make_csr("kr-csr.example.com")
    up = api.call("POST", "/csr", "alice", json_body={"profile": "short", "entity_id": "kr",
                                                      "pem": pem}).json()
    is_problem(api.call("POST", f"/certs/{up['requests'][0]['serial']}/recovery", "alice"), 409,
               "no archived key")


# --------------------------------------------------------------------------
# webhooks
# --------------------------------------------------------------------------

def signed_events(receiver: HookReceiver, spec: Spec) -> list[dict]:
    """The events a receiver got; each one's signature checked and its body
    validated against the document's webhooks section."""
    out = []
    for headers, raw in receiver.bodies():
        want = "sha256=" + hmac.new(WEBHOOK_SECRET_RAW, raw, hashlib.sha256).hexdigest()
        got = headers.get("x-acme-ca-signature", "")
        assert hmac.compare_digest(got, want), f"signature {got!r}, want {want!r}: {raw[:300]!r}"
        assert headers.get("content-type") == "application/json", headers
        ev = json.loads(raw)
        hook = spec.doc["webhooks"][ev["type"]]["post"]
        spec.check(ev, hook["requestBody"]["content"]["application/json"]["schema"], ev["type"])
        out.append(ev)
    return out


def test_webhooks(api, svc, hooks, spec):
    good, bad = hooks
    # Admins only.
    for who in ("ann", "alice"):
        is_problem(api.call("GET", "/webhooks/deliveries", who), 403, "admin")
    for params in ({"status": "bogus"}, {"colour": "red"}):
        is_problem(api.call("GET", "/webhooks/deliveries", "root", params=params), 400)
    # A revocation and a renewal.
    revoked = api.issue("alice", entity_id="wh", names=["wh-rv.example.com"])["serial_number"]
    assert api.call("POST", f"/certs/{revoked}/revoke", "ann",
                    json_body={"reason": "cessation of operation"}).status_code == 200
    renewed = api.issue("alice", profile="short", entity_id="wh",
                        names=["wh-rn.example.com"])["serial_number"]
    new = api.call("POST", f"/certs/{renewed}/renew", "alice").json()["serial_number"]
    deadline = time.monotonic() + 10
    while True:
        evs = signed_events(good, spec)
        rv = [e for e in evs if e["type"] == "certificate.revoked"
              and e["data"]["serial"] == revoked]
        rn = [e for e in evs if e["type"] == "certificate.renewed"
              and e["data"]["old_serial"] == renewed]
        if rv and rn:
            break
        assert time.monotonic() < deadline, f"events received: {evs}"
        time.sleep(0.2)
    assert len(rv) == 1 and len(rn) == 1, evs
    assert (rv[0]["data"]["reason"], rv[0]["data"]["entity_id"]) == (5, "wh")
    assert (rn[0]["data"]["new_serial"], rn[0]["data"]["renewed_by"], rn[0]["data"]["profile"],
            rn[0]["data"]["entity_id"]) == (new, "alice", "short", "wh")
    assert len({e["id"] for e in evs}) == len(evs), "event ids are unique"
    # The renewal's own revocation of the old certificate is announced too,
    # as superseded: every revocation of the CA is.
    deadline = time.monotonic() + 10
    while not [e for e in evs if e["type"] == "certificate.revoked"
               and e["data"]["serial"] == renewed]:
        assert time.monotonic() < deadline, f"no superseded event: {evs}"
        time.sleep(0.2)
        evs = signed_events(good, spec)
    sup = [e for e in evs if e["type"] == "certificate.revoked" and e["data"]["serial"] == renewed]
    assert len(sup) == 1 and sup[0]["data"]["reason"] == 4, sup
    # Deliveries: the good receiver's are delivered at the first attempt;
    # the failing receiver's are retried (2 s, then 4 s) and, after
    # webhook_max_attempts = 3, failed.
    deadline = time.monotonic() + 10
    while True:
        # (The receiver has a body a moment before the server records it;
        # and events of the module's earlier tests may still be arriving,
        # so both sides are read again until they agree.)
        d = api.call("GET", "/webhooks/deliveries", "root",
                     params={"status": "delivered", "limit": 500}).json()
        evs = signed_events(good, spec)
        if d["total"] == len(d["deliveries"]) == len(evs):
            break
        assert time.monotonic() < deadline, (d, evs)
        time.sleep(0.2)
    assert d["total"] == len(d["deliveries"]) == len(evs)
    assert all((x["status"], x["url"], x["attempts"], x["last_error"]) ==
               ("delivered", good.url, 1, None) for x in d["deliveries"])
    deadline = time.monotonic() + 15
    while True:
        failed = api.call("GET", "/webhooks/deliveries", "root",
                          params={"status": "failed", "limit": 500}).json()["deliveries"]
        if failed:
            break
        pending = api.call("GET", "/webhooks/deliveries", "root",
                           params={"status": "pending", "limit": 500}).json()["deliveries"]
        assert all(x["url"] == bad.url and x["attempts"] < 3 for x in pending), pending
        assert time.monotonic() < deadline, f"nothing failed for good: {pending}"
        time.sleep(0.5)
    for x in failed:
        assert (x["url"], x["attempts"], x["status"]) == (bad.url, 3, "failed"), x
        assert "500" in x["last_error"], x
    # The failing receiver saw each of those attempts, signed like the others.
    bad_events = signed_events(bad, spec)
    for x in failed:
        event_id = x["id"].rsplit("-", 1)[0]
        assert sum(1 for e in bad_events if e["id"] == event_id) == 3, (x, bad_events)


# --------------------------------------------------------------------------
# request bodies and query parameters against the document
# --------------------------------------------------------------------------

def test_request_schemas_refuse_what_the_server_refuses(api, spec):
    """Where the document says additionalProperties: false, the server
    refuses an extra field (400); every documented query parameter of the
    lists is accepted and an undocumented one refused."""
    serial = api.issue("alice", names=["schema.example.com"])["serial_number"]
    rid = api.call("POST", "/certs", "alice", json_body=DEVICE).json()["id"]
    rec = api.call("POST", f"/certs/{serial}/recovery", "alice").json()["id"]
    samples = {("/certs", "post"): ("/certs", "alice"),
               ("/certs/{serial}/revoke", "post"): (f"/certs/{serial}/revoke", "ann"),
               ("/certs/{serial}/download-token", "post"): (f"/certs/{serial}/download-token",
                                                            "alice"),
               ("/csr", "post"): ("/csr", "alice"),
               ("/requests/{id}/reject", "post"): (f"/requests/{rid}/reject", "ann"),
               ("/recoveries/{id}/reject", "post"): (f"/recoveries/{rec}/reject", "ann")}
    bodies = set()
    for template, item in spec.doc["paths"].items():
        for method, op in item.items():
            if "requestBody" not in op:
                continue
            bodies.add((template, method))
            schema = spec.resolve(op["requestBody"]["content"]["application/json"]["schema"])
            assert schema.get("additionalProperties") is False, template
            path, who = samples[(template, method)]
            r = api.call(method.upper(), path, who, json_body={"surely_unknown": 1})
            is_problem(r, 400, "unknown field")
    assert bodies == set(samples)
    # Operations documented without a body ignore one.
    r = api.call("POST", f"/certs/{serial}/recovery", "alice", json_body={"anything": 1})
    assert r.status_code == 201, r.text
    # Query parameters of the lists.
    examples = {"offset": "0", "limit": "5", "entity": "x", "status": None, "common_name": "x",
                "serial": "01", "expiring_before": "2030-01-01T00:00:00Z", "profile": "server",
                "batch": "x"}
    for template in ("/certs", "/requests", "/recoveries", "/webhooks/deliveries"):
        op = spec.doc["paths"][template]["get"]
        documented = set()
        for p in map(spec.resolve, op["parameters"]):
            documented.add(p["name"])
            value = examples[p["name"]] or p["schema"]["enum"][0]
            r = api.call("GET", template, "root", params={p["name"]: value})
            assert r.status_code == 200, (template, p["name"], r.text)
        assert {"offset", "limit"} <= documented
        is_problem(api.call("GET", template, "root", params={"undocumented": "1"}), 400,
                   "unknown field")


def test_framework_rejections_are_as_documented(api, svc):
    """A body over 1 MiB is refused by the HTTP layer (413, text/plain, as
    documented); a download query with the token twice is a problem
    document (400)."""
    big = json.dumps({"profile": "server", "entity_id": "big",
                      "pem": "x" * (1024 * 1024)}).encode()

    def chunks():
        # Chunked (no Content-Length): the server reads up to its limit
        # before it answers, so the answer does not race the upload.
        for i in range(0, len(big), 65536):
            yield big[i:i + 65536]

    headers = {"Content-Type": "application/json"}
    r = api.call("POST", "/csr", "alice", data=chunks(), headers=headers)
    assert r.status_code == 413, r.text[:200]
    assert r.headers["Content-Type"].startswith("text/plain")
    r = api.call("GET", "/certs/00ff/download?token=a&token=b")
    is_problem(r, 400, "one token")


def test_observed_statuses_cover_the_document(api, spec):
    """Every documented success status was seen by this module (the other
    tests record every call)."""
    seen = api.seen
    if len(seen) < 40:
        pytest.skip("run with the whole module to measure coverage")
    # 500 and 503 (server failure, request timeout) are on every operation
    # and not provoked here.
    pairs = [(m.upper(), t, int(c)) for t, item in spec.doc["paths"].items()
             for m, op in item.items() for c in op["responses"] if c not in ("500", "503")]
    unseen = [f"{m} {t} {c}" for m, t, c in pairs if (m, t, c) not in seen]
    print(f"\ndocumented (operation, status) pairs seen, 500/503 aside: "
          f"{len(pairs) - len(unseen)} of {len(pairs)}; not exercised: {unseen}")
    assert [u for u in unseen if u.split()[-1].startswith("2")] == []
