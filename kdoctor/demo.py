"""``kdoctor demo``: the whole system on one machine, end to end, with nothing to configure.

Starts its own redis-server on a free loopback port (unless a broker is given), a coordinator
and N workers named ``node-1..N`` listening on IPv4 and IPv6 loopback, runs the embedded
inspections, and stops everything it started, also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from importlib import resources

from rich.console import Console

from kdoctor.api import Client
from kdoctor.localcluster import LocalCluster, RedisServer
from kdoctor.settings import Settings
from kdoctor.specs import Report, load_text

DEMO_SPECS = ("demo-netreach.yaml", "demo-diskio.yaml")

# Demo processes beat fast so a three-node demo is ready in about two seconds.
DEMO_ENV = {"KDOCTOR_HEARTBEAT_SECONDS": "0.5", "KDOCTOR_NODE_TIMEOUT_SECONDS": "3",
            "KDOCTOR_ROUND_GRACE_SECONDS": "5"}


@contextlib.contextmanager
def _broker(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    server = RedisServer()
    try:
        yield server.url()
    finally:
        server.stop()


def run_demo(node_count: int, broker: str | None, progress: Console) -> list[Report]:
    """Run the demo and return its reports."""
    nodes = [f"node-{i}" for i in range(1, node_count + 1)]
    with _broker(broker) as url:
        progress.print(f"[dim]broker {url}[/dim]" if not broker else f"[dim]broker {broker}[/dim]")
        data = tempfile.mkdtemp(prefix="kdoctor-demo-data-")
        # Removed after the cluster has stopped (an ExitStack entered first exits last).
        with contextlib.ExitStack() as cleanup, LocalCluster(url, env=DEMO_ENV) as cluster:
            cleanup.callback(shutil.rmtree, data, True)
            cluster.start_coordinator()
            for node in nodes:
                # Each node's DiskIO writes only under its own data directory.
                os.makedirs(f"{data}/{node}")
                cluster.start_worker(node, addresses=("127.0.0.1", "::1"),
                                     extra_env={"KDOCTOR_DATA_DIR": f"{data}/{node}"})
            with progress.status(f"starting a coordinator and {node_count} workers"):
                cluster.wait_ready(nodes)
            settings = Settings.from_env({**DEMO_ENV, "KDOCTOR_BROKER_URL": url})
            reports = []
            with Client(settings=settings) as client:
                for name in DEMO_SPECS:
                    text = resources.files("kdoctor.examples").joinpath(name).read_text()
                    spec = load_text(text, name)
                    job = client.submit(spec, source="demo")
                    with progress.status(f"{spec.kind} {spec.name!r}: round {job.round_id}"):
                        reports.append(job.wait())
            return reports
