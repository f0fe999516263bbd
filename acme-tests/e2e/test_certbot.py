"""certbot certonly --standalone against the shared server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import chisel2
from conftest import free_port
from certcheck import verify_chain


def certbot_bin() -> str:
    beside = Path(sys.executable).parent / "certbot"
    if beside.is_file():
        return str(beside)
    found = shutil.which("certbot")
    if not found:
        pytest.fail("certbot not found (scripts/test installs it into target/e2e-venv)")
    return found


def run_certbot(server, ca_env, tmp_path: Path, names: list[str]) -> Path:
    """certonly --standalone for `names`; returns the lineage's directory."""
    base = tmp_path / "certbot"
    cmd = [certbot_bin(), "certonly", "--standalone",
           "--http-01-port", str(free_port()), "--http-01-address", "127.0.0.1",
           "--server", server.directory,
           "--non-interactive", "--agree-tos", "--register-unsafely-without-email",
           "--config-dir", str(base / "config"), "--work-dir", str(base / "work"),
           "--logs-dir", str(base / "logs"),
           "--cert-name", "e2e", "-v"]
    for name in names:
        cmd += ["-d", name]
    res = subprocess.run(cmd, env=ca_env, stdin=subprocess.DEVNULL, capture_output=True,
                         text=True, timeout=180)
    if res.returncode != 0:
        log = base / "logs" / "letsencrypt.log"
        tail = "\n".join(log.read_text().splitlines()[-80:]) if log.is_file() else "(no log)"
        pytest.fail(f"certbot exited {res.returncode}\n--- stdout ---\n{res.stdout}\n"
                    f"--- stderr ---\n{res.stderr}\n--- letsencrypt.log tail ---\n{tail}",
                    pytrace=False)
    return base / "config" / "live" / "e2e"


@pytest.mark.parametrize("count", [1, 3], ids=["one-name", "several-names"])
def test_certbot_certonly(server, ca_env, tmp_path, count):
    names = [chisel2.random_name(f"certbot{i}") for i in range(count)]
    live = run_certbot(server, ca_env, tmp_path, names)
    fullchain = (live / "fullchain.pem").read_text()
    verify_chain(fullchain, server.root_pem, tmp_path / "check", names)
    # cert.pem + chain.pem are the same two halves
    assert (live / "cert.pem").read_text() + (live / "chain.pem").read_text() == fullchain
