"""A conversation that survives a change of provider: three turns of tool calls with
reasoning on one provider, then a failover to each provider of another kind (and to the
same model on another cloud). The kit is strict: every request is checked against the
rules of the API that receives it (`failover.testing.wire_problems`) and refused with a
400 if it breaks one, as the real API would. The answer must arrive."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import failover
from failover import Message
from failover.testing import FakeClock, FakeProviders
from support import PROVIDERS

STARTS = ["openai", "claude", "gemini"]
ALL = ["openai", "azure", "claude", "bedrock", "vertex-claude", "gemini", "vertex-gemini"]
FAMILY = {"openai": "openai", "azure": "openai", "claude": "anthropic",
          "bedrock": "anthropic", "vertex-claude": "anthropic", "gemini": "gemini",
          "vertex-gemini": "gemini"}
PAIRS = [(a, b) for a in STARTS for b in ALL if b != a]
TOOLS = [{"name": "weather", "description": "The weather in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]

#: Tool-call ids as each family writes them: a compatible server's ids with characters
#: Anthropic refuses, Anthropic's longer than the 40 OpenAI takes, and none from Gemini.
CALL_IDS = {"openai": "functions.weather:{turn}",
            "anthropic": "toolu_{turn}" + "x" * 40,
            "gemini": None}


@pytest.fixture
def strict(clock: FakeClock) -> Iterator[FakeProviders]:
    with FakeProviders(clock=clock, strict=True) as kit:
        yield kit


@pytest.fixture
def router(clock: FakeClock, strict: FakeProviders,
           cloud_providers: dict[str, Any]) -> Iterator[failover.Router]:
    providers = {**PROVIDERS, **cloud_providers}
    # Gemini 3 wants a thought signature on every function call of the history.
    providers["vertex-gemini"] = {**providers["vertex-gemini"], "model": "gemini-3-pro-preview"}
    routes = {a: {"chain": [a]} for a in STARTS}
    routes |= {f"{a}-{b}": {"chain": [a, b]} for a, b in PAIRS}
    config = failover.Config.from_mapping({"providers": providers, "routes": routes,
                                           "defaults": {"retry": {"attempts": 1}}})
    with failover.Router(config, clock=clock) as built:
        yield built


def three_turns(router: failover.Router, fake: FakeProviders, start: str) -> list[Message]:
    """The agent's loop on ``start``: each turn the model thinks, calls the tool, and
    its answer and the tool's result join the history."""
    history: list[Message] = [Message("user", "Should I cycle to work in Oslo this week?")]
    for turn in range(3):
        template = CALL_IDS[FAMILY[start]]
        call = {"name": "weather", "arguments": {"city": "Oslo", "day": turn}}
        if template is not None:
            call["id"] = template.format(turn=turn)
        fake[start].answer(f"Checking day {turn}.", tool_calls=[call],
                           reasoning=f"I need the forecast for day {turn}.")
        reply = router.complete(history, route=start, tools=TOOLS, reasoning="medium")
        assert fake[start].last_request.problems == []
        assert reply.tool_calls
        history.append(reply.message)
        history.append(Message("tool", json.dumps({"day": turn, "rain_mm": 2 * turn}),
                               tool_call_id=reply.tool_calls[0].id))
    return history


@pytest.mark.parametrize(("start", "backup"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_a_tool_conversation_with_reasoning_continues_after_a_failover(
        router: failover.Router, strict: FakeProviders, start: str, backup: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="failover.providers")
    history = three_turns(router, strict, start)
    strict[start].fail(503)
    strict[backup].answer("Cycle on Monday; take the tram on Wednesday.")

    reply = router.complete(history, route=f"{start}-{backup}", tools=TOOLS,
                            reasoning="medium")

    assert reply.provider == backup
    assert reply.text == "Cycle on Monday; take the tram on Wednesday."
    sent = strict[backup].last_request
    assert sent.problems == []
    check_hop(FAMILY[start], FAMILY[backup], sent.json, caplog.text)


def check_hop(origin: str, family: str, body: dict[str, Any], logs: str) -> None:
    """What the hop carried, mapped and left out, family by family (docs/clouds.md)."""
    if family == "openai":
        assert body["reasoning_effort"] == "medium"
        calls = [c for m in body["messages"] for c in m.get("tool_calls", ())]
        assert len(calls) == 3 and all(len(c["id"]) <= 40 for c in calls)
    elif family == "anthropic":
        thinking = [b for m in body["messages"] if isinstance(m["content"], list)
                    for b in m["content"] if b["type"] == "thinking"]
        if origin == "anthropic":
            # The same model on another cloud: Claude's signed thinking goes with it.
            assert len(thinking) == 3
            assert body["thinking"] == {"type": "enabled", "budget_tokens": 8192}
        else:
            # Another family's tool turn has no Claude thinking: the API would refuse
            # thinking for this request, so it is left out (and said so).
            assert thinking == []
            assert "thinking" not in body
            assert "left out thinking" in logs
    else:
        calls = [p for c in body["contents"] for p in c["parts"] if "functionCall" in p]
        assert len(calls) == 3
        assert all("thoughtSignature" in p for p in calls) or origin != "gemini"
        thinking = body["generationConfig"]["thinkingConfig"]
        # The SDK sends the field names as written (proto JSON takes both spellings).
        assert thinking.get("thinkingBudget", thinking.get("thinking_budget")) == 8192
    if origin not in (family, "openai"):  # Chat Completions returns no reasoning
        assert "left out a reasoning block" in logs


@pytest.mark.parametrize("start", ["claude", "gemini"])
def test_a_foreign_signature_is_refused_by_the_strict_kit(
        router: failover.Router, strict: FakeProviders, start: str) -> None:
    # The check has teeth: a signature the provider never gave is a 400.
    forged = Message("assistant", (failover.ReasoningPart("hm", signature="Zm9yZ2Vk",
                                                          origin=FAMILY[start]),
                                   failover.TextPart("ok")))
    strict[start].answer("never")
    with pytest.raises(failover.BadRequest, match="not a signature this provider gave"):
        router.complete([Message("user", "hi"), forged, Message("user", "and?")],
                        route=start, reasoning="low")
    assert strict[start].calls == 1
