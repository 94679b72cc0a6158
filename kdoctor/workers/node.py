"""``kdoctor worker``: one node's Celery worker, its agent server and its registry entry.

The process tree of a node::

    kdoctor worker --node N          Celery, thread pool of 1: consumes kdoctor.node.N only
    ├── agent server                 own interpreter: answers other nodes' NetReach requests
    └── probe                        forked per assignment, killed if it outlives its round

The worker itself only receives assignments, forks the probe (:mod:`kdoctor.probes.isolation`)
and stores its result: it stays small (no prefork pool, no engines imported) and a wedged probe
can always be killed. The settings (the node name included) are arguments of its app
(:func:`kdoctor.tasks.app.build_app`).

The registry entry is written at once with the new agent port, as ``starting`` (not live), then
as live when Celery reports the worker ready, and refreshed by a heartbeat that vouches for the
consumer and the agent (:mod:`kdoctor.workers.health`): when the consumer's loop has not run or
the agent does not answer for ``stall_seconds``, the entry says so and the node is not live;
after twice that the worker exits so that its supervisor starts a fresh one. An agent that died
is restarted. A clean stop marks the entry stopped as soon as the shutdown begins.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field

import redis
from celery.signals import worker_ready, worker_shutting_down

from kdoctor import __version__
from kdoctor.settings import Settings
from kdoctor.specs.nodes import NodeInfo
from kdoctor.store import clock
from kdoctor.store import nodes as registry
from kdoctor.store.clock import broker_now
from kdoctor.store.connection import ping, redis_client
from kdoctor.store.keys import check_node_name, node_queue
from kdoctor.tasks.app import build_app
from kdoctor.workers import events, health, identity
from kdoctor.workers.agent_process import AgentProcess
from kdoctor.workers.heartbeat import Heartbeat

log = logging.getLogger(__name__)

EXIT_STALLED = 70
"""Exit code of a worker that stalled for twice ``stall_seconds`` (its supervisor restarts it)."""


@dataclass
class WorkerOptions:
    """What ``kdoctor worker`` was asked to do."""

    node: str
    agent_port: int
    addresses: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    concurrency: int = 1
    node_addresses: list[str] = field(default_factory=list)
    """The node's own addresses (NodePorts); empty: the agent's are the node's."""


class NodeHeartbeat:
    """The heartbeat's one beat: check the consumer and the agent, then say so in the registry."""

    def __init__(self, client: redis.Redis, settings: Settings, info: NodeInfo, agent: AgentProcess) -> None:
        self.client = client
        self.settings = settings
        self.info = info
        self.agent = agent
        self.ready = threading.Event()
        self._agent_trouble_since = 0.0

    def problem(self) -> str:
        """Why this node cannot take work now, or ``""``."""
        stall = self.settings.stall_seconds
        # The consumer is judged as the coordinator's is (silence, reconnecting); only once it
        # has started: before, the node is "starting" whatever its consumer says.
        vitals = health.consumer_verdict("worker", stall, self.ready.is_set())
        if not vitals.alive:
            log.critical("node %s: %s: exiting for a restart", self.info.name, vitals.why)
            os._exit(EXIT_STALLED)
        if self.ready.is_set() and not vitals.ready:
            return vitals.why
        trouble = self.agent.health()
        if not trouble:
            self._agent_trouble_since = 0.0
            return "" if self.ready.is_set() else "starting"
        now = time.monotonic()
        self._agent_trouble_since = self._agent_trouble_since or now
        if self.agent.process is None or self.agent.process.poll() is not None \
                or now - self._agent_trouble_since > stall:
            try:
                self.agent.restart(trouble)
            except Exception as exc:  # retried at the next beat; the node stays not live meanwhile
                return f"{trouble}; restarting it failed: {exc}"
            self._agent_trouble_since = 0.0
            if self.agent.port != self.info.agent_port:
                self.info = self.info.model_copy(update={"agent_port": self.agent.port})
            return "" if self.ready.is_set() else "starting"
        return trouble

    def beat(self) -> None:
        problem = self.problem()
        # Written before Redis is: the file says what this process can vouch for by itself, so a
        # Redis outage does not restart workers (the consumer's own silence, if long, does).
        health.write_health(self.settings.health_file, health.Health(
            "worker", alive=True, ready=not problem, why=problem))
        skew = clock.offset(self.client)  # published so the coordinator sets task expiry in our clock
        registry.register(self.client, self.info.model_copy(update={
            "last_heartbeat": time.time() + skew, "clock_offset": round(skew, 4), "unhealthy": problem or None}))


def run_worker(settings: Settings, options: WorkerOptions) -> int:
    """Run a node's worker until it is stopped; returns the process exit code."""
    node = check_node_name(options.node)
    addresses = options.addresses or identity.detect_addresses()
    ipv4, ipv6 = identity.split_families(addresses)
    settings = dataclasses.replace(settings, node_name=node)  # probes refuse work misrouted to this node
    client = redis_client(settings)
    ping(client, settings)
    app = build_app(settings, "worker")
    health.install(app)
    events.install(app)
    agent = AgentProcess(node, addresses, options.agent_port)
    port = agent.start()
    info = NodeInfo(
        name=node, ipv4=ipv4, ipv6=ipv6, agent_port=port, labels=options.labels, node_ips=options.node_addresses,
        hostname=socket.gethostname(), pid=os.getpid(), version=__version__, started=broker_now(client),
    )
    vouch = NodeHeartbeat(client, settings, info, agent)
    vouch.beat()  # at once: the new agent port replaces a previous worker's entry, as "starting"
    heartbeat = Heartbeat(vouch.beat, settings.heartbeat_seconds, f"heartbeat-{node}").start()

    def ready(**_: object) -> None:
        vouch.ready.set()
        heartbeat.beat_now()
        log.warning("node %s: agent on %s port %d, consuming %s", node, addresses, agent.port, node_queue(node))

    def shutting_down(**_: object) -> None:
        # Say goodbye before draining, so no new round publishes to a node on its way out.
        heartbeat.stop()
        registry.goodbye(client, vouch.info.model_copy(update={"last_heartbeat": broker_now(client)}))

    # Until Celery installs its own handler, SIGTERM must still unwind through `finally`.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        worker_ready.connect(ready, weak=False)
        worker_shutting_down.connect(shutting_down, weak=False)
        code = app.start(argv=[
            "worker",
            "--hostname", identity.worker_hostname(node),
            "--queues", node_queue(node),
            # Threads, not prefork: the probe runs in a process of its own already, and a pool
            # child killed by a time limit could corrupt the prefork pool's pipe for good.
            "--pool", "threads",
            "--concurrency", str(options.concurrency),
            "--prefetch-multiplier", "1",
            "--without-gossip",
            "--without-mingle",
            "--loglevel", settings.log_level,
        ])
    finally:
        heartbeat.stop()
        try:
            registry.goodbye(client, vouch.info.model_copy(update={"last_heartbeat": broker_now(client)}))
        except Exception as exc:  # the broker may be what is going away
            log.warning("could not mark node %s stopped: %s", node, exc)
        agent.stop()
    return int(code or 0)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)
