"""The test node's certificates, made with openssl: one CA signs the apiserver's serving
certificate, the kubelet's serving certificate and the apiserver's client certificate for the
kubelet (what `kubectl logs` and `kubectl exec` go through). EC P-256 keys: fast to make."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from .process import InfraError


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise InfraError(f"pki: openssl {args[0]} failed: {proc.stderr[-2000:]}")


def make_ca(d: Path) -> Pair:
    d.mkdir(parents=True, exist_ok=True)
    pair = Pair(d / "ca.crt", d / "ca.key")
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(pair.key), cwd=d)
    _openssl("req", "-x509", "-new", "-key", str(pair.key), "-days", "2", "-subj",
             "/CN=streamrec-test-node-ca", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", str(pair.cert), cwd=d)
    return pair


def issue(ca: Pair, d: Path, name: str, subject: str, *, server: bool,
          ips: tuple[str, ...] = (), dns: tuple[str, ...] = ()) -> Pair:
    """A certificate signed by ``ca``: a serving one (``server=True``, with the SANs) or a
    client one (``subject`` carries CN = user, O = group)."""
    pair = Pair(d / f"{name}.crt", d / f"{name}.key")
    csr = d / f"{name}.csr"
    ext = d / f"{name}.ext"
    sans = [f"IP:{ip}" for ip in ips] + [f"DNS:{n}" for n in dns]
    lines = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment",
             f"extendedKeyUsage={'serverAuth' if server else 'clientAuth'}"]
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    ext.write_text("\n".join(lines) + "\n")
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(pair.key), cwd=d)
    _openssl("req", "-new", "-key", str(pair.key), "-subj", subject, "-out", str(csr), cwd=d)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
             "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(pair.cert), cwd=d)
    return pair
