"""A pydantic-ai ``Model`` over a failover route (``pip install 'failover[pydantic-ai]'``).

::

    from pydantic_ai import Agent
    from failover.integrations.pydantic_ai import FailoverModel

    agent = Agent(FailoverModel(router, route="default"), tools=[...], output_type=...)

The agent gets what pydantic-ai's own ``FallbackModel`` lacks: circuit breakers (an open
provider is skipped in microseconds, not retried each turn), deadlines, hedging, the
manual fallback, and a stream that recovers after it began. Requests, streaming, tool
calls and structured output (tool, native and prompted modes) are supported; the
conversation (instructions, user text and images, assistant text, tool calls and their
results) is translated to failover's messages, so a turn can be served by any provider of
the route whatever served the turn before.

A stream that restarts on another provider after text was shown starts its parts over:
events already sent stay sent, but the response the agent keeps (``get()``, and so tool
calls and the final output) holds only the whole answer of the provider that finished.
Failover errors reach the agent as pydantic-ai's ``ModelAPIError`` kinds, the failover
error as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelRequestRejectedError,
    ModelUnavailableError,
)
from pydantic_ai.messages import (
    BinaryContent,
    FinishReason,
    ImageUrl,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ModelResponsePart,
    ModelResponseStreamEvent,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.profiles import ModelProfile
from pydantic_ai.usage import RequestUsage

import failover

if TYPE_CHECKING:
    from pydantic_ai.settings import ModelSettings

    from failover import Response, Router, StreamEvent

__all__ = ["FailoverModel"]

_FINISH: dict[str, FinishReason] = {"stop": "stop", "length": "length",
                                    "tool_calls": "tool_call",
                                    "content_filter": "content_filter"}
_SETTINGS = (("max_tokens", "max_tokens"), ("temperature", "temperature"),
             ("top_p", "top_p"), ("stop_sequences", "stop"), ("timeout", "timeout"))


class FailoverModel(Model):
    """A pydantic-ai model whose every request goes through ``router``'s ``route``."""

    def __init__(self, router: Router, route: str = "default", *,
                 settings: ModelSettings | None = None) -> None:
        if route not in router.config.routes:
            known = ", ".join(sorted(router.config.routes))
            raise ValueError(f"route: {route!r} is not a route of this router; routes: {known}")
        # Every provider type takes a JSON schema (OpenAI's json_schema, Anthropic's
        # output_config, Gemini's response schema), so native output works on any route.
        super().__init__(settings=settings, profile=ModelProfile(
            supports_json_schema_output=True, supports_json_object_output=True))
        self.router = router
        self.route = route

    @property
    def model_name(self) -> str:
        return self.route

    @property
    def system(self) -> str:
        return "failover"

    async def request(self, messages: list[ModelMessage], model_settings: ModelSettings | None,
                      model_request_parameters: ModelRequestParameters) -> ModelResponse:
        model_settings, params = self.prepare_request(model_settings, model_request_parameters)
        call = self._call(messages, model_settings, params)
        try:
            reply = await self.router.acomplete(**call)
        except failover.FailoverError as err:
            raise _model_error(self.route, err) from err
        return _model_response(reply, self.route)

    @asynccontextmanager
    async def request_stream(
        self, messages: list[ModelMessage], model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters, run_context: Any = None,
    ) -> AsyncIterator[StreamedResponse]:
        model_settings, params = self.prepare_request(model_settings, model_request_parameters)
        call = self._call(messages, model_settings, params)
        events = aiter(self.router.astream(**call))
        try:
            yield _FailoverStream(model_request_parameters=params, _events=events,
                                  _route=self.route)
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    # -- request: pydantic-ai's conversation and parameters as the router's -------------------

    def _call(self, messages: list[ModelMessage], settings: ModelSettings | None,
              params: ModelRequestParameters) -> dict[str, Any]:
        history, system = _messages(messages)
        instructions = self._get_instruction_parts(messages, params)
        if instructions:
            system = [*system, *(part.content for part in instructions)]
        call: dict[str, Any] = {"route": self.route, "messages": history}
        if system:
            call["system"] = "\n\n".join(system)
        tools = [*params.function_tools, *params.output_tools]
        if tools:
            call["tools"] = [{"name": t.name, "description": t.description or "",
                              "parameters": t.parameters_json_schema} for t in tools]
            if not params.allow_text_output:
                call["tool_choice"] = "required"
        if params.output_mode == "native" and params.output_object is not None:
            call["response_format"] = {"type": "json_schema", "json_schema": {
                "name": params.output_object.name or "output",
                "schema": params.output_object.json_schema,
                "strict": bool(params.output_object.strict)}}
        for ours, theirs in _SETTINGS:
            value = (settings or {}).get(ours)
            if value is not None:
                call[theirs] = value
        return call


def _messages(messages: list[ModelMessage]) -> tuple[list[failover.Message], list[str]]:
    """The conversation as failover messages, and the system prompts found in it."""
    history: list[failover.Message] = []
    system: list[str] = []
    for message in messages:
        if isinstance(message, ModelRequest):
            history.extend(_request_messages(message, system))
        else:
            reply = _assistant_message(message)
            if reply is not None:
                history.append(reply)
    return history, system


def _request_messages(request: ModelRequest, system: list[str]) -> Iterator[failover.Message]:
    for part in request.parts:
        if isinstance(part, SystemPromptPart):
            system.append(part.content)
        elif isinstance(part, UserPromptPart):
            yield failover.Message("user", _user_content(part))
        elif isinstance(part, ToolReturnPart):
            yield failover.Message("tool", part.model_response_str(),
                                   tool_call_id=part.tool_call_id)
        elif hasattr(part, "model_response"):  # a retry prompt (deprecated part kinds)
            call_id = getattr(part, "tool_call_id", None)
            if getattr(part, "tool_name", None) and call_id:
                yield failover.Message("tool", part.model_response(), tool_call_id=call_id)
            else:
                yield failover.Message("user", part.model_response())


def _user_content(part: UserPromptPart) -> Any:
    if isinstance(part.content, str):
        return part.content
    pieces: list[Any] = []
    for item in part.content:
        if isinstance(item, str):
            pieces.append(failover.TextPart(item))
        elif isinstance(item, ImageUrl):
            pieces.append(failover.ImagePart(url=item.url, media_type=item.media_type))
        elif isinstance(item, BinaryContent) and item.is_image:
            pieces.append(failover.ImagePart(data=item.data, media_type=item.media_type))
        elif hasattr(item, "content") and isinstance(item.content, str):
            pieces.append(failover.TextPart(item.content))
    return tuple(pieces)


def _assistant_message(response: ModelResponse) -> failover.Message | None:
    texts = [p.content for p in response.parts if isinstance(p, TextPart)]
    calls = tuple(failover.ToolCall(p.tool_call_id, p.tool_name, p.args_as_dict())
                  for p in response.parts if isinstance(p, ToolCallPart))
    if not texts and not calls:
        return None  # thinking only, or an empty turn the agent retries
    return failover.Message("assistant", "".join(texts), tool_calls=calls)


# -- response: failover's answer as pydantic-ai's ---------------------------------------------


def _model_response(reply: Response, route: str) -> ModelResponse:
    parts: list[ModelResponsePart] = []
    if reply.text:
        parts.append(TextPart(reply.text))
    parts += [ToolCallPart(c.name, dict(c.arguments), tool_call_id=c.id)
              for c in reply.tool_calls]
    return ModelResponse(
        parts=parts, model_name=reply.model or route, provider_name=reply.provider,
        usage=RequestUsage(input_tokens=reply.usage.input_tokens,
                           output_tokens=reply.usage.output_tokens),
        finish_reason=_FINISH.get(reply.finish_reason),
        provider_details={"failover_route": route, "failover_provider": reply.provider,
                          "failover_attempts": len(reply.attempts)},
    )


def _model_error(route: str, err: failover.FailoverError) -> ModelAPIError:
    status = getattr(err, "status", None)
    cls: type[ModelAPIError] = (
        ModelRequestRejectedError
        if isinstance(err, failover.BadRequest | failover.ContextWindowExceeded
                      | failover.ContentFiltered)
        else ModelUnavailableError)
    return cls(route, str(err), provider_error_type=type(err).__name__,
               provider_error_code=str(status) if status else None)


@dataclass
class _FailoverStream(StreamedResponse):
    _events: AsyncIterator[StreamEvent]
    _route: str
    _model: str = ""
    _provider: str | None = None
    _timestamp: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    async def _get_event_iterator(self) -> AsyncIterator[ModelResponseStreamEvent]:
        try:
            async for event in self._events:
                for out in self._map(event):
                    yield out
        except failover.FailoverError as err:
            raise _model_error(self._route, err) from err

    def _map(self, event: StreamEvent) -> Iterator[ModelResponseStreamEvent]:
        if event.type == "text":
            yield from self._parts_manager.handle_text_delta(vendor_part_id="text",
                                                             content=event.text)
        elif event.type == "tool_call":
            yield from self._parts_manager.handle_tool_call_delta_events(
                vendor_part_id=("tool", event.index), tool_name=event.name,
                args=event.arguments or None, tool_call_id=event.id)
        elif event.type == "restart":
            # Start the parts over: what the agent keeps is the finishing provider's answer.
            self.__dict__.pop("_parts_manager", None)
        else:
            reply = event.response
            self._model, self._provider = reply.model, reply.provider
            self._usage = RequestUsage(input_tokens=reply.usage.input_tokens,
                                       output_tokens=reply.usage.output_tokens)
            self.finish_reason = _FINISH.get(reply.finish_reason)

    async def close_stream(self) -> None:
        await self._events.aclose()  # type: ignore[attr-defined]

    @property
    def model_name(self) -> str:
        return self._model or self._route

    @property
    def provider_name(self) -> str | None:
        return self._provider

    @property
    def provider_url(self) -> str | None:
        return None

    @property
    def timestamp(self) -> datetime:
        return self._timestamp

