"""``kdoctor demo``: the whole system on one machine, end to end, with nothing to configure.

Starts its own redis-server on a free loopback port (unless a broker is given), a coordinator
and N workers named ``node-1..N`` listening on IPv4 and IPv6 loopback, runs the embedded
inspections, and stops everything it started, also on Ctrl-C, SIGTERM or SIGHUP (``timeout``,
a closed terminal): the servers and workers run in sessions of their own, so nothing but this
process can stop them.

All four probe kinds run, one round each: NetReach between the workers' agents,
AppHttpHealthy against an nginx and Netdns against a dnsmasq the demo starts on loopback (the
packaged specs' host and port are pointed at them), and DiskIO in a temporary data directory per
worker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from importlib import resources
from typing import Any

import yaml
from rich.console import Console

from kdoctor.api import Client
from kdoctor.local.cluster import LocalCluster
from kdoctor.local.dnsmasq import Dnsmasq
from kdoctor.local.nginx import Nginx
from kdoctor.local.redisserver import RedisServer
from kdoctor.settings import Settings
from kdoctor.specs import Report, validate
from kdoctor.store.connection import ping, redis_client, safe_url

DEMO_SPECS = ("demo-netreach.yaml", "demo-apphttp.yaml", "demo-netdns.yaml", "demo-diskio.yaml")


def demo_settings(settings: Settings, url: str) -> Settings:
    """The demo's processes beat fast, so a three-node demo is ready in about two seconds."""
    return dataclasses.replace(settings, broker_url=url, heartbeat_seconds=0.5, node_timeout_seconds=3.0,
                               round_grace_seconds=5.0)


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


@contextlib.contextmanager
def _stop_signals_interrupt() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into KeyboardInterrupt for the block, so every ``with`` unwinds."""
    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_demo(settings: Settings, node_count: int, broker: str | None, progress: Console) -> list[Report]:
    """Run the demo on ``broker`` (or a private redis-server) and return its reports."""
    nodes = [f"node-{i}" for i in range(1, node_count + 1)]
    with _stop_signals_interrupt(), _broker(broker) as url:
        settings = demo_settings(settings, url)
        ping(redis_client(settings), settings)  # a broker given but down: say so before starting anything
        progress.print(f"[dim]broker {safe_url(url)}[/dim]")
        data = tempfile.mkdtemp(prefix="kdoctor-demo-data-")
        # Removed after the cluster has stopped (an ExitStack entered first exits last).
        with contextlib.ExitStack() as cleanup, LocalCluster(settings) as cluster:
            cleanup.callback(shutil.rmtree, data, True)
            with progress.status("starting nginx and dnsmasq on loopback"):
                nginx = cleanup.enter_context(Nginx())
                dns = cleanup.enter_context(Dnsmasq(log_queries=False))
            # The packaged specs name placeholder servers; point them at the ones just started.
            patches: dict[str, dict[str, Any]] = {
                "AppHttpHealthy": {"host": nginx.url},
                "Netdns": {"targetUser": {"server": "127.0.0.1", "port": dns.port}},
            }
            cluster.start_coordinator()
            for node in nodes:
                # Each node's DiskIO writes only under its own data directory.
                os.makedirs(f"{data}/{node}")
                cluster.start_worker(node, addresses=("127.0.0.1", "::1"), data_dir=f"{data}/{node}")
            with progress.status(f"starting a coordinator and {node_count} workers"):
                cluster.wait_ready(nodes)
            reports = []
            with Client(settings=settings) as client:
                for name in DEMO_SPECS:
                    data_ = yaml.safe_load(resources.files("kdoctor.examples").joinpath(name).read_text())
                    data_["spec"]["target"].update(patches.get(data_["kind"], {}))
                    spec = validate(data_, name)
                    job = client.submit(spec, source="demo")
                    with progress.status(f"{spec.kind} {spec.name!r}: round {job.round_id}"):
                        reports.append(job.wait())
            return reports
