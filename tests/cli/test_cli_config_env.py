"""CONFIG defaults to ``$FAILOVER_CONFIG`` for every command; without either, a command
that needs a config says what to set (a usage error, exit 2), and ``drill`` runs the
built-in simulated providers."""

from __future__ import annotations

import pytest

from .conftest import CliRunner, ConfigWriter
from .test_cli_check import BROKEN, VALID

KEYS = {"OPENAI_API_KEY": "sk-env-0123456789", "ANTHROPIC_API_KEY": "sk-ant-env-0123456789",
        "GEMINI_API_KEY": "AIzaEnv0123456789"}


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)


def test_check_reads_the_config_named_by_the_environment(
    cli: CliRunner, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAILOVER_CONFIG", str(write_config(BROKEN, "from-env.yaml")))
    run = cli("check")
    assert run.code == 1
    assert "from-env.yaml" in run.err and "routes.default.chain[1]" in run.err


def test_a_path_given_wins_over_the_environment(
    cli: CliRunner, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAILOVER_CONFIG", str(write_config(BROKEN, "broken.yaml")))
    assert cli("check", str(write_config(VALID))).code == 0


@pytest.mark.parametrize("command", [("check",), ("plan",), ("health",),
                                     ("deferred", "list")])
def test_without_config_or_environment_the_command_says_what_to_set(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    monkeypatch.delenv("FAILOVER_CONFIG", raising=False)
    run = cli(*command)
    assert run.code == 2
    assert "CONFIG is required: FAILOVER_CONFIG is not set" in run.err
    assert "Traceback" not in run.err


def test_drill_uses_the_environment_then_the_built_in_config(
    cli: CliRunner, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAILOVER_CONFIG", raising=False)
    assert cli("drill", "--simulated-time", "--scenario", "outage_503", "--no-record").code == 0
    monkeypatch.setenv("FAILOVER_CONFIG", str(write_config(BROKEN, "drill-env.yaml")))
    run = cli("drill", "--simulated-time", "--no-record")
    assert run.code == 1 and "drill-env.yaml" in run.err
