"""``failover drill``: each disaster scenario against the real adapters, timed and counted.

These run on the drill's simulated clock (``--simulated-time``), so hangs, breaker open
times and latencies cost nothing and the numbers are exact; the real-time built-in drill
runs once, as a subprocess, in test_cli_subprocess.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from failover import Config
from failover.drills import SCENARIOS, drill_config

from .conftest import CliRunner, ConfigWriter

KEYS = {s.key for s in SCENARIOS}
STABLE_KEYS = {
    "route", "scenario", "title", "fault", "faulty", "detect_s", "notified_s", "recover_s",
    "recovery_run",
    "failback_s", "sent", "served", "degraded", "deferred", "failed", "lost",
    "deferred_verified", "impact", "served_by", "alerts", "objectives", "met", "problems",
    "heal_s", "events", "requests",
}  # fmt: skip


def two_providers(**route: Any) -> dict[str, Any]:
    return {
        "providers": {
            "openai": {"type": "openai", "model": "gpt-4o-mini", "api_key": "${OPENAI_API_KEY}"},
            "claude": {"type": "anthropic", "model": "claude-haiku-4-5",
                       "api_key": "${ANTHROPIC_API_KEY}"},
        },
        "routes": {"default": {"chain": ["openai", "claude"], **route}},
        "objectives": {"rto": "2s", "rpo": 0},
    }


def by_key(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["scenario"]: s for s in report["scenarios"]}


def test_builtin_drill_passes_and_its_json_is_stable(cli: CliRunner) -> None:
    run = cli("drill", "--json", "--simulated-time")
    assert run.code == 0, run.err
    report = json.loads(run.out)
    assert report["builtin"] is True
    assert report["passed"] is True
    assert report["failing"] == []
    assert report["objectives"] == {"rto_s": 1.0, "rpo": 0}
    assert report["requests_per_scenario"] == 20
    scenarios = by_key(report)
    assert set(scenarios) == KEYS
    for s in report["scenarios"]:
        assert set(s) - {"store_loss"} == STABLE_KEYS
        assert s["met"] is True
        assert s["lost"] == 0
        assert s["sent"] >= 20 if s["scenario"] != "recovery" else s["sent"] >= 10
        # A fresh router per scenario: the warm-up always reaches a healthy primary.
        warmup = [r for r in s["requests"] if r["t_s"] < 0]
        assert [r["provider"] for r in warmup] == ["openai"] * 3

    outage = scenarios["outage_503"]
    assert outage["served_by"] == {"gemini": 20}
    assert outage["faulty"] == ["openai"]
    assert outage["failed"] == 0 and outage["served"] == 20
    # Simulated: the 503 is instant, so the very first request is served normally by
    # gemini: no user paid for the outage; the breaker opens (detect) on the third.
    assert outage["recover_s"] == 0.0
    assert outage["detect_s"] == pytest.approx(2 * 0.008, abs=1e-3)
    assert outage["impact"]["paid_timeout"] == 0
    assert outage["events"]["breaker_opened"] >= 1

    hang = scenarios["outage_hang"]
    # Three requests pay the 200 ms timeout (then gemini's 8 ms); the breaker opens on
    # the third timeout (detect); the fourth request starts the run of normal ones.
    assert hang["detect_s"] == pytest.approx(2 * 0.208 + 0.2, abs=2e-3)
    assert hang["recover_s"] == pytest.approx(3 * 0.208, abs=2e-3)
    assert hang["detect_s"] < hang["recover_s"]
    assert hang["impact"]["paid_timeout"] == 3
    assert hang["impact"]["p99_s"] == pytest.approx(0.208, abs=2e-3)

    assert scenarios["rate_limit_storm"]["served_by"] == {"gemini": 20}
    assert scenarios["integration_failure"]["events"]["breaker_opened"] == 1
    assert scenarios["revoked_key"]["served_by"] == {"gemini": 20}

    total = scenarios["total_outage"]
    assert total["faulty"] == ["openai", "gemini", "local"]
    # Not recovered, nothing lost, every request kept: what a total outage should show.
    assert total["deferred"] == total["sent"] == 20 and total["deferred_verified"] is True
    assert total["recover_s"] is None and total["failed"] == total["lost"] == 0
    assert total["objectives"]["rto_met"] is None and total["met"] is True

    recovery = scenarios["recovery"]
    assert recovery["heal_s"] is not None
    assert recovery["failback_s"] is not None
    assert recovery["failback_s"] <= 1.0 + 1.0  # max_open_for plus grace
    assert recovery["served_by"]["openai"] >= 3
    assert recovery["objectives"]["failback_met"] is True
    # Progress went to stderr, one line per scenario (not a terminal here).
    assert run.err.count(", lost 0") == len(KEYS)


def test_table_output_names_every_scenario(cli: CliRunner) -> None:
    run = cli("drill", "--simulated-time", "--requests", "6")
    assert run.code == 0
    for s in SCENARIOS:
        assert s.title in run.out
    assert f"all {len(SCENARIOS)} scenarios met the objectives (RTO 1 s, RPO 0)" in run.out
    assert "built-in simulated providers" in run.out


def test_no_backup_and_no_fallback_misses_the_objectives_and_names_the_scenarios(
    cli: CliRunner, write_config: ConfigWriter
) -> None:
    path = write_config({
        "providers": {"only": {"type": "fake", "model": "sim"}},
        "routes": {"default": {"chain": ["only"]}},
        "objectives": {"rto": "2s", "rpo": 0},
    })
    run = cli("drill", str(path), "--simulated-time", "--requests", "4",
              "--scenario", "outage_503", "--scenario", "total_outage")
    assert run.code == 1
    assert "2 of 2 scenario(s) missed the objectives" in run.out
    assert "default/outage_503 (primary outage (503)): never recovered" in run.out
    assert ("default/total_outage (total outage): 4 request(s) failed with nothing to "
            "fall back on") in run.out


def test_failing_drill_in_json_lists_failures_and_exits_1(
    cli: CliRunner, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # drills need no real key
    # Production-like timeouts: a hung primary costs the 30 s request timeout per
    # request until its breaker opens, far beyond an RTO of 2 s.
    path = write_config(two_providers(deadline="60s", fallback={"defer": True}))
    run = cli("drill", str(path), "--json", "--simulated-time", "--requests", "6")
    assert run.code == 1
    report = json.loads(run.out)
    assert report["passed"] is False
    # With two providers, losing both (cascading) leaves nothing to recover on; with no
    # backup of the deferred store, losing its file loses what it held.
    assert report["failing"] == ["default/outage_hang", "default/cascading",
                                 "default/data_loss"]
    assert by_key(report)["data_loss"]["store_loss"]["backup"] == "none"
    hang = by_key(report)["outage_hang"]
    # Three requests pay the 30 s timeout (plus claude's 10 ms) before the breaker opens.
    assert hang["recover_s"] == pytest.approx(3 * 30.01, abs=0.05)
    assert hang["problems"] == ["recovered after 90 s > RTO 2 s"]
    assert hang["lost"] == 0 and hang["impact"]["paid_timeout"] == 3
    assert "drill failed: default/outage_hang" in run.err


def test_total_outage_with_a_python_fallback_answers_every_request(
    cli: CliRunner, write_config: ConfigWriter, tmp_path: Path
) -> None:
    (tmp_path / "drill_fallbacks.py").write_text(
        "def canned(request, error):\n    return 'Our assistant is unavailable; try later.'\n"
    )
    path = write_config(two_providers(fallback={"python": "drill_fallbacks:canned"}))
    run = cli("drill", str(path), "--json", "--simulated-time", "--requests", "5",
              "--scenario", "total_outage")
    assert run.code == 0, run.out
    [total] = json.loads(run.out)["scenarios"]
    assert total["degraded"] == total["sent"] == 5
    assert total["failed"] == total["lost"] == total["deferred"] == 0
    assert total["met"] is True


def test_drill_appends_to_the_history_beside_the_config(
    cli: CliRunner, write_config: ConfigWriter, tmp_path: Path
) -> None:
    path = write_config(two_providers(fallback={"defer": True}))
    cli("drill", str(path), "--simulated-time", "--requests", "3", "--scenario", "outage_503")
    cli("drill", str(path), "--simulated-time", "--requests", "3", "--scenario", "revoked_key")
    history = tmp_path / ".failover" / "drill-history.jsonl"
    drills = [json.loads(line) for line in history.read_text().splitlines()]
    assert [d["scenarios"][0]["scenario"] for d in drills] == ["outage_503", "revoked_key"]
    last = drills[-1]
    assert last["config_file"] == "failover.yaml"
    assert last["passed"] is True
    assert "requests" not in last["scenarios"][0]  # the history keeps the summary only
    run = cli("drill", str(path), "--simulated-time", "--requests", "3", "--no-record",
              "--scenario", "outage_503")
    assert run.code == 0
    assert len(history.read_text().splitlines()) == 2
    # A line cut short by a crash mid-write costs that line, not the history.
    with history.open("a") as out:
        out.write('{"time": "2026-')
    from failover.drills import read_history

    assert len(read_history(history)) == 2


def test_drill_keeps_deferred_requests_out_of_the_configured_default_store(
    cli: CliRunner, write_config: ConfigWriter, tmp_path: Path
) -> None:
    path = write_config(two_providers(fallback={"defer": True}))
    run = cli("drill", str(path), "--simulated-time", "--requests", "3",
              "--scenario", "total_outage")
    assert run.code == 0
    assert not (tmp_path / ".failover" / "deferred.sqlite").exists()


def test_drill_config_sends_no_real_key_shares_no_state_and_pages_nobody() -> None:
    config = Config.from_mapping({
        **two_providers(),
        "notify": {"webhook": {"url": "https://hooks.example.test/x"}},
        "state": {"backend": "redis", "url": "redis://localhost:6379/0"},
        "deferred": {"path": "/srv/app/production-deferred.sqlite"},
    })
    drilled = drill_config(config, "/tmp/drill")
    for provider in drilled.providers.values():
        assert [k.get_secret_value() for k in provider.key_refs()] == ["drill-dummy-key"]
    assert drilled.state.backend == "memory"
    assert drilled.notify.webhook is None
    assert drilled.deferred.path == "/tmp/drill/deferred.sqlite"
    assert set(config.routes) <= set(drilled.routes)


def test_chart_is_drawn(cli: CliRunner, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    chart = tmp_path / "drill.png"
    run = cli("drill", "--simulated-time", "--requests", "4", "--chart", str(chart),
              "--scenario", "outage_503", "--scenario", "recovery")
    assert run.code == 0
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"chart: {chart}" in run.out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scenario", "meteor"], "unknown scenario 'meteor'"),
        (["--route", "nope"], "unknown route 'nope'"),
        (["--requests", "1"], "--requests must be at least 2"),
    ],
)
def test_bad_arguments_are_usage_errors(cli: CliRunner, argv: list[str], message: str) -> None:
    run = cli("drill", *argv)
    assert run.code == 2
    assert message in run.err
