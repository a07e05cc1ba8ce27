"""What a drill measures, defined once (docs/drills.md quotes these definitions).

All times count from the fault's onset (t = 0); warm-up requests have t < 0.

- *time to detect*: onset -> the first alerting event (a breaker opened, or all
  providers failed); *time to notify*: onset -> the first event the config's webhook
  sends (none without a webhook: nobody is told);
- *time to recover*: onset -> the start of the first run of K consecutive requests
  served normally (by a provider, with no attempt that paid a timeout); None ("never")
  if there is no such run in the scenario;
- *impact*: during the incident (onset -> the fault's end: the provider healed, or the
  scenario ended): requests that paid a timeout, and the p50/p99 latency of all;
- *outcomes*: served (a provider answered), degraded (the manual fallback answered),
  deferred (kept durably: verified by reading the store back), failed (raised a typed
  error: the caller knows), lost (neither answered, nor deferred, nor raised; or
  reported deferred and not in the store). Lost must be 0.

RTO is met only if recovery <= ``objectives.rto``; RPO only if lost <= ``objectives.rpo``
and every deferred request is in the store. Pure functions: no clock, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

__all__ = [
    "ALERTING_EVENTS",
    "DEFAULT_RECOVERY_RUN",
    "OUTCOMES",
    "DrillRequest",
    "Impact",
    "Outcome",
    "impact",
    "outcome_counts",
    "percentile",
    "rpo_met",
    "rto_met",
    "time_to_detect",
    "time_to_recover",
]

Outcome = Literal["served", "degraded", "deferred", "failed", "lost"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
#: The events that page someone: the moment a fault counts as detected.
ALERTING_EVENTS = frozenset({"breaker_opened", "all_providers_failed"})
#: K: consecutive requests served normally before the route counts as recovered.
DEFAULT_RECOVERY_RUN = 3


@dataclass(frozen=True, slots=True)
class DrillRequest:
    """One request of a drill: when it started (from onset), how long, how it ended."""

    t_s: float
    latency_s: float
    outcome: Outcome
    provider: str | None = None
    error_kind: str | None = None
    attempts: int = 0
    #: One of its attempts ran into a timeout (it paid for the fault in time).
    paid_timeout: bool = False
    #: The ticket of a deferred request, to read it back from the store.
    ticket: str | None = None
    #: The error kinds of its failed attempts (how the fault showed itself).
    faults: tuple[str, ...] = ()

    @property
    def end_s(self) -> float:
        return self.t_s + self.latency_s

    @property
    def normal(self) -> bool:
        """Served by a provider without paying a timeout: what recovery counts."""
        return self.outcome == "served" and not self.paid_timeout

    def as_dict(self) -> dict[str, Any]:
        return {"t_s": round(self.t_s, 4), "latency_s": round(self.latency_s, 4),
                "outcome": self.outcome, "provider": self.provider,
                "error_kind": self.error_kind, "attempts": self.attempts,
                "paid_timeout": self.paid_timeout, "faults": list(self.faults)}


def _measured(requests: Iterable[DrillRequest]) -> list[DrillRequest]:
    return sorted((r for r in requests if r.t_s >= 0), key=lambda r: r.t_s)


def time_to_detect(events: Iterable[tuple[float, str]]) -> float | None:
    """Onset -> the first alerting event at or after it (``events``: (t, type))."""
    times = [t for t, kind in events if t >= 0 and kind in ALERTING_EVENTS]
    return min(times) if times else None


def time_to_recover(requests: Iterable[DrillRequest],
                    run: int = DEFAULT_RECOVERY_RUN) -> float | None:
    """Onset -> the start of the first run of ``run`` consecutive normal requests."""
    if run < 1:
        raise ValueError(f"run: expected at least 1 request, got {run}")
    measured = _measured(requests)
    streak = 0
    for i, request in enumerate(measured):
        streak = streak + 1 if request.normal else 0
        if streak == run:
            return measured[i - run + 1].t_s
    return None


@dataclass(frozen=True, slots=True)
class Impact:
    """What users paid during the incident."""

    requests: int
    paid_timeout: int
    p50_s: float | None
    p99_s: float | None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q`` percentile (0 < q <= 100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(q / 100 * len(ordered)) - 1, 0)]


def impact(requests: Iterable[DrillRequest], until: float | None = None) -> Impact:
    """The requests from onset until the fault ended (``until``; None: the last one)."""
    during = [r for r in _measured(requests) if until is None or r.t_s < until]
    latencies = [r.latency_s for r in during]
    return Impact(len(during), sum(r.paid_timeout for r in during),
                  percentile(latencies, 50), percentile(latencies, 99))


def outcome_counts(requests: Iterable[DrillRequest]) -> dict[Outcome, int]:
    counts: dict[Outcome, int] = dict.fromkeys(OUTCOMES, 0)
    for request in _measured(requests):
        counts[request.outcome] += 1
    return counts


def rto_met(recover_s: float | None, rto: float) -> bool:
    return recover_s is not None and recover_s <= rto


def rpo_met(lost: int, rpo: int, *, deferred_verified: bool) -> bool:
    return lost <= rpo and deferred_verified
