"""DiskIO rounds through real workers, each node with its own data directory on the real disk."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from kdoctor.api import Client
from kdoctor.local.cluster import LocalCluster
from kdoctor.reports import render

NODES = ["node-1", "node-2", "node-3"]


def diskio(name: str, profiles: list[str], **request: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kdoctor.io/v1beta1", "kind": "DiskIO", "metadata": {"name": name},
        "spec": {"target": {"directory": "probe", "profiles": profiles},
                 "request": {"sizeInMiB": 2, "freeSpaceMarginInMiB": 0, "queueDepths": [1, 4], **request},
                 # Three nodes share this machine's one disk: etcd's 10 ms guidance is not the point here.
                 "expect": {"fdatasyncP99InMs": 1000}},
    }


def cluster_with_data_dirs(make_cluster: Callable[..., LocalCluster], tmp_path: Path) -> dict[str, Path]:
    cluster = make_cluster(0)
    dirs = {}
    for node in NODES:
        dirs[node] = tmp_path / node
        dirs[node].mkdir()
        cluster.start_worker(node, data_dir=str(dirs[node]))
    cluster.wait_ready(NODES)
    return dirs


def test_three_nodes_measure_their_own_disk(make_cluster: Callable[..., LocalCluster], client: Client,
                                            tmp_path: Path) -> None:
    dirs = cluster_with_data_dirs(make_cluster, tmp_path)
    spec = diskio("disks", ["etcd", "seqWrite", "seqRead", "randRead", "randWrite"], durationInSecond=5)
    report = client.submit(spec).wait(timeout=90)
    assert report.verdict == "passed", report.reasons
    assert set(report.nodes) == set(NODES)
    for name, node in report.nodes.items():
        assert node.status == "passed", node.reason
        assert [p.name for p in node.profiles] == ["etcd", "seqWrite", "seqRead", "randRead/qd1",
                                                   "randRead/qd4", "randWrite/qd1", "randWrite/qd4"]
        for prof in node.profiles:
            assert prof.directory == str((dirs[name] / "probe").resolve())
            assert prof.bytes_written + prof.bytes_read == 2 * 1024 * 1024
        assert list(dirs[name].iterdir()) == []  # test files and the directory it made are gone
    console = Console(record=True, width=200)
    console.print(render.report_table(report))
    table = console.export_text()
    assert "randWrite/qd4" in table and "fdatasync" in table and "2.0 MiB" in table


def test_serial_round_runs_one_node_at_a_time(make_cluster: Callable[..., LocalCluster], client: Client,
                                              tmp_path: Path) -> None:
    cluster_with_data_dirs(make_cluster, tmp_path)
    report = client.submit(diskio("serial", ["etcd"], durationInSecond=1, serial=True)).wait(timeout=90)
    assert report.verdict == "passed", report.reasons
    spans = []
    for node in report.nodes.values():
        assert node.started is not None and node.finished is not None
        spans.append((node.started, node.finished))
    spans.sort()
    assert len(spans) == 3
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start, f"node runs overlap: {spans}"
