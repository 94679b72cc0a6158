"""Test PKI made with the openssl command line: a CA, a server certificate for 127.0.0.1 and
localhost, and a client certificate for mutual TLS (all EC P-256, valid for a day)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pki:
    """File paths of the test PKI."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    """A CA that signed nothing here: verifying the server with it must fail."""


def _run(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _ca(root: Path, name: str) -> tuple[Path, Path]:
    key, cert = root / f"{name}.key", root / f"{name}.crt"
    _run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", f"/CN={name}")
    return key, cert


def _leaf(root: Path, name: str, ca_key: Path, ca_cert: Path, ext: str) -> tuple[Path, Path]:
    key, csr, cert, extfile = (root / f"{name}.key", root / f"{name}.csr", root / f"{name}.crt",
                               root / f"{name}.ext")
    extfile.write_text(ext)
    _run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    _run("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
         "-out", str(cert), "-days", "1", "-extfile", str(extfile))
    return key, cert


def make_pki(root: Path, server_ips: tuple[str, ...] = ()) -> Pki:
    """Create the PKI under ``root``; the server certificate is also valid for ``server_ips``."""
    ca_key, ca_cert = _ca(root, "test-ca")
    _, other = _ca(root, "other-ca")
    names = ",".join(["IP:127.0.0.1", "DNS:localhost", *(f"IP:{ip}" for ip in server_ips)])
    skey, scert = _leaf(root, "server", ca_key, ca_cert,
                        f"subjectAltName={names}\nextendedKeyUsage=serverAuth\n")
    ckey, ccert = _leaf(root, "client", ca_key, ca_cert, "extendedKeyUsage=clientAuth\n")
    return Pki(ca=ca_cert, server_cert=scert, server_key=skey, client_cert=ccert, client_key=ckey,
               other_ca=other)
