"""Google Gemini through the google-genai SDK (the Developer API, not Vertex AI).

Translation only: a `Request` becomes a ``models.generate_content`` call, the SDK's
answer (or exception) becomes a `Response` (or one error kind).

What the SDK would otherwise do behind our back, and is switched off here:

- automatic function calling (only declarations are sent, and it is disabled);
- automatic continuation (a ``CONTINUATION`` finish would make a second request);
- retries (``HttpRetryOptions(attempts=1)``), and the unbounded default timeout;
- aiohttp for async calls (the async client always gets the seam's ``httpx2`` client);
- Vertex AI and API-key pickup from the environment (both given explicitly).

Errors the SDK does not wrap (``httpx2`` connect/read errors and timeouts) are left to
the base class's generic mapping.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx2
import pydantic
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from .._errors import (
    BadRequest,
    ContentFiltered,
    InvalidResponse,
    PermissionDenied,
    ProviderError,
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
    Usage,
)
from ._base import (
    Capabilities,
    ProviderAdapter,
    StreamAccumulator,
    error_from_status,
    parse_google_delay,
)
from ._history import THINKING_BUDGET, carried_reasoning, dropped, new_call_id, provider_options

if TYPE_CHECKING:
    from .._types import FinishReason

__all__ = ["DEFAULT_BASE_URL", "GeminiAdapter"]

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/"

#: Finish reasons that mean a policy stopped the answer.
_FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
    }
)
#: Finish reasons that mean the model produced something unusable: worth another try.
_BROKEN = frozenset(
    {
        "MALFORMED_FUNCTION_CALL",
        "UNEXPECTED_TOOL_CALL",
        "TOO_MANY_TOOL_CALLS",
        "MALFORMED_RESPONSE",
        "MISSING_THOUGHT_SIGNATURE",
    }
)
_MAX_MESSAGE = 500


class GeminiAdapter(ProviderAdapter):
    """``type: gemini``: ``generateContent`` on the Gemini Developer API."""

    wire = "gemini"

    default_capabilities = Capabilities(
        tools=True, json_schema=True, images=True, prefill=False, context_window=None
    )

    # -- clients -----------------------------------------------------------------------

    def _make_sync_client(self, api_key: str | None, http_client: httpx2.Client) -> Any:
        # The SDK wants both clients; an unused idle one spares it building its own
        # (SSL context, environment proxies) for a side this client never calls.
        idle = httpx2.AsyncClient(transport=self.transport)
        self._http_clients.append(idle)
        return self._genai_client(api_key, http_client, idle)

    def _make_async_client(self, api_key: str | None, http_client: httpx2.AsyncClient) -> Any:
        idle = httpx2.Client(transport=self.transport)
        self._http_clients.append(idle)
        return self._genai_client(api_key, idle, http_client)

    def _genai_client(
        self, api_key: str | None, sync_http: httpx2.Client, async_http: httpx2.AsyncClient
    ) -> genai.Client:
        extra = dict(self.config.extra)
        api_version = extra.pop("api_version", None)
        options = types.HttpOptions(
            base_url=self._base_url(),
            api_version=str(api_version) if api_version else None,
            headers=self.headers() or None,
            timeout=_milliseconds(self.timeouts.request),
            retry_options=types.HttpRetryOptions(attempts=1),
            httpx_client=sync_http,
            httpx_async_client=async_http,
            extra_body=extra or None,
        )
        # The adapter keeps this object: it closes its transports when collected.
        return genai.Client(**self._genai_auth(api_key), http_options=options)

    def _base_url(self) -> str | None:
        return self.config.base_url or DEFAULT_BASE_URL

    def _genai_auth(self, api_key: str | None) -> dict[str, Any]:
        """Who the client is: the Developer API with a key (Vertex AI: `GeminiVertexAdapter`)."""
        return {"vertexai": False, "api_key": api_key}

    # -- requests ----------------------------------------------------------------------

    def _send(self, client: Any, request: Request, timeout: httpx2.Timeout) -> Any:
        contents, config = self._translate_request(request, timeout)
        return client.models.generate_content(model=self.model, contents=contents, config=config)

    async def _asend(self, client: Any, request: Request, timeout: httpx2.Timeout) -> Any:
        contents, config = self._translate_request(request, timeout)
        return await client.aio.models.generate_content(
            model=self.model, contents=contents, config=config
        )

    def _open_stream(self, client: Any, request: Request, timeout: httpx2.Timeout) -> Any:
        contents, config = self._translate_request(request, timeout)
        return client.models.generate_content_stream(
            model=self.model, contents=contents, config=config
        )

    async def _aopen_stream(self, client: Any, request: Request, timeout: httpx2.Timeout) -> Any:
        contents, config = self._translate_request(request, timeout)
        return await client.aio.models.generate_content_stream(
            model=self.model, contents=contents, config=config
        )

    def _translate_request(
        self, request: Request, timeout: httpx2.Timeout
    ) -> tuple[list[_Content], types.GenerateContentConfig]:
        if request.prefill is not None:
            raise BadRequest("gemini does not support prefill", provider=self.name)
        config = types.GenerateContentConfig(
            http_options=types.HttpOptions(timeout=_timeout_ms(timeout, self.timeouts.request)),
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            automatic_continuation=False,
            system_instruction=request.system or None,
            max_output_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            stop_sequences=list(request.stop) or None,
        )
        if request.tools:
            config.tools = [
                types.Tool(
                    function_declarations=[
                        types.FunctionDeclaration(
                            name=tool.name,
                            description=tool.description or None,
                            parameters_json_schema=dict(tool.parameters),
                        )
                        for tool in request.tools
                    ]
                )
            ]
        if request.tool_choice is not None:
            config.tool_config = _tool_config(request.tool_choice.mode, request.tool_choice.name)
        if request.response_format is not None:
            config.response_mime_type = "application/json"
            if request.response_format.schema is not None:
                config.response_json_schema = dict(request.response_format.schema)
        self._apply_options(request, config)
        return _contents(request.messages, self.name, self.model), config

    def _apply_options(self, request: Request, config: types.GenerateContentConfig) -> None:
        """The call's provider options, with ``reasoning`` as a thinking budget."""
        options = provider_options(request, self.config.options, "gemini", _OPTIONS, self.name)
        if request.reasoning is not None and "thinking_config" not in options:
            if self.capabilities.reasoning:
                budget = THINKING_BUDGET[request.reasoning]
                options["thinking_config"] = {"thinking_budget": budget,
                                              "include_thoughts": budget > 0}
            else:
                dropped(self.name, "reasoning", "capabilities.reasoning is false")
        for name, value in options.items():
            try:
                # Validated (and a dict made the SDK's type) as the config's own field.
                checked = types.GenerateContentConfig.model_validate({name: value})
            except (pydantic.ValidationError, TypeError, ValueError) as exc:
                raise BadRequest(f"options.{name}: not what gemini takes ({_first(exc)})",
                                 provider=self.name) from None
            setattr(config, name, getattr(checked, name))

    # -- answers -----------------------------------------------------------------------

    def _to_response(self, raw: Any) -> Response:
        if not raw.candidates:
            raise self._blocked_or_empty(raw)
        candidate = raw.candidates[0]
        parts = candidate.content.parts if candidate.content and candidate.content.parts else []
        texts: list[str] = []
        calls: list[ToolCall] = []
        reasoning: list[ReasoningPart] = []
        for part in parts:
            if part.thought or (part.thought_signature and part.function_call is None):
                reasoning.append(_reasoning_of(part))
                if part.thought:
                    continue
            if part.function_call is not None:
                call = part.function_call
                calls.append(
                    ToolCall(
                        id=call.id or new_call_id(),
                        name=call.name or "",
                        arguments=dict(call.args or {}),
                        signature=_signature(part),
                    )
                )
            elif part.text:
                texts.append(part.text)
        text = "".join(texts)
        if not text and not calls and candidate.finish_reason is None:
            raise InvalidResponse(
                "the answer has no content and no finish reason", provider=self.name
            )
        finish = self._finish_reason(
            _enum_name(candidate.finish_reason), has_text=bool(text), has_calls=bool(calls)
        )
        return Response(
            text=text,
            finish_reason=finish or ("tool_calls" if calls else "stop"),
            usage=_usage(raw.usage_metadata),
            provider=self.name,
            model=raw.model_version or self.model,
            tool_calls=tuple(calls),
            raw=raw,
            reasoning=tuple(reasoning),
        )

    def _chunk_events(self, chunk: Any, acc: StreamAccumulator) -> Iterable[StreamEvent]:
        if chunk.usage_metadata is not None:
            acc.usage = _usage(chunk.usage_metadata)
        if chunk.model_version:
            acc.served_model = chunk.model_version
        if not chunk.candidates:
            feedback = chunk.prompt_feedback
            if feedback is not None and feedback.block_reason is not None:
                raise self._blocked_or_empty(chunk)
            return
        candidate = chunk.candidates[0]
        parts = candidate.content.parts if candidate.content and candidate.content.parts else []
        for part in parts:
            if part.thought or (part.thought_signature and part.function_call is None):
                acc.reasoning.append(_reasoning_of(part))
                if part.thought:
                    continue
            if part.function_call is not None:
                call = part.function_call
                index = len(acc.tool_parts)
                yield acc.tool_call(
                    index,
                    id=call.id or new_call_id(),
                    name=call.name,
                    arguments=json.dumps(call.args or {}),
                    signature=_signature(part),
                )
            elif part.text:
                yield acc.text(part.text)
        reason = _enum_name(candidate.finish_reason)
        if reason is not None:
            acc.finish_reason = self._finish_reason(
                reason, has_text=bool(acc.text_parts), has_calls=bool(acc.tool_parts)
            )

    def _finished(self, chunk: Any) -> bool:
        # Gemini sends no [DONE]: the chunk with finishReason (and usage) is the last.
        return bool(chunk.candidates) and chunk.candidates[0].finish_reason is not None

    def _finish_reason(
        self, reason: str | None, *, has_text: bool, has_calls: bool
    ) -> FinishReason | None:
        """Our finish reason, or raise for a finish that left nothing usable."""
        if reason is None:
            return None
        if reason in _FILTERED:
            if not has_text and not has_calls:
                raise ContentFiltered(
                    f"answer blocked by the provider (finishReason {reason})",
                    provider=self.name,
                    code=reason,
                )
            return "content_filter"
        if reason in _BROKEN:
            raise InvalidResponse(
                f"the model's answer is unusable (finishReason {reason})",
                provider=self.name,
                code=reason,
            )
        if reason in ("MAX_TOKENS", "CONTINUATION"):
            return "length"
        if has_calls:
            return "tool_calls"
        if reason != "STOP" and not has_text:
            raise InvalidResponse(
                f"the model finished with {reason} and no content", provider=self.name, code=reason
            )
        return "stop"

    def _blocked_or_empty(self, raw: Any) -> ProviderError:
        feedback = raw.prompt_feedback
        block = _enum_name(feedback.block_reason) if feedback is not None else None
        if block is not None:
            detail = f": {feedback.block_reason_message}" if feedback.block_reason_message else ""
            return ContentFiltered(
                f"prompt blocked by the provider (blockReason {block}){detail}",
                provider=self.name,
                code=block,
            )
        return InvalidResponse("the answer has no candidates", provider=self.name)

    # -- errors ------------------------------------------------------------------------

    def _map_error(self, exc: BaseException) -> ProviderError | None:
        if isinstance(exc, genai_errors.APIError):
            return self._api_error(exc)
        if isinstance(exc, genai_errors.UnknownApiResponseError):
            return InvalidResponse(_clip(f"response does not parse: {exc}"), provider=self.name)
        if isinstance(exc, pydantic.ValidationError):
            problems = exc.errors()
            first = (
                f", first at {'.'.join(str(p) for p in problems[0]['loc']) or 'the top'}: "
                f"{problems[0]['msg']}"
                if problems
                else ""
            )
            return InvalidResponse(
                f"response does not match the expected schema ({len(problems)} errors{first})",
                provider=self.name,
            )
        return None  # httpx2 transport errors: the base maps them

    def _api_error(self, exc: genai_errors.APIError) -> ProviderError:
        try:
            status = int(exc.code)
        except (TypeError, ValueError):
            return InvalidResponse(_clip(f"error without a status: {exc}"), provider=self.name)
        rpc_status = exc.status if isinstance(exc.status, str) else None
        message = exc.message if isinstance(exc.message, str) and exc.message else ""
        details = _error_details(exc.details)
        reason = next((d["reason"] for d in details if isinstance(d.get("reason"), str)), None)
        retry_after = next(
            (
                delay
                for d in details
                if (delay := parse_google_delay(d.get("retryDelay"))) is not None
            ),
            None,
        )
        text = _clip(
            f"{rpc_status}: {message}"
            if rpc_status and message
            else message or rpc_status or f"HTTP {status}"
        )
        if status == 400 and rpc_status == "FAILED_PRECONDITION" and reason is None:
            # "User location is not supported", "enable billing": the account cannot
            # use this provider; another provider can serve the same request.
            return PermissionDenied(text, provider=self.name, status=status, code=rpc_status)
        return error_from_status(
            status,
            text,
            provider=self.name,
            headers=_headers_of(exc.response),
            code=reason or rpc_status,
            retry_after=retry_after,
        )


# --- request translation ----------------------------------------------------------------


#: Contents and parts go to the SDK as the plain dicts it also takes (``ContentDict``):
#: it converts its pydantic objects field by field on every call, a fifth of a
#: millisecond per request (measured in benchmarks/clouds.py), and dicts skip that.
_Part = dict[str, Any]
_Content = dict[str, Any]


def _contents(messages: Sequence[Message], provider: str, model: str) -> list[_Content]:
    contents: list[_Content] = []
    for position, message in enumerate(messages):
        role, parts = _message_parts(message, messages[:position], provider, model)
        if not parts:
            continue
        previous = contents[-1] if contents else None
        # Gemini wants turns to alternate; the function responses of one model turn
        # belong in one user turn.
        if previous is not None and previous["role"] == role:
            previous["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    if not contents:
        raise BadRequest("messages: nothing to send to gemini (every message is empty)")
    return contents


def _message_parts(message: Message, earlier: Sequence[Message], provider: str,
                   model: str) -> tuple[str, list[_Part]]:
    if message.role == "tool":
        name = _tool_name(message, earlier)
        return "user", [
            {"function_response": {"name": name, "response": _tool_result(message.text)}}
        ]
    parts: list[_Part] = []
    if message.role == "assistant":
        parts.extend(_thought_part(p) for p in carried_reasoning(
            message.reasoning, "gemini", provider))
    if isinstance(message.content, str):
        if message.content:
            parts.append({"text": message.content})
    else:
        for item in message.content:
            if isinstance(item, ImagePart):
                parts.append(_image_part(item))
            elif isinstance(item, TextPart) and item.text:
                parts.append({"text": item.text})
    if message.role == "assistant":
        for call in message.tool_calls:
            part: _Part = {"function_call": {"name": call.name, "args": dict(call.arguments)}}
            signature = _call_signature(call, provider, model)
            if signature is not None:
                part["thought_signature"] = signature
            parts.append(part)
        return "model", parts
    return "user", parts


#: What Gemini documents for a function call whose thought signature is lost (history
#: from another model): it skips the check. Gemini 3 refuses a call without any.
_NO_SIGNATURE = b"skip_thought_signature_validator"


def _call_signature(call: ToolCall, provider: str, model: str) -> bytes | None:
    if call.signature:
        return base64.b64decode(call.signature)
    if model.rsplit("/", 1)[-1].startswith("gemini-3"):
        dropped(provider, f"the thought signature of tool call {call.name!r}",
                "it came from another provider; sent Gemini's documented placeholder")
        return _NO_SIGNATURE
    return None


def _thought_part(part: ReasoningPart) -> _Part:
    out: _Part = {"text": part.text, "thought": True} if part.text else {"text": ""}
    if part.signature:
        out["thought_signature"] = base64.b64decode(part.signature)
    return out


def _reasoning_of(part: types.Part) -> ReasoningPart:
    text = part.text if part.thought and part.text else ""
    return ReasoningPart(text=text, signature=_signature(part), origin="gemini")


def _signature(part: types.Part) -> str | None:
    raw = part.thought_signature
    return base64.b64encode(raw).decode("ascii") if raw else None


#: GenerateContentConfig fields a call or the config may give (see `_history`).
_OPTIONS = frozenset({
    "safety_settings", "thinking_config", "top_k", "seed", "presence_penalty",
    "frequency_penalty", "response_logprobs", "logprobs", "media_resolution", "labels",
    "cached_content", "response_modalities", "speech_config", "audio_timestamp",
})


def _first(exc: BaseException) -> str:
    if isinstance(exc, pydantic.ValidationError) and exc.errors():
        problem = exc.errors()[0]
        return f"{'.'.join(str(p) for p in problem['loc'])}: {problem['msg']}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _tool_name(message: Message, earlier: Sequence[Message]) -> str:
    """The function a tool result answers: Gemini matches responses by name, not id."""
    for previous in reversed(earlier):
        for call in previous.tool_calls:
            if call.id == message.tool_call_id:
                return call.name
    if message.name:
        return message.name
    raise BadRequest(f"tool result {message.tool_call_id!r} answers no earlier assistant tool call")


def _tool_result(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, dict):
        return value
    return {"output": text}


def _image_part(image: ImagePart) -> _Part:
    if image.data is not None:
        return {"inline_data": {"data": image.data, "mime_type": image.media_type}}
    url = image.url or ""
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        media_type = header[5:].split(";")[0] or image.media_type
        try:
            data = (
                base64.b64decode(payload, validate=True)
                if ";base64" in header
                else payload.encode()
            )
        except (binascii.Error, ValueError):
            raise BadRequest("image: the data: URL is not valid base64") from None
        return {"inline_data": {"data": data, "mime_type": media_type}}
    if not url:
        raise BadRequest("image: needs a url or data")
    return {"file_data": {"file_uri": url, "mime_type": image.media_type}}


def _tool_config(mode: str, name: str | None) -> types.ToolConfig:
    modes = {"auto": "AUTO", "none": "NONE", "required": "ANY", "tool": "ANY"}
    return types.ToolConfig(
        function_calling_config=types.FunctionCallingConfig(
            mode=types.FunctionCallingConfigMode(modes[mode]),
            allowed_function_names=[name] if mode == "tool" and name else None,
        )
    )


def _milliseconds(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _timeout_ms(timeout: httpx2.Timeout, default: float) -> int:
    # The SDK takes one number for every phase. The read limit is the one that
    # matters: the whole answer (plain call) or the gap between chunks (stream).
    seconds = timeout.read if timeout.read is not None else timeout.connect
    return _milliseconds(seconds if seconds is not None else default)


# --- answer helpers ---------------------------------------------------------------------


def _enum_name(value: Any) -> str | None:
    if value is None:
        return None
    name = getattr(value, "value", value)
    return str(name).upper() if name else None


def _usage(meta: Any) -> Usage:
    if meta is None:
        return Usage()
    # Thinking tokens are billed as output, as the other providers count them.
    output = (meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)
    return Usage(input_tokens=meta.prompt_token_count or 0, output_tokens=output)


def _error_details(body: Any) -> list[Mapping[str, Any]]:
    """The ``google.rpc`` detail objects (ErrorInfo, RetryInfo, ...) of an error body."""
    error = body.get("error", body) if isinstance(body, Mapping) else None
    details = error.get("details") if isinstance(error, Mapping) else None
    if not isinstance(details, list):
        return []
    return [d for d in details if isinstance(d, Mapping)]


def _headers_of(response: Any) -> dict[str, str]:
    headers = getattr(response, "headers", None)
    if headers is None:
        return {}
    items: Iterator[tuple[Any, Any]] = iter(headers.items())
    return {str(k).lower(): str(v) for k, v in items}


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."
