"""The live game day against loopback servers standing in for the real providers:
the faults are staged by the library (the primary's server sees nothing while it is
"down"), real HTTP goes to the others, and the budget caps what leaves."""

from __future__ import annotations

from typing import Any

import pytest

import failover
from failover.drills import run_live
from support import LiveProvider


def sent(fmt: str) -> list[str]:
    return [key for f, key in LiveProvider.seen if f == fmt]


def test_a_staged_outage_sends_nothing_to_the_primary_and_real_requests_to_the_backup(
    live_providers: dict[str, Any],
) -> None:
    report = run_live(failover.Config.from_mapping(live_providers), budget=50, requests=6,
                      scenarios=["outage_503", "outage_refused"])
    assert [r.met for r in report.results] == [True, True]
    assert all(r.served_by() == {"claude": 6} for r in report.results)
    assert sent("openai") == []  # the primary only ever "looked" down
    assert sent("anthropic") == ["sk-ant-live-0123456789"] * 12  # the real key, for real
    assert report.live == {"budget": 50, "sent": 12}


def test_recovery_proves_the_primarys_real_key_works(live_providers: dict[str, Any]) -> None:
    [result] = run_live(failover.Config.from_mapping(live_providers), budget=50, requests=6,
                        scenarios=["recovery"]).results
    assert result.failback_s is not None and result.met
    assert set(sent("openai")) == {"sk-live-openai-0123456789"}


def test_the_budget_caps_the_real_requests(live_providers: dict[str, Any]) -> None:
    report = run_live(failover.Config.from_mapping(live_providers), budget=5, requests=20)
    assert len(LiveProvider.seen) == 5 and report.live == {"budget": 5, "sent": 5}
    assert [r.scenario.key for r in report.results] == ["outage_503"]


def test_a_scenario_that_cannot_be_staged_is_refused(live_providers: dict[str, Any]) -> None:
    with pytest.raises(KeyError, match="outage_hang"):
        run_live(failover.Config.from_mapping(live_providers), budget=5, scenarios=["outage_hang"])
