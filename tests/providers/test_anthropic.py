"""The Anthropic adapter, driven through the real SDK with respx behind the httpx2 seam.

Every test runs sync and async; failures are checked for exactly one kind, its status and
retry_after, one HTTP request per call (the SDK's retries are off), and no key in the
message.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import respx

import failover
from failover import (
    AuthenticationFailed,
    BadRequest,
    Completed,
    ConnectionFailed,
    ContentFiltered,
    ContextWindowExceeded,
    ImagePart,
    InvalidResponse,
    Message,
    ModelNotFound,
    Overloaded,
    PermissionDenied,
    ProviderError,
    RateLimited,
    Request,
    Response,
    ServerError,
    StreamEvent,
    StreamInterrupted,
    TextDelta,
    TextPart,
    Timeout,
    ToolCall,
    ToolCallDelta,
)
from failover._config import ProviderConfig, TimeoutsConfig
from failover._models import build_request
from failover.providers import build_adapter
from failover.providers._base import ProviderAdapter, override_transport
from failover.testing import FakeClock, RespxTransport

URL = "https://api.anthropic.com/v1/messages"
KEY = "sk-ant-test-0123456789abcdef"
MODEL = "claude-haiku-4-5"
SERVED = "claude-haiku-4-5-20251001"

MODES = ["sync", "async"]


# --- helpers ----------------------------------------------------------------------------


@pytest.fixture
async def adapter() -> AsyncIterator[ProviderAdapter]:
    built = build_adapter(
        "claude", ProviderConfig(type="anthropic", model=MODEL, api_key=KEY), TimeoutsConfig()
    )
    yield built
    await built.aclose()


@pytest.fixture
def mock() -> respx.Router:
    return respx.Router(assert_all_called=False)


async def complete(
    adapter: ProviderAdapter, mock: respx.Router, request: Request, mode: str
) -> Response:
    with override_transport(RespxTransport(mock)):
        if mode == "sync":
            return adapter.complete(request)
        return await adapter.acomplete(request)


async def stream(
    adapter: ProviderAdapter, mock: respx.Router, request: Request, mode: str
) -> list[StreamEvent]:
    with override_transport(RespxTransport(mock)):
        if mode == "sync":
            return list(adapter.stream(request))
        return [event async for event in adapter.astream(request)]


async def fails(
    adapter: ProviderAdapter, mock: respx.Router, request: Request, mode: str, *, streaming: bool
) -> ProviderError:
    run = stream if streaming else complete
    with pytest.raises(ProviderError) as info:
        await run(adapter, mock, request, mode)
    err = info.value
    assert KEY not in str(err)
    assert KEY not in repr(err)
    assert err.provider == "claude"
    return err


def message_body(
    content: list[dict[str, Any]] | None = None,
    *,
    stop_reason: str | None = "end_turn",
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": SERVED,
        "content": content if content is not None else [{"type": "text", "text": "Hello!"}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage or {"input_tokens": 12, "output_tokens": 4},
    }


def error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message},
            "request_id": "req_01"}


def sse(*events: tuple[str, dict[str, Any] | str]) -> bytes:
    """Anthropic's SSE framing: an ``event:`` line and a ``data:`` line per event."""
    out = []
    for name, data in events:
        payload = data if isinstance(data, str) else json.dumps(data)
        out.append(f"event: {name}\ndata: {payload}\n\n")
    return "".join(out).encode()


def message_start(input_tokens: int = 25) -> tuple[str, dict[str, Any]]:
    return ("message_start", {"type": "message_start", "message": {
        "id": "msg_01", "type": "message", "role": "assistant", "model": SERVED,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1}}})


def text_start(index: int = 0) -> tuple[str, dict[str, Any]]:
    return ("content_block_start", {"type": "content_block_start", "index": index,
                                    "content_block": {"type": "text", "text": ""}})


def text_delta(text: str, index: int = 0) -> tuple[str, dict[str, Any]]:
    return ("content_block_delta", {"type": "content_block_delta", "index": index,
                                    "delta": {"type": "text_delta", "text": text}})


def block_stop(index: int = 0) -> tuple[str, dict[str, Any]]:
    return ("content_block_stop", {"type": "content_block_stop", "index": index})


def tool_start(index: int, tool_id: str, name: str) -> tuple[str, dict[str, Any]]:
    return ("content_block_start", {"type": "content_block_start", "index": index,
                                    "content_block": {"type": "tool_use", "id": tool_id,
                                                      "name": name, "input": {}}})


def json_delta(index: int, fragment: str) -> tuple[str, dict[str, Any]]:
    return ("content_block_delta", {"type": "content_block_delta", "index": index,
                                    "delta": {"type": "input_json_delta",
                                              "partial_json": fragment}})


def message_delta(stop_reason: str = "end_turn", output_tokens: int = 9
                  ) -> tuple[str, dict[str, Any]]:
    return ("message_delta", {"type": "message_delta",
                              "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                              "usage": {"output_tokens": output_tokens}})


PING: tuple[str, dict[str, Any]] = ("ping", {"type": "ping"})
MESSAGE_STOP: tuple[str, dict[str, Any]] = ("message_stop", {"type": "message_stop"})
SSE_HEADERS = {"content-type": "text/event-stream"}


def hello_stream() -> bytes:
    return sse(message_start(), text_start(), PING, text_delta("Hel"), text_delta("lo!"),
               block_stop(), message_delta(), MESSAGE_STOP)


def streaming_response(chunks: Callable[[], Iterator[bytes]]) -> Callable[[httpx.Request],
                                                                           httpx.Response]:
    """A fresh generator body per request (a body may raise part-way, like a socket)."""
    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=SSE_HEADERS, content=chunks())
    return respond


def sent(route: respx.Route) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(route.calls.last.request.content)
    return body


def hi() -> Request:
    return build_request("hi")


# --- success ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_text_answer(adapter: ProviderAdapter, mock: respx.Router, mode: str) -> None:
    route = mock.post(URL).respond(200, json=message_body(
        [{"type": "text", "text": "Hello"}, {"type": "text", "text": " world"}],
        usage={"input_tokens": 12, "output_tokens": 4, "cache_read_input_tokens": 100}))

    reply = await complete(adapter, mock, build_request("hi", system="Be brief."), mode)

    assert reply.text == "Hello world"
    assert reply.finish_reason == "stop"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (112, 4)
    assert reply.model == SERVED
    assert reply.provider == "claude"
    assert reply.raw.id == "msg_01"
    assert route.call_count == 1
    request = route.calls.last.request
    # the sync path really runs the sync client, the async path the async one
    assert (request.headers["x-stainless-async"] == "false") == (mode == "sync")
    assert request.headers["anthropic-version"]
    assert KEY in request.headers.get("authorization", "") + request.headers.get("x-api-key", "")
    body = sent(route)
    assert body["model"] == MODEL
    assert body["system"] == "Be brief."
    assert body["max_tokens"] == 4096
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert "stop_sequences" not in body
    assert "tools" not in body


@pytest.mark.parametrize("mode", MODES)
async def test_tool_use_answer(adapter: ProviderAdapter, mock: respx.Router, mode: str) -> None:
    route = mock.post(URL).respond(200, json=message_body([
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
    ], stop_reason="tool_use"))
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]

    reply = await complete(adapter, mock, build_request(
        "weather in Oslo?", tools=tools, tool_choice="required", stop=["END"], max_tokens=300,
        temperature=0.2), mode)

    assert reply.finish_reason == "tool_calls"
    assert reply.text == "Let me look."
    assert reply.tool_calls == (ToolCall("toolu_1", "get_weather", {"city": "Oslo"}),)
    body = sent(route)
    assert body["tools"] == [{"name": "get_weather", "description": "Weather for a city",
                              "input_schema": {"type": "object",
                                               "properties": {"city": {"type": "string"}}}}]
    assert body["tool_choice"] == {"type": "any"}
    assert body["stop_sequences"] == ["END"]
    assert body["max_tokens"] == 300
    assert body["temperature"] == 0.2
    assert route.call_count == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("choice", "wire"), [
    ("auto", {"type": "auto"}),
    ("none", {"type": "none"}),
    ({"type": "function", "function": {"name": "lookup"}}, {"type": "tool", "name": "lookup"}),
])
async def test_tool_choice(adapter: ProviderAdapter, mock: respx.Router, mode: str,
                           choice: Any, wire: dict[str, str]) -> None:
    route = mock.post(URL).respond(200, json=message_body())
    await complete(adapter, mock, build_request("x", tools=[{"name": "lookup"}],
                                                tool_choice=choice), mode)
    assert sent(route)["tool_choice"] == wire


@pytest.mark.parametrize("mode", MODES)
async def test_conversation_translation(adapter: ProviderAdapter, mock: respx.Router,
                                        mode: str) -> None:
    route = mock.post(URL).respond(200, json=message_body())
    png = b"\x89PNG fake"
    messages: list[Message | dict[str, Any]] = [
        {"role": "system", "content": "sys"},
        Message("user", (TextPart("what is this?"), ImagePart(data=png, media_type="image/png"),
                         ImagePart(url="https://example.test/cat.jpg"))),
        Message("assistant", "Checking.", tool_calls=(
            ToolCall("toolu_a", "look", {"q": 1}), ToolCall("toolu_b", "look", {"q": 2}))),
        Message("tool", "result a", tool_call_id="toolu_a"),
        Message("tool", "result b", tool_call_id="toolu_b"),
        Message("user", "and now?"),
    ]

    await complete(adapter, mock, build_request(messages), mode)

    body = sent(route)
    assert body["system"] == "sys"
    assert body["messages"] == [
        {"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": base64.b64encode(png).decode()}},
            {"type": "image", "source": {"type": "url", "url": "https://example.test/cat.jpg"}},
        ]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_a", "name": "look", "input": {"q": 1}},
            {"type": "tool_use", "id": "toolu_b", "name": "look", "input": {"q": 2}},
        ]},
        # consecutive tool results merge into one user turn, with the next user text after
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_a", "content": "result a"},
            {"type": "tool_result", "tool_use_id": "toolu_b", "content": "result b"},
            {"type": "text", "text": "and now?"},
        ]},
    ]


@pytest.mark.parametrize("mode", MODES)
async def test_tool_results_lead_their_user_turn(adapter: ProviderAdapter, mock: respx.Router,
                                                 mode: str) -> None:
    route = mock.post(URL).respond(200, json=message_body())
    messages = [
        Message("user", "go"),
        Message("assistant", "", tool_calls=(ToolCall("toolu_a", "look", {}),)),
        Message("user", "(the tool was slow)"),
        Message("tool", "done", tool_call_id="toolu_a"),
    ]
    await complete(adapter, mock, build_request(messages), mode)
    assert sent(route)["messages"][1:] == [
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_a", "name": "look", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_a", "content": "done"},
            {"type": "text", "text": "(the tool was slow)"}]},
    ]


@pytest.mark.parametrize("mode", MODES)
async def test_data_url_image_and_config_extra(mock: respx.Router, mode: str) -> None:
    built = build_adapter("claude", ProviderConfig(
        type="anthropic", model=MODEL, api_key=KEY, base_url="https://proxy.test",
        headers={"x-team": "ops"}, extra={"service_tier": "standard_only"}), TimeoutsConfig())
    route = mock.post("https://proxy.test/v1/messages").respond(200, json=message_body())
    url = "data:image/webp;base64," + base64.b64encode(b"webp").decode()
    try:
        await complete(built, mock, build_request([{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}]}]), mode)
    finally:
        await built.aclose()
    body = sent(route)
    assert body["messages"][0]["content"] == [{"type": "image", "source": {
        "type": "base64", "media_type": "image/webp", "data": base64.b64encode(b"webp").decode()}}]
    assert body["service_tier"] == "standard_only"
    assert route.calls.last.request.headers["x-team"] == "ops"


@pytest.mark.parametrize("mode", MODES)
async def test_keyless_local_server_gets_no_key(mock: respx.Router, mode: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # Neither refused by the SDK nor handed a key it found in the environment.
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-the-environment")
    built = build_adapter("local", ProviderConfig(
        type="anthropic", model="local-model", api_key="none", base_url="http://127.0.0.1:8080"),
        TimeoutsConfig())
    route = mock.post("http://127.0.0.1:8080/v1/messages").respond(200, json=message_body())
    try:
        # a large max_tokens with no streaming: the SDK would refuse it without a timeout
        reply = await complete(built, mock, build_request("hi", max_tokens=64_000), mode)
    finally:
        await built.aclose()
    assert reply.text == "Hello!"
    headers = route.calls.last.request.headers
    assert "authorization" not in headers
    assert "x-api-key" not in headers


@pytest.mark.parametrize("mode", MODES)
async def test_temperature_wins_over_top_p(adapter: ProviderAdapter, mock: respx.Router,
                                           mode: str) -> None:
    # Current Claude models refuse both at once.
    route = mock.post(URL).respond(200, json=message_body())
    await complete(adapter, mock, build_request("x", temperature=0.3, top_p=0.9), mode)
    assert sent(route)["temperature"] == 0.3
    assert "top_p" not in sent(route)
    await complete(adapter, mock, build_request("x", top_p=0.9), mode)
    assert sent(route)["top_p"] == 0.9
    assert "temperature" not in sent(route)


@pytest.mark.parametrize("mode", MODES)
async def test_json_schema_uses_native_structured_output(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    route = mock.post(URL).respond(200, json=message_body([{"type": "text", "text": '{"n": 3}'}]))
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}

    reply = await complete(adapter, mock, build_request("count", response_format={
        "type": "json_schema", "json_schema": {"name": "count", "schema": schema}}), mode)

    assert json.loads(reply.text) == {"n": 3}
    fmt = sent(route)["output_config"]["format"]
    assert fmt["type"] == "json_schema"
    assert fmt["schema"]["properties"] == {"n": {"type": "integer"}}
    assert fmt["schema"]["additionalProperties"] is False
    assert "tools" not in sent(route)


@pytest.mark.parametrize("mode", MODES)
async def test_json_mode_is_emulated_with_a_forced_tool(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    route = mock.post(URL).respond(200, json=message_body([{
        "type": "tool_use", "id": "toolu_j", "name": "failover_json_response",
        "input": {"answer": 42}}], stop_reason="tool_use"))

    reply = await complete(adapter, mock, build_request(
        "json please", response_format={"type": "json_object"}), mode)

    assert json.loads(reply.text) == {"answer": 42}
    assert reply.tool_calls == ()
    assert reply.finish_reason == "stop"
    body = sent(route)
    assert body["tool_choice"] == {"type": "tool", "name": "failover_json_response"}
    assert [t["name"] for t in body["tools"]] == ["failover_json_response"]


@pytest.mark.parametrize("mode", MODES)
async def test_prefill_returns_the_continuation_only(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    assert adapter.capabilities.prefill is True
    route = mock.post(URL).respond(200, json=message_body([{"type": "text", "text": " 42."}]))
    request = dataclasses.replace(build_request("the answer?"), prefill="The answer is ")

    reply = await complete(adapter, mock, request, mode)

    # The API refuses trailing whitespace in the prefill; the cut space is not repeated.
    assert reply.text == "42."
    assert sent(route)["messages"][-1] == {"role": "assistant", "content": "The answer is"}


@pytest.mark.parametrize("mode", MODES)
async def test_max_tokens_is_length(adapter: ProviderAdapter, mock: respx.Router,
                                    mode: str) -> None:
    mock.post(URL).respond(200, json=message_body(stop_reason="max_tokens"))
    assert (await complete(adapter, mock, hi(), mode)).finish_reason == "length"


# --- 200s that are not answers --------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("stop_reason", "kind"), [
    ("refusal", ContentFiltered),
    ("model_context_window_exceeded", ContextWindowExceeded),
])
async def test_200_refusal_and_window(adapter: ProviderAdapter, mock: respx.Router, mode: str,
                                      stop_reason: str, kind: type[ProviderError]) -> None:
    route = mock.post(URL).respond(200, json=message_body(stop_reason=stop_reason))
    err = await fails(adapter, mock, hi(), mode, streaming=False)
    assert type(err) is kind
    assert err.code == stop_reason
    assert route.call_count == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("stop_reason", "kind"), [
    ("refusal", ContentFiltered),
    ("model_context_window_exceeded", ContextWindowExceeded),
])
async def test_streamed_refusal_before_text(adapter: ProviderAdapter, mock: respx.Router,
                                            mode: str, stop_reason: str,
                                            kind: type[ProviderError]) -> None:
    mock.post(URL).respond(200, headers=SSE_HEADERS, content=sse(
        message_start(), message_delta(stop_reason), MESSAGE_STOP))
    err = await fails(adapter, mock, hi(), mode, streaming=True)
    assert type(err) is kind


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("stop_reason", "kind"), [
    ("refusal", ContentFiltered),
    ("model_context_window_exceeded", ContextWindowExceeded),
])
async def test_streamed_refusal_after_text_keeps_its_kind(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, stop_reason: str,
    kind: type[ProviderError],
) -> None:
    # An answer about the request, not a broken stream: never a success, never a restart.
    route = mock.post(URL).respond(200, headers=SSE_HEADERS, content=sse(
        message_start(), text_start(), text_delta("Here is how to"), message_delta(stop_reason),
        MESSAGE_STOP))
    err = await fails(adapter, mock, hi(), mode, streaming=True)
    assert type(err) is kind
    assert err.code == stop_reason
    assert route.call_count == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("body", [
    b"this is not json{",
    json.dumps({"unexpected": "shape"}).encode(),
    json.dumps(message_body(stop_reason="brand_new_reason")).encode(),
])
async def test_malformed_body(adapter: ProviderAdapter, mock: respx.Router, mode: str,
                              body: bytes) -> None:
    route = mock.post(URL).respond(200, headers={"content-type": "application/json"},
                                   content=body)
    err = await fails(adapter, mock, hi(), mode, streaming=False)
    assert type(err) is InvalidResponse
    assert route.call_count == 1


# --- HTTP errors ------------------------------------------------------------------------

STATUS_CASES: list[tuple[int, str, str, type[ProviderError]]] = [
    (400, "invalid_request_error", "messages: field required", BadRequest),
    (400, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum",
     ContextWindowExceeded),
    (401, "authentication_error", f"invalid x-api-key {KEY}", AuthenticationFailed),
    (403, "permission_error", "not allowed", PermissionDenied),
    (404, "not_found_error", "model: claude-nope", ModelNotFound),
    (408, "timeout_error", "request timed out", Timeout),
    (409, "conflict_error", "conflict", ServerError),
    (413, "request_too_large", "request exceeds the maximum size", ContextWindowExceeded),
    (422, "invalid_request_error", "unprocessable", BadRequest),
    (500, "api_error", "Internal server error", ServerError),
    (502, "api_error", "Bad gateway", ServerError),
    (503, "api_error", "Service unavailable", Overloaded),
    (504, "api_error", "Gateway timeout", ServerError),
    (529, "overloaded_error", "Overloaded", Overloaded),
    # LiteLLM's proxy on its Anthropic endpoint: a model it does not serve.
    (400, "invalid_request_error", "anthropic_messages: Invalid model name passed in "
     "model=nope. Call `/v1/models` to view available models for your key.", ModelNotFound),
]


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("status", "error_type", "message", "kind"), STATUS_CASES,
                         ids=[f"{c[0]}-{c[3].__name__}" for c in STATUS_CASES])
async def test_status_errors(adapter: ProviderAdapter, mock: respx.Router, mode: str,
                             streaming: bool, status: int, error_type: str, message: str,
                             kind: type[ProviderError]) -> None:
    route = mock.post(URL).respond(status, json=error_body(error_type, message))
    err = await fails(adapter, mock, hi(), mode, streaming=streaming)
    assert type(err) is kind
    assert err.status == status
    assert err.code == error_type
    assert err.retry_after is None
    assert route.call_count == 1


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("headers", "retry_after"), [
    ({"retry-after": "7"}, 7.0),
    ({"retry-after-ms": "1500", "retry-after": "2"}, 1.5),
    ({}, None),
], ids=["retry-after", "retry-after-ms", "none"])
async def test_rate_limited(adapter: ProviderAdapter, mock: respx.Router, mode: str,
                            streaming: bool, headers: dict[str, str],
                            retry_after: float | None) -> None:
    route = mock.post(URL).respond(429, headers=headers,
                                   json=error_body("rate_limit_error", "slow down"))
    err = await fails(adapter, mock, hi(), mode, streaming=streaming)
    assert type(err) is RateLimited
    assert err.status == 429
    assert err.retry_after == retry_after
    assert route.call_count == 1


@pytest.mark.parametrize("mode", MODES)
async def test_billing_error_is_permission_denied(adapter: ProviderAdapter, mock: respx.Router,
                                                  mode: str) -> None:
    mock.post(URL).respond(402, json=error_body("billing_error", "credit balance too low"))
    err = await fails(adapter, mock, hi(), mode, streaming=False)
    assert type(err) is PermissionDenied
    assert err.status == 402


# --- transport faults -------------------------------------------------------------------

TRANSPORT_CASES: list[tuple[type[Exception], type[ProviderError]]] = [
    (httpx.ConnectError, ConnectionFailed),
    (httpx.ReadError, ConnectionFailed),
    (httpx.RemoteProtocolError, ConnectionFailed),
    (httpx.ReadTimeout, Timeout),
    (httpx.ConnectTimeout, Timeout),
]


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("fault", "kind"), TRANSPORT_CASES,
                         ids=[c[0].__name__ for c in TRANSPORT_CASES])
async def test_transport_faults(adapter: ProviderAdapter, mock: respx.Router, mode: str,
                                streaming: bool, fault: type[Exception],
                                kind: type[ProviderError]) -> None:
    route = mock.post(URL).mock(side_effect=fault("boom"))
    err = await fails(adapter, mock, hi(), mode, streaming=streaming)
    assert type(err) is kind
    assert err.status is None
    assert route.call_count == 1


# --- streams ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_stream_text(adapter: ProviderAdapter, mock: respx.Router, mode: str) -> None:
    route = mock.post(URL).respond(200, headers=SSE_HEADERS, content=hello_stream())

    events = await stream(adapter, mock, build_request("hi", system="sys"), mode)

    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hel", "lo!"]
    assert isinstance(events[-1], Completed)
    reply = events[-1].response
    assert reply.text == "Hello!"
    assert reply.finish_reason == "stop"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (25, 9)
    assert reply.model == SERVED
    assert reply.provider == "claude"
    body = sent(route)
    assert body["stream"] is True
    assert body["system"] == "sys"
    assert body["max_tokens"] == 4096
    assert route.call_count == 1


@pytest.mark.parametrize("mode", MODES)
async def test_stream_tool_calls(adapter: ProviderAdapter, mock: respx.Router, mode: str) -> None:
    mock.post(URL).respond(200, headers=SSE_HEADERS, content=sse(
        message_start(), text_start(0), text_delta("Looking."), block_stop(0),
        tool_start(1, "toolu_1", "get_weather"), json_delta(1, '{"ci'), PING,
        json_delta(1, 'ty": "Oslo"}'), block_stop(1),
        tool_start(2, "toolu_2", "get_time"), json_delta(2, "{}"), block_stop(2),
        message_delta("tool_use", 30), MESSAGE_STOP))

    events = await stream(adapter, mock, build_request("x", tools=[{"name": "get_weather"}]),
                          mode)

    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert deltas[0] == ToolCallDelta(index=0, id="toolu_1", name="get_weather")
    assert [d.arguments for d in deltas if d.index == 0] == ["", '{"ci', 'ty": "Oslo"}']
    assert deltas[-1].index == 1
    reply = events[-1].response  # type: ignore[union-attr]
    assert reply.finish_reason == "tool_calls"
    assert reply.text == "Looking."
    assert reply.tool_calls == (ToolCall("toolu_1", "get_weather", {"city": "Oslo"}),
                                ToolCall("toolu_2", "get_time", {}))
    assert reply.usage.output_tokens == 30


@pytest.mark.parametrize("mode", MODES)
async def test_stream_json_mode(adapter: ProviderAdapter, mock: respx.Router, mode: str) -> None:
    mock.post(URL).respond(200, headers=SSE_HEADERS, content=sse(
        message_start(), tool_start(0, "toolu_j", "failover_json_response"),
        json_delta(0, '{"a"'), json_delta(0, ": 1}"), block_stop(0),
        message_delta("tool_use"), MESSAGE_STOP))

    events = await stream(adapter, mock, build_request(
        "x", response_format={"type": "json_object"}), mode)

    reply = events[-1].response  # type: ignore[union-attr]
    assert json.loads(reply.text) == {"a": 1}
    assert reply.tool_calls == ()
    assert reply.finish_reason == "stop"


@pytest.mark.parametrize("mode", MODES)
async def test_stream_prefill(adapter: ProviderAdapter, mock: respx.Router, mode: str) -> None:
    route = mock.post(URL).respond(200, headers=SSE_HEADERS, content=sse(
        message_start(), text_start(), text_delta("\n"), text_delta("\nSecond part."),
        message_delta(), MESSAGE_STOP))
    request = dataclasses.replace(hi(), prefill="First part.\n\n")

    events = await stream(adapter, mock, request, mode)

    assert events[-1].response.text == "Second part."  # type: ignore[union-attr]
    assert sent(route)["messages"][-1] == {"role": "assistant", "content": "First part."}


@pytest.mark.parametrize("mode", MODES)
async def test_stream_completes_at_message_stop(adapter: ProviderAdapter, mock: respx.Router,
                                                mode: str) -> None:
    # Anything after message_stop is never read: the stream is over.
    def chunks() -> Iterator[bytes]:
        yield hello_stream()
        raise httpx.ReadError("connection closed after the end")

    mock.post(URL).mock(side_effect=streaming_response(chunks))
    events = await stream(adapter, mock, hi(), mode)
    assert events[-1].response.text == "Hello!"  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", MODES)
async def test_stream_without_message_stop_completes(adapter: ProviderAdapter,
                                                     mock: respx.Router, mode: str) -> None:
    mock.post(URL).respond(200, headers=SSE_HEADERS, content=sse(
        message_start(), text_start(), text_delta("ok"), message_delta()))
    events = await stream(adapter, mock, hi(), mode)
    assert events[-1].response.text == "ok"  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fault", [httpx.ReadError, httpx.RemoteProtocolError])
async def test_cut_stream(adapter: ProviderAdapter, mock: respx.Router, mode: str,
                          fault: type[Exception]) -> None:
    def chunks() -> Iterator[bytes]:
        yield sse(message_start(), text_start(), text_delta("Partial "), text_delta("answer"))
        raise fault("peer closed connection")

    route = mock.post(URL).mock(side_effect=streaming_response(chunks))
    err = await fails(adapter, mock, hi(), mode, streaming=True)
    assert type(err) is StreamInterrupted
    assert err.partial_text == "Partial answer"
    assert route.call_count == 1


@pytest.mark.parametrize("mode", MODES)
async def test_cut_before_any_text_is_connection_failed(adapter: ProviderAdapter,
                                                        mock: respx.Router, mode: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield sse(message_start(), PING)
        raise httpx.ReadError("peer closed connection")

    mock.post(URL).mock(side_effect=streaming_response(chunks))
    err = await fails(adapter, mock, hi(), mode, streaming=True)
    assert type(err) is ConnectionFailed


@pytest.mark.parametrize("mode", MODES)
async def test_stalled_stream(adapter: ProviderAdapter, mock: respx.Router, mode: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield sse(message_start(), text_start(), text_delta("So far"))
        raise httpx.ReadTimeout("no bytes for a while")

    route = mock.post(URL).mock(side_effect=streaming_response(chunks))
    err = await fails(adapter, mock, hi(), mode, streaming=True)
    assert type(err) is StreamInterrupted
    assert err.partial_text == "So far"
    assert err.code == "Timeout"
    assert route.call_count == 1


@pytest.mark.parametrize("mode", MODES)
async def test_stall_before_first_token_is_timeout(adapter: ProviderAdapter,
                                                   mock: respx.Router, mode: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield sse(message_start())
        raise httpx.ReadTimeout("no bytes for a while")

    mock.post(URL).mock(side_effect=streaming_response(chunks))
    err = await fails(adapter, mock, hi(), mode, streaming=True)
    assert type(err) is Timeout


@pytest.mark.parametrize("mode", MODES)
async def test_stream_ends_without_stop_reason(adapter: ProviderAdapter, mock: respx.Router,
                                               mode: str) -> None:
    route = mock.post(URL).respond(200, headers=SSE_HEADERS, content=sse(
        message_start(), text_start(), text_delta("Half an"), block_stop(), MESSAGE_STOP))
    err = await fails(adapter, mock, hi(), mode, streaming=True)
    assert type(err) is StreamInterrupted
    assert err.partial_text == "Half an"
    assert route.call_count == 1


@pytest.mark.parametrize("mode", MODES)
async def test_malformed_sse_data(adapter: ProviderAdapter, mock: respx.Router,
                                  mode: str) -> None:
    mock.post(URL).respond(200, headers=SSE_HEADERS, content=sse(
        message_start(), text_start(), text_delta("Good "),
        ("content_block_delta", "{this is not json"), message_delta(), MESSAGE_STOP))
    err = await fails(adapter, mock, hi(), mode, streaming=True)
    # A chunk that does not parse is an integration failure, with what came before it.
    assert type(err) is InvalidResponse
    assert err.partial_text == "Good "


@pytest.mark.parametrize("mode", MODES)
async def test_malformed_sse_before_text_is_invalid_response(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    mock.post(URL).respond(200, headers=SSE_HEADERS, content=sse(
        message_start(), ("content_block_start", "{nope"), MESSAGE_STOP))
    err = await fails(adapter, mock, hi(), mode, streaming=True)
    assert type(err) is InvalidResponse


ERROR_EVENT_CASES: list[tuple[str, str, type[ProviderError]]] = [
    ("overloaded_error", "Overloaded", Overloaded),
    ("api_error", "Internal server error", ServerError),
    ("rate_limit_error", "slow down", RateLimited),
    ("invalid_request_error", "prompt is too long: 300000 tokens > 200000 maximum",
     ContextWindowExceeded),
    ("something_new_error", "?", ServerError),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("error_type", "message", "kind"), ERROR_EVENT_CASES,
                         ids=[c[0] for c in ERROR_EVENT_CASES])
async def test_error_event_before_text(adapter: ProviderAdapter, mock: respx.Router, mode: str,
                                       error_type: str, message: str,
                                       kind: type[ProviderError]) -> None:
    route = mock.post(URL).respond(200, headers=SSE_HEADERS, content=sse(
        message_start(), PING, ("error", error_body(error_type, message))))
    err = await fails(adapter, mock, hi(), mode, streaming=True)
    assert type(err) is kind
    assert err.code == error_type
    assert err.status is None  # the HTTP status was 200
    assert route.call_count == 1


@pytest.mark.parametrize("mode", MODES)
async def test_error_event_after_text(adapter: ProviderAdapter, mock: respx.Router,
                                      mode: str) -> None:
    mock.post(URL).respond(200, headers=SSE_HEADERS, content=sse(
        message_start(), text_start(), text_delta("Once upon"),
        ("error", error_body("overloaded_error", "Overloaded"))))
    err = await fails(adapter, mock, hi(), mode, streaming=True)
    assert type(err) is StreamInterrupted
    assert err.partial_text == "Once upon"
    assert err.code == "Overloaded"


# --- capabilities ---------------------------------------------------------------------------


def test_capabilities_and_the_known_context_window(adapter: ProviderAdapter) -> None:
    caps = adapter.capabilities
    assert (caps.tools, caps.json_schema, caps.images, caps.prefill) == (True, True, True, True)
    assert caps.context_window == 200_000          # known for claude models
    configured = build_adapter("c", ProviderConfig(
        type="anthropic", model=MODEL, api_key=KEY,
        capabilities={"context_window": 1_000_000, "prefill": False}), TimeoutsConfig())
    assert configured.capabilities.context_window == 1_000_000
    assert configured.capabilities.prefill is False


# --- through the public Router (one-provider chain) ----------------------------------------


def one_provider_router() -> failover.Router:
    config = failover.Config.from_mapping({
        "providers": {"claude": {"type": "anthropic", "model": MODEL, "api_key": KEY}},
        "routes": {"default": {"chain": ["claude"]}},
        "defaults": {"retry": {"attempts": 1}},
    })
    return failover.Router(config, clock=FakeClock())


async def routed(mock: respx.Router, mode: str, **params: Any) -> Response:
    router = one_provider_router()
    try:
        with override_transport(RespxTransport(mock)):
            if mode == "sync":
                return router.complete("hi", **params)
            return await router.acomplete("hi", **params)
    finally:
        await router.aclose()


async def routed_stream(mock: respx.Router, mode: str) -> list[StreamEvent]:
    router = one_provider_router()
    try:
        with override_transport(RespxTransport(mock)):
            if mode == "sync":
                return list(router.stream("hi"))
            return [event async for event in router.astream("hi")]
    finally:
        await router.aclose()


@pytest.mark.parametrize("mode", MODES)
async def test_router_answer(mock: respx.Router, mode: str) -> None:
    route = mock.post(URL).respond(200, json=message_body([
        {"type": "text", "text": "Sure."},
        {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x"}},
    ], stop_reason="tool_use"))

    reply = await routed(mock, mode, system="sys", tools=[{"name": "lookup"}])

    assert reply.text == "Sure."
    assert reply.finish_reason == "tool_calls"
    assert reply.tool_calls == (ToolCall("toolu_1", "lookup", {"q": "x"}),)
    assert reply.provider == "claude"
    assert reply.model == SERVED
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (12, 4)
    assert [(a.provider, a.outcome) for a in reply.attempts] == [("claude", "ok")]
    assert sent(route)["system"] == "sys"
    assert route.call_count == 1


@pytest.mark.parametrize("mode", MODES)
async def test_router_stream(mock: respx.Router, mode: str) -> None:
    mock.post(URL).respond(200, headers=SSE_HEADERS, content=hello_stream())
    events = await routed_stream(mock, mode)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello!"
    assert isinstance(events[-1], Completed)
    assert events[-1].response.text == "Hello!"
    assert events[-1].response.model == SERVED


@pytest.mark.parametrize("mode", MODES)
async def test_router_overloaded_provider(mock: respx.Router, mode: str) -> None:
    route = mock.post(URL).respond(529, json=error_body("overloaded_error", "Overloaded"))
    with pytest.raises(failover.AllProvidersFailed) as info:
        await routed(mock, mode)
    assert [(a.error_kind, a.http_status) for a in info.value.attempts] == [("Overloaded", 529)]
    assert KEY not in str(info.value)
    assert route.call_count == 1


@pytest.mark.parametrize("mode", MODES)
async def test_router_raises_bad_request_at_once(mock: respx.Router, mode: str) -> None:
    route = mock.post(URL).respond(400, json=error_body("invalid_request_error", "bad field"))
    with pytest.raises(BadRequest):
        await routed(mock, mode)
    assert route.call_count == 1
