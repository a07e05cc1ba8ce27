from __future__ import annotations

import json
from pathlib import Path

import pytest

import failover
from failover._config import parse_duration, resolve_env

MINIMAL = {
    "providers": {"openai": {"type": "openai", "model": "gpt-4o-mini", "api_key": "none"}},
    "routes": {"default": {"chain": ["openai"]}},
}


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("200ms", 0.2), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), (2, 2.0), (0.5, 0.5),
     ("1.5s", 1.5), ("7", 7.0)],
)
def test_durations(raw: object, seconds: float) -> None:
    assert parse_duration(raw) == pytest.approx(seconds)


@pytest.mark.parametrize("raw", ["3x", "fast", -1, True, "", None])
def test_bad_durations(raw: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(raw)


def test_every_problem_is_listed_with_its_path() -> None:
    data = {
        "providers": {
            "openai": {"type": "openai", "model": "m", "timeout": "3x", "bogus": 1},
            "gemini": {"type": "gemini"},
            "weird": {"type": "mistral", "model": "x"},
        },
        "routes": {"default": {"chain": ["openai", "claude", "gemni"], "deadline": "soon"}},
        "defaults": {"breaker": {"failure_rate": 2}},
    }
    with pytest.raises(failover.ConfigError) as info:
        failover.Config.from_mapping(data)
    problems = info.value.problems
    text = str(info.value)
    expected = [
        "providers.openai.timeout: expected a duration",
        "providers.openai.bogus: unknown key",
        "providers.gemini: a model is required for type 'gemini'",
        "providers.weird.type: expected 'openai', 'azure', 'anthropic', 'gemini' or 'fake'",
        "routes.default.deadline: expected a duration",
        "defaults.breaker.failure_rate",
        "routes.default.chain[1]: unknown provider 'claude'",
        "routes.default.chain[2]: unknown provider 'gemni' (did you mean 'gemini'?)",
    ]
    for fragment in expected:
        assert any(fragment in p for p in problems), (fragment, problems)
        assert fragment in text


def test_chain_problems_alone() -> None:
    data = {**MINIMAL, "routes": {"default": {"chain": ["openai", "openai", "nope"]}}}
    with pytest.raises(failover.ConfigError) as info:
        failover.Config.from_mapping(data)
    assert info.value.problems == [
        "routes.default.chain[1]: provider 'openai' appears twice in the chain",
        "routes.default.chain[2]: unknown provider 'nope'",
    ]


def test_unknown_error_kind_in_actions() -> None:
    data = {**MINIMAL, "routes": {"default": {"chain": ["openai"], "actions": {"Oops": "raise"}}}}
    with pytest.raises(failover.ConfigError, match=r"routes\.default\.actions: unknown error kind"):
        failover.Config.from_mapping(data)


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json", ".toml"])
def test_loads_every_format(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"failover{suffix}"
    if suffix == ".toml":
        path.write_text(
            '[providers.openai]\ntype = "openai"\nmodel = "gpt-4o-mini"\napi_key = "none"\n'
            '[routes.default]\nchain = ["openai"]\ndeadline = "10s"\n'
        )
    elif suffix == ".json":
        path.write_text(json.dumps({**MINIMAL, "routes": {"default": {
            "chain": ["openai"], "deadline": "10s"}}}))
    else:
        path.write_text(
            "providers:\n  openai: {type: openai, model: gpt-4o-mini, api_key: none}\n"
            "routes:\n  default: {chain: [openai], deadline: 10s}\n"
        )
    config = failover.Config.from_file(path)
    assert config.routes["default"].deadline == 10.0
    assert config.providers["openai"].api_key is None


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(failover.ConfigError, match="file not found"):
        failover.Config.from_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers: [unclosed\n")
    with pytest.raises(failover.ConfigError, match=r"bad\.yaml.*\n.*cannot parse YAML"):
        failover.Config.from_file(bad)
    other = tmp_path / "conf.ini"
    other.write_text("x")
    with pytest.raises(failover.ConfigError, match="unsupported config file type"):
        failover.Config.from_file(other)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(failover.ConfigError, match="top level must be a mapping"):
        failover.Config.from_file(scalar)


def test_env_references() -> None:
    env = {"KEY": "sk-secret"}
    assert resolve_env("${KEY}", "x", env) == "sk-secret"
    assert resolve_env("Bearer ${KEY}", "x", env) == "Bearer sk-secret"
    assert resolve_env("${MISSING:-fallback}", "x", env) == "fallback"
    with pytest.raises(failover.ConfigError, match=r"providers\.openai\.api_key: .*MISSING"):
        resolve_env("${MISSING}", "providers.openai.api_key", env)


def test_keys_are_secret_in_repr_and_dump() -> None:
    data = {**MINIMAL, "providers": {"openai": {
        "type": "openai", "model": "m", "api_key": "sk-verysecret-123456"}}}
    config = failover.Config.from_mapping(data)
    assert "sk-verysecret" not in repr(config)
    assert "sk-verysecret" not in str(config.model_dump())
    assert "sk-verysecret" not in config.model_dump_json()


def test_timeouts_merge_and_shorthand() -> None:
    data = {
        "providers": {"openai": {"type": "openai", "model": "m", "api_key": "none",
                                 "timeout": "2s", "timeouts": {"stall": "500ms"}}},
        "routes": {"default": {"chain": ["openai"]}},
        "defaults": {"timeouts": {"connect": "1s", "first_token": "3s"}},
    }
    t = failover.Config.from_mapping(data).timeouts_for("openai")
    assert (t.connect, t.request, t.first_token, t.stall) == (1.0, 2.0, 3.0, 0.5)


def test_defaults_match_the_spec() -> None:
    config = failover.Config.from_mapping(MINIMAL)
    b, r, t = config.defaults.breaker, config.defaults.retry, config.defaults.timeouts
    assert (b.window, b.min_calls, b.failure_rate, b.consecutive_failures) == (30, 5, 0.5, 3)
    assert (b.open_for, b.max_open_for, b.half_open_probes) == (5, 10, 1)
    assert (r.attempts, r.backoff, r.max_backoff, r.max_retry_after, r.budget) == (
        2, 0.5, 4, 10, 0.2)
    assert (t.connect, t.request, t.first_token, t.stall) == (5, 30, 15, 15)
    assert config.objectives.rto == 2 and config.objectives.rpo == 0
    assert config.deferred.path == ".failover/deferred.sqlite"


def test_redis_backend_needs_url() -> None:
    with pytest.raises(failover.ConfigError, match=r"state: backend redis needs a url"):
        failover.Config.from_mapping({**MINIMAL, "state": {"backend": "redis"}})
