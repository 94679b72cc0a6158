"""bench/scale: what a round costs the coordinator and Redis as the cluster grows.

    .venv/bin/python bench/scale/bench_scale.py [--quick] [--nodes 100 300 1000] [--peers 10]

For each N it starts a private redis-server and a real ``kdoctor coordinator``, registers N
simulated nodes (:class:`kdoctor.local.fleet.Fleet`: real registry entries and heartbeats, real
queues, results of the real size and shape: a ring of K peers over IPv4 and IPv6, endpoint and
nodePort, 4·K targets per node, each with an HDR histogram) and runs two NetReach rounds:

1. every node answers: plan s, publish s, start-instant slack (when the last node received its
   message, before the start instant), last result → report s, report bytes (stored, compressed),
   Redis bytes held during the round (peak over the idle baseline) and after it (what the round
   leaves: the report and its head);
2. three nodes never answer: deadline → report s.

and the cost of a waiting client's poll (``Job.progress``: bytes Redis sends per poll, µs per
poll). No reference tool exists for this; the figures go in the README. ``--quick`` runs N = 100
only (CI).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from kdoctor.api import Client  # noqa: E402
from kdoctor.local.cluster import LocalCluster  # noqa: E402
from kdoctor.local.fleet import Fleet  # noqa: E402
from kdoctor.local.redisserver import RedisServer  # noqa: E402
from kdoctor.settings import Settings  # noqa: E402
from kdoctor.store import keys  # noqa: E402


def spec(name: str, peers: int) -> dict[str, Any]:
    return {"apiVersion": "kdoctor.io/v1beta1", "kind": "NetReach", "metadata": {"name": name},
            "spec": {"request": {"qps": 10, "durationInSecond": 1, "perRequestTimeoutInMS": 500},
                     "target": {"endpoint": True, "nodePort": True, "clusterIP": False, "ipv4": True, "ipv6": True},
                     "mesh": {"peers": peers}}}


class MemoryWatch:
    """Samples Redis's used_memory every 20 ms in a thread; ``peak`` is the highest seen."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, int(self.client.info("memory")["used_memory"]))

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def used(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def inventory(n: int) -> str:
    """A static inventory of the N simulated nodes with a NodePort, so nodePort targets are planned
    (the registry alone knows no Service)."""
    lines = ["nodes:"]
    for i in range(1, n + 1):
        lines.append(f"  - {{name: sim-{i}, ipv4: [10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}], "
                     f"ipv6: ['fd00::{i:x}']}}")
    lines += ["services:", "  port: 80", "  nodePort: 30710"]
    path = Path(tempfile.mkdtemp(prefix="kdoctor-bench-scale-")) / "inventory.yaml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def measure(n: int, peers: int) -> dict[str, float]:
    server = RedisServer(extra_args=["--maxmemory-policy", "noeviction"])
    try:
        settings = Settings(broker_url=server.url(0), heartbeat_seconds=2.0, node_timeout_seconds=15.0,
                            round_grace_seconds=3.0, start_lead_seconds=1.0, log_level="WARNING",
                            inventory=inventory(n))
        raw = redis.Redis.from_url(server.url(0))
        figures: dict[str, float] = {}
        with LocalCluster(settings) as cluster, Fleet(settings, n, prefix="sim") as fleet, \
                Client(settings=settings) as client:
            cluster.start_coordinator()
            cluster.wait_ready([], timeout=60)
            # A first round warms the coordinator's pacing (it measures its publish cost).
            client.submit(spec("warmup", peers)).wait(timeout=300)
            baseline = used(raw)
            with MemoryWatch(raw) as watch:
                job = client.submit(spec("answered", peers))
                report = job.wait(timeout=300)
            arrivals = fleet.arrivals_of(report.id)
            last_received = max(a.received for a in arrivals)
            last_answered = max(a.answered for a in arrivals)
            timing = report.timing
            assert timing is not None
            figures["plan s"] = timing.plan_seconds or 0.0
            figures["publish s"] = timing.publish_seconds or 0.0
            figures["slack s"] = report.started.timestamp() - last_received
            figures["result→report s"] = report.finished.timestamp() - last_answered
            figures["report KB"] = int(raw.hget(keys.REPORTS_BYTES, report.id) or 0) / 1024
            figures["round peak MB"] = (watch.peak - baseline) / 2**20
            figures["after KB"] = (used(raw) - baseline) / 1024
            figures["targets"] = sum(len(node.targets) for node in report.nodes.values())
            # Polling: what one waiting client costs per check.
            polls = 200
            sent_before = int(raw.info("stats")["total_net_output_bytes"])
            started = time.perf_counter()
            for _ in range(polls):
                job.progress()
            figures["poll µs"] = (time.perf_counter() - started) / polls * 1e6
            figures["poll B"] = (int(raw.info("stats")["total_net_output_bytes"]) - sent_before) / polls
            # The deadline path: three nodes never answer.
            fleet.silent = frozenset({"sim-1", f"sim-{n // 2}", f"sim-{n}"})
            late = client.submit(spec("deadline", peers)).wait(timeout=300)
            figures["deadline→report s"] = late.finished.timestamp() - late.deadline.timestamp()
        return figures
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--peers", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="N = 100 only")
    args = parser.parse_args()
    sizes = [100] if args.quick else args.nodes
    columns = ["targets", "plan s", "publish s", "slack s", "result→report s", "deadline→report s", "report KB",
               "round peak MB", "after KB", "poll B", "poll µs"]
    print(f"bench/scale: NetReach ring, K={args.peers} peers, endpoint + nodePort, IPv4 + IPv6; real coordinator "
          "and Redis, simulated nodes")
    print("| nodes | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for n in sizes:
        figures = measure(n, args.peers)
        cells = [f"{figures[c]:.0f}" if c in ("targets", "poll B") else f"{figures[c]:.3f}" if c.endswith(" s")
                 else f"{figures[c]:.1f}" for c in columns]
        print(f"| {n:,} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
