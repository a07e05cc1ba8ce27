"""Health of one provider over a sliding window: success rate and latency percentiles.

Counts live in time buckets (exact to within one bucket, fixed memory); latencies are the
last ``max_samples`` successful calls inside the window. Only successes feed the
latency percentiles: a failure's latency (an instant refusal, a 30 s timeout) says
nothing about how long an answer takes, and p95 of answers is what the hedging delay
needs.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._policy import RollingCounts

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._breaker import Breaker
    from ._errors import ProviderError
    from ._types import BreakerState

__all__ = ["HealthTracker", "ProviderHealth"]


@dataclass(frozen=True, slots=True)
class ProviderHealth:
    """What `Router.health()` reports for one provider.

    Rates, counts and latencies cover the health window. ``open_until`` is a reading
    of the router's monotonic clock; ``open_for_s`` is the seconds left until then.
    """

    name: str
    state: BreakerState
    success_rate: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    calls: int
    failures: int
    consecutive_failures: int
    open_until: float | None
    open_for_s: float | None
    last_error: str | None
    last_error_kind: str | None
    #: The provider's keys: how many, which are retired (revoked) and which cooling
    #: after a 429 or out of quota, by index; its requests in flight (the fleet's, with
    #: shared state); the share of its best key's quota left (1.0 when nothing is known).
    keys: int = 1
    keys_retired: tuple[int, ...] = ()
    keys_blocked: tuple[int, ...] = ()
    in_flight: int = 0
    headroom: float = 1.0


#: How much the newest answer moves ``recent_latency`` (the rest is its history).
_LATENCY_WEIGHT = 0.3


class HealthTracker:
    """Records every attempt's outcome for one provider; all reads cover the window."""

    __slots__ = (
        "_clock",
        "_counts",
        "_max_samples",
        "_samples",
        "_sorted",
        "last_error",
        "last_error_kind",
        "recent_latency",
        "window",
    )

    def __init__(
        self, window: float, clock: Callable[[], float], *, max_samples: int = 512
    ) -> None:
        if max_samples < 1:
            raise ValueError("max_samples must be at least 1")
        self.window = window
        self._clock = clock
        self._counts = RollingCounts(window)  # first: calls, second: failures
        self._max_samples = max_samples
        self._samples: deque[tuple[float, float]] = deque()
        # The same latencies kept sorted as they come and go (a bisect and a short
        # memmove each), so a percentile is an index: hedging reads p95 per request.
        self._sorted: list[float] = []
        self.last_error: str | None = None
        self.last_error_kind: str | None = None
        #: An exponential average of recent answers' latency (``least_latency`` pools).
        self.recent_latency: float | None = None

    def record(self, ok: bool, latency_s: float, error: ProviderError | None = None) -> None:
        now = self._clock()
        if ok:
            self._counts.add(now, 1, 0)
            samples = self._samples
            if len(samples) >= self._max_samples:
                self._forget(samples.popleft()[1])
            samples.append((now, latency_s))
            bisect.insort(self._sorted, latency_s)
            recent = self.recent_latency
            self.recent_latency = latency_s if recent is None else (
                recent + _LATENCY_WEIGHT * (latency_s - recent))
        else:
            self._counts.add(now, 1, 1)
            if error is not None:
                self.last_error = str(error)
                self.last_error_kind = error.kind

    def calls_and_failures(self) -> tuple[int, int]:
        return self._counts.totals(self._clock())

    def success_rate(self) -> float | None:
        """Share of calls in the window that succeeded; None before any call."""
        calls, failures = self._counts.totals(self._clock())
        return (calls - failures) / calls if calls else None

    def percentile(self, q: float) -> float | None:
        """Latency at quantile ``q`` (0..1, e.g. 0.95) of successes in the window.

        Linear interpolation between the closest ranks; None without a sample.
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q is a fraction between 0 and 1 (0.95 for p95), got {q!r}")
        ordered = self._latencies()
        if not ordered:
            return None
        position = q * (len(ordered) - 1)
        low = int(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    def snapshot(self, name: str, breaker: Breaker) -> ProviderHealth:
        now = self._clock()
        view = breaker.view()
        state = view.state
        calls, failures = self._counts.totals(now)
        open_until = view.open_until
        return ProviderHealth(
            name=name,
            state=state,
            success_rate=(calls - failures) / calls if calls else None,
            latency_p50_s=self.percentile(0.5),
            latency_p95_s=self.percentile(0.95),
            calls=calls,
            failures=failures,
            consecutive_failures=view.consecutive_failures,
            open_until=open_until,
            open_for_s=max(0.0, open_until - now) if open_until is not None else None,
            last_error=self.last_error,
            last_error_kind=self.last_error_kind,
        )

    def _latencies(self) -> list[float]:
        samples = self._samples
        horizon = self._clock() - self.window
        while samples and samples[0][0] <= horizon:
            self._forget(samples.popleft()[1])
        return self._sorted

    def _forget(self, latency: float) -> None:
        ordered = self._sorted
        del ordered[bisect.bisect_left(ordered, latency)]
