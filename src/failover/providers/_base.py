"""What every provider adapter shares: the httpx2 seam, the adapter template, and checks.

Adapters translate only. Each subclass says how to call its SDK and how to read what
came back; this module turns that into the four entry points the router uses
(`complete`, `acomplete`, `stream`, `astream`), maps every exception to one error
kind, and checks streams (no finish reason = interrupted, first-token and stall limits).

The seam: every SDK client is built over an ``httpx2`` client whose transport is a
`SeamTransport`. With no override it is a normal pooled HTTP transport. The test kit
installs an override with `override_transport` (a context variable, so parallel tests
do not see each other's fakes) and then receives every request with the name of the
provider that sent it. Nothing global is patched.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import email.utils
import json
import math
import re
import ssl
import sys
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import (
    AsyncGenerator,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import httpx2

from .._config import resolve_env
from .._errors import (
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
from .._limits import QuotaReading, read_rate_limit_headers
from .._models import (
    Completed,
    Message,
    ReasoningPart,
    Request,
    Response,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    events_of,
)
from .._secrets import register, register_url
from .._structured import parse_answer
from .._types import FinishReason
from ._clouds import map_credential_error, seam_session
from ._history import new_call_id
from ._known import known_context_window
from ._watchdog import AttemptBound, current_bound, start_watchdog, watch_response
from ._wire import WireFormat, completion_body

if TYPE_CHECKING:
    from .._config import ProviderConfig, TimeoutsConfig

__all__ = [
    "Capabilities",
    "ProviderAdapter",
    "SeamTransport",
    "StreamAccumulator",
    "TransportOverride",
    "error_from_status",
    "map_transport_error",
    "override_transport",
    "parse_retry_after",
]


# --- the transport seam ---------------------------------------------------------------


class TransportOverride(Protocol):
    """Receives every request of every provider while installed (the test kit).

    A test kit may also carry ``clock`` (routers built while it is installed use it, so
    simulated delays and breaker open times take no real time) and ``deferred_path`` (a
    throwaway store for routes that defer, so a test never writes the real one).
    """

    def handle_request(self, request: httpx2.Request, provider: str) -> httpx2.Response: ...

    async def handle_async_request(
        self, request: httpx2.Request, provider: str
    ) -> httpx2.Response: ...


_override: contextvars.ContextVar[TransportOverride | None] = contextvars.ContextVar(
    "failover_transport_override", default=None
)
#: Overrides installed process-wide, innermost last: what a thread that did not inherit
#: the context variable (``threading.Thread``, an executor, the webhook notifier) sees.
_process_wide: list[TransportOverride] = []


#: Whether the current attempt reached its provider (a response or a transport error
#: came back). Only then is an exception nobody mapped the provider's fault: before it,
#: it is the caller's input or environment (a NaN the SDK cannot encode, a closed event
#: loop) and must not count against the provider.
_reached: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "failover_reached_provider", default=False
)
#: The index of the key the current attempt sends with (which key a response's
#: rate-limit headers are about).
_attempt_key: contextvars.ContextVar[int] = contextvars.ContextVar(
    "failover_attempt_key", default=0
)


@contextlib.contextmanager
def override_transport(
    hook: TransportOverride, *, process_wide: bool = False
) -> Iterator[TransportOverride]:
    """Route every provider request made in this context to ``hook``; with
    ``process_wide``, also those of threads that do not carry this context (the test
    kit: a test's own threads must never reach a real network)."""
    token = _override.set(hook)
    if process_wide:
        _process_wide.append(hook)
    try:
        yield hook
    finally:
        _override.reset(token)
        if process_wide:
            _process_wide.remove(hook)


def current_override() -> TransportOverride | None:
    hook = _override.get()
    if hook is None and _process_wide:
        return _process_wide[-1]
    return hook


_SSL_CONTEXT: ssl.SSLContext | None = None
_SSL_LOCK = threading.Lock()


def _ssl_context() -> ssl.SSLContext:
    """One verifying SSL context per process, shared by every provider's transports.

    Loading the CA bundle takes tens of milliseconds; paid per transport, it landed on
    the first request that failed over to a backup.
    """
    global _SSL_CONTEXT
    if _SSL_CONTEXT is None:
        with _SSL_LOCK:
            if _SSL_CONTEXT is None:
                _SSL_CONTEXT = httpx2.create_ssl_context()
    return _SSL_CONTEXT


class SeamTransport(httpx2.BaseTransport, httpx2.AsyncBaseTransport):
    """A provider's transport: the real pool, unless the test kit holds the seam."""

    def __init__(
        self,
        provider: str,
        *,
        limits: httpx2.Limits | None = None,
        fallback: Any = None,
    ) -> None:
        self.provider = provider
        self._limits = limits or httpx2.Limits(max_connections=1000, max_keepalive_connections=100)
        # ``fallback`` replaces the network entirely (the simulated ``fake`` provider).
        self._fallback = fallback
        self._sync: httpx2.HTTPTransport | None = None
        # One async pool per event loop: connections belong to the loop that opened them,
        # so a router used from successive ``asyncio.run()`` calls (or from threads that
        # each run a loop) never reuses a connection of a loop that is gone.
        self._async: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, httpx2.AsyncHTTPTransport] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        #: Called with every response the provider sends (its adapter reads the
        #: rate-limit headers); None: nobody is listening.
        self.observer: Callable[[httpx2.Response], None] | None = None

    def _real_sync(self) -> httpx2.HTTPTransport:
        if self._sync is None:
            with self._lock:
                if self._sync is None:
                    self._sync = httpx2.HTTPTransport(limits=self._limits, verify=_ssl_context())
        return self._sync

    def _real_async(self) -> httpx2.AsyncHTTPTransport:
        loop = asyncio.get_running_loop()
        transport = self._async.get(loop)
        if transport is None:
            with self._lock:
                for old_loop, old in list(self._async.items()):
                    if old_loop.is_closed():
                        del self._async[old_loop]
                        _close_sockets(old)
                transport = self._async[loop] = httpx2.AsyncHTTPTransport(
                    limits=self._limits, verify=_ssl_context())
        return transport

    def warm(self) -> None:
        """Build the connection pool now (a simulated provider has none); async pools
        are built per event loop, on its first request (cheap: the SSL context is
        shared)."""
        if self._fallback is None:
            self._real_sync()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        hook = current_override() or self._fallback
        try:
            if hook is not None:
                response: httpx2.Response = hook.handle_request(request, self.provider)
            else:
                response = self._real_sync().handle_request(request)
                watch_response(response)  # a sync read cannot be cancelled: cut it
        except httpx2.TransportError:
            _reached.set(True)
            raise
        _reached.set(True)
        if self.observer is not None:
            self.observer(response)
        return response

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        hook = current_override() or self._fallback
        try:
            if hook is not None:
                response: httpx2.Response = await hook.handle_async_request(
                    request, self.provider)
            else:
                response = await self._real_async().handle_async_request(request)
        except httpx2.TransportError:
            _reached.set(True)
            raise
        _reached.set(True)
        if self.observer is not None:
            self.observer(response)
        return response

    def close(self) -> None:
        """Close every pool: the sync one, and the async ones of any loop (a loop that is
        not running cannot close its own connections, so their sockets are shut here)."""
        if self._sync is not None:
            self._sync.close()
            self._sync = None
        with self._lock:
            for transport in self._async.values():
                _close_sockets(transport)
            self._async.clear()

    async def aclose(self) -> None:
        transport = self._async.pop(asyncio.get_running_loop(), None)
        if transport is not None:
            await transport.aclose()
        self.close()


def _close_sockets(transport: httpx2.AsyncHTTPTransport) -> None:
    """Shut the sockets of an async pool whose event loop is gone or elsewhere."""
    pool = getattr(transport, "_pool", None)
    for connection in list(getattr(pool, "_connections", ())):
        stream = getattr(getattr(connection, "_connection", None), "_network_stream", None)
        sock = stream.get_extra_info("socket") if stream is not None else None
        # asyncio hands out a TransportSocket wrapper; the socket itself is inside.
        sock = getattr(sock, "_sock", sock)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


#: Header names whose values are credentials even when written in the file.
_CREDENTIAL_HEADER = re.compile(r"auth|key|token|secret|password|cookie", re.IGNORECASE)


# --- capabilities ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capabilities:
    tools: bool = True
    json_schema: bool = True
    images: bool = True
    prefill: bool = False
    context_window: int | None = None
    #: Whether the unified ``reasoning`` option is sent (a model that does not reason
    #: may refuse it).
    reasoning: bool = True

    def merged(self, overrides: Mapping[str, Any]) -> Capabilities:
        """Config values (non-None) win over what is known for the provider type."""
        fields = {k: v for k, v in overrides.items() if v is not None}
        if not fields:
            return self
        return Capabilities(**{**_caps_dict(self), **fields})

    def missing_for(self, request: Request) -> str | None:
        """Why this provider cannot serve ``request``, or None if it can."""
        if request.tools and not self.tools:
            return "does not support tools"
        if request.response_format is not None and not self.json_schema:
            return "does not support JSON schema output"
        if request.needs_images and not self.images:
            return "does not support images"
        if request.prefill is not None and not self.prefill:
            return "does not support prefill"
        return None


def _caps_dict(caps: Capabilities) -> dict[str, Any]:
    return {
        "tools": caps.tools,
        "json_schema": caps.json_schema,
        "images": caps.images,
        "prefill": caps.prefill,
        "context_window": caps.context_window,
        "reasoning": caps.reasoning,
    }


# --- error helpers ----------------------------------------------------------------------


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date)."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


_DURATION_S = re.compile(r"^(\d+(?:\.\d+)?)s$")


def parse_google_delay(value: Any) -> float | None:
    """Gemini's ``RetryInfo.retryDelay`` (``"37s"``) in seconds."""
    if isinstance(value, str):
        match = _DURATION_S.match(value.strip())
        if match:
            return float(match.group(1))
    return None


_CONTEXT_HINTS = (
    "context_length_exceeded",
    "context length",
    "context window",
    "prompt is too long",
    "maximum context",
    "exceeds the maximum number of tokens",
    "too many tokens",
)
_FILTER_HINTS = ("content_filter", "content policy", "content management policy", "safety")
# Gateways answer some faults of their own with a 400. Another provider may well serve
# the request, so these are not the caller's bad request.
_AUTH_HINTS = (
    "api_key_invalid",
    "api key not valid",
    # LiteLLM's proxy, asked with a key it cannot check (no database behind it).
    "no connected db",
)
_UNKNOWN_MODEL_HINTS = (
    # LiteLLM's proxy, asked for a model it does not serve.
    "invalid model name",
    "model_not_found",
)


def error_from_status(
    status: int,
    message: str,
    *,
    provider: str,
    headers: Mapping[str, str] | None = None,
    code: str | None = None,
    retry_after: float | None = None,
) -> ProviderError:
    """One error kind for an HTTP status, reading code/message for the 400 subkinds."""
    if retry_after is None:
        retry_after = parse_retry_after(headers)
    lowered = f"{code or ''} {message}".lower()
    kw: dict[str, Any] = {"provider": provider, "status": status, "code": code,
                          "retry_after": retry_after}
    if status in (400, 413, 422):
        if any(h in lowered for h in _AUTH_HINTS):
            return AuthenticationFailed(message, **kw)
        if any(h in lowered for h in _UNKNOWN_MODEL_HINTS):
            return ModelNotFound(message, **kw)
        if status == 413 or any(h in lowered for h in _CONTEXT_HINTS):
            return ContextWindowExceeded(message, **kw)
        if any(h in lowered for h in _FILTER_HINTS):
            return ContentFiltered(message, **kw)
        return BadRequest(message, **kw)
    if status == 401:
        return AuthenticationFailed(message, **kw)
    if status == 403:
        return PermissionDenied(message, **kw)
    if status == 404:
        return ModelNotFound(message, **kw)
    if status == 408:
        return Timeout(message, **kw)
    if status == 429:
        return RateLimited(message, **kw)
    if status in (503, 529) or "overloaded" in lowered:
        return Overloaded(message, **kw)
    if status >= 500 or status == 409:
        return ServerError(message, **kw)
    return BadRequest(message, **kw)


def map_transport_error(exc: BaseException, provider: str) -> ProviderError | None:
    """httpx2 transport exceptions (and JSON decode errors) to a kind; None if unknown."""
    if isinstance(exc, httpx2.TimeoutException):
        return Timeout(f"{type(exc).__name__}: timed out", provider=provider)
    if isinstance(exc, (httpx2.NetworkError, httpx2.RemoteProtocolError, httpx2.ProxyError)):
        return ConnectionFailed(f"{type(exc).__name__}: {exc}", provider=provider)
    if isinstance(exc, httpx2.TransportError):
        return ConnectionFailed(f"{type(exc).__name__}: {exc}", provider=provider)
    if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError)):
        return InvalidResponse(f"response does not parse: {exc}", provider=provider)
    return None


# --- streams --------------------------------------------------------------------------


@dataclass
class _ToolCallParts:
    id: str | None = None
    name: str | None = None
    arguments: list[str] = field(default_factory=list)
    signature: str | None = None


@dataclass
class StreamAccumulator:
    """Collects a stream's deltas into the final `Response`, and refuses unfinished ones."""

    provider: str
    model: str
    text_parts: list[str] = field(default_factory=list)
    tool_parts: dict[int, _ToolCallParts] = field(default_factory=dict)
    finish_reason: FinishReason | None = None
    usage: Usage = field(default_factory=Usage)
    served_model: str | None = None
    started: bool = False
    raw_chunks: int = 0
    #: The answer's reasoning, as the adapter assembled it from the stream.
    reasoning: list[ReasoningPart] = field(default_factory=list)

    def text(self, text: str) -> TextDelta:
        self.started = True
        self.text_parts.append(text)
        return TextDelta(text)

    def tool_call(
        self, index: int, *, id: str | None = None, name: str | None = None,
        arguments: str = "", signature: str | None = None,
    ) -> ToolCallDelta:
        self.started = True
        parts = self.tool_parts.setdefault(index, _ToolCallParts())
        if signature:
            parts.signature = signature
        if id:
            parts.id = id
        if name:
            parts.name = name
        if arguments:
            parts.arguments.append(arguments)
        return ToolCallDelta(index=index, id=id, name=name, arguments=arguments)

    @property
    def partial_text(self) -> str:
        return "".join(self.text_parts)

    def interrupted(self, why: str, cause: ProviderError | None = None) -> StreamInterrupted:
        return StreamInterrupted(
            why,
            partial_text=self.partial_text,
            provider=self.provider,
            status=cause.status if cause else None,
            code=cause.kind if cause else None,
        )

    def finish(self, raw: Any = None) -> Response:
        if self.finish_reason is None:
            raise self.interrupted("stream ended without a finish reason")
        calls = []
        for index in sorted(self.tool_parts):
            parts = self.tool_parts[index]
            blob = "".join(parts.arguments)
            try:
                arguments = json.loads(blob) if blob else {}
            except ValueError:
                why = f"tool call {parts.name!r} has malformed arguments"
                raise self.interrupted(why) from None
            if not isinstance(arguments, dict) or not parts.name:
                raise self.interrupted(f"tool call {index} is incomplete")
            calls.append(ToolCall(id=parts.id or new_call_id(), name=parts.name,
                                  arguments=arguments, signature=parts.signature))
        return Response(
            text=self.partial_text,
            finish_reason=self.finish_reason,
            usage=self.usage,
            provider=self.provider,
            model=self.served_model or self.model,
            tool_calls=tuple(calls),
            raw=raw,
            reasoning=tuple(self.reasoning),
        )


# --- the adapter template ---------------------------------------------------------------


class ProviderAdapter(ABC):
    """Base of the adapters. Subclasses implement the ``_`` hooks; nothing else."""

    #: Capabilities known for the provider type; config may override.
    default_capabilities: Capabilities = Capabilities()
    #: The wire format answered by `prime` (None: nothing to prime).
    wire: ClassVar[WireFormat | None] = None

    def __init__(self, name: str, config: ProviderConfig, timeouts: TimeoutsConfig) -> None:
        self.name = name
        self.config = config
        self.model = config.model
        self.timeouts = timeouts
        self.capabilities = self.default_capabilities.merged(
            {"context_window": known_context_window(config.model),
             **config.capabilities.model_dump(exclude_none=True)}
        )
        self._keys: list[str | None] | None = None
        self._headers: dict[str, str] | None = None
        register_url(config.base_url)
        #: Key index -> why its ``${VAR}`` cannot be resolved.
        self._missing: dict[int, str] = {}
        #: Told what each response's rate-limit headers say, with the key's index.
        self.on_rate_limits: Callable[[int, QuotaReading], None] | None = None
        self._client_lock = threading.RLock()
        self._sync_clients: dict[int, Any] = {}
        self._async_clients: dict[int, Any] = {}
        # google-genai never closes an injected client, so the adapter owns them all.
        self._http_clients: list[httpx2.Client | httpx2.AsyncClient] = []
        #: Token fetchers' sessions (see `_token_session`).
        self._sessions: list[Any] = []
        self._timeouts: dict[tuple[float | None, bool], httpx2.Timeout] = {}
        self.transport = SeamTransport(name, fallback=self._simulator())
        self.transport.observer = self._observe

    # -- hooks -------------------------------------------------------------------------

    def _simulator(self) -> Any:
        """A transport that replaces the network (only the ``fake`` type has one)."""
        return None

    @abstractmethod
    def _make_sync_client(self, api_key: str | None, http_client: httpx2.Client) -> Any: ...

    @abstractmethod
    def _make_async_client(self, api_key: str | None, http_client: httpx2.AsyncClient) -> Any: ...

    @abstractmethod
    def _send(self, client: Any, request: Request, timeout: httpx2.Timeout) -> Any:
        """Make the non-streaming call; return the SDK's response object."""

    @abstractmethod
    async def _asend(self, client: Any, request: Request, timeout: httpx2.Timeout) -> Any: ...

    @abstractmethod
    def _open_stream(self, client: Any, request: Request, timeout: httpx2.Timeout) -> Any:
        """Start a streaming call; return an iterable of SDK chunks (closable)."""

    @abstractmethod
    async def _aopen_stream(self, client: Any, request: Request, timeout: httpx2.Timeout) -> Any:
        """Start a streaming call; return an async iterable of SDK chunks."""

    @abstractmethod
    def _to_response(self, raw: Any) -> Response:
        """Translate a whole answer; raise ContentFiltered etc. for 200 refusals."""

    @abstractmethod
    def _chunk_events(self, chunk: Any, acc: StreamAccumulator) -> Iterable[StreamEvent]:
        """Translate one stream chunk into deltas, updating ``acc``."""

    @abstractmethod
    def _map_error(self, exc: BaseException) -> ProviderError | None:
        """The SDK's own exceptions to a kind; None to fall back to generic mapping."""

    def _token_session(self) -> Any:
        """A ``requests`` session over this provider's seam, for a cloud SDK's token
        fetcher (google-auth, azure-identity); closed with the adapter."""
        session = seam_session(self.transport, self.timeouts.request)
        self._sessions.append(session)
        return session

    def _primer_client(self, http_client: httpx2.Client) -> Any:
        """A throwaway SDK client for `prime`, with canned credentials (never fetched)."""
        return self._make_sync_client("primer-key", http_client)

    def _stream_http_response(self, opened: Any) -> httpx2.Response | None:
        """The HTTP response behind an opened stream, for adapters whose SDK hands a
        whole JSON answer to its SSE decoder (which then yields nothing); None where the
        SDK reads a JSON body itself."""
        return None

    def _answer_from_json(self, data: Any, opened: Any) -> Any:
        """The SDK's non-streaming answer object built from a whole JSON body that
        answered a stream request; raise the error kind if the body is an error."""
        raise InvalidResponse("a stream request was answered without a stream",
                              provider=self.name)

    # -- clients -----------------------------------------------------------------------

    def _resolve_keys(self) -> list[str | None]:
        """The key pool, ``${VAR}`` expanded. A key whose variable is not set is unusable
        (like a revoked one) and is looked up again on the next request, so setting the
        variable brings it back; when no key is usable the attempt fails with
        `AuthenticationFailed` naming the variable, never the request as a whole."""
        if self._keys is not None:
            return self._keys
        keys: list[str | None] = []
        self._missing = {}
        if self.config.api_key_file is not None:
            return self._key_from_file(self.config.api_key_file)
        for i, ref in enumerate(self.config.key_refs()):
            where = f"providers.{self.name}." + ("api_key" if i == 0 and
                                                 self.config.api_key else f"api_keys[{i}]")
            try:
                key = resolve_env(ref.get_secret_value(), where)
                register(key)
                keys.append(key)
            except ConfigError as exc:
                keys.append(None)
                self._missing[i] = exc.problems[0]
        if not keys:
            keys = [None]
        if not self._missing:
            self._keys = keys
        return keys

    def _key_from_file(self, path: str) -> list[str | None]:
        """The key in ``api_key_file``; unreadable or empty, it is missing (and read
        again on the next request), and the error names the file, never its content."""
        where = f"providers.{self.name}.api_key_file"
        try:
            key = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or type(exc).__name__
            self._missing[0] = f"{where}: cannot read {path}: {why}"
            return [None]
        if not key:
            self._missing[0] = f"{where}: {path} is empty"
            return [None]
        register(key)
        self._keys = [key]
        return self._keys

    def missing_credentials(self) -> list[str]:
        """Each key of this provider whose ``${VAR}`` is not set, as ``path: problem``."""
        self._resolve_keys()
        return list(self._missing.values())

    def missing_keys(self) -> Mapping[int, str]:
        """The keys whose ``${VAR}`` (or key file) cannot be read now, by index."""
        self._resolve_keys()
        return self._missing

    def _usable_key(self, index: int) -> str | None:
        keys = self._resolve_keys()
        if index in self._missing:
            if len(keys) > 1 and len(self._missing) == len(keys):
                raise AuthenticationFailed("no usable key: " + "; ".join(self._missing.values()),
                                           provider=self.name, code="missing_credential")
            raise AuthenticationFailed(self._missing[index], provider=self.name,
                                       code="missing_credential")
        return keys[index]

    def _observe(self, response: httpx2.Response) -> None:
        hook = self.on_rate_limits
        if hook is not None:
            reading = read_rate_limit_headers(response.headers.raw)
            if reading is not None:
                hook(_attempt_key.get(), reading)

    def headers(self) -> dict[str, str]:
        """The configured headers, ``${VAR}`` expanded; a value read from the environment,
        or sent under a credential's name, is a secret (scrubbed from every output)."""
        if self._headers is None:
            headers = {}
            for name, raw in self.config.headers.items():
                try:
                    value = resolve_env(raw, f"providers.{self.name}.headers.{name}")
                except ConfigError as exc:
                    raise AuthenticationFailed(exc.problems[0], provider=self.name,
                                               code="missing_credential") from None
                if value != raw or _CREDENTIAL_HEADER.search(name):
                    register(value)
                headers[name] = value
            self._headers = headers
        return dict(self._headers)

    def _http_kwargs(self) -> dict[str, Any]:
        t = self.timeouts
        return {"timeout": httpx2.Timeout(t.request, connect=t.connect),
                "headers": self.headers()}

    def sync_client(self, key_index: int = 0) -> Any:
        client = self._sync_clients.get(key_index)
        if client is None:
            # One client per key even when the background preparation and a first
            # request race for it (two would mean two token fetches, two pools).
            with self._client_lock:
                client = self._sync_clients.get(key_index)
                if client is None:
                    key = self._usable_key(key_index)
                    http = httpx2.Client(transport=self.transport, **self._http_kwargs())
                    self._http_clients.append(http)
                    client = self._make_sync_client(key, http)
                    self._sync_clients[key_index] = client
        return client

    def async_client(self, key_index: int = 0) -> Any:
        client = self._async_clients.get(key_index)
        if client is None:
            with self._client_lock:
                client = self._async_clients.get(key_index)
                if client is None:
                    key = self._usable_key(key_index)
                    http = httpx2.AsyncClient(transport=self.transport,
                                              **self._http_kwargs())
                    self._http_clients.append(http)
                    client = self._make_async_client(key, http)
                    self._async_clients[key_index] = client
        return client

    def http_timeout(self, timeout: float | None, *, stream: bool = False) -> httpx2.Timeout:
        """The attempt's timeout, already cut to what is left of the request deadline.

        Rounded *down* (to 100 ms above a second, to the millisecond below) and kept:
        a deadline far from running out then asks for the same few values on every
        request, building an ``httpx2.Timeout`` is not free, and rounding down never
        lets an attempt outlive the deadline.
        """
        if timeout is not None:
            timeout = (math.floor(timeout * 10) / 10 if timeout >= 1.0
                       else max(math.floor(timeout * 1000) / 1000, 0.001))
        key = (timeout, stream)
        cached = self._timeouts.get(key)
        if cached is None:
            if len(self._timeouts) > 512:
                self._timeouts.clear()
            cached = self._timeouts[key] = self._build_timeout(key[0], stream)
        return cached

    def _build_timeout(self, timeout: float | None, stream: bool) -> httpx2.Timeout:
        t = self.timeouts
        total = t.request if timeout is None else min(timeout, t.request)
        connect = min(t.connect, total)
        if stream:
            read = max(t.first_token, t.stall)
            if timeout is not None:
                read = min(read, timeout)
            return httpx2.Timeout(total, connect=connect, read=read)
        return httpx2.Timeout(total, connect=connect)

    # -- errors ------------------------------------------------------------------------

    def error(self, exc: BaseException) -> ProviderError:
        """Exactly one kind for anything the SDK or transport raised."""
        if isinstance(exc, ProviderError):
            if exc.provider is None:
                exc.provider = self.name
            if isinstance(exc, BadRequest) and not _reached.get():
                exc.sent = False  # refused while translating: the caller's input
            return exc
        bound = current_bound().get()
        if bound is not None and bound.cut:
            # The watchdog shut the socket: the attempt outlived its bound.
            return Timeout("no complete answer within the attempt's time bound",
                           provider=self.name)
        mapped = (self._map_error(exc) or map_transport_error(exc, self.name)
                  or map_credential_error(exc, self.name))
        if mapped is None:
            if not _reached.get():
                raise exc  # raised before the provider was reached: not its fault
            mapped = InvalidResponse(f"unexpected {type(exc).__name__}: {exc}", provider=self.name)
        if mapped.provider is None:
            mapped.provider = self.name
        return mapped

    def _translate(self, raw: Any, request: Request) -> Response:
        try:
            return parse_answer(request.response_format, self._to_response(raw),
                                prefill=request.prefill)
        except ProviderError as err:
            failure = self.error(err)
        except Exception as exc:  # schema drift: a field moved or vanished
            failure = InvalidResponse(
                f"response does not parse: {type(exc).__name__}: {exc}", provider=self.name)
        # Raised outside the handler: the error keeps no reference (``__context__``) to
        # what the SDK raised or parsed, which holds the raw body and request headers.
        raise failure

    def prime(self) -> None:
        """Send one canned request through a throwaway SDK client over an in-memory
        transport and translate its answer: the SDK's first-call work (type caches, lazy
        imports, response models) is done now, not on the first request. No network."""
        if self.wire is None:
            return
        body = completion_body(self.wire, text="ok", model=self.model or "primer")
        request = Request((Message("user", "ping"),))
        # An answer, and a refused connection: the failure path is a failover's too.
        for reply in (lambda _: httpx2.Response(200, json=body), _refused):
            with httpx2.Client(transport=httpx2.MockTransport(reply)) as http:
                client = self._primer_client(http)
                try:
                    self._translate(self._send(client, request, self.http_timeout(None)),
                                    request)
                except Exception as exc:
                    self.error(exc)
                _close_quietly(client)
        # What the first real connection imports (getaddrinfo encodes the host), and the
        # thread that bounds sync attempts.
        "localhost".encode("idna")
        start_watchdog()

    # -- entry points --------------------------------------------------------------------

    def complete(self, request: Request, *, timeout: float | None = None,
                 key: int = 0) -> Response:
        """One attempt with the key at index ``key``; the same for the three below."""
        _reached.set(False)
        _attempt_key.set(key)
        limit = self.timeouts.request if timeout is None else min(timeout, self.timeouts.request)
        bound = AttemptBound(time.monotonic() + limit)
        token = current_bound().set(bound)
        try:
            raw = self._send(self.sync_client(key), request, self.http_timeout(timeout))
        except Exception as exc:
            err = self.error(exc)
        else:
            return self._translate(raw, request)
        finally:
            bound.done = True
            current_bound().reset(token)
        raise err  # outside the handler: no reference to the SDK's exception

    async def acomplete(self, request: Request, *, timeout: float | None = None,
                        key: int = 0) -> Response:
        _reached.set(False)
        _attempt_key.set(key)
        try:
            raw = await self._asend(self.async_client(key), request, self.http_timeout(timeout))
        except Exception as exc:
            err = self.error(exc)
        else:
            return self._translate(raw, request)
        raise err  # outside the handler: no reference to the SDK's exception

    def _stream_failure(self, exc: BaseException, acc: StreamAccumulator) -> ProviderError:
        err = self.error(exc)
        # A refusal or an over-long prompt is an answer about the request, not a broken
        # stream: it keeps its kind so the route's action for it applies.
        if isinstance(err, (StreamInterrupted, ContentFiltered, ContextWindowExceeded)) or (
            not acc.started
        ):
            return err
        if isinstance(err, InvalidResponse):
            # A chunk that does not parse is the provider's integration failure, whenever
            # it comes (SPEC): it keeps its kind, and the text that came before it.
            err.partial_text = acc.partial_text
            return err
        if isinstance(err, Timeout):
            return acc.interrupted("stream stalled", err)
        return acc.interrupted(f"stream broke: {err.kind}: {err.message}", err)

    def _stream_cut(self, bound: AttemptBound, acc: StreamAccumulator) -> ProviderError | None:
        """The watchdog cut a sync stream at its first-token or stall bound."""
        if not bound.cut:
            return None
        if acc.started:
            return acc.interrupted("stream stalled (no content within the stall bound)")
        return Timeout("no first token within the first-token bound", provider=self.name)

    def _chunk_events_checked(self, chunk: Any, acc: StreamAccumulator) -> Iterable[StreamEvent]:
        try:
            return list(self._chunk_events(chunk, acc))
        except ProviderError:
            raise
        except Exception as exc:
            failure = InvalidResponse(
                f"malformed stream chunk: {type(exc).__name__}: {exc}", provider=self.name)
        raise failure

    def _whole_answer(self, opened: Any, body: bytes, request: Request) -> Response:
        try:
            data = json.loads(body)
        except ValueError:
            raise InvalidResponse("a stream request was answered with a JSON content type "
                                  "and a body that does not parse", provider=self.name) from None
        return self._translate(self._answer_from_json(data, opened), request)

    def _whole_body(self, opened: Any) -> httpx2.Response | None:
        response = self._stream_http_response(opened)
        if response is None or not _is_json(response.headers.get("content-type", "")):
            return None
        return response

    def stream(
        self, request: Request, *, timeout: float | None = None, key: int = 0
    ) -> Generator[StreamEvent, None, None]:
        """Deltas, then one `Completed`. A broken stream raises, never completes."""
        _reached.set(False)
        _attempt_key.set(key)
        acc = StreamAccumulator(self.name, self.model)
        first_limit, stall_limit = self._stream_limits(timeout)
        bounds = _StreamBounds(first_limit, stall_limit, time.monotonic())
        chunks: Any = None
        failure: ProviderError | None = None
        bound = AttemptBound(time.monotonic() + first_limit)
        try:
            token = current_bound().set(bound)
            try:
                chunks = self._open_stream(self.sync_client(key), request,
                                           self.http_timeout(timeout, stream=True))
            finally:
                current_bound().reset(token)
            whole = self._whole_body(chunks)
            if whole is not None:
                # A gateway answered the stream request with one whole message: an answer.
                yield from events_of(self._whole_answer(chunks, whole.read(), request))
                return
            for chunk in chunks:
                now = time.monotonic()
                if bounds.left(now, acc.started) < 0:
                    raise bounds.exceeded(acc.started, self.name)
                acc.raw_chunks += 1
                events = self._chunk_events_checked(chunk, acc)
                if events:
                    bounds.content(now)
                    bound.move(float("inf"))  # the caller's time with the chunk is its own
                    yield from events
                now = time.monotonic()
                bound.move(now + bounds.left(now, acc.started))
                if acc.finish_reason is not None and self._finished(chunk):
                    _drain(chunks, bound)
                    break
        except GeneratorExit:
            raise
        except Exception as exc:
            failure = self._stream_cut(bound, acc) or self._stream_failure(exc, acc)
        finally:
            bound.done = True
            _close_quietly(chunks)
        if failure is not None:
            raise failure  # outside the handler: no reference to the SDK's exception
        yield Completed(self._finished_answer(acc, request))

    async def astream(
        self, request: Request, *, timeout: float | None = None, key: int = 0
    ) -> AsyncGenerator[StreamEvent, None]:
        _reached.set(False)
        _attempt_key.set(key)
        acc = StreamAccumulator(self.name, self.model)
        first_limit, stall_limit = self._stream_limits(timeout)
        bounds = _StreamBounds(first_limit, stall_limit, time.monotonic())
        chunks: Any = None
        failure: ProviderError | None = None
        try:
            try:
                # Headers, and a whole-JSON answer, within the first-token bound counted
                # from the attempt's start (a server may hold them, or trickle them).
                chunks = await asyncio.wait_for(
                    self._aopen_stream(self.async_client(key), request,
                                       self.http_timeout(timeout, stream=True)),
                    first_limit,
                )
                whole = self._whole_body(chunks)
                body = None if whole is None else await asyncio.wait_for(
                    whole.aread(), max(bounds.left(time.monotonic(), False), 0.0))
            except (asyncio.TimeoutError, TimeoutError):
                raise bounds.exceeded(False, self.name) from None
            if body is not None:
                for event in events_of(self._whole_answer(chunks, body, request)):
                    yield event
                return
            iterator = chunks.__aiter__()
            cut = _LoopCut(bounds, acc)
            try:
                while True:
                    chunk = await cut.next(iterator)
                    if chunk is _END:
                        break
                    acc.raw_chunks += 1
                    events = self._chunk_events_checked(chunk, acc)
                    if events:
                        bounds.content(time.monotonic())
                    for event in events:
                        yield event
                    if acc.finish_reason is not None and self._finished(chunk):
                        await _adrain(iterator)
                        break
            except _BoundPassed:
                if acc.finish_reason is None:
                    raise bounds.exceeded(acc.started, self.name) from None
                # finished, then silence: complete without waiting for [DONE]
            finally:
                cut.close()
        except (GeneratorExit, asyncio.CancelledError):
            raise
        except Exception as exc:
            failure = self._stream_failure(exc, acc)
        finally:
            await _aclose_quietly(chunks)
        if failure is not None:
            raise failure
        yield Completed(self._finished_answer(acc, request))

    def _finished_answer(self, acc: StreamAccumulator, request: Request) -> Response:
        """The stream's whole answer; one that breaks its ``response_format`` is the
        provider's `InvalidResponse`, with the text that came."""
        response = acc.finish()
        try:
            return parse_answer(request.response_format, response, prefill=request.prefill)
        except InvalidResponse as err:
            err.partial_text = response.text
            raise

    def _finished(self, chunk: Any) -> bool:
        """Whether the stream can stop at this chunk (no ``[DONE]`` needed after finish).

        Providers that send usage after the finish reason override this so the
        usage chunk is still read.
        """
        return False

    def _stream_limits(self, timeout: float | None) -> tuple[float, float]:
        first, stall = self.timeouts.first_token, self.timeouts.stall
        if timeout is not None:
            first, stall = min(first, timeout), min(stall, timeout)
        return first, stall

    # -- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        for client in self._sync_clients.values():
            _close_quietly(client)
        self._sync_clients.clear()
        for http in self._http_clients:
            if isinstance(http, httpx2.Client):
                _close_quietly(http)
        for session in self._sessions:
            _close_quietly(session)
        self._sessions.clear()
        self.transport.close()

    async def aclose(self) -> None:
        for client in self._async_clients.values():
            await _aclose_quietly(client)
        self._async_clients.clear()
        for http in self._http_clients:
            if isinstance(http, httpx2.AsyncClient):
                await _aclose_quietly(http)
        await self.transport.aclose()
        self.close()


class _StreamBounds:
    """A stream's two time limits. ``first_token`` runs from the attempt's start to the
    first content (text or a tool call); ``stall`` is the longest gap between two
    content-bearing chunks. Chunks with no content (a role, an empty delta, a ping the
    SDK passes on) reset neither, so a provider that sends only those is still cut."""

    __slots__ = ("first", "mark", "stall")

    def __init__(self, first: float, stall: float, started: float) -> None:
        self.first, self.stall, self.mark = first, stall, started

    def left(self, now: float, started: bool) -> float:
        return (self.stall if started else self.first) - (now - self.mark)

    def content(self, now: float) -> None:
        self.mark = now

    def exceeded(self, started: bool, provider: str) -> Timeout:
        what, limit = ("stall", self.stall) if started else ("first token", self.first)
        return Timeout(f"{what} timeout of {limit:g}s exceeded", provider=provider)


_END: Any = object()

#: After the last chunk that matters, how long to wait for the rest of the body (the
#: ``[DONE]`` line, the chunked terminator): read, it gives the connection back to the
#: pool; a server that never sends it is cut at this bound and the stream completes.
_DRAIN_S = 0.05


def _drain(chunks: Any, bound: AttemptBound) -> None:
    bound.move(time.monotonic() + _DRAIN_S)
    try:
        for _ in chunks:
            pass
    except Exception:
        pass  # cut by the bound, or a server that broke off after its answer


async def _adrain(iterator: Any) -> None:
    async def rest() -> None:
        with contextlib.suppress(StopAsyncIteration):
            while True:
                await iterator.__anext__()

    with contextlib.suppress(Exception):  # the bound (TimeoutError), or a broken tail
        if sys.version_info >= (3, 11):
            async with asyncio.timeout(_DRAIN_S):
                await rest()
        else:  # pragma: no cover - 3.10
            await asyncio.wait_for(rest(), _DRAIN_S)


class _BoundPassed(Exception):
    """The stream's first-token or stall bound passed while waiting for a chunk."""


class _LoopCut:
    """The async stream's watchdog: one timer per attempt, not a task per chunk.

    The timer cancels the task waiting for the next chunk once the bound has passed.
    Content moving the bound later is an assignment (`_StreamBounds.content`); a timer
    that fires early re-arms for the new bound. Only a wait for the network is cut:
    while the caller holds a chunk, a passed bound is noticed at the next wait.
    """

    __slots__ = ("_acc", "_bounds", "_handle", "_loop", "_task", "fired")

    def __init__(self, bounds: _StreamBounds, acc: StreamAccumulator) -> None:
        self._bounds, self._acc = bounds, acc
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[Any] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self.fired = False

    def _left(self) -> float:
        return self._bounds.left(time.monotonic(), self._acc.started)

    async def next(self, iterator: Any) -> Any:
        """The next chunk, `_END` at the end; `_BoundPassed` if the bound passes first."""
        left = self._left()
        if left <= 0:
            raise _BoundPassed
        self._task = asyncio.current_task()
        if self._handle is None:
            self._handle = self._loop.call_later(left, self._fire)
        try:
            return await iterator.__anext__()
        except StopAsyncIteration:
            return _END
        except asyncio.CancelledError:
            if not self.fired:
                raise  # the caller's cancellation, not ours
            self.fired = False
            uncancel = getattr(self._task, "uncancel", None)
            if uncancel is not None:
                uncancel()
            raise _BoundPassed from None
        finally:
            self._task = None

    def _fire(self) -> None:
        left = self._left()
        if left > 0:  # content moved the bound: wait for the new one
            self._handle = self._loop.call_later(left, self._fire)
            return
        self._handle = None
        if self._task is not None:  # waiting for the network: cut it
            self.fired = True
            self._task.cancel()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def _refused(request: httpx2.Request) -> httpx2.Response:
    raise httpx2.ConnectError("primer: refused", request=request)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _close_quietly(obj: Any) -> None:
    close: Callable[[], Any] | None = getattr(obj, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            close()


async def _aclose_quietly(obj: Any) -> None:
    if obj is None:
        return
    aclose = getattr(obj, "aclose", None) or getattr(obj, "close", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            result = aclose()
            if asyncio.iscoroutine(result):
                await result
