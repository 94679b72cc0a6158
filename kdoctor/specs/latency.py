"""Latency histograms: microsecond HDR histograms that travel in results and merge exactly.

Each target's latencies are recorded in an HDR histogram (1 µs to 1 h, 3 significant digits, so
any percentile is within 0.1 %). The histogram travels base64-encoded in the result (typically
100–400 bytes), so a merged report takes its percentiles from the merged histogram, never from
averaging percentiles. Min, max and mean are kept exactly beside it.
"""

from __future__ import annotations

from hdrh.histogram import HdrHistogram

from kdoctor.specs.results import LatencyMs

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour: no request outlives a round
DIGITS = 3


class Latency:
    """A recorder of latencies in microseconds, with exact count, sum, min and max."""

    __slots__ = ("count", "hist", "max_us", "min_us", "sum_us")

    def __init__(self) -> None:
        self.hist = HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)
        self.count = 0
        self.sum_us = 0
        self.min_us = 0
        self.max_us = 0

    def record(self, seconds: float) -> None:
        """Record one latency given in seconds (clamped into the histogram's range)."""
        us = int(seconds * 1_000_000)
        if us < LOWEST_US:
            us = LOWEST_US
        elif us > HIGHEST_US:
            us = HIGHEST_US
        self.hist.record_value(us)
        if self.count == 0 or us < self.min_us:
            self.min_us = us
        if us > self.max_us:
            self.max_us = us
        self.count += 1
        self.sum_us += us

    def record_us(self, us: int) -> None:
        """Record one latency given in whole microseconds (the disk probes' hot path)."""
        if us < LOWEST_US:
            us = LOWEST_US
        elif us > HIGHEST_US:
            us = HIGHEST_US
        self.hist.record_value(us)
        if self.count == 0 or us < self.min_us:
            self.min_us = us
        if us > self.max_us:
            self.max_us = us
        self.count += 1
        self.sum_us += us

    def merge(self, other: Latency) -> None:
        """Add another recorder's samples to this one."""
        if other.count == 0:
            return
        self.hist.add(other.hist)
        self.min_us = other.min_us if self.count == 0 else min(self.min_us, other.min_us)
        self.max_us = max(self.max_us, other.max_us)
        self.count += other.count
        self.sum_us += other.sum_us

    def encode(self) -> str:
        """The histogram as compact base64 text (empty string when there are no samples)."""
        if self.count == 0:
            return ""
        return str(self.hist.encode().decode("ascii"))

    @classmethod
    def decode(cls, text: str, summary: LatencyMs | None = None) -> Latency:
        """Rebuild a recorder from :meth:`encode` output and the exact figures of ``summary``."""
        rec = cls()
        if not text:
            return rec
        rec.hist.add(HdrHistogram.decode(text.encode("ascii")))
        rec.count = int(rec.hist.get_total_count())
        if summary is not None and summary.count:
            rec.min_us = round(summary.min * 1000) if summary.min is not None else 0
            rec.max_us = round(summary.max * 1000) if summary.max is not None else 0
            rec.sum_us = round((summary.mean or 0.0) * 1000 * rec.count)
        else:
            rec.min_us = int(rec.hist.get_min_value())
            rec.max_us = int(rec.hist.get_max_value())
            rec.sum_us = int(rec.hist.get_mean_value() * rec.count)
        return rec

    def percentile_ms(self, pct: float) -> float:
        """The ``pct`` percentile in milliseconds (microsecond resolution).

        HDR returns the top of the percentile's bucket, which can exceed the exact maximum by
        up to 0.1 %; clamping keeps min <= p50 <= ... <= max true in every report.
        """
        us = int(self.hist.get_value_at_percentile(pct))
        return max(self.min_us, min(us, self.max_us)) / 1000.0

    def summary(self) -> LatencyMs:
        """Min, mean, percentiles and max in milliseconds; all ``None`` without samples."""
        if self.count == 0:
            return LatencyMs()
        return LatencyMs(
            count=self.count,
            min=self.min_us / 1000.0,
            mean=round(self.sum_us / self.count / 1000.0, 3),
            p50=self.percentile_ms(50),
            p90=self.percentile_ms(90),
            p95=self.percentile_ms(95),
            p99=self.percentile_ms(99),
            p999=self.percentile_ms(99.9),
            max=self.max_us / 1000.0,
        )
