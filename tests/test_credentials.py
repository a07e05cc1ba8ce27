"""A key whose ``${VAR}`` is not set is a provider failure, never a lost request: the
request fails over, falls back or defers like in any outage, and people are told."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import failover
from failover.testing import FakeClock, FakeProviders

KEYS = {"OPENAI_KEY_T": "sk-test-openai-0123456789", "CLAUDE_KEY_T": "sk-ant-test-0123456789"}


def config(tmp_path: Path, **route: Any) -> failover.Config:
    return failover.Config.from_mapping({
        "providers": {
            "openai": {"type": "openai", "model": "gpt-4o-mini", "api_key": "${OPENAI_KEY_T}"},
            "claude": {"type": "anthropic", "model": "claude-haiku-4-5",
                       "api_key": "${CLAUDE_KEY_T}"},
        },
        "routes": {"default": {"chain": ["openai", "claude"], **route},
                   "only_openai": {"chain": ["openai"], "fallback": {"defer": True}}},
        "deferred": {"path": str(tmp_path / "deferred.sqlite")},
    })


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OPENAI_KEY_T")
    return monkeypatch


@pytest.mark.parametrize("mode", ["complete", "acomplete", "stream", "astream"])
async def test_a_missing_key_fails_over_and_is_told(
    tmp_path: Path, clock: FakeClock, fake: FakeProviders, env: pytest.MonkeyPatch, mode: str
) -> None:
    fake["claude"].answer("from claude")
    events: list[failover.Event] = []
    with failover.Router(config(tmp_path), clock=clock) as router:
        router.subscribe(events.append)
        if mode == "complete":
            reply = router.complete("hi")
        elif mode == "acomplete":
            reply = await router.acomplete("hi")
        elif mode == "stream":
            reply = list(router.stream("hi"))[-1].response
        else:
            reply = [e async for e in router.astream("hi")][-1].response
        assert router.health()["openai"].state == "open"
    assert reply.provider == "claude" and reply.text == "from claude"
    first = reply.attempts[0]
    assert (first.provider, first.error_kind) == ("openai", "AuthenticationFailed")
    assert "OPENAI_KEY_T is not set" in first.detail
    assert "openai" not in fake  # nothing was sent without a key
    failed = [e for e in events if e.type == "attempt_failed"]
    assert failed and "OPENAI_KEY_T" in failed[0].detail
    assert any(e.type == "breaker_opened" and e.provider == "openai" for e in events)


def test_a_missing_key_on_a_defer_route_defers(
    tmp_path: Path, clock: FakeClock, fake: FakeProviders, env: pytest.MonkeyPatch
) -> None:
    events: list[failover.Event] = []
    with failover.Router(config(tmp_path), clock=clock) as router:
        router.subscribe(events.append)
        with pytest.raises(failover.Deferred) as deferred:
            router.complete("keep me", route="only_openai")
        records = router.list_deferred()
    assert [r.ticket for r in records] == [deferred.value.ticket]
    assert deferred.value.attempts[0].error_kind == "AuthenticationFailed"
    types = [e.type for e in events]
    assert "all_providers_failed" in types and "deferred" in types


def test_setting_the_variable_brings_the_provider_back(
    tmp_path: Path, clock: FakeClock, fake: FakeProviders, env: pytest.MonkeyPatch
) -> None:
    fake["openai"].answer("from openai")
    fake["claude"].answer("from claude")
    with failover.Router(config(tmp_path), clock=clock) as router:
        assert router.complete("hi").provider == "claude"
        env.setenv("OPENAI_KEY_T", KEYS["OPENAI_KEY_T"])
        clock.advance(router.config.defaults.breaker.max_open_for + 1)
        reply = router.complete("hi")
    assert reply.provider == "openai"
    assert fake["openai"].last_request.headers["authorization"] == f"Bearer {KEYS['OPENAI_KEY_T']}"


def test_one_missing_key_in_a_pool_leaves_the_other_serving(
    clock: FakeClock, fake: FakeProviders, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POOL_KEY_A", "sk-test-pool-a-0123456789")
    monkeypatch.delenv("POOL_KEY_B", raising=False)
    fake["openai"].answer("ok")
    cfg = failover.Config.from_mapping({
        "providers": {"openai": {"type": "openai", "model": "gpt-4o-mini",
                                 "api_keys": ["${POOL_KEY_A}", "${POOL_KEY_B}"]}},
        "routes": {"default": {"chain": ["openai"]}},
    })
    with failover.Router(cfg, clock=clock) as router:
        replies = [router.complete("hi") for _ in range(4)]
    assert all(len(r.attempts) == 1 for r in replies)
    assert {r.headers["authorization"] for r in fake["openai"].requests} == {
        "Bearer sk-test-pool-a-0123456789"}


def test_router_start_and_warm_up_report_every_missing_variable(
    tmp_path: Path, env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    env.delenv("CLAUDE_KEY_T")
    with caplog.at_level("WARNING", logger="failover"):
        router = failover.Router(config(tmp_path))
    assert "providers.openai.api_key: environment variable OPENAI_KEY_T is not set" in caplog.text
    assert "CLAUDE_KEY_T is not set" in caplog.text
    with pytest.raises(failover.ConfigError) as caught:
        router.warm_up()
    assert len(caught.value.problems) == 2
    router.close()


def test_a_reload_that_leaves_a_chain_without_its_key_is_rejected(
    tmp_path: Path, clock: FakeClock, fake: FakeProviders, env: pytest.MonkeyPatch
) -> None:
    env.setenv("OPENAI_KEY_T", KEYS["OPENAI_KEY_T"])
    fake["openai"].answer("from openai")
    events: list[failover.Event] = []
    with failover.Router(config(tmp_path), clock=clock) as router:
        router.subscribe(events.append)
        data = router.config.model_dump(mode="json")
        data["providers"]["openai"]["api_key"] = "${NEW_OPENAI_KEY_T}"
        env.delenv("NEW_OPENAI_KEY_T", raising=False)
        with pytest.raises(failover.ConfigError, match="NEW_OPENAI_KEY_T is not set"):
            router.reload(failover.Config.from_mapping(data))
        assert router.complete("hi").provider == "openai"  # the old config serves on
    rejected = [e for e in events if e.type == "config_rejected"]
    assert rejected and "NEW_OPENAI_KEY_T" in rejected[0].detail


def test_a_pool_with_no_key_set_says_which_variables(
    clock: FakeClock, fake: FakeProviders, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POOL_KEY_A", raising=False)
    monkeypatch.delenv("POOL_KEY_B", raising=False)
    fake["claude"].answer("from claude")
    cfg = failover.Config.from_mapping({
        "providers": {"openai": {"type": "openai", "model": "gpt-4o-mini",
                                 "api_keys": ["${POOL_KEY_A}", "${POOL_KEY_B}"]},
                      "claude": {"type": "anthropic", "model": "claude-haiku-4-5",
                                 "api_key": "sk-ant-test-0123456789"}},
        "routes": {"default": {"chain": ["openai", "claude"]}},
    })
    with failover.Router(cfg, clock=clock) as router:
        reply = router.complete("hi")
    assert reply.provider == "claude"
    (failed,) = [a for a in reply.attempts if a.provider == "openai"]
    assert failed.error_kind == "AuthenticationFailed"
    assert "POOL_KEY_A is not set" in (failed.detail or "")
    assert "POOL_KEY_B is not set" in (failed.detail or "")
