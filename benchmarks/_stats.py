"""Small statistics helpers shared by the worker and the harness (stdlib only)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

__all__ = ["median", "percentile", "summarize"]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile of already sorted values (q in 0..100)."""
    if not sorted_values:
        return math.nan
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    pos = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    frac = pos - low
    return float(sorted_values[low] * (1 - frac) + sorted_values[high] * frac)


def summarize(ns: Sequence[int]) -> dict[str, float]:
    """Per-call latencies in nanoseconds -> mean/p50/p90/p99/max in microseconds."""
    if not ns:
        return {"n": 0}
    us = sorted(v / 1000.0 for v in ns)
    return {
        "n": len(us),
        "mean": statistics.fmean(us),
        "p50": percentile(us, 50),
        "p90": percentile(us, 90),
        "p99": percentile(us, 99),
        "max": us[-1],
    }


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(present) if present else None
