"""Per-call provider options and the unified ``reasoning`` option, through the public API
and checked in what each provider receives; streamed turns keep their reasoning too."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

import failover
from failover import Message
from failover.testing import FakeClock, FakeProviders
from support import PROVIDERS


@pytest.fixture
def router(clock: FakeClock, fake: FakeProviders) -> Iterator[failover.Router]:
    providers = {**PROVIDERS,
                 "tuned": {**PROVIDERS["openai"], "options": {"seed": 1, "user": "ops"}},
                 "plain": {**PROVIDERS["openai"], "capabilities": {"reasoning": False}}}
    config = failover.Config.from_mapping({
        "providers": providers,
        "routes": {name: {"chain": [name]} for name in providers},
    })
    with failover.Router(config, clock=clock) as built:
        yield built


def sent(fake: FakeProviders, name: str) -> dict[str, Any]:
    body: dict[str, Any] = fake[name].last_request.json
    return body


OPTIONS = {"seed": 7, "top_k": 5, "safety_settings": [
    {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}],
    "anthropic": {"service_tier": "standard_only"}}


@pytest.mark.parametrize("name", ["openai", "claude", "gemini"])
def test_each_provider_takes_its_own_options_and_leaves_out_the_rest(
        router: failover.Router, fake: FakeProviders, name: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="failover.providers")
    fake[name].answer("ok")
    router.complete("hi", route=name, options=OPTIONS)
    body = sent(fake, name)
    if name == "openai":
        assert body["seed"] == 7
        assert "top_k" not in body and "safety_settings" not in body
        assert "service_tier" not in body  # scoped to anthropic
        assert "left out option 'top_k': openai does not take it" in caplog.text
    elif name == "claude":
        assert (body["top_k"], body["service_tier"]) == (5, "standard_only")
        assert "seed" not in body and "safety_settings" not in body
    else:
        config = body["generationConfig"]
        assert (config["seed"], config["topK"]) == (7, 5)
        assert body["safetySettings"] == [{"category": "HARM_CATEGORY_HARASSMENT",
                                           "threshold": "BLOCK_ONLY_HIGH"}]


def test_a_call_option_wins_over_the_config(router: failover.Router, fake: FakeProviders) -> None:
    fake["tuned"].answer("ok")
    router.complete("hi", route="tuned")
    assert (sent(fake, "tuned")["seed"], sent(fake, "tuned")["user"]) == (1, "ops")
    router.complete("hi", route="tuned", options={"seed": 2})
    assert (sent(fake, "tuned")["seed"], sent(fake, "tuned")["user"]) == (2, "ops")


@pytest.mark.parametrize(("name", "expected"), [
    ("openai", {"reasoning_effort": "high"}),
    ("claude", {"thinking": {"type": "enabled", "budget_tokens": 24576},
                "max_tokens": 4096 + 24576}),
])
def test_reasoning_maps_to_each_providers_knob(router: failover.Router, fake: FakeProviders,
                                               name: str, expected: dict[str, Any]) -> None:
    fake[name].answer("ok")
    router.complete("hi", route=name, reasoning="high", temperature=0.2)
    body = sent(fake, name)
    assert {k: body[k] for k in expected} == expected
    if name == "claude":
        assert "temperature" not in body  # the API refuses it with thinking on


def test_reasoning_on_gemini_is_a_thinking_budget(router: failover.Router,
                                                  fake: FakeProviders) -> None:
    fake["gemini"].answer("ok")
    router.complete("hi", route="gemini", reasoning="none")
    thinking = sent(fake, "gemini")["generationConfig"]["thinkingConfig"]
    assert thinking.get("thinkingBudget", thinking.get("thinking_budget")) == 0


def test_a_small_max_tokens_shrinks_the_thinking_budget_or_drops_it(
        router: failover.Router, fake: FakeProviders) -> None:
    fake["claude"].answer("ok")
    router.complete("hi", route="claude", reasoning="high", max_tokens=3000)
    assert sent(fake, "claude")["thinking"] == {"type": "enabled", "budget_tokens": 2999}
    router.complete("hi", route="claude", reasoning="high", max_tokens=500)
    assert "thinking" not in sent(fake, "claude")


def test_a_provider_that_does_not_reason_gets_no_reasoning(
        router: failover.Router, fake: FakeProviders) -> None:
    fake["plain"].answer("ok")
    router.complete("hi", route="plain", reasoning="low")
    assert "reasoning_effort" not in sent(fake, "plain")


@pytest.mark.parametrize(("params", "problem"), [
    ({"reasoning": "extreme"}, "reasoning: expected one of"),
    ({"options": {"seed": float("nan")}}, "options: not JSON-serialisable"),
])
def test_bad_reasoning_or_options_are_the_callers_mistake(
        router: failover.Router, fake: FakeProviders, params: dict[str, Any],
        problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        router.complete("hi", route="openai", **params)
    assert fake.requests == []


def test_an_option_gemini_cannot_take_names_itself_and_touches_no_breaker(
        router: failover.Router, fake: FakeProviders) -> None:
    fake["gemini"].answer("ok")
    with pytest.raises(failover.BadRequest, match=r"options\.safety_settings"):
        router.complete("hi", route="gemini", options={"safety_settings": "all of them"})
    assert fake["gemini"].calls == 0
    health = router.health()["gemini"]
    assert (health.state, health.calls, health.failures) == ("closed", 0, 0)


@pytest.mark.parametrize(("start", "backup"), [("claude", "gemini"), ("gemini", "claude")])
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_streamed_turns_keep_their_reasoning(
        router: failover.Router, fake: FakeProviders, start: str, backup: str,
        mode: str) -> None:
    fake[start].answer("Checking.", tool_calls=[{"id": "toolu_1", "name": "weather",
                                                 "arguments": {"city": "Oslo"}}],
                       reasoning="I need the forecast.")
    tools = [{"name": "weather"}]
    if mode == "sync":
        events = list(router.stream("Weather?", route=start, tools=tools, reasoning="low"))
    else:
        events = [e async for e in router.astream("Weather?", route=start, tools=tools,
                                                  reasoning="low")]
    reply = events[-1].response  # type: ignore[union-attr]
    assert [(p.text, p.origin) for p in reply.reasoning] == [
        ("I need the forecast.", "anthropic" if start == "claude" else "gemini")]
    # Claude signs its thinking block; Gemini signs the function call it made.
    signature = reply.reasoning[0].signature or reply.tool_calls[0].signature
    assert signature
    history = [Message("user", "Weather?"), reply.message,
               Message("tool", '{"rain_mm": 0}', tool_call_id=reply.tool_calls[0].id)]
    fake[start].answer("Dry all day.")
    router.complete(history, route=start, tools=tools, reasoning="low")
    assert fake[start].last_request.problems == []
    # The signature went back to the family that gave it.
    assert signature.encode() in fake[start].last_request.body
    fake[backup].answer("Dry all day.")
    router.complete(history, route=backup, tools=tools, reasoning="low")
    assert fake[backup].last_request.problems == []
