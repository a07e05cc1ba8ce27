"""A drill's results, as data: one `ScenarioResult` per route and scenario, in a
`DrillReport`; ``as_dict()`` is the JSON the CLI prints and the plan reads back."""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._measures import (
    DrillRequest,
    Impact,
    Outcome,
    impact,
    outcome_counts,
    rpo_met,
    rto_met,
)
from ._scenarios import Scenario

__all__ = ["DrillReport", "ScenarioResult"]

Format = Callable[[float | None], str]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g} s"


def _r4(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


@dataclass
class ScenarioResult:
    route: str
    scenario: Scenario
    faulty: list[str]
    requests: list[DrillRequest]
    detect_s: float | None
    recover_s: float | None
    rto_target: float
    rpo_target: int
    #: K of the recovery definition.
    recovery_run: int
    #: Every request reported deferred was read back from the store.
    deferred_verified: bool = True
    heal_s: float | None = None
    failback_s: float | None = None
    failback_target: float | None = None
    events: Counter[str] = field(default_factory=Counter)
    alerts: int = 0
    #: The data-loss drill: the backup kind, when the store was deleted, how many
    #: requests the restore put back, and how many were lost.
    store_loss: dict[str, Any] | None = None
    #: Onset -> the first event the config's webhook sends (None: none sent, or no
    #: webhook configured: nobody would have been told).
    notified_s: float | None = None

    @property
    def measured(self) -> list[DrillRequest]:
        return [r for r in self.requests if r.t_s >= 0]

    @property
    def outcomes(self) -> dict[Outcome, int]:
        return outcome_counts(self.requests)

    @property
    def sent(self) -> int:
        return len(self.measured)

    @property
    def lost(self) -> int:
        return self.outcomes["lost"]

    @property
    def impact(self) -> Impact:
        return impact(self.requests, self.heal_s)

    @property
    def rto_met(self) -> bool | None:
        """None when the scenario is not judged on RTO (a total outage)."""
        if "rto" not in self.scenario.objectives:
            return None
        return rto_met(self.recover_s, self.rto_target)

    @property
    def rpo_met(self) -> bool:
        return rpo_met(self.lost, self.rpo_target, deferred_verified=self.deferred_verified)

    @property
    def procedure_met(self) -> bool | None:
        """Every request served, degraded or deferred (judged in a total outage)."""
        if "procedure" not in self.scenario.objectives:
            return None
        return self.outcomes["failed"] == 0

    @property
    def failback_met(self) -> bool | None:
        if not self.scenario.recovery:
            return None
        return self.failback_s is not None

    @property
    def met(self) -> bool:
        return (self.rto_met is not False and self.rpo_met
                and self.procedure_met is not False and self.failback_met is not False)

    def problems(self, fmt: Format = _seconds) -> list[str]:
        out = []
        if self.rto_met is False:
            out.append("never recovered" if self.recover_s is None else
                       f"recovered after {fmt(self.recover_s)} > RTO {fmt(self.rto_target)}")
        if self.lost > self.rpo_target:
            out.append(f"RPO: {self.lost} lost > {self.rpo_target}")
        elif not self.deferred_verified:
            out.append("a request reported deferred is not in the store")
        if self.procedure_met is False:
            out.append(f"{self.outcomes['failed']} request(s) failed with nothing to fall "
                       "back on (no manual fallback, no deferral)")
        if self.failback_met is False:
            out.append(f"{self.faulty[0]} did not get its traffic back within "
                       f"{fmt(self.failback_target)}")
        return out

    def served_by(self) -> dict[str, int]:
        return dict(Counter(r.provider for r in self.measured
                            if r.provider and r.outcome == "served"))

    def as_dict(self, *, timeline: bool = True) -> dict[str, Any]:
        paid = self.impact
        data: dict[str, Any] = {
            "route": self.route, "scenario": self.scenario.key, "title": self.scenario.title,
            "fault": self.scenario.fault, "faulty": self.faulty,
            "detect_s": _r4(self.detect_s), "notified_s": _r4(self.notified_s),
            "recover_s": _r4(self.recover_s),
            "recovery_run": self.recovery_run, "failback_s": _r4(self.failback_s),
            "sent": self.sent, **{str(k): v for k, v in self.outcomes.items()},
            "deferred_verified": self.deferred_verified,
            "impact": {"requests": paid.requests, "paid_timeout": paid.paid_timeout,
                       "p50_s": _r4(paid.p50_s), "p99_s": _r4(paid.p99_s)},
            "served_by": self.served_by(), "alerts": self.alerts,
            "objectives": {"rto_s": self.rto_target, "rpo": self.rpo_target,
                           "judged_on": list(self.scenario.objectives),
                           "rto_met": self.rto_met, "rpo_met": self.rpo_met,
                           "procedure_met": self.procedure_met,
                           "failback_met": self.failback_met},
            "met": self.met, "problems": self.problems(),
        }
        if self.store_loss is not None:
            data["store_loss"] = self.store_loss
        if timeline:
            data["heal_s"] = _r4(self.heal_s)
            data["events"] = dict(self.events)
            data["requests"] = [r.as_dict() for r in self.requests]
        return data


@dataclass
class DrillReport:
    config: str
    builtin: bool
    started: datetime.datetime
    duration_s: float
    requests: int
    simulated_time: bool
    rto: float
    rpo: int
    results: list[ScenarioResult]
    #: A live game day: ``{"budget": N, "sent": M}`` real requests; None when simulated.
    live: dict[str, int] | None = None

    @property
    def passed(self) -> bool:
        return all(r.met for r in self.results)

    def as_dict(self, *, timeline: bool = True) -> dict[str, Any]:
        return {
            "config": self.config, "builtin": self.builtin,
            "started": self.started.isoformat(timespec="seconds"),
            "duration_s": round(self.duration_s, 3), "requests_per_scenario": self.requests,
            "simulated_time": self.simulated_time, "live": self.live,
            "objectives": {"rto_s": self.rto, "rpo": self.rpo},
            "passed": self.passed,
            "failing": [f"{r.route}/{r.scenario.key}" for r in self.results if not r.met],
            "scenarios": [r.as_dict(timeline=timeline) for r in self.results],
        }
