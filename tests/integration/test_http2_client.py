"""The fast HTTP/2 client against a real h2 server over real sockets, misbehaving on purpose.

Each test drives :class:`~kdoctor.probes.http2.Http2Pool` with the real pressure driver and
checks what the driver counted against what the server saw: GOAWAY mid-run, a stream limit
lowered mid-connection, a tiny flow-control window under a large request body, responses larger
than our windows, trailers, CONTINUATION, literal and informational statuses, resets, timeouts.
No timing thresholds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import uvloop

from kdoctor.probes.http2 import Http2Pool
from kdoctor.probes.httpreq import HttpTarget
from kdoctor.probes.pressure import Driver, DriverStats, Pace, run_all
from tests.servers.h2server import H2Server

CANCEL = 0x8


@dataclass
class Run:
    stats: DriverStats
    opened: int


def drive(url: str, *, qps: float, duration: float = 1.0, timeout: float = 2.0, max_streams: int = 50,
          method: str = "GET", body: bytes = b"", connections: int = 1) -> Run:
    """One driver against ``url``; ``qps=0`` is closed loop (every stream kept busy)."""

    async def main() -> Run:
        pool = Http2Pool(HttpTarget(url, method=method, body=body), timeout=timeout, max_streams=max_streams,
                         connections=connections)
        driver = Driver(pool, Pace(qps=qps, duration=duration, timeout=timeout))
        pool.driver = driver
        [stats] = await run_all([driver], time.perf_counter() + 0.02)
        return Run(stats, pool.opened)

    return uvloop.run(main())


def settle(check: Callable[[], bool], seconds: float = 3.0) -> None:
    """Wait until the server has seen what the client sent (frames still in flight)."""
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_goaway_mid_run_streams_above_last_stream_id_are_sent_again() -> None:
    # At most 4 streams in flight and a GOAWAY every 10 requests: whatever was above the
    # last-stream-id fits in the next connection's first 10, so every request is answered.
    with H2Server(goaway_after=10) as server:
        assert isinstance(server, H2Server)
        run = drive(server.url, qps=0, duration=1.0, max_streams=4)
        count = server.count
        connections = server.connections
    stats = run.stats
    assert stats.errors == {}, stats.errors
    assert stats.sent == stats.successes == count > 20
    assert run.opened == connections >= count // 10


def test_goaway_storm_counts_every_unprocessed_request_once() -> None:
    # 20 streams in flight, GOAWAY every 5: requests sent once more and caught above the
    # last-stream-id again are counted `goaway`; nothing is lost or counted twice.
    with H2Server(goaway_after=5) as server:
        assert isinstance(server, H2Server)
        stats = drive(server.url, qps=0, duration=1.0, max_streams=20).stats
        count = server.count
    assert set(stats.errors) <= {"goaway"}
    assert stats.successes == count > 0
    assert stats.sent == stats.successes + stats.errors["goaway"]


def test_goaway_before_any_stream_counts_goaway() -> None:
    with H2Server(goaway_after=0) as server:
        assert isinstance(server, H2Server)
        stats = drive(server.url, qps=20).stats
        count = server.count
    assert count == 0
    assert stats.sent == 20 and stats.errors == {"goaway": 20}


def test_server_lowering_max_concurrent_streams_mid_connection() -> None:
    with H2Server(lower_streams=(5, 2)) as server:
        assert isinstance(server, H2Server)
        run = drive(server.url + "sleep/10", qps=0, duration=1.0, max_streams=10)
        violations, most, count, connections = (server.violations, server.max_open_after_lower, server.count,
                                                server.connections)
    assert violations == 0
    assert 0 < most <= 2
    assert run.stats.errors == {} and run.stats.successes == count == run.stats.sent
    assert connections == 1


def test_request_body_larger_than_a_tiny_window() -> None:
    # The server allows 1 KiB per stream and the default 64 KiB on the connection: a 150 KB
    # body must wait for its WINDOW_UPDATEs, in frames no larger than the windows.
    body = bytes(range(256)) * 600
    with H2Server(initial_window=1024) as server:
        assert isinstance(server, H2Server)
        stats = drive(server.url + "upload", qps=5, timeout=10.0, method="POST", body=body).stats
        received = list(server.requests)
    assert stats.errors == {} and stats.successes == 5
    assert [r.body for r in received] == [body] * 5
    assert received[0].headers["content-length"] == str(len(body))
    assert stats.bytes == 5 * len(body)  # echoed back


def test_response_larger_than_our_windows() -> None:
    # 3 MB per response, 15 MB in all: past the 1 MiB stream window and the 16 MiB connection
    # window's refill point, so it only completes if we send WINDOW_UPDATEs.
    with H2Server() as server:
        assert isinstance(server, H2Server)
        stats = drive(server.url + "big/3000000", qps=5, timeout=20.0, max_streams=1).stats
    assert stats.errors == {} and stats.successes == 5
    assert stats.bytes == 5 * 3_000_000


def test_trailers_end_the_response() -> None:
    with H2Server() as server:
        assert isinstance(server, H2Server)
        stats = drive(server.url + "trailers", qps=20).stats
    assert stats.errors == {} and dict(stats.codes) == {"200": 20}
    assert stats.bytes == 20 * len(b"ok\n")


def test_headers_spanning_continuation() -> None:
    with H2Server() as server:
        assert isinstance(server, H2Server)
        stats = drive(server.url + "bigheaders", qps=10, timeout=10.0).stats
    assert stats.errors == {} and dict(stats.codes) == {"200": 10}


def test_literal_and_informational_status() -> None:
    with H2Server() as server:
        assert isinstance(server, H2Server)
        created = drive(server.url + "status/201", qps=20).stats  # not in HPACK's static table
        early = drive(server.url + "early", qps=20).stats  # 103 first, then 200
    assert dict(created.codes) == {"201": 20} and created.successes == 20
    assert dict(early.codes) == {"200": 20} and early.errors == {}


def test_server_reset_is_counted_and_the_connection_stays() -> None:
    with H2Server() as server:
        assert isinstance(server, H2Server)
        run = drive(server.url + "reset", qps=20)
        connections = server.connections
    assert run.stats.errors == {"reset": 20} and run.stats.successes == 0
    assert connections == run.opened == 1


def test_timeout_resets_the_stream_with_cancel_and_keeps_the_connection() -> None:
    with H2Server() as server:
        assert isinstance(server, H2Server)
        run = drive(server.url + "sleep/3000", qps=20, timeout=0.2)
        settle(lambda: len(server.resets) >= 20)
        resets, connections = list(server.resets), server.connections
        after = drive(server.url, qps=20).stats  # the server is fine after all those resets
    assert run.stats.errors == {"timeout": 20} and run.stats.latency.count == 0
    assert resets == [CANCEL] * 20
    assert connections == run.opened == 1
    assert after.successes == 20


def test_server_ping_is_answered() -> None:
    with H2Server(ping=True) as server:
        assert isinstance(server, H2Server)
        stats = drive(server.url, qps=20).stats
        settle(lambda: server.pings_acked >= 1)
        acked = server.pings_acked
    assert stats.successes == 20 and acked == 1


def test_several_connections_share_the_streams() -> None:
    with H2Server() as server:
        assert isinstance(server, H2Server)
        run = drive(server.url, qps=0, duration=0.5, max_streams=12, connections=3)
        count, connections = server.count, server.connections
    assert run.stats.errors == {} and run.stats.successes == count == run.stats.sent > 0
    assert connections == run.opened == 3
