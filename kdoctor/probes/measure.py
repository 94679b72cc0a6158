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

# A generator above this share of one core cannot be trusted to send on time (Python runs the
# event loop on one core); nor can one whose p99 send lag exceeds SATURATED_LAG_MS.
SATURATED_CPU_PERCENT = 90.0
SATURATED_LAG_MS = 10.0


def target_result(planned: PlannedTarget, stats: DriverStats, pace: Pace) -> TargetResult:
    """The measured figures of one target (verdict still to be judged)."""
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
        monitor.add_lag(stats)
        unsent += stats.unsent
        result = target_result(planned, stats, pace)
        verdict, reason = judge_target(result, expect)
        results.append(result.model_copy(update={"verdict": verdict, "reason": reason}))
    status, why = node_verdict(results)
    generator = monitor.finish(unsent)
    notes = list(warnings)
    if generator.saturated:  # said where people read, not only in the JSON's generator block
        notes.append(f"{node}: load generator saturated ({generator.reason}): its latencies include the "
                     "generator's own delay; do not blame the targets for that part")
    return NodeResult(node=node, status=status, reason=why, targets=results, generator=generator, warnings=notes)


@dataclass
class GeneratorMonitor:
    """Measures the probe process's CPU over the pressure window and its send lag."""

    cpu0: float = 0.0
    wall0: float = 0.0
    lag: Latency = field(default_factory=Latency)

    def start(self) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu0 = usage.ru_utime + usage.ru_stime
        self.wall0 = time.perf_counter()

    def add_lag(self, stats: DriverStats) -> None:
        self.lag.merge(stats.lag)

    def finish(self, unsent: int) -> GeneratorStats:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime - self.cpu0
        wall = max(time.perf_counter() - self.wall0, 1e-9)
        percent = 100.0 * cpu / wall
        lag_p99 = self.lag.percentile_ms(99) if self.lag.count else None
        reasons = []
        if percent >= SATURATED_CPU_PERCENT:
            reasons.append(f"generator CPU at {percent:.0f}% of a core")
        if lag_p99 is not None and lag_p99 > SATURATED_LAG_MS:
            reasons.append(f"p99 send lag {lag_p99:.1f} ms")
        if unsent:
            reasons.append(f"{unsent} request(s) not sent on time")
        return GeneratorStats(
            cpu_seconds=round(cpu, 3),
            cpu_percent=round(percent, 1),
            send_lag_p99_ms=lag_p99,
            saturated=bool(reasons),
            reason="; ".join(reasons),
        )
