"""A caller's mistake is the caller's: every bad argument raises `TypeError` or
`ValueError` naming it before anything is sent, and no provider's health changes. A
fault of the caller's environment (an event loop that is gone) never counts either."""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any

import pytest

import failover
from failover.testing import FakeClock, FakeProviders

if TYPE_CHECKING:
    from conftest import Loopback

PROVIDERS = {
    "openai": {"type": "openai", "model": "gpt-4o-mini", "api_key": "sk-test-openai-0123456789"},
    "claude": {"type": "anthropic", "model": "claude-haiku-4-5",
               "api_key": "sk-ant-test-0123456789"},
    "gemini": {"type": "gemini", "model": "gemini-2.5-flash", "api_key": "AIzaTest0123456789abc"},
}
CONFIG = failover.Config.from_mapping({
    "providers": PROVIDERS, "routes": {"default": {"chain": ["openai", "claude", "gemini"]},
                                       "gemini": {"chain": ["gemini", "openai"]}},
})

# (call arguments, the exception type, what its message must name)
BAD_CALLS: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("messages-none", {"messages": None}, TypeError, "messages"),
    ("messages-int", {"messages": 123}, TypeError, "messages"),
    ("messages-float", {"messages": 1.5}, TypeError, "messages"),
    ("messages-empty", {"messages": ""}, ValueError, "messages"),
    ("message-role", {"messages": [{"role": "bogus", "content": "hi"}]}, ValueError, "role"),
    ("tool-call-no-name", {"messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "arguments": "{}"}]}]},
     ValueError, "tool_calls[0].name"),
    ("temperature-nan", {"temperature": math.nan}, ValueError, "temperature"),
    ("temperature-inf", {"temperature": math.inf}, ValueError, "temperature"),
    ("temperature-str", {"temperature": "hot"}, TypeError, "temperature"),
    ("top_p-range", {"top_p": 7}, ValueError, "top_p"),
    ("max_tokens-zero", {"max_tokens": 0}, ValueError, "max_tokens"),
    ("max_tokens-bool", {"max_tokens": True}, ValueError, "max_tokens"),
    ("stop-int", {"stop": 123}, TypeError, "stop"),
    ("stop-ints", {"stop": [1, 2]}, TypeError, "stop"),
    ("tools-int", {"tools": 5}, TypeError, "tools"),
    ("tool-set", {"tools": [{"name": "t", "parameters": {"enum": {1, 2}}}]}, ValueError,
     "tools[0].parameters"),
    ("tool-nan", {"tools": [{"name": "t", "parameters": {"minimum": math.nan}}]}, ValueError,
     "tools[0].parameters"),
    ("schema-set", {"response_format": {"type": "object", "properties": {"a": {1}}}},
     ValueError, "response_format"),
    ("system-int", {"system": 123}, TypeError, "system"),
    ("metadata-list", {"metadata": [1]}, TypeError, "metadata"),
    ("timeout-str", {"timeout": "5s"}, TypeError, "timeout"),
    ("timeout-nan", {"timeout": math.nan}, ValueError, "timeout"),
    ("timeout-negative", {"timeout": -1}, ValueError, "timeout"),
    ("deadline-nan", {"deadline": math.nan}, ValueError, "deadline"),
    ("deadline-negative", {"deadline": -1}, ValueError, "deadline"),
    ("deadline-inf", {"deadline": math.inf}, ValueError, "deadline"),
    ("unknown-keyword", {"max_token": 5}, TypeError, "did you mean 'max_tokens'"),
    ("tool-result-no-id", {"messages": [
        {"role": "user", "content": "hi"}, {"role": "tool", "content": "42"}]},
     ValueError, "messages[1].tool_call_id"),
    ("reasoning-unknown", {"reasoning": "max"}, ValueError, "reasoning"),
    ("options-list", {"options": [1]}, TypeError, "options"),
    ("options-nan", {"options": {"seed": math.nan}}, ValueError, "options"),
    # Valid in general, but not in the first provider's terms: refused while translating,
    # still before anything is sent.
    ("gemini-option", {"options": {"gemini": {"safety_settings": 5}}}, ValueError,
     "options.safety_settings"),
]


async def call(router: failover.Router, entry: str, arguments: dict[str, Any]) -> Any:
    arguments = dict(arguments)
    messages = arguments.pop("messages", "hi")
    if "gemini" in arguments.get("options", {}):
        arguments["route"] = "gemini"
    if entry == "complete":
        return router.complete(messages, **arguments)
    if entry == "acomplete":
        return await router.acomplete(messages, **arguments)
    if entry == "stream":
        return list(router.stream(messages, **arguments))
    return [e async for e in router.astream(messages, **arguments)]


@pytest.mark.parametrize("entry", ["complete", "acomplete", "stream", "astream"])
@pytest.mark.parametrize(("arguments", "error", "names"),
                         [pytest.param(a, e, n, id=i) for i, a, e, n in BAD_CALLS])
async def test_a_bad_argument_raises_at_once_and_touches_no_provider(
    clock: FakeClock, fake: FakeProviders, entry: str, arguments: dict[str, Any],
    error: type[Exception], names: str,
) -> None:
    for name in PROVIDERS:
        fake[name].answer("never sent")
    events: list[failover.Event] = []
    with failover.Router(CONFIG, clock=clock) as router:
        router.subscribe(events.append)
        with pytest.raises(error) as caught:
            await call(router, entry, arguments)
        health = router.health()
    assert names in str(caught.value)
    assert not isinstance(caught.value, failover.AllProvidersFailed)
    assert all(fake[name].calls == 0 for name in PROVIDERS)
    assert {h.state for h in health.values()} == {"closed"}
    assert all(h.consecutive_failures == 0 for h in health.values())
    assert events == []


async def test_three_nans_in_a_row_leave_every_breaker_closed(
    clock: FakeClock, fake: FakeProviders
) -> None:
    fake["openai"].answer("fine")
    with failover.Router(CONFIG, clock=clock) as router:
        for _ in range(3):
            with pytest.raises(ValueError, match="temperature"):
                await router.acomplete("hi", temperature=math.nan)
        reply = await router.acomplete("hi", temperature=0.2)
    assert reply.provider == "openai" and fake["openai"].calls == 1


def test_one_router_serves_three_successive_event_loops(loopback: Loopback) -> None:
    # A script, a notebook, a test framework with a loop per test: the connections of a
    # loop that is gone are never reused, and nothing counts against a provider.
    config = failover.Config.from_mapping({
        "providers": loopback.providers(),
        "routes": {name: {"chain": [name]} for name in loopback.providers()},
    })
    router = failover.Router(config)

    async def ask_each() -> list[str]:
        return [(await router.acomplete("hi", route=name)).provider
                for name in loopback.providers()]

    for _ in range(3):
        assert asyncio.run(ask_each()) == list(loopback.providers())
    assert {h.state for h in router.health().values()} == {"closed"}
    assert loopback.requests == 9
    router.close()


def test_one_list_of_parameters() -> None:
    import inspect

    from failover._models import REQUEST_PARAMS, build_request

    built = set(inspect.signature(build_request).parameters) - {"messages", "route"}
    assert built == REQUEST_PARAMS
    for entry in ("complete", "acomplete", "stream", "astream"):
        signature = inspect.signature(getattr(failover.Router, entry))
        assert signature.parameters["timeout"].kind is inspect.Parameter.KEYWORD_ONLY
        assert "CompletionParams" in str(signature.parameters["params"].annotation)


def test_a_message_with_an_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError, match=r"Message\.role: expected one of"):
        failover.Message(role="bogus", content="hi")  # type: ignore[arg-type]
