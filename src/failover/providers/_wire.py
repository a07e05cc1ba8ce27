"""Each provider's real wire format, built as bytes and dicts, and read back from requests.

The test kit (`failover.testing`) and the simulated ``fake`` provider answer through the
real SDKs, so what they send must be byte-for-byte what OpenAI Chat Completions,
Anthropic Messages and Gemini ``generateContent`` send: JSON answers, SSE streams (with
OpenAI's ``[DONE]`` and usage chunk, Anthropic's ``event:`` lines, Gemini's finish
reason and usage in the last chunk), refusals, and error bodies with the fields each SDK
reads (``code``, ``type``, ``status``, Gemini's ``RetryInfo``). No SDK is imported here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

__all__ = [
    "DEFAULT_TEXT",
    "JSON_CONTENT_TYPE",
    "MALFORMED_BODY",
    "SSE_CONTENT_TYPE",
    "ChunkedBody",
    "Platform",
    "SseEvent",
    "WireFormat",
    "WireRequest",
    "WireToolCall",
    "completion_body",
    "context_window_error",
    "detect_format",
    "error_body",
    "malformed_event",
    "read_request",
    "refusal_body",
    "refusal_events",
    "simulated_signature",
    "split_text",
    "sse",
    "stream_events",
    "tool_calls_from",
]

WireFormat = Literal["openai", "anthropic", "gemini"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]

DEFAULT_TEXT = "This is a simulated answer."
JSON_CONTENT_TYPE = "application/json"
SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"
#: A 200 body that starts like JSON and is not: what a proxy's error page looks like.
MALFORMED_BODY = b'{"id": "simulated", "choices": [<html><body>502 Bad Gateway</body></html>'

_CREATED = 1_700_000_000  # a fixed timestamp keeps simulated answers reproducible


# --- bodies ------------------------------------------------------------------------------


class ChunkedBody:
    """A response body: these chunks, then maybe a transport error (a cut or a stall).

    Mixed into the ``httpx2`` (simulator) and ``httpx`` (respx) byte-stream classes.
    """

    def __init__(self, chunks: Sequence[bytes], error: Exception | None = None) -> None:
        self._chunks = tuple(chunks)
        self._error = error

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks
        if self._error is not None:
            raise self._error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk
        if self._error is not None:
            raise self._error


# --- reading requests -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WireRequest:
    """What a provider request asks for, read from its method, URL and body."""

    format: WireFormat | None
    stream: bool
    model: str | None
    body: Any = None
    #: OpenAI sends usage in a stream only when asked (``stream_options``).
    include_usage: bool = False
    #: The cloud that serves the format, when not its maker's own API.
    platform: Platform | None = None

    @property
    def input_tokens(self) -> int:
        """A rough count (4 characters a token) for simulated usage figures."""
        if self.body is None:
            return 1
        return max(1, len(json.dumps(self.body)) // 4)


_GEMINI_PATH = re.compile(
    r"/models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent)$"
)
#: Claude on Bedrock: the model in the path, streaming by the path's last segment.
_BEDROCK_PATH = re.compile(
    r"/model/(?P<model>[^/]+)/(?P<method>invoke|invoke-with-response-stream)$"
)
#: Claude on Vertex AI.
_VERTEX_CLAUDE_PATH = re.compile(
    r"/publishers/anthropic/models/(?P<model>[^/:]+):(?P<method>rawPredict|streamRawPredict)$"
)
_AZURE_PATH = re.compile(r"/openai/deployments/(?P<model>[^/]+)/chat/completions$")

#: Where a request went when not to its model maker's own API.
Platform = Literal["azure", "bedrock", "vertex"]


def detect_format(url: str) -> WireFormat | None:
    """``/chat/completions`` -> openai, ``/v1/messages`` (or Bedrock's ``/invoke``, Vertex's
    ``:rawPredict``) -> anthropic, ``:generateContent`` or ``:streamGenerateContent`` ->
    gemini; None for anything else."""
    return _route(urlsplit(url).path.rstrip("/"))[0]


def _route(path: str) -> tuple[WireFormat | None, Platform | None, re.Match[str] | None]:
    if path.endswith("/chat/completions"):
        return "openai", ("azure" if (m := _AZURE_PATH.search(path)) else None), m
    if path.endswith("/v1/messages") or path == "/messages":
        return "anthropic", None, None
    if match := _BEDROCK_PATH.search(path):
        return "anthropic", "bedrock", match
    if match := _VERTEX_CLAUDE_PATH.search(path):
        return "anthropic", "vertex", match
    if match := _GEMINI_PATH.search(path):
        return "gemini", ("vertex" if "/projects/" in path else None), match
    return None, None, None


_STREAM_METHODS = frozenset({"streamGenerateContent", "invoke-with-response-stream",
                             "streamRawPredict"})


def read_request(url: str, content: bytes) -> WireRequest:
    """The format, platform, streaming flag and model of a provider request."""
    fmt, platform, match = _route(urlsplit(url).path.rstrip("/"))
    body: Any
    try:
        body = json.loads(content) if content else None
    except (ValueError, UnicodeDecodeError):
        body = None
    fields = body if isinstance(body, dict) else {}
    if match is not None and "method" in match.groupdict():
        # The model and whether it streams are in the URL (Gemini, Bedrock, Vertex).
        return WireRequest(
            format=fmt,
            stream=match.group("method") in _STREAM_METHODS,
            model=unquote(match.group("model")),
            body=body,
            platform=platform,
        )
    model = fields.get("model")
    options = fields.get("stream_options")
    return WireRequest(
        format=fmt,
        stream=fields.get("stream") is True,
        model=model if isinstance(model, str) else (
            match.group("model") if match is not None else None),
        body=body,
        include_usage=isinstance(options, dict) and options.get("include_usage") is True,
        platform=platform,
    )


# --- pieces ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WireToolCall:
    id: str
    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)


def tool_calls_from(values: Iterable[Any] | None) -> tuple[WireToolCall, ...]:
    """Tool calls given as `failover.ToolCall`-like objects or ``{"name", "arguments"}``."""
    calls: list[WireToolCall] = []
    for i, value in enumerate(values or ()):
        if isinstance(value, WireToolCall):
            calls.append(value)
            continue
        if isinstance(value, Mapping):
            name, arguments, id_ = value.get("name"), value.get("arguments", {}), value.get("id")
        else:
            name = getattr(value, "name", None)
            arguments = getattr(value, "arguments", {})
            id_ = getattr(value, "id", None)
        if not isinstance(name, str) or not name:
            raise TypeError(
                f"tool call {i}: expected a ToolCall or a mapping with a 'name' and "
                f"'arguments' (a dict), got {value!r}"
            )
        if isinstance(arguments, str):
            arguments = json.loads(arguments)
        if not isinstance(arguments, Mapping):
            raise TypeError(f"tool call {name!r}: 'arguments' must be a dict, got {arguments!r}")
        calls.append(WireToolCall(id=id_ or f"call_sim_{i}", name=name, arguments=arguments))
    return tuple(calls)


def split_text(text: str, chunk_size: int | None = None) -> list[str]:
    """Stream pieces: ``chunk_size`` characters each, or one word (with its space) each."""
    if not text:
        return []
    if chunk_size is not None:
        return [text[i : i + chunk_size] for i in range(0, len(text), max(1, chunk_size))]
    return re.findall(r"\S+\s*|\s+", text)


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One SSE event as sent, and whether it carries answer content (text or tool call)."""

    data: bytes
    content: bool = False


def sse(data: Any, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def _output_tokens(text: str, calls: Sequence[WireToolCall]) -> int:
    return max(1, len(text.split()) + sum(len(json.dumps(c.arguments)) // 4 for c in calls))


def _finish(calls: Sequence[WireToolCall], finish: FinishReason | None) -> FinishReason:
    return finish or ("tool_calls" if calls else "stop")


_ANTHROPIC_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
_GEMINI_FINISH = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",  # Gemini keeps STOP for function calls
    "content_filter": "SAFETY",
}


# --- whole answers --------------------------------------------------------------------


def completion_body(
    fmt: WireFormat,
    *,
    text: str,
    model: str,
    tool_calls: Sequence[WireToolCall] = (),
    input_tokens: int = 1,
    output_tokens: int | None = None,
    finish: FinishReason | None = None,
    reasoning: str | None = None,
) -> dict[str, Any]:
    """A non-streaming answer in ``fmt``'s JSON; ``reasoning``: the model's thinking, as
    a signed thinking block (anthropic) or a thought part with thought signatures
    (gemini); Chat Completions returns none."""
    out = _output_tokens(text, tool_calls) if output_tokens is None else output_tokens
    reason = _finish(tool_calls, finish)
    if fmt == "openai":
        message: dict[str, Any] = {"role": "assistant", "content": text or None,
                                   "refusal": None}
        if tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                for c in tool_calls
            ]
        return {
            "id": "chatcmpl-simulated",
            "object": "chat.completion",
            "created": _CREATED,
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": reason}],
            "usage": {"prompt_tokens": input_tokens, "completion_tokens": out,
                      "total_tokens": input_tokens + out},
            "system_fingerprint": None,
        }
    if fmt == "anthropic":
        content: list[dict[str, Any]] = [] if reasoning is None else [
            {"type": "thinking", "thinking": reasoning,
             "signature": simulated_signature("anthropic", reasoning)}]
        content += [{"type": "text", "text": text}] if text else []
        content += [{"type": "tool_use", "id": c.id, "name": c.name, "input": dict(c.arguments)}
                    for c in tool_calls]
        return {
            "id": "msg_simulated",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": _ANTHROPIC_STOP[reason],
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": out},
        }
    parts = _gemini_parts(text, tool_calls, reasoning)
    return {
        "candidates": [{"content": {"parts": parts, "role": "model"},
                        "finishReason": _GEMINI_FINISH[reason], "index": 0}],
        "usageMetadata": _gemini_usage(input_tokens, out),
        "modelVersion": model,
        "responseId": "simulated",
    }


def simulated_signature(fmt: WireFormat, text: str) -> str:
    """The signature a simulated provider gives its reasoning: it accepts only its own
    back, as the real ones do (`failover.testing` checks each request for it)."""
    digest = hashlib.sha256(f"{fmt}:{text}".encode()).hexdigest()[:24]
    if fmt == "gemini":
        return base64.b64encode(f"sim-gemini-{digest}".encode()).decode()
    return f"sim-{fmt}-{digest}"


def _gemini_parts(text: str, calls: Sequence[WireToolCall],
                  reasoning: str | None) -> list[dict[str, Any]]:
    """Gemini's parts: the thought first, its signature on the first function call (or on
    the text when there is none)."""
    parts: list[dict[str, Any]] = [] if reasoning is None else [
        {"text": reasoning, "thought": True}]
    parts += [{"text": text}] if text else []
    parts += [{"functionCall": {"name": c.name, "args": dict(c.arguments)}} for c in calls]
    if reasoning is not None:
        signed = next((p for p in parts if "functionCall" in p), parts[-1])
        signed["thoughtSignature"] = simulated_signature("gemini", reasoning)
    return parts


def _gemini_usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {"promptTokenCount": input_tokens, "candidatesTokenCount": output_tokens,
            "totalTokenCount": input_tokens + output_tokens}


# --- streams --------------------------------------------------------------------------


def stream_events(
    fmt: WireFormat,
    *,
    text: str,
    model: str,
    tool_calls: Sequence[WireToolCall] = (),
    input_tokens: int = 1,
    output_tokens: int | None = None,
    finish: FinishReason | None = None,
    chunk_size: int | None = None,
    include_usage: bool = True,
    reasoning: str | None = None,
) -> list[SseEvent]:
    """A whole streamed answer in ``fmt``'s SSE, one `SseEvent` per event."""
    out = _output_tokens(text, tool_calls) if output_tokens is None else output_tokens
    reason = _finish(tool_calls, finish)
    pieces = split_text(text, chunk_size)
    if fmt == "openai":
        return _openai_stream(pieces, model, tool_calls, input_tokens, out, reason,
                              include_usage)
    if fmt == "anthropic":
        events = _anthropic_stream(pieces, model, tool_calls, input_tokens, out, reason)
        return events if reasoning is None else [
            events[0], *_anthropic_thinking(reasoning), *_shifted(events[1:])]
    return _gemini_stream(pieces, model, tool_calls, input_tokens, out, reason, reasoning)


def _anthropic_thinking(reasoning: str) -> list[SseEvent]:
    """A thinking block at index 0: its text, then its signature."""
    signature = simulated_signature("anthropic", reasoning)
    return [
        SseEvent(sse({"type": "content_block_start", "index": 0, "content_block": {
            "type": "thinking", "thinking": "", "signature": ""}}, "content_block_start")),
        SseEvent(sse({"type": "content_block_delta", "index": 0, "delta": {
            "type": "thinking_delta", "thinking": reasoning}}, "content_block_delta")),
        SseEvent(sse({"type": "content_block_delta", "index": 0, "delta": {
            "type": "signature_delta", "signature": signature}}, "content_block_delta")),
        SseEvent(sse({"type": "content_block_stop", "index": 0}, "content_block_stop")),
    ]


def _shifted(events: list[SseEvent]) -> list[SseEvent]:
    """The events with every content-block index one further (a block went before)."""
    out = []
    for event in events:
        head, _, data = event.data.decode().partition("data: ")
        body = json.loads(data)
        if isinstance(body, dict) and "index" in body:
            body["index"] += 1
            event = SseEvent(f"{head}data: {json.dumps(body, separators=(',', ':'))}\n\n"
                             .encode(), event.content)
        out.append(event)
    return out


def _openai_chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    return sse({
        "id": "chatcmpl-simulated", "object": "chat.completion.chunk", "created": _CREATED,
        "model": model, "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    })  # fmt: skip


def _openai_stream(
    pieces: list[str], model: str, calls: Sequence[WireToolCall], input_tokens: int,
    out: int, reason: str, include_usage: bool,
) -> list[SseEvent]:  # fmt: skip
    events = [SseEvent(_openai_chunk(model, {"role": "assistant", "content": ""}))]
    events += [SseEvent(_openai_chunk(model, {"content": p}), content=True) for p in pieces]
    for index, call in enumerate(calls):
        arguments = json.dumps(call.arguments)
        half = len(arguments) // 2
        head = {"index": index, "id": call.id, "type": "function",
                "function": {"name": call.name, "arguments": arguments[:half]}}
        tail = {"index": index, "function": {"arguments": arguments[half:]}}
        events.append(SseEvent(_openai_chunk(model, {"tool_calls": [head]}), content=True))
        events.append(SseEvent(_openai_chunk(model, {"tool_calls": [tail]}), content=True))
    events.append(SseEvent(_openai_chunk(model, {}, reason)))
    if include_usage:
        events.append(SseEvent(sse({
            "id": "chatcmpl-simulated", "object": "chat.completion.chunk",
            "created": _CREATED, "model": model, "system_fingerprint": None, "choices": [],
            "usage": {"prompt_tokens": input_tokens, "completion_tokens": out,
                      "total_tokens": input_tokens + out},
        })))  # fmt: skip
    events.append(SseEvent(sse("[DONE]")))
    return events


def _anthropic_stream(
    pieces: list[str], model: str, calls: Sequence[WireToolCall], input_tokens: int,
    out: int, reason: str,
) -> list[SseEvent]:  # fmt: skip
    start = {"type": "message_start", "message": {
        "id": "msg_simulated", "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}  # fmt: skip
    events = [SseEvent(sse(start, "message_start")), SseEvent(sse({"type": "ping"}, "ping"))]
    index = 0
    if pieces:
        events.append(SseEvent(sse({"type": "content_block_start", "index": index,
                                    "content_block": {"type": "text", "text": ""}},
                                   "content_block_start")))
        for piece in pieces:
            delta = {"type": "content_block_delta", "index": index,
                     "delta": {"type": "text_delta", "text": piece}}
            events.append(SseEvent(sse(delta, "content_block_delta"), content=True))
        events.append(SseEvent(sse({"type": "content_block_stop", "index": index},
                                   "content_block_stop")))
        index += 1
    for call in calls:
        block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
        events.append(SseEvent(sse({"type": "content_block_start", "index": index,
                                    "content_block": block}, "content_block_start")))
        arguments = json.dumps(call.arguments)
        half = len(arguments) // 2
        for part in (arguments[:half], arguments[half:]):
            delta = {"type": "content_block_delta", "index": index,
                     "delta": {"type": "input_json_delta", "partial_json": part}}
            events.append(SseEvent(sse(delta, "content_block_delta"), content=True))
        events.append(SseEvent(sse({"type": "content_block_stop", "index": index},
                                   "content_block_stop")))
        index += 1
    events.append(SseEvent(sse({"type": "message_delta",
                                "delta": {"stop_reason": _ANTHROPIC_STOP[reason],
                                          "stop_sequence": None},
                                "usage": {"output_tokens": out}}, "message_delta")))
    events.append(SseEvent(sse({"type": "message_stop"}, "message_stop")))
    return events


def _gemini_chunk(model: str, parts: list[dict[str, Any]], **candidate: Any) -> dict[str, Any]:
    return {"candidates": [{"content": {"parts": parts, "role": "model"}, **candidate,
                            "index": 0}],
            "modelVersion": model, "responseId": "simulated"}


def _gemini_stream(
    pieces: list[str], model: str, calls: Sequence[WireToolCall], input_tokens: int,
    out: int, reason: str, reasoning: str | None = None,
) -> list[SseEvent]:  # fmt: skip
    bodies = [_gemini_chunk(model, [{"text": p}]) for p in pieces]
    if calls:
        bodies.append(_gemini_chunk(model, [
            {"functionCall": {"name": c.name, "args": dict(c.arguments)}} for c in calls
        ]))  # fmt: skip
    if reasoning is not None:
        thought = _gemini_chunk(model, [{"text": reasoning, "thought": True}])
        signature = simulated_signature("gemini", reasoning)
        signed = bodies[-1] if bodies else thought
        signed["candidates"][0]["content"]["parts"][0]["thoughtSignature"] = signature
        bodies.insert(0, thought)
    if not bodies:
        bodies.append(_gemini_chunk(model, [{"text": ""}]))
    last = bodies[-1]
    last["candidates"][0]["finishReason"] = _GEMINI_FINISH[reason]
    last["usageMetadata"] = _gemini_usage(input_tokens, out)
    return [SseEvent(sse(body), content=True) for body in bodies]


# --- refusals (200s that are not answers) -----------------------------------------------


def refusal_body(fmt: WireFormat, *, model: str, input_tokens: int = 1) -> dict[str, Any]:
    """A 200 that carries a content-policy refusal or safety block, not an answer."""
    if fmt == "openai":
        return completion_body(fmt, text="", model=model, input_tokens=input_tokens,
                               output_tokens=0, finish="content_filter")
    if fmt == "anthropic":
        return completion_body(fmt, text="", model=model, input_tokens=input_tokens,
                               output_tokens=0, finish="content_filter")
    return {"promptFeedback": {"blockReason": "SAFETY"},
            "usageMetadata": {"promptTokenCount": input_tokens, "totalTokenCount": input_tokens},
            "modelVersion": model, "responseId": "simulated"}


def refusal_events(fmt: WireFormat, *, model: str, input_tokens: int = 1) -> list[SseEvent]:
    if fmt == "gemini":
        return [SseEvent(sse(refusal_body(fmt, model=model, input_tokens=input_tokens)))]
    return stream_events(fmt, text="", model=model, input_tokens=input_tokens,
                         output_tokens=0, finish="content_filter")


def malformed_event(fmt: WireFormat) -> bytes:
    """One SSE event whose data does not parse."""
    event = "event: content_block_delta\n" if fmt == "anthropic" else ""
    return f'{event}data: {{"type": "content_block_delta", "delta": {{"text": "tru\n\n'.encode()


# --- errors ---------------------------------------------------------------------------

_OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request (simulated)."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided (simulated)."),
    403: ("invalid_request_error", "unsupported_country_region_territory",
          "Country, region, or territory not supported (simulated)."),
    404: ("invalid_request_error", "model_not_found",
          "The model does not exist or you do not have access to it (simulated)."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests (simulated)."),
    500: ("server_error", None, "The server had an error while processing your request "
          "(simulated)."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later "
          "(simulated)."),
}
_ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request (simulated)."),
    401: ("authentication_error", "invalid x-api-key (simulated)"),
    403: ("permission_error", "Your API key does not have permission (simulated)."),
    404: ("not_found_error", "model: not found (simulated)"),
    413: ("request_too_large", "Request exceeds the maximum allowed size (simulated)."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit (simulated)."),
    500: ("api_error", "Internal server error (simulated)"),
    503: ("overloaded_error", "Overloaded (simulated)"),
    529: ("overloaded_error", "Overloaded (simulated)"),
}
_GEMINI_STATUS: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument (simulated)."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials (simulated)."),
    403: ("PERMISSION_DENIED", "The caller does not have permission (simulated)."),
    404: ("NOT_FOUND", "models/simulated is not found (simulated)."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota) (simulated)."),
    500: ("INTERNAL", "An internal error has occurred (simulated)."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later (simulated)."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete (simulated)."),
}


def error_body(
    fmt: WireFormat,
    status: int,
    message: str | None = None,
    *,
    retry_after: float | None = None,
    code: str | None = None,
    error_type: str | None = None,
) -> dict[str, Any]:
    """An error body as ``fmt``'s API sends it for ``status``."""
    if fmt == "openai":
        kind, default_code, default_message = _OPENAI_ERRORS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None,
                     f"HTTP {status} (simulated).")
        )  # fmt: skip
        return {"error": {"message": message or default_message, "type": error_type or kind,
                          "param": None, "code": code or default_code}}
    if fmt == "anthropic":
        kind, default_message = _ANTHROPIC_ERRORS.get(
            status, ("api_error" if status >= 500 else "invalid_request_error",
                     f"HTTP {status} (simulated)")
        )  # fmt: skip
        return {"type": "error",
                "error": {"type": error_type or kind, "message": message or default_message},
                "request_id": "req_simulated"}
    grpc, default_message = _GEMINI_STATUS.get(
        status, ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION",
                 f"HTTP {status} (simulated).")
    )  # fmt: skip
    error: dict[str, Any] = {"code": status, "message": message or default_message,
                             "status": error_type or grpc}
    if retry_after is not None:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                             "retryDelay": f"{retry_after:g}s"}]
    return {"error": error}


def context_window_error(
    fmt: WireFormat, *, tokens: int = 250_000, limit: int = 200_000
) -> tuple[int, dict[str, Any]]:
    """The status and body each API sends when the prompt does not fit the model."""
    if fmt == "openai":
        message = (f"This model's maximum context length is {limit} tokens. However, your "
                   f"messages resulted in {tokens} tokens. Please reduce the length of the "
                   "messages.")
        return 400, error_body(fmt, 400, message, code="context_length_exceeded")
    if fmt == "anthropic":
        return 400, error_body(fmt, 400, f"prompt is too long: {tokens} tokens > {limit} maximum")
    message = (f"The input token count ({tokens}) exceeds the maximum number of tokens allowed "
               f"({limit}).")
    return 400, error_body(fmt, 400, message)
