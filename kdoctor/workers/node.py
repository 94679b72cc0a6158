"""``kdoctor worker``: one node's Celery worker, its agent server and its registry entry.

The process tree of a node::

    kdoctor worker --node N          Celery main process: consumes kdoctor.node.N only
    ├── agent server                 own process: answers other nodes' NetReach requests
    └── pool child(ren)              run probes; die with the main process

The registry entry is first written when Celery reports the worker ready, that is once the agent
listens and the node queue is consumed (so no node is expected to answer before it can), then
refreshed by a heartbeat thread, and marked stopped as soon as a shutdown begins.

The settings (the node name included) reach the pool children inside the app they inherit by
fork (:func:`kdoctor.tasks.app.build_app`); Celery's ``worker_process_init`` hook only ties each
child's life to this process.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import signal
import socket
import time
from dataclasses import dataclass, field

from celery.signals import worker_process_init, worker_ready, worker_shutting_down

from kdoctor import __version__
from kdoctor.errors import SetupError
from kdoctor.settings import Settings
from kdoctor.specs.nodes import NodeInfo
from kdoctor.store import clock
from kdoctor.store import nodes as registry
from kdoctor.store.clock import broker_now
from kdoctor.store.connection import ping, redis_client
from kdoctor.store.keys import check_node_name, node_queue
from kdoctor.tasks.app import build_app
from kdoctor.workers import agent, identity, lifetime
from kdoctor.workers.heartbeat import Heartbeat

log = logging.getLogger(__name__)

AGENT_START_TIMEOUT = 20.0


@dataclass
class WorkerOptions:
    """What ``kdoctor worker`` was asked to do."""

    node: str
    agent_port: int
    addresses: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    concurrency: int = 2
    node_addresses: list[str] = field(default_factory=list)
    """The node's own addresses (NodePorts); empty: the agent's are the node's."""


def start_agent(node: str, addresses: list[str], port: int) -> tuple[multiprocessing.process.BaseProcess, int]:
    """Start the agent server process and wait until it listens; returns it and its port."""
    ctx = multiprocessing.get_context("spawn")
    parent_end, child_end = ctx.Pipe(duplex=False)
    process = ctx.Process(target=agent.serve, args=(node, addresses, port, child_end),
                          name=f"kdoctor-agent-{node}", daemon=True)
    process.start()
    child_end.close()
    if not parent_end.poll(AGENT_START_TIMEOUT):
        process.kill()
        raise SetupError(f"the agent server did not start within {AGENT_START_TIMEOUT:g} s")
    status, value = parent_end.recv()
    if status != "ready":
        process.join(5)
        raise SetupError(str(value))
    return process, int(value)


def run_worker(settings: Settings, options: WorkerOptions) -> int:
    """Run a node's worker until it is stopped; returns the process exit code."""
    node = check_node_name(options.node)
    addresses = options.addresses or identity.detect_addresses()
    ipv4, ipv6 = identity.split_families(addresses)
    settings = dataclasses.replace(settings, node_name=node)  # probes refuse work misrouted to this node
    client = redis_client(settings)
    ping(client, settings)
    app = build_app(settings)
    agent_process, port = start_agent(node, addresses, options.agent_port)
    info = NodeInfo(
        name=node, ipv4=ipv4, ipv6=ipv6, agent_port=port, labels=options.labels, node_ips=options.node_addresses,
        hostname=socket.gethostname(), pid=os.getpid(), version=__version__, started=broker_now(client),
    )

    def beat() -> None:
        skew = clock.offset(client)  # published so the coordinator can set task expiry in our clock
        registry.register(client, info.model_copy(update={"last_heartbeat": time.time() + skew,
                                                          "clock_offset": round(skew, 4)}))

    heartbeat = Heartbeat(beat, settings.heartbeat_seconds, f"heartbeat-{node}")

    def ready(**_: object) -> None:
        heartbeat.start()
        log.warning("node %s: agent on %s port %d, consuming %s", node, addresses, port, node_queue(node))

    def shutting_down(**_: object) -> None:
        # Say goodbye before draining, so no new round publishes to a node on its way out.
        heartbeat.stop()
        registry.goodbye(client, info.model_copy(update={"last_heartbeat": broker_now(client)}))

    # Until Celery installs its own handler, SIGTERM must still unwind through `finally`.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        worker_ready.connect(ready, weak=False)
        worker_shutting_down.connect(shutting_down, weak=False)
        worker_process_init.connect(_bind_child, weak=False)
        code = app.start(argv=[
            "worker",
            "--hostname", identity.worker_hostname(node),
            "--queues", node_queue(node),
            "--pool", "prefork",
            "--concurrency", str(options.concurrency),
            "--optimization", "fair",
            "--prefetch-multiplier", "1",
            "--without-gossip",
            "--without-mingle",
            "--loglevel", settings.log_level,
        ])
    finally:
        if heartbeat.started:
            heartbeat.stop()
        try:
            registry.goodbye(client, info.model_copy(update={"last_heartbeat": broker_now(client)}))
        except Exception as exc:  # the broker may be what is going away
            log.warning("could not mark node %s stopped: %s", node, exc)
        agent_process.terminate()
        agent_process.join(5)
    return int(code or 0)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _bind_child(**_: object) -> None:
    # A pool child must not outlive its worker: an orphan finishing a probe would report for a
    # node that is already dead.
    lifetime.die_with_parent()
