"""The HTTP pressure engine against real servers: nginx, a stalling server, TLS, mTLS, HTTP/2.

Every test runs the AppHttpHealthy probe exactly as a worker does (``apphttp.run`` on uvloop)
and checks what it reports against what the server itself saw. No timing thresholds: the only
latency assertion is that a one-second stall shows up in the p99.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

from kdoctor.local.nginx import Nginx
from kdoctor.local.ports import free_port
from kdoctor.probes import apphttp
from kdoctor.probes.kinds import NodeContext
from kdoctor.probes.measure import GeneratorMonitor
from kdoctor.specs import AppHttpHealthy, load_spec, spec_json
from kdoctor.specs.plan import Assignment, InventoryView, RoundContext
from kdoctor.specs.results import NodeResult, TargetResult
from tests.servers.certs import Pki, make_pki
from tests.servers.h2server import H2Server
from tests.servers.http1 import Http1Server


def spec(host: str, *, qps: int = 50, duration: int = 1, timeout_ms: int = 1000, concurrency: int | None = None,
         expect: dict[str, Any] | None = None, **target: Any) -> AppHttpHealthy:
    request: dict[str, Any] = {"qps": qps, "durationInSecond": duration, "perRequestTimeoutInMS": timeout_ms}
    if concurrency is not None:
        request["concurrency"] = concurrency
    loaded = load_spec({
        "apiVersion": "kdoctor.io/v1beta1", "kind": "AppHttpHealthy", "metadata": {"name": "t"},
        "spec": {"request": request, "target": {"host": host, **target},
                 "expect": {"meanAccessDelayInMs": 10000, **(expect or {})}},
    })
    assert isinstance(loaded, AppHttpHealthy)
    return loaded


NODE = NodeContext(name="local", data_dir="/nonexistent", resolv_conf="/etc/resolv.conf")


def probe(doc: AppHttpHealthy) -> NodeResult:
    """Run the probe as a node does and return its result."""
    targets, _ = apphttp.plan(doc, None, RoundContext(InventoryView()))  # type: ignore[arg-type]
    now = time.time()
    assignment = Assignment(round_id="r", job="j", round=1, kind=doc.kind, name=doc.name, spec=spec_json(doc),
                            node="local", targets=targets, start_at=now, deadline=now + 60)

    async def main() -> NodeResult:
        monitor = GeneratorMonitor()
        monitor.start()
        return await apphttp.run(assignment, doc, time.perf_counter() + 0.05, monitor, NODE)

    return uvloop.run(main())


def only(result: NodeResult) -> TargetResult:
    assert len(result.targets) == 1
    return result.targets[0]


@pytest.fixture(scope="module")
def nginx() -> Iterator[Nginx]:
    with Nginx() as server:
        yield server


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def server_tls(pki: Pki, *, client_ca: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
    return ctx


def test_stall_shows_in_p99_coordinated_omission() -> None:
    # Two connections, like a closed-loop tool: while the server stalls, tokens queue in the
    # driver. Measured from the send, only the two stuck requests would be slow (p99 ~ 1 ms);
    # measured from the due time, everything queued behind the stall is slow too.
    with Http1Server() as server:
        assert isinstance(server, Http1Server)
        server.stall_at(2.0, 1.0)
        target = only(probe(spec(server.url, qps=100, duration=5, timeout_ms=3000, concurrency=2)))
    assert target.requests + target.unsent == 500
    assert target.requests == server.count
    assert target.latency_ms.p99 is not None and target.latency_ms.p99 >= 500
    assert target.latency_ms.p50 is not None and target.latency_ms.p50 < 500
    assert target.latency_ms.count == target.requests


def test_reported_count_equals_nginx_count(nginx: Nginx) -> None:
    before = nginx.settled_count()
    result = probe(spec(nginx.url, qps=200, duration=2))
    target = only(result)
    assert result.status == "passed", result.reason
    assert target.requests == 400 == nginx.settled_count() - before
    assert target.successes == 400 and target.status_codes == {"200": 400}
    assert target.intended_qps == 200 and target.unsent == 0
    assert target.bytes > 400 * 600
    assert result.generator is not None and result.generator.cpu_seconds > 0


def test_head_requests_end_at_their_headers_and_keep_the_connection(nginx: Nginx) -> None:
    # A response to HEAD announces a Content-Length but carries no body: each ends at its headers,
    # the connection is reused for the next request (none waits for a body until its timeout).
    before = nginx.settled_count()
    result = probe(spec(nginx.url, qps=200, duration=1, timeout_ms=500, method="HEAD", concurrency=4))
    target = only(result)
    assert result.status == "passed", result.reason
    assert target.requests == 200 == target.successes == nginx.settled_count() - before
    assert target.status_codes == {"200": 200} and not target.errors


def test_status_codes_default_and_expected(nginx: Nginx) -> None:
    failing = probe(spec(nginx.url + "status/503", qps=20))
    assert only(failing).status_codes == {"503": 20} and only(failing).successes == 0
    assert failing.status == "failed" and "success rate 0" in failing.reason
    # kdoctor's single code, and our classes / ranges / lists
    for expected in (503, "5xx", "500-504", [404, "503"]):
        result = probe(spec(nginx.url + "status/503", qps=20, expect={"statusCode": expected}))
        assert result.status == "passed", (expected, result.reason)
    redirect = probe(spec(nginx.url + "status/302", qps=20))
    assert redirect.status == "passed"  # 3xx is a success by default
    wrong = probe(spec(nginx.url, qps=20, expect={"statusCode": 404}))
    assert only(wrong).successes == 0 and only(wrong).status_codes == {"200": 20}


def test_timeouts_are_counted() -> None:
    with Http1Server() as server:
        result = probe(spec(server.url + "sleep/3000", qps=20, timeout_ms=200))
    target = only(result)
    assert target.errors == {"timeout": 20} and target.successes == 0 and target.requests == 20
    assert target.latency_ms.count == 0  # no answer, no latency
    assert result.status == "failed"


def test_connection_refused_is_counted() -> None:
    target = only(probe(spec(f"http://127.0.0.1:{free_port()}/", qps=20)))
    assert target.errors == {"refused": 20} and target.successes == 0


def test_post_body_from_file_and_header_value_with_colon(tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(b'{"hello": "kdoctor"}')
    with Http1Server() as server:
        assert isinstance(server, Http1Server)
        result = probe(spec(server.url + "submit", qps=10, method="POST", bodyFile=str(body),
                            header=["X-Origin: http://a.example:8080/x", "Content-Type: application/json"]))
        received = list(server.requests)
    assert result.status == "passed", result.reason
    assert len(received) == 10
    first = received[0]
    assert first.method == "POST" and first.path == "/submit"
    assert first.body == b'{"hello": "kdoctor"}'
    assert first.headers["content-length"] == str(len(first.body))
    assert first.headers["x-origin"] == "http://a.example:8080/x"


def test_missing_body_file_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"spec\.target\.bodyFile"):
        probe(spec("http://127.0.0.1:1/", bodyFile=str(tmp_path / "nope"), method="POST"))


def test_tls_verified_with_ca(pki: Pki) -> None:
    with Http1Server(server_tls(pki)) as server:
        good = probe(spec(server.url, qps=20, tlsCaFile=str(pki.ca)))
        bad = probe(spec(server.url, qps=20, tlsCaFile=str(pki.other_ca)))
        skip = probe(spec(server.url, qps=20, tlsInsecureSkipVerify=True))
    assert good.status == "passed", good.reason
    assert only(bad).errors == {"tls": 20}
    assert skip.status == "passed", skip.reason


def test_mutual_tls(pki: Pki, tmp_path: Path) -> None:
    # kdoctor's tlsSecretName names a local directory holding the Secret's keys as files.
    secret = tmp_path / "secret"
    secret.mkdir()
    for src, name in ((pki.ca, "ca.crt"), (pki.client_cert, "tls.crt"), (pki.client_key, "tls.key")):
        (secret / name).write_bytes(src.read_bytes())
    with Http1Server(server_tls(pki, client_ca=pki.ca)) as server:
        with_cert = probe(spec(server.url, qps=20, tlsSecretName=str(secret)))
        without = probe(spec(server.url, qps=20, tlsCaFile=str(pki.ca)))
    assert with_cert.status == "passed", with_cert.reason
    assert only(with_cert).successes == 20
    assert only(without).successes == 0
    assert set(only(without).errors) <= {"tls", "reset", "closed"}


def test_http2_cleartext_and_tls(pki: Pki) -> None:
    with H2Server() as server:
        assert isinstance(server, H2Server)
        clear = probe(spec(server.url + "h2c", qps=50, duration=2, http2=True,
                           header=["X-Time: 12:30:00"]))
        seen = list(server.requests)
        count = server.count
    target = only(clear)
    assert clear.status == "passed", clear.reason
    assert target.requests == 100 == count and target.status_codes == {"200": 100}
    assert seen[0].headers[":path"] == "/h2c" and seen[0].headers["x-time"] == "12:30:00"
    with H2Server(server_tls(pki)) as server:
        assert isinstance(server, H2Server)
        tls = probe(spec(server.url, qps=20, http2=True, method="POST", body="ping", tlsCaFile=str(pki.ca)))
        received = list(server.requests)
    assert tls.status == "passed", tls.reason
    assert received[0].method == "POST" and received[0].body == b"ping"
    assert only(tls).bytes == 20 * len(b"ping")


def test_http2_against_http1_only_tls_server_is_an_alpn_error(pki: Pki) -> None:
    with Http1Server(server_tls(pki)) as server:
        target = only(probe(spec(server.url, qps=10, http2=True, tlsCaFile=str(pki.ca))))
    assert target.successes == 0 and set(target.errors) == {"alpn"}


def test_closed_loop_mode_counts_match(nginx: Nginx) -> None:
    # Pace(qps=0): every connection kept busy for the duration (the max-throughput bench mode).
    from kdoctor.probes.http1 import Http1Pool
    from kdoctor.probes.httpreq import HttpTarget
    from kdoctor.probes.pressure import Driver, Pace, run_all

    async def main() -> tuple[int, int, float, int]:
        pool = Http1Pool(HttpTarget(nginx.url), timeout=2.0, max_connections=4)
        driver = Driver(pool, Pace(qps=0, duration=1.0, timeout=2.0))
        pool.driver = driver
        [stats] = await run_all([driver], time.perf_counter())
        return stats.sent, stats.successes, stats.achieved_qps(0), stats.intended

    before = nginx.settled_count()
    sent, ok, achieved, intended = uvloop.run(main())
    assert sent > 0 and sent == ok == intended == nginx.settled_count() - before
    assert achieved == pytest.approx(sent / 1.0)


def test_http2_connection_refused_is_counted() -> None:
    target = only(probe(spec(f"http://127.0.0.1:{free_port()}/", qps=20, http2=True)))
    assert target.errors == {"refused": 20} and target.successes == 0 and target.requests == 20


def test_http2_reported_count_equals_nginx_count() -> None:
    # The probe as a node runs it, over h2c to a real nginx: what we count is what nginx logged.
    with Nginx(http2=True) as server:
        before = server.settled_count()
        result = probe(spec(server.url, qps=200, duration=2, http2=True))
        logged = server.settled_count() - before
    target = only(result)
    assert result.status == "passed", result.reason
    assert target.requests == 400 == logged
    assert target.successes == 400 and target.status_codes == {"200": 400}
    assert target.unsent == 0 and target.errors == {}
    assert target.bytes == 400 * 601  # DATA payload only


# -- saturation: what the generator could not do, not what the server or a connection cost --------

def test_low_qps_over_a_slow_tls_handshake_is_not_saturation(pki: Pki) -> None:
    # A 150 ms handshake: with one connection, the request due at 100 ms waits ~50 ms for it.
    # That lag is shorter than the 100 ms between requests: the generator kept up (issue 15).
    ctx = server_tls(pki)
    ctx.sni_callback = lambda *_: time.sleep(0.15)
    with Http1Server(ctx) as server:
        for concurrency in (1, None):
            result = probe(spec(server.url, qps=10, duration=2,
                                concurrency=concurrency, tlsCaFile=str(pki.ca)))
            target = only(result)
            assert target.successes == target.requests == 20, target
            assert result.generator is not None and not result.generator.saturated, result.generator
            assert result.warnings == []
            # The handshake is in the first request's latency, where it belongs.
            assert target.latency_ms.max is not None and target.latency_ms.max >= 150


def test_a_starved_generator_is_saturated(nginx: Nginx) -> None:
    # A real-time CPU hog on the probe's own core: 30 ms of every 50 ms the event loop cannot run,
    # so requests due every 2 ms leave up to 30 ms late: the generator fell behind its schedule.
    cpu = min(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0)
    hog = subprocess.Popen(["chrt", "-f", "10", "taskset", "-c", str(cpu), sys.executable, "-c",
                            "import time\nend = time.time() + 20\nwhile time.time() < end:\n"
                            "    t = time.perf_counter() + 0.03\n    while time.perf_counter() < t: pass\n"
                            "    time.sleep(0.02)\n"])
    try:
        os.sched_setaffinity(0, {cpu})
        time.sleep(0.2)  # the hog is running
        result = probe(spec(nginx.url, qps=500, duration=2, timeout_ms=2000))
    finally:
        os.sched_setaffinity(0, before)
        hog.kill()
        hog.wait()
    assert result.generator is not None and result.generator.saturated, result.generator
    assert "p99 send lag" in result.generator.reason and "due every 2 ms" in result.generator.reason
    assert [w for w in result.warnings if w.startswith("local: load generator saturated (")]
