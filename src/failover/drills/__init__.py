"""Disaster-recovery drills as a library: scenarios as data, results as data.

::

    import failover
    from failover.drills import run_drill

    report = run_drill(failover.Config.from_file("failover.yaml"), simulated_time=True)
    assert report.passed, [r.problems() for r in report.results if not r.met]

Each scenario runs on a fresh router with the test kit's simulated providers in front of
the real adapters (``pip install 'failover[testing]'``): no request reaches a real
provider and no real key is used. The measures (detect, recover, impact, outcomes) are
defined in `failover.drills._measures` and docs/drills.md; ``failover drill`` is this
engine with a table on top.
"""

from __future__ import annotations

from ._engine import DEFAULT_LATENCY, DrillClock, drill_config, run_drill, run_scenario
from ._history import append_history, read_history
from ._live import LIVE_FAULTS, LiveFaults, run_live
from ._measures import (
    ALERTING_EVENTS,
    DEFAULT_RECOVERY_RUN,
    OUTCOMES,
    DrillRequest,
    Impact,
    Outcome,
    impact,
    outcome_counts,
    percentile,
    rpo_met,
    rto_met,
    time_to_detect,
    time_to_recover,
)
from ._results import DrillReport, ScenarioResult
from ._scenarios import SCENARIOS, Scenario, scenario

__all__ = [
    "ALERTING_EVENTS",
    "DEFAULT_LATENCY",
    "DEFAULT_RECOVERY_RUN",
    "LIVE_FAULTS",
    "OUTCOMES",
    "SCENARIOS",
    "DrillClock",
    "DrillReport",
    "DrillRequest",
    "Impact",
    "LiveFaults",
    "Outcome",
    "Scenario",
    "ScenarioResult",
    "append_history",
    "drill_config",
    "impact",
    "outcome_counts",
    "percentile",
    "read_history",
    "rpo_met",
    "rto_met",
    "run_drill",
    "run_live",
    "run_scenario",
    "scenario",
    "time_to_detect",
    "time_to_recover",
]
