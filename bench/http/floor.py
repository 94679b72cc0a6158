"""The floor of an HTTP/1.1 load generator on uvloop and httptools: those two parts alone.

    .venv/bin/python bench/http/floor.py URL SECONDS [CONNECTIONS]

Keep-alive connections, closed loop: each response is fed to httptools (llhttp, the parser our
client uses) and the next request is written as soon as it is complete; no driver, schedule,
timeouts, status counts or histograms. Its CPU per request is what any generator built on these
parts pays before it measures anything, so beside wrk and ours (``bench_http.py`` section 1) it
splits our cost into the runtime's (this floor against wrk) and our engine's (ours against this
floor). Prints one JSON line: requests completed, seconds, CPU seconds of this process.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from urllib.parse import urlsplit

import httptools
import uvloop


class _Conn(asyncio.Protocol):
    """One connection: a request in flight, the next written when its response is complete."""

    done = 0

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        assert self.transport is not None
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        _Conn.done += 1
        assert self.transport is not None
        self.transport.write(self.request)


async def _run(url: str, seconds: float, connections: int) -> dict[str, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    # The request ours sends (kdoctor.probes.httpreq.HttpTarget.encode), so the server's work is the same.
    request = f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nUser-Agent: kdoctor\r\n\r\n".encode()
    loop = asyncio.get_running_loop()
    conns = [await loop.create_connection(lambda: _Conn(request), host, port) for _ in range(connections)]
    _Conn.done = 0
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    await asyncio.sleep(seconds)
    done, elapsed = _Conn.done, time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    for transport, _ in conns:
        transport.close()
    return {"sent": done, "seconds": elapsed,
            "cpu": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime}


def main() -> None:
    url, seconds = sys.argv[1], float(sys.argv[2])
    connections = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    print(json.dumps(uvloop.run(_run(url, seconds, connections))), flush=True)


if __name__ == "__main__":
    main()
