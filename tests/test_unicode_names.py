"""A name may be in any script: providers, routes, the test kit, the CLI and drills."""

from __future__ import annotations

from pathlib import Path

import yaml

import failover
from failover.cli import main as cli_main
from failover.testing import FakeClock, FakeProviders

CONFIG = {
    "providers": {"основной": {"type": "fake"},
                  "予備": {"type": "openai", "model": "gpt-4o-mini",
                           "api_key": "sk-test-01234567"}},
    "routes": {"маршрут": {"chain": ["основной", "予備"]}},
}


def test_a_simulated_provider_and_the_kit_take_any_name(clock: FakeClock) -> None:
    router = failover.Router(failover.Config.from_mapping(CONFIG), clock=clock)
    assert router.complete("hi", route="маршрут").provider == "основной"
    with FakeProviders(clock=clock) as fake:
        fake["основной"].fail(503)
        fake["予備"].answer("こんにちは")
        reply = router.complete("hi", route="маршрут")
    assert (reply.provider, reply.text) == ("予備", "こんにちは")
    assert fake["основной"].calls == 1 and fake["予備"].calls == 1
    assert {h.state for h in router.health().values()} == {"closed"}


def test_the_cli_and_a_drill_take_any_name(tmp_path: Path) -> None:
    path = tmp_path / "failover.yaml"
    path.write_text(yaml.safe_dump(CONFIG, allow_unicode=True), encoding="utf-8")
    assert cli_main(["check", str(path)]) == 0
    assert cli_main(["plan", str(path)]) == 0
    assert cli_main(["drill", str(path), "--simulated-time", "--scenario", "outage_503"]) == 0
