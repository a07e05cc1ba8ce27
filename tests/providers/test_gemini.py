"""The Gemini adapter at the HTTP layer: the real google-genai SDK runs, respx answers.

Every case runs sync and async and checks the one error kind, its status and
retry_after, that exactly one HTTP request went out (SDK retries, automatic function
calling and automatic continuation all off), and that the key never shows in an error.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
import respx
from google.genai import _api_client

import failover
from failover._config import ProviderConfig, TimeoutsConfig
from failover._errors import (
    AuthenticationFailed,
    BadRequest,
    ConfigError,
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
    Message,
    ReasoningPart,
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
from failover.testing import FakeClock, RespxTransport

KEY = "AIza-test-KEY-0123456789abcdef"
MODEL = "gemini-2.5-flash"
SERVED = "gemini-2.5-flash-preview-05-20"
ROOT = f"https://generativelanguage.googleapis.com/v1/models/{MODEL}"
URL = f"{ROOT}:generateContent"
STREAM_URL = f"{ROOT}:streamGenerateContent"


# --- harness --------------------------------------------------------------------------


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def mock() -> Iterator[respx.Router]:
    router = respx.Router(assert_all_called=False)
    with override_transport(RespxTransport(router)):
        yield router


def make_adapter(**config: Any) -> ProviderAdapter:
    settings: dict[str, Any] = {"type": "gemini", "model": MODEL, "api_key": KEY, **config}
    return build_adapter("gem", ProviderConfig(**settings), TimeoutsConfig())


@pytest.fixture
async def adapter() -> AsyncIterator[ProviderAdapter]:
    built = make_adapter()
    yield built
    await built.aclose()


async def complete(
    adapter: ProviderAdapter, request: Request, mode: str, timeout: float | None = None
) -> Response:
    if mode == "sync":
        return adapter.complete(request, timeout=timeout)
    return await adapter.acomplete(request, timeout=timeout)


async def stream(adapter: ProviderAdapter, request: Request, mode: str) -> list[StreamEvent]:
    if mode == "sync":
        return list(adapter.stream(request))
    return [event async for event in adapter.astream(request)]


def hello() -> Request:
    return build_request("hello")


def answer(
    *parts: dict[str, Any], finish: str | None = "STOP", usage: bool = True
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": list(parts)}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    body: dict[str, Any] = {"candidates": [candidate], "modelVersion": SERVED}
    if usage:
        body["usageMetadata"] = {
            "promptTokenCount": 11,
            "candidatesTokenCount": 7,
            "totalTokenCount": 18,
        }
    return body


def sse(*events: dict[str, Any] | str) -> bytes:
    lines = [e if isinstance(e, str) else json.dumps(e) for e in events]
    return "".join(f"data: {line}\r\n\r\n" for line in lines).encode()


def stream_route(mock: respx.Router) -> respx.Route:
    return mock.post(STREAM_URL, params={"alt": "sse"})


def sse_response(body: bytes, status: int = 200) -> httpx.Response:
    return httpx.Response(status, headers={"content-type": "text/event-stream"}, content=body)


def breaking_body(first: bytes, error: Exception) -> Callable[[httpx.Request], httpx.Response]:
    """A 200 stream that sends ``first`` and then fails like a socket would."""

    def respond(request: httpx.Request) -> httpx.Response:
        def body() -> Iterator[bytes]:
            yield first
            raise error

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    return respond


def google_error(
    status: int, rpc_status: str, message: str, *details: dict[str, Any]
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": status, "message": message, "status": rpc_status}
    if details:
        error["details"] = list(details)
    return {"error": error}


def sent_body(route: respx.Route) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(route.calls.last.request.content)
    return body


def assert_clean(err: ProviderError) -> None:
    assert KEY not in str(err)
    assert KEY not in err.message
    assert KEY not in repr(err)
    assert err.provider == "gem"


RETRY_INFO = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}
KEY_INVALID = {
    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
    "reason": "API_KEY_INVALID",
    "domain": "googleapis.com",
    "metadata": {"service": "generativelanguage.googleapis.com"},
}
TOO_LONG = "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."


# --- success --------------------------------------------------------------------------


async def test_text_answer_with_usage_and_served_model(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    route = mock.post(URL).respond(200, json=answer({"text": "Hi "}, {"text": "there"}))

    response = await complete(adapter, hello(), mode)

    assert response.text == "Hi there"
    assert response.finish_reason == "stop"
    assert response.usage.input_tokens == 11
    assert response.usage.output_tokens == 7
    assert response.model == SERVED
    assert response.provider == "gem"
    assert response.tool_calls == ()
    assert route.call_count == 1
    headers = route.calls.last.request.headers
    assert headers["x-goog-api-key"] == KEY
    assert "key=" not in str(route.calls.last.request.url)


async def test_function_calls_become_tool_calls(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    route = mock.post(URL).respond(
        200,
        json=answer(
            {"text": "thinking out loud", "thought": True},
            {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
            {"functionCall": {"id": "fc-7", "name": "get_time", "args": {}}},
        ),
    )
    request = build_request(
        "weather and time in Oslo?",
        tools=[{"name": "get_weather", "parameters": {"type": "object"}}, {"name": "get_time"}],
    )

    response = await complete(adapter, request, mode)

    assert response.finish_reason == "tool_calls"
    assert response.text == ""  # the thought is not answer text
    assert response.reasoning == (ReasoningPart("thinking out loud", origin="gemini"),)
    generated = response.tool_calls[0].id
    assert response.tool_calls == (
        ToolCall(id=generated, name="get_weather", arguments={"city": "Oslo"}),
        ToolCall(id="fc-7", name="get_time", arguments={}),
    )
    # Declarations only: the SDK does not call anything itself, so one request.
    assert route.call_count == 1


async def test_calls_without_an_id_get_ids_unique_across_turns(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    # Numbered by position ("call_0"), two turns' calls had the same id: the history then
    # failed over to Anthropic, which refuses two tool_use blocks with one id.
    mock.post(URL).respond(200, json=answer(
        {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}))
    request = build_request("weather?", tools=[{"name": "get_weather"}])
    first = (await complete(adapter, request, mode)).tool_calls[0].id
    second = (await complete(adapter, request, mode)).tool_calls[0].id
    assert first != second
    assert first.startswith("call_") and second.startswith("call_")


async def test_thinking_tokens_count_as_output(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    body = answer({"text": "42"})
    body["usageMetadata"]["thoughtsTokenCount"] = 100
    mock.post(URL).respond(200, json=body)

    response = await complete(adapter, hello(), mode)

    assert response.usage.output_tokens == 107


async def test_max_tokens_is_length(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    mock.post(URL).respond(200, json=answer({"text": "cut sh"}, finish="MAX_TOKENS"))

    response = await complete(adapter, hello(), mode)

    assert (response.text, response.finish_reason) == ("cut sh", "length")


async def test_continuation_is_not_followed(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    body = answer({"text": "part one"}, finish="CONTINUATION")
    body["candidates"][0]["continuationToken"] = base64.b64encode(b"resume-here").decode()
    rest = answer({"text": " and part two"})
    route = mock.post(URL).mock(
        side_effect=[httpx.Response(200, json=body), httpx.Response(200, json=rest)]
    )

    response = await complete(adapter, hello(), mode)

    assert (response.text, response.finish_reason) == ("part one", "length")
    assert route.call_count == 1
    assert "continuationToken" not in json.dumps(sent_body(route))


async def test_served_model_defaults_to_configured(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    body = answer({"text": "ok"})
    del body["modelVersion"]
    mock.post(URL).respond(200, json=body)

    response = await complete(adapter, hello(), mode)

    assert response.model == MODEL


# --- request translation ------------------------------------------------------------


async def test_request_translation(adapter: ProviderAdapter, mock: respx.Router, mode: str) -> None:
    route = mock.post(URL).respond(200, json=answer({"text": "sunny"}))
    png = b"\x89PNG fake"
    request = build_request(
        [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather here?"},
                    {"type": "image", "data": png, "media_type": "image/png"},
                    {
                        "type": "image_url",
                        "image_url": {
                            "url": "data:image/jpeg;base64," + base64.b64encode(b"jpeg!").decode()
                        },
                    },
                    {"type": "image_url", "image_url": {"url": "https://example.test/a.webp"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "t1",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    },
                    {"id": "t2", "function": {"name": "get_time", "arguments": "{}"}},
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": '{"sky": "clear"}'},
            {"role": "tool", "tool_call_id": "t2", "content": "12:00"},
        ],
        system="You are a weather bot.",
        max_tokens=256,
        temperature=0.2,
        top_p=0.9,
        stop=["END"],
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                        "additionalProperties": False,
                    },
                },
            },
            {"name": "get_time"},
        ],
        tool_choice="auto",
    )

    await complete(adapter, request, mode)

    body = sent_body(route)
    assert body["systemInstruction"]["parts"] == [{"text": "You are a weather bot.\n\nBe brief."}]
    assert body["generationConfig"] == {
        "maxOutputTokens": 256,
        "temperature": 0.2,
        "topP": 0.9,
        "stopSequences": ["END"],
    }
    declarations = body["tools"][0]["functionDeclarations"]
    assert [d["name"] for d in declarations] == ["get_weather", "get_time"]
    assert declarations[0]["description"] == "Weather for a city"
    schema = declarations[0].get("parametersJsonSchema") or declarations[0].get(
        "parameters_json_schema"
    )
    assert schema["additionalProperties"] is False
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}

    user, model, results = body["contents"]
    assert user["role"] == "user"
    assert user["parts"][0] == {"text": "Weather here?"}
    inline = [p.get("inlineData") for p in user["parts"][1:3]]
    assert [base64.b64decode(i["data"]) for i in inline] == [png, b"jpeg!"]
    assert [i.get("mimeType") or i.get("mime_type") for i in inline] == ["image/png", "image/jpeg"]
    file_data = user["parts"][3].get("fileData") or user["parts"][3].get("file_data")
    assert (file_data.get("fileUri") or file_data.get("file_uri")) == (
        "https://example.test/a.webp"
    )
    assert model["role"] == "model"
    assert model["parts"][0] == {"text": "Checking."}
    assert model["parts"][1]["functionCall"] == {"name": "get_weather", "args": {"city": "Oslo"}}
    assert model["parts"][2]["functionCall"]["name"] == "get_time"
    # Both results answer one model turn, so they share one user turn.
    assert results["role"] == "user"
    assert [p["functionResponse"] for p in results["parts"]] == [
        {"name": "get_weather", "response": {"sky": "clear"}},
        {"name": "get_time", "response": {"output": "12:00"}},
    ]
    assert route.calls.last.request.headers["x-goog-api-key"] == KEY


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_time"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_time"]},
        ),
    ],
)
async def test_tool_choice(
    adapter: ProviderAdapter,
    mock: respx.Router,
    mode: str,
    choice: Any,
    expected: dict[str, Any],
) -> None:
    route = mock.post(URL).respond(200, json=answer({"text": "ok"}))
    request = build_request("hi", tools=[{"name": "get_time"}], tool_choice=choice)

    await complete(adapter, request, mode)

    assert sent_body(route)["toolConfig"] == {"functionCallingConfig": expected}


async def test_json_schema_output(adapter: ProviderAdapter, mock: respx.Router, mode: str) -> None:
    route = mock.post(URL).respond(200, json=answer({"text": '{"n": 1}'}))
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    request = build_request(
        "count", response_format={"type": "json_schema", "json_schema": {"schema": schema}}
    )

    response = await complete(adapter, request, mode)

    config = sent_body(route)["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == schema
    assert response.text == '{"n": 1}'


async def test_json_mode_without_schema(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    route = mock.post(URL).respond(200, json=answer({"text": "{}"}))

    await complete(adapter, build_request("x", response_format={"type": "json_object"}), mode)

    assert sent_body(route)["generationConfig"] == {"responseMimeType": "application/json"}


async def test_per_call_timeout_reaches_the_request(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    route = mock.post(URL).respond(200, json=answer({"text": "ok"}))

    await complete(adapter, hello(), mode, timeout=2.5)

    # The SDK turns the per-call timeout (ms) into this header, rounded up.
    assert route.calls.last.request.headers["x-server-timeout"] == "3"


async def test_base_url_headers_and_api_version(mock: respx.Router, mode: str) -> None:
    adapter = make_adapter(
        base_url="https://gemini-proxy.example.test/",
        headers={"x-team": "search"},
        extra={"api_version": "v1beta"},
    )
    route = mock.post(
        f"https://gemini-proxy.example.test/v1beta/models/{MODEL}:generateContent"
    ).respond(200, json=answer({"text": "ok"}))
    try:
        await complete(adapter, hello(), mode)
    finally:
        await adapter.aclose()

    assert route.call_count == 1
    assert route.calls.last.request.headers["x-team"] == "search"


async def test_tool_result_without_its_call_is_a_bad_request(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    route = mock.post(URL).respond(200, json=answer({"text": "ok"}))
    request = build_request(
        [
            {"role": "user", "content": "hi"},
            {"role": "tool", "tool_call_id": "nope", "content": "1"},
        ]
    )

    with pytest.raises(BadRequest) as caught:
        await complete(adapter, request, mode)

    assert "nope" in str(caught.value)
    assert route.call_count == 0


async def test_prefill_is_refused(adapter: ProviderAdapter, mock: respx.Router, mode: str) -> None:
    route = mock.post(URL).respond(200, json=answer({"text": "ok"}))
    request = Request(messages=(Message("user", (TextPart("hi"),)),), prefill="Sure")

    assert adapter.capabilities.prefill is False
    with pytest.raises(BadRequest):
        await complete(adapter, request, mode)
    assert route.call_count == 0


def test_capabilities() -> None:
    caps = make_adapter().capabilities
    assert (caps.tools, caps.json_schema, caps.images, caps.prefill) == (True, True, True, False)
    assert (
        caps.missing_for(
            Request(messages=(Message("user", (ImagePart(url="https://x.test/a.png"),)),))
        )
        is None
    )


def test_a_gemini_provider_without_a_key_is_a_config_error_at_load() -> None:
    # Found when the file is loaded, not at the first request (which it would lose).
    with pytest.raises(ConfigError, match=r"providers\.gem: the gemini API needs a key"):
        failover.Config.from_mapping({
            "providers": {"gem": {"type": "gemini", "model": MODEL, "api_key": "none"}},
            "routes": {"default": {"chain": ["gem"]}},
        })


# --- the seam ---------------------------------------------------------------------------


def test_sdk_clients_use_the_seam_clients_and_never_aiohttp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    adapter = make_adapter()
    sync_client = adapter.sync_client()
    async_client = adapter.async_client()
    sync_http, async_http = adapter._http_clients[0], adapter._http_clients[2]

    assert sync_client._api_client._httpx_client is sync_http
    assert async_client._api_client._async_httpx_client is async_http
    # Even where aiohttp is installed the SDK must stay on the injected httpx2 client.
    monkeypatch.setattr(_api_client, "has_aiohttp", True)
    assert async_client._api_client._use_aiohttp() is False
    adapter.close()


# --- errors -----------------------------------------------------------------------------

ERROR_CASES = [
    pytest.param(
        400,
        google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload"),
        {},
        BadRequest,
        None,
        id="400",
    ),
    pytest.param(
        400,
        google_error(
            400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", KEY_INVALID
        ),
        {},
        AuthenticationFailed,
        None,
        id="400-api-key-invalid",
    ),
    pytest.param(
        400,
        google_error(400, "INVALID_ARGUMENT", f"API key {KEY} is bad", KEY_INVALID),
        {},
        AuthenticationFailed,
        None,
        id="400-key-echoed",
    ),
    pytest.param(
        400,
        google_error(400, "INVALID_ARGUMENT", TOO_LONG),
        {},
        ContextWindowExceeded,
        None,
        id="400-context-window",
    ),
    pytest.param(
        400,
        google_error(400, "FAILED_PRECONDITION", "User location is not supported for the API use."),
        {},
        PermissionDenied,
        None,
        id="400-location",
    ),
    pytest.param(
        401,
        google_error(401, "UNAUTHENTICATED", "Request had invalid credentials"),
        {},
        AuthenticationFailed,
        None,
        id="401",
    ),
    pytest.param(
        403,
        google_error(403, "PERMISSION_DENIED", "Permission denied"),
        {},
        PermissionDenied,
        None,
        id="403",
    ),
    pytest.param(
        404,
        google_error(404, "NOT_FOUND", f"models/{MODEL} is not found"),
        {},
        ModelNotFound,
        None,
        id="404",
    ),
    pytest.param(
        408, google_error(408, "DEADLINE_EXCEEDED", "Request timeout"), {}, Timeout, None, id="408"
    ),
    pytest.param(409, google_error(409, "ABORTED", "Conflict"), {}, ServerError, None, id="409"),
    pytest.param(
        413,
        google_error(413, "INVALID_ARGUMENT", "Request payload size exceeds"),
        {},
        ContextWindowExceeded,
        None,
        id="413",
    ),
    pytest.param(
        422, google_error(422, "INVALID_ARGUMENT", "Unprocessable"), {}, BadRequest, None, id="422"
    ),
    pytest.param(
        429,
        google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded", RETRY_INFO),
        {},
        RateLimited,
        37.0,
        id="429-retry-info",
    ),
    pytest.param(
        429,
        google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded"),
        {"retry-after": "12"},
        RateLimited,
        12.0,
        id="429-retry-after",
    ),
    pytest.param(
        429,
        google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded"),
        {},
        RateLimited,
        None,
        id="429-bare",
    ),
    pytest.param(
        500, google_error(500, "INTERNAL", "Internal error"), {}, ServerError, None, id="500"
    ),
    pytest.param(
        502, "<html><body>Bad Gateway</body></html>", {}, ServerError, None, id="502-html"
    ),
    pytest.param(
        503,
        google_error(503, "UNAVAILABLE", "The model is overloaded."),
        {},
        Overloaded,
        None,
        id="503",
    ),
    pytest.param(
        504,
        google_error(504, "DEADLINE_EXCEEDED", "Deadline expired"),
        {},
        ServerError,
        None,
        id="504",
    ),
    pytest.param(
        529, google_error(529, "UNAVAILABLE", "Overloaded"), {}, Overloaded, None, id="529"
    ),
]


def error_response(status: int, body: Any, headers: dict[str, str]) -> httpx.Response:
    if isinstance(body, str):
        return httpx.Response(status, headers={"content-type": "text/html", **headers}, text=body)
    return httpx.Response(status, headers=headers, json=body)


@pytest.mark.parametrize(("status", "body", "headers", "kind", "retry_after"), ERROR_CASES)
async def test_status_errors(
    adapter: ProviderAdapter,
    mock: respx.Router,
    mode: str,
    status: int,
    body: Any,
    headers: dict[str, str],
    kind: type[ProviderError],
    retry_after: float | None,
) -> None:
    route = mock.post(URL).mock(return_value=error_response(status, body, headers))

    with pytest.raises(ProviderError) as caught:
        await complete(adapter, hello(), mode)

    err = caught.value
    assert type(err) is kind
    assert err.status == status
    assert err.retry_after == retry_after
    assert route.call_count == 1
    assert_clean(err)


@pytest.mark.parametrize(("status", "body", "headers", "kind", "retry_after"), ERROR_CASES)
async def test_status_errors_when_streaming(
    adapter: ProviderAdapter,
    mock: respx.Router,
    mode: str,
    status: int,
    body: Any,
    headers: dict[str, str],
    kind: type[ProviderError],
    retry_after: float | None,
) -> None:
    route = stream_route(mock).mock(return_value=error_response(status, body, headers))

    with pytest.raises(ProviderError) as caught:
        await stream(adapter, hello(), mode)

    err = caught.value
    assert type(err) is kind
    assert err.status == status
    assert err.retry_after == retry_after
    assert route.call_count == 1
    assert_clean(err)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        pytest.param(httpx.ConnectError("Connection refused"), ConnectionFailed, id="refused"),
        pytest.param(httpx.ReadError("Connection reset by peer"), ConnectionFailed, id="reset"),
        pytest.param(httpx.ReadTimeout("timed out"), Timeout, id="read-timeout"),
        pytest.param(httpx.ConnectTimeout("timed out"), Timeout, id="connect-timeout"),
    ],
)
async def test_transport_errors(
    adapter: ProviderAdapter,
    mock: respx.Router,
    mode: str,
    exc: Exception,
    kind: type[ProviderError],
) -> None:
    route = mock.post(URL).mock(side_effect=exc)

    with pytest.raises(ProviderError) as caught:
        await complete(adapter, hello(), mode)

    assert type(caught.value) is kind
    assert route.call_count == 1  # no hidden retry of a connection error
    assert_clean(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"this is not json {", id="not-json"),
        pytest.param(json.dumps({"candidates": "drifted"}).encode(), id="schema-drift"),
        pytest.param(
            json.dumps({"candidates": [{"content": {"parts": "x"}}]}).encode(), id="parts-drift"
        ),
        pytest.param(b"{}", id="empty-object"),
    ],
)
async def test_malformed_body_is_invalid_response(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, body: bytes
) -> None:
    route = mock.post(URL).respond(200, content=body, headers={"content-type": "application/json"})

    with pytest.raises(InvalidResponse) as caught:
        await complete(adapter, hello(), mode)

    assert route.call_count == 1
    assert_clean(caught.value)


async def test_prompt_blocked_is_content_filtered(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    mock.post(URL).respond(
        200,
        json={
            "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
            "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5},
            "modelVersion": SERVED,
        },
    )

    with pytest.raises(ContentFiltered) as caught:
        await complete(adapter, hello(), mode)

    assert caught.value.code == "SAFETY"
    assert_clean(caught.value)


@pytest.mark.parametrize("reason", ["SAFETY", "RECITATION", "PROHIBITED_CONTENT", "SPII"])
async def test_filtered_finish_without_text_is_content_filtered(
    adapter: ProviderAdapter, mock: respx.Router, mode: str, reason: str
) -> None:
    body = answer(finish=reason)
    del body["candidates"][0]["content"]
    mock.post(URL).respond(200, json=body)

    with pytest.raises(ContentFiltered) as caught:
        await complete(adapter, hello(), mode)

    assert caught.value.code == reason


async def test_filtered_finish_after_text_keeps_the_text(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    mock.post(URL).respond(200, json=answer({"text": "Once upon"}, finish="RECITATION"))

    response = await complete(adapter, hello(), mode)

    assert (response.text, response.finish_reason) == ("Once upon", "content_filter")


async def test_malformed_function_call_is_invalid_response(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    body = answer(finish="MALFORMED_FUNCTION_CALL")
    del body["candidates"][0]["content"]
    mock.post(URL).respond(200, json=body)

    with pytest.raises(InvalidResponse):
        await complete(adapter, hello(), mode)


# --- streaming ------------------------------------------------------------------------


def chunk(*parts: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return answer(*parts, finish=finish, usage=finish is not None)


async def test_stream_text(adapter: ProviderAdapter, mock: respx.Router, mode: str) -> None:
    route = stream_route(mock).mock(
        return_value=sse_response(
            sse(
                chunk({"text": "Hel"}),
                chunk({"text": "thinking", "thought": True}),
                chunk({"text": "lo"}, finish="STOP"),
            )
        )
    )

    events = await stream(adapter, hello(), mode)

    assert events[:2] == [TextDelta("Hel"), TextDelta("lo")]
    assert len(events) == 3
    done = events[-1]
    assert isinstance(done, Completed)
    assert done.response.text == "Hello"
    assert done.response.finish_reason == "stop"
    assert done.response.usage.input_tokens == 11
    assert done.response.usage.output_tokens == 7
    assert done.response.model == SERVED
    assert route.call_count == 1
    assert route.calls.last.request.headers["x-goog-api-key"] == KEY


async def test_stream_function_call(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    stream_route(mock).mock(
        return_value=sse_response(
            sse(
                chunk({"text": "Let me check."}),
                chunk(
                    {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
                    {"functionCall": {"id": "fc-2", "name": "get_time"}},
                    finish="STOP",
                ),
            )
        )
    )
    request = build_request("weather?", tools=[{"name": "get_weather"}, {"name": "get_time"}])

    events = await stream(adapter, request, mode)

    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    generated = calls[0].id
    assert generated is not None and generated.startswith("call_")
    assert [(c.index, c.id, c.name, json.loads(c.arguments)) for c in calls] == [
        (0, generated, "get_weather", {"city": "Oslo"}),
        (1, "fc-2", "get_time", {}),
    ]
    done = events[-1]
    assert isinstance(done, Completed)
    assert done.response.finish_reason == "tool_calls"
    assert done.response.text == "Let me check."
    assert done.response.tool_calls == (
        ToolCall(generated, "get_weather", {"city": "Oslo"}),
        ToolCall("fc-2", "get_time", {}),
    )


async def test_stream_stops_at_the_finish_chunk(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    # Anything after the finishReason chunk is never read (there is no [DONE]).
    stream_route(mock).mock(
        return_value=sse_response(
            sse(
                chunk({"text": "done"}, finish="STOP"),
                "{this would not parse",
            )
        )
    )

    events = await stream(adapter, hello(), mode)

    assert isinstance(events[-1], Completed)
    assert events[-1].response.text == "done"


async def test_stream_cut_is_interrupted_with_partial_text(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    route = stream_route(mock).mock(
        side_effect=breaking_body(
            sse(chunk({"text": "Partial "}), chunk({"text": "answer"})),
            httpx.ReadError("Connection reset by peer"),
        )
    )

    with pytest.raises(StreamInterrupted) as caught:
        await stream(adapter, hello(), mode)

    assert caught.value.partial_text == "Partial answer"
    assert route.call_count == 1
    assert_clean(caught.value)


async def test_stream_stall_is_interrupted(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    # A stalled socket surfaces as the transport's read timeout.
    stream_route(mock).mock(
        side_effect=breaking_body(
            sse(chunk({"text": "Slow"})),
            httpx.ReadTimeout("timed out"),
        )
    )

    with pytest.raises(StreamInterrupted) as caught:
        await stream(adapter, hello(), mode)

    assert caught.value.partial_text == "Slow"
    assert "stall" in caught.value.message


async def test_stream_read_timeout_before_any_token_is_a_timeout(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    stream_route(mock).mock(side_effect=httpx.ReadTimeout("timed out"))

    with pytest.raises(Timeout):
        await stream(adapter, hello(), mode)


async def test_stream_refused(adapter: ProviderAdapter, mock: respx.Router, mode: str) -> None:
    route = stream_route(mock).mock(side_effect=httpx.ConnectError("Connection refused"))

    with pytest.raises(ConnectionFailed):
        await stream(adapter, hello(), mode)
    assert route.call_count == 1


async def test_stream_without_finish_reason_is_interrupted(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    route = stream_route(mock).mock(
        return_value=sse_response(
            sse(
                chunk({"text": "Half"}),
                chunk({"text": " an answer"}),
            )
        )
    )

    with pytest.raises(StreamInterrupted) as caught:
        await stream(adapter, hello(), mode)

    assert caught.value.partial_text == "Half an answer"
    assert route.call_count == 1  # no automatic continuation or reconnect


async def test_stream_malformed_chunk_after_text_is_invalid_response(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    stream_route(mock).mock(
        return_value=sse_response(
            sse(
                chunk({"text": "Good start"}),
                "{not json at all",
            )
        )
    )

    with pytest.raises(InvalidResponse) as caught:
        await stream(adapter, hello(), mode)

    assert caught.value.partial_text == "Good start"


async def test_stream_malformed_first_chunk_is_invalid_response(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    stream_route(mock).mock(return_value=sse_response(sse("{not json at all")))

    with pytest.raises(InvalidResponse):
        await stream(adapter, hello(), mode)


async def test_stream_error_event_first_maps_to_its_kind(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    route = stream_route(mock).mock(
        return_value=sse_response(
            sse(
                google_error(
                    503, "UNAVAILABLE", "The model is overloaded. Please try again later."
                ),
            )
        )
    )

    with pytest.raises(Overloaded) as caught:
        await stream(adapter, hello(), mode)

    assert caught.value.status == 503
    assert route.call_count == 1


async def test_stream_error_event_after_text_is_interrupted(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    stream_route(mock).mock(
        return_value=sse_response(
            sse(
                chunk({"text": "So far"}),
                google_error(500, "INTERNAL", "An internal error has occurred."),
            )
        )
    )

    with pytest.raises(StreamInterrupted) as caught:
        await stream(adapter, hello(), mode)

    assert caught.value.partial_text == "So far"
    assert caught.value.status == 500
    assert caught.value.code == "ServerError"


async def test_stream_prompt_blocked_is_content_filtered(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    stream_route(mock).mock(
        return_value=sse_response(
            sse(
                {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "modelVersion": SERVED},
            )
        )
    )

    with pytest.raises(ContentFiltered) as caught:
        await stream(adapter, hello(), mode)

    assert caught.value.code == "PROHIBITED_CONTENT"


async def test_stream_safety_finish_without_text_is_content_filtered(
    adapter: ProviderAdapter, mock: respx.Router, mode: str
) -> None:
    final = chunk(finish="SAFETY")
    del final["candidates"][0]["content"]
    stream_route(mock).mock(return_value=sse_response(sse(final)))

    with pytest.raises(ContentFiltered) as caught:
        await stream(adapter, hello(), mode)

    assert caught.value.code == "SAFETY"


# --- through the public Router ------------------------------------------------------------


@pytest.fixture
async def router(tmp_path: Any) -> AsyncIterator[Any]:
    config = failover.Config.from_mapping(
        {
            "providers": {"gem": {"type": "gemini", "model": MODEL, "api_key": KEY}},
            "routes": {
                "default": {
                    "chain": ["gem"],
                    "retry": {"attempts": 1},
                    "stream_interrupt": "raise",
                }
            },
            "deferred": {"path": str(tmp_path / "deferred.sqlite")},
        }
    )
    built = failover.Router(config, clock=FakeClock())
    yield built
    await built.aclose()


async def router_complete(router: Any, mode: str, **params: Any) -> Response:
    if mode == "sync":
        response: Response = router.complete("hello", **params)
    else:
        response = await router.acomplete("hello", **params)
    return response


async def router_stream(router: Any, mode: str) -> list[StreamEvent]:
    if mode == "sync":
        return list(router.stream("hello"))
    return [event async for event in router.astream("hello")]


async def test_router_answer(router: Any, mock: respx.Router, mode: str) -> None:
    route = mock.post(URL).respond(
        200,
        json=answer(
            {"text": "Calling."},
            {"functionCall": {"name": "get_time", "args": {"tz": "UTC"}}},
        ),
    )

    response = await router_complete(router, mode, system="Be brief.", tools=[{"name": "get_time"}])

    assert (response.provider, response.model) == ("gem", SERVED)
    assert response.text == "Calling."
    assert response.tool_calls == (ToolCall(response.tool_calls[0].id, "get_time", {"tz": "UTC"}),)
    assert response.tool_calls[0].id.startswith("call_")
    assert response.finish_reason == "tool_calls"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (11, 7)
    assert [a.outcome for a in response.attempts] == ["ok"]
    assert route.call_count == 1
    assert sent_body(route)["systemInstruction"]["parts"] == [{"text": "Be brief."}]


async def test_router_stream(router: Any, mock: respx.Router, mode: str) -> None:
    stream_route(mock).mock(
        return_value=sse_response(sse(chunk({"text": "Hi"}), chunk({"text": "!"}, finish="STOP")))
    )

    events = await router_stream(router, mode)

    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hi", "!"]
    done = events[-1]
    assert isinstance(done, Completed)
    assert (done.response.text, done.response.model) == ("Hi!", SERVED)


async def test_router_reports_the_kind_of_a_failure(
    router: Any, mock: respx.Router, mode: str
) -> None:
    route = mock.post(URL).respond(
        429, json=google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded", RETRY_INFO)
    )

    with pytest.raises(failover.AllProvidersFailed) as caught:
        await router_complete(router, mode)

    last = caught.value.last_error
    assert isinstance(last, RateLimited)
    assert (last.status, last.retry_after) == (429, 37.0)
    assert [a.error_kind for a in caught.value.attempts] == ["RateLimited"]
    assert route.call_count == 1
    assert KEY not in str(caught.value)


async def test_router_cut_stream_raises_with_partial_text(
    router: Any, mock: respx.Router, mode: str
) -> None:
    stream_route(mock).mock(
        side_effect=breaking_body(sse(chunk({"text": "Half"})), httpx.ReadError("reset"))
    )

    with pytest.raises(StreamInterrupted) as caught:
        await router_stream(router, mode)

    assert caught.value.partial_text == "Half"
