"""Anthropic (Messages API) adapter: translation only.

The SDK is imported here and nowhere else, so ``import failover`` stays cheap (anthropic
takes over a second to import). Clients are built over the base's ``httpx2`` clients
(anthropic refuses legacy ``httpx`` objects) with the SDK's retries off.

Where the wire format asks for a choice:

- ``temperature`` and ``top_p`` are no longer typed arguments of the SDK; they travel in
  ``extra_body``. Current Claude models refuse both at once, so when both are set only
  ``temperature`` is sent.
- JSON schema output uses the API's native structured outputs
  (``output_config.format``), with the schema adapted by the SDK's ``transform_schema``.
  JSON mode without a schema has no native form: it is emulated by a forced tool whose
  input is the answer, returned as JSON text.
- A prefill is sent as a final assistant turn without trailing whitespace (the API
  refuses it), and the whitespace cut off is not repeated at the start of the
  continuation, so ``prefill + text`` reads as one answer.
- Usage counts cached input tokens as input.
- Answers that arrive with HTTP 200 but are not answers (``refusal``,
  ``model_context_window_exceeded``, an ``error`` event inside a stream) carry no HTTP
  status and have the wire's reason as ``code``.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx2

from .._errors import (
    AuthenticationFailed,
    ConnectionFailed,
    ContentFiltered,
    ContextWindowExceeded,
    InvalidResponse,
    PermissionDenied,
    ProviderError,
    ServerError,
    Timeout,
)
from .._models import (
    ImagePart,
    Message,
    ReasoningPart,
    Request,
    Response,
    StreamEvent,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from .._types import FinishReason
from ._base import Capabilities, ProviderAdapter, StreamAccumulator, error_from_status
from ._history import THINKING_BUDGET, carried_reasoning, dropped, mapped_id, provider_options

__all__ = ["AnthropicAdapter"]

DEFAULT_BASE_URL = "https://api.anthropic.com"
#: The API requires ``max_tokens``; this is what a request that does not say gets.
DEFAULT_MAX_TOKENS = 4096
#: The forced tool that carries a JSON-mode answer (never shown as a tool call).
JSON_TOOL = "failover_json_response"

_STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}

#: In-stream ``error`` events have no HTTP status of their own: the kind comes from
#: ``error.type``, read as the status the API gives that type in a plain response.
_ERROR_TYPE_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "timeout_error": 408,
    "api_error": 500,
    "overloaded_error": 529,
}


# --- per-call translation state ---------------------------------------------------------


@dataclass
class _CallState:
    """What reading one answer needs to know about the request that asked for it."""

    #: Whitespace cut from the end of the prefill, not to be repeated by the answer.
    trim: str = ""
    json_mode: bool = False
    #: Stream content-block index -> tool call ordinal (client tools only).
    tool_blocks: dict[int, int] = field(default_factory=dict)
    json_block: int | None = None
    #: Stream content-block index -> the thinking block being streamed there.
    thinking: dict[int, _ThinkingParts] = field(default_factory=dict)

    def trimmed(self, text: str) -> str:
        """Drop from the first text what the prefill's cut whitespace already covers."""
        if not self.trim or not text:
            return text
        cut = 0
        while cut < len(text) and cut < len(self.trim) and text[cut] == self.trim[cut]:
            cut += 1
        # A partial match on a short first delta keeps the rest pending for the next one.
        self.trim = self.trim[cut:] if cut == len(text) else ""
        return text[cut:]


@dataclass
class _ThinkingParts:
    """A thinking block as it streams: its text deltas, then its signature."""

    text: list[str] = field(default_factory=list)
    signature: str | None = None
    redacted: str | None = None

    def add(self, delta: Any) -> None:
        if delta.type == "thinking_delta":
            self.text.append(delta.thinking)
        else:
            self.signature = delta.signature

    def part(self) -> ReasoningPart:
        return ReasoningPart(text="".join(self.text), signature=self.signature,
                             redacted=self.redacted, origin="anthropic")


def _reasoning_of(block: Any) -> ReasoningPart:
    if block.type == "redacted_thinking":
        return ReasoningPart(redacted=block.data, origin="anthropic")
    return ReasoningPart(text=block.thinking, signature=block.signature, origin="anthropic")


@dataclass
class _Sent:
    """A non-streaming answer with the state needed to translate it."""

    message: Any
    state: _CallState


@dataclass
class _Chunk:
    event: Any
    state: _CallState


class _Events:
    """The SDK's raw event stream, each event paired with the call's state."""

    def __init__(self, stream: Any, state: _CallState) -> None:
        self._stream = stream
        self.state = state
        self.response = stream.response

    def __iter__(self) -> _Events:
        return self

    def __next__(self) -> _Chunk:
        return _Chunk(next(self._stream), self.state)

    def close(self) -> None:
        self._stream.close()


class _AsyncEvents:
    def __init__(self, stream: Any, state: _CallState) -> None:
        self._stream = stream
        self.state = state
        self.response = stream.response

    def __aiter__(self) -> _AsyncEvents:
        return self

    async def __anext__(self) -> _Chunk:
        return _Chunk(await self._stream.__anext__(), self.state)

    async def aclose(self) -> None:
        await self._stream.close()


# --- request translation ----------------------------------------------------------------


def _image_block(part: ImagePart) -> dict[str, Any]:
    if part.data is not None:
        data = base64.b64encode(part.data).decode("ascii")
        return {"type": "image",
                "source": {"type": "base64", "media_type": part.media_type, "data": data}}
    url = part.url or ""
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        media_type = header[5:].split(";")[0] or part.media_type
        if ";base64" not in header:
            payload = base64.b64encode(urllib.parse.unquote_to_bytes(payload)).decode("ascii")
        return {"type": "image",
                "source": {"type": "base64", "media_type": media_type, "data": payload}}
    return {"type": "image", "source": {"type": "url", "url": url}}


#: What the API accepts as a tool_use id; others are mapped (see `_history.mapped_id`).
_TOOL_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def _tool_id(call_id: str | None) -> str:
    return mapped_id(call_id or "", allowed=_TOOL_ID, prefix="toolu_")


def _content_blocks(message: Message) -> list[dict[str, Any]]:
    parts = (TextPart(message.content),) if isinstance(message.content, str) else message.content
    blocks: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, ImagePart):
            blocks.append(_image_block(part))
        elif isinstance(part, TextPart) and part.text:  # the API refuses empty text blocks
            blocks.append({"type": "text", "text": part.text})
    return blocks


def _thinking_blocks(message: Message, provider: str) -> list[dict[str, Any]]:
    """The turn's own signed thinking, first in the turn as the API requires."""
    blocks: list[dict[str, Any]] = []
    for part in carried_reasoning(message.reasoning, "anthropic", provider):
        if part.redacted is not None:
            blocks.append({"type": "redacted_thinking", "data": part.redacted})
        else:
            blocks.append({"type": "thinking", "thinking": part.text,
                           "signature": part.signature})
    return blocks


def _message_blocks(message: Message, provider: str) -> list[dict[str, Any]]:
    if message.role == "tool":
        content = _content_blocks(message)
        result: dict[str, Any] = {"type": "tool_result",
                                  "tool_use_id": _tool_id(message.tool_call_id)}
        if len(content) == 1 and content[0]["type"] == "text":
            result["content"] = content[0]["text"]
        elif content:
            result["content"] = content
        return [result]
    if message.role != "assistant":
        return _content_blocks(message)
    blocks = _thinking_blocks(message, provider) + _content_blocks(message)
    blocks.extend(
        {"type": "tool_use", "id": _tool_id(call.id), "name": call.name,
         "input": dict(call.arguments)}
        for call in message.tool_calls
    )
    return blocks


def _messages(request: Request, prefill: str | None, provider: str) -> list[dict[str, Any]]:
    """Alternating user/assistant turns: tool results become user turns, and neighbours
    with the same role are merged (tool results first, as the API requires)."""
    turns: list[dict[str, Any]] = []
    for message in request.messages:
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _message_blocks(message, provider)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    if prefill:
        block = {"type": "text", "text": prefill}
        if turns and turns[-1]["role"] == "assistant":
            turns[-1]["content"].append(block)
        else:
            turns.append({"role": "assistant", "content": [block]})
    for turn in turns:
        content = turn["content"]
        if turn["role"] == "user":
            content.sort(key=lambda block: block["type"] != "tool_result")
        if len(content) == 1 and content[0]["type"] == "text":
            turn["content"] = content[0]["text"]
    return turns


def _tool_choice(request: Request, json_mode: bool) -> dict[str, Any] | None:
    choice = request.tool_choice
    if json_mode:
        if choice is not None and choice.mode == "tool" and choice.name:
            return {"type": "tool", "name": choice.name}
        if request.tools and (choice is None or choice.mode != "none"):
            return {"type": "any"}  # a user tool or the answer, but some tool
        return {"type": "tool", "name": JSON_TOOL}
    if choice is None or not request.tools:
        return None
    if choice.mode == "required":
        return {"type": "any"}
    if choice.mode == "tool" and choice.name:
        return {"type": "tool", "name": choice.name}
    if choice.mode == "none":
        return {"type": "none"}
    return {"type": "auto"}


def _tools(request: Request, json_mode: bool) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    for spec in request.tools:
        tool: dict[str, Any] = {"name": spec.name, "input_schema": dict(spec.parameters)}
        if spec.description:
            tool["description"] = spec.description
        tools.append(tool)
    if json_mode:
        tools.append({
            "name": JSON_TOOL,
            "description": "Give the complete answer as a JSON object.",
            "input_schema": {"type": "object"},
        })
    return tools


#: The options of the Messages API a call or the config may give (see `_history`).
_OPTIONS = frozenset({"thinking", "top_k", "cache_control", "service_tier",
                      "context_management", "container", "inference_geo"})
#: The smallest thinking budget the API takes.
_MIN_BUDGET = 1024


def _unsigned_tool_turn(request: Request) -> bool:
    """Whether the last assistant turn called tools without a signed Claude thinking block
    (a turn another provider answered)."""
    for message in reversed(request.messages):
        if message.role == "assistant":
            return bool(message.tool_calls) and not any(
                p.origin == "anthropic" and (p.signature or p.redacted)
                for p in message.reasoning)
    return False


def _mark_cache_breakpoints(kwargs: dict[str, Any], cache_control: Any) -> None:
    """``cache_control`` at the end of the system prompt and of the conversation so far:
    the whole prefix is cached, and read back by the next turn."""
    system = kwargs.get("system")
    if system:
        kwargs["system"] = [{"type": "text", "text": system, "cache_control": cache_control}]
    last = kwargs["messages"][-1]
    if isinstance(last["content"], str):
        last["content"] = [{"type": "text", "text": last["content"]}]
    if last["content"]:
        last["content"][-1] = {**last["content"][-1], "cache_control": cache_control}


# --- response translation -----------------------------------------------------------------


def _finish_reason(stop_reason: str | None, *, tool_calls: bool) -> FinishReason:
    """The unified finish reason; raises for answers that are not answers."""
    if stop_reason == "refusal":
        raise ContentFiltered("the model refused to answer (stop_reason: refusal)",
                              code="refusal")
    if stop_reason == "model_context_window_exceeded":
        raise ContextWindowExceeded(
            "the model's context window filled up (stop_reason: model_context_window_exceeded)",
            code="model_context_window_exceeded",
        )
    reason = _STOP_REASONS.get(stop_reason or "")
    if reason is None:
        raise InvalidResponse(f"unknown stop_reason {stop_reason!r}", code="stop_reason")
    if reason == "tool_calls" and not tool_calls:
        return "stop"  # only the JSON-mode tool was called: that is a plain answer
    return reason


def _usage(usage: Any, previous: Usage | None = None) -> Usage:
    if usage is None:
        return previous or Usage()
    fresh = getattr(usage, "input_tokens", None)
    if fresh is None:
        input_tokens = previous.input_tokens if previous else 0
    else:
        input_tokens = (fresh + (getattr(usage, "cache_creation_input_tokens", None) or 0)
                        + (getattr(usage, "cache_read_input_tokens", None) or 0))
    output_tokens = getattr(usage, "output_tokens", None)
    if output_tokens is None:
        output_tokens = previous.output_tokens if previous else 0
    return Usage(input_tokens=input_tokens, output_tokens=output_tokens)


def _status_error_message(exc: Any) -> str:
    message = getattr(exc, "api_message", None)
    if isinstance(message, str) and message:
        return message
    body = getattr(exc, "body", None)
    if isinstance(body, str) and body.strip():
        return body.strip()[:500]
    return f"HTTP {getattr(exc, 'status_code', '?')}"


# --- the adapter --------------------------------------------------------------------------


class AnthropicAdapter(ProviderAdapter):
    default_capabilities = Capabilities(tools=True, json_schema=True, images=True, prefill=True)
    wire = "anthropic"

    # -- clients -----------------------------------------------------------------------

    def _client_kwargs(self, api_key: str | None) -> dict[str, Any]:
        headers: dict[str, Any] = self.headers()
        if api_key is None:
            # ``api_key: none`` (a local server): send no key at all. Without this the SDK
            # refuses to send, or picks a key up from the environment and sends it along.
            given = {name.lower() for name in headers}
            for name in ("Authorization", "X-Api-Key"):
                if name.lower() not in given:
                    headers[name] = anthropic.omit
        return {
            "api_key": api_key,
            # Explicit, so the SDK's own environment lookup never moves a configured provider.
            "base_url": self.config.base_url or DEFAULT_BASE_URL,
            "max_retries": 0,
            "timeout": httpx2.Timeout(self.timeouts.request, connect=self.timeouts.connect),
            "default_headers": headers,
        }

    def _make_sync_client(self, api_key: str | None, http_client: httpx2.Client) -> Any:
        return anthropic.Anthropic(http_client=http_client, **self._client_kwargs(api_key))

    def _make_async_client(self, api_key: str | None, http_client: httpx2.AsyncClient) -> Any:
        return anthropic.AsyncAnthropic(http_client=http_client, **self._client_kwargs(api_key))

    # -- requests ----------------------------------------------------------------------

    def _params(self, request: Request) -> tuple[dict[str, Any], _CallState]:
        state = _CallState()
        schema = request.response_format
        state.json_mode = schema is not None and schema.schema is None
        prefill = None
        if request.prefill:
            prefill = request.prefill.rstrip()
            state.trim = request.prefill[len(prefill):]
        kwargs: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": _messages(request, prefill, self.name),
        }
        if request.system:
            kwargs["system"] = request.system
        if request.stop:
            kwargs["stop_sequences"] = list(request.stop)
        tools = _tools(request, state.json_mode)
        if tools:
            kwargs["tools"] = tools
        choice = _tool_choice(request, state.json_mode)
        if choice is not None:
            kwargs["tool_choice"] = choice
        if schema is not None and schema.schema is not None:
            kwargs["output_config"] = {"format": {
                "type": "json_schema", "schema": anthropic.transform_schema(dict(schema.schema)),
            }}
        user_id = request.metadata.get("user_id")
        if user_id:
            kwargs["metadata"] = {"user_id": user_id}
        options = provider_options(request, self.config.options, "anthropic", _OPTIONS, self.name)
        cache = options.pop("cache_control", None)
        if cache is not None:
            _mark_cache_breakpoints(kwargs, cache)
        thinking = self._thinking(request, options.pop("thinking", None), kwargs)
        extra: dict[str, Any] = {**self.config.extra, **options}
        if thinking is not None:
            extra["thinking"] = thinking
        extra.update(self._sampling(request, thinking))
        if extra:
            kwargs["extra_body"] = extra
        return kwargs, state

    def _sampling(self, request: Request, thinking: Any) -> dict[str, float]:
        if thinking is not None and thinking.get("type") == "enabled":
            if request.temperature is not None or request.top_p is not None:
                dropped(self.name, "temperature and top_p", "the API refuses them with thinking")
            return {}
        if request.temperature is not None:
            return {"temperature": request.temperature}
        if request.top_p is not None:
            return {"top_p": request.top_p}
        return {}

    def _thinking(self, request: Request, explicit: Any,
                  kwargs: dict[str, Any]) -> dict[str, Any] | None:
        """The ``thinking`` to send: the explicit option, else the unified ``reasoning``
        as a budget; None where the API would refuse it for this request."""
        thinking = explicit if isinstance(explicit, dict) else self._budget(request, kwargs)
        if thinking is None or thinking.get("type") != "enabled":
            return thinking
        forced = kwargs.get("tool_choice", {}).get("type") in ("any", "tool")
        if forced:
            dropped(self.name, "thinking", "the API refuses it with a forced tool choice")
            return None
        if _unsigned_tool_turn(request):
            dropped(self.name, "thinking", "the last assistant turn called tools without a "
                    "Claude thinking block (it came from another provider): the API requires "
                    "one there while thinking is on")
            return None
        return thinking

    def _budget(self, request: Request, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        effort = request.reasoning
        if effort is None:
            return None
        if not self.capabilities.reasoning:
            dropped(self.name, "reasoning", "capabilities.reasoning is false")
            return None
        if effort == "none":
            return {"type": "disabled"}
        budget = THINKING_BUDGET[effort]
        if request.max_tokens is None:
            kwargs["max_tokens"] = DEFAULT_MAX_TOKENS + budget  # room for the answer too
        elif budget >= request.max_tokens:
            budget = request.max_tokens - 1
            if budget < _MIN_BUDGET:
                dropped(self.name, "reasoning", f"max_tokens {request.max_tokens} leaves no "
                        f"room for a thinking budget (at least {_MIN_BUDGET})")
                return None
        return {"type": "enabled", "budget_tokens": budget}

    def _send(self, client: Any, request: Request, timeout: httpx2.Timeout) -> Any:
        kwargs, state = self._params(request)
        return _Sent(client.messages.create(**kwargs, timeout=timeout), state)

    async def _asend(self, client: Any, request: Request, timeout: httpx2.Timeout) -> Any:
        kwargs, state = self._params(request)
        return _Sent(await client.messages.create(**kwargs, timeout=timeout), state)

    def _open_stream(self, client: Any, request: Request, timeout: httpx2.Timeout) -> Any:
        kwargs, state = self._params(request)
        return _Events(client.messages.create(**kwargs, stream=True, timeout=timeout), state)

    async def _aopen_stream(self, client: Any, request: Request, timeout: httpx2.Timeout) -> Any:
        kwargs, state = self._params(request)
        stream = await client.messages.create(**kwargs, stream=True, timeout=timeout)
        return _AsyncEvents(stream, state)

    # -- answers -----------------------------------------------------------------------

    def _to_response(self, raw: Any) -> Response:
        sent = raw if isinstance(raw, _Sent) else _Sent(raw, _CallState())
        message, state = sent.message, sent.state
        texts: list[str] = []
        calls: list[ToolCall] = []
        reasoning: list[ReasoningPart] = []
        for block in message.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type in ("thinking", "redacted_thinking"):
                reasoning.append(_reasoning_of(block))
            elif block.type == "tool_use":
                arguments = block.input
                if not isinstance(arguments, dict):
                    raise InvalidResponse(f"tool_use {block.name!r} input is not an object")
                if state.json_mode and block.name == JSON_TOOL:
                    texts.append(json.dumps(arguments))
                else:
                    calls.append(ToolCall(id=block.id, name=block.name, arguments=arguments))
        finish = _finish_reason(message.stop_reason, tool_calls=bool(calls))
        text = state.trimmed("".join(texts))
        return Response(
            text=text,
            finish_reason=finish,
            usage=_usage(message.usage),
            provider=self.name,
            model=message.model or self.model,
            tool_calls=tuple(calls),
            raw=message,
            reasoning=tuple(reasoning),
        )

    def _chunk_events(self, chunk: Any, acc: StreamAccumulator) -> Iterable[StreamEvent]:
        event, state = chunk.event, chunk.state
        kind = event.type
        if kind == "message_start":
            acc.served_model = event.message.model or None
            acc.usage = _usage(event.message.usage, acc.usage)
        elif kind == "content_block_start":
            block = event.content_block
            if block.type == "tool_use":
                if state.json_mode and block.name == JSON_TOOL:
                    state.json_block = event.index
                else:
                    ordinal = len(state.tool_blocks)
                    state.tool_blocks[event.index] = ordinal
                    # The accumulator keys parts by block index; callers see ordinals.
                    acc.tool_call(event.index, id=block.id, name=block.name)
                    yield ToolCallDelta(index=ordinal, id=block.id, name=block.name)
            elif block.type == "text" and block.text:
                text = state.trimmed(block.text)
                if text:
                    yield acc.text(text)
            elif block.type in ("thinking", "redacted_thinking"):
                state.thinking[event.index] = _ThinkingParts(
                    redacted=getattr(block, "data", None))
        elif kind == "content_block_delta":
            delta = event.delta
            if delta.type in ("thinking_delta", "signature_delta"):
                state.thinking[event.index].add(delta)
            elif delta.type == "text_delta":
                text = state.trimmed(delta.text)
                if text:
                    yield acc.text(text)
            elif delta.type == "input_json_delta" and delta.partial_json:
                if event.index == state.json_block:
                    yield acc.text(delta.partial_json)
                elif event.index in state.tool_blocks:
                    acc.tool_call(event.index, arguments=delta.partial_json)
                    yield ToolCallDelta(index=state.tool_blocks[event.index],
                                        arguments=delta.partial_json)
        elif kind == "content_block_stop" and event.index in state.thinking:
            acc.reasoning.append(state.thinking.pop(event.index).part())
        elif kind == "message_delta":
            acc.usage = _usage(event.usage, acc.usage)
            stop_reason = event.delta.stop_reason
            if stop_reason is not None:
                acc.finish_reason = _finish_reason(stop_reason,
                                                   tool_calls=bool(state.tool_blocks))

    def _stream_http_response(self, opened: Any) -> httpx2.Response | None:
        return opened.response  # type: ignore[no-any-return]

    def _answer_from_json(self, data: Any, opened: Any) -> Any:
        if not isinstance(data, dict):
            raise InvalidResponse(f"expected a message, got JSON {type(data).__name__}",
                                  provider=self.name)
        if data.get("type") == "error":
            found = data.get("error")
            error: dict[str, Any] = found if isinstance(found, dict) else {}
            raise self._stream_error_event(str(error.get("message") or "error"),
                                           error.get("type"))
        return _Sent(anthropic.types.Message.construct(**data), opened.state)

    def _finished(self, chunk: Any) -> bool:
        # message_delta carries the stop reason and the final usage; message_stop ends it.
        return bool(chunk.event.type == "message_stop")

    # -- errors ------------------------------------------------------------------------

    def _map_error(self, exc: BaseException) -> ProviderError | None:
        if isinstance(exc, anthropic.APITimeoutError):
            return Timeout("request timed out", provider=self.name)
        if isinstance(exc, anthropic.APIConnectionError):
            cause = exc.__cause__ or exc.__context__
            why = f"{type(cause).__name__}: {cause}" if cause else exc.message
            return ConnectionFailed(f"connection failed ({why})", provider=self.name)
        if isinstance(exc, anthropic.APIStatusError):
            return self._status_error(exc)
        if isinstance(exc, anthropic.APIResponseValidationError):
            return InvalidResponse(f"response does not match the schema: {exc.message}",
                                   provider=self.name, status=exc.status_code)
        if isinstance(exc, anthropic.CredentialsError):
            return AuthenticationFailed(f"no usable credentials: {exc}", provider=self.name)
        return None

    def _status_error(self, exc: anthropic.APIStatusError) -> ProviderError:
        message = _status_error_message(exc)
        code = exc.type or exc.error_code
        if exc.status_code == 200:
            return self._stream_error_event(message, code)
        if code == "billing_error":
            # No credit left on this key: waiting will not help, people must act.
            return PermissionDenied(message, provider=self.name, status=exc.status_code,
                                    code=code)
        return error_from_status(exc.status_code, message, provider=self.name,
                                 headers=exc.response.headers, code=code)

    def _stream_error_event(self, message: str, code: str | None) -> ProviderError:
        """An ``error`` event inside a 200 stream: the kind by ``error.type``."""
        text = f"error event in stream: {message}"
        if code == "billing_error":
            return PermissionDenied(text, provider=self.name, code=code)
        equivalent = _ERROR_TYPE_STATUS.get(code or "")
        if equivalent is None:
            return ServerError(text, provider=self.name, code=code)
        err = error_from_status(equivalent, text, provider=self.name, code=code)
        err.status = None  # the HTTP status was 200; the kind says what went wrong
        return err

