"""The OpenAI adapter at the HTTP layer: the real SDK runs, respx answers behind the seam.

Every case runs sync and async, against OpenAI itself and against an OpenAI-compatible
local server, and checks the one error kind, its status and retry_after, that exactly
one HTTP request went out (SDK retries off), and that the key never shows in an error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import respx

from failover._config import ProviderConfig, TimeoutsConfig
from failover._errors import (
    AuthenticationFailed,
    BadRequest,
    ConnectionFailed,
    ContentFiltered,
    ContextWindowExceeded,
    InvalidResponse,
    ModelNotFound,
    Overloaded,
    PermissionDenied,
    ProviderError,
    RateLimited,
    ServerError,
    StreamInterrupted,
    Timeout,
)
from failover._models import (
    Completed,
    ImagePart,
    JsonSchema,
    Message,
    Request,
    Response,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    build_request,
)
from failover.providers import build_adapter
from failover.providers._base import ProviderAdapter, override_transport
from failover.testing import RespxTransport

KEY = "sk-proj-TESTSECRET0123456789abcdef"
GATEWAY_KEY = "gw-TOPSECRET-998877"
SERVED = "gpt-4o-mini-2024-07-18"


@dataclass(frozen=True)
class Target:
    name: str
    base_url: str | None
    api_key: str | None

    @property
    def url(self) -> str:
        return f"{self.base_url or 'https://api.openai.com/v1'}/chat/completions"


OPENAI = Target("openai", None, KEY)
LOCAL = Target("local", "http://localhost:11434/v1", "none")
GATEWAY = Target("gateway", "https://llm-gateway.example.test/openai/v1", GATEWAY_KEY)


# --- harness --------------------------------------------------------------------------


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=[OPENAI, LOCAL], ids=lambda t: t.name)
def target(request: pytest.FixtureRequest) -> Target:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def mock() -> respx.Router:
    return respx.Router(assert_all_called=False)


def make_adapter(target: Target, **config: Any) -> ProviderAdapter:
    settings: dict[str, Any] = {"type": "openai", "model": "gpt-4o-mini", **config}
    if target.base_url is not None:
        settings["base_url"] = target.base_url
    if target.api_key is not None:
        settings["api_key"] = target.api_key
    return build_adapter(target.name, ProviderConfig(**settings), TimeoutsConfig())


@pytest.fixture
async def adapter(target: Target) -> Any:
    built = make_adapter(target)
    yield built
    await built.aclose()


async def complete(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, request: Request | str = "hi"
) -> Response:
    req = build_request(request) if isinstance(request, str) else request
    with override_transport(RespxTransport(mock)):
        if mode == "sync":
            return adapter.complete(req)
        return await adapter.acomplete(req)


async def stream(
    adapter: ProviderAdapter,
    mock: respx.Router,
    mode: str,
    request: Request | str = "hi",
    seen: list[StreamEvent] | None = None,
) -> list[StreamEvent]:
    """All events; on failure the ones before it stay in ``seen``."""
    req = build_request(request) if isinstance(request, str) else request
    events = seen if seen is not None else []
    with override_transport(RespxTransport(mock)):
        if mode == "sync":
            for event in adapter.stream(req):
                events.append(event)
        else:
            async for event in adapter.astream(req):
                events.append(event)
    return events


async def call(
    how: str, adapter: ProviderAdapter, mock: respx.Router, mode: str, request: Request | str = "hi"
) -> Any:
    if how == "complete":
        return await complete(adapter, mock, mode, request)
    return await stream(adapter, mock, mode, request)


def completed(events: list[StreamEvent]) -> Response:
    assert isinstance(events[-1], Completed)
    assert not any(isinstance(e, Completed) for e in events[:-1])
    return events[-1].response


def sent_body(route: respx.Route) -> dict[str, Any]:
    return json.loads(route.calls.last.request.content)  # type: ignore[no-any-return]


def assert_no_secret(err: BaseException) -> None:
    for secret in (KEY, GATEWAY_KEY):
        assert secret not in str(err)
        assert secret not in repr(err)
        assert secret not in getattr(err, "message", "")


# --- wire format builders ---------------------------------------------------------------


def completion(
    content: str | None = "Hello there.",
    *,
    finish: str | None = "stop",
    tool_calls: list[dict[str, Any]] | None = None,
    usage: dict[str, int] | None = None,
    model: str = SERVED,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage or {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    }


def chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, *, model: str = SERVED
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
    }


def usage_chunk(prompt: int = 9, completion_tokens: int = 3) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": SERVED,
        "choices": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
                  "total_tokens": prompt + completion_tokens},
    }


def sse(item: dict[str, Any] | str) -> bytes:
    data = item if isinstance(item, str) else json.dumps(item)
    return f"data: {data}\n\n".encode()


def text_stream(*pieces: str) -> list[dict[str, Any]]:
    return [chunk({"role": "assistant", "content": ""})] + [
        chunk({"content": p}) for p in pieces
    ]


def sse_response(
    *items: dict[str, Any] | str, done: bool = True, then: BaseException | None = None
) -> Any:
    """A side effect answering with an SSE body; ``then`` is raised after the items."""

    def body() -> Iterator[bytes]:
        for item in items:
            yield sse(item)
        if then is not None:
            raise then
        if done:
            yield b"data: [DONE]\n\n"

    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    return respond


def error_body(message: str, type_: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


# --- success ----------------------------------------------------------------------------


async def test_text_answer_with_usage_and_served_model(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target
) -> None:
    route = mock.post(target.url).respond(200, json=completion("Hello there."))
    reply = await complete(adapter, mock, mode)
    assert reply.text == "Hello there."
    assert reply.finish_reason == "stop"
    assert reply.usage.input_tokens == 12
    assert reply.usage.output_tokens == 5
    assert reply.model == SERVED
    assert reply.provider == target.name
    assert reply.tool_calls == ()
    assert type(reply.raw).__name__ == "ChatCompletion"
    assert route.call_count == 1


async def test_tool_calls_are_parsed(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target
) -> None:
    calls = [
        {"id": "call_a", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": ""}},
    ]
    mock.post(target.url).respond(200, json=completion(None, finish="tool_calls",
                                                       tool_calls=calls))
    reply = await complete(adapter, mock, mode)
    assert reply.finish_reason == "tool_calls"
    assert reply.text == ""
    assert reply.tool_calls == (
        ToolCall("call_a", "get_weather", {"city": "Paris"}),
        ToolCall("call_b", "get_time", {}),
    )


@pytest.mark.parametrize(("wire", "expected"), [
    ("length", "length"), ("function_call", "tool_calls"), ("stop", "stop"), (None, "stop"),
])
async def test_finish_reasons(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target,
    wire: str | None, expected: str,
) -> None:
    mock.post(target.url).respond(200, json=completion("x", finish=wire))
    reply = await complete(adapter, mock, mode)
    assert reply.finish_reason == expected


async def test_stop_with_tool_calls_counts_as_tool_calls(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target
) -> None:
    # Some compatible servers answer tool calls with finish_reason "stop".
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    mock.post(target.url).respond(200, json=completion("", finish="stop", tool_calls=calls))
    reply = await complete(adapter, mock, mode)
    assert reply.finish_reason == "tool_calls"
    assert [c.name for c in reply.tool_calls] == ["f"]


# --- request translation ------------------------------------------------------------------


async def test_request_body_translation(mock: respx.Router, mode: str, target: Target) -> None:
    adapter = make_adapter(target)
    route = mock.post(target.url).respond(200, json=completion('{"kind": "cat"}'))
    request = build_request(
        [
            Message("user", (TextPart("What is this?"),
                             ImagePart(data=b"\x89PNG", media_type="image/png"),
                             ImagePart(url="https://example.test/cat.jpg"))),
            Message("assistant", "", tool_calls=(ToolCall("call_1", "lookup", {"q": "cat"}),)),
            Message("tool", "a cat", tool_call_id="call_1"),
            {"role": "user", "content": "thanks", "name": "ann"},
        ],
        system="Be brief.",
        max_tokens=64,
        temperature=0.2,
        top_p=0.9,
        stop="END",
        tools=[{"type": "function", "function": {
            "name": "lookup", "description": "Look it up",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}],
        tool_choice={"type": "function", "function": {"name": "lookup"}},
        response_format=JsonSchema(name="answer", schema={"type": "object"}),
    )
    try:
        await complete(adapter, mock, mode, request)
    finally:
        await adapter.aclose()
    body = sent_body(route)
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}},
            {"type": "image_url", "image_url": {"url": "https://example.test/cat.jpg"}},
        ]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "lookup", "arguments": '{"q": "cat"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
        {"role": "user", "content": "thanks", "name": "ann"},
    ]
    assert body["tools"] == [{"type": "function", "function": {
        "name": "lookup", "description": "Look it up",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "answer", "schema": {"type": "object"}, "strict": True}}
    assert body["temperature"] == 0.2
    assert body["top_p"] == 0.9
    assert body["stop"] == ["END"]
    # OpenAI itself wants max_completion_tokens; compatible servers know max_tokens.
    if target is OPENAI:
        assert body["max_completion_tokens"] == 64
        assert "max_tokens" not in body
    else:
        assert body["max_tokens"] == 64
        assert "max_completion_tokens" not in body
    assert "stream" not in body


async def test_unset_params_are_not_sent(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target
) -> None:
    route = mock.post(target.url).respond(200, json=completion())
    await complete(adapter, mock, mode, build_request("hi", tool_choice="required"))
    # tool_choice without tools is a 400 on OpenAI: it goes with the tools.
    assert sent_body(route) == {"model": "gpt-4o-mini",
                                "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(("choice", "wire"), [
    ("auto", "auto"), ("none", "none"), ("required", "required"), ("any", "required"),
])
async def test_tool_choice_modes(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target,
    choice: str, wire: str,
) -> None:
    route = mock.post(target.url).respond(200, json=completion())
    request = build_request("hi", tools=[{"name": "f"}], tool_choice=choice)
    await complete(adapter, mock, mode, request)
    assert sent_body(route)["tool_choice"] == wire


async def test_json_mode_without_schema(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target
) -> None:
    route = mock.post(target.url).respond(200, json=completion('{"a": 1}'))
    await complete(adapter, mock, mode,
                   build_request("hi", response_format={"type": "json_object"}))
    assert sent_body(route)["response_format"] == {"type": "json_object"}


async def test_stream_asks_for_usage(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target
) -> None:
    route = mock.post(target.url).mock(
        side_effect=sse_response(*text_stream("ok"), chunk(finish="stop"), usage_chunk()))
    await stream(adapter, mock, mode)
    body = sent_body(route)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_auth_headers_extra_and_api_version(mock: respx.Router, mode: str) -> None:
    adapter = make_adapter(GATEWAY, headers={"x-team": "search"},
                           extra={"api-version": "2024-10-21", "seed": 7, "top_k": 20})
    route = mock.post(url__startswith=GATEWAY.url).respond(200, json=completion())
    try:
        await complete(adapter, mock, mode)
    finally:
        await adapter.aclose()
    sent = route.calls.last.request
    assert sent.url.params["api-version"] == "2024-10-21"
    assert sent.headers["x-team"] == "search"
    assert sent.headers["authorization"] == f"Bearer {GATEWAY_KEY}"
    assert sent.headers["x-stainless-retry-count"] == "0"
    body = json.loads(sent.content)
    assert body["seed"] == 7
    assert body["top_k"] == 20
    assert "api-version" not in body


async def test_keyless_local_server_gets_a_placeholder_key(
    mock: respx.Router, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK would otherwise fall back to the environment's OpenAI key and URL.
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "https://elsewhere.example.test/v1")
    adapter = make_adapter(LOCAL)
    route = mock.post(LOCAL.url).respond(200, json=completion())
    try:
        await complete(adapter, mock, mode)
    finally:
        await adapter.aclose()
    assert route.calls.last.request.headers["authorization"] == "Bearer none"


async def test_tool_message_without_id_is_a_bad_request(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target
) -> None:
    route = mock.post(target.url).respond(200, json=completion())
    request = build_request([Message("user", "hi"), Message("tool", "result")])
    with pytest.raises(BadRequest, match="tool_call_id"):
        await complete(adapter, mock, mode, request)
    assert route.call_count == 0


# --- streaming ----------------------------------------------------------------------------


async def test_stream_text_usage_and_model(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target
) -> None:
    route = mock.post(target.url).mock(side_effect=sse_response(
        *text_stream("Hel", "lo", " world"), chunk(finish="stop"), usage_chunk(9, 3)))
    events = await stream(adapter, mock, mode)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hel", "lo", " world"]
    reply = completed(events)
    assert reply.text == "Hello world"
    assert reply.finish_reason == "stop"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (9, 3)
    assert reply.model == SERVED
    assert reply.provider == target.name
    assert route.call_count == 1


async def test_stream_tool_calls_from_fragments(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target
) -> None:
    mock.post(target.url).mock(side_effect=sse_response(
        chunk({"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "Paris"}'}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                               "function": {"name": "get_time", "arguments": "{}"}}]}),
        chunk(finish="tool_calls"),
        usage_chunk(),
    ))
    events = await stream(adapter, mock, mode)
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [d.index for d in deltas] == [0, 0, 0, 1]
    assert "".join(d.arguments for d in deltas if d.index == 0) == '{"city": "Paris"}'
    reply = completed(events)
    assert reply.finish_reason == "tool_calls"
    assert reply.tool_calls == (
        ToolCall("call_1", "get_weather", {"city": "Paris"}),
        ToolCall("call_2", "get_time", {}),
    )


async def test_stream_without_finish_reason_is_interrupted(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target
) -> None:
    route = mock.post(target.url).mock(side_effect=sse_response(*text_stream("Hal", "f")))
    seen: list[StreamEvent] = []
    with pytest.raises(StreamInterrupted) as info:
        await stream(adapter, mock, mode, seen=seen)
    assert info.value.partial_text == "Half"
    assert not any(isinstance(e, Completed) for e in seen)
    assert route.call_count == 1


async def test_missing_done_after_finish_completes(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target
) -> None:
    mock.post(target.url).mock(side_effect=sse_response(
        *text_stream("done"), chunk(finish="stop"), usage_chunk(), done=False))
    reply = completed(await stream(adapter, mock, mode))
    assert reply.text == "done"
    assert reply.usage.output_tokens == 3


async def test_cut_after_finish_without_usage_completes(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target
) -> None:
    # The answer is whole at the finish reason; a lost usage chunk does not void it.
    mock.post(target.url).mock(side_effect=sse_response(
        *text_stream("whole"), chunk(finish="stop"),
        then=httpx.RemoteProtocolError("peer closed connection")))
    reply = completed(await stream(adapter, mock, mode))
    assert reply.text == "whole"
    assert reply.finish_reason == "stop"


async def test_stream_completes_at_the_usage_chunk_whatever_follows(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target
) -> None:
    # The rest of the body is read (briefly) so the connection goes back to the pool,
    # but nothing after the usage chunk can spoil the answer.
    read_past_usage: list[bool] = []

    def body() -> Iterator[bytes]:
        for item in [*text_stream("ok"), chunk(finish="stop"), usage_chunk()]:
            yield sse(item)
        read_past_usage.append(True)
        yield sse({"error": {"message": "late error", "type": "server_error"}})

    mock.post(target.url).mock(side_effect=lambda request: httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=body()))
    reply = completed(await stream(adapter, mock, mode))
    assert reply.text == "ok" and reply.finish_reason == "stop"
    assert read_past_usage == [True]


async def test_cut_stream_is_interrupted_with_partial_text(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target
) -> None:
    route = mock.post(target.url).mock(side_effect=sse_response(
        *text_stream("Par", "tial"), then=httpx.ReadError("connection reset by peer")))
    seen: list[StreamEvent] = []
    with pytest.raises(StreamInterrupted) as info:
        await stream(adapter, mock, mode, seen=seen)
    assert info.value.partial_text == "Partial"
    assert info.value.provider == target.name
    assert [e.text for e in seen if isinstance(e, TextDelta)] == ["Par", "tial"]
    assert route.call_count == 1
    assert_no_secret(info.value)


async def test_stalled_stream_is_interrupted(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target
) -> None:
    mock.post(target.url).mock(side_effect=sse_response(
        *text_stream("slo"), then=httpx.ReadTimeout("read timed out")))
    with pytest.raises(StreamInterrupted, match="stall") as info:
        await stream(adapter, mock, mode)
    assert info.value.partial_text == "slo"


async def test_malformed_chunk_mid_stream_is_invalid_response(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target
) -> None:
    mock.post(target.url).mock(side_effect=sse_response(
        *text_stream("fine"), "{this is not json", chunk({"content": "garbage"}),
        chunk(finish="stop")))
    seen: list[StreamEvent] = []
    with pytest.raises(InvalidResponse) as info:
        await stream(adapter, mock, mode, seen=seen)
    assert info.value.partial_text == "fine"
    assert "garbage" not in "".join(e.text for e in seen if isinstance(e, TextDelta))


async def test_malformed_first_chunk_is_invalid_response(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target
) -> None:
    mock.post(target.url).mock(side_effect=sse_response("{oops", chunk(finish="stop")))
    with pytest.raises(InvalidResponse):
        await stream(adapter, mock, mode)


@pytest.mark.parametrize(("error", "kind"), [
    ({"message": "The server had an error", "type": "server_error"}, ServerError),
    ({"message": "The engine is currently overloaded", "type": "server_error",
      "code": "overloaded"}, Overloaded),
    ({"message": "Rate limit reached for requests", "type": "requests",
      "code": "rate_limit_exceeded"}, RateLimited),
    ({"message": "Too many tokens", "code": 429}, RateLimited),
])
async def test_error_event_before_any_text_maps_by_code(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target,
    error: dict[str, Any], kind: type[ProviderError],
) -> None:
    route = mock.post(target.url).mock(side_effect=sse_response({"error": error}))
    with pytest.raises(ProviderError) as info:
        await stream(adapter, mock, mode)
    assert type(info.value) is kind
    assert info.value.message == error["message"]
    # It arrived inside a 200: only a status the server itself reported is kept.
    assert info.value.status == (error["code"] if isinstance(error.get("code"), int) else None)
    assert route.call_count == 1


async def test_error_event_after_text_interrupts(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target
) -> None:
    mock.post(target.url).mock(side_effect=sse_response(
        *text_stream("So far"),
        {"error": {"message": "The server had an error", "type": "server_error"}}))
    with pytest.raises(StreamInterrupted) as info:
        await stream(adapter, mock, mode)
    assert info.value.partial_text == "So far"
    assert info.value.code == "ServerError"


async def test_stream_content_filter_finish(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target
) -> None:
    mock.post(target.url).mock(side_effect=sse_response(
        *text_stream("Some te"), chunk(finish="content_filter"), usage_chunk()))
    with pytest.raises(ContentFiltered) as info:
        await stream(adapter, mock, mode)
    assert type(info.value) is ContentFiltered
    assert info.value.provider == target.name


# --- errors -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    status: int
    kind: type[ProviderError]
    body: Any = None
    headers: dict[str, str] | None = None
    retry_after: float | None = None
    code: str | None = None


STATUS_CASES = [
    Case("400", 400, BadRequest,
         error_body("Invalid value for 'temperature'", "invalid_request_error")),
    Case("401", 401, AuthenticationFailed,
         error_body("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
         code="invalid_api_key"),
    Case("403", 403, PermissionDenied,
         error_body("Project does not have access", "invalid_request_error")),
    Case("404", 404, ModelNotFound,
         error_body("The model `gpt-9` does not exist", "invalid_request_error",
                    "model_not_found"), code="model_not_found"),
    Case("408", 408, Timeout, error_body("Request timed out", "timeout")),
    Case("409", 409, ServerError, error_body("Conflict", "conflict")),
    Case("413", 413, ContextWindowExceeded, "Request Entity Too Large"),
    Case("422", 422, BadRequest, error_body("Unprocessable", "invalid_request_error")),
    Case("429-retry-after", 429, RateLimited,
         error_body("Rate limit reached", "requests", "rate_limit_exceeded"),
         headers={"retry-after": "7"}, retry_after=7.0, code="rate_limit_exceeded"),
    Case("429-retry-after-ms", 429, RateLimited,
         error_body("Rate limit reached", "tokens", "rate_limit_exceeded"),
         headers={"retry-after-ms": "1500", "retry-after": "2"}, retry_after=1.5),
    Case("429-bare", 429, RateLimited, error_body("Rate limit reached", "requests")),
    Case("429-insufficient-quota", 429, RateLimited,
         error_body("You exceeded your current quota", "insufficient_quota",
                    "insufficient_quota"), code="insufficient_quota"),
    Case("500", 500, ServerError, error_body("The server had an error", "server_error")),
    Case("502", 502, ServerError, "<html><body>502 Bad Gateway</body></html>"),
    Case("503", 503, Overloaded,
         error_body("The engine is currently overloaded", "server_error"),
         headers={"retry-after": "3"}, retry_after=3.0),
    Case("504", 504, ServerError, "upstream request timeout"),
    Case("529", 529, Overloaded, error_body("Overloaded", "overloaded_error")),
    Case("context-length", 400, ContextWindowExceeded,
         error_body("This model's maximum context length is 128000 tokens.",
                    "invalid_request_error", "context_length_exceeded"),
         code="context_length_exceeded"),
    Case("content-filter", 400, ContentFiltered,
         error_body("The response was filtered due to the prompt triggering content "
                    "management policy.", "invalid_request_error", "content_filter"),
         code="content_filter"),
    # LiteLLM's proxy answers a model it does not serve, and a key it cannot check, with
    # a 400: neither is the caller's bad request (another provider may serve it).
    Case("gateway-unknown-model", 400, ModelNotFound,
         error_body("/chat/completions: Invalid model name passed in model=nope. Call "
                    "`/v1/models` to view available models for your key.",
                    "invalid_request_error", "400"), code="400"),
    Case("gateway-unchecked-key", 400, AuthenticationFailed,
         error_body("No connected db.", "no_db_connection", "400"), code="400"),
]


@pytest.mark.parametrize("how", ["complete", "stream"])
@pytest.mark.parametrize("case", STATUS_CASES, ids=lambda c: c.id)
async def test_status_errors_map_to_one_kind(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target,
    case: Case, how: str,
) -> None:
    kwargs: dict[str, Any] = {"headers": case.headers or {}}
    if isinstance(case.body, str):
        kwargs["text"] = case.body
    else:
        kwargs["json"] = case.body
    route = mock.post(target.url).respond(case.status, **kwargs)
    with pytest.raises(ProviderError) as info:
        await call(how, adapter, mock, mode)
    err = info.value
    assert type(err) is case.kind
    assert err.status == case.status
    assert err.retry_after == case.retry_after
    if case.code is not None:
        assert err.code == case.code
    assert err.provider == target.name
    assert route.call_count == 1
    assert_no_secret(err)


@pytest.mark.parametrize("how", ["complete", "stream"])
@pytest.mark.parametrize(("fault", "kind"), [
    (httpx.ConnectError("[Errno 111] Connection refused"), ConnectionFailed),
    (httpx.ReadError("[Errno 104] Connection reset by peer"), ConnectionFailed),
    (httpx.RemoteProtocolError("Server disconnected without sending a response"),
     ConnectionFailed),
    (httpx.ReadTimeout("The read operation timed out"), Timeout),
    (httpx.ConnectTimeout("timed out"), Timeout),
], ids=["refused", "reset", "disconnected", "read-timeout", "connect-timeout"])
async def test_transport_faults_map_to_one_kind(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target,
    fault: Exception, kind: type[ProviderError], how: str,
) -> None:
    route = mock.post(target.url).mock(side_effect=fault)
    with pytest.raises(ProviderError) as info:
        await call(how, adapter, mock, mode)
    assert type(info.value) is kind
    assert info.value.status is None
    assert info.value.provider == target.name
    assert route.call_count == 1
    assert_no_secret(info.value)


async def test_malformed_json_body(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target
) -> None:
    route = mock.post(target.url).respond(
        200, content=b'{"id": "x", "choices": [', headers={"content-type": "application/json"})
    with pytest.raises(InvalidResponse):
        await complete(adapter, mock, mode)
    assert route.call_count == 1


async def test_html_page_with_200_is_invalid(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target
) -> None:
    mock.post(target.url).respond(200, text="<html>Sign in to continue</html>",
                                  headers={"content-type": "text/html"})
    with pytest.raises(InvalidResponse):
        await complete(adapter, mock, mode)


@pytest.mark.parametrize("body", [
    {"id": "x", "object": "chat.completion", "model": SERVED, "choices": []},
    {"id": "x", "object": "chat.completion", "model": SERVED},
    {"id": "x", "object": "chat.completion", "model": SERVED,
     "choices": [{"index": 0, "finish_reason": "stop"}]},
    completion(None, finish="tool_calls", tool_calls=[
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{bad"}}]),
    completion(None, finish="tool_calls", tool_calls=[
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1, 2]"}}]),
], ids=["no-choices", "choices-missing", "no-message", "bad-tool-json", "tool-args-not-object"])
async def test_schema_drift_is_invalid_response(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target,
    body: dict[str, Any],
) -> None:
    mock.post(target.url).respond(200, json=body)
    with pytest.raises(InvalidResponse) as info:
        await complete(adapter, mock, mode)
    assert type(info.value) is InvalidResponse
    assert info.value.provider == target.name


async def test_content_filter_finish_in_a_200(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target
) -> None:
    mock.post(target.url).respond(200, json=completion("", finish="content_filter"))
    with pytest.raises(ContentFiltered) as info:
        await complete(adapter, mock, mode)
    assert type(info.value) is ContentFiltered
    assert info.value.provider == target.name


async def test_refusal_in_a_200(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, target: Target
) -> None:
    body = completion(None)
    body["choices"][0]["message"]["refusal"] = "I can't help with that."
    mock.post(target.url).respond(200, json=body)
    with pytest.raises(ContentFiltered, match="can't help"):
        await complete(adapter, mock, mode)


@pytest.mark.parametrize("how", ["complete", "stream"])
async def test_echoed_key_is_scrubbed(mock: respx.Router, mode: str, how: str) -> None:
    # A gateway key has no recognisable shape; the adapter still removes it.
    adapter = make_adapter(GATEWAY)
    mock.post(url__startswith=GATEWAY.url).respond(401, json=error_body(
        f"Invalid key {GATEWAY_KEY} for this deployment", "invalid_request_error"))
    try:
        with pytest.raises(AuthenticationFailed) as info:
            await call(how, adapter, mock, mode)
    finally:
        await adapter.aclose()
    assert "Invalid key" in str(info.value)
    assert_no_secret(info.value)


async def test_openai_key_in_message_is_redacted(
    mock: respx.Router, mode: str
) -> None:
    adapter = make_adapter(OPENAI)
    mock.post(OPENAI.url).respond(401, json=error_body(
        f"Incorrect API key provided: {KEY}.", "invalid_request_error", "invalid_api_key"))
    try:
        with pytest.raises(AuthenticationFailed) as info:
            await complete(adapter, mock, mode)
    finally:
        await adapter.aclose()
    assert_no_secret(info.value)


# --- through the public Router ---------------------------------------------------------


def one_provider_router(target: Target, **route: Any) -> Any:
    import failover
    from failover.testing import FakeClock

    provider: dict[str, Any] = {"type": "openai", "model": "gpt-4o-mini"}
    if target.base_url is not None:
        provider["base_url"] = target.base_url
    if target.api_key is not None:
        provider["api_key"] = target.api_key
    config = failover.Config.from_mapping({
        "providers": {target.name: provider},
        "routes": {"default": {"chain": [target.name], **route}},
    })
    return failover.Router(config, clock=FakeClock())


async def router_complete(router: Any, mock: respx.Router, mode: str, **params: Any) -> Any:
    with override_transport(RespxTransport(mock)):
        if mode == "sync":
            return router.complete("hi", **params)
        return await router.acomplete("hi", **params)


async def router_stream(router: Any, mock: respx.Router, mode: str) -> list[StreamEvent]:
    with override_transport(RespxTransport(mock)):
        if mode == "sync":
            return list(router.stream("hi"))
        return [event async for event in router.astream("hi")]


async def test_router_complete(mock: respx.Router, mode: str, target: Target) -> None:
    route = mock.post(target.url).respond(200, json=completion("Routed."))
    router = one_provider_router(target)
    try:
        reply = await router_complete(router, mock, mode, temperature=0.1,
                                      tools=[{"name": "f"}], tool_choice="auto")
    finally:
        await router.aclose()
    assert reply.text == "Routed."
    assert reply.provider == target.name
    assert reply.model == SERVED
    assert reply.usage.input_tokens == 12
    assert [(a.provider, a.outcome) for a in reply.attempts] == [(target.name, "ok")]
    body = sent_body(route)
    assert body["temperature"] == 0.1
    assert body["tools"][0]["function"]["name"] == "f"
    assert body["tool_choice"] == "auto"
    assert route.call_count == 1


async def test_router_stream(mock: respx.Router, mode: str, target: Target) -> None:
    mock.post(target.url).mock(side_effect=sse_response(
        *text_stream("Rou", "ted"), chunk(finish="stop"), usage_chunk(4, 2)))
    router = one_provider_router(target)
    try:
        events = await router_stream(router, mock, mode)
    finally:
        await router.aclose()
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Rou", "ted"]
    reply = completed(events)
    assert reply.text == "Routed"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (4, 2)
    assert reply.provider == target.name


@pytest.mark.parametrize(("status", "kind"), [(503, "Overloaded"), (401, "AuthenticationFailed"),
                                              (404, "ModelNotFound")])
async def test_router_counts_one_request_per_failed_attempt(
    mock: respx.Router, mode: str, target: Target, status: int, kind: str
) -> None:
    import failover

    route = mock.post(target.url).respond(status, json=error_body(
        f"failure echoing {KEY}", "server_error"))
    router = one_provider_router(target)
    try:
        with pytest.raises(failover.AllProvidersFailed) as info:
            await router_complete(router, mock, mode)
    finally:
        await router.aclose()
    assert [(a.error_kind, a.http_status) for a in info.value.attempts] == [(kind, status)]
    assert route.call_count == 1
    assert KEY not in str(info.value)


async def test_router_bad_request_raises_at_once(
    mock: respx.Router, mode: str, target: Target
) -> None:
    route = mock.post(target.url).respond(400, json=error_body(
        "Invalid value for 'top_p'", "invalid_request_error"))
    router = one_provider_router(target)
    try:
        with pytest.raises(BadRequest, match="top_p"):
            # A value this library accepts and the provider refuses.
            await router_complete(router, mock, mode, top_p=0.99)
    finally:
        await router.aclose()
    assert route.call_count == 1


async def test_router_cut_stream_raises_with_partial_text(
    mock: respx.Router, mode: str, target: Target
) -> None:
    import failover

    mock.post(target.url).mock(side_effect=sse_response(
        *text_stream("Half an ans"), then=httpx.ReadError("connection reset by peer")))
    router = one_provider_router(target, stream_interrupt="raise")
    try:
        with pytest.raises(failover.StreamInterrupted) as info:
            await router_stream(router, mock, mode)
    finally:
        await router.aclose()
    assert info.value.partial_text == "Half an ans"
