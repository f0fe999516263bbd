"""State survives SIGKILL + restart on the same port and data dir."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests

import chisel2
from certcheck import verify_chain

PARALLEL = 6            # clients finalizing when the server is killed
SETTLE_TIMEOUT = 15.0   # how long an order may stay "processing" after restart

persistent = pytest.mark.acme_ca_only("pebble keeps no state across restarts")


def reconnect(srv, key):
    """A client for `key`'s existing account on the restarted server."""
    return chisel2.existing_client(srv.directory, key, ca_bundle=srv.tls_ca)


def test_restart_same_port(fresh_server):
    """The fixture's kill/restart: the server comes back on the same port."""
    srv = fresh_server
    directory = srv.directory
    srv.kill()
    assert not srv.alive
    with pytest.raises(requests.ConnectionError):
        requests.get(directory, verify=srv.tls_ca, timeout=5)
    srv.restart()
    assert srv.directory == directory
    resp = requests.get(directory, verify=srv.tls_ca, timeout=5)
    assert resp.status_code == 200 and "newOrder" in resp.json()


@persistent
def test_order_survives_restart(fresh_server, tmp_path):
    srv = fresh_server
    root_before = Path(srv.root_pem).read_bytes()
    key, _ = chisel2.make_account_key("ec")
    client = chisel2.make_client(srv.directory, key=key, ca_bundle=srv.tls_ca)
    account = chisel2.account_uri(client)
    names = [chisel2.random_name("restart-a"), chisel2.random_name("restart-b")]
    pending = chisel2.new_order(client, names)

    srv.kill()
    srv.restart()
    assert Path(srv.root_pem).read_bytes() == root_before, "restart made a new root"

    client = reconnect(srv, key)
    assert chisel2.account_uri(client) == account
    order = chisel2.get_order(client, pending.uri)
    assert order.status.name == "pending", order
    assert list(order.authorizations) == list(pending.orderr.body.authorizations)
    chisel2.answer_challenges(client, order.authorizations)
    chisel2.poll_authorizations(client, order.authorizations)
    order = chisel2.poll_order(client, pending.uri)
    assert order.status.name == "ready", order
    issued = chisel2.finalize_and_download(client, pending)
    verify_chain(issued.chain_pem, srv.root_pem, tmp_path, names)


@persistent
def test_certificate_survives_restart(fresh_server, tmp_path):
    srv = fresh_server
    key, _ = chisel2.make_account_key("ec")
    client = chisel2.make_client(srv.directory, key=key, ca_bundle=srv.tls_ca)
    names = [chisel2.random_name("kept")]
    issued = chisel2.auth_and_issue(names, client=client)

    srv.kill()
    srv.restart()

    client = reconnect(srv, key)
    order = chisel2.get_order(client, issued.order_uri)
    assert order.status.name == "valid"
    assert order.certificate == issued.certificate_uri
    again, _ = chisel2.download(client, issued.certificate_uri)
    assert again.encode() == issued.chain_pem.encode()
    verify_chain(again, srv.root_pem, tmp_path, names)


@persistent
@pytest.mark.parametrize("kill_when", ["first-answer", "at-once"])
def test_kill_during_parallel_finalize(fresh_server, tmp_path, kill_when):
    """Kill while PARALLEL clients finalize: as soon as the first of them has an
    answer, or right after they are let go (most requests still in flight)."""
    srv = fresh_server
    # A certificate downloaded before the crash must still be served after it.
    key0, _ = chisel2.make_account_key("ec")
    client0 = chisel2.make_client(srv.directory, key=key0, ca_bundle=srv.tls_ca)
    before = chisel2.auth_and_issue([chisel2.random_name("before")], client=client0)

    # PARALLEL accounts, each with a ready order.
    jobs = []
    for i in range(PARALLEL):
        key, _ = chisel2.make_account_key("ec")
        client = chisel2.make_client(srv.directory, key=key, ca_bundle=srv.tls_ca)
        pending = chisel2.new_order(client, [chisel2.random_name(f"par{i}")])
        authzs = pending.orderr.body.authorizations
        chisel2.answer_challenges(client, authzs)
        chisel2.poll_authorizations(client, authzs)
        assert chisel2.poll_order(client, pending.uri).status.name == "ready"
        jobs.append((key, client, pending))

    # All finalize at once.
    start = threading.Barrier(PARALLEL + 1)
    first_done = threading.Event()
    outcomes: list[str] = ["not run"] * PARALLEL

    def finalize(i: int) -> None:
        _, client, pending = jobs[i]
        start.wait()
        try:
            order = chisel2.begin_finalize(client, pending.orderr.body, pending.csr_pem)
            outcomes[i] = f"answered {order.status.name}"
        except Exception as exc:  # pylint: disable=broad-except
            outcomes[i] = f"error {type(exc).__name__}: {exc}"[:300]
        finally:
            first_done.set()

    threads = [threading.Thread(target=finalize, args=(i,), daemon=True) for i in range(PARALLEL)]
    for t in threads:
        t.start()
    start.wait()
    if kill_when == "first-answer":
        first_done.wait(timeout=30)
    else:
        time.sleep(0.01)
    srv.kill()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), f"finalize threads hung: {outcomes}"

    srv.restart()

    report = []
    for i, (key, _, pending) in enumerate(jobs):
        client = reconnect(srv, key)
        try:
            order = chisel2.poll_order(client, pending.uri, ("ready", "valid", "invalid"),
                                       timeout=SETTLE_TIMEOUT)
        except chisel2.errors.TimeoutError as exc:
            pytest.fail(f"order {i} stuck after restart ({outcomes[i]}): {exc}")
        report.append(f"{i}: {outcomes[i]} -> {order.status.name} after restart")
        assert order.status.name != "invalid", f"order {i} became invalid: {order.error}\n" + \
            "\n".join(report)
        issued = chisel2.finalize_and_download(client, pending)
        verify_chain(issued.chain_pem, srv.root_pem, tmp_path / f"job{i}", pending.names)

    client0 = reconnect(srv, key0)
    again, _ = chisel2.download(client0, before.certificate_uri)
    assert again == before.chain_pem, "certificate issued before the crash changed"
    print("\n".join(report))
