"""From driver statistics to result models; the generator's own health."""

from __future__ import annotations

import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from kdoctor.probes.judge import judge_target, node_verdict
from kdoctor.probes.pressure import DriverStats, Pace
from kdoctor.specs.common import Expect
from kdoctor.specs.latency import Latency
from kdoctor.specs.plan import PlannedTarget
from kdoctor.specs.results import GeneratorStats, NodeResult, TargetResult

# The generator is saturated when it could not do what the schedule asked (issue 15):
# * its CPU is at this share of one core (Python runs the event loop on one core);
# * a target's p99 send lag (sent minus due) exceeds both SATURATED_LAG_MS and the interval
#   between that target's requests. A lag shorter than the interval means each request still left
#   before the next was due: the generator kept up (at 10 QPS, a first TLS handshake of 20 ms is
#   not saturation); a lag of several intervals means requests piled up behind it;
# * it dropped requests past the lateness bound (``unsent``).
SATURATED_CPU_PERCENT = 90.0
SATURATED_LAG_MS = 10.0


def target_result(planned: PlannedTarget, stats: DriverStats, pace: Pace, processes: int = 1) -> TargetResult:
    """The measured figures of one target (verdict still to be judged); ``processes``: how many
    processes pressed it."""
    return TargetResult(
        name=planned.name,
        kind=planned.kind,
        url=planned.url,
        destination=planned.destination,
        family=planned.family,
        requests=stats.sent,
        successes=stats.successes,
        success_rate=round(stats.successes / stats.sent, 6) if stats.sent else 0.0,
        intended_qps=pace.qps,
        achieved_qps=round(stats.achieved_qps(pace.qps), 3),
        late=stats.late,
        unsent=stats.unsent,
        latency_ms=stats.latency.summary(),
        status_codes=dict(sorted(stats.codes.items())),
        errors=dict(sorted(stats.errors.items())),
        bytes=stats.bytes,
        histogram=stats.latency.encode(),
        generator_processes=processes,
    )


def node_result(
    node: str,
    measured: Sequence[tuple[PlannedTarget, DriverStats, Pace]],
    expect: Expect,
    monitor: GeneratorMonitor,
    *,
    warnings: Sequence[str] = (),
) -> NodeResult:
    """One node's result from its drivers' statistics: every target judged against ``expect``,
    the node's verdict, and the generator's own health (CPU, send lag, tokens not sent)."""
    results = []
    unsent = 0
    for planned, stats, pace in measured:
        monitor.add_lag(stats, pace, planned.name)
        unsent += stats.unsent
        result = target_result(planned, stats, pace, monitor.processes)
        verdict, reason = judge_target(result, expect)
        results.append(result.model_copy(update={"verdict": verdict, "reason": reason}))
    status, why = node_verdict(results)
    generator = monitor.finish(unsent)
    notes = [*warnings, *saturation_notes(node, generator)]
    return NodeResult(node=node, status=status, reason=why, targets=results, generator=generator, warnings=notes)


def saturation_notes(node: str, generator: GeneratorStats) -> list[str]:
    """The report warning of a saturated generator: said where people read, not only in the
    JSON's generator block."""
    if not generator.saturated:
        return []
    return [f"{node}: load generator saturated ({generator.reason}): its latencies include the "
            "generator's own delay; do not blame the targets for that part"]


@dataclass
class CpuMeter:
    """This process's CPU (user + system, all its threads) from :meth:`start` on."""

    cpu0: float = 0.0
    wall0: float = 0.0

    def start(self) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu0 = usage.ru_utime + usage.ru_stime
        self.wall0 = time.perf_counter()

    def cpu(self) -> tuple[float, float]:
        """This process's CPU since :meth:`start`: seconds, and percent of one core."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        seconds = usage.ru_utime + usage.ru_stime - self.cpu0
        wall = max(time.perf_counter() - self.wall0, 1e-9)
        return seconds, 100.0 * seconds / wall


@dataclass
class GeneratorMonitor(CpuMeter):
    """Measures the probe process's CPU over the pressure window and its send lag (with a team
    of processes, the first process's monitor takes in the others' figures)."""

    lag: Latency = field(default_factory=Latency)
    behind: list[tuple[float, str]] = field(default_factory=list)
    """Targets whose schedule the generator fell behind: (p99 send lag, reason)."""
    processes: int = 1
    """How many processes pressed (:mod:`kdoctor.probes.spread`)."""
    peers: list[tuple[float, float]] = field(default_factory=list)
    """The other processes' CPU: (seconds, percent of one core)."""
    dropped_replies: int = 0
    """Replies the generator's own sockets dropped (receive buffer full), every process's."""

    def add_lag(self, stats: DriverStats, pace: Pace | None = None, name: str = "") -> None:
        """Take in one target's send lag; with its ``pace``, judge whether the generator fell
        behind that target's schedule (see :data:`SATURATED_LAG_MS`). A team of processes
        (:mod:`kdoctor.probes.spread`) judged each process against its own slice already."""
        self.lag.merge(stats.lag)
        if self.processes == 1:
            self.judge_lag(stats, pace, name)

    def judge_lag(self, stats: DriverStats, pace: Pace | None, name: str) -> None:
        """Note ``name`` as a target the generator fell behind, if its p99 send lag says so."""
        if pace is None or pace.closed_loop or not stats.lag.count:
            return  # closed loop: no schedule to fall behind
        p99 = stats.lag.percentile_ms(99)
        interval = 1000.0 / pace.qps
        if p99 is not None and p99 > max(SATURATED_LAG_MS, interval):
            self.behind.append((p99, f"p99 send lag {p99:.1f} ms on {name or 'a target'}, whose requests are due "
                               f"every {interval:.3g} ms"))

    def finish(self, unsent: int) -> GeneratorStats:
        """The generator's figures; a team's CPU is its busiest process's (each is one core)."""
        cpu, percent = self.cpu()
        for seconds, share in self.peers:
            cpu += seconds
            percent = max(percent, share)
        lag_p99 = self.lag.percentile_ms(99) if self.lag.count else None
        reasons = []
        if percent >= SATURATED_CPU_PERCENT:
            busiest = f" (the busiest of {self.processes} processes)" if self.processes > 1 else ""
            reasons.append(f"generator CPU at {percent:.0f}% of a core{busiest}")
        if self.behind:
            what = "target(s) or process(es)" if self.processes > 1 else "target(s)"
            more = f" (and {len(self.behind) - 1} more {what})" if len(self.behind) > 1 else ""
            reasons.append(max(self.behind)[1] + more)
        if unsent:
            reasons.append(f"{unsent} request(s) not sent on time")
        if self.dropped_replies:
            reasons.append(f"its own sockets dropped {self.dropped_replies} repl(ies) with their receive buffer full: "
                           "up to as many of the timeouts are the generator's, not the server's")
        return GeneratorStats(
            cpu_seconds=round(cpu, 3),
            cpu_percent=round(percent, 1),
            send_lag_p99_ms=lag_p99,
            saturated=bool(reasons),
            reason="; ".join(reasons),
            processes=self.processes,
        )
