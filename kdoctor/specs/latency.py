"""Latency histograms: microsecond HDR histograms that travel in results and merge exactly.

Each target's latencies are recorded in an HDR histogram (1 µs to 1 h, 3 significant digits, so
any percentile is within 0.1 %). The histogram travels base64-encoded in the result (typically
100–400 bytes), so a merged report takes its percentiles from the merged histogram, never from
averaging percentiles. Min, max and mean are kept exactly beside it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from itertools import accumulate

from hdrh.histogram import HdrHistogram

from kdoctor.specs.results import LatencyMs

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour: no request outlives a round
DIGITS = 3


class Latency:
    """A recorder of latencies in microseconds, with exact count, sum, min and max."""

    __slots__ = ("_bits", "_pending", "count", "hist", "max_us", "min_us", "sum_us")

    def __init__(self) -> None:
        self.hist = HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)
        # hdrh's record_value is pure Python and costs several µs, more than the rest of a DNS
        # query's hot path: samples are counted in a dict by their HDR bucket (its lowest value,
        # so nothing is lost) and handed to the histogram in bulk when it is read.
        self._pending: dict[int, int] = {}
        self._bits = self.hist.sub_bucket_half_count_magnitude + 1
        self.count = 0
        self.sum_us = 0
        self.min_us = 0
        self.max_us = 0

    def record(self, seconds: float) -> None:
        """Record one latency given in seconds (clamped into the histogram's range)."""
        self.record_us(int(seconds * 1_000_000))

    def record_us(self, us: int) -> None:
        """Record one latency given in whole microseconds (clamped into the histogram's range)."""
        if us < LOWEST_US:
            us = LOWEST_US
        elif us > HIGHEST_US:
            us = HIGHEST_US
        shift = us.bit_length() - self._bits  # self._bucket(us), inline: once per request
        key = (us >> shift) << shift if shift > 0 else us
        pending = self._pending
        pending[key] = pending.get(key, 0) + 1
        if self.count == 0 or us < self.min_us:
            self.min_us = us
        if us > self.max_us:
            self.max_us = us
        self.count += 1
        self.sum_us += us

    def record_run_us(self, first: int, last: int, count: int, total: int) -> bool:
        """Record ``count`` latencies running from ``first`` down to ``last`` µs (each at least
        :data:`LOWEST_US`) and adding up to ``total``, in one step, when they all fall in one
        bucket of the histogram, which the ends decide since the run is monotonic; returns
        ``False``, recording nothing, when they do not (the caller records them one by one).

        The pressure driver's backlog leaves in runs of consecutive tokens sent at one instant:
        their send lags fall by one interval each, and at a rate the generator cannot hold
        (lags near the lateness bound, where a bucket is hundreds of µs wide) most runs share
        one bucket, so the lag of a request costs an addition instead of a call.
        """
        if first > HIGHEST_US or last < LOWEST_US:
            return False
        key = self._bucket(first)
        if key != self._bucket(last):
            return False
        pending = self._pending
        pending[key] = pending.get(key, 0) + count
        if self.count == 0 or last < self.min_us:
            self.min_us = last
        if first > self.max_us:
            self.max_us = first
        self.count += count
        self.sum_us += total
        return True

    def _bucket(self, us: int) -> int:
        """The lowest value of ``us``'s HDR bucket: its key in ``_pending`` (:meth:`record_us`
        computes it inline, being called once per request)."""
        shift = us.bit_length() - self._bits
        return (us >> shift) << shift if shift > 0 else us

    def flush(self) -> None:
        """Hand the samples counted since the last flush to the histogram."""
        if self._pending:
            record = self.hist.record_value
            for value, count in self._pending.items():
                record(value, count)
            self._pending.clear()

    def merge(self, other: Latency) -> None:
        """Add another recorder's samples to this one."""
        if other.count == 0:
            return
        self.flush()
        other.flush()
        self.hist.add(other.hist)
        self.min_us = other.min_us if self.count == 0 else min(self.min_us, other.min_us)
        self.max_us = max(self.max_us, other.max_us)
        self.count += other.count
        self.sum_us += other.sum_us

    def encode(self) -> str:
        """The histogram as compact base64 text (empty string when there are no samples)."""
        if self.count == 0:
            return ""
        self.flush()
        return str(self.hist.encode().decode("ascii"))

    @classmethod
    def decode(cls, text: str, summary: LatencyMs | None = None) -> Latency:
        """Rebuild a recorder from :meth:`encode` output and the exact figures of ``summary``."""
        rec = cls()
        rec.add_encoded(text, summary)
        return rec

    def add_encoded(self, text: str, summary: LatencyMs | None = None) -> None:
        """Merge :meth:`encode` output (with the exact figures of its ``summary``) into this one.

        Cheaper than ``merge(decode(...))``: the blob is added straight into this histogram, so
        merging a 1,000-node report costs one decode per target and no intermediate recorder.
        """
        if not text:
            return
        self.flush()
        part = HdrHistogram.decode(text.encode("ascii"))
        self.hist.add(part)
        count = int(part.get_total_count())
        if summary is not None and summary.count:
            low = round(summary.min * 1000) if summary.min is not None else 0
            high = round(summary.max * 1000) if summary.max is not None else 0
            total = round((summary.mean or 0.0) * 1000 * count)
        else:
            low, high = int(part.get_min_value()), int(part.get_max_value())
            total = int(part.get_mean_value() * count)
        self.min_us = low if self.count == 0 else min(self.min_us, low)
        self.max_us = max(self.max_us, high)
        self.count += count
        self.sum_us += total

    def percentiles_us(self, pcts: Sequence[float]) -> list[int]:
        """The ``pcts`` percentiles in microseconds, exactly as hdrh's ``get_value_at_percentile``
        gives them (the top of the bucket holding the target count), in one pass.

        hdrh walks its counts one Python call per bucket for every percentile; a report of a
        1,000-node round asks for tens of thousands of percentiles, so the counts up to the
        highest recorded bucket are summed at C speed once and each percentile is a bisection.
        """
        self.flush()
        hist = self.hist
        top = hist.counts_len
        if hist.max_value:
            top = min(top, hist._counts_index_for(hist.max_value) + 1)  # no count lies above it
        cumulative = list(accumulate(hist.counts[:top]))
        values = []
        for pct in pcts:
            index = bisect_left(cumulative, hist.get_target_count_at_percentile(pct))
            if index >= len(cumulative):  # cannot happen with consistent counts; stay correct anyway
                values.append(int(hist.get_value_at_percentile(pct)))
                continue
            value = hist.get_value_from_index(index)
            edge = hist.get_highest_equivalent_value if pct else hist.get_lowest_equivalent_value
            values.append(int(edge(value)))
        return values

    def _clamped_ms(self, us: int) -> float:
        # HDR returns the top of the percentile's bucket, which can exceed the exact maximum by
        # up to 0.1 %; clamping keeps min <= p50 <= ... <= max true in every report.
        return max(self.min_us, min(us, self.max_us)) / 1000.0

    def percentile_ms(self, pct: float) -> float:
        """The ``pct`` percentile in milliseconds (microsecond resolution)."""
        return self._clamped_ms(self.percentiles_us([pct])[0])

    def summary(self) -> LatencyMs:
        """Min, mean, percentiles and max in milliseconds; all ``None`` without samples."""
        if self.count == 0:
            return LatencyMs()
        p50, p90, p95, p99, p999 = (self._clamped_ms(us) for us in self.percentiles_us([50, 90, 95, 99, 99.9]))
        return LatencyMs(
            count=self.count,
            min=self.min_us / 1000.0,
            mean=round(self.sum_us / self.count / 1000.0, 3),
            p50=p50, p90=p90, p95=p95, p99=p99, p999=p999,
            max=self.max_us / 1000.0,
        )
