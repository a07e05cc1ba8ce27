"""Streaming through the router: free failover before the first delta, the route's
`stream_interrupt` policy after it, and never a truncated answer presented as done."""

from __future__ import annotations

import json
from typing import Any

import pytest

import failover
import failover.testing
from failover.testing import FakeClock, FakeProviders

PROVIDERS = {
    "openai": {"type": "openai", "model": "gpt-4o-mini", "api_key": "sk-test-0123456789"},
    "claude": {"type": "anthropic", "model": "claude-haiku-4-5", "api_key": "sk-ant-0123456789"},
    "gemini": {"type": "gemini", "model": "gemini-2.5-flash", "api_key": "AIzaTest0123456789"},
}


def make_router(clock: FakeClock, chain: list[str], **route: Any) -> failover.Router:
    config = failover.Config.from_mapping({
        "providers": PROVIDERS,
        "routes": {"default": {"chain": chain, **route}},
    })
    return failover.Router(config, clock=clock)


def collect(events: Any) -> tuple[list[Any], failover.Response]:
    out = list(events)
    last = out[-1]
    assert isinstance(last, failover.Completed), out
    assert all(not isinstance(e, failover.Completed) for e in out[:-1])
    return out, last.response


async def acollect(events: Any) -> tuple[list[Any], failover.Response]:
    out = [e async for e in events]
    last = out[-1]
    assert isinstance(last, failover.Completed), out
    return out, last.response


def shown_text(events: list[Any]) -> str:
    """What a consumer that honours Restart would display at the end."""
    text = ""
    for event in events:
        if event.type == "restart":
            text = ""
        elif event.type == "text":
            text += event.text
    return text


@pytest.mark.parametrize("primary", ["openai", "claude", "gemini"])
def test_a_healthy_stream_has_text_usage_and_the_serving_model(
    clock: FakeClock, fake: FakeProviders, primary: str
) -> None:
    fake[primary].answer("Hello there, streaming world!")
    with make_router(clock, [primary]) as router:
        events, response = collect(router.stream("hi"))
    assert shown_text(events) == response.text == "Hello there, streaming world!"
    assert sum(1 for e in events if e.type == "text") > 1
    assert response.finish_reason == "stop" and response.provider == primary
    assert response.usage.output_tokens > 0
    assert response.model == PROVIDERS[primary]["model"]


def test_failure_before_the_first_delta_fails_over_for_free(
    clock: FakeClock, fake: FakeProviders
) -> None:
    fake["openai"].fail(503)
    fake["claude"].answer("from claude")
    with make_router(clock, ["openai", "claude"]) as router:
        events, response = collect(router.stream("hi"))
    assert not any(e.type == "restart" for e in events)
    assert response.text == "from claude" and response.provider == "claude"
    assert [a.error_kind for a in response.attempts] == ["Overloaded", None]


@pytest.mark.parametrize("fault", ["cut", "stall", "malformed"])
def test_a_broken_stream_restarts_on_the_next_provider(
    clock: FakeClock, fake: FakeProviders, fault: str
) -> None:
    {"cut": fake["openai"].cut_stream, "stall": fake["openai"].stall,
     "malformed": fake["openai"].malformed}[fault](after=2, text="partial answer that dies")
    fake["claude"].answer("the complete answer")
    with make_router(clock, ["openai", "claude"]) as router:
        events, response = collect(router.stream("hi"))
    restarts = [e for e in events if e.type == "restart"]
    assert len(restarts) == 1 and restarts[0].provider == "claude"
    assert "openai" in restarts[0].reason
    # Text was shown before the restart, and the final answer holds only the new one.
    assert any(e.type == "text" for e in events[: events.index(restarts[0])])
    assert response.text == "the complete answer" == shown_text(events)
    assert response.provider == "claude"
    # A chunk that does not parse keeps its kind: the provider's integration failed.
    expected = "InvalidResponse" if fault == "malformed" else "StreamInterrupted"
    assert response.attempts[0].error_kind == expected


async def test_a_cut_stream_restarts_async(clock: FakeClock, fake: FakeProviders) -> None:
    fake["openai"].cut_stream(after=2, text="partial answer that dies")
    fake["gemini"].answer("the complete answer")
    async with make_router(clock, ["openai", "gemini"]) as router:
        events, response = await acollect(router.astream("hi"))
    assert [e.type for e in events].count("restart") == 1
    assert response.text == "the complete answer" == shown_text(events)


def test_stream_interrupt_raise_keeps_the_partial_text(clock: FakeClock,
                                                       fake: FakeProviders) -> None:
    fake["openai"].cut_stream(after=2, text="partial answer that dies")
    fake["claude"].answer("never asked")
    with make_router(clock, ["openai", "claude"], stream_interrupt="raise") as router:
        seen: list[Any] = []
        with pytest.raises(failover.StreamInterrupted) as info:
            seen.extend(router.stream("hi"))
    assert info.value.partial_text
    assert "partial answer that dies".startswith(info.value.partial_text)
    assert fake["claude"].calls == 0
    assert not any(e.type == "completed" for e in seen)


def test_stream_interrupt_continue_prefills_a_provider_that_supports_it(
    clock: FakeClock, fake: FakeProviders
) -> None:
    fake["openai"].cut_stream(after=2, text="The answer is forty")
    fake["claude"].answer("-two.")
    with make_router(clock, ["openai", "claude"], stream_interrupt="continue") as router:
        events, response = collect(router.stream("hi"))
    assert not any(e.type == "restart" for e in events)
    assert response.text == shown_text(events)
    assert response.text.endswith("-two.") and len(response.text) > len("-two.")
    partial = response.text.removesuffix("-two.")
    assert "The answer is forty".startswith(partial)
    sent = fake["claude"].last_request.json["messages"]
    # Anthropic refuses a prefill that ends in white space; the adapter trims it.
    assert sent[-1]["role"] == "assistant" and sent[-1]["content"] == partial.rstrip()


def test_stream_interrupt_continue_restarts_where_prefill_is_unsupported(
    clock: FakeClock, fake: FakeProviders
) -> None:
    fake["openai"].cut_stream(after=2, text="The answer is forty")
    fake["gemini"].answer("The answer is forty-two.")
    with make_router(clock, ["openai", "gemini"], stream_interrupt="continue") as router:
        events, response = collect(router.stream("hi"))
    assert [e.type for e in events].count("restart") == 1
    assert response.text == "The answer is forty-two." == shown_text(events)


def test_a_stream_that_never_finishes_is_not_a_success(clock: FakeClock,
                                                      fake: FakeProviders) -> None:
    fake["openai"].cut_stream(after=3, text="a long answer that is cut before its end")
    with make_router(clock, ["openai"]) as router:
        with pytest.raises(failover.AllProvidersFailed) as info:
            list(router.stream("hi"))
    assert [a.error_kind for a in info.value.attempts] == ["StreamInterrupted"]


def test_all_failed_mid_stream_runs_the_fallback_as_a_stream(
    clock: FakeClock, fake: FakeProviders, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "stream_fallbacks.py"
    module.write_text("def canned(request, error):\n    return 'canned answer'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    fake["openai"].cut_stream(after=2, text="partial answer that dies")
    fake["claude"].fail(503)
    with make_router(clock, ["openai", "claude"],
                     fallback={"python": "stream_fallbacks:canned"}) as router:
        events, response = collect(router.stream("hi"))
    assert response.provider == "fallback" and response.text == "canned answer"
    assert shown_text(events) == "canned answer"
    assert events[-3].type == "restart"


def test_a_consumer_that_stops_reading_returns_the_probe_permit(
    clock: FakeClock, fake: FakeProviders
) -> None:
    config = failover.Config.from_mapping({
        "providers": PROVIDERS, "routes": {"default": {"chain": ["openai", "claude"]}},
        "defaults": {"breaker": {"half_open_probes": 1}},
    })
    fake["openai"].fail(503)
    fake["claude"].answer("claude")
    with failover.Router(config, clock=clock) as router:
        for _ in range(3):
            router.complete("hi")
        clock.advance(5)                       # half-open: one probe allowed
        fake["openai"].answer("a long answer from the recovered primary")
        events = router.stream("hi")
        first = next(events)
        assert first.type == "text"
        events.close()                         # the caller walked away mid-stream
        # The probe's permit came back: the next request may probe again.
        reply = router.complete("hi")
    assert reply.provider == "openai"
    assert fake["openai"].calls == 3 + 2


# --- a stream request answered with one whole JSON message -----------------------------

WHOLE_PROVIDERS = {**PROVIDERS, "sim": {"type": "fake", "model": "sim-model"}}


def whole_router(clock: FakeClock, primary: str) -> failover.Router:
    backup = "gemini" if primary != "gemini" else "openai"
    config = failover.Config.from_mapping({
        "providers": WHOLE_PROVIDERS,
        "routes": {"default": {"chain": [primary, backup]}},
    })
    return failover.Router(config, clock=clock)


async def stream_events(router: failover.Router, mode: str, **params: Any) -> list[Any]:
    if mode == "sync":
        return list(router.stream("weather?", **params))
    return [event async for event in router.astream("weather?", **params)]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("primary", ["openai", "claude", "gemini", "sim"])
async def test_a_whole_json_answer_to_a_stream_request_is_the_answer(
    clock: FakeClock, fake: FakeProviders, primary: str, mode: str
) -> None:
    # LiteLLM's proxy answers `stream: true` on its Anthropic endpoint like this.
    call = {"name": "get_weather", "arguments": {"city": "Oslo"}}
    fake[primary].answer("Let me look.", tool_calls=[call], stream=False)
    tools = [{"name": "get_weather", "description": "weather",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    with whole_router(clock, primary) as router:
        events = await stream_events(router, mode, tools=tools)
    assert fake[primary].last_request.json.get("stream") is True or primary == "gemini"
    assert [e.type for e in events] == ["text", "tool_call", "completed"]
    assert events[0].text == "Let me look."
    assert events[1].name == "get_weather" and json.loads(events[1].arguments) == {"city": "Oslo"}
    response = events[-1].response
    assert response.text == "Let me look." and response.finish_reason == "tool_calls"
    assert response.tool_calls[0].arguments == {"city": "Oslo"}
    assert response.provider == primary and response.usage.output_tokens > 0
    assert [a.outcome for a in response.attempts] == ["ok"]
    assert fake[primary].calls == 1


class _WholeBody(failover.testing.Behaviour):
    """A 200 with a JSON content type and the given body, whatever was asked."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def reply(self, call: Any) -> Any:
        from failover.testing._behaviours import Reply

        return Reply(status=200, headers={"content-type": "application/json"},
                     chunks=(self.body,))


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("primary", ["openai", "claude", "gemini", "sim"])
async def test_a_whole_body_that_does_not_parse_is_an_integration_failure(
    clock: FakeClock, fake: FakeProviders, primary: str, mode: str
) -> None:
    fake[primary].set(_WholeBody(b'{"choices": [{"message": tru'))
    backup = "gemini" if primary != "gemini" else "openai"
    fake[backup].answer("from the backup")
    with whole_router(clock, primary) as router:
        events = await stream_events(router, mode)
    response = events[-1].response
    assert response.provider == backup and response.text == "from the backup"
    assert response.attempts[0].error_kind == "InvalidResponse"
    assert fake[primary].calls == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(("primary", "body", "kind"), [
    ("openai", {"error": {"message": "overloaded", "type": "server_error",
                          "code": "overloaded"}}, "Overloaded"),
    ("claude", {"type": "error", "error": {"type": "overloaded_error",
                                           "message": "Overloaded"}}, "Overloaded"),
    ("claude", {"type": "error", "error": {"type": "rate_limit_error",
                                           "message": "slow down"}}, "RateLimited"),
])
async def test_a_whole_error_body_with_a_200_keeps_its_kind(
    clock: FakeClock, fake: FakeProviders, primary: str, body: Any, kind: str, mode: str
) -> None:
    fake[primary].set(_WholeBody(json.dumps(body).encode()))
    fake["gemini"].answer("from the backup")
    with whole_router(clock, primary) as router:
        events = await stream_events(router, mode)
    response = events[-1].response
    assert response.provider == "gemini"
    assert {a.error_kind for a in response.attempts if a.outcome == "error"} == {kind}
