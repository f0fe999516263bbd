"""Crash test: the real server under concurrent issuance, SIGKILLed at
seeded random moments and restarted on the same data directory, loses no
certificate a client has received and leaves no order processing.

WORKERS client threads (the `acme` library through chisel2) issue
certificates in a loop, each with its own account. Any error (connection
refused or reset while the server is down, badNonce after a restart) makes
a worker drop its connection and take up the same order again where the
server says it is: pending -> answer the challenge, ready -> finalize,
processing -> poll, valid -> download. Every certificate a worker
downloads is recorded (order URL, certificate URL, the bytes served).

The main thread kills the server KILLS times: after each (re)start it waits
until the workers have made progress against that process, then for a
seeded random delay (counted, for half the kills as the seed picks them,
from the next finalize request sent), then SIGKILLs the process group and
restarts it on the same port and data directory. The seed
is printed; `ACME_CRASH_SEED=<n>` runs the same schedule again (thread
interleavings still vary). Afterwards the workers finish their current
orders, the server is stopped with SIGTERM, its SQLite database is checked
(integrity, every received certificate stored under its order, no lease
left on an order without a certificate, as many certificates as received
or more), and a clean start must serve every received certificate byte for
byte (POST-as-GET), with its order valid and pointing at it, and OCSP
saying good for each.
"""

from __future__ import annotations

import os
import random
import secrets
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import urlparse

import josepy as jose
import pytest
import requests
from acme import messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID

import chisel2

pytestmark = pytest.mark.acme_ca_only("pebble keeps no state across a restart")

WORKERS = 6
KILLS = 8
# Between a (re)start and its kill: first the workers must have done this
# many steps against the new process, then a random delay of up to this.
PROGRESS_STEPS = 3
MAX_KILL_DELAY = 1.5
# A kill aimed at finalize comes up to this long after a finalize was sent.
FINALIZE_DELAY = 0.1
# Generous bounds for a loaded 2-core machine; the loops poll, they do not
# sleep these out.
PROGRESS_TIMEOUT = 60.0
DRAIN_TIMEOUT = 90.0
SETTLE_TIMEOUT = 40.0
RETRY_PAUSE = 0.05


def crash_seed() -> int:
    value = os.environ.get("ACME_CRASH_SEED")
    return int(value) if value else secrets.randbits(32)


class Broken(Exception):
    """What a worker must not retry: the server broke a promise."""


@dataclass
class Received:
    """A certificate as a client got it."""
    worker: int
    order_uri: str
    cert_uri: str
    chain_pem: str


@dataclass
class Worker:
    """One client thread: its account key and what it has seen."""
    index: int
    key: jose.JWK
    orders: list[str] = field(default_factory=list)   # every order URL it was given
    received: list[Received] = field(default_factory=list)
    errors: int = 0
    last_error: str = ""
    fatal: str = ""        # what stopped it, if not the end of the run


class Load:
    """WORKERS threads issuing against `srv` until told to finish."""

    def __init__(self, srv, seed: int):
        self.srv = srv
        self.seed = seed
        self.workers = [Worker(i, chisel2.make_account_key("ec")[0]) for i in range(WORKERS)]
        self.finish = threading.Event()   # complete the current order, then stop
        self.lock = threading.Lock()
        self.steps = 0                    # answers received, all workers
        self.finalizing = 0               # finalize requests in flight now
        self.finalize_sent = threading.Event()   # set as a finalize request leaves
        self.threads = [threading.Thread(target=self._run, args=(w,), daemon=True,
                                         name=f"crash-worker-{w.index}")
                        for w in self.workers]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self, timeout: float) -> list[str]:
        """Names of the threads still running after `timeout`."""
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return [t.name for t in self.threads if t.is_alive()]

    def step(self) -> None:
        with self.lock:
            self.steps += 1

    # -- one worker ------------------------------------------------------
    def _connect(self, w: Worker):
        """A client for w's account, registering it the first time."""
        try:
            return chisel2.existing_client(self.srv.directory, w.key, ca_bundle=self.srv.tls_ca)
        except messages.Error as exc:
            if exc.typ != "urn:ietf:params:acme:error:accountDoesNotExist":
                raise
        return chisel2.make_client(self.srv.directory, key=w.key, ca_bundle=self.srv.tls_ca)

    def _run(self, w: Worker) -> None:
        client = None
        pending: Optional[chisel2.PendingOrder] = None
        while True:
            if pending is None and self.finish.is_set():
                return
            try:
                if client is None:
                    client = self._connect(w)
                    self.step()
                if pending is None:
                    pending = chisel2.new_order(client, [chisel2.random_name(f"crash{w.index}")])
                    w.orders.append(pending.uri)
                    self.step()
                if self._advance(w, client, pending):
                    pending = None
            except Broken as exc:
                w.fatal = str(exc)
                return
            except Exception as exc:  # pylint: disable=broad-except
                # The server is down, was restarted (nonces are per process),
                # or cut the connection: start again from what it says.
                w.errors += 1
                w.last_error = f"{type(exc).__name__}: {exc}"[:300]
                client = None
                time.sleep(RETRY_PAUSE)

    def _advance(self, w: Worker, client, pending: chisel2.PendingOrder) -> bool:
        """One step of `pending` from its current state; True once its
        certificate has been received."""
        order = chisel2.get_order(client, pending.uri)
        self.step()
        status = order.status.name
        if status == "pending":
            chisel2.answer_challenges(client, order.authorizations)
            chisel2.poll_authorizations(client, order.authorizations)
        elif status == "ready":
            with self.lock:
                self.finalizing += 1
            self.finalize_sent.set()
            try:
                chisel2.begin_finalize(client, order, pending.csr_pem)
            finally:
                with self.lock:
                    self.finalizing -= 1
        elif status == "processing":
            chisel2.poll_order(client, pending.uri, ("ready", "valid", "invalid"))
        elif status == "valid":
            if not order.certificate:
                raise Broken(f"valid order {pending.uri} has no certificate URL")
            chain, _ = chisel2.download(client, order.certificate)
            w.received.append(Received(w.index, pending.uri, order.certificate, chain))
            return True
        else:
            raise Broken(f"order {pending.uri} became {status}: {order.error}")
        self.step()
        return False


def wait_for(what: str, cond, timeout: float, seed: int) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"seed {seed}: {what} within {timeout:.0f}s", pytrace=False)
        time.sleep(0.02)


def db_path(srv) -> str:
    return str(srv.data_dir / "acme-ca.sqlite3")


class StoreReader:
    """Reads the stopped server's store: its SQLite file, or (a run with
    ACME_CA_E2E_PG_URL) its PostgreSQL database through psql."""

    def __init__(self, srv):
        from conftest import pg_database_for
        self.pg = pg_database_for(srv.data_dir)
        self.db = None if self.pg else sqlite3.connect(f"file:{db_path(srv)}?mode=ro", uri=True)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()

    def rows(self, sql: str, text_params: tuple = ()) -> list[tuple]:
        """`sql` with `?` for each of `text_params` (hex serials and ids the
        test made or read: quoted as literals for psql)."""
        if self.db is not None:
            return self.db.execute(sql, text_params).fetchall()
        for p in text_params:
            assert all(c.isalnum() or c in "-_" for c in p), p
            sql = sql.replace("?", f"'{p}'", 1)
        out = subprocess.run(["psql", self.pg, "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                              "-c", sql], check=True, capture_output=True, text=True).stdout
        return [tuple(line.split("\t")) for line in out.splitlines() if line]

    def integrity_ok(self) -> bool:
        if self.db is None:
            return True  # PostgreSQL keeps its own (WAL, checksummed pages)
        return self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def der_column(self) -> str:
        return "der" if self.db is not None else "encode(der, 'hex')"

    def der(self, value) -> bytes:
        return bytes(value) if self.db is not None else bytes.fromhex(value)


def last_segment(url: str) -> str:
    return urlparse(url).path.rstrip("/").rsplit("/", 1)[-1]


def leaf_and_issuer(chain_pem: str) -> tuple[x509.Certificate, x509.Certificate]:
    pems = chisel2.split_pem_chain(chain_pem)
    assert len(pems) >= 2, chain_pem
    return (x509.load_pem_x509_certificate(pems[0].encode()),
            x509.load_pem_x509_certificate(pems[1].encode()))


def ocsp_status(cert: x509.Certificate, issuer: x509.Certificate) -> ocsp.OCSPCertStatus:
    """POST an OCSP request to the responder the certificate names; check
    the answer is about it and signed by its issuer; its status."""
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    urls = [d.access_location.value for d in aia
            if d.access_method == AuthorityInformationAccessOID.OCSP]
    assert urls, "the certificate names no OCSP responder"
    req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    resp = requests.post(urls[0], data=req.public_bytes(serialization.Encoding.DER),
                         headers={"Content-Type": "application/ocsp-request"}, timeout=30)
    assert resp.status_code == 200, f"OCSP: HTTP {resp.status_code}"
    parsed = ocsp.load_der_ocsp_response(resp.content)
    assert parsed.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert parsed.serial_number == cert.serial_number
    signer = parsed.certificates[0] if parsed.certificates else issuer
    key = signer.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(parsed.signature, parsed.tbs_response_bytes,
                   ec.ECDSA(parsed.signature_hash_algorithm))
    else:
        assert isinstance(key, rsa.RSAPublicKey), type(key)
        key.verify(parsed.signature, parsed.tbs_response_bytes, padding.PKCS1v15(),
                   parsed.signature_hash_algorithm)
    return parsed.certificate_status


def test_kill_under_load_loses_nothing(fresh_server, tmp_path):
    srv = fresh_server
    seed = crash_seed()
    print(f"\ncrash test seed {seed} (ACME_CRASH_SEED={seed} repeats the kill schedule)")
    rng = random.Random(seed)
    load = Load(srv, seed)
    load.start()
    schedule = []
    try:
        for kill in range(KILLS):
            since = load.steps
            wait_for(f"the workers made no progress after start #{srv.starts}",
                     lambda: load.steps >= since + PROGRESS_STEPS, PROGRESS_TIMEOUT, seed)
            # Half the kills (by the seed) aim at finalize: a moment just
            # after a finalize request was sent, when the lease may be taken
            # and the certificate signed but not yet stored.
            aim = rng.choice(["any moment", "a finalize"])
            delay = rng.uniform(0.0, MAX_KILL_DELAY if aim == "any moment" else FINALIZE_DELAY)
            if aim == "a finalize":
                load.finalize_sent.clear()
                wait_for("no finalize request was sent", load.finalize_sent.is_set,
                         PROGRESS_TIMEOUT, seed)
            time.sleep(delay)
            in_flight = load.finalizing
            srv.kill()
            schedule.append(f"kill {kill + 1} aimed at {aim}: {delay:.3f}s after, "
                            f"{in_flight} finalize(s) in flight")
            srv.restart()
        load.finish.set()
        hung = load.join(DRAIN_TIMEOUT)
    finally:
        load.finish.set()
    print("\n".join(schedule))
    errors = {w.index: (w.errors, w.last_error) for w in load.workers}
    assert not hung, f"seed {seed}: workers did not finish their orders: {hung}; {errors}"
    fatal = {w.index: w.fatal for w in load.workers if w.fatal}
    assert not fatal, f"seed {seed}: {fatal}"

    received = [r for w in load.workers for r in w.received]
    known_orders = [(w, o) for w in load.workers for o in w.orders]
    print(f"{len(received)} certificates received, {len(known_orders)} orders, "
          f"client errors per worker: {[w.errors for w in load.workers]}")
    assert received, f"seed {seed}: no certificate was issued"
    assert len({r.cert_uri for r in received}) == len(received), "a certificate URL came twice"

    # The store, read while the server is stopped (SIGTERM: a clean stop).
    srv.stop()
    db = StoreReader(srv)
    try:
        assert db.integrity_ok()
        stored = int(db.rows("SELECT COUNT(*) FROM certificates WHERE order_id IS NOT NULL"
                             )[0][0])
        assert stored >= len(received), f"seed {seed}: {stored} stored < {len(received)} received"
        leased = db.rows(
            "SELECT id FROM orders WHERE processing_until IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM certificates c WHERE c.order_id = orders.id)")
        assert not leased, f"seed {seed}: orders left with a finalize lease: {leased}"
        for r in received:
            leaf, _ = leaf_and_issuer(r.chain_pem)
            # Serials are 16 bytes, stored as lowercase hex (ca::serial_hex).
            found = db.rows(f"SELECT {db.der_column()}, order_id FROM certificates WHERE serial = ?",
                            (format(leaf.serial_number, "032x"),))
            assert found, f"seed {seed}: certificate of {r.order_uri} not stored"
            row = found[0]
            assert db.der(row[0]) == leaf.public_bytes(serialization.Encoding.DER), \
                f"seed {seed}: stored DER differs for {r.order_uri}"
            assert row[1] == last_segment(r.order_uri), (row[1], r.order_uri)
        print(f"store: {stored} certificates for {len(received)} received")
    finally:
        db.close()

    # A clean start: everything received is served as it was.
    srv.start()
    clients = {w.index: chisel2.existing_client(srv.directory, w.key, ca_bundle=srv.tls_ca)
               for w in load.workers}
    deadline = time.monotonic() + SETTLE_TIMEOUT
    for w, uri in known_orders:
        # No order is left processing: each finishes (by polling, bounded).
        order = chisel2.poll_order(clients[w.index], uri, ("pending", "ready", "valid", "invalid"),
                                   timeout=max(1.0, deadline - time.monotonic()))
        assert order.status.name == "valid", \
            f"seed {seed}: order {uri} is {order.status.name} after the run: {order.error}"
    by_order = {r.order_uri: r for r in received}
    assert len(by_order) == len(received), "two certificates received for one order"
    for r in received:
        client = clients[r.worker]
        order = chisel2.get_order(client, r.order_uri)
        assert order.status.name == "valid" and order.certificate == r.cert_uri, \
            f"seed {seed}: {r.order_uri}: {order.status.name}, certificate {order.certificate}"
        again, _ = chisel2.download(client, r.cert_uri)
        assert again.encode() == r.chain_pem.encode(), \
            f"seed {seed}: {r.cert_uri} is not served byte for byte as received"
        leaf, issuer = leaf_and_issuer(again)
        assert ocsp_status(leaf, issuer) == ocsp.OCSPCertStatus.GOOD, \
            f"seed {seed}: OCSP for {r.cert_uri} is not good"
