"""A fleet of simulated nodes on one real Redis, for scale tests and ``bench/scale``.

Each simulated node is what a coordinator sees of a real one, through kdoctor's own code: a
registry entry refreshed by heartbeats (:mod:`kdoctor.store.nodes`), a real probe queue
(``kdoctor.node.<name>``) whose messages it takes, and a result of the real size and shape (one
target per planned target, each with a real HDR histogram, and the node's digest) stored through
:func:`kdoctor.store.rounds.add_raw_result`. Nothing is pressed: the fleet answers at once (or
after ``answer_after`` seconds), so what is measured is the coordinator and Redis.

Some nodes can be told to misbehave: ``unconsumed`` nodes beat but never take their messages
(a stuck consumer), ``silent`` ones take them and never answer (a worker that died mid-probe).

One thread beats for every node (one pipelined write), one takes every node's messages with a
single ``BRPOP`` over all their queues and stamps their arrival, and one answers them: a thousand
nodes cost three threads, not a thousand processes, and the time to build a thousand results
does not delay the arrival stamps.
"""

from __future__ import annotations

import base64
import json
import queue
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import redis

from kdoctor.settings import Settings
from kdoctor.specs.latency import Latency
from kdoctor.specs.nodes import NodeInfo
from kdoctor.store import keys, rounds
from kdoctor.store import nodes as registry
from kdoctor.store.clock import broker_now
from kdoctor.store.connection import redis_client

__all__ = ["Arrival", "Fleet"]


@dataclass(frozen=True)
class Arrival:
    """One probe message as a simulated node received it."""

    node: str
    round_id: str
    received: float
    """Broker time when the node took it."""
    start_at: float
    answered: float = 0.0
    """Broker time when its result was stored (0: never)."""


def _histogram(rng: random.Random) -> Latency:
    latency = Latency()
    for _ in range(200):
        latency.record(rng.lognormvariate(-7.5, 0.5))
    return latency


@dataclass
class Fleet:
    """``count`` simulated nodes named ``<prefix>-1..N`` on ``settings.broker_url``."""

    settings: Settings
    count: int
    prefix: str = "sim"
    unconsumed: frozenset[str] = frozenset()
    silent: frozenset[str] = frozenset()
    answer_after: float = 0.0
    arrivals: list[Arrival] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.names = [f"{self.prefix}-{i}" for i in range(1, self.count + 1)]
        self.client = redis_client(self.settings)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        rng = random.Random(1)
        self._base = _histogram(rng)
        self._histogram, self._latency = self._base.encode(), self._base.summary().to_json()
        # Distinct histograms, one picked per target: identical ones would make reports compress
        # far better than real ones do.
        samples = [_histogram(rng) for _ in range(64)]
        self._pool = [(h.encode(), h.summary().to_json()) for h in samples]
        self._rng = rng
        self._inbox: queue.Queue[tuple[str, float]] = queue.Queue()
        self._offset = 0.0
        self._merged: dict[int, tuple[str, dict[str, object]]] = {}
        self._lock = threading.Lock()

    def _merged_of(self, targets: int) -> tuple[str, dict[str, object]]:
        """The histogram of ``targets`` targets merged, as a node's digest carries it (cached)."""
        if targets not in self._merged:
            merged = Latency()
            for _ in range(targets):
                merged.merge(Latency.decode(self._histogram, self._base.summary()))
            self._merged[targets] = (merged.encode(), merged.summary().to_json())
        return self._merged[targets]

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Fleet:
        self._beat()
        before = time.time()
        self._offset = broker_now(self.client) - before  # arrival stamps on the broker's clock
        for target, name in ((self._beating, "fleet-heartbeat"), (self._consuming, "fleet-consumer"),
                             (self._answering, "fleet-answers")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- heartbeats -----------------------------------------------------------------------------
    def _info(self, index: int, name: str, now: float) -> NodeInfo:
        return NodeInfo(name=name, ipv4=[f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}"],
                        ipv6=[f"fd00::{index:x}"], agent_port=5710, labels={"kubernetes.io/os": "linux"},
                        hostname=name, pid=index, started=now, last_heartbeat=now)

    def _beat(self) -> None:
        now = broker_now(self.client)
        registry.register_many(self.client, [self._info(i, n, now) for i, n in enumerate(self.names, 1)])

    def _beating(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_seconds):
            try:
                self._beat()
            except redis.RedisError:
                continue

    # -- messages -------------------------------------------------------------------------------
    def _consuming(self) -> None:
        queues = [keys.node_queue(n) for n in self.names if n not in self.unconsumed]
        while not self._stop.is_set():
            try:
                popped = self.client.brpop(queues, timeout=1)
            except redis.RedisError:
                time.sleep(0.1)
                continue
            if popped is not None:
                self._inbox.put((str(popped[1]), time.time() + self._offset))

    def _answering(self) -> None:
        while not self._stop.is_set():
            try:
                raw, received = self._inbox.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self._take(raw, received)
            except redis.RedisError:
                continue

    def _take(self, raw: str, received: float) -> None:
        envelope = json.loads(raw)
        args, _, _ = json.loads(base64.b64decode(envelope["body"]))
        assignment = args[0]
        node, rid = str(assignment["node"]), str(assignment["roundId"])
        arrival = Arrival(node, rid, received, float(assignment["startAt"]))
        if node in self.silent:
            with self._lock:
                self.arrivals.append(arrival)
            return
        if self.answer_after:
            time.sleep(self.answer_after)
        result, digest = self.result_of(assignment)
        rounds.add_raw_result(self.client, rid, node, result, digest)
        with self._lock:
            self.arrivals.append(Arrival(node, rid, arrival.received, arrival.start_at, time.time() + self._offset))

    def result_of(self, assignment: dict[str, object]) -> tuple[str, str]:
        """A passed result for ``assignment`` and its digest, as JSON, of the real shape."""
        planned = assignment["targets"]
        assert isinstance(planned, list)
        targets = []
        destinations: dict[str, int] = {}
        for item in planned:
            destination = item.get("destination")
            histogram, latency = self._pool[self._rng.randrange(len(self._pool))]
            targets.append({
                "name": item["name"], "kind": item["kind"], "url": item["url"], "destination": destination,
                "family": item.get("family"), "requests": 20, "successes": 20, "successRate": 1.0,
                "intendedQps": 10.0, "achievedQps": 10.0, "late": 0, "unsent": 0, "latencyMs": latency,
                "statusCodes": {"200": 20}, "errors": {}, "bytes": 1000, "histogram": histogram,
                "verdict": "passed", "reason": ""})
            if destination:
                destinations[str(destination)] = destinations.get(str(destination), 0) + 1
        result = {"node": assignment["node"], "status": "passed", "reason": "", "targets": targets,
                  "warnings": [], "profiles": []}
        cells = [{"destination": d, "targets": n, "failed": 0, "requests": 20 * n, "successes": 20 * n,
                  "p99Ms": self._latency.get("p99")} for d, n in sorted(destinations.items())]
        paths = {str(t["name"]): False for t in targets if not t["destination"]}
        histogram, latency = self._merged_of(len(targets))
        digest = {"node": assignment["node"], "status": "passed", "reason": "", "warnings": [], "cells": cells,
                  "paths": paths, "requests": 20 * len(targets), "successes": 20 * len(targets),
                  "latencyMs": latency, "histogram": histogram}
        return json.dumps(result), json.dumps(digest)

    def arrivals_of(self, round_id: str) -> list[Arrival]:
        with self._lock:
            return [a for a in self.arrivals if a.round_id == round_id]

    def forget(self, names: Iterable[str] | None = None) -> None:
        """Remove nodes from the registry (all by default)."""
        for name in names or self.names:
            registry.forget(self.client, name)
