"""The exporter's collector: kdoctor's results and health as Prometheus metric families, read
from Redis on each scrape without ever loading a report.

A scrape reads, in one round trip, the index of every task's newest report, the health counters,
the node registry and the coordinators' heartbeats; then the signals record of each task whose
newest report it has not seen yet (:mod:`kdoctor.signals.record`). A task's samples are built
once per report and kept until the task's next report, so a scrape between rounds costs a few
small Redis reads and the text encoding.

A task's series disappear when the task is gone: its schedule was removed (``kdoctor schedule
rm``), or it has no installed schedule (a ``kdoctor run``, or a schedule's last round) and its last
report is older than ``KDOCTOR_METRICS_ONESHOT_SECONDS``, or its record left Redis with its
report (retention). Its index entry is then removed.

Node statuses are exported as the report gives them (never re-judged here).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import redis
from prometheus_client import ProcessCollector, disable_created_metrics
from prometheus_client.core import Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

from kdoctor.signals import tasks
from kdoctor.signals.record import Figures, Signals
from kdoctor.signals.series import NODE_STATES, QUANTILES, SERIES, STATUSES, SUSPECT_KINDS
from kdoctor.store import keys
from kdoctor.store import signals as store
from kdoctor.store.signals import FINALIZE_BUCKETS, PLAN_BUCKETS

log = logging.getLogger(__name__)

__all__ = ["ResultsCollector", "new_registry", "samples_of"]

_KINDS = {s.name: s for s in SERIES}
_SUSPECT_LABEL = {"node": "node", "source": "node", "destination": "node", "pair": "pair", "service": "service"}

Samples = dict[str, list[Sample]]


def new_registry(collector: ResultsCollector) -> CollectorRegistry:
    """The exporter's registry: ``collector`` and the process's own figures (``process_*``)."""
    disable_created_metrics()  # type: ignore[no-untyped-call]  # a creation time per counter says nothing here
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    registry.register(collector)
    return registry


def _add(out: Samples, name: str, labels: dict[str, str], value: float | None) -> None:
    if value is not None:
        out.setdefault(name, []).append(Sample(name, labels, float(value)))


def _quantiles(out: Samples, name: str, labels: dict[str, str], figures: Figures) -> None:
    for label, field in QUANTILES:
        value = getattr(figures, field)
        _add(out, name, {**labels, "quantile": label}, None if value is None else value / 1000.0)


def samples_of(record: Signals) -> Samples:
    """Every sample of one task's last round (family name → samples)."""
    out: Samples = {}
    task = {"kind": record.kind, "task": record.name}
    _add(out, "kdoctor_round_passed", task, 1.0 if record.verdict == "passed" else 0.0)
    _add(out, "kdoctor_round_finished_timestamp_seconds", task, record.finished)
    _add(out, "kdoctor_round_duration_seconds", task, max(0.0, record.finished - record.started))
    _add(out, "kdoctor_round_number", task, record.round)
    for status in STATUSES:
        _add(out, "kdoctor_round_nodes", {**task, "status": status}, record.nodes_by_status.get(status, 0))
    _add(out, "kdoctor_round_success_ratio", task, record.summary.success_ratio)
    _quantiles(out, "kdoctor_round_latency_seconds", task, record.summary)
    for kind in SUSPECT_KINDS:
        _add(out, "kdoctor_round_suspects", {**task, "suspect_kind": kind}, record.suspects_by_kind.get(kind, 0))
    _add(out, "kdoctor_task_interval_seconds", task, record.interval_seconds)
    for name, node in record.nodes.items():
        labels = {**task, "node": name}
        for status in STATUSES:
            _add(out, "kdoctor_node_status", {**labels, "status": status}, 1.0 if node.status == status else 0.0)
        for role, figures in (("source", node.source), ("destination", node.destination)):
            if figures is not None:
                _add(out, "kdoctor_node_success_ratio", {**labels, "role": role}, figures.success_ratio)
                _quantiles(out, "kdoctor_node_latency_seconds", {**labels, "role": role}, figures)
        if node.saturated is not None:
            _add(out, "kdoctor_node_generator_saturated", labels, 1.0 if node.saturated else 0.0)
        for disk in node.disk:
            if disk.profile == "etcd" and disk.p99_ms is not None:
                _add(out, "kdoctor_disk_fdatasync_p99_seconds", labels, disk.p99_ms / 1000.0)
            _add(out, "kdoctor_disk_throughput_mib_per_second", {**labels, "profile": disk.name}, disk.mib_per_second)
            _add(out, "kdoctor_disk_iops", {**labels, "profile": disk.name}, disk.iops)
    for suspect in record.suspects:
        what = {"node": "", "pair": "", "service": ""}
        if suspect.kind == "pair":
            what["pair"] = f"{suspect.source}->{suspect.destination}"
        elif suspect.kind == "service":
            what["service"] = suspect.target or ""
        else:
            what["node"] = suspect.node or ""
        _add(out, "kdoctor_suspect", {**task, "suspect_kind": suspect.kind, **what}, 1.0)
    for group in record.groups:
        labels = {**task, "target_kind": group.kind, "family": group.family}
        _add(out, "kdoctor_target_success_ratio", labels, group.figures.success_ratio)
        _quantiles(out, "kdoctor_target_latency_seconds", labels, group.figures)
        _add(out, "kdoctor_targets", labels, group.targets)
        _add(out, "kdoctor_targets_failed", labels, group.failed)
    return out


@dataclass
class _Cached:
    report: str
    samples: Samples


class ResultsCollector(Collector):
    """A prometheus_client collector of kdoctor's results and health, read from Redis.

    ``client``: makes the Redis client (called per scrape). ``oneshot_seconds``: how long a task
    without an installed schedule stays exported after its last report. ``node_timeout``: the
    heartbeat age past which a node is not live (``KDOCTOR_NODE_TIMEOUT_SECONDS``).
    """

    def __init__(self, client: Callable[[], redis.Redis], *, oneshot_seconds: float, node_timeout: float,
                 coordinator_timeout: float) -> None:
        self._client = client
        self._oneshot = oneshot_seconds
        self._node_timeout = node_timeout
        self._coordinator_timeout = coordinator_timeout
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()  # two scrapes at once share one cache

    def describe(self) -> Iterable[Metric]:
        return []  # families depend on Redis; describing them would read it at registration

    def collect(self) -> Iterator[Metric]:
        try:
            with self._lock:
                families = self._read(self._client())
        except (redis.RedisError, OSError) as exc:
            log.warning("scrape: cannot read Redis: %s", exc)
            families = {}
            up = 0.0
        else:
            up = 1.0
        families.setdefault("kdoctor_redis_up", []).append(Sample("kdoctor_redis_up", {}, up))
        for series in SERIES:
            found = families.get(series.name)
            if not found:
                continue
            metric = Metric(series.name.removesuffix("_total") if series.type == "counter" else series.name,
                            series.help, series.type)
            metric.samples = found
            yield metric

    def _read(self, client: redis.Redis) -> Samples:
        pipe = client.pipeline(transaction=False)
        pipe.time()
        pipe.hgetall(keys.SIGNALS_HEALTH)
        pipe.hgetall(keys.NODES)
        pipe.hgetall(keys.COORDINATORS)
        (seconds, micros), health, nodes, coordinators = pipe.execute()
        now = float(seconds) + float(micros) / 1e6
        out: Samples = {}
        for samples in self._tasks(client, now):
            for name, found in samples.items():
                out.setdefault(name, []).extend(found)
        _health(out, {str(k): str(v) for k, v in health.items()})
        self._registry(out, nodes.values(), coordinators.values(), now)
        return out

    def _tasks(self, client: redis.Redis, now: float) -> list[Samples]:
        """Every current task's samples: from the cache, or built from its record when the task
        has a newer report than the cache holds."""
        entries = tasks.current(client, now, self._oneshot)
        for gone in set(self._cache) - set(entries):
            del self._cache[gone]
        fresh = [e for e in entries.values() if e.task not in self._cache or self._cache[e.task].report != e.id]
        for entry, text in zip(fresh, store.records(client, [e.id for e in fresh]), strict=True):
            record = _parse(text)
            if record is None:  # its report (and record) left Redis, or it cannot be read
                store.forget_task(client, entry.task, entry.raw)
                self._cache.pop(entry.task, None)
                continue
            self._cache[entry.task] = _Cached(report=entry.id, samples=samples_of(record))
        return [cached.samples for cached in self._cache.values()]

    def _registry(self, out: Samples, nodes: Iterable[str], coordinators: Iterable[str], now: float) -> None:
        states = dict.fromkeys(NODE_STATES, 0)
        for raw in nodes:
            states[_node_state(raw, now, self._node_timeout)] += 1
        for state, count in states.items():
            _add(out, "kdoctor_nodes", {"state": state}, count)
        live = 0
        for raw in coordinators:
            try:
                live += now - float(json.loads(raw).get("lastHeartbeat", 0)) <= self._coordinator_timeout
            except (ValueError, AttributeError):
                continue
        _add(out, "kdoctor_coordinators", {}, live)


def _parse(text: str | None) -> Signals | None:
    if text is None:
        return None
    try:
        return Signals.model_validate_json(text)
    except ValueError:
        log.warning("a signals record does not read; its task is skipped")
        return None


def _node_state(raw: str, now: float, timeout: float) -> str:
    """A registry entry's state, as :meth:`kdoctor.specs.nodes.NodeInfo.state` decides it, from
    the raw JSON (a thousand pydantic validations per scrape would cost more than the scrape)."""
    try:
        info: dict[str, Any] = json.loads(raw)
    except ValueError:
        return "stale"
    if info.get("stopped") is not None:
        return "stopped"
    if now - float(info.get("lastHeartbeat") or 0) > timeout:
        return "stale"
    return "unhealthy" if info.get("unhealthy") else "live"


def _health(out: Samples, fields: dict[str, str]) -> None:
    def value(name: str) -> float:
        try:
            return float(fields.get(name, 0))
        except ValueError:
            return 0.0

    _add(out, "kdoctor_rounds_planned_total", {}, value("planned"))
    for verdict in ("passed", "failed"):
        _add(out, "kdoctor_reports_written_total", {"verdict": verdict}, value(f"written:{verdict}"))
    _add(out, "kdoctor_rounds_deadline_total", {}, value("deadline"))
    for name, bounds in (("plan", PLAN_BUCKETS), ("finalize", FINALIZE_BUCKETS)):
        family = f"kdoctor_{name}_seconds"
        total = 0.0
        for bound in (*(repr(b) for b in bounds), "+Inf"):
            total += value(f"{name}:le:{bound}")
            _add(out, family, {"le": bound}, total)
        out[family] = [Sample(f"{family}_bucket", s.labels, s.value) for s in out[family]]
        out[family] += [Sample(f"{family}_sum", {}, value(f"{name}:sum")),
                        Sample(f"{family}_count", {}, value(f"{name}:count"))]
