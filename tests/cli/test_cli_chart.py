"""What the drill chart draws, read from its data: every request visible, one legend
entry per thing drawn, and titles and lines that mean what they say."""

from __future__ import annotations

from collections.abc import Callable

import failover
from failover.cli._builtin import builtin_config
from failover.cli._chart import legend_labels, panel_title, positions, serving_providers
from failover.drills import run_drill


def test_a_total_outage_on_simulated_time_shows_every_request() -> None:
    """Deferred at once, on a clock that did not move: each request still gets its own
    place on the x axis (it used to collapse to one point)."""
    [total] = run_drill(builtin_config(), simulated_time=True, requests=8,
                        scenarios=["total_outage"]).results
    x, label = positions(total)
    assert len({x[id(r)] for r in total.measured}) == 8
    assert label.startswith("requests since the fault started")
    [outage] = run_drill(builtin_config(), simulated_time=True, requests=8,
                         scenarios=["outage_hang"]).results
    assert positions(outage)[1] == "ms since the fault started"


def test_the_legend_names_each_thing_once_and_never_a_fallback_as_a_provider(
    app_module: Callable[[str, str], str],
) -> None:
    module = app_module("chart_fallbacks", "def canned(request, error):\n    return 'later'\n")
    config = failover.Config.from_mapping({
        "providers": {"a": {"type": "fake", "model": "s"}, "b": {"type": "fake", "model": "t"}},
        "routes": {"default": {"chain": ["a", "b"], "fallback": {"python": f"{module}:canned"}}},
    })
    report = run_drill(config, simulated_time=True, requests=4,
                       scenarios=["outage_503", "total_outage"])
    assert report.results[1].outcomes["degraded"] == 4
    labels = legend_labels(report)
    assert serving_providers(report) == ["a", "b"]
    assert labels == ["served by a", "served by b", "degraded", "deferred", "failed", "lost",
                      "fault starts", "detected", "recovered", "primary healthy again"]


def test_the_recovery_title_and_line_say_the_same_thing() -> None:
    report = run_drill(builtin_config(), simulated_time=True, requests=8,
                       scenarios=["recovery", "key_rotation"])
    by_key = {r.scenario.key: r for r in report.results}
    recovery, rotation = by_key["recovery"], by_key["key_rotation"]
    assert recovery.heal_s is not None and recovery.failback_s is not None
    assert panel_title(recovery).endswith(
        f"traffic back {recovery.failback_s * 1000:.0f} ms after the primary healed")
    assert panel_title(rotation).endswith("after the key was rotated")
    assert "primary healthy again" in legend_labels(report)
