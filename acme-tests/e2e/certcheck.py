"""Checks on issued certificate chains, shared by the e2e tests."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterable

from cryptography import x509

from chisel2 import split_pem_chain


def openssl(*args: str, input_: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], input=input_, capture_output=True, timeout=30)


def sans(cert: x509.Certificate) -> list[str]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return ext.value.get_values_for_type(x509.DNSName)


def verify_chain(chain_pem: str, root_pem: str, workdir: Path,
                 names: Iterable[str]) -> x509.Certificate:
    """The chain is leaf then intermediate(s); it verifies with
    `openssl verify -CAfile root -untrusted intermediates leaf`; the leaf's DNS
    SANs are exactly `names` (in any order). Returns the leaf."""
    pems = split_pem_chain(chain_pem)
    assert len(pems) >= 2, f"expected leaf and intermediate, got {len(pems)} PEM block(s):\n{chain_pem}"
    assert all(p.startswith("-----BEGIN CERTIFICATE-----") for p in pems), chain_pem
    workdir.mkdir(parents=True, exist_ok=True)
    leaf_path, inter_path = workdir / "leaf.pem", workdir / "intermediates.pem"
    leaf_path.write_text(pems[0])
    inter_path.write_text("".join(pems[1:]))
    res = openssl("verify", "-CAfile", root_pem, "-untrusted", str(inter_path), str(leaf_path))
    out = (res.stdout + res.stderr).decode(errors="replace")
    assert res.returncode == 0 and out.strip().endswith(": OK"), f"openssl verify failed:\n{out}"

    certs = [x509.load_pem_x509_certificate(p.encode()) for p in pems]
    leaf = certs[0]
    for child, parent in zip(certs, certs[1:]):
        assert child.issuer == parent.subject, "chain is not in leaf-to-root order"
    assert sorted(sans(leaf)) == sorted(set(names)), \
        f"SANs {sans(leaf)} != requested {sorted(set(names))}"
    return leaf
