"""``failover health``: a probe per provider, then the router's health table."""

from __future__ import annotations

import json

import pytest

from failover.testing import FakeProviders

from .conftest import CliRunner, ConfigWriter

CONFIG = {
    "providers": {
        "openai": {"type": "openai", "model": "gpt-4o-mini", "api_key": "${OPENAI_API_KEY}"},
        "claude": {"type": "anthropic", "model": "claude-haiku-4-5",
                   "api_key": "${ANTHROPIC_API_KEY}"},
    },
    "routes": {"default": {"chain": ["openai", "claude"]}},
}


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-0123456789")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0123456789")


def test_healthy_providers(cli: CliRunner, write_config: ConfigWriter) -> None:
    with FakeProviders() as fake:
        fake["openai"].answer("OK")
        fake["claude"].answer("OK")
        run = cli("health", str(write_config(CONFIG)))
    assert run.code == 0
    rows = {line.split()[0]: line.split() for line in run.out.splitlines()[2:4]}
    assert rows["openai"][1:4] == ["openai", "closed", "100%"]
    assert rows["claude"][1:4] == ["anthropic", "closed", "100%"]
    assert rows["openai"][-1] == "ok"
    assert "all 2 provider(s) healthy" in run.out


def test_an_unhealthy_provider_is_named_with_its_error_kind(
    cli: CliRunner, write_config: ConfigWriter
) -> None:
    with FakeProviders() as fake:
        fake["openai"].fail(503)
        fake["claude"].answer("OK")
        run = cli("health", str(write_config(CONFIG)))
    assert run.code == 1
    openai_row = next(line for line in run.out.splitlines() if line.startswith("openai"))
    assert "0%" in openai_row
    assert openai_row.rstrip().endswith("Overloaded")
    assert "openai: Overloaded (HTTP 503)" in run.out
    assert "1 of 2 provider(s) unhealthy: openai" in run.out


def test_health_json(cli: CliRunner, write_config: ConfigWriter) -> None:
    with FakeProviders() as fake:
        fake["openai"].answer("OK")
        fake["claude"].fail(401)
        run = cli("health", str(write_config(CONFIG)), "--json")
    assert run.code == 1
    data = json.loads(run.out)
    assert data["ok"] is False
    assert data["providers"]["openai"]["state"] == "closed"
    assert data["providers"]["openai"]["success_rate"] == 1.0
    claude = data["providers"]["claude"]
    assert claude["success_rate"] == 0.0
    assert claude["probe"]["error_kind"] == "AuthenticationFailed"
    assert claude["state"] == "open"  # a revoked key opens the breaker at once
