"""Chaos mode (docs/CHAOS.md) as real clients meet it: each recovers from an
injected 503, 429 or processing finalize in its own documented way, and a
client that comes back before its Retry-After is refused again. The faults
are scripted through the management API, as a client's CI would script
them. A server of this module's own (always-valid, with a management
listener) runs the scenarios; every test starts with all knobs off."""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
from acme import messages

import chisel2
from conftest import ConfiguredAcmeCa, free_port, start_module_server
from test_certbot import certbot_bin

pytestmark = pytest.mark.acme_ca_only("acme-ca's [chaos]; Pebble has no chaos mode")

ERR = "urn:ietf:params:acme:error:"


class ChaosAcmeCa(ConfiguredAcmeCa):
    """acme-ca (always-valid) with a management listener for the chaos API."""

    name = "acme-ca-chaos"

    def __init__(self, *a, **kw):
        self.mgmt_port = free_port()
        super().__init__(*a, **kw)

    def config_text(self) -> str:
        return ("[management]\n"
                f'listen = "127.0.0.1:{self.mgmt_port}"\n'
                "[chaos]\n"
                "seed = 7\n")

    def chaos(self, path: str = "", body: dict | None = None) -> requests.Response:
        url = f"https://127.0.0.1:{self.mgmt_port}/chaos{path}"
        if body is None and path in ("",):
            resp = requests.get(url, verify=self.tls_ca, timeout=10)
        else:
            resp = requests.post(url, json=body, verify=self.tls_ca, timeout=10)
        assert resp.status_code == 200, resp.text
        return resp

    def next_fault(self, endpoint: str, fault: str, retry_after: int = 2) -> None:
        self.chaos("/next", {"endpoint": endpoint, "fault": fault, "retry_after": retry_after})


@pytest.fixture(scope="module")
def chaotic(tmp_path_factory):
    srv = start_module_server(tmp_path_factory, ChaosAcmeCa, "chaos")
    yield srv
    srv.kill()


@pytest.fixture(autouse=True)
def _knobs_off(chaotic):
    chaotic.chaos("/reset", {})
    yield
    chaotic.chaos("/reset", {})


def recording_client(srv: ChaosAcmeCa):
    """An acme-library client whose every HTTP response is kept."""
    client = chisel2.make_client(srv.directory, ca_bundle=srv.tls_ca)
    seen: list[requests.Response] = []
    client.net.session.hooks["response"].append(lambda r, *a, **kw: seen.append(r))
    return client, seen


def test_management_api_shows_and_checks_the_knobs(chaotic):
    knobs = chaotic.chaos().json()
    assert knobs["finalize_delay"] == 0 and knobs["endpoints"] == {}, knobs
    url = f"https://127.0.0.1:{chaotic.mgmt_port}/chaos"
    bad = requests.post(url, json={"validation_error": "nonsense"}, verify=chaotic.tls_ca,
                        timeout=10)
    assert bad.status_code == 400 and "validation_error" in bad.text, bad.text
    bad = requests.post(url + "/next", json={"endpoint": "newOrders", "fault": "drop"},
                        verify=chaotic.tls_ca, timeout=10)
    assert bad.status_code == 400, bad.text
    set_ = chaotic.chaos("", {"finalize_delay": 3, "retry_after": 5}).json()
    assert set_["finalize_delay"] == 3 and set_["retry_after"] == 5, set_


def test_acme_library_waits_out_a_503_and_is_refused_if_it_does_not(chaotic):
    client, seen = recording_client(chaotic)
    chaotic.next_fault("newOrder", "unavailable", retry_after=2)
    name = chisel2.random_name("chaos-503")
    with pytest.raises(messages.Error) as info:
        chisel2.new_order(client, [name])
    assert info.value.typ == ERR + "serverInternal", info.value
    resp = seen[-1]
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "2", resp.headers
    # The library reads Retry-After as the time to come back.
    come_back = client.retry_after(resp, 10)
    # Ignoring it: refused again, the same way.
    with pytest.raises(messages.Error):
        chisel2.new_order(client, [name])
    assert seen[-1].status_code == 503
    # Honouring it: served.
    time.sleep(max(0.0, (come_back - datetime.datetime.now()).total_seconds()) + 0.2)
    pending = chisel2.new_order(client, [name])
    assert pending.orderr.body.status.name == "pending"


def test_acme_library_polls_a_processing_finalize_to_the_certificate(chaotic):
    chaotic.chaos("", {"finalize_delay": 2})
    client, seen = recording_client(chaotic)
    name = chisel2.random_name("chaos-processing")
    pending = chisel2.new_order(client, [name])
    chisel2.answer_challenges(client, pending.orderr.body.authorizations)
    chisel2.poll_authorizations(client, pending.orderr.body.authorizations, 30)
    # The library's own finalize: POST the CSR, then poll the order.
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=30)
    done = client.poll_and_finalize(pending.orderr, deadline)
    assert "BEGIN CERTIFICATE" in done.fullchain_pem
    finalize = [r for r in seen if r.request.url.endswith("/finalize")]
    assert finalize and finalize[0].json()["status"] == "processing", finalize
    assert finalize[0].headers["Retry-After"] == "2"


def test_a_dropped_connection_is_just_that(chaotic):
    chaotic.next_fault("directory", "drop")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(chaotic.directory, verify=chaotic.tls_ca, timeout=10)
    # Only that one: the next request is answered.
    assert requests.get(chaotic.directory, verify=chaotic.tls_ca, timeout=10).ok


def run_certbot(srv: ChaosAcmeCa, base: Path, name: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, REQUESTS_CA_BUNDLE=srv.tls_ca)
    cmd = [certbot_bin(), "certonly", "--standalone",
           "--http-01-port", str(free_port()), "--http-01-address", "127.0.0.1",
           "--server", srv.directory,
           "--non-interactive", "--agree-tos", "--register-unsafely-without-email",
           "--config-dir", str(base / "config"), "--work-dir", str(base / "work"),
           "--logs-dir", str(base / "logs"), "--cert-name", "chaos", "-d", name]
    return subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=180)


def test_certbot_stops_on_429_and_succeeds_when_run_again_later(chaotic, tmp_path):
    name = chisel2.random_name("chaos-certbot")
    base = tmp_path / "certbot"
    chaotic.next_fault("newOrder", "rateLimited", retry_after=2)
    first = run_certbot(chaotic, base, name)
    assert first.returncode != 0, first.stdout
    out = first.stdout + first.stderr
    assert "chaos: newOrder is rate limited" in out, out
    time.sleep(2.2)
    again = run_certbot(chaotic, base, name)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (base / "config" / "live" / "chaos" / "fullchain.pem").is_file()


def test_certbot_waits_for_a_processing_finalize(chaotic, tmp_path):
    chaotic.chaos("", {"finalize_delay": 2})
    base = tmp_path / "certbot"
    done = run_certbot(chaotic, base, chisel2.random_name("chaos-certbot-slow"))
    assert done.returncode == 0, done.stdout + done.stderr
    log = (base / "logs" / "letsencrypt.log").read_text()
    assert '"status":"processing"' in log, log[-3000:]


def run_lego(srv: ChaosAcmeCa, base: Path, name: str) -> subprocess.CompletedProcess:
    lego = shutil.which("lego")
    if not lego:
        pytest.skip("lego is not installed")
    cmd = [lego, "--server", srv.directory, "--email", "chaos@example.com", "--accept-tos",
           "--domains", name, "--http", "--http.port", f"127.0.0.1:{free_port()}",
           "--path", str(base), "run"]
    env = dict(os.environ, LEGO_CA_CERTIFICATES=srv.tls_ca)
    return subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=120)


def test_lego_waits_for_a_processing_finalize(chaotic, tmp_path):
    chaotic.chaos("", {"finalize_delay": 2})
    name = chisel2.random_name("chaos-lego")
    done = run_lego(chaotic, tmp_path / "lego", name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "lego" / "certificates" / f"{name}.crt").is_file()


def test_lego_stops_on_503_and_succeeds_when_run_again_later(chaotic, tmp_path):
    name = chisel2.random_name("chaos-lego-503")
    chaotic.next_fault("newOrder", "unavailable", retry_after=2)
    first = run_lego(chaotic, tmp_path / "lego", name)
    assert first.returncode != 0, first.stdout + first.stderr
    assert "chaos: newOrder is unavailable" in first.stdout + first.stderr
    time.sleep(2.2)
    again = run_lego(chaotic, tmp_path / "lego", name)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (tmp_path / "lego" / "certificates" / f"{name}.crt").is_file()
