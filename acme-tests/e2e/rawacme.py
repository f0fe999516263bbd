"""Plain `requests` + JWS signing, for protocol checks the `acme` library hides
(it retries on badNonce, raises on 200-for-existing-account, ...).

Every response goes through `RawAcme.post`, which records it, so a test can
check headers on all of them.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import josepy as jose
import requests
from acme import jws

from chisel2 import alg_for, make_account_key

JOSE = "application/jose+json"


class RawAcme:
    def __init__(self, directory_url: str, ca_bundle: Optional[str]):
        self.directory_url = directory_url
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "acme-ca-e2e-raw"
        # Passed on every request: a Session.verify would lose to
        # REQUESTS_CA_BUNDLE from the environment.
        self.verify = ca_bundle if ca_bundle else True
        resp = self.get(directory_url)
        resp.raise_for_status()
        self.dir = resp.json()
        self.responses: list[requests.Response] = []  # every POST response
        self.nonce: Optional[str] = None  # the latest Replay-Nonce seen

    def get(self, url: str, **kw: Any) -> requests.Response:
        return self.session.get(url, verify=self.verify, timeout=30, **kw)

    def head(self, url: str, **kw: Any) -> requests.Response:
        return self.session.head(url, verify=self.verify, timeout=30, **kw)

    # -- nonces ---------------------------------------------------------
    def new_nonce(self) -> str:
        resp = self.head(self.dir["newNonce"])
        assert "Replay-Nonce" in resp.headers, f"HEAD newNonce without Replay-Nonce: {resp.headers}"
        return resp.headers["Replay-Nonce"]

    def take_nonce(self) -> str:
        if self.nonce is not None:
            n, self.nonce = self.nonce, None
            return n
        return self.new_nonce()

    # -- signed requests ------------------------------------------------
    def sign(self, url: str, payload: Any, key: jose.JWK, kid: Optional[str] = None,
             nonce: Optional[str] = None) -> str:
        """A flattened JWS; payload None means POST-as-GET (empty payload)."""
        if payload is None:
            body = b""
        elif isinstance(payload, (bytes, str)):
            body = payload.encode() if isinstance(payload, str) else payload
        else:
            body = json.dumps(payload).encode()
        if nonce is None:
            nonce = self.take_nonce()
        return jws.JWS.sign(body, key=key, alg=alg_for(key), nonce=jose.decode_b64jose(nonce),
                            url=url, kid=kid).json_dumps()

    def post(self, url: str, payload: Any, key: jose.JWK, kid: Optional[str] = None,
             nonce: Optional[str] = None, accept: Optional[str] = None) -> requests.Response:
        data = self.sign(url, payload, key, kid, nonce)
        headers = {"Content-Type": JOSE}
        if accept:
            headers["Accept"] = accept
        resp = self.session.post(url, data=data, headers=headers, verify=self.verify, timeout=30)
        self.responses.append(resp)
        if "Replay-Nonce" in resp.headers:
            self.nonce = resp.headers["Replay-Nonce"]
        return resp

    # -- conveniences ---------------------------------------------------
    def new_account(self, key: Optional[jose.JWK] = None, **fields: Any
                    ) -> tuple[jose.JWK, requests.Response]:
        if key is None:
            key, _ = make_account_key("ec")
        payload = {"termsOfServiceAgreed": True}
        payload.update(fields)
        return key, self.post(self.dir["newAccount"], payload, key)

    def account(self) -> "Account":
        key, resp = self.new_account()
        assert resp.status_code == 201, problem_text(resp)
        return Account(self, key, resp.headers["Location"])


class Account:
    """A registered account: POSTs signed with kid."""

    def __init__(self, raw: RawAcme, key: jose.JWK, url: str):
        self.raw, self.key, self.url = raw, key, url

    def post(self, url: str, payload: Any, **kw: Any) -> requests.Response:
        return self.raw.post(url, payload, self.key, kid=self.url, **kw)

    def get(self, url: str, **kw: Any) -> requests.Response:
        return self.post(url, None, **kw)

    def new_order(self, names: list[str]) -> requests.Response:
        return self.post(self.raw.dir["newOrder"],
                         {"identifiers": [{"type": "dns", "value": n} for n in names]})


def problem_type(resp: requests.Response) -> str:
    try:
        return resp.json().get("type", "")
    except ValueError:
        return ""


def problem_text(resp: requests.Response) -> str:
    return f"HTTP {resp.status_code} {resp.headers.get('Content-Type')}: {resp.text[:2000]}"
