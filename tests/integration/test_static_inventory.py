"""A static inventory on real workers: expected nodes come from the file, a node without a worker
is ``missing``, and ``kdoctor nodes --inventory`` lists it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from kdoctor.api import Client
from kdoctor.local.cluster import LocalCluster
from kdoctor.settings import Settings
from tests.conftest import FAST_ENV, cli_env

INVENTORY = """\
nodes:
  - {name: node-1, labels: {zone: a}}
  - {name: node-2, labels: {zone: b}}
  - {name: node-3, ipv4: [127.0.0.1], agentPort: 9}
services:
  port: 80
"""


def test_inventory_node_without_worker_is_missing_and_listed(
    make_cluster: Callable[..., LocalCluster], broker_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY)
    make_cluster(2, env={"KDOCTOR_INVENTORY": str(path)})
    spec = {"apiVersion": "kdoctor.io/v1beta1", "kind": "NetReach", "metadata": {"name": "inv"},
            "spec": {"request": {"qps": 5, "durationInSecond": 1},
                     "target": {"endpoint": True, "clusterIP": True, "nodePort": False,
                                "sourceNodeSelector": {"matchLabels": {"zone": "a"}}}}}
    settings = Settings.from_env({**FAST_ENV, "KDOCTOR_BROKER_URL": broker_url})
    with Client(settings=settings) as client:
        report = client.submit(spec).wait(60)
    assert report.nodes["node-3"].status == "missing"
    assert "no worker has registered" in report.nodes["node-3"].reason
    # Only node-1 (zone a, from the file's labels) probes; node-2 is still its destination.
    assert {t.destination for t in report.nodes["node-1"].targets if t.kind == "endpoint"} == {"node-2"}
    assert report.nodes["node-2"].targets == []
    assert any("clusterIP" in w for w in report.warnings)  # requested, but the file has no ClusterIP
    assert report.matrix is not None and [c.source for c in report.matrix.cells] == ["node-1"]

    listed = subprocess.run([sys.executable, "-m", "kdoctor", "nodes", "-o", "json", "--inventory", str(path)],
                            env=cli_env(broker_url), text=True, capture_output=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    states = {n["name"]: n["state"] for n in json.loads(listed.stdout)}
    assert states == {"node-1": "live", "node-2": "live", "node-3": "missing"}
