"""The drill engine from Python, on the built-in simulated providers and simulated time:
each scenario does what its name says, and is measured as docs/drills.md defines."""

from __future__ import annotations

import os

import pytest

import failover
from failover.cli._builtin import builtin_config
from failover.drills import SCENARIOS, ScenarioResult, run_drill, scenario


@pytest.fixture(scope="module")
def results() -> dict[str, ScenarioResult]:
    report = run_drill(builtin_config(), simulated_time=True, requests=20)
    return {r.scenario.key: r for r in report.results}


def test_every_scenario_runs_and_meets_the_builtin_objectives(
    results: dict[str, ScenarioResult],
) -> None:
    assert set(results) == {s.key for s in SCENARIOS}
    assert [k for k, r in results.items() if not r.met] == []
    assert all(r.lost == 0 for r in results.values())


def test_cascading_is_served_by_the_second_backup(results: dict[str, ScenarioResult]) -> None:
    cascade = results["cascading"]
    assert cascade.faulty == ["openai", "gemini"]
    assert cascade.served_by() == {"local": 20}


def test_a_flaky_primary_keeps_serving_most_requests(
    results: dict[str, ScenarioResult],
) -> None:
    flaky = results["flaky"]
    assert flaky.outcomes["served"] == 20  # a failed try fails over at once
    assert 0 < flaky.served_by().get("openai", 0) < 20


def test_slow_degradation_is_paid_in_timeouts_then_skipped(
    results: dict[str, ScenarioResult],
) -> None:
    slow = results["slow_degradation"]
    assert slow.impact.paid_timeout == 3  # until the breaker opens on them
    assert slow.detect_s is not None and slow.events["breaker_opened"] >= 1
    assert slow.served_by()["gemini"] > 0


def test_a_rotated_key_serves_at_once_without_a_restart(
    results: dict[str, ScenarioResult],
) -> None:
    rotation = results["key_rotation"]
    assert rotation.failback_s is not None and rotation.failback_s < 0.1
    assert rotation.served_by()["openai"] >= 3
    assert "FAILOVER_DRILL_ROTATING_KEY" not in os.environ


def test_a_total_outage_is_not_recovered_and_keeps_every_request(
    results: dict[str, ScenarioResult],
) -> None:
    total = results["total_outage"]
    assert total.recover_s is None and total.rto_met is None
    assert total.outcomes["deferred"] == 20 and total.deferred_verified


def test_run_drill_picks_scenarios_and_rejects_unknown_names() -> None:
    report = run_drill(builtin_config(), simulated_time=True, requests=4,
                       scenarios=["outage_503"])
    assert [r.scenario.key for r in report.results] == ["outage_503"]
    with pytest.raises(KeyError, match="unknown scenario 'nope'; known: outage_503"):
        run_drill(builtin_config(), simulated_time=True, scenarios=["nope"])
    assert scenario("flaky").title == "flaky primary (30%)"


def test_the_data_loss_drill_reports_what_was_lost_since_the_last_backup() -> None:
    """Backups every 50 ms, a request every 10 ms, the store deleted at the 10th: the
    four deferred since the last backup are lost, and the drill says so."""
    config = failover.Config.from_mapping({
        "providers": {"a": {"type": "fake", "model": "sim"}},
        "routes": {"default": {"chain": ["a"], "fallback": {"defer": True}}},
        "deferred": {"backup": {"path": "backup.sqlite", "every": "50ms"}},
        "objectives": {"rto": "2s", "rpo": 0},
    })
    [result] = run_drill(config, simulated_time=True, requests=20, interval=0.01,
                         scenarios=["data_loss"]).results
    assert result.store_loss is not None
    assert result.store_loss["since_last_backup_s"] == pytest.approx(0.04)
    assert (result.store_loss["restored"], result.lost) == (6, 4)
    assert result.outcomes["deferred"] == 16
    assert not result.met and result.problems() == ["RPO: 4 lost > 0"]


def test_the_builtin_mirror_loses_nothing(results: dict[str, ScenarioResult]) -> None:
    loss = results["data_loss"].store_loss
    assert loss is not None and loss["backup"] == "mirror" and loss["lost"] == 0
    assert loss["restored"] == 10


def test_an_integration_failure_is_detected_as_invalid_response_and_notified() -> None:
    from failover.cli._builtin import BUILTIN_CONFIG

    config = failover.Config.from_mapping({
        **BUILTIN_CONFIG,
        "notify": {"webhook": {"url": "https://hooks.drill.invalid/ops",
                               "events": ["breaker_opened"]}},
    })
    [result] = run_drill(config, simulated_time=True, scenarios=["integration_failure"]
                         ).results
    faults = {kind for r in result.measured for kind in r.faults}
    assert faults == {"InvalidResponse"} and result.outcomes["served"] == 20
    assert result.notified_s is not None and result.notified_s == result.detect_s
    assert result.alerts == result.events["breaker_opened"]


def test_without_a_webhook_nobody_is_notified(results: dict[str, ScenarioResult]) -> None:
    assert all(r.notified_s is None and r.alerts == 0 for r in results.values())
