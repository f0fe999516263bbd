"""Monitoring endpoints of the real process (docs/OPERATIONS.md): /metrics,
/health and /ready on the plain-HTTP status listener, after one issuance
through the `acme` library."""

from __future__ import annotations

import re

import pytest
import requests

import chisel2

pytestmark = pytest.mark.acme_ca_only("the status listener's monitoring endpoints")

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$')


def scrape(status_url: str) -> dict[str, float]:
    """The samples of /metrics by `name{labels}`; every line must parse."""
    resp = requests.get(f"{status_url}/metrics", timeout=10)
    assert resp.status_code == 200, resp.text[:500]
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, float] = {}
    typed = set()
    for line in resp.text.splitlines():
        if not line:
            continue
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("# HELP "):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name = m.group(1)
        assert name.startswith("acme_ca_"), line
        assert any(name == t or name.startswith(t + "_") for t in typed), f"no TYPE for {line!r}"
        samples[name + (m.group(2) or "")] = float(m.group(3))
    return samples


def test_metrics_health_and_ready(server):
    status = getattr(server, "status_url", "").rstrip("/")
    assert status.startswith("http://"), f"no status listener URL: {status!r}"

    health = requests.get(f"{status}/health", timeout=10)
    assert health.status_code == 200 and health.text == "ok\n"
    ready = requests.get(f"{status}/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"ready": True}

    before = scrape(status)
    chisel2.auth_and_issue([chisel2.random_name("metrics")], directory=server.directory,
                           ca_bundle=server.tls_ca)
    after = scrape(status)

    valid = 'acme_ca_orders_total{state="valid"}'
    assert after[valid] == before.get(valid, 0) + 1
    issued = 'acme_ca_nonces_total{event="issued"}'
    assert after[issued] > before.get(issued, 0)
    attempts = 'acme_ca_validation_attempts_total{challenge="http-01",outcome="valid"}'
    assert after[attempts] >= before.get(attempts, 0) + 1
    assert after['acme_ca_listener_up{listener="acme"}'] == 1
    assert after['acme_ca_listener_up{listener="status"}'] == 1
    # The scrape before this one is counted by route, never by raw path.
    assert after['acme_ca_http_requests_total{listener="status",route="/metrics",status="200"}'] >= 1
    assert after['acme_ca_certificates_expiring{within="30d"}'] >= 0
