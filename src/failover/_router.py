"""The router: one completion API over a config-ordered chain of providers.

Each request is planned and accounted for by a `_Call` (pure and synchronous: which
provider next, what a failure means, when the deadline bites), so the async and sync
paths share every decision; only the thin send loops below exist twice.

The router's live state is one immutable `_State` (config, providers, routes) that a
request takes a reference to when it starts. `reload()` builds a new `_State` and swaps
it in one assignment, so requests in flight finish on the config they began with, and
providers whose settings did not change carry their breaker and health across.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import inspect
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._breaker import Breaker, Permit, Transition
from ._config import (
    Config,
    ProviderConfig,
    RouteConfig,
    TimeoutsConfig,
    env_problems,
    load_config,
    resolve_env,
)
from ._errors import (
    AllProvidersFailed,
    BadRequest,
    ConfigError,
    ContextWindowExceeded,
    DeadlineExceeded,
    DeferFailed,
    Deferred,
    FailoverError,
    ProviderError,
    RateLimited,
    StreamInterrupted,
    Timeout,
)
from ._events import Event, EventBus, EventType, Subscriber
from ._fallback import (
    DeferredAnswer,
    DeferredRecord,
    DeferredState,
    DeferredStore,
    StoreError,
    load_callable,
)
from ._health import HealthTracker, ProviderHealth
from ._instrumentation import (
    Instrumentation,
    Outcome,
    RequestRecord,
    notify_all,
    opentelemetry_instrumentation,
)
from ._models import (
    Attempt,
    Completed,
    MessagesInput,
    Request,
    Response,
    Restart,
    StreamEvent,
    build_request,
    check_params,
    check_seconds,
    events_of,
)
from ._policy import Decision, RetryBudget, decide
from ._secrets import install_log_scrubber, register_url, scrub
from ._shared import RedisBreakerSync
from .providers import build_adapter
from .providers._base import current_override
from .providers._known import known_context_window

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._models import CompletionParams
    from ._types import Clock
    from .providers._base import ProviderAdapter

__all__ = ["Router"]

logger = logging.getLogger("failover")

_DEADLINE_SLACK_S = 0.002


# --- live state ---------------------------------------------------------------------------


class _Provider:
    """One configured provider: its adapter (built on first use), breaker and health."""

    def __init__(
        self, name: str, config: ProviderConfig, timeouts: TimeoutsConfig, state_key: Any,
        breaker: Breaker, health: HealthTracker, budget: RetryBudget,
    ) -> None:
        self.name = name
        self.config = config
        self.timeouts = timeouts
        self.state_key = state_key
        self.breaker = breaker
        self.health = health
        self.budget = budget
        self.model = config.model
        #: Tokens, from config or what is known of the model; None when unknown.
        self.context_window = (config.capabilities.context_window
                               or known_context_window(config.model))
        self._adapter: ProviderAdapter | None = None
        self._build_lock = threading.Lock()
        # Breaker steps are single synchronous calls; the lock only matters for
        # threads using the sync API at once, and is uncontended on asyncio.
        self.lock = threading.Lock()

    @property
    def adapter(self) -> ProviderAdapter:
        adapter = self._adapter
        if adapter is None:
            with self._build_lock:
                if self._adapter is None:
                    self._adapter = build_adapter(self.name, self.config, self.timeouts)
                adapter = self._adapter
        return adapter

    @property
    def built(self) -> bool:
        return self._adapter is not None

    def capability_gap(self, request: Request) -> str | None:
        caps = self.adapter.capabilities
        return caps.missing_for(request)


@dataclass
class _Route:
    name: str
    config: RouteConfig
    chain: tuple[_Provider, ...]
    fallback: Callable[..., Any] | None
    actions: Mapping[str, str]
    on_replay: Callable[..., Any] | None = None
    hedged: int = 0
    requests: int = 0


@dataclass
class _State:
    """One config's live state. Requests count themselves in and out, so providers a
    reload retired are closed once the last request that uses them has finished."""

    config: Config
    providers: dict[str, _Provider]
    routes: dict[str, _Route]
    deferred: DeferredStore
    inflight: int = 0
    #: Set by a reload: the providers to close when ``inflight`` reaches zero.
    retiring: tuple[_Provider, ...] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self) -> None:
        with self.lock:
            self.inflight += 1

    def leave(self) -> None:
        with self.lock:
            self.inflight -= 1
            if self.inflight or not self.retiring:
                return
            closing, self.retiring = self.retiring, ()
        _close_providers(closing)

    def retire(self, providers: Sequence[_Provider]) -> None:
        """This state was replaced: close ``providers`` now, or when its requests end."""
        with self.lock:
            if self.inflight:
                self.retiring = tuple(providers)
                return
            self.retiring = ()
        _close_providers(providers)


def _close_providers(providers: Sequence[_Provider]) -> None:
    for provider in providers:
        if provider.built:
            provider.adapter.close()


def _provider_state_key(config: Config, name: str) -> Any:
    """Everything that, if changed, makes a provider new (its health starts over)."""
    return (
        config.providers[name],
        config.breaker_for(name),
        config.timeouts_for(name),
        config.providers[name].retry or config.defaults.retry,
    )


def _build_state(config: Config, clock: Clock, previous: _State | None,
                 store_path: Path | None = None) -> _State:
    old = previous.providers if previous else {}
    providers: dict[str, _Provider] = {}
    for name, pconf in config.providers.items():
        key = _provider_state_key(config, name)
        kept = old.get(name)
        if kept is not None and kept.state_key == key:
            providers[name] = kept
            continue
        retry = pconf.retry or config.defaults.retry
        providers[name] = _Provider(
            name, pconf, config.timeouts_for(name), key,
            breaker=Breaker(name, config.breaker_for(name), clock, forced=pconf.force),
            health=HealthTracker(config.breaker_for(name).window, clock),
            budget=RetryBudget(retry.budget, retry.min_retries_per_10s, clock),
        )
    problems: list[str] = []
    routes: dict[str, _Route] = {}
    for rname, rconf in config.routes.items():
        callables = {}
        for key in ("python", "on_replay"):
            ref = getattr(rconf.fallback, key)
            try:
                callables[key] = load_callable(ref, f"routes.{rname}.fallback.{key}") if ref \
                    else None
            except ConfigError as exc:
                problems.extend(exc.problems)
        routes[rname] = _Route(
            name=rname, config=rconf, chain=tuple(providers[p] for p in rconf.chain),
            fallback=callables.get("python"), actions=dict(rconf.actions),
            on_replay=callables.get("on_replay"),
        )
    if problems:
        raise ConfigError(problems)
    store = config.deferred
    return _State(config, providers, routes, DeferredStore(
        store_path or config.deferred_path(), lock_timeout=store.lock_timeout,
        keep_answers=store.keep_answers, replay_lease=store.replay_lease))


# --- one request ---------------------------------------------------------------------------


@dataclass
class _Call:
    """The bookkeeping and decisions of one request; no I/O."""

    router: Router
    state: _State
    route: _Route
    request: Request
    started: float
    deadline_s: float | None
    deadline_at: float | None
    #: The caller's per-attempt ``timeout``, and whether the request streams: with the
    #: provider's own limits they say whether the deadline is what bounded an attempt.
    timeout: float | None = None
    stream: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    errors: list[ProviderError] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    window_floor: int | None = None
    last_failed: str | None = None
    fell_back: bool = False
    #: An attempt timed out at the deadline's bound: the deadline is what ran out.
    deadline_hit: bool = False

    def remaining(self) -> float | None:
        if self.deadline_at is None:
            return None
        return self.deadline_at - self.router._clock()

    def expired(self) -> bool:
        # Timers fire up to a clock tick early, and an attempt with a couple of
        # milliseconds left cannot succeed anyway: that is expired too. So is a request
        # whose last attempt was cut by the deadline (its timeout is rounded down a
        # little): the kind must not depend on how loaded the machine is.
        return self.deadline_hit or (
            self.deadline_at is not None
            and self.router._clock() >= self.deadline_at - _DEADLINE_SLACK_S)

    def _cut_by_deadline(self, provider: _Provider, t0: float) -> bool:
        """A timed-out attempt whose bound was what was left of the deadline, and that ran
        into it (less the rounding `ProviderAdapter.http_timeout` applies)."""
        if self.deadline_at is None:
            return False
        left = self.deadline_at - t0
        own = provider.timeouts.first_token if self.stream else provider.timeouts.request
        if self.timeout is not None:
            own = min(own, self.timeout)
        rounding = 0.1 if left >= 1.0 else 0.001
        return left <= own and (
            self.router._clock() >= self.deadline_at - rounding - _DEADLINE_SLACK_S)

    def candidates(self) -> Iterator[tuple[_Provider, Permit]]:
        """Providers to try, in chain order, each with a breaker permit; skips cost ~µs."""
        for provider in self.route.chain:
            if self.window_floor is not None:
                window = provider.context_window
                if window is not None and window <= self.window_floor:
                    self.skipped[provider.name] = (
                        f"context window {window} is not larger than {self.window_floor}"
                    )
                    continue
            with provider.lock:
                permit = provider.breaker.allow()
            if permit is None:
                self.skipped[provider.name] = f"breaker {provider.breaker.state}"
                continue
            if permit.probe:
                with provider.lock:
                    transitions = provider.breaker.take_transitions()
                if transitions:
                    self.router._transitions(transitions, self.route)
            try:
                gap = provider.capability_gap(self.request)
            except ConfigError:
                with provider.lock:
                    provider.breaker.release(permit)
                raise
            if gap is not None:
                with provider.lock:
                    provider.breaker.release(permit)
                self.skipped[provider.name] = gap
                continue
            yield provider, permit

    def begin(self, provider: _Provider) -> None:
        if self.last_failed is not None:
            self.router._emit("failover", self.route, provider.name,
                              f"{self.last_failed} -> {provider.name}")
            self.last_failed = None

    def succeeded(
        self, provider: _Provider, permit: Permit, response: Response, t0: float
    ) -> Response:
        now = self.router._clock()
        latency = now - t0
        with provider.lock:
            transitions = provider.breaker.on_success(permit)
        provider.health.record(True, latency)
        if transitions:
            self.router._transitions(transitions, self.route)
        self.attempts.append(Attempt(provider.name, response.model or provider.model, "ok",
                                     latency_s=latency))
        response.provider = provider.name
        response.attempts = self.attempts
        response.latency_s = now - self.started
        return response

    def failed(
        self, provider: _Provider, permit: Permit, err: ProviderError, t0: float, tries: int
    ) -> Decision:
        """Account for a failed attempt and say what to do next."""
        latency = self.router._clock() - t0
        err.provider = err.provider or provider.name
        if isinstance(err, Timeout) and self._cut_by_deadline(provider, t0):
            self.deadline_hit = True
        with provider.lock:
            if isinstance(err, RateLimited):
                transitions = provider.breaker.on_rate_limited(permit, err.retry_after)
            elif err.breaker_failure:
                transitions = provider.breaker.on_failure(permit, long_open=err.long_open)
            else:
                # A 400, a filter or a long prompt: the provider answered, so it is alive.
                transitions = provider.breaker.on_success(permit)
        provider.health.record(False, latency, err)
        self.attempts.append(Attempt(
            provider.name, provider.model, "error", error_kind=err.kind,
            http_status=err.status, latency_s=latency, detail=err.message[:200],
        ))
        self.errors.append(err)
        self.router._emit("attempt_failed", self.route, provider.name,
                          f"{err.kind}" + (f" HTTP {err.status}" if err.status else "")
                          + f": {err.message[:200]}")
        if transitions:
            self.router._transitions(transitions, self.route)
        if isinstance(err, ContextWindowExceeded):
            known = provider.context_window
            floor = known if known is not None else self.request.estimated_input_tokens()
            self.window_floor = max(self.window_floor or 0, floor)
        decision = decide(
            err, attempt=tries, retry=self.state.config.retry_for(self.route.name, provider.name),
            overrides=self.route.actions, remaining=self.remaining(), budget=provider.budget,
        )
        if decision.action != "retry":
            self.last_failed = provider.name
        return decision

    def cancelled(self, provider: _Provider, permit: Permit, t0: float) -> None:
        with provider.lock:
            provider.breaker.release(permit)
        self.attempts.append(Attempt(provider.name, provider.model, "cancelled",
                                     latency_s=self.router._clock() - t0))

    def outrun(self, provider: _Provider, permit: Permit, t0: float) -> None:
        """A hedged attempt that was still silent after the hedge delay and lost.

        It counts as a breaker failure (not in health's latency): otherwise a hung
        provider behind a hedge would be asked forever, every request paying for it.
        """
        latency = self.router._clock() - t0
        with provider.lock:
            transitions = provider.breaker.on_failure(permit)
        self.attempts.append(Attempt(provider.name, provider.model, "cancelled",
                                     error_kind="Timeout", latency_s=latency,
                                     detail="no answer before another provider's"))
        if transitions:
            self.router._transitions(transitions, self.route)

    def attempt_timeout(self, timeout: float | None) -> float | None:
        """The caller's per-attempt ``timeout``, cut to what is left of the deadline."""
        remaining = self.remaining()
        if remaining is None:
            return timeout
        left = max(remaining, 0.001)
        return left if timeout is None else min(timeout, left)

    def deadline_error(self) -> DeadlineExceeded:
        return DeadlineExceeded(self.route.name, self.deadline_s or 0.0, self.attempts)

    def failure(self) -> AllProvidersFailed | DeadlineExceeded:
        return self.deadline_error() if self.expired() else self.exhausted()

    def exhausted(self) -> AllProvidersFailed:
        return AllProvidersFailed(self.route.name, self.attempts, errors=self.errors,
                                  skipped=self.skipped)

    def raise_now(self, err: ProviderError) -> ProviderError:
        err.attempts = self.attempts
        return err


@dataclass
class _StreamRecovery:
    """How a stream recovers after it has shown text; shared by both stream loops."""

    policy: str
    #: Deltas reached the caller since the last `Restart`.
    shown: bool = False
    #: Text kept for ``continue``: the next provider continues it.
    prefix: str = ""
    restart_reason: str | None = None

    @property
    def anything_shown(self) -> bool:
        return self.shown or bool(self.prefix)

    def request_for(self, provider: _Provider, request: Request) -> tuple[Request, Restart | None]:
        """The request for the next attempt, and the `Restart` to send before it."""
        if self.prefix and not provider.adapter.capabilities.prefill:
            self.prefix = ""
            self.restart_reason = self.restart_reason or (
                f"{provider.name} cannot continue a partial answer")
        restart = None
        if self.restart_reason is not None:
            restart = Restart(provider.name, self.restart_reason)
            self.restart_reason, self.shown = None, False
        if self.prefix:
            request = replace(request, prefill=self.prefix)
        return request, restart

    def completed(self, response: Response) -> Response:
        if self.prefix:
            response.text = self.prefix + response.text
        return response

    def broke(self, provider: _Provider, err: ProviderError) -> None:
        """The stream failed after a delta: raise, or set up ``continue`` / ``restart``."""
        partial = err.partial_text if isinstance(err, StreamInterrupted) else ""
        if self.policy == "raise":
            raise StreamInterrupted(
                f"stream from {provider.name} broke: {err.message}",
                partial_text=self.prefix + partial, provider=provider.name, status=err.status)
        if self.policy == "continue" and partial:
            self.prefix += partial
        else:
            self.prefix = ""
            self.restart_reason = f"{provider.name} failed mid-stream: {err.kind}"


def _telemetry_hooks(config: Config) -> tuple[Instrumentation, ...]:
    wanted = config.telemetry.opentelemetry
    if wanted is False:
        return ()
    hook = opentelemetry_instrumentation(auto=wanted is None)
    if hook is None:
        if wanted:
            raise ConfigError("telemetry.opentelemetry: true, but the opentelemetry package "
                              "is not installed (pip install opentelemetry-api)")
        return ()
    return (hook,)


def _deadline_timeout(seconds: float | None) -> Any:
    if seconds is None:
        return contextlib.nullcontext()
    if sys.version_info >= (3, 11):
        return asyncio.timeout(seconds)
    return contextlib.nullcontext()  # 3.10: the socket timeouts alone bound the attempt


# --- the router ------------------------------------------------------------------------------


class Router:
    """Send completions through a route's chain of providers, surviving their failures.

    ``Router(config)`` or ``Router.from_file("failover.yaml")``; ``clock=`` injects a
    monotonic clock (tests pass `failover.testing.FakeClock`, whose sleeps advance it).
    """

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        path: str | os.PathLike[str] | None = None,
        instrumentation: Sequence[Instrumentation] = (),
    ) -> None:
        if not isinstance(config, Config):
            raise TypeError(
                f"Router(config) expects a failover.Config, got {type(config).__name__}; "
                "use Router.from_file(path) or Config.from_mapping(dict)"
            )
        # Built under a test kit: its clock (unless one is given) and a throwaway
        # deferred store, so a test neither waits for real nor writes the real store.
        kit = current_override()
        if clock is None:
            clock = getattr(kit, "clock", None)
        self._store_path: Path | None = getattr(kit, "deferred_path", None)
        # The builtin itself: the hot path reads the clock several times a request.
        self._clock: Clock = clock if clock is not None else time.monotonic
        self._sleep: Callable[[float], None] = getattr(self._clock, "sleep", time.sleep)
        self._asleep: Callable[[float], Any] = getattr(self._clock, "asleep", asyncio.sleep)
        self._path = Path(path) if path is not None else None
        self._bus = EventBus()
        self._retired: list[_State] = []
        self._state = _build_state(config, self._clock, None, self._store_path)
        self._hooks: tuple[Instrumentation, ...] = (
            *instrumentation, *_telemetry_hooks(config))
        install_log_scrubber()
        self._shared: RedisBreakerSync | None = None
        if config.state.backend == "redis":
            assert config.state.url is not None
            state_url = resolve_env(config.state.url, "state.url")
            register_url(state_url)
            self._shared = RedisBreakerSync(
                state_url, prefix=config.state.prefix,
                clock=self._clock, apply=self._adopt_shared,
                local=lambda: [p.breaker.snapshot() for p in self._state.providers.values()])
            self._shared.start(list(self._state.providers))
        self._notifier: Any = None
        self._notify_config: Any = None
        self._unsubscribe_notifier: Callable[[], None] = lambda: None
        self._setup_notifier(config)
        for problem in env_problems(config):
            # Not fatal: that provider fails like a revoked key until the variable is set.
            logger.warning("config: %s", problem)
        self._check_store()
        self._watcher: threading.Thread | None = None
        self._watch_stop = threading.Event()
        self._stop = threading.Event()
        self._reload_lock = threading.Lock()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._sync_watcher(config)

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], *, clock: Clock | None = None,
        instrumentation: Sequence[Instrumentation] = (),
    ) -> Router:
        config = load_config(path)
        try:
            return cls(config, clock=clock, path=path, instrumentation=instrumentation)
        except ConfigError as exc:  # found while building (an unimportable fallback)
            raise ConfigError(exc.problems, source=str(path)) from None

    @property
    def config(self) -> Config:
        return self._state.config

    @property
    def instrumentation(self) -> tuple[Instrumentation, ...]:
        """The hooks told about every request (yours, then OpenTelemetry's if on)."""
        return self._hooks

    # -- public request API -------------------------------------------------------------

    def _start(
        self, where: str, messages: MessagesInput, route: str, timeout: float | None,
        deadline: float | None, params: dict[str, Any],
    ) -> _Call:
        """Check the caller's arguments (before any provider is involved) and open the
        request's bookkeeping."""
        state = self._state
        try:
            route_obj = state.routes[route]
        except KeyError:
            known = ", ".join(sorted(state.routes))
            raise BadRequest(f"unknown route {route!r}; configured routes: {known}") from None
        if len(params) > 1:  # only ``system``: the common case checks nothing more
            check_params(params, where)
        request = build_request(messages, route=route, **params)
        if timeout is not None:
            check_seconds("timeout", timeout)
        if deadline is not None:
            deadline = check_seconds("deadline", deadline)
        deadline_s = deadline if deadline is not None else route_obj.config.deadline
        now = self._clock()
        route_obj.requests += 1
        state.enter()
        return _Call(
            self, state, route_obj, request, now, deadline_s,
            None if deadline_s is None else now + deadline_s,
            timeout=timeout, stream=where.endswith("stream"),
        )

    def complete(
        self,
        messages: MessagesInput,
        route: str = "default",
        *,
        system: str | None = None,
        timeout: float | None = None,
        deadline: float | None = None,
        **params: Unpack[CompletionParams],
    ) -> Response:
        """Answer ``messages`` through ``route``'s chain (blocking)."""
        call = self._start("complete", messages, route, timeout, deadline,
                           {"system": system, **params})
        try:
            if not self._hooks:
                return self._complete_sync(call, timeout)
            try:
                response = self._complete_sync(call, timeout)
            except BaseException as exc:
                self._observe(call, None, exc)
                raise
            self._observe(call, response, None)
            return response
        finally:
            call.state.leave()

    def _complete_sync(self, call: _Call, timeout: float | None) -> Response:
        try:
            if call.route.config.hedge is not None:
                return self._run_hedged_sync(call, timeout)
            return self._run_sync(call, timeout)
        except (AllProvidersFailed, DeadlineExceeded) as failure:
            return self._fallback_sync(call, failure)

    async def acomplete(
        self,
        messages: MessagesInput,
        route: str = "default",
        *,
        system: str | None = None,
        timeout: float | None = None,
        deadline: float | None = None,
        **params: Unpack[CompletionParams],
    ) -> Response:
        """Answer ``messages`` through ``route``'s chain."""
        call = self._start("acomplete", messages, route, timeout, deadline,
                           {"system": system, **params})
        try:
            if not self._hooks:
                return await self._complete_async(call, timeout)
            try:
                response = await self._complete_async(call, timeout)
            except BaseException as exc:
                self._observe(call, None, exc)
                raise
            self._observe(call, response, None)
            return response
        finally:
            call.state.leave()

    async def _complete_async(self, call: _Call, timeout: float | None) -> Response:
        try:
            if call.route.config.hedge is not None:
                return await self._run_hedged(call, timeout)
            return await self._run_async(call, timeout)
        except (AllProvidersFailed, DeadlineExceeded) as failure:
            return await self._fallback_async(call, failure)

    # -- the send loops: sync -------------------------------------------------------------

    def _run_sync(self, call: _Call, timeout: float | None) -> Response:
        for provider, permit in call.candidates():
            call.begin(provider)
            tries = 0
            while True:
                if call.expired():
                    call.cancelled(provider, permit, self._clock())
                    raise call.deadline_error()
                tries += 1
                if tries == 1:
                    provider.budget.on_request()
                t0 = self._clock()
                try:
                    response = provider.adapter.complete(
                        call.request, timeout=call.attempt_timeout(timeout))
                except ProviderError as exc:
                    err = exc
                    decision = call.failed(provider, permit, err, t0, tries)
                except BaseException:
                    call.cancelled(provider, permit, t0)
                    raise
                else:
                    return call.succeeded(provider, permit, response, t0)
                if decision.action == "raise":
                    raise call.raise_now(err)
                if call.expired():
                    raise call.deadline_error()
                if decision.action == "retry":
                    next_permit = self._retry_permit(provider, err, decision, None)
                    if next_permit is not None:
                        permit = next_permit
                        continue
                break
        if call.expired():
            raise call.deadline_error()
        raise call.exhausted()

    # -- the send loops: async -------------------------------------------------------------

    def _retry_permit(
        self, provider: _Provider, err: ProviderError, decision: Decision, _: None
    ) -> Permit | None:
        """Wait out the backoff and take a new permit; None if the breaker says no.

        A 429's cool-down ends exactly when its Retry-After does, so that wait comes
        before asking the breaker; any other retry asks first, so a breaker that just
        opened sends the request on without paying the backoff.
        """
        if isinstance(err, RateLimited):
            self._sleep(decision.delay)
            with provider.lock:
                return provider.breaker.allow()
        with provider.lock:
            permit = provider.breaker.allow()
        if permit is not None:
            try:
                self._sleep(decision.delay)
            except BaseException:
                with provider.lock:
                    provider.breaker.release(permit)
                raise
        return permit

    async def _aretry_permit(
        self, provider: _Provider, err: ProviderError, decision: Decision
    ) -> Permit | None:
        if isinstance(err, RateLimited):
            await self._asleep(decision.delay)
            with provider.lock:
                return provider.breaker.allow()
        with provider.lock:
            permit = provider.breaker.allow()
        if permit is not None:
            try:
                await self._asleep(decision.delay)
            except BaseException:  # cancelled in the backoff: the permit goes back
                with provider.lock:
                    provider.breaker.release(permit)
                raise
        return permit

    async def _attempt_async(
        self, call: _Call, provider: _Provider, timeout: float | None
    ) -> Response:
        # The whole attempt, not each socket read: the provider's own request timeout,
        # the caller's, and what is left of the deadline, whichever is first.
        left = call.attempt_timeout(timeout)
        own = provider.timeouts.request
        limit = own if left is None else min(left, own)
        try:
            async with _deadline_timeout(limit):
                return await provider.adapter.acomplete(call.request, timeout=limit)
        except (asyncio.TimeoutError, TimeoutError):
            raise Timeout(f"no answer within {limit:g}s", provider=provider.name) from None

    async def _run_async(self, call: _Call, timeout: float | None) -> Response:
        for provider, permit in call.candidates():
            call.begin(provider)
            tries = 0
            while True:
                if call.expired():
                    call.cancelled(provider, permit, self._clock())
                    raise call.deadline_error()
                tries += 1
                if tries == 1:
                    provider.budget.on_request()
                t0 = self._clock()
                try:
                    response = await self._attempt_async(call, provider, timeout)
                except ProviderError as exc:
                    err = exc
                    decision = call.failed(provider, permit, err, t0, tries)
                except BaseException:
                    call.cancelled(provider, permit, t0)
                    raise
                else:
                    return call.succeeded(provider, permit, response, t0)
                if decision.action == "raise":
                    raise call.raise_now(err)
                if call.expired():
                    raise call.deadline_error()
                if decision.action == "retry":
                    next_permit = await self._aretry_permit(provider, err, decision)
                    if next_permit is not None:
                        permit = next_permit
                        continue
                break
        raise call.failure()

    # -- hedging (async) ---------------------------------------------------------------------

    def _hedge_delay(self, call: _Call, provider: _Provider) -> float | None:
        hedge = call.route.config.hedge
        assert hedge is not None
        route = call.route
        if route.hedged >= max(1.0, hedge.max_ratio * route.requests):
            return None
        if hedge.after == "p95":
            p95 = provider.health.percentile(0.95)
            if p95 is None:
                return None
            return max(p95, hedge.min_delay)
        return max(float(hedge.after), hedge.min_delay)

    def _hedge_wait(self, call: _Call, running: Mapping[Any, tuple[_Provider, Permit, float]],
                    can_launch: bool) -> float | None:
        """How long to wait for a running attempt before starting the next provider."""
        hedge = call.route.config.hedge
        assert hedge is not None
        if not can_launch or len(running) > hedge.max_extra:
            return None
        first = next(iter(running.values()))[0]
        return self._hedge_delay(call, first)

    def _hedge_loser(
        self, call: _Call, provider: _Provider, permit: Permit, t0: float,
        launched_hedge: float | None,
    ) -> None:
        # An attempt that a hedge was started against, and that still had not answered,
        # was outrun; one started as the hedge (or after) was merely cancelled.
        if launched_hedge is not None and t0 < launched_hedge:
            call.outrun(provider, permit, t0)
        else:
            call.cancelled(provider, permit, t0)

    def _hedge_result(
        self, call: _Call, provider: _Provider, permit: Permit, t0: float,
        result: Response | None, err: BaseException | None,
    ) -> Response | None:
        """Account for a finished hedged attempt; the response if it won."""
        if err is None:
            assert result is not None
            return call.succeeded(provider, permit, result, t0)
        if not isinstance(err, ProviderError):
            raise err
        # Hedged requests never retry on the same provider: the next one is the retry.
        if call.failed(provider, permit, err, t0, tries=1).action == "raise":
            raise call.raise_now(err)
        return None

    async def _run_hedged(self, call: _Call, timeout: float | None) -> Response:
        """Start the next provider if the current one is slow; first success wins."""
        candidates = call.candidates()
        running: dict[asyncio.Future[Response], tuple[_Provider, Permit, float]] = {}
        can_launch = True
        launched_hedge: float | None = None

        def launch() -> bool:
            for provider, permit in candidates:
                call.begin(provider)
                provider.budget.on_request()
                task = asyncio.ensure_future(self._attempt_async(call, provider, timeout))
                running[task] = (provider, permit, self._clock())
                return True
            return False

        try:
            can_launch = launch()
            while running:
                delay = self._hedge_wait(call, running, can_launch)
                done, _ = await asyncio.wait(
                    running, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    call.route.hedged += 1
                    launched_hedge = self._clock()
                    can_launch = launch()
                    continue
                for task in done:
                    provider, permit, t0 = running.pop(task)
                    err = task.exception()
                    won = self._hedge_result(call, provider, permit, t0,
                                             None if err else task.result(), err)
                    if won is not None:
                        return won
                if not running and can_launch:
                    can_launch = launch()
            raise call.failure()
        finally:
            for task, (provider, permit, t0) in running.items():
                task.cancel()
                self._hedge_loser(call, provider, permit, t0, launched_hedge)

    def _run_hedged_sync(self, call: _Call, timeout: float | None) -> Response:
        """The same race on threads. A losing attempt cannot be interrupted: it runs out
        on its own thread (bounded by its timeout) and its answer is dropped."""
        candidates = call.candidates()
        running: dict[concurrent.futures.Future[Response], tuple[_Provider, Permit, float]] = {}
        pool = self._hedge_pool()
        can_launch = True
        launched_hedge: float | None = None

        def launch() -> bool:
            for provider, permit in candidates:
                call.begin(provider)
                provider.budget.on_request()
                limit = call.attempt_timeout(timeout)
                # Each attempt runs in a copy of the caller's context (the test kit's seam).
                context = contextvars.copy_context()
                future = pool.submit(context.run, provider.adapter.complete, call.request,
                                     timeout=limit)
                running[future] = (provider, permit, self._clock())
                return True
            return False

        try:
            can_launch = launch()
            while running:
                delay = self._hedge_wait(call, running, can_launch)
                done, _ = concurrent.futures.wait(
                    running, timeout=delay, return_when=concurrent.futures.FIRST_COMPLETED)
                if not done:
                    call.route.hedged += 1
                    launched_hedge = self._clock()
                    can_launch = launch()
                    continue
                for future in done:
                    provider, permit, t0 = running.pop(future)
                    err = future.exception()
                    won = self._hedge_result(call, provider, permit, t0,
                                             None if err else future.result(), err)
                    if won is not None:
                        return won
                if not running and can_launch:
                    can_launch = launch()
            raise call.failure()
        finally:
            for future, (provider, permit, t0) in running.items():
                future.cancel()
                self._hedge_loser(call, provider, permit, t0, launched_hedge)

    def _hedge_pool(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._reload_lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=32, thread_name_prefix="failover-hedge")
            return self._pool

    # -- streams ------------------------------------------------------------------------------

    def stream(
        self,
        messages: MessagesInput,
        route: str = "default",
        *,
        system: str | None = None,
        timeout: float | None = None,
        deadline: float | None = None,
        **params: Unpack[CompletionParams],
    ) -> Iterator[StreamEvent]:
        """Deltas as they come, then `Completed`; see the route's ``stream_interrupt``."""
        call = self._start("stream", messages, route, timeout, deadline,
                           {"system": system, **params})
        events = self._counted(call, self._stream_sync(call, timeout))
        if not self._hooks:
            return events
        return self._observed_stream(call, events)

    @staticmethod
    def _counted(call: _Call, events: Iterator[StreamEvent]) -> Iterator[StreamEvent]:
        try:
            yield from events
        finally:
            call.state.leave()

    def _observed_stream(
        self, call: _Call, events: Iterator[StreamEvent]
    ) -> Iterator[StreamEvent]:
        try:
            for event in events:
                if isinstance(event, Completed):
                    self._observe(call, event.response, None, stream=True)
                yield event
        except GeneratorExit:
            raise  # the consumer stopped reading: not an outcome of the request
        except BaseException as exc:
            self._observe(call, None, exc, stream=True)
            raise

    def _stream_sync(self, call: _Call, timeout: float | None) -> Iterator[StreamEvent]:
        recovery = _StreamRecovery(call.route.config.stream_interrupt)
        for provider, permit in call.candidates():
            call.begin(provider)
            tries = 0
            while True:
                if call.expired():
                    call.cancelled(provider, permit, self._clock())
                    break
                tries += 1
                t0 = self._clock()
                request, restart = recovery.request_for(provider, call.request)
                if restart is not None:
                    yield restart
                delivered = False
                events = provider.adapter.stream(
                    request, timeout=call.attempt_timeout(timeout))
                try:
                    for event in events:
                        if isinstance(event, Completed):
                            response = recovery.completed(event.response)
                            yield Completed(call.succeeded(provider, permit, response, t0))
                            return
                        delivered = recovery.shown = True
                        yield event
                except ProviderError as exc:
                    err = exc
                    decision = call.failed(provider, permit, err, t0, tries)
                except BaseException:  # the consumer stopped early, or a bug
                    call.cancelled(provider, permit, t0)
                    raise
                else:  # pragma: no cover - adapters always end with Completed or raise
                    raise call.exhausted()
                finally:
                    events.close()
                if decision.action == "raise":
                    raise call.raise_now(err)
                if delivered:
                    recovery.broke(provider, err)
                    break  # after a delta, recovery moves to the next provider
                if decision.action == "retry":
                    next_permit = self._retry_permit(provider, err, decision, None)
                    if next_permit is not None:
                        permit = next_permit
                        continue
                break
            if call.expired():
                break
        response = self._fallback_sync(call, call.failure())
        yield from _replay_as_stream(response, recovery.anything_shown)

    async def astream(
        self,
        messages: MessagesInput,
        route: str = "default",
        *,
        system: str | None = None,
        timeout: float | None = None,
        deadline: float | None = None,
        **params: Unpack[CompletionParams],
    ) -> AsyncIterator[StreamEvent]:
        """Deltas as they come, then `Completed`; see the route's ``stream_interrupt``."""
        call = self._start("astream", messages, route, timeout, deadline,
                           {"system": system, **params})
        try:
            async for event in self._astream(call, timeout):
                if isinstance(event, Completed) and self._hooks:
                    self._observe(call, event.response, None, stream=True)
                yield event
        except GeneratorExit:
            raise
        except BaseException as exc:
            if self._hooks:
                self._observe(call, None, exc, stream=True)
            raise
        finally:
            call.state.leave()

    async def _astream(
        self, call: _Call, timeout: float | None
    ) -> AsyncIterator[StreamEvent]:
        recovery = _StreamRecovery(call.route.config.stream_interrupt)
        for provider, permit in call.candidates():
            call.begin(provider)
            tries = 0
            while True:
                if call.expired():
                    call.cancelled(provider, permit, self._clock())
                    break
                tries += 1
                t0 = self._clock()
                request, restart = recovery.request_for(provider, call.request)
                if restart is not None:
                    yield restart
                delivered = False
                events = provider.adapter.astream(
                    request, timeout=call.attempt_timeout(timeout))
                try:
                    async for event in events:
                        if isinstance(event, Completed):
                            response = recovery.completed(event.response)
                            yield Completed(call.succeeded(provider, permit, response, t0))
                            return
                        delivered = recovery.shown = True
                        yield event
                except ProviderError as exc:
                    err = exc
                    decision = call.failed(provider, permit, err, t0, tries)
                except BaseException:
                    call.cancelled(provider, permit, t0)
                    raise
                else:  # pragma: no cover
                    raise call.exhausted()
                finally:
                    with contextlib.suppress(Exception):
                        await events.aclose()
                if decision.action == "raise":
                    raise call.raise_now(err)
                if delivered:
                    recovery.broke(provider, err)
                    break
                if decision.action == "retry":
                    next_permit = await self._aretry_permit(provider, err, decision)
                    if next_permit is not None:
                        permit = next_permit
                        continue
                break
            if call.expired():
                break
        response = await self._fallback_async(call, call.failure())
        for event in _replay_as_stream(response, recovery.anything_shown):
            yield event

    # -- manual fallback ---------------------------------------------------------------------

    def _fallback_prelude(
        self, call: _Call, failure: AllProvidersFailed | DeadlineExceeded
    ) -> None:
        self._emit("all_providers_failed", call.route, None,
                   str(failure).splitlines()[0] + f" ({len(call.attempts)} attempts)")

    def _fallback_response(self, call: _Call, result: Any) -> Response:
        if isinstance(result, Response):
            response = result
        elif isinstance(result, str):
            response = Response(text=result, finish_reason="stop", provider="fallback",
                                model="manual")
        else:
            raise TypeError(
                f"routes.{call.route.name}.fallback.python returned {type(result).__name__}; "
                "it must return a str or a failover.Response"
            )
        response.provider = response.provider or "fallback"
        response.attempts = call.attempts
        call.fell_back = True
        response.latency_s = self._clock() - call.started
        return response

    def _check_store(self) -> None:
        """A route that defers needs a store it can write: find out now, not when the
        first outage needs it (and tell people: requests would be lost then)."""
        if not any(r.config.fallback.defer for r in self._state.routes.values()):
            return
        try:
            self._state.deferred.check()
        except StoreError as exc:
            logger.error("%s: requests that need deferring will raise DeferFailed", exc)
            self._emit("defer_failed", None, None, str(exc))

    def _store(self, call: _Call, failure: FailoverError) -> str | StoreError:
        """Write the request to the store: its ticket, or why the store refused it."""
        try:
            return self._state.deferred.add(call.request, str(failure))
        except StoreError as exc:
            return exc

    def _deferred(self, call: _Call, failure: FailoverError, stored: str | StoreError) -> None:
        path = str(self._state.deferred.path)
        if isinstance(stored, StoreError):
            self._emit("defer_failed", call.route, None, str(stored))
            raise DeferFailed(call.route.name, path, str(stored), call.attempts) from failure
        self._emit("deferred", call.route, None, f"ticket {stored} in {path}")
        raise Deferred(stored, call.route.name, path, call.attempts) from failure

    def _defer_or_raise(
        self, call: _Call, failure: FailoverError, cause: BaseException | None = None
    ) -> Response:
        if call.route.config.fallback.defer:
            self._deferred(call, failure, self._store(call, failure))
        if cause is not None:
            raise failure from cause
        raise failure

    async def _adefer_or_raise(
        self, call: _Call, failure: FailoverError, cause: BaseException | None = None
    ) -> Response:
        if call.route.config.fallback.defer:
            # Off the event loop: another process may hold the store's lock for a while.
            stored = await asyncio.to_thread(self._store, call, failure)
            self._deferred(call, failure, stored)
        if cause is not None:
            raise failure from cause
        raise failure

    def _fallback_sync(
        self, call: _Call, failure: AllProvidersFailed | DeadlineExceeded
    ) -> Response:
        self._fallback_prelude(call, failure)
        fallback = call.route.fallback
        if fallback is not None:
            try:
                result = fallback(call.request, failure)
                if inspect.isawaitable(result):
                    result = _run_awaitable(result)
                return self._fallback_response(call, result)
            except Exception as exc:
                logger.exception("fallback of route %s failed", call.route.name)
                return self._defer_or_raise(call, failure, exc)
        return self._defer_or_raise(call, failure)

    async def _fallback_async(
        self, call: _Call, failure: AllProvidersFailed | DeadlineExceeded
    ) -> Response:
        self._fallback_prelude(call, failure)
        fallback = call.route.fallback
        if fallback is not None:
            try:
                result = fallback(call.request, failure)
                if inspect.isawaitable(result):
                    result = await result
                return self._fallback_response(call, result)
            except Exception as exc:
                logger.exception("fallback of route %s failed", call.route.name)
                return await self._adefer_or_raise(call, failure, exc)
        return await self._adefer_or_raise(call, failure)

    # -- deferred requests -------------------------------------------------------------------

    def list_deferred(self, state: DeferredState | None = None) -> list[DeferredRecord]:
        """Requests kept by ``defer: true`` routes, oldest first; ``state`` filters
        (``"pending"``, ``"replaying"``, ``"answered"``: answered rows keep their answer)."""
        return self._state.deferred.list(state)

    def deferred(self, ticket: str) -> DeferredRecord | None:
        """One deferred request by its ticket, with its answer once replayed."""
        return self._state.deferred.get(ticket)

    def _replays(
        self, tickets: Sequence[str] | None, owner: str
    ) -> Iterator[tuple[DeferredRecord, _Call | BadRequest]]:
        """Each replayable row, claimed first: another replayer never gets it too."""
        state = self._state
        for listed in state.deferred.list():
            if listed.state == "answered" or (tickets is not None
                                              and listed.ticket not in tickets):
                continue
            record = state.deferred.claim(listed.ticket, owner)
            if record is None:
                continue  # another replayer has it
            route = state.routes.get(record.route)
            if route is None:
                yield record, BadRequest(f"route {record.route!r} is no longer configured")
                continue
            yield record, _Call(self, state, route, record.request,
                                self._clock(), None, None)

    def _replayed(
        self, record: DeferredRecord, result: Response | FailoverError
    ) -> Any:
        """Keep the answer (or release the row); returns what ``on_replay`` returned."""
        store = self._state.deferred
        if not isinstance(result, Response):
            store.release(record.ticket, str(result))
            return None
        store.answered(record.ticket, DeferredAnswer.of(result, time.time()))
        route = self._state.routes.get(record.route)
        if route is None or route.on_replay is None:
            return None
        try:
            return route.on_replay(record, result)
        except Exception:
            logger.exception("on_replay of route %s failed for ticket %s", record.route,
                             record.ticket)
            return None

    def replay_deferred(
        self, tickets: Sequence[str] | None = None
    ) -> list[tuple[str, Response | FailoverError]]:
        """Send deferred requests again through their route, each exactly once.

        Each row is claimed before it is sent, so concurrent replayers (two processes)
        never send the same request twice. An answered row keeps its answer
        (`deferred`, ``failover deferred show``) and goes to the route's ``on_replay``;
        a replay that fails again is pending again (its ``replays`` count grows), never
        deferred a second time under a new ticket.
        """
        results = []
        result: Response | FailoverError
        for record, call in self._replays(tickets, _replayer_id()):
            if isinstance(call, _Call):
                try:
                    result = self._run_sync(call, None)
                except FailoverError as err:
                    result = err
            else:
                result = call
            done = self._replayed(record, result)
            if inspect.isawaitable(done):
                _run_awaitable(done)
            results.append((record.ticket, result))
        return results

    async def areplay_deferred(
        self, tickets: Sequence[str] | None = None
    ) -> list[tuple[str, Response | FailoverError]]:
        results = []
        result: Response | FailoverError
        replays = await asyncio.to_thread(list, self._replays(tickets, _replayer_id()))
        for record, call in replays:
            if isinstance(call, _Call):
                try:
                    result = await self._run_async(call, None)
                except FailoverError as err:
                    result = err
            else:
                result = call
            done = await asyncio.to_thread(self._replayed, record, result)
            if inspect.isawaitable(done):
                await done
            results.append((record.ticket, result))
        return results

    def _observe(
        self, call: _Call, response: Response | None, error: BaseException | None,
        *, stream: bool = False,
    ) -> None:
        if response is not None:
            outcome: Outcome = "fallback" if call.fell_back else "ok"
        else:
            outcome = "deferred" if isinstance(error, Deferred) else "error"
        duration = self._clock() - call.started
        notify_all(self._hooks, RequestRecord(
            route=call.route.name,
            started_at=time.time() - duration,
            duration_s=duration,
            outcome=outcome,
            attempts=tuple(call.attempts),
            provider=response.provider if response is not None else None,
            model=response.model if response is not None else None,
            error_kind=type(error).__name__ if error is not None else None,
            stream=stream,
            usage=response.usage if response is not None else None,
        ))

    def warm_up(self) -> None:
        """Build every provider's SDK clients now instead of on first use.

        The first request otherwise pays for importing an SDK (up to a second or more)
        out of its deadline; this also resolves every ``${VAR}``: every provider that can
        be built is, then one `ConfigError` lists each key whose variable is not set (those
        providers fail over like a revoked key until it is).
        """
        problems: list[str] = []
        for provider in self._state.providers.values():
            adapter = provider.adapter
            missing = adapter.missing_credentials()
            if missing:
                problems += missing
                continue
            adapter.sync_client()
            adapter.async_client()
            adapter.transport.warm()
        if problems:
            raise ConfigError(problems)

    # -- health and operations -----------------------------------------------------------------

    def health(self) -> dict[str, ProviderHealth]:
        return {
            name: p.health.snapshot(name, p.breaker)
            for name, p in self._state.providers.items()
        }

    def _provider(self, name: str) -> _Provider:
        try:
            return self._state.providers[name]
        except KeyError:
            known = ", ".join(sorted(self._state.providers))
            raise KeyError(f"unknown provider {name!r}; configured: {known}") from None

    def force_open(self, name: str) -> None:
        """Skip ``name`` until `reset` or `force_closed` (an operator's override)."""
        p = self._provider(name)
        with p.lock:
            self._transitions(p.breaker.force_open(), None)

    def force_closed(self, name: str) -> None:
        """Always try ``name``, whatever its breaker says."""
        p = self._provider(name)
        with p.lock:
            self._transitions(p.breaker.force_closed(), None)

    def reset(self, name: str) -> None:
        """Back to closed with counters cleared, and no forced state."""
        p = self._provider(name)
        with p.lock:
            self._transitions(p.breaker.reset(), None)

    # -- events ----------------------------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns an unsubscribe function."""
        return self._bus.subscribe(callback)

    def _emit(
        self, type_: EventType, route: _Route | None, provider: str | None, detail: str,
        **data: Any,
    ) -> None:
        if not self._bus.active and self._notifier is None:
            return
        runbook = route.config.fallback.runbook if route is not None else None
        event = Event(type_, route.name if route else None, provider, scrub(detail),
                      runbook=runbook, data=data)
        self._bus.emit(event)

    def _transitions(self, transitions: Sequence[Transition], route: _Route | None) -> None:
        names: dict[str, EventType] = {
            "open": "breaker_opened", "forced_open": "breaker_opened",
            "half_open": "breaker_half_open",
            "closed": "breaker_closed", "forced_closed": "breaker_closed",
        }
        for t in transitions:
            type_ = names.get(t.new)
            if type_ is not None:
                self._emit(type_, route, t.provider, f"{t.old} -> {t.new}: {t.reason}")
        if self._shared is not None:
            for name in {t.provider for t in transitions}:
                provider = self._state.providers.get(name)
                if provider is not None:
                    self._shared.publish(provider.breaker.snapshot())

    def _adopt_shared(self, name: str, snapshot: Mapping[str, Any]) -> None:
        """Another worker's breaker transition (from the Redis subscriber thread)."""
        provider = self._state.providers.get(name)
        if provider is not None:
            with provider.lock:
                provider.breaker.restore(snapshot)

    def _setup_notifier(self, config: Config) -> None:
        """(Re)build the webhook notifier; on reload only if ``notify`` changed."""
        previous = self._notifier
        if previous is not None and self._notify_config == config.notify:
            return
        if previous is not None:
            self._unsubscribe_notifier()
            previous.close()
            self._notifier = None
        self._notify_config = config.notify
        webhook = config.notify.webhook
        if webhook is None:
            return
        from ._notify import WebhookNotifier

        runbooks = {name: r.fallback.runbook for name, r in config.routes.items()}
        self._notifier = WebhookNotifier(webhook, runbooks=runbooks, clock=self._clock)
        self._unsubscribe_notifier = self._bus.subscribe(self._notifier)

    # -- reload ----------------------------------------------------------------------------------

    def reload(self, config: Config | None = None) -> None:
        """Swap in a new config (re-read the file if none is given), atomically.

        A bad config raises `ConfigError` and the old one keeps serving. Providers whose
        settings did not change keep their breaker and health.
        """
        with self._reload_lock:
            try:
                if config is None:
                    if self._path is None:
                        raise ConfigError("this router was not loaded from a file; "
                                          "pass the new Config to reload(config)")
                    config = load_config(self._path)
                missing = env_problems(config, chains_only=True)
                if missing:
                    # Serving on would fail every request of that chain over for nothing.
                    raise ConfigError(missing)
                new_state = _build_state(config, self._clock, self._state, self._store_path)
            except ConfigError as exc:
                self._emit("config_rejected", None, None, "; ".join(exc.problems)[:500])
                raise
            old = self._state
            self._state = new_state
            self._setup_notifier(config)
            if new_state.deferred.path != old.deferred.path:
                self._check_store()
            kept = {id(p) for p in new_state.providers.values()}
            self._retired = [s for s in self._retired if s.retiring]
            self._retired.append(old)
            old.retire([p for p in old.providers.values() if id(p) not in kept])
            self._sync_watcher(config)
            changed = sorted(n for n, p in new_state.providers.items()
                             if old.providers.get(n) is not p)
            self._emit("config_reloaded", None, None,
                       f"new or changed providers: {', '.join(changed) or 'none'}")

    def _sync_watcher(self, config: Config) -> None:
        """Start the file watcher when ``watch`` is on, stop it when a reload turns it off."""
        wanted = config.watch and self._path is not None
        running = self._watcher is not None and self._watcher.is_alive()
        if wanted and not running:
            self._watch_stop = threading.Event()
            self._watcher = threading.Thread(target=self._watch, args=(self._watch_stop,),
                                             name="failover-watch", daemon=True)
            self._watcher.start()
        elif running and not wanted:
            self._watch_stop.set()

    def _watch(self, stop: threading.Event) -> None:
        """Reload the file once it has changed and then stayed the same for a while.

        An editor or a deploy tool that truncates the file and writes it in pieces would
        otherwise be read half-written (a valid YAML file with half the routes); waiting
        for ``_WATCH_SETTLE_S`` without a change means only a whole file is loaded.
        """
        assert self._path is not None
        path = self._path
        seen = _signature(path)
        changed_at: float | None = None
        while not (stop.wait(_WATCH_POLL_S) or self._stop.is_set()):
            now = _signature(path)
            if now != seen:
                seen, changed_at = now, time.monotonic()
                continue
            if changed_at is None or time.monotonic() - changed_at < _WATCH_SETTLE_S:
                continue
            changed_at = None
            if now is None:
                continue  # the file is gone; the config in memory keeps serving
            try:
                self.reload()
            except ConfigError as exc:
                logger.error("config %s rejected, old config keeps serving: %s", path, exc)
            except Exception:
                logger.exception("reloading %s failed", path)

    # -- lifetime ----------------------------------------------------------------------------------

    def _all_providers(self) -> list[_Provider]:
        """The live providers, and those of replaced configs not closed yet."""
        providers = {id(p): p for p in self._state.providers.values()}
        for state in self._retired:
            providers.update((id(p), p) for p in state.retiring or ())
        return list(providers.values())

    def close(self) -> None:
        self._stop.set()
        if self._shared is not None:
            self._shared.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        for p in self._all_providers():
            if p.built:
                p.adapter.close()
        if self._notifier is not None:
            self._notifier.close()

    async def aclose(self) -> None:
        self._stop.set()
        if self._shared is not None:
            self._shared.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        for p in self._all_providers():
            if p.built:
                await p.adapter.aclose()
        if self._notifier is not None:
            self._notifier.close()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Router:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        routes = ", ".join(f"{n}: {list(r.config.chain)}" for n, r in self._state.routes.items())
        return f"<failover.Router {routes}>"


def _replay_as_stream(response: Response, shown: bool) -> Iterator[StreamEvent]:
    if shown:
        yield Restart(response.provider, "all providers failed; manual fallback answered")
    yield from events_of(response)


_WATCH_POLL_S = 0.25
#: How long a changed config file must stay unchanged before it is loaded.
_WATCH_SETTLE_S = 1.0


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


def _replayer_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _run_awaitable(awaitable: Any) -> Any:
    async def wrap() -> Any:
        return await awaitable

    return asyncio.run(wrap())
