#!/usr/bin/env python3
"""A small chisel2-style ACME client built on the `acme` library (certbot's).

As a script:

    DIRECTORY=https://127.0.0.1:14000/directory REQUESTS_CA_BUNDLE=root.pem \\
        python chisel2.py foo.com bar.com

registers an account, orders a certificate for the given names, answers the
http-01 challenge of every authorization (the server under test runs with
PEBBLE_VA_ALWAYS_VALID=1, so nothing has to be served), finalizes with a CSR
for a fresh key and writes the chain and the key out.

As a module it offers the same steps one by one, so that the tests can stop
anywhere in between (e.g. to restart the server).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from typing import Iterable, Optional, Union

import josepy as jose
from acme import challenges, client as acme_client, crypto_util, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

USER_AGENT = "acme-ca-e2e-chisel2"
DEFAULT_TIMEOUT = 30.0  # seconds, for every polling loop

# Polling: start short, back off, never sleep long. A server's Retry-After is
# honoured but capped so that a test never idles for seconds.
POLL_FIRST = 0.05
POLL_MAX = 0.5


# --------------------------------------------------------------------------
# keys
# --------------------------------------------------------------------------

def make_account_key(key_type: str = "ec") -> tuple[jose.JWK, jose.JWASignature]:
    """A fresh account key and the JWS algorithm that goes with it."""
    if key_type == "ec":
        return jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1())), jose.ES256
    if key_type == "rsa":
        return jose.JWKRSA(key=rsa.generate_private_key(65537, 2048)), jose.RS256
    raise ValueError(f"unknown key type {key_type!r}")


def alg_for(key: jose.JWK) -> jose.JWASignature:
    if isinstance(key, jose.JWKEC):
        return jose.ES256
    if isinstance(key, jose.JWKRSA):
        return jose.RS256
    raise ValueError(f"unsupported account key {type(key).__name__}")


def make_cert_key_pem(key_type: str = "ec") -> bytes:
    """A fresh certificate key as PKCS#8 PEM."""
    if key_type == "ec":
        key: Union[ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey] = ec.generate_private_key(
            ec.SECP256R1())
    elif key_type == "rsa":
        key = rsa.generate_private_key(65537, 2048)
    else:
        raise ValueError(f"unknown key type {key_type!r}")
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_csr_pem(names: Iterable[str], key_pem: Optional[bytes] = None) -> tuple[bytes, bytes]:
    """(csr_pem, key_pem) for the given DNS names; a fresh EC key if none is given."""
    if key_pem is None:
        key_pem = make_cert_key_pem("ec")
    return crypto_util.make_csr(key_pem, list(names)), key_pem


# --------------------------------------------------------------------------
# client and account
# --------------------------------------------------------------------------

def _verify(ca_bundle: Optional[str]) -> Union[bool, str]:
    # `requests` takes a path for `verify`; with True it falls back to
    # REQUESTS_CA_BUNDLE from the environment.
    return ca_bundle if ca_bundle else True


def uninitialized_client(directory: str, key: Optional[jose.JWK] = None,
                         ca_bundle: Optional[str] = None,
                         key_type: str = "ec") -> acme_client.ClientV2:
    """A ClientV2 with a key but no account yet."""
    if key is None:
        key, _ = make_account_key(key_type)
    net = acme_client.ClientNetwork(key, alg=alg_for(key), verify_ssl=_verify(ca_bundle),
                                    user_agent=USER_AGENT, timeout=30)
    dir_obj = acme_client.ClientV2.get_directory(directory, net)
    return acme_client.ClientV2(dir_obj, net)


def make_client(directory: str, key: Optional[jose.JWK] = None,
                email: Optional[str] = None, ca_bundle: Optional[str] = None,
                key_type: str = "ec") -> acme_client.ClientV2:
    """A ClientV2 with a freshly registered account (terms agreed)."""
    client = uninitialized_client(directory, key, ca_bundle, key_type)
    reg = messages.NewRegistration.from_data(email=email, terms_of_service_agreed=True)
    client.new_account(reg)
    return client


def existing_client(directory: str, key: jose.JWK,
                    ca_bundle: Optional[str] = None) -> acme_client.ClientV2:
    """A ClientV2 for the account that `key` already has (onlyReturnExisting).

    Raises messages.Error (accountDoesNotExist) if the server does not know it.
    """
    client = uninitialized_client(directory, key, ca_bundle)
    resp = client._post(client.directory["newAccount"],  # pylint: disable=protected-access
                        messages.NewRegistration(only_return_existing=True))
    client.net.account = messages.RegistrationResource(
        body=messages.Registration.from_json(resp.json()),
        uri=resp.headers["Location"])
    return client


def account_uri(client: acme_client.ClientV2) -> str:
    assert client.net.account is not None, "client has no account"
    return client.net.account.uri


def post_as_get(client: acme_client.ClientV2, url: str):
    """POST-as-GET through the client's account; returns the requests.Response."""
    return client._post_as_get(url)  # pylint: disable=protected-access


# --------------------------------------------------------------------------
# orders
# --------------------------------------------------------------------------

@dataclass
class Issued:
    """What a completed order leaves behind."""
    names: list[str]
    order_uri: str
    certificate_uri: str
    chain_pem: str          # as downloaded: leaf, then intermediate(s)
    key_pem: bytes          # the certificate's private key
    content_type: str = ""  # of the certificate download

    @property
    def pems(self) -> list[str]:
        return split_pem_chain(self.chain_pem)

    @property
    def leaf(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.pems[0].encode())


@dataclass
class PendingOrder:
    """An order as created, with the CSR it will be finalized with."""
    names: list[str]
    orderr: messages.OrderResource
    csr_pem: bytes
    key_pem: bytes
    extra: dict = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return self.orderr.uri


def new_order(client: acme_client.ClientV2, names: list[str],
              key_pem: Optional[bytes] = None) -> PendingOrder:
    csr_pem, key_pem = make_csr_pem(names, key_pem)
    orderr = client.new_order(csr_pem)
    if not orderr.uri:
        raise errors.ClientError("newOrder response has no Location header")
    return PendingOrder(list(names), orderr, csr_pem, key_pem)


def get_order(client: acme_client.ClientV2, order_uri: str) -> messages.Order:
    return messages.Order.from_json(post_as_get(client, order_uri).json())


def get_authz(client: acme_client.ClientV2, authz_uri: str) -> messages.Authorization:
    return messages.Authorization.from_json(post_as_get(client, authz_uri).json())


def challenge_type(challb: messages.ChallengeBody) -> str:
    """The challenge's type, also for types the acme library has no class for
    (it dropped tls-alpn-01)."""
    chall = challb.chall
    if isinstance(chall, challenges.UnrecognizedChallenge):
        return chall.jobj.get("type", "")
    return chall.typ


def find_challenge(authz: messages.Authorization, typ: str) -> messages.ChallengeBody:
    for challb in authz.challenges:
        if challenge_type(challb) == typ:
            return challb
    offered = [challenge_type(c) for c in authz.challenges]
    raise errors.ClientError(f"no {typ} challenge offered for {authz.identifier.value}: {offered}")


def answer_challenges(client: acme_client.ClientV2, authz_uris: Iterable[str],
                      chall_type: str = "http-01") -> None:
    """POST the response to the `chall_type` challenge of every pending authorization."""
    key = client.net.key
    for uri in authz_uris:
        authz = get_authz(client, uri)
        if authz.status == messages.STATUS_VALID:
            continue  # reused authorization
        challb = find_challenge(authz, chall_type)
        # A real client would now serve (http-01), publish (dns-01) or put in
        # a certificate (tls-alpn-01) the key authorization; the server runs
        # with PEBBLE_VA_ALWAYS_VALID=1, so only the POST matters here.
        if isinstance(challb.chall, challenges.KeyAuthorizationChallenge):
            response = challb.chall.response(key)  # serializes to {}
        else:  # tls-alpn-01, which the library no longer models
            response = _EmptyObject()
        client.answer_challenge(challb, response)


class _EmptyObject(jose.JSONDeSerializable):
    """The `{}` a client POSTs to a challenge URL to say it is ready."""

    def to_partial_json(self) -> dict:
        return {}

    @classmethod
    def from_json(cls, jobj):  # pragma: no cover - never received
        return cls()


def _sleep_for(resp, interval: float, deadline: float) -> float:
    """Sleep before the next poll: the backoff interval, or Retry-After when the
    server asks for it, capped at POLL_MAX and at the deadline. Returns the next
    interval."""
    wait = interval
    ra = resp.headers.get("Retry-After") if resp is not None else None
    if ra:
        try:
            wait = max(wait, min(float(ra), POLL_MAX))
        except ValueError:
            pass
    wait = max(0.0, min(wait, deadline - time.monotonic()))
    time.sleep(wait)
    return min(interval * 2, POLL_MAX)


def poll_authorizations(client: acme_client.ClientV2, authz_uris: Iterable[str],
                        timeout: float = DEFAULT_TIMEOUT) -> list[messages.Authorization]:
    """Wait until no authorization is pending; fail if one is not valid."""
    deadline = time.monotonic() + timeout
    result = []
    for uri in authz_uris:
        interval = POLL_FIRST
        while True:
            resp = post_as_get(client, uri)
            authz = messages.Authorization.from_json(resp.json())
            if authz.status not in (messages.STATUS_PENDING, messages.STATUS_PROCESSING):
                break
            if time.monotonic() >= deadline:
                raise errors.TimeoutError(f"authorization {uri} still {authz.status}")
            interval = _sleep_for(resp, interval, deadline)
        if authz.status != messages.STATUS_VALID:
            errs = [c.error for c in authz.challenges if c.error is not None]
            raise errors.ClientError(
                f"authorization {uri} for {authz.identifier.value} is {authz.status}: {errs}")
        result.append(authz)
    return result


def poll_order(client: acme_client.ClientV2, order_uri: str,
               until: Iterable[str] = ("ready", "valid", "invalid"),
               timeout: float = DEFAULT_TIMEOUT) -> messages.Order:
    """Poll the order until its status is one of `until`."""
    until = set(until)
    deadline = time.monotonic() + timeout
    interval = POLL_FIRST
    while True:
        resp = post_as_get(client, order_uri)
        order = messages.Order.from_json(resp.json())
        if order.status.name in until:
            return order
        if time.monotonic() >= deadline:
            raise errors.TimeoutError(f"order {order_uri} still {order.status} after {timeout}s")
        interval = _sleep_for(resp, interval, deadline)


def begin_finalize(client: acme_client.ClientV2, order: messages.Order,
                   csr_pem: bytes) -> messages.Order:
    """POST the CSR to the order's finalize URL; returns the order it answers with."""
    csr = x509.load_pem_x509_csr(csr_pem)
    resp = client._post(order.finalize,  # pylint: disable=protected-access
                        messages.CertificateRequest(csr=csr))
    return messages.Order.from_json(resp.json())


def download(client: acme_client.ClientV2, cert_uri: str) -> tuple[str, str]:
    """(chain_pem, content_type) of a certificate URL."""
    resp = post_as_get(client, cert_uri)
    return resp.text, resp.headers.get("Content-Type", "")


def finalize_and_download(client: acme_client.ClientV2, pending: PendingOrder,
                          timeout: float = DEFAULT_TIMEOUT) -> Issued:
    """Finalize a ready order (re-finalizing if it comes back to ready) and
    download its certificate."""
    deadline = time.monotonic() + timeout
    order = get_order(client, pending.uri)
    while True:
        status = order.status.name
        if status == "ready":
            order = begin_finalize(client, order, pending.csr_pem)
            continue
        if status == "processing":
            order = poll_order(client, pending.uri, ("ready", "valid", "invalid"),
                               max(0.1, deadline - time.monotonic()))
            continue
        if status == "valid":
            break
        raise errors.ClientError(f"order {pending.uri} is {status}: {order.error}")
    if not order.certificate:
        raise errors.ClientError(f"valid order {pending.uri} has no certificate URL")
    chain, ctype = download(client, order.certificate)
    return Issued(pending.names, pending.uri, order.certificate, chain, pending.key_pem, ctype)


def auth_and_issue(names: list[str], client: Optional[acme_client.ClientV2] = None,
                   directory: Optional[str] = None, ca_bundle: Optional[str] = None,
                   chall_type: str = "http-01", cert_key_type: str = "ec",
                   timeout: float = DEFAULT_TIMEOUT) -> Issued:
    """The whole flow: (account), order, challenges, poll, finalize, download."""
    if client is None:
        if directory is None:
            directory = os.environ["DIRECTORY"]
        client = make_client(directory, ca_bundle=ca_bundle)
    pending = new_order(client, names, make_cert_key_pem(cert_key_type))
    answer_challenges(client, pending.orderr.body.authorizations, chall_type)
    poll_authorizations(client, pending.orderr.body.authorizations, timeout)
    poll_order(client, pending.uri, ("ready", "valid", "invalid"), timeout)
    return finalize_and_download(client, pending, timeout)


# --------------------------------------------------------------------------
# names and PEM helpers
# --------------------------------------------------------------------------

def random_name(prefix: str = "chisel", domain: str = "com") -> str:
    """A name no other test uses, e.g. chisel-3f9c1a2b7d.com."""
    return f"{prefix}-{secrets.token_hex(5)}.{domain}"


def split_pem_chain(chain_pem: str) -> list[str]:
    """The PEM blocks of a chain, each ending with a newline."""
    out, cur = [], []
    for line in chain_pem.splitlines():
        if line.startswith("-----BEGIN "):
            cur = [line]
        elif line.startswith("-----END "):
            cur.append(line)
            out.append("\n".join(cur) + "\n")
            cur = []
        elif cur:
            cur.append(line)
    return out


# --------------------------------------------------------------------------
# script
# --------------------------------------------------------------------------

def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="+", help="DNS names for the certificate")
    p.add_argument("--directory", default=os.environ.get("DIRECTORY"),
                   help="ACME directory URL (default: $DIRECTORY)")
    p.add_argument("--ca-bundle", default=None,
                   help="CA file to trust for the server (default: $REQUESTS_CA_BUNDLE)")
    p.add_argument("--account-key-type", choices=("ec", "rsa"), default="ec",
                   help="account key: ec (ES256) or rsa (RS256)")
    p.add_argument("--cert-key-type", choices=("ec", "rsa"), default="ec")
    p.add_argument("--challenge", default="http-01",
                   choices=("http-01", "dns-01", "tls-alpn-01"))
    p.add_argument("--email", default=None)
    p.add_argument("--out-dir", default=".", help="where to write NAME.chain.pem and NAME.key.pem")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    args = p.parse_args(argv)

    if not args.directory:
        p.error("no directory URL: set DIRECTORY or pass --directory")
    key, _ = make_account_key(args.account_key_type)
    try:
        client = make_client(args.directory, key=key, email=args.email, ca_bundle=args.ca_bundle)
        print(f"account: {account_uri(client)}", file=sys.stderr)
        issued = auth_and_issue(args.names, client=client, chall_type=args.challenge,
                                cert_key_type=args.cert_key_type, timeout=args.timeout)
    except (messages.Error, errors.Error) as exc:
        print(f"chisel2: {exc}", file=sys.stderr)
        return 1
    os.makedirs(args.out_dir, exist_ok=True)
    base = os.path.join(args.out_dir, args.names[0].replace("*", "_"))
    with open(base + ".chain.pem", "w", encoding="ascii") as f:
        f.write(issued.chain_pem)
    fd = os.open(base + ".key.pem", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(issued.key_pem)
    print(f"order: {issued.order_uri}", file=sys.stderr)
    print(f"certificate: {issued.certificate_uri}", file=sys.stderr)
    print(base + ".chain.pem")
    return 0


if __name__ == "__main__":
    sys.exit(main())
