"""The openai SDK's ``chat.completions`` over a router: code written for the SDK runs
unchanged, with a route name as the model.

::

    from failover.integrations.openai import OpenAI

    client = OpenAI(router)                      # instead of openai.OpenAI()
    completion = client.chat.completions.create(model="default", messages=[...])
    completion.choices[0].message.content        # an openai ChatCompletion
    completion.failover.provider                 # what served it, and .attempts

- ``create(..., stream=False)`` returns ``openai.types.chat.ChatCompletion``;
  ``stream=True`` a `ChatCompletionStream` of ``ChatCompletionChunk`` (iterate it, use it
  as a context manager, ``close()`` it); ``parse(..., response_format=Model)`` a
  ``ParsedChatCompletion`` whose ``message.parsed`` is the validated model instance.
- Mapped parameters: ``messages``, ``model`` (the route), ``max_tokens`` /
  ``max_completion_tokens``, ``temperature``, ``top_p``, ``stop``, ``tools``,
  ``tool_choice``, ``response_format``, ``metadata``, ``user``, ``timeout``. Any other
  parameter of the SDK's own ``create`` is accepted and dropped (logged at debug): the
  route decides which provider serves, and not every provider has ``seed``. A name the
  SDK does not know is a `TypeError`, as with the SDK; ``n`` above 1 is refused.
- Errors are the SDK's own classes, so ``except openai.APIStatusError`` keeps working:
  `failover.BadRequest` and its kinds are ``openai.BadRequestError`` (400), an unknown
  route ``openai.NotFoundError`` (404), every provider failing
  ``openai.InternalServerError`` (503; 504 when the deadline ran out). The failover
  error is the ``__cause__`` and ``.failover`` of the raised one, with its ``attempts``.
- A stream that restarts on another provider after text was shown (the route's
  ``stream_interrupt: restart``) sends one chunk with no choices and a
  ``failover_restart`` field (``{"provider", "reason"}``): drop what was shown. Code that
  cannot do that should set the route to ``continue`` or ``raise``.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import httpx2
import openai
from openai.resources.chat.completions import Completions as _SdkCompletions
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ParsedChatCompletion
from pydantic import PrivateAttr

import failover

if TYPE_CHECKING:
    from failover import Response, Router, StreamEvent

__all__ = [
    "AsyncChatCompletionStream",
    "AsyncOpenAI",
    "ChatCompletionStream",
    "FailoverChatCompletion",
    "OpenAI",
]

logger = logging.getLogger("failover")

_MAPPED = frozenset({
    "messages", "model", "max_tokens", "max_completion_tokens", "temperature", "top_p",
    "stop", "tools", "tool_choice", "response_format", "metadata", "user", "timeout",
    "stream", "n",
})
#: Every keyword of the SDK's own ``create``, read from it, so the list follows the SDK.
_SDK_PARAMS = frozenset(inspect.signature(_SdkCompletions.create).parameters) - {"self"}
_DROPPED = _SDK_PARAMS - _MAPPED
_REQUEST = httpx2.Request("POST", "http://failover.invalid/v1/chat/completions")

T = TypeVar("T")


class FailoverChatCompletion(ChatCompletion):
    """A ``ChatCompletion`` that also knows how failover served it (``.failover``)."""

    _failover: Any = PrivateAttr(default=None)

    @property
    def failover(self) -> Response:
        """The `failover.Response`: ``provider``, ``attempts``, ``parsed``..."""
        return self._failover  # type: ignore[no-any-return]


class _FailoverParsed(ParsedChatCompletion[T], Generic[T]):
    _failover: Any = PrivateAttr(default=None)

    @property
    def failover(self) -> Response:
        return self._failover  # type: ignore[no-any-return]


# -- the call: SDK keywords in, router keywords out -------------------------------------------


def _given(value: Any) -> bool:
    return value is not None and not isinstance(value, (openai.NotGiven, openai.Omit))


def _call(router: Router, kwargs: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The router's keywords for the SDK's ``kwargs``; the SDK's own errors for mistakes."""
    unknown = sorted(set(kwargs) - _SDK_PARAMS)
    if unknown:
        raise TypeError(f"{where}() got unexpected keyword argument(s) {', '.join(unknown)}")
    given = {k: v for k, v in kwargs.items() if _given(v)}
    dropped = sorted(set(given) & _DROPPED)
    if dropped:
        logger.debug("%s: dropped %s (the route chooses the provider)", where, dropped)
    route = given.get("model")
    if route not in router.config.routes:
        raise _status_error(404, f"model {route!r} is not a route of this router; routes: "
                            f"{', '.join(sorted(router.config.routes))}", None)
    if given.get("n", 1) != 1:
        raise _status_error(400, "n: only one choice per request is supported", None)
    call: dict[str, Any] = {"route": route, "messages": _messages(given.get("messages"))}
    limit = given.get("max_completion_tokens", given.get("max_tokens"))
    for name, value in (("max_tokens", limit), ("temperature", given.get("temperature")),
                        ("top_p", given.get("top_p")), ("stop", given.get("stop")),
                        ("tools", given.get("tools")), ("tool_choice", given.get("tool_choice")),
                        ("response_format", given.get("response_format")),
                        ("timeout", given.get("timeout"))):
        if value is not None:
            call[name] = value
    metadata = dict(given.get("metadata") or {})
    if "user" in given:
        metadata.setdefault("user_id", given["user"])
    if metadata:
        call["metadata"] = metadata
    return call


def _messages(messages: Any) -> Any:
    """The SDK's own message objects (``messages.append(completion.choices[0].message)``,
    a common pattern) as the dicts they stand for."""
    if not isinstance(messages, list | tuple):
        return messages
    return [m.model_dump(exclude_none=True, exclude={"parsed"}) if hasattr(m, "model_dump")
            else m for m in messages]


# -- errors: the SDK's classes, the failover error as the cause --------------------------------


def _status_error(status: int, message: str, cause: BaseException | None,
                  kind: str | None = None) -> openai.APIStatusError:
    body = {"error": {"message": message, "type": kind or "failover_error", "code": status}}
    response = httpx2.Response(status, json=body, request=_REQUEST)
    cls: type[openai.APIStatusError] = {
        400: openai.BadRequestError, 404: openai.NotFoundError,
    }.get(status, openai.InternalServerError if status >= 500 else openai.APIStatusError)
    error = cls(message, response=response, body=body["error"])
    error.failover = cause  # type: ignore[attr-defined]
    return error


def _as_sdk_error(err: failover.FailoverError) -> openai.APIStatusError:
    if isinstance(err, failover.BadRequest | failover.ContextWindowExceeded
                  | failover.ContentFiltered):
        status = 400
    elif isinstance(err, failover.DeadlineExceeded):
        status = 504
    else:
        status = 503
    return _status_error(status, str(err), err, type(err).__name__)


def _sdk_errors(call: Any) -> Any:
    """``call()``; a failover error comes out as the SDK's, chained to it."""
    try:
        return call()
    except failover.FailoverError as err:
        raise _as_sdk_error(err) from err


async def _asdk_errors(answer: Awaitable[Response]) -> Response:
    """`_sdk_errors` for an awaited answer."""
    try:
        return await answer
    except failover.FailoverError as err:
        raise _as_sdk_error(err) from err


# -- results: failover's Response as the SDK's types -------------------------------------------


def _tool_calls(reply: Response) -> list[dict[str, Any]] | None:
    if not reply.tool_calls:
        return None
    return [{"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
            for c in reply.tool_calls]


def _usage(reply: Response) -> dict[str, int]:
    return {"prompt_tokens": reply.usage.input_tokens,
            "completion_tokens": reply.usage.output_tokens,
            "total_tokens": reply.usage.total_tokens}


def _completion_dict(reply: Response, parsed: bool = False) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None,
                               "tool_calls": _tool_calls(reply)}
    if parsed:
        message["parsed"] = reply.parsed
    return {
        "id": f"chatcmpl-failover-{uuid.uuid4().hex}", "object": "chat.completion",
        "created": int(time.time()), "model": reply.model,
        "choices": [{"index": 0, "finish_reason": reply.finish_reason, "message": message}],
        "usage": _usage(reply),
    }


def _completion(reply: Response) -> FailoverChatCompletion:
    completion = FailoverChatCompletion.model_validate(_completion_dict(reply))
    completion._failover = reply
    return completion


def _parsed(reply: Response) -> ParsedChatCompletion[Any]:
    completion: _FailoverParsed[Any] = _FailoverParsed.model_validate(
        _completion_dict(reply, parsed=True))
    completion._failover = reply
    return completion


class _Chunks:
    """Failover's stream events as ``ChatCompletionChunk``\\ s, one id for the stream."""

    def __init__(self) -> None:
        self.id = f"chatcmpl-failover-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.response: Response | None = None

    def of(self, event: StreamEvent) -> ChatCompletionChunk:
        if event.type == "text":
            return self._chunk({"content": event.text})
        if event.type == "tool_call":
            call: dict[str, Any] = {"index": event.index, "type": "function",
                                    "function": {"arguments": event.arguments}}
            if event.id:
                call["id"] = event.id
            if event.name:
                call["function"]["name"] = event.name
            return self._chunk({"tool_calls": [call]})
        if event.type == "restart":
            return ChatCompletionChunk.model_validate({
                **self._base(""), "choices": [],
                "failover_restart": {"provider": event.provider, "reason": event.reason}})
        self.response = event.response
        return self._last(event.response)

    def _base(self, model: str) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": model}

    def _chunk(self, delta: dict[str, Any]) -> ChatCompletionChunk:
        return ChatCompletionChunk.model_validate({
            **self._base(""), "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})

    def _last(self, reply: Response) -> ChatCompletionChunk:
        return ChatCompletionChunk.model_validate({
            **self._base(reply.model),
            "choices": [{"index": 0, "delta": {}, "finish_reason": reply.finish_reason}],
            "usage": _usage(reply),
        })


class ChatCompletionStream:
    """``for chunk in stream``; ``.response`` is failover's `Response` once it ended."""

    def __init__(self, events: Iterator[StreamEvent]) -> None:
        self._events = events
        self._chunks = _Chunks()

    @property
    def response(self) -> Response | None:
        return self._chunks.response

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        while True:
            try:
                event = next(self._events)
            except StopIteration:
                return
            except failover.FailoverError as err:
                raise _as_sdk_error(err) from err
            yield self._chunks.of(event)

    def close(self) -> None:
        close = getattr(self._events, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> ChatCompletionStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncChatCompletionStream:
    """``async for chunk in stream``; ``.response`` once it ended."""

    def __init__(self, events: AsyncIterator[StreamEvent]) -> None:
        self._events = events
        self._chunks = _Chunks()

    @property
    def response(self) -> Response | None:
        return self._chunks.response

    async def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        while True:
            try:
                event = await self._events.__anext__()
            except StopAsyncIteration:
                return
            except failover.FailoverError as err:
                raise _as_sdk_error(err) from err
            yield self._chunks.of(event)

    async def close(self) -> None:
        aclose = getattr(self._events, "aclose", None)
        if aclose is not None:
            await aclose()

    async def __aenter__(self) -> AsyncChatCompletionStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# -- the clients --------------------------------------------------------------------------------


class _Completions:
    def __init__(self, router: Router) -> None:
        self._router = router

    def create(self, **kwargs: Any) -> FailoverChatCompletion | ChatCompletionStream:
        call = _call(self._router, kwargs, "create")
        if kwargs.get("stream") is True:
            # The request is checked when the stream is made: a mistake is the SDK's 400.
            return ChatCompletionStream(_sdk_errors(lambda: iter(self._router.stream(**call))))
        reply = _sdk_errors(lambda: self._router.complete(**call))
        return _completion(reply)

    def parse(self, **kwargs: Any) -> ParsedChatCompletion[Any]:
        call = _call(self._router, kwargs, "parse")
        return _parsed(_sdk_errors(lambda: self._router.complete(**call)))


class _AsyncCompletions:
    def __init__(self, router: Router) -> None:
        self._router = router

    async def create(self, **kwargs: Any) -> FailoverChatCompletion | AsyncChatCompletionStream:
        call = _call(self._router, kwargs, "create")
        if kwargs.get("stream") is True:
            return AsyncChatCompletionStream(
                _sdk_errors(lambda: aiter(self._router.astream(**call))))
        return _completion(await _asdk_errors(self._router.acomplete(**call)))

    async def parse(self, **kwargs: Any) -> ParsedChatCompletion[Any]:
        call = _call(self._router, kwargs, "parse")
        return _parsed(await _asdk_errors(self._router.acomplete(**call)))


class _Chat:
    def __init__(self, completions: Any) -> None:
        self.completions = completions


class OpenAI:
    """``client.chat.completions.create / parse`` as the openai SDK has them, sent
    through ``router``; ``model`` names the route."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.chat = _Chat(_Completions(router))

    def close(self) -> None:
        self.router.close()

    def __enter__(self) -> OpenAI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncOpenAI:
    """The async twin: ``await client.chat.completions.create(...)``."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.chat = _Chat(_AsyncCompletions(router))

    async def close(self) -> None:
        await self.router.aclose()

    async def __aenter__(self) -> AsyncOpenAI:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
