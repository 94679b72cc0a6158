"""The HTTP/2 client against a real nginx: h2c with prior knowledge, TLS with ALPN, and nginx's own
GOAWAY when a connection reaches ``keepalive_requests``. Counts are checked against nginx's
access log (one line per request it served)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop

from kdoctor.local.nginx import Nginx
from kdoctor.probes.http2 import Http2Pool
from kdoctor.probes.httpreq import HttpTarget, TlsFiles, tls_context
from kdoctor.probes.pressure import Driver, DriverStats, Pace, run_all
from tests.servers.certs import Pki, make_pki


def reconfigured(web: Nginx, old: str, new: str) -> Nginx:
    """``web`` with one piece of its (not yet started) config replaced."""
    conf = web.dir / "nginx.conf"
    text = conf.read_text()
    assert old in text
    conf.write_text(text.replace(old, new))
    return web


def tls_nginx(pki: Pki, *, http2: bool) -> Nginx:
    """nginx over TLS with the test PKI's server certificate, h2 offered over ALPN or not."""
    web = Nginx(http2=True)
    listen = f"listen {web.host}:{web.port} http2 reuseport backlog=4096;"
    return reconfigured(web, listen, f"listen {web.host}:{web.port} ssl{' http2' if http2 else ''};\n"
                        f"        ssl_certificate {pki.server_cert};\n        ssl_certificate_key {pki.server_key};")


def drive(url: str, *, qps: float, duration: float = 1.0, max_streams: int = 50, ca: Path | None = None) -> DriverStats:
    async def main() -> DriverStats:
        ctx = tls_context(TlsFiles(ca_file=str(ca)), alpn=("h2",)) if ca else None
        pool = Http2Pool(HttpTarget(url), timeout=2.0, max_streams=max_streams, ssl_context=ctx)
        driver = Driver(pool, Pace(qps=qps, duration=duration, timeout=2.0))
        pool.driver = driver
        [stats] = await run_all([driver], time.perf_counter() + 0.02)
        return stats

    return uvloop.run(main())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def h2c() -> Iterator[Nginx]:
    with Nginx(http2=True) as web:
        yield web


def test_h2c_open_loop_counts_match_nginx(h2c: Nginx) -> None:
    before = h2c.settled_count()
    stats = drive(h2c.url, qps=300)
    assert stats.errors == {} and stats.unsent == 0
    assert stats.sent == stats.successes == 300 == h2c.settled_count() - before
    assert dict(stats.codes) == {"200": 300}
    assert stats.bytes == 300 * 601  # the page's DATA payload, headers not counted


def test_h2c_closed_loop_50_streams_counts_match_nginx(h2c: Nginx) -> None:
    before = h2c.settled_count()
    stats = drive(h2c.url, qps=0, duration=1.0)
    assert stats.errors == {}
    assert stats.sent == stats.successes == h2c.settled_count() - before > 0


def test_h2c_status_codes_nginx_sends_as_literals(h2c: Nginx) -> None:
    # nginx sends :status 200 as the static index 0x88, and 503 or 301 as literals.
    for code in (503, 301, 404):
        stats = drive(f"{h2c.url}status/{code}", qps=20)
        assert dict(stats.codes) == {str(code): 20}, code


def test_nginx_goaway_at_keepalive_requests_loses_nothing() -> None:
    # After 100 requests on a connection nginx sends GOAWAY and closes once its streams are
    # done; the client carries on over new connections.
    web = reconfigured(Nginx(http2=True), "keepalive_requests 1000000;", "keepalive_requests 100;")
    with web:
        stats = drive(web.url, qps=0, duration=1.0, max_streams=20)
        logged = web.settled_count()
    assert set(stats.errors) <= {"goaway"}
    assert stats.successes == logged > 200
    assert stats.sent == stats.successes + stats.errors["goaway"]


def test_tls_alpn_h2(pki: Pki) -> None:
    with tls_nginx(pki, http2=True) as web:
        url = f"https://localhost:{web.port}/"
        stats = drive(url, qps=100, ca=pki.ca)
        closed = drive(url, qps=0, duration=0.5, ca=pki.ca)
        logged = web.settled_count()
    assert stats.errors == {} and stats.successes == 100
    assert closed.errors == {} and closed.successes > 0
    assert logged == stats.successes + closed.successes


def test_tls_server_without_h2_fails_alpn(pki: Pki) -> None:
    # nginx without http2 either selects no protocol (our `alpn`) or refuses the handshake with
    # the no_application_protocol alert (`tls`), depending on its version.
    with tls_nginx(pki, http2=False) as web:
        stats = drive(f"https://localhost:{web.port}/", qps=10, ca=pki.ca)
    assert stats.successes == 0 and stats.sent == 10
    assert set(stats.errors) <= {"alpn", "tls"} and sum(stats.errors.values()) == 10
