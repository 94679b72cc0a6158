"""Judging measurements against ``expect``: pure functions, no I/O."""

from __future__ import annotations

from kdoctor.specs.common import Expect
from kdoctor.specs.results import TargetResult, Verdict


def judge_target(result: TargetResult, expect: Expect) -> tuple[Verdict, str]:
    """The verdict of one target and, when it failed, why.

    Checked in kdoctor's order (success rate, then mean latency), then ours (p99, then requests
    that could not be sent on time). Every failed condition is named, not just the first.
    """
    reasons = []
    if result.requests == 0 and result.unsent == 0:
        return "failed", "no request was sent"
    if result.success_rate < expect.success_rate:
        reasons.append(f"success rate {result.success_rate:.4g} < {expect.success_rate:g}")
    mean = result.latency_ms.mean
    if mean is not None and mean > expect.mean_access_delay_in_ms:
        reasons.append(f"mean latency {mean:.3f} ms > {expect.mean_access_delay_in_ms:g} ms")
    p99 = result.latency_ms.p99
    if expect.p99_access_delay_in_ms is not None and p99 is not None and p99 > expect.p99_access_delay_in_ms:
        reasons.append(f"p99 latency {p99:.3f} ms > {expect.p99_access_delay_in_ms:g} ms")
    if result.unsent:
        reasons.append(f"{result.unsent} request(s) could not be sent on time")
    if reasons:
        return "failed", "; ".join(reasons)
    return "passed", ""


def node_verdict(targets: list[TargetResult]) -> tuple[Verdict, str]:
    """A node passes when every target passed; the reason names the failed targets."""
    failed = [t for t in targets if t.verdict != "passed"]
    if not failed:
        return "passed", ""
    shown = "; ".join(f"{t.name}: {t.reason}" for t in failed[:3])
    more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
    return "failed", f"{len(failed)} of {len(targets)} target(s) failed: {shown}{more}"
