"""`failover` through LiteLLM's proxy: its OpenAI endpoint (``/v1/chat/completions``) and
its Anthropic-compatible endpoint (``/v1/messages``), sync and async, completion and
stream, tools, failover from a dead provider to the proxy, and the proxy's own error
answers, each mapped to one error kind."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import failover

from ._litellm import ANSWER, MASTER_KEY, Proxy, free_port

ENDPOINTS = ["openai", "anthropic"]
MODES = ["sync", "async"]
TOOLS = [{"name": "get_weather", "description": "The weather in a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                         "required": ["city"]}}]


def _provider(proxy: Proxy, endpoint: str, model: str, key: str = MASTER_KEY) -> dict[str, Any]:
    if endpoint == "openai":
        return {"type": "openai", "model": model, "base_url": f"{proxy.url}/v1", "api_key": key}
    return {"type": "anthropic", "model": model, "base_url": proxy.url, "api_key": key}


@pytest.fixture
def router(proxy: Proxy) -> Iterator[failover.Router]:
    providers: dict[str, Any] = {
        "dead": {"type": "openai", "model": "gpt-4o-mini", "api_key": "sk-dead-0123456789",
                 "base_url": f"http://127.0.0.1:{free_port()}/v1"},
    }
    routes: dict[str, Any] = {}
    cases = {"chat": "mock-chat", "tools": "mock-tools", "ratelimit": "mock-ratelimit",
             "down": "mock-down", "unknown": "no-such-model"}
    for endpoint in ENDPOINTS:
        for case, model in cases.items():
            name = f"{endpoint}-{case}"
            providers[name] = _provider(proxy, endpoint, model)
            routes[name] = {"chain": [name]}
        providers[f"{endpoint}-badkey"] = _provider(proxy, endpoint, "mock-chat",
                                                    key="sk-not-a-proxy-key-0123")
        routes[f"{endpoint}-badkey"] = {"chain": [f"{endpoint}-badkey"]}
        routes[f"{endpoint}-failover"] = {"chain": ["dead", f"{endpoint}-chat"]}
    config = failover.Config.from_mapping({
        "providers": providers, "routes": routes,
        "defaults": {"retry": {"backoff": "10ms", "max_backoff": "20ms"},
                     "timeouts": {"request": "20s", "first_token": "20s", "stall": "20s"}},
    })
    with failover.Router(config) as built:
        yield built


async def complete(router: failover.Router, mode: str, route: str, **params: Any
                   ) -> failover.Response:
    if mode == "sync":
        return router.complete("Say hello.", route=route, **params)
    return await router.acomplete("Say hello.", route=route, **params)


async def stream(router: failover.Router, mode: str, route: str, **params: Any) -> list[Any]:
    if mode == "sync":
        return list(router.stream("Say hello.", route=route, **params))
    return [event async for event in router.astream("Say hello.", route=route, **params)]


def test_the_proxy_is_the_pinned_version(proxy: Proxy) -> None:
    assert proxy.version.startswith("1.108.")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_completion(router: failover.Router, endpoint: str, mode: str) -> None:
    reply = await complete(router, mode, f"{endpoint}-chat", max_tokens=50)
    assert reply.text == ANSWER and reply.finish_reason == "stop"
    assert reply.provider == f"{endpoint}-chat" and reply.model == "mock-chat"
    assert reply.usage.output_tokens > 0
    assert [a.outcome for a in reply.attempts] == ["ok"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_stream(router: failover.Router, endpoint: str, mode: str) -> None:
    # The Anthropic endpoint answers `stream: true` with one whole JSON message.
    events = await stream(router, mode, f"{endpoint}-chat", max_tokens=50)
    assert events[-1].type == "completed"
    text = "".join(e.text for e in events if e.type == "text")
    response = events[-1].response
    assert text == response.text == ANSWER and response.finish_reason == "stop"
    assert [a.outcome for a in response.attempts] == ["ok"]


@pytest.mark.parametrize("mode", MODES)
async def test_tool_calls_on_the_openai_endpoint(router: failover.Router, mode: str) -> None:
    reply = await complete(router, mode, "openai-tools", tools=TOOLS)
    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("call_1", "get_weather", {"city": "Oslo"})]
    assert reply.finish_reason == "tool_calls"


@pytest.mark.parametrize("mode", MODES)
async def test_a_streamed_request_with_tools_on_the_openai_endpoint(
    router: failover.Router, mode: str
) -> None:
    # Quirk of the proxy's mock (1.108): a streamed mock answer drops its tool calls and
    # the usage chunk; it finishes with `stop`. The stream is still whole, and served once.
    events = await stream(router, mode, "openai-tools", tools=TOOLS)
    response = events[-1].response
    assert response.finish_reason == "stop"
    assert [a.outcome for a in response.attempts] == ["ok"]


@pytest.mark.parametrize("mode", MODES)
async def test_a_request_with_tools_on_the_anthropic_endpoint(
    router: failover.Router, mode: str
) -> None:
    # The proxy's mock tool calls exist only on its OpenAI endpoint; the Anthropic one
    # still has to accept a request that carries tools and answer it.
    reply = await complete(router, mode, "anthropic-chat", tools=TOOLS)
    assert reply.text == ANSWER


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_failover_from_a_dead_provider_to_the_proxy(
    router: failover.Router, endpoint: str, mode: str
) -> None:
    reply = await complete(router, mode, f"{endpoint}-failover")
    assert reply.provider == f"{endpoint}-chat" and reply.text == ANSWER
    assert reply.attempts[0].provider == "dead"
    assert reply.attempts[0].error_kind == "ConnectionFailed"
    events = await stream(router, mode, f"{endpoint}-failover")
    assert events[-1].response.provider == f"{endpoint}-chat"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(("case", "kind", "status"), [
    ("ratelimit", "RateLimited", 429),
    ("down", "ServerError", 500),
    # The proxy answers a model it does not serve with a 400 "Invalid model name":
    # another provider may serve it, so it fails over like a 404.
    ("unknown", "ModelNotFound", 400),
    # A key the proxy cannot check (no database behind it) is a 400 "No connected db.":
    # the key was not accepted, so it fails over and alerts like a revoked key.
    ("badkey", "AuthenticationFailed", 400),
])
@pytest.mark.parametrize("call", ["complete", "stream"])
async def test_the_proxys_error_answers_map_to_one_kind(
    router: failover.Router, endpoint: str, mode: str, case: str, kind: str, status: int,
    call: str,
) -> None:
    route = f"{endpoint}-{case}"
    router.reset(route)
    send = complete if call == "complete" else stream
    with pytest.raises(failover.AllProvidersFailed) as caught:
        await send(router, mode, route)
    attempts = caught.value.attempts
    assert {a.error_kind for a in attempts} == {kind}
    assert {a.http_status for a in attempts} == {status}
    assert MASTER_KEY not in str(caught.value)
