"""Simulated providers behind the httpx2 seam: `FakeProviders` and `SimulatedProvider`.

``with FakeProviders() as fake:`` installs a `RespxTransport` over one ``respx.Router``
with `override_transport` (a context variable: nothing global is patched, parallel
tests and tasks do not see each other's fakes). ``fake["openai"]`` is the simulated
provider for the provider of that config name (matched on the ``x-failover-provider``
header the transport adds); ``fake["http://localhost:11434/v1"]`` matches requests by
URL prefix instead. Each has one respx route, whose side effect records the request
and replies as its `Behaviour` says, in the wire format of the request it received.

A request no behaviour covers is recorded in `FakeProviders.unexpected` and fails as a
refused connection whose message says what to add to the test; a ``type: fake``
provider with no behaviour set answers from its own settings instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote, unquote

import httpx
import httpx2
import respx

from .._fallback import DeferredRecord, DeferredStore
from ..providers import _cloud_wire
from ..providers._base import override_transport
from ..providers._wire import DEFAULT_TEXT, ChunkedBody, WireFormat, read_request

# Names, not the module: ``from . import _behaviours`` would reuse a stale package
# attribute when pytester has dropped and re-imported the module between inner runs.
# (The behaviour methods below call these module-level factories of the same name.)
from ._behaviours import (
    LONG_TEXT,
    Behaviour,
    Call,
    FinishReason,
    Reply,
    answer,
    behaviour_from,
    content_filter,
    context_window,
    cut_stream,
    down,
    fail,
    flaky,
    for_platform,
    hang,
    malformed,
    quota,
    rate_limit,
    refuse,
    reset,
    sequence,
    slow,
    stall,
    timeout,
)
from ._bridge import PROVIDER_HEADER, RespxTransport
from ._conformance import wire_problems

__all__ = ["FakeProviders", "RecordedRequest", "SimulatedIdentity", "SimulatedProvider"]

_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "api-key"})


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request a simulated provider received."""

    provider: str
    method: str
    url: str
    headers: Mapping[str, str] = field(repr=False)
    #: The parsed JSON body (None if the body was empty or not JSON).
    json: Any = field(repr=False)
    #: When it arrived, on the kit's clock.
    time: float
    stream: bool
    format: WireFormat | None
    model: str | None
    #: The body as sent (a token request's form, say: `json` is None for it).
    body: bytes = field(default=b"", repr=False)

    @property
    def messages(self) -> list[Any]:
        """The conversation as sent: OpenAI/Anthropic ``messages``, Gemini ``contents``."""
        body = self.json if isinstance(self.json, dict) else {}
        found = body.get("messages", body.get("contents", []))
        return list(found) if isinstance(found, list) else []

    @property
    def problems(self) -> list[str]:
        """What the provider's API would refuse in this request (see `wire_problems`):
        empty for a valid one."""
        return wire_problems(self.format, self.json, self.model)

    def redacted_headers(self) -> dict[str, str]:
        """The headers with API keys masked, for messages and logs."""
        return {k: ("***" if k.lower() in _SECRET_HEADERS else v) for k, v in self.headers.items()}


@dataclass(slots=True)
class _Exchange:
    """What the seam knew about the request respx is resolving right now."""

    request: httpx2.Request
    provider: str
    is_async: bool


_exchange: contextvars.ContextVar[_Exchange | None] = contextvars.ContextVar(
    "failover_testing_exchange", default=None
)


class _KitTransport(RespxTransport):
    """`RespxTransport` that tells the route side effects whether to answer sync or async
    and what the client's timeout was (respx sees only the legacy ``httpx`` request).

    It also hands routers built while it is installed the kit's ``clock`` and its
    throwaway ``deferred_path`` (see `TransportOverride`)."""

    kit: FakeProviders

    @property
    def clock(self) -> Any:
        return self.kit.clock

    @property
    def deferred_path(self) -> Path | None:
        return None if self.kit.real_store else self.kit.deferred_path

    def handle_request(self, request: httpx2.Request, provider: str) -> httpx2.Response:
        token = _exchange.set(_Exchange(request, provider, is_async=False))
        try:
            return super().handle_request(request, provider)
        finally:
            _exchange.reset(token)

    async def handle_async_request(
        self, request: httpx2.Request, provider: str
    ) -> httpx2.Response:
        token = _exchange.set(_Exchange(request, provider, is_async=True))
        try:
            return await super().handle_async_request(request, provider)
        finally:
            _exchange.reset(token)


def _read_timeout(exchange: _Exchange | None) -> float | None:
    if exchange is None:
        return None
    timeouts = exchange.request.extensions.get("timeout")
    if isinstance(timeouts, Mapping):
        value = timeouts.get("read")
        if isinstance(value, (int, float)):
            return float(value)
    return None


class _Body(ChunkedBody, httpx.SyncByteStream, httpx.AsyncByteStream):
    pass


class SimulatedProvider:
    """One simulated provider. Each behaviour method replaces the previous behaviour and
    returns the provider, so ``fake["openai"].fail(503)`` reads as a sentence."""

    def __init__(self, kit: FakeProviders, key: str) -> None:
        self.key = key
        self._kit = kit
        self._behaviour: Behaviour | None = None
        self._handled = 0
        self.requests: list[RecordedRequest] = []
        self.route = respx.Route(**self._pattern())
        self.route.side_effect = self._side_effect

    def _pattern(self) -> dict[str, Any]:
        if _is_url(self.key):
            return {"url__startswith": self.key.rstrip("/")}
        return {"headers": {PROVIDER_HEADER: quote(self.key)}}

    def __repr__(self) -> str:
        return f"<SimulatedProvider {self.key!r} {self._behaviour!r} calls={self.calls}>"

    # -- records -------------------------------------------------------------------------

    @property
    def calls(self) -> int:
        """How many requests this provider received (also those cut off mid-way)."""
        return len(self.requests)

    @property
    def last_request(self) -> RecordedRequest:
        if not self.requests:
            raise AssertionError(f"simulated provider {self.key!r} received no request")
        return self.requests[-1]

    @property
    def behaviour(self) -> Behaviour | None:
        return self._behaviour

    # -- behaviours ----------------------------------------------------------------------

    def set(self, behaviour: Behaviour | int | str) -> SimulatedProvider:
        """Install a behaviour built with the module-level factories (or a shorthand)."""
        self._behaviour = behaviour_from(behaviour, where=f"fake_providers[{self.key!r}]")
        self._handled = 0
        return self

    def answer(self, text: str = DEFAULT_TEXT, tool_calls: Iterable[Any] | None = None, *,
               finish_reason: FinishReason | None = None,
               chunk_size: int | None = None,
               stream: bool | None = None,
               reasoning: str | None = None) -> SimulatedProvider:  # fmt: skip
        """Answer ``text`` and ``tool_calls`` in this provider's format (see `answer`)."""
        return self.set(answer(text, tool_calls, finish_reason=finish_reason,
                               chunk_size=chunk_size, stream=stream, reasoning=reasoning))

    def fail(self, status: int, retry_after: float | None = None, *,
             message: str | None = None) -> SimulatedProvider:  # fmt: skip
        """An HTTP error (429 with ``Retry-After``, 500, 503, 529, 401...)."""
        return self.set(fail(status, retry_after, message=message))

    def rate_limit(self, retry_after: float | None = 1.0) -> SimulatedProvider:
        return self.set(rate_limit(retry_after))

    def context_window(self) -> SimulatedProvider:
        return self.set(context_window())

    def content_filter(self, on: Literal["answer", "prompt"] = "answer") -> SimulatedProvider:
        """The answer (or, ``on="prompt"``, the prompt) blocked by a content policy."""
        return self.set(content_filter(on))

    def timeout(self) -> SimulatedProvider:
        """A read timeout, raised at once."""
        return self.set(timeout())

    def hang(self, seconds: float | None = None) -> SimulatedProvider:
        """Wait until the client's read timeout (or ``seconds``), then time out."""
        return self.set(hang(seconds))

    def refuse(self) -> SimulatedProvider:
        return self.set(refuse())

    def reset(self) -> SimulatedProvider:
        return self.set(reset())

    def cut_stream(self, after: int = 1, *, text: str = LONG_TEXT) -> SimulatedProvider:
        """``after`` content chunks, then the connection drops."""
        return self.set(cut_stream(after, text=text))

    def stall(self, after: int = 1, *, text: str = LONG_TEXT) -> SimulatedProvider:
        """``after`` content chunks, then a read timeout."""
        return self.set(stall(after, text=text))

    def malformed(self, after: int = 0, *, text: str = LONG_TEXT) -> SimulatedProvider:
        """A body (or, after ``after`` good chunks, a stream chunk) that does not parse."""
        return self.set(malformed(after, text=text))

    def slow(self, seconds: float, text: str = DEFAULT_TEXT, *,
             then: Behaviour | None = None) -> SimulatedProvider:  # fmt: skip
        """Answer after ``seconds`` (on the kit's clock if it has one)."""
        return self.set(slow(seconds, text, then=then))

    def flaky(self, rate: float = 0.5, seed: int = 0, *, status: int = 503,
              fault: Behaviour | None = None, text: str = DEFAULT_TEXT) -> SimulatedProvider:
        """Fail a seeded share ``rate`` of requests, answer the others."""
        return self.set(flaky(rate, seed, status=status, fault=fault, text=text))

    def down(self, after: int = 0, requests: int | None = None, *,
             for_seconds: float | None = None, status: int = 503,
             fault: Behaviour | None = None, text: str = DEFAULT_TEXT) -> SimulatedProvider:
        """Answer ``after`` requests, fail ``requests`` (or ``for_seconds``), answer again."""
        return self.set(down(after, requests, for_seconds=for_seconds, status=status,
                             fault=fault, text=text))

    def sequence(self, *steps: Behaviour) -> SimulatedProvider:
        """One step per request; the last repeats."""
        return self.set(sequence(*steps))

    def quota(self, rpm: int | None = None, tpm: int | None = None, *,
              window: float = 60.0, per_key: bool = True, retry_after: bool = False,
              then: Behaviour | None = None) -> SimulatedProvider:  # fmt: skip
        """Enforce ``rpm``/``tpm`` per key with 429s, sending rate-limit headers."""
        return self.set(quota(rpm, tpm, window=window, per_key=per_key,
                              retry_after=retry_after, then=then))

    # -- serving -------------------------------------------------------------------------

    def _side_effect(self, request: httpx.Request) -> Any:
        exchange = _exchange.get()
        recorded = self._kit._record(request, exchange)
        self.requests.append(recorded)
        behaviour = self._behaviour
        if behaviour is None:
            return self._kit._unhandled(recorded, exchange, request)
        # Stateful behaviours (down, sequence, flaky) count requests; hedged attempts
        # may arrive from several threads at once. The delay is served outside the lock.
        with self._kit._lock:
            call = Call(
                wire=read_request(recorded.url, request.content),
                index=self._handled,
                now=recorded.time,
                read_timeout=_read_timeout(exchange),
                credential=_credential(request),
            )
            self._handled += 1
            problems = recorded.problems if self._kit.strict else []
            # A strict kit refuses what the real API would, as it would: a 400.
            chosen = fail(400, message="; ".join(problems)) if problems else behaviour
            reply = for_platform(chosen.reply(call), call.wire)
        return self._kit._carry_out(reply, request, exchange)


class SimulatedIdentity:
    """The token endpoints the cloud SDKs call (Google OAuth, Microsoft Entra ID), answered
    with a fresh token each time: ``fake.identity``. ``fail(status)`` refuses them,
    ``refuse()`` makes them unreachable;
    ``expires_in`` sets the tokens' lifetime (a short one makes every request refresh)."""

    def __init__(self, kit: FakeProviders) -> None:
        self._kit = kit
        self.requests: list[RecordedRequest] = []
        #: Every token handed out, in order.
        self.tokens: list[str] = []
        self.expires_in = 3600
        self._status: int | None = None
        self._refused = False
        self.route = respx.Route(url__regex=r"^https://(oauth2\.googleapis\.com/token"
                                            r"|login\.microsoftonline\.com/)")
        self.route.side_effect = self._answer

    def fail(self, status: int = 401) -> SimulatedIdentity:
        self._status = status
        self._refused = False
        return self

    def refuse(self) -> SimulatedIdentity:
        """The token endpoint is unreachable (connection refused)."""
        self._refused = True
        return self

    def answer(self, expires_in: int | None = None) -> SimulatedIdentity:
        self._status = None
        self._refused = False
        if expires_in is not None:
            self.expires_in = expires_in
        return self

    def _answer(self, request: httpx.Request) -> httpx.Response:
        recorded = self._kit._record(request, _exchange.get())
        self.requests.append(recorded)
        kind = _cloud_wire.token_endpoint(recorded.url) or "google"
        if self._refused:
            raise httpx.ConnectError(f"simulated: {recorded.url} refused the connection")
        if self._status is not None:
            body = {"error": "invalid_client",
                    "error_description": f"simulated refusal ({self._status})"}
            return httpx.Response(self._status, json=body, request=request)
        token = ""
        if kind != "entra-discovery":
            token = f"simulated-{kind}-token-{len(self.tokens) + 1:04d}"
            self.tokens.append(token)
        return httpx.Response(200, json=_cloud_wire.token_answer(
            kind, recorded.url, token, self.expires_in), request=request)


def _credential(request: httpx.Request) -> str:
    """A digest of the request's key header: who sent it, without the key itself."""
    for name in _SECRET_HEADERS:
        value = request.headers.get(name)
        if value:
            if value.startswith("AWS4-HMAC-SHA256 Credential="):
                # SigV4 signs each request anew: the access key id says who sent it.
                value = value.split("=", 1)[1].split("/", 1)[0]
            return hashlib.sha256(value.encode()).hexdigest()[:12]
    return ""


def _is_url(key: str) -> bool:
    return "://" in key


class FakeProviders:
    """Simulated providers for a block of code: a test, a drill, a demo.

    ``clock``: recorded request times, ``slow``/``hang`` delays and ``down(for_seconds=)``
    use it (a `FakeClock` is advanced instead of sleeping); real time if None.
    ``default``: the behaviour of providers that were given none (None: such a request
    is an error, listed in `unexpected`).
    ``real_store``: routers built under the kit defer to the config's own store instead
    of a throwaway one (only for tests of the store itself).
    ``strict``: a request its provider's API would refuse (turns out of order, a tool
    result that answers no call, a signature the provider did not give) is answered with
    that API's 400, naming the problem (`RecordedRequest.problems` lists them always).
    """

    def __init__(self, clock: Any = None, default: Behaviour | int | str | None = None,
                 *, real_store: bool = False, strict: bool = False) -> None:  # fmt: skip
        self.clock = clock
        self.real_store = real_store
        #: Refuse (400) every request its provider's API would refuse (`wire_problems`).
        self.strict = strict
        self.default = None if default is None else behaviour_from(default, where="default")
        self.router = respx.Router(assert_all_called=False, assert_all_mocked=True)
        self.transport = _KitTransport(self.router)
        self.transport.kit = self
        self.unexpected: list[RecordedRequest] = []
        #: What the webhook notifier posted (each with its ``json`` body), answered 200.
        self.webhooks: list[RecordedRequest] = []
        self._deferred_dir: Path | None = None
        self._arrange_pending = False
        self._log: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._providers: dict[str, SimulatedProvider] = {}
        self._defaults: dict[str, tuple[Behaviour, list[int]]] = {}
        #: The token endpoints (Google OAuth, Microsoft Entra ID).
        self.identity = SimulatedIdentity(self)
        self._catch_all = respx.Route()
        self._catch_all.side_effect = self._stray
        self._stack: list[contextlib.ExitStack] = []
        self._arrange()

    # -- providers -----------------------------------------------------------------------

    def __getitem__(self, key: str) -> SimulatedProvider:
        if not isinstance(key, str) or not key:
            raise TypeError(
                f"fake_providers[...] takes a provider name from the config or a base URL, "
                f"got {key!r}"
            )
        provider = self._providers.get(key)
        if provider is None:
            provider = self._providers[key] = SimulatedProvider(self, key)
            self._arrange_pending = True
        if self._arrange_pending:
            self._arrange()
        return provider

    def __contains__(self, key: object) -> bool:
        return key in self._providers

    def __iter__(self) -> Iterator[str]:
        return iter(self._providers)

    def __repr__(self) -> str:
        return f"<FakeProviders {sorted(self._providers)}>"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request, to every provider, in order."""
        return list(self._log)

    def _arrange(self) -> None:
        # Names are more specific than URLs, longer URL prefixes than shorter; the
        # catch-all that reports strays comes last.
        named = [p for k, p in self._providers.items() if not _is_url(k)]
        by_url = sorted((p for k, p in self._providers.items() if _is_url(k)),
                        key=lambda p: -len(p.key))
        self.router.routes.clear()
        self.router.routes.add(self.identity.route)  # a token request names its provider too
        for provider in (*named, *by_url):
            self.router.routes.add(provider.route)
        self.router.routes.add(self._catch_all)
        self._arrange_pending = False

    # -- what the code under test left behind ------------------------------------------

    @property
    def deferred_path(self) -> Path:
        """The throwaway store that routers built under the kit defer to."""
        if self._deferred_dir is None:
            self._deferred_dir = Path(tempfile.mkdtemp(prefix="failover-kit-"))
        return self._deferred_dir / "deferred.sqlite"

    @property
    def deferred(self) -> list[DeferredRecord]:
        """The requests routers built under the kit deferred (the real store is untouched)."""
        if self._deferred_dir is None:
            return []
        return DeferredStore(self.deferred_path).list()

    # -- installing the seam -------------------------------------------------------------

    def __enter__(self) -> FakeProviders:
        stack = contextlib.ExitStack()
        # Process-wide too: a request from a thread the test started must reach the kit,
        # never a real network.
        stack.enter_context(override_transport(self.transport, process_wide=True))
        self._stack.append(stack)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self._stack.pop().close()
        if not self._stack and self._deferred_dir is not None:
            shutil.rmtree(self._deferred_dir, ignore_errors=True)
            self._deferred_dir = None

    async def __aenter__(self) -> FakeProviders:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- time ----------------------------------------------------------------------------

    def now(self) -> float:
        if self.clock is not None:
            return float(self.clock())
        return time.monotonic()

    def _sleep(self, seconds: float) -> None:
        sleep = getattr(self.clock, "sleep", None)
        if sleep is not None:
            sleep(seconds)
        elif seconds > 0:
            time.sleep(seconds)

    async def _asleep(self, seconds: float) -> None:
        asleep = getattr(self.clock, "asleep", None)
        if asleep is not None:
            await asleep(seconds)
        elif seconds > 0:
            await asyncio.sleep(seconds)

    # -- serving -------------------------------------------------------------------------

    def _record(self, request: httpx.Request, exchange: _Exchange | None) -> RecordedRequest:
        wire = read_request(str(request.url), request.content)
        provider = unquote(request.headers.get(PROVIDER_HEADER, "")) or (
            exchange.provider if exchange else ""
        )
        recorded = RecordedRequest(
            provider=provider,
            method=request.method,
            url=str(request.url),
            headers={k: v for k, v in request.headers.items() if k.lower() != PROVIDER_HEADER},
            json=wire.body,
            time=self.now(),
            stream=wire.stream,
            format=wire.format,
            model=wire.model,
            body=request.content,
        )
        self._log.append(recorded)
        return recorded

    def _stray(self, request: httpx.Request) -> Any:
        exchange = _exchange.get()
        recorded = self._record(request, exchange)
        if recorded.provider == "webhook":
            self.webhooks.append(recorded)
            return httpx.Response(200, json={"ok": True}, request=request)
        name = recorded.provider or recorded.url
        if self.default is not None:
            # Served by the default: still counted as that provider's request.
            provider = self._providers.get(name)
            if provider is None:
                provider = self._providers[name] = SimulatedProvider(self, name)
                self._arrange_pending = True  # not now: respx is resolving this route
            provider.requests.append(recorded)
        return self._unhandled(recorded, exchange, request)

    def _unhandled(self, recorded: RecordedRequest, exchange: _Exchange | None,
                   request: httpx.Request) -> Any:  # fmt: skip
        name = recorded.provider or recorded.url
        if self.default is not None:
            with self._lock:
                if name not in self._defaults:
                    self._defaults[name] = (self.default.fresh(), [0])
                behaviour, handled = self._defaults[name]
                handled[0] += 1
                call = Call(wire=read_request(recorded.url, request.content),
                            index=handled[0] - 1, now=recorded.time,
                            read_timeout=_read_timeout(exchange))
                reply = for_platform(behaviour.reply(call), call.wire)
            return self._carry_out(reply, request, exchange)
        simulator = _own_simulator(recorded)
        if simulator is not None and exchange is not None:
            # A ``type: fake`` provider the test gave no behaviour: its settings answer.
            return _delegate(simulator, exchange)
        self.unexpected.append(recorded)
        raise httpx.ConnectError(unexpected_message(recorded))

    def _carry_out(self, reply: Reply, request: httpx.Request,
                   exchange: _Exchange | None) -> Any:  # fmt: skip
        if exchange is not None and exchange.is_async:
            return self._acarry_out(reply, request)
        if reply.delay:
            self._sleep(reply.delay)
        return _response(reply, request)

    async def _acarry_out(self, reply: Reply, request: httpx.Request) -> httpx.Response:
        if reply.delay:
            await self._asleep(reply.delay)
        return _response(reply, request)


def _response(reply: Reply, request: httpx.Request) -> httpx.Response:
    if reply.raise_ is not None:
        raise reply.raise_
    if reply.body_error is None and len(reply.chunks) <= 1:
        content = reply.chunks[0] if reply.chunks else b""
        return httpx.Response(reply.status, headers=reply.headers, content=content,
                              request=request)
    return httpx.Response(reply.status, headers=reply.headers,
                          stream=_Body(reply.chunks, reply.body_error), request=request)


def unexpected_message(recorded: RecordedRequest) -> str:
    """What to tell the user when a provider got a request the test did not plan for."""
    key = recorded.provider or recorded.url
    return (
        f"fake_providers: provider {key!r} ({recorded.method} {recorded.url}) got a request "
        f"but no behaviour was set. Add `fake_providers[{key!r}].answer('...')` "
        "(or .fail(503), ...) to the test."
    )


def _own_simulator(recorded: RecordedRequest) -> Any:
    from ..providers import fake  # a leaf importing a provider module: allowed

    return fake.simulator_for(recorded.headers)


class _Passthrough(httpx.SyncByteStream, httpx.AsyncByteStream):
    """An httpx2 response body handed back through respx as an httpx body."""

    def __init__(self, response: httpx2.Response) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        yield from self._response.iter_bytes()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.aiter_bytes():
            yield chunk


def _delegate(simulator: Any, exchange: _Exchange) -> Any:
    def convert(response: httpx2.Response) -> httpx.Response:
        return httpx.Response(response.status_code, headers=list(response.headers.multi_items()),
                              stream=_Passthrough(response))

    if exchange.is_async:
        async def answer() -> httpx.Response:
            response = await simulator.handle_async_request(exchange.request, exchange.provider)
            return convert(response)

        return answer()
    return convert(simulator.handle_request(exchange.request, exchange.provider))
