"""A LangChain chat model over a failover route (``pip install 'failover[langchain]'``).

::

    from failover.integrations.langchain import FailoverChatModel

    llm = FailoverChatModel(router=router, route="default")
    llm.bind_tools([get_weather]).invoke("Weather in Lyon?")
    llm.with_structured_output(Forecast).invoke("Forecast?")

``invoke``/``ainvoke``/``stream``/``astream``/``batch``, ``bind_tools`` and
``with_structured_output`` all keep working across a failover, which LangChain's own
``with_fallbacks`` cannot promise: the tools are bound to this one model, and the route,
not a wrapper, chooses who serves. The conversation (system, human, AI messages with
their tool calls, tool results) is translated to failover's messages, so any provider
of the route can take the next turn. Errors are failover's own typed errors, with every
attempt (a caller's mistake is `failover.BadRequest`, a ``ValueError``).

A stream that restarts on another provider after text was shown (the route's
``stream_interrupt: restart``) sends one ``AIMessageChunk`` with no content whose
``response_metadata["failover_restart"]`` says so: what was added up before it must be
dropped. `collect` / `acollect` add chunks up that way; LangChain's plain ``+`` does not
know to, so code that sums chunks itself should use them (or the route ``continue``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field

import failover

__all__ = ["FailoverChatModel", "acollect", "collect"]

#: What a bound call may carry through to the router (``bind_tools``, ``stop``...).
_PASSED = ("tools", "tool_choice", "response_format", "timeout", "deadline", "metadata")


class FailoverChatModel(BaseChatModel):
    """A LangChain chat model whose every call goes through ``router``'s ``route``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    router: Any = Field(exclude=True)
    """The `failover.Router` to send through."""
    route: str = "default"
    temperature: float | None = None
    max_tokens: int | None = None

    @property
    def _llm_type(self) -> str:
        return "failover"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"route": self.route}

    def bind_tools(
        self, tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool], *,
        tool_choice: str | None = None, **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Tools in OpenAI's form (any LangChain tool, function, pydantic model or dict)."""
        kwargs["tools"] = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = _tool_choice(tool_choice)
        return self.bind(**kwargs)

    # -- the four doors ---------------------------------------------------------------------

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None,
                  **kwargs: Any) -> ChatResult:
        reply = self.router.complete(**self._call(messages, stop, kwargs))
        return ChatResult(generations=[ChatGeneration(message=_ai_message(reply))])

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None,
                         **kwargs: Any) -> ChatResult:
        reply = await self.router.acomplete(**self._call(messages, stop, kwargs))
        return ChatResult(generations=[ChatGeneration(message=_ai_message(reply))])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        for event in self.router.stream(**self._call(messages, stop, kwargs)):
            chunk = _chunk(event)
            if run_manager is not None and event.type == "text":
                run_manager.on_llm_new_token(event.text, chunk=chunk)
            yield chunk

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        async for event in self.router.astream(**self._call(messages, stop, kwargs)):
            chunk = _chunk(event)
            if run_manager is not None and event.type == "text":
                await run_manager.on_llm_new_token(event.text, chunk=chunk)
            yield chunk

    def _call(self, messages: list[BaseMessage], stop: list[str] | None,
              kwargs: dict[str, Any]) -> dict[str, Any]:
        call: dict[str, Any] = {"route": self.route, "messages": _messages(messages)}
        call.update({k: kwargs[k] for k in _PASSED if kwargs.get(k) is not None})
        if stop:
            call["stop"] = stop
        if self.temperature is not None:
            call["temperature"] = self.temperature
        if self.max_tokens is not None:
            call["max_tokens"] = self.max_tokens
        return call


def _tool_choice(choice: str) -> Any:
    if choice in ("auto", "none", "required", "any"):
        return choice
    return {"type": "function", "function": {"name": choice}}


# -- LangChain's messages as failover's, and back ---------------------------------------------


def _messages(messages: Iterable[BaseMessage]) -> list[failover.Message]:
    out: list[failover.Message] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            out.append(failover.Message("system", message.text))
        elif isinstance(message, ToolMessage):
            out.append(failover.Message("tool", message.text, tool_call_id=message.tool_call_id))
        elif isinstance(message, AIMessage):
            calls = tuple(failover.ToolCall(c.get("id") or f"call_{i}", c["name"], c["args"])
                          for i, c in enumerate(message.tool_calls))
            out.append(failover.Message("assistant", message.text, tool_calls=calls))
        elif isinstance(message, HumanMessage):
            out.append(failover.Message("user", message.text))
        else:
            raise ValueError(f"messages: {type(message).__name__} is not a message failover "
                             "can send (system, human, ai or tool)")
    return out


def _usage(reply: failover.Response) -> dict[str, int]:
    return {"input_tokens": reply.usage.input_tokens,
            "output_tokens": reply.usage.output_tokens,
            "total_tokens": reply.usage.total_tokens}


def _metadata(reply: failover.Response) -> dict[str, Any]:
    return {"model_name": reply.model, "finish_reason": reply.finish_reason,
            "failover_provider": reply.provider,
            "failover_attempts": [a.error_kind or a.outcome for a in reply.attempts]}


def _ai_message(reply: failover.Response) -> AIMessage:
    return AIMessage(
        content=reply.text,
        tool_calls=[{"name": c.name, "args": dict(c.arguments), "id": c.id,
                     "type": "tool_call"} for c in reply.tool_calls],
        usage_metadata=_usage(reply),
        response_metadata=_metadata(reply),
    )


def _chunk(event: failover.StreamEvent) -> ChatGenerationChunk:
    if event.type == "text":
        message = AIMessageChunk(content=event.text)
    elif event.type == "tool_call":
        message = AIMessageChunk(content="", tool_call_chunks=[tool_call_chunk(
            name=event.name, args=event.arguments, id=event.id, index=event.index)])
    elif event.type == "restart":
        message = AIMessageChunk(content="", response_metadata={"failover_restart": {
            "provider": event.provider, "reason": event.reason}})
    else:
        reply = event.response
        message = AIMessageChunk(content="", usage_metadata=_usage(reply),
                                 response_metadata=_metadata(reply))
    return ChatGenerationChunk(message=message)


def _added(total: AIMessageChunk | None, chunk: AIMessageChunk) -> AIMessageChunk | None:
    """``total + chunk``, or nothing at a restart: what was shown before it is dropped."""
    if "failover_restart" in chunk.response_metadata:
        return None
    return chunk if total is None else total + chunk


def collect(chunks: Iterable[AIMessageChunk]) -> AIMessageChunk | None:
    """Add up a stream's chunks, starting over at a restart: the whole answer."""
    total: AIMessageChunk | None = None
    for chunk in chunks:
        total = _added(total, chunk)
    return total


async def acollect(chunks: AsyncIterator[AIMessageChunk]) -> AIMessageChunk | None:
    """`collect` for ``astream``."""
    total: AIMessageChunk | None = None
    async for chunk in chunks:
        total = _added(total, chunk)
    return total
