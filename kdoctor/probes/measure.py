"""From driver statistics to result models; the generator's own health."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field

from kdoctor.probes.pressure import DriverStats, Pace
from kdoctor.specs.latency import Latency
from kdoctor.specs.plan import PlannedTarget
from kdoctor.specs.results import GeneratorStats, TargetResult

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
