"""OpenAI Chat Completions, and every server that speaks it (Ollama, vLLM, Groq, gateways).

Translation only: a `Request` becomes a ``chat.completions.create`` call, the SDK's
answer (or exception) becomes a `Response` (or one error kind). ``base_url`` points the
same code at any OpenAI-compatible server; only parameters that are set are sent, so
servers that implement a subset of the API do not choke on nulls.

The ``fake`` provider subclasses this adapter and only swaps the network for an
in-process simulator of this wire format, so nothing here may assume the base URL is
reachable or real.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import openai
from openai.types.chat import ChatCompletion

from .._errors import (
    BadRequest,
    ConnectionFailed,
    ContentFiltered,
    InvalidResponse,
    ProviderError,
    Timeout,
)
from .._models import (
    ImagePart,
    JsonSchema,
    Message,
    Request,
    Response,
    StreamEvent,
    TextPart,
    ToolCall,
    Usage,
)
from ._base import (
    Capabilities,
    ProviderAdapter,
    StreamAccumulator,
    error_from_status,
    map_transport_error,
)
from ._history import carried_reasoning, dropped, mapped_id, provider_options

if TYPE_CHECKING:
    import httpx2

    from .._types import FinishReason

__all__ = ["DEFAULT_BASE_URL", "OpenAIAdapter"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    # What some compatible servers say instead of "stop".
    "eos": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}

# Azure-style gateways want the API version in the query string, not the body.
_QUERY_EXTRAS = ("api-version", "api_version")


class OpenAIAdapter(ProviderAdapter):
    """``type: openai``: the Chat Completions API at ``base_url``."""

    wire = "openai"

    default_capabilities = Capabilities(
        tools=True, json_schema=True, images=True, prefill=False, context_window=None
    )

    # -- clients -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.config.base_url or DEFAULT_BASE_URL

    def _client_kwargs(self, api_key: str | None) -> dict[str, Any]:
        versions = [str(v) for k, v in self.config.extra.items() if k in _QUERY_EXTRAS]
        query = {"api-version": versions[-1]} if versions else {}
        return {
            # The SDK would read OPENAI_API_KEY / OPENAI_BASE_URL from the environment:
            # config is the only source of truth, and keyless local servers take any string.
            "api_key": api_key or "none",
            "base_url": self.base_url,
            # Every attempt is counted and retried by the router, never by the SDK.
            "max_retries": 0,
            "default_headers": self.headers() or None,
            "default_query": query or None,
        }

    def _make_sync_client(self, api_key: str | None, http_client: httpx2.Client) -> Any:
        return openai.OpenAI(http_client=http_client, **self._client_kwargs(api_key))

    def _make_async_client(self, api_key: str | None, http_client: httpx2.AsyncClient) -> Any:
        return openai.AsyncOpenAI(http_client=http_client, **self._client_kwargs(api_key))

    # -- requests ----------------------------------------------------------------------

    def _uses_openai_itself(self) -> bool:
        return urlsplit(self.base_url).hostname == "api.openai.com"

    def build_params(self, request: Request, *, stream: bool = False) -> dict[str, Any]:
        """The keyword arguments of ``chat.completions.create`` for ``request``."""
        params: dict[str, Any] = {
            "model": self.model,
            "messages": _messages(request, self.name),
        }
        if request.max_tokens is not None:
            # OpenAI deprecated max_tokens (its reasoning models refuse it); compatible
            # servers mostly know only max_tokens.
            key = "max_completion_tokens" if self._uses_openai_itself() else "max_tokens"
            params[key] = request.max_tokens
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.top_p is not None:
            params["top_p"] = request.top_p
        if request.stop:
            params["stop"] = list(request.stop)
        if request.tools:
            params["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": dict(tool.parameters),
                    },
                }
                for tool in request.tools
            ]
            # tool_choice without tools is a 400 on OpenAI: dropped with the tools.
            if request.tool_choice is not None:
                choice = request.tool_choice
                params["tool_choice"] = (
                    {"type": "function", "function": {"name": choice.name}}
                    if choice.mode == "tool"
                    else choice.mode
                )
        if request.response_format is not None:
            fmt = request.response_format
            params["response_format"] = (
                {"type": "json_object"}
                if fmt.schema is None
                else {
                    "type": "json_schema",
                    "json_schema": {
                        "name": fmt.name,
                        "schema": _wire_schema(fmt),
                        "strict": fmt.strict,
                    },
                }
            )
        if stream:
            params["stream"] = True
            params["stream_options"] = {"include_usage": True}
        extra = {k: v for k, v in self.config.extra.items() if k not in _QUERY_EXTRAS}
        extra.update(self._options(request))
        if extra:
            params["extra_body"] = extra
        return params

    def _options(self, request: Request) -> dict[str, Any]:
        """The call's provider options, with ``reasoning`` as ``reasoning_effort``."""
        kind = self.config.type if self.config.type in ("openai", "azure") else "openai"
        options = provider_options(request, self.config.options, kind, _OPTIONS, self.name)
        if request.reasoning is not None and "reasoning_effort" not in options:
            if self.capabilities.reasoning:
                options["reasoning_effort"] = request.reasoning
            else:
                dropped(self.name, "reasoning", "capabilities.reasoning is false")
        return options

    def _send(self, client: Any, request: Request, timeout: httpx2.Timeout) -> Any:
        return client.chat.completions.create(**self.build_params(request), timeout=timeout)

    async def _asend(self, client: Any, request: Request, timeout: httpx2.Timeout) -> Any:
        return await client.chat.completions.create(**self.build_params(request), timeout=timeout)

    def _open_stream(self, client: Any, request: Request, timeout: httpx2.Timeout) -> Any:
        chunks = client.chat.completions.create(
            **self.build_params(request, stream=True), timeout=timeout
        )
        return _EndsAfterFinish(chunks)

    async def _aopen_stream(self, client: Any, request: Request, timeout: httpx2.Timeout) -> Any:
        chunks = await client.chat.completions.create(
            **self.build_params(request, stream=True), timeout=timeout
        )
        return _AsyncEndsAfterFinish(chunks)

    # -- responses ---------------------------------------------------------------------

    def _to_response(self, raw: Any) -> Response:
        # A gateway's HTML page with a 200 comes back from the SDK as a plain string.
        if isinstance(raw, (str, bytes)) or not hasattr(raw, "choices"):
            raise InvalidResponse(
                f"expected a chat completion, got {type(raw).__name__}", provider=self.name
            )
        if not raw.choices:
            raise InvalidResponse("chat completion has no choices", provider=self.name)
        choice = raw.choices[0]
        message = getattr(choice, "message", None)
        if message is None:
            raise InvalidResponse("chat completion choice has no message", provider=self.name)
        text = message.content or ""
        if not isinstance(text, str):
            raise InvalidResponse(
                f"message content is {type(text).__name__}, not text", provider=self.name
            )
        refusal = getattr(message, "refusal", None)
        if refusal and not text:
            raise ContentFiltered(f"the model refused: {refusal}", provider=self.name,
                                  status=200, code="refusal")
        calls = tuple(
            self._tool_call(call, i) for i, call in enumerate(message.tool_calls or ())
        )
        finish = self._finish_reason(choice.finish_reason, has_tool_calls=bool(calls))
        if finish is None:
            # A whole (non-streamed) body is complete even when a server leaves it out.
            finish = "tool_calls" if calls else "stop"
        return Response(
            text=text,
            finish_reason=finish,
            usage=_usage(raw.usage),
            provider=self.name,
            model=raw.model or self.model,
            tool_calls=calls,
            raw=raw,
        )

    def _tool_call(self, call: Any, index: int) -> ToolCall:
        function = getattr(call, "function", None)
        name = getattr(function, "name", None)
        if not name:
            raise InvalidResponse(f"tool call {index} has no function name", provider=self.name)
        blob = getattr(function, "arguments", None) or ""
        try:
            # Some compatible servers send the arguments already decoded.
            arguments = blob if isinstance(blob, dict) else json.loads(blob) if blob.strip() else {}
        except (ValueError, AttributeError):
            raise InvalidResponse(
                f"tool call {name!r} has arguments that are not JSON", provider=self.name
            ) from None
        if not isinstance(arguments, dict):
            raise InvalidResponse(
                f"tool call {name!r} has arguments that are not a JSON object",
                provider=self.name,
            )
        return ToolCall(id=call.id or f"call_{index}", name=name, arguments=arguments)

    def _finish_reason(self, raw: Any, *, has_tool_calls: bool) -> FinishReason | None:
        if raw is None:
            return None
        if raw == "content_filter":
            raise ContentFiltered("the provider's content filter stopped the answer",
                                  provider=self.name, status=200, code="content_filter")
        finish = _FINISH_REASONS.get(str(raw), "stop")
        # Some compatible servers say "stop" after emitting tool calls.
        if finish == "stop" and has_tool_calls:
            return "tool_calls"
        return finish

    # -- streams -----------------------------------------------------------------------

    def _chunk_events(self, chunk: Any, acc: StreamAccumulator) -> Iterable[StreamEvent]:
        if isinstance(chunk, (str, bytes)) or not hasattr(chunk, "choices"):
            raise InvalidResponse(f"malformed stream chunk: {type(chunk).__name__}",
                                  provider=self.name)
        events: list[StreamEvent] = []
        if chunk.model:
            acc.served_model = chunk.model
        if chunk.usage is not None:
            acc.usage = _usage(chunk.usage)
        for choice in chunk.choices or ():
            if getattr(choice, "index", 0) not in (0, None):
                continue  # only the first choice is ever requested
            delta = choice.delta
            if delta is not None:
                if getattr(delta, "refusal", None):
                    raise ContentFiltered(f"the model refused: {delta.refusal}",
                                          provider=self.name, status=200, code="refusal")
                if delta.content:
                    events.append(acc.text(delta.content))
                for call in delta.tool_calls or ():
                    events.append(self._tool_call_delta(call, acc))
            if choice.finish_reason is not None:
                acc.finish_reason = self._finish_reason(
                    choice.finish_reason, has_tool_calls=bool(acc.tool_parts)
                )
        return events

    @staticmethod
    def _tool_call_delta(call: Any, acc: StreamAccumulator) -> StreamEvent:
        index = call.index
        if not isinstance(index, int):
            # Servers that send each call whole sometimes leave the index out.
            index = len(acc.tool_parts) if call.id else max(acc.tool_parts, default=0)
        function = call.function
        return acc.tool_call(
            index,
            id=call.id,
            name=getattr(function, "name", None),
            arguments=getattr(function, "arguments", None) or "",
        )

    def _stream_http_response(self, opened: Any) -> httpx2.Response | None:
        return opened.response  # type: ignore[no-any-return]

    def _answer_from_json(self, data: Any, opened: Any) -> Any:
        if isinstance(data, Mapping) and "error" in data:
            # An error object with a 200, as a stream error event would carry it.
            raise self._stream_error_event(
                openai.APIError(_error_message(data, fallback="error"),
                                opened.response.request, body=data)
            )
        if not isinstance(data, Mapping):
            raise InvalidResponse(f"expected a chat completion, got JSON "
                                  f"{type(data).__name__}", provider=self.name)
        return ChatCompletion.construct(**data)

    def _finished(self, chunk: Any) -> bool:
        # The usage chunk (empty choices) follows the finish chunk; it is the last.
        return getattr(chunk, "usage", None) is not None

    def _stream_failure(self, exc: BaseException, acc: StreamAccumulator) -> ProviderError:
        # A filtered answer stays ContentFiltered even after some text went out: it is
        # the provider's verdict, not a broken stream to restart elsewhere.
        if isinstance(exc, ContentFiltered):
            return self.error(exc)
        return super()._stream_failure(exc, acc)

    # -- errors ------------------------------------------------------------------------

    def _map_error(self, exc: BaseException) -> ProviderError | None:
        if isinstance(exc, openai.APIStatusError):
            message = _error_message(exc.body, fallback=f"HTTP {exc.status_code}")
            return error_from_status(
                exc.status_code,
                message,
                provider=self.name,
                headers=exc.response.headers,
                code=exc.code or exc.type,
            )
        if isinstance(exc, openai.APIConnectionError):
            # The SDK wraps the transport's exception; its cause says which fault it was
            # (a connect timeout, a refusal, a reset, a cut stream).
            cause = exc.__cause__
            mapped = map_transport_error(cause, self.name) if cause is not None else None
            if mapped is not None:
                return mapped
            if isinstance(exc, openai.APITimeoutError):
                return Timeout("request timed out", provider=self.name)
            return ConnectionFailed("connection error", provider=self.name)
        if isinstance(exc, openai.APIResponseValidationError):
            return InvalidResponse(f"response does not parse: {exc.message}",
                                   provider=self.name, status=exc.status_code)
        if isinstance(exc, openai.APIError):
            return self._stream_error_event(exc)
        return None

    def _stream_error_event(self, exc: openai.APIError) -> ProviderError:
        """An ``{"error": ...}`` event inside a 200 stream: map by its code and text."""
        body = exc.body if isinstance(exc.body, Mapping) else {}
        code = exc.code or exc.type
        message = _error_message(body, fallback=exc.message)
        numeric = _status_in(body)
        lowered = f"{code or ''} {exc.type or ''} {message}".lower()
        if numeric is not None:
            status = numeric
        elif any(h in lowered for h in ("rate_limit", "rate limit", "insufficient_quota",
                                        "too many requests")):
            status = 429
        elif "overloaded" in lowered or "unavailable" in lowered or "capacity" in lowered:
            status = 503
        elif "invalid_request" in lowered or "content_filter" in lowered:
            status = 400
        else:
            status = 500
        err = error_from_status(status, message, provider=self.name, code=code)
        # It came inside a 200: only a status the server itself reported is kept.
        err.status = numeric
        return err



# --- request pieces -------------------------------------------------------------------


#: Chat Completions options a call or the config may give (see `_history`).
_OPTIONS = frozenset({
    "seed", "logprobs", "top_logprobs", "frequency_penalty", "presence_penalty", "logit_bias",
    "user", "reasoning_effort", "service_tier", "parallel_tool_calls", "store", "verbosity",
    "prompt_cache_key", "safety_identifier", "prediction", "web_search_options",
})
#: What OpenAI takes as a tool call id (at most 40 characters); others are mapped.
_TOOL_ID = re.compile(r"[^\s]{1,40}")


def _tool_id(call_id: str | None) -> str:
    return mapped_id(call_id or "", allowed=_TOOL_ID, prefix="call_")


def _messages(request: Request, provider: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if request.system:
        out.append({"role": "system", "content": request.system})
    for i, message in enumerate(request.messages):
        # Chat Completions takes no reasoning back, from anyone (each drop is logged).
        carried_reasoning(message.reasoning, "openai", provider)
        out.append(_message(message, i))
    if request.prefill is not None:
        # Only servers that declare prefill (e.g. vLLM with continue_final_message in
        # ``extra``) continue it; the router sends it to no other.
        out.append({"role": "assistant", "content": request.prefill})
    return out


def _message(message: Message, index: int) -> dict[str, Any]:
    if message.role == "tool":
        if not message.tool_call_id:
            raise BadRequest(f"messages[{index}]: a tool message needs tool_call_id")
        return {"role": "tool", "tool_call_id": _tool_id(message.tool_call_id),
                "content": message.text}
    if message.role == "assistant":
        out: dict[str, Any] = {"role": "assistant", "content": message.text or None}
        if message.tool_calls:
            out["tool_calls"] = [
                {
                    "id": _tool_id(call.id),
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for call in message.tool_calls
            ]
        elif out["content"] is None:
            out["content"] = ""
    else:
        out = {"role": message.role, "content": _content(message)}
    if message.name:
        out["name"] = message.name
    return out


def _content(message: Message) -> str | list[dict[str, Any]]:
    if isinstance(message.content, str):
        return message.content
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, ImagePart):
            parts.append({"type": "image_url", "image_url": {"url": _image_url(part)}})
        elif isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
    return parts


def _image_url(part: ImagePart) -> str:
    if part.data is not None:
        encoded = base64.b64encode(part.data).decode("ascii")
        return f"data:{part.media_type};base64,{encoded}"
    if not part.url:
        raise BadRequest("an image part needs a url or data")
    return part.url


# --- response pieces ------------------------------------------------------------------


def _usage(raw: Any) -> Usage:
    if raw is None:
        return Usage()
    return Usage(
        input_tokens=int(getattr(raw, "prompt_tokens", 0) or 0),
        output_tokens=int(getattr(raw, "completion_tokens", 0) or 0),
    )


def _error_message(body: Any, *, fallback: str) -> str:
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            message = inner.get("message")
            if isinstance(message, str) and message:
                return message
        elif isinstance(inner, str) and inner:
            return inner
    elif isinstance(body, str) and body.strip():
        # A proxy's HTML or text page: enough to recognise, not the whole page.
        text = " ".join(body.split())
        return text if len(text) <= 200 else text[:200] + "..."
    return fallback


def _status_in(body: Mapping[str, Any]) -> int | None:
    for key in ("status", "code", "status_code"):
        value = body.get(key)
        if isinstance(value, int) and 400 <= value < 600:
            return value
        if isinstance(value, str) and value.isdigit() and 400 <= int(value) < 600:
            return int(value)
    return None


# --- streams that may end without [DONE] ----------------------------------------------

_BENIGN_AFTER_FINISH = (openai.APIConnectionError, ValueError)  # cut or garbage after the end


def _has_finish(chunk: Any) -> bool:
    return any(getattr(c, "finish_reason", None) for c in getattr(chunk, "choices", None) or ())


class _EndsAfterFinish:
    """The SDK's stream, ending quietly if it breaks after a finish reason arrived.

    The answer is whole at the finish reason; only the usage chunk and ``[DONE]`` may
    still be missing, which is no reason to throw the answer away.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._iterator: Iterator[Any] = iter(stream)
        self._finished = False
        self.response = stream.response

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            chunk = next(self._iterator)
        except _BENIGN_AFTER_FINISH:
            if not self._finished:
                raise
            raise StopIteration from None
        self._finished = self._finished or _has_finish(chunk)
        return chunk

    def close(self) -> None:
        self._stream.close()


class _AsyncEndsAfterFinish:
    """`_EndsAfterFinish` for the async SDK stream."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._iterator: AsyncIterator[Any] = stream.__aiter__()
        self._finished = False
        self.response = stream.response

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        try:
            chunk = await self._iterator.__anext__()
        except _BENIGN_AFTER_FINISH:
            if not self._finished:
                raise
            raise StopAsyncIteration from None
        self._finished = self._finished or _has_finish(chunk)
        return chunk

    async def aclose(self) -> None:
        await self._stream.close()


def _wire_schema(fmt: JsonSchema) -> dict[str, Any]:
    """A pydantic model's schema in the strict form OpenAI's structured outputs demand
    (every property required, no additional properties), made by the SDK itself."""
    if fmt.model is not None and fmt.strict:
        from openai.lib._pydantic import to_strict_json_schema

        return dict(to_strict_json_schema(fmt.model))
    return dict(fmt.schema or {})
