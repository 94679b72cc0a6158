"""The colour scale of a matrix cell's latency: its p99 against what the spec expects.

Two colours (passed/failed) make 0.4 ms and 3.5 ms look the same. The scale grades a cell that
passed by how much of the latency budget its p99 uses: the spec's ``expect.p99AccessDelayInMs``
(ours), else its ``expect.meanAccessDelayInMs`` (the only limit a kdoctor file has). A bad cell is
always the last band, whatever its latency.

=====  ==========================  =======================
band   p99 / limit                 meaning
=====  ==========================  =======================
0      under 10 %                  far inside the budget
1      10 to 25 %
2      25 to 50 %
3      50 to 100 %                 close to the limit
4      over the limit              slow, not (yet) failed
5      the cell is bad             failed
=====  ==========================  =======================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["BAD", "BANDS", "band", "latency_limit"]

BANDS = (0.10, 0.25, 0.50, 1.0)
BAD = len(BANDS) + 1


def latency_limit(spec: Mapping[str, Any]) -> tuple[float, str] | None:
    """The latency the cells are graded against, in ms, and the field it comes from; ``None``
    when the spec (a report's ``spec``) sets none."""
    expect = spec.get("spec", {}).get("expect", {}) or {}
    for field in ("p99AccessDelayInMs", "meanAccessDelayInMs"):
        value = expect.get(field)
        if isinstance(value, int | float) and value > 0:
            return float(value), field
    return None


def band(p99_ms: float | None, limit_ms: float | None, bad: bool) -> int | None:
    """The cell's band (see the module docstring); ``None`` for a passed cell without latency or
    limit (shown uncoloured beyond passed)."""
    if bad:
        return BAD
    if p99_ms is None or not limit_ms:
        return None
    share = p99_ms / limit_ms
    return next((i for i, top in enumerate(BANDS) if share < top), len(BANDS))
