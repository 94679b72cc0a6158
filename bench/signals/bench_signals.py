"""bench/signals: what a round's signals cost the coordinator, and a scrape the exporter.

Writes synthetic NetReach rounds of N nodes (bench/signals/synthetic.py: a ring of K=10 peers,
both families, endpoint, nodePort and ClusterIP, one broken node) through the real recorder into
a private redis-server, then scrapes the real exporter over HTTP (bearer token) and prints:

* ``record s``: building and storing the record (the report writer does this after the report
  is stored, so it never delays a report);
* ``first scrape s``: the scrape after a new report (the record read, decompressed and parsed,
  its samples built, everything encoded);
* ``scrape s``: a scrape between rounds (the median of 10; samples cached per report);
* ``series`` and ``body KB`` of a scrape, and this process's peak RSS.

No reference tool: the goal is a scrape well under Prometheus's default 10 s timeout at 1,000
nodes, and series linear in nodes.

    .venv/bin/python bench/signals/bench_signals.py [--nodes 100 300 1000]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.signals.synthetic import synthetic_round
from kdoctor.local.redisserver import RedisServer
from kdoctor.settings import Settings
from kdoctor.signals import recorder
from kdoctor.signals.metrics import ResultsCollector, new_registry
from kdoctor.signals.server import MetricsServer, load_credentials
from kdoctor.store.connection import redis_client

TOKEN = "bench"


def scrape(url: str) -> tuple[float, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as answer:
        body = answer.read()
    return time.perf_counter() - started, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[100, 300, 1000])
    args = parser.parse_args()
    server = RedisServer()
    token = Path(tempfile.mkdtemp(prefix="kdoctor-bench-")) / "token"
    token.write_text(TOKEN)
    try:
        client = redis_client(Settings(broker_url=server.url(1)))
        collector = ResultsCollector(lambda: client, oneshot_seconds=86400, node_timeout=15, coordinator_timeout=20)
        http = MetricsServer(new_registry(collector), load_credentials(str(token), ""), "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{http.port}/metrics"
        print("bench/signals: one NetReach task of N nodes (K=10 peers), scraped over HTTP")
        print(f"{'nodes':>6} {'record s':>9} {'first scrape s':>15} {'scrape s':>9} {'series':>7} {'body KB':>8} "
              f"{'peak RSS MB':>12}")
        for number, n in enumerate(args.nodes, 1):
            client.flushdb()
            state, shell, judged = synthetic_round(n, number=number)
            started = time.perf_counter()
            recorder.record_round(client, state, shell, judged, scheduled=False, finalize_seconds=1.0,
                                  retention=3600)
            recorded = time.perf_counter() - started
            first, body = scrape(url)
            steady = statistics.median(scrape(url)[0] for _ in range(10))
            series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{n:>6} {recorded:>9.2f} {first:>15.3f} {steady:>9.3f} {series:>7} {len(body) / 1024:>8.0f} "
                  f"{rss:>12.0f}")
        http.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
