"""Production rate limits (docs/RATELIMITS.md) as real clients meet them: the
acme library gets a rateLimited problem with HTTP 429 and Retry-After, and
certbot stops with the detail naming the limit. A server of this module's
own runs with small limits; the rest of the suite runs without."""

from __future__ import annotations

import datetime
import os
import subprocess
from pathlib import Path

import pytest
import requests
from acme import client as acme_client
from acme import messages

import chisel2
from conftest import ConfiguredAcmeCa, start_module_server
from test_certbot import certbot_bin, free_port

pytestmark = pytest.mark.acme_ca_only("acme-ca's [rate_limits]; Pebble has no rate limits")

ERR = "urn:ietf:params:acme:error:"
UTC = datetime.timezone.utc


class LimitedAcmeCa(ConfiguredAcmeCa):
    """acme-ca (always-valid) with rate limits switched on and made small."""

    name = "acme-ca-limited"

    def config_text(self) -> str:
        return ("[rate_limits]\n"
                "enabled = true\n"
                'new_orders_per_account = { count = 2, period = "1h" }\n'
                'duplicate_certificates = { count = 1, period = "7d" }\n')


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    srv = start_module_server(tmp_path_factory, LimitedAcmeCa, "ratelimits")
    yield srv
    srv.kill()


def test_acme_library_gets_rate_limited_with_retry_after(limited):
    client = chisel2.make_client(limited.directory, ca_bundle=limited.tls_ca)
    seen: list[requests.Response] = []
    client.net.session.hooks["response"].append(lambda r, *a, **kw: seen.append(r))
    for _ in range(2):
        chisel2.new_order(client, [chisel2.random_name("limited")])
    before = datetime.datetime.now(UTC)
    with pytest.raises(messages.Error) as info:
        chisel2.new_order(client, [chisel2.random_name("limited")])
    err = info.value
    assert err.typ == ERR + "rateLimited", err
    assert "new_orders_per_account" in err.detail and "2 per 1h" in err.detail, err.detail
    assert chisel2.account_uri(client).rsplit("/", 1)[1] in err.detail, err.detail
    resp = seen[-1]
    assert resp.status_code == 429
    assert resp.headers["Content-Type"] == "application/problem+json"
    secs = int(resp.headers["Retry-After"])
    # One order refills every 30 minutes; the two were spent moments ago.
    assert 1700 <= secs <= 1800, secs
    # The library reads the header as the (local, naive) time to come back.
    at = acme_client.ClientV2.retry_after(resp, 0)
    assert at >= datetime.datetime.now() + datetime.timedelta(seconds=1600), at
    # The detail ends with that time, in RFC 3339.
    free_at = datetime.datetime.fromisoformat(err.detail.rsplit("retry after ", 1)[1])
    assert abs((free_at - before).total_seconds() - secs) <= 5


def test_certbot_stops_on_a_duplicate_certificate_limit(limited, tmp_path):
    env = dict(os.environ, REQUESTS_CA_BUNDLE=limited.tls_ca)
    name = chisel2.random_name("certbot-limited")
    base = tmp_path / "certbot"

    def certonly(*extra: str) -> subprocess.CompletedProcess:
        cmd = [certbot_bin(), "certonly", "--standalone",
               "--http-01-port", str(free_port()), "--http-01-address", "127.0.0.1",
               "--server", limited.directory,
               "--non-interactive", "--agree-tos", "--register-unsafely-without-email",
               "--config-dir", str(base / "config"), "--work-dir", str(base / "work"),
               "--logs-dir", str(base / "logs"), "--cert-name", "limited", "-d", name, *extra]
        return subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=180)

    first = certonly()
    assert first.returncode == 0, first.stderr
    assert (base / "config" / "live" / "limited" / "fullchain.pem").is_file()
    # The same name set again (a forced renewal): refused at newOrder.
    again = certonly("--force-renewal")
    assert again.returncode != 0, again.stdout
    out = again.stdout + again.stderr
    assert "duplicate_certificates" in out and f"exactly the names {name}" in out, out
    log = (base / "logs" / "letsencrypt.log").read_text()
    assert "429" in log and "rateLimited" in log, log[-3000:]
    assert "Retry-After" in log or "retry-after" in log.lower(), log[-3000:]
