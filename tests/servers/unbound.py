"""``unbound`` serving DNS over TLS on a free loopback port, for the Netdns tests.

The certificate is signed by a CA made on the spot with ``openssl`` (``ca_file`` verifies it; the
name is ``server_name``). With ``drop=True`` it silently drops every query (``access-control:
deny``): a server that never answers.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from kdoctor.errors import SetupError
from kdoctor.local.dnsmasq import (
    DOMAIN,
    SERVER_NAME,
    ServerProcess,
    binary,
    free_dns_port,
    tail,
    unbound_records,
    wait_udp,
)

__all__ = ["Unbound"]


class Unbound(ServerProcess):
    """``unbound`` serving DNS over TLS (and plain UDP for readiness) on a loopback port."""

    def __init__(self, port: int | None = None, *, drop: bool = False, address: str = "127.0.0.1") -> None:
        self.port = port or free_dns_port()
        self.dir = Path(tempfile.mkdtemp(prefix="kdoctor-unbound-"))
        self.server_name = SERVER_NAME
        self.ca_file, cert, key = _make_certificates(self.dir, SERVER_NAME)
        self.log = self.dir / "unbound.log"
        records = unbound_records()
        conf = self.dir / "unbound.conf"
        conf.write_text(
            "server:\n"
            f"  interface: {address}@{self.port}\n"
            f"  tls-port: {self.port}\n"
            f"  tls-service-key: \"{key}\"\n"
            f"  tls-service-pem: \"{cert}\"\n"
            "  do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n"
            f"  directory: \"{self.dir}\"\n  pidfile: \"\"\n  use-syslog: no\n"
            f"  logfile: \"{self.log}\"\n  verbosity: 1\n  log-queries: yes\n"
            "  module-config: \"iterator\"\n  num-threads: 1\n"
            # Loopback has built-in "allow" rules; these, as specific, replace them.
            f"  access-control: 127.0.0.0/8 {'deny' if drop else 'allow'}\n"
            f"  access-control: ::1 {'deny' if drop else 'allow'}\n"
            f"  local-zone: \"{DOMAIN}.\" static\n{records}"
            "remote-control:\n  control-enable: no\n"
        )
        self.process = subprocess.Popen([binary("unbound"), "-d", "-c", str(conf)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        try:
            if drop:
                self._wait_log("start of service")
            else:
                wait_udp(self.port, self.process, "unbound", self.log)
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> Unbound:
        return self

    def _wait_log(self, text: str) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SetupError(f"unbound exited with {self.process.returncode}: {tail(self.log)}")
            if self.log.exists() and text in self.log.read_text(errors="replace"):
                return
            time.sleep(0.05)
        raise SetupError(f"unbound did not start within 10 s: {tail(self.log)}")


def _make_certificates(directory: Path, name: str) -> tuple[str, str, str]:
    """A CA and a server certificate for ``name`` (and 127.0.0.1, ::1) signed by it, made with
    ``openssl``; returns the CA file, the server certificate and its key."""
    openssl = binary("openssl")
    ca_key, ca, key, csr, cert = (str(directory / f) for f in
                                  ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = directory / "server.ext"
    ext.write_text(
        f"subjectAltName=DNS:{name},IP:127.0.0.1,IP:::1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    )
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    steps = [
        [openssl, "req", "-x509", *curve, "-keyout", ca_key, "-out", ca, "-days", "2",
         "-subj", "/CN=kdoctor test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        [openssl, "req", *curve, "-keyout", key, "-out", csr, "-subj", f"/CN={name}"],
        [openssl, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", str(ext)],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, check=False)
        if done.returncode != 0:
            raise SetupError(f"openssl failed ({' '.join(step[:3])}): {done.stderr.decode(errors='replace')}")
    return ca, cert, key
