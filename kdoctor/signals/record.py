"""The signals record of a round: the few figures metrics and notifications need, made once when
the report is written. Pure: no I/O.

A 1,000-node NetReach report is about 25 MB of JSON; an exporter that loaded reports on every
scrape would spend seconds and hundreds of MB on it. Instead the report writer
(:func:`kdoctor.tasks.coordinator.finalize_round`) builds this record from what it already holds
(the report's shell and the digest each node was judged by, :class:`~kdoctor.specs.results.NodeDigest`)
and stores it beside the report's head, with the report's retention. It is about 200 bytes per
node, and its size grows with the nodes only, never with the pairs:

* per node: the status the report gives it (never re-judged here), its requests, successes and
  latency quantiles as a **source** (every target it probed) and, for NetReach, as a
  **destination** (every pair towards it, the pairs' histograms merged), whether its load
  generator was saturated, and its DiskIO profiles (MiB/s, IOPS, p99);
* per target kind and family (``endpoint``/ipv4, ``clusterIP``/ipv6, ``url``/any, ...): the
  targets merged over every node;
* the suspects of the blame analysis (at most :data:`MAX_SUSPECTS`, with the counts per kind);
* the round: verdict, times, round number, node counts, and what the schedule promises next.

Quantiles come from merged HDR histograms, never from averaging percentiles.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from hdrh.histogram import HdrHistogram
from pydantic import Field

from kdoctor.specs import schedule as schedule_forms
from kdoctor.specs.latency import Latency
from kdoctor.specs.results import DiskDigest, LatencyMs, NodeDigest, NodeStatus, Report, ResultModel, Suspect, Verdict
from kdoctor.specs.rounds import RoundState

__all__ = ["MAX_SUSPECTS", "RECORD_VERSION", "Figures", "GroupSignals", "NodeSignals", "Signals", "build"]

RECORD_VERSION = 1
MAX_SUSPECTS = 50
"""Suspects kept per round (those named first; the blame analysis names the worst first). A
round with more is broken everywhere, and 50 series say so as well as 10,000 would."""


class Figures(ResultModel):
    """Requests, successes and latency quantiles (ms) of a set of targets."""

    requests: int = 0
    successes: int = 0
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None

    @classmethod
    def of(cls, requests: int, successes: int, latency: LatencyMs) -> Figures:
        return cls(requests=requests, successes=successes, p50_ms=latency.p50, p90_ms=latency.p90,
                   p99_ms=latency.p99)

    @property
    def success_ratio(self) -> float | None:
        return self.successes / self.requests if self.requests else None


class NodeSignals(ResultModel):
    """One node of one round."""

    status: NodeStatus
    source: Figures | None = Field(default=None, description="Everything the node probed; None: it probed nothing.")
    destination: Figures | None = Field(default=None, description="NetReach: every pair towards the node.")
    saturated: bool | None = Field(default=None, description="Its load generator was saturated; None: unknown.")
    disk: list[DiskDigest] = Field(default_factory=list)


class GroupSignals(ResultModel):
    """The targets of one kind and family, over every node."""

    kind: str
    family: str = Field(description="ipv4, ipv6, or any (a URL by name, a target of no one family).")
    targets: int = 0
    failed: int = 0
    figures: Figures = Field(default_factory=Figures)


class Signals(ResultModel):
    """What metrics and notifications know of one round."""

    version: int = RECORD_VERSION
    id: str
    job: str
    kind: str
    name: str
    round: int
    verdict: Verdict
    reasons: list[str] = Field(default_factory=list, description="The report's first 10 reasons.")
    started: float = Field(description="Seconds since the epoch (broker clock), as every time below.")
    finished: float
    scheduled: bool = False
    last_round: bool = Field(default=False, description="The schedule fires no round after this one.")
    interval_seconds: float | None = Field(
        default=None, description="How often the schedule fires rounds (None: not scheduled, or done).")
    ended_by_deadline: bool = Field(default=False, description="Some node had no result by the deadline.")
    finalize_seconds: float = 0.0
    nodes_by_status: dict[str, int] = Field(default_factory=dict)
    summary: Figures = Field(default_factory=Figures)
    nodes: dict[str, NodeSignals] = Field(default_factory=dict)
    groups: list[GroupSignals] = Field(default_factory=list)
    suspects: list[Suspect] = Field(default_factory=list, description=f"At most {MAX_SUSPECTS}.")
    suspects_by_kind: dict[str, int] = Field(default_factory=dict, description="Every suspect, counted by kind.")

    @property
    def task(self) -> str:
        """``<kind>/<name>``: the task, as the index and notifications name it."""
        return f"{self.kind}/{self.name}"


def build(state: RoundState, shell: Report, judged: Mapping[str, NodeDigest], *, scheduled: bool,
          finalize_seconds: float = 0.0) -> Signals:
    """The record of the round ``shell`` reports; ``judged``: the digest each node was judged by
    (:func:`kdoctor.reports.merge.assemble_report`'s ``judged``), so statuses are the report's."""
    limit, interval = _schedule(state.spec, shell.finished) if scheduled else (1, None)
    last = limit != -1 and shell.round >= limit
    suspects = shell.matrix.suspects if shell.matrix else []
    summary = shell.summary
    return Signals(
        id=shell.id, job=shell.job, kind=shell.task.kind, name=shell.task.name, round=shell.round,
        verdict=shell.verdict, reasons=shell.reasons[:10], started=shell.started.timestamp(),
        finished=shell.finished.timestamp(), scheduled=scheduled, last_round=scheduled and last,
        interval_seconds=None if last else interval,
        ended_by_deadline=any(node not in judged or judged[node].status == "timeout" for node in state.published),
        finalize_seconds=round(finalize_seconds, 6), nodes_by_status=dict(summary.nodes),
        summary=Figures.of(summary.requests, summary.successes, summary.latency_ms),
        nodes=_nodes(judged), groups=_groups(judged), suspects=suspects[:MAX_SUSPECTS],
        suspects_by_kind=dict(sorted(Counter(s.kind for s in suspects).items())),
    )


def _nodes(judged: Mapping[str, NodeDigest]) -> dict[str, NodeSignals]:
    towards: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for digest in judged.values():
        for cell in digest.cells:
            towards[cell.destination].append((cell.requests, cell.successes, cell.histogram))
    found = {}
    for name, digest in sorted(judged.items()):
        probed = bool(digest.requests or digest.cells or digest.groups)
        found[name] = NodeSignals(
            status=digest.status,
            source=Figures.of(digest.requests, digest.successes, digest.latency_ms) if probed else None,
            destination=_destination(towards[name]) if name in towards else None,
            saturated=digest.generator.saturated if digest.generator else None,
            disk=digest.disk,
        )
    # A destination that is no expected node (it left the inventory mid-round) is not reported.
    return found


def _destination(cells: list[tuple[int, int, str]]) -> Figures:
    return Figures.of(sum(c[0] for c in cells), sum(c[1] for c in cells), _merged(c[2] for c in cells).summary())


def _merged(histograms: Iterable[str]) -> Latency:
    """The histograms' counts merged, for quantiles (and min, max). The mean is left out: a pair
    digest carries no exact figures, and hdrh computes a mean by walking every bucket in Python
    (a tenth of a second per histogram)."""
    latency = Latency()
    hist = latency.hist
    for text in histograms:
        if text:
            hist.add(HdrHistogram.decode(text.encode("ascii")))
    latency.count = int(hist.get_total_count())
    if latency.count:
        latency.min_us, latency.max_us = int(hist.get_min_value()), int(hist.get_max_value())
    return latency


def _groups(judged: Mapping[str, NodeDigest]) -> list[GroupSignals]:
    merged: dict[tuple[str, str], list[Any]] = {}
    for digest in judged.values():
        for group in digest.groups:
            family = f"ipv{group.family}" if group.family else "any"
            entry = merged.setdefault((group.kind, family), [0, 0, 0, 0, Latency()])
            entry[0] += group.targets
            entry[1] += group.failed
            entry[2] += group.requests
            entry[3] += group.successes
            entry[4].add_encoded(group.histogram, group.latency_ms)
    return [GroupSignals(kind=kind, family=family, targets=t, failed=f, figures=Figures.of(r, s, lat.summary()))
            for (kind, family), (t, f, r, s, lat) in sorted(merged.items())]


def _schedule(spec: Mapping[str, Any], finished: datetime) -> tuple[int, float | None]:
    """The schedule's ``roundNumber`` and its interval in seconds (cron: the gap between its next
    two fires), from the normalized spec; ``(-1, None)`` when it cannot tell."""
    schedule = (spec.get("spec") or {}).get("schedule") or {}
    limit = int(schedule.get("roundNumber", 1))
    try:
        parsed = schedule_forms.parse(str(schedule.get("schedule", "")))
    except ValueError:
        return limit, None
    if isinstance(parsed, schedule_forms.Interval):
        return limit, float(parsed.every_seconds)
    nxt = parsed.after(finished.astimezone(UTC))
    return limit, (parsed.after(nxt) - nxt) / timedelta(seconds=1)
