"""A throw-away DNS server on loopback for the demo, tests and benchmarks: a real ``dnsmasq``.

:class:`Dnsmasq` answers UDP and TCP on a free port of 127.0.0.1 and ::1 from a hosts file of
test names under ``kdoctor.test`` (unknown names there are NXDOMAIN), plus an SRV and a TXT
record. With ``log_queries`` every query it receives is written to a log file, so a test can
compare what the server saw with what the client reported (:meth:`Dnsmasq.query_count`). The
tests' DNS-over-TLS server (unbound) builds on the same pieces (``tests/servers/unbound.py``).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.message
import dns.query

from kdoctor.errors import SetupError

__all__ = ["DOMAIN", "HOSTS", "SERVER_NAME", "Dnsmasq", "ServerProcess", "binary", "free_dns_port", "tail",
           "unbound_records", "wait_udp"]

DOMAIN = "kdoctor.test"
HOSTS: dict[str, tuple[str, ...]] = {
    f"www.{DOMAIN}": ("10.53.0.1", "fd00:53::1"),
    f"api.{DOMAIN}": ("10.53.0.2",),
    f"multi.{DOMAIN}": ("10.53.0.3", "10.53.0.4"),
}
"""The names every test server answers, with their addresses."""
SRV_NAME = f"_http._tcp.www.{DOMAIN}"
TXT_NAME = f"txt.{DOMAIN}"
SERVER_NAME = f"dns.{DOMAIN}"
"""The name a DNS-over-TLS test server's certificate is for."""


def unbound_records() -> str:
    """``HOSTS`` as unbound ``local-data`` lines (A or AAAA by address), for a ``static`` zone."""
    return "".join(f'  local-data: "{name}. 60 IN {"AAAA" if ":" in a else "A"} {a}"\n'
                   for name, addrs in HOSTS.items() for a in addrs)


def free_dns_port() -> int:
    """A port free a moment ago for UDP and TCP on both 127.0.0.1 and ::1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        try:
            for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    with socket.socket(family, kind) as sock:
                        sock.bind((host, port))
        except OSError:
            continue
        return port
    raise SetupError("no port is free for DNS on 127.0.0.1 and ::1")


def binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    if path is None:
        raise SetupError(f"{name} is not installed: run ./scripts/install (Debian package {name})")
    return path


def wait_udp(port: int, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    """Wait until the server answers a query for ``www.kdoctor.test`` on 127.0.0.1."""
    query = dns.message.make_query(f"www.{DOMAIN}", "A")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SetupError(f"{what} exited with {process.returncode}: {tail(log)}")
        try:
            dns.query.udp(query, "127.0.0.1", port=port, timeout=0.2)
            return
        except (OSError, dns.exception.DNSException):
            time.sleep(0.05)
    raise SetupError(f"{what} on port {port} did not answer within 10 s: {tail(log)}")


def tail(log: Path) -> str:
    with contextlib.suppress(OSError):
        return log.read_text(errors="replace")[-800:]
    return "(no log)"


class ServerProcess:
    """A server process in a temporary directory; a context manager that stops it."""

    process: subprocess.Popen[bytes]
    dir: Path

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the process and delete its directory."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Dnsmasq(ServerProcess):
    """``dnsmasq`` on ``port`` (default: a free one) of 127.0.0.1 and ::1 (and of ``also_listen``,
    e.g. a link-local address), answering ``HOSTS``."""

    def __init__(self, port: int | None = None, *, log_queries: bool = True, cache_size: int = 1000,
                 also_listen: Sequence[str] = ()) -> None:
        self.port = port or free_dns_port()
        self.dir = Path(tempfile.mkdtemp(prefix="kdoctor-dnsmasq-"))
        self.hosts = self.dir / "hosts"
        self.hosts.write_text("".join(f"{a} {name}\n" for name, addrs in HOSTS.items() for a in addrs))
        self.log = self.dir / "dnsmasq.log"
        self.log_queries = log_queries
        args = [
            binary("dnsmasq"), "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
            "--no-hosts", f"--addn-hosts={self.hosts}", "--bind-interfaces",
            "--listen-address=127.0.0.1", "--listen-address=::1", f"--port={self.port}",
            f"--local=/{DOMAIN}/", "--pid-file=", "--user=root", f"--cache-size={cache_size}",
            f"--srv-host={SRV_NAME},www.{DOMAIN},80", f"--txt-record={TXT_NAME},kdoctor",
            f"--log-facility={self.log}", "--dns-forward-max=10000",
            *(f"--listen-address={address}" for address in also_listen),
        ]
        if log_queries:
            # Without --log-async dnsmasq writes each line before answering: no line is lost,
            # so the log count is exact (at the price of some server speed).
            args.append("--log-queries")
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        try:
            wait_udp(self.port, self.process, "dnsmasq", self.log)
        except BaseException:
            self.stop()
            raise
        self._baseline = 0
        self._baseline = self.query_count() if log_queries else 0

    def __enter__(self) -> Dnsmasq:
        return self

    def query_count(self) -> int:
        """Queries logged since the server became ready (needs ``log_queries``)."""
        if not self.log_queries:
            raise SetupError("query_count needs Dnsmasq(log_queries=True)")
        count = 0
        with open(self.log, errors="replace") as log:
            for line in log:
                if "query[" in line:
                    count += 1
        return count - self._baseline

    def answered_count(self) -> int:
        """UDP queries the server answered from its own data since it started, by its own counter
        (SIGUSR1 makes dnsmasq log its statistics; works without ``log_queries``). Queries over TCP
        are answered in child processes and not counted here."""
        pattern = re.compile(r"queries answered locally (\d+)")
        seen = len(pattern.findall(self.log.read_text(errors="replace")))
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            found = pattern.findall(self.log.read_text(errors="replace"))
            if len(found) > seen:
                return int(found[-1])
            time.sleep(0.02)
        raise SetupError(f"dnsmasq did not report its statistics: {tail(self.log)}")

    def wait_quiet(self, settle: float = 0.3, limit: float = 10.0) -> int:
        """The query count once the log has stopped growing for ``settle`` seconds."""
        deadline = time.monotonic() + limit
        last = -1
        while time.monotonic() < deadline:
            size = self.log.stat().st_size
            if size == last:
                break
            last = size
            time.sleep(settle)
        return self.query_count()
