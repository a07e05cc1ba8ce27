"""``failover drill --live``: nothing is sent without the operator's yes, a budget and a
config of real providers (loopback servers stand in for them here)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from support import LiveProvider

from .conftest import CliRunner, ConfigWriter


def test_the_cli_asks_before_it_sends_anything(
    cli: CliRunner, write_config: ConfigWriter, live_providers: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = str(write_config(live_providers))
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    run = cli("drill", path, "--live", "--budget", "10", "--scenario", "outage_503")
    assert run.code == 1 and "not confirmed: nothing was sent" in run.err
    assert "default/openai (openai, gpt-x, http://127.0.0.1" in run.err
    assert LiveProvider.seen == []
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    run = cli("drill", path, "--live", "--budget", "10", "--scenario", "outage_503",
              "--requests", "4")
    assert run.code == 0, run.err
    assert "live: 4 real request(s) sent, budget 10" in run.out
    run = cli("drill", path, "--live", "--budget", "3", "--yes", "--json",
              "--scenario", "outage_503", "--requests", "4")
    assert json.loads(run.out)["live"] == {"budget": 3, "sent": 3}
    assert len(LiveProvider.seen) == 7
    history = Path(path).parent / ".failover" / "drill-history.jsonl"
    assert [json.loads(line)["live"] for line in history.read_text().splitlines()] == [
        {"budget": 10, "sent": 4}, {"budget": 3, "sent": 3}]


@pytest.mark.parametrize(("argv", "message"), [
    (["--live", "--budget", "3"], "--live needs a CONFIG of real providers"),
    (["CONFIG", "--live"], "--live needs --budget N"),
    (["CONFIG", "--live", "--budget", "3", "--simulated-time"], "drop --simulated-time"),
    (["CONFIG", "--live", "--budget", "3", "--scenario", "outage_hang"], "cannot stage"),
])
def test_cli_live_mistakes_send_nothing(
    cli: CliRunner, write_config: ConfigWriter, live_providers: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str,
) -> None:
    monkeypatch.delenv("FAILOVER_CONFIG", raising=False)
    path = str(write_config(live_providers))
    run = cli("drill", *[path if a == "CONFIG" else a for a in argv], "--yes")
    assert run.code == 2 and message in run.err
    assert LiveProvider.seen == []
