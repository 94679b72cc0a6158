"""A hundred rounds in a row on three real workers: neither Redis nor the workers grow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psutil
import redis

from kdoctor.api import Client
from kdoctor.local.cluster import LocalCluster
from tests.integration.test_rounds import netreach

ROUNDS = 100


def worker_rss(cluster: LocalCluster) -> dict[str, float]:
    """Each node's worker and agent, in MiB (the probes come and go with their rounds)."""
    found = {}
    for name in ("node-1", "node-2", "node-3"):
        main = psutil.Process(cluster.processes[name].pid)
        agents = [p for p in main.children() if "kdoctor.workers.agent" in " ".join(p.cmdline())]
        found[name] = sum(p.memory_info().rss for p in [main, *agents]) / 2**20
    return found


def test_a_hundred_rounds_leave_redis_and_the_workers_as_they_were(
        make_cluster: Callable[..., LocalCluster], client: Client, broker_url: str, tmp_path: Path) -> None:
    # Reports are kept by size here (a few of them), so what is left to grow is what must not.
    cap = 0.05
    cluster = make_cluster(0, env={"KDOCTOR_REPORT_RETENTION_MB": str(cap), "KDOCTOR_START_LEAD_SECONDS": "0.2"})
    for name in ("node-1", "node-2", "node-3"):
        (tmp_path / name).mkdir()
        cluster.start_worker(name, data_dir=str(tmp_path / name))
    cluster.wait_ready(["node-1", "node-2", "node-3"])
    r = redis.Redis.from_url(broker_url)
    reach = netreach("soak", duration=1)
    reach["spec"]["request"]["perRequestTimeoutInMS"] = 200  # type: ignore[index]
    # Every other round a DiskIO (a small etcd profile, done in a blink): the probe process, the
    # results and the reports go round as often, and the suite spends a minute less.
    disk = {"apiVersion": "kdoctor.io/v1beta1", "kind": "DiskIO", "metadata": {"name": "soak-disk"},
            "spec": {"target": {"profiles": ["etcd"]},
                     "request": {"sizeInMiB": 1, "freeSpaceMarginInMiB": 0, "durationInSecond": 5},
                     "expect": {"fdatasyncP99InMs": 10_000}}}
    memory: dict[int, int] = {}
    rss: dict[int, dict[str, float]] = {}
    for number in range(1, ROUNDS + 1):
        report = client.submit(reach if number % 2 else disk).wait(timeout=60)
        assert report.verdict == "passed", (number, report.reasons)
        if number in (10, ROUNDS):
            memory[number] = int(r.info("memory")["used_memory"])
            rss[number] = worker_rss(cluster)
    assert memory[ROUNDS] - memory[10] < 512 * 1024, memory
    for name in rss[10]:
        assert rss[ROUNDS][name] - rss[10][name] < 8, rss
    assert sum(int(v) for v in r.hvals("kdoctor:reports:bytes")) <= cap * 2**20  # the size cap holds
