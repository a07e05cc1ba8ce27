"""``failover check``: validation (every problem with its path) and ``--probe``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from failover.testing import FakeProviders

from .conftest import CliRunner, ConfigWriter

VALID: dict[str, Any] = {
    "providers": {
        "openai": {"type": "openai", "model": "gpt-4o-mini", "api_key": "${OPENAI_API_KEY}"},
        "claude": {"type": "anthropic", "model": "claude-haiku-4-5",
                   "api_key": "${ANTHROPIC_API_KEY}"},
        "gemini": {"type": "gemini", "model": "gemini-2.5-flash", "api_key": "${GEMINI_API_KEY}"},
    },
    "routes": {
        "default": {
            "chain": ["openai", "claude", "gemini"],
            "fallback": {"defer": True, "runbook": "docs/runbook.md"},
        },
        "cheap": {"chain": ["gemini"]},
    },
    "objectives": {"rto": "2s", "rpo": 0},
}

BROKEN = """\
providers:
  openai: {type: openai, model: gpt-4o-mini, timeout: 20x, colour: red}
  claude: {type: antropic, model: claude-haiku-4-5}
routes:
  default:
    chain: [openai, gemni]
"""


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-0123456789")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0123456789")
    monkeypatch.setenv("GEMINI_API_KEY", "AIzaTest0123456789abcdef")


def test_valid_config_prints_a_summary_and_exits_0(
    cli: CliRunner, write_config: ConfigWriter, keys: None
) -> None:
    path = write_config(VALID)
    run = cli("check", str(path))
    assert run.code == 0
    assert "is valid: 3 providers, 2 routes" in run.out
    assert "openai → claude → gemini" in run.out
    assert "defer" in run.out and "docs/runbook.md" in run.out
    assert "objectives: RTO 2 s, RPO 0" in run.out
    assert "warnings" not in run.out


def test_warnings_name_plain_text_keys_and_unset_variables(
    cli: CliRunner, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    data = json.loads(json.dumps(VALID))
    data["providers"]["claude"]["api_key"] = "sk-ant-written-in-the-file"
    data["providers"]["spare"] = {"type": "fake"}
    run = cli("check", str(write_config(data)))
    assert run.code == 0
    assert "providers.claude: API key written in plain text" in run.out
    assert "providers.openai.api_key: environment variable OPENAI_API_KEY is not set" in run.out
    assert "providers.spare: not used by any route" in run.out
    assert "sk-ant-written-in-the-file" not in run.out


def test_broken_config_prints_every_problem_with_its_path_and_exits_1(
    cli: CliRunner, write_config: ConfigWriter
) -> None:
    path = write_config(BROKEN)
    run = cli("check", str(path))
    assert run.code == 1
    assert f"invalid config {path} (4 problems)" in run.err
    for line in (
        "providers.openai.timeout: expected a duration like '200ms', '30s' or '5m', got '20x'",
        "providers.openai.colour: unknown key",
        "providers.claude.type: expected 'openai', 'azure', 'anthropic', 'gemini' or 'fake', "
        "got 'antropic'",
        "routes.default.chain[1]: unknown provider 'gemni'",
    ):
        assert line in run.err
    assert "Traceback" not in run.err + run.out


def test_unparsable_file_and_missing_file_are_reported_not_raised(
    cli: CliRunner, write_config: ConfigWriter, tmp_path: Any
) -> None:
    run = cli("check", str(write_config("providers: [unclosed\n")))
    assert run.code == 1
    assert "cannot parse YAML" in run.err
    missing = tmp_path / "nope.yaml"
    run = cli("check", str(missing))
    assert run.code == 1
    assert run.err.strip() == f"error: config file not found: {missing}"


def test_check_json_lists_routes_and_warnings(
    cli: CliRunner, write_config: ConfigWriter, keys: None
) -> None:
    run = cli("check", str(write_config(VALID)), "--json")
    assert run.code == 0
    data = json.loads(run.out)
    assert data["valid"] is True
    assert data["routes"] == {"default": ["openai", "claude", "gemini"], "cheap": ["gemini"]}


def test_probe_reports_each_provider_through_the_real_adapters(
    cli: CliRunner, write_config: ConfigWriter, keys: None
) -> None:
    path = write_config(VALID)
    with FakeProviders() as fake:
        fake["openai"].answer("OK")
        fake["claude"].answer("OK")
        fake["gemini"].answer("OK")
        run = cli("check", str(path), "--probe")
    assert run.code == 0, run.out
    assert "all 3 provider(s) answered" in run.out
    # One tiny request each, in each provider's own wire format.
    for name in ("openai", "claude", "gemini"):
        assert fake[name].calls == 1
    assert fake["openai"].last_request.json["max_completion_tokens"] <= 16
    assert fake["claude"].last_request.json["max_tokens"] <= 16
    assert fake["gemini"].last_request.json["generationConfig"]["maxOutputTokens"] <= 16


@pytest.mark.parametrize(
    ("fault", "kind", "reachable", "auth"),
    [
        (lambda p: p.fail(401), "AuthenticationFailed (HTTP 401)", "yes", "no"),
        (lambda p: p.malformed(), "InvalidResponse", "yes", "yes"),
        (lambda p: p.refuse(), "ConnectionFailed", "no", "?"),
        (lambda p: p.fail(503), "Overloaded (HTTP 503)", "yes", "?"),
    ],
    ids=["revoked-key", "schema-drift", "refused", "overloaded"],
)
def test_probe_names_the_error_kind_and_exits_1(
    cli: CliRunner, write_config: ConfigWriter, keys: None,
    fault: Any, kind: str, reachable: str, auth: str,
) -> None:
    path = write_config(VALID)
    with FakeProviders() as fake:
        fake["openai"].answer("OK")
        fake["claude"].answer("OK")
        fault(fake["gemini"])
        run = cli("check", str(path), "--probe")
    assert run.code == 1
    row = next(line for line in run.out.splitlines() if line.startswith("gemini "))
    assert kind in row
    assert row.split()[3:5] == [reachable, auth]
    assert f"1 of 3 provider(s) failed: gemini ({kind.split()[0]})" in run.out
    assert fake["gemini"].calls == 1  # one try: a probe never retries


def test_probe_json_and_provider_filter(
    cli: CliRunner, write_config: ConfigWriter, keys: None
) -> None:
    path = write_config(VALID)
    with FakeProviders() as fake:
        fake["claude"].fail(401)
        run = cli("check", str(path), "--probe", "--provider", "claude", "--json")
    assert run.code == 1
    data = json.loads(run.out)
    assert data["ok"] is False
    [probe] = data["probes"]
    assert probe["provider"] == "claude"
    assert probe["error_kind"] == "AuthenticationFailed"
    assert probe["authenticated"] is False
    assert probe["status"] == 401
    assert "openai" not in fake


def test_probe_of_unknown_provider_is_a_usage_error(
    cli: CliRunner, write_config: ConfigWriter, keys: None
) -> None:
    run = cli("check", str(write_config(VALID)), "--probe", "--provider", "mistral")
    assert run.code == 2
    assert "unknown provider(s): mistral" in run.out


def test_probe_with_an_unset_key_variable_reports_it(
    cli: CliRunner, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeProviders() as fake:
        run = cli("check", str(write_config(VALID)), "--probe", "--provider", "openai")
    assert run.code == 1
    assert "AuthenticationFailed" in run.out  # like a revoked key
    assert "OPENAI_API_KEY is not set" in run.out
    assert "openai" not in fake  # nothing was sent


def test_cloud_providers_show_their_platform_and_unset_credentials(
    cli: CliRunner, write_config: ConfigWriter, keys: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BEDROCK_SECRET", raising=False)
    data = json.loads(json.dumps(VALID))
    data["providers"]["bedrock"] = {
        "type": "anthropic", "platform": "bedrock", "region": "eu-west-1",
        "model": "anthropic.claude-haiku-4-5-20251001-v1:0",
        "credentials": {"aws_access_key_id": "AKIAEXAMPLE000000001",
                        "aws_secret_access_key": "${BEDROCK_SECRET}"}}
    data["routes"]["default"]["chain"].append("bedrock")
    run = cli("check", str(write_config(data)))
    assert run.code == 0
    assert "anthropic on bedrock (eu-west-1)" in run.out
    assert ("providers.bedrock.credentials.aws_secret_access_key: environment variable "
            "BEDROCK_SECRET is not set") in run.out
    assert "AKIAEXAMPLE000000001" not in run.out
