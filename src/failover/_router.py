"""The router: one completion API over a config-ordered chain of providers.

`Router` is the public face and the lifetime: construction, reload, the file watcher,
subscriptions, health, operator overrides, close. Each request is an `Attempts` (the
attempt machine: every decision, no I/O) performed by a driver of `_drivers` (the thin
sync and async loops), so every entry point makes the same choices.

The live state is one `State` (config, providers, routes) that a request takes a
reference to when it starts. `reload()` builds a new one and swaps it in one assignment,
so requests in flight finish on the config they began with, and providers whose settings
did not change carry their breaker and health across.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import inspect
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _drivers, _replay
from ._attempts import Attempts, Chain, Note
from ._breaker import Transition
from ._config import (
    CONFIG_ENV,
    Config,
    config_path_from_env,
    env_problems,
    load_config,
    resolve_env,
)
from ._errors import BadRequest, ConfigError, Deferred, FailoverError
from ._events import Event, EventBus, EventType, Subscriber
from ._fallback import (
    DeferredRecord,
    DeferredState,
    PeriodicBackup,
    StoreError,
)
from ._fleet import FleetEntry, RedisFleetSync
from ._health import ProviderHealth
from ._instrumentation import (
    Instrumentation,
    Outcome,
    ProviderView,
    RequestRecord,
    notify_all,
    telemetry_hooks,
)
from ._models import (
    Completed,
    MessagesInput,
    Request,
    Response,
    StreamEvent,
    build_request,
    check_params,
    check_seconds,
)
from ._notify import NotifierSlot
from ._secrets import install_log_scrubber, register_url, scrub
from ._shared import RedisBreakerSync
from ._state import Provider, State, build_state, chained, prepare
from ._watch import FileWatcher
from .providers._base import current_override

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._models import CompletionParams
    from ._types import BreakerState, Clock

__all__ = ["Router"]

logger = logging.getLogger("failover")

#: The event each breaker state's arrival is published as.
_ARRIVAL: dict[BreakerState, EventType] = {
    "open": "breaker_opened", "forced_open": "breaker_opened",
    "half_open": "breaker_half_open",
    "closed": "breaker_closed", "forced_closed": "breaker_closed",
}


#: Transitions an operator made (force-open, force-closed, reset), which every worker
#: announces when it adopts them from the shared state.
_OPERATOR_REASONS = frozenset({"forced", "reset"})


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
        self._retired: list[State] = []
        self._state = build_state(config, self._clock, None, self._store_path)
        self._hooks: tuple[Instrumentation, ...] = (
            *instrumentation, *telemetry_hooks(config))
        install_log_scrubber()
        self._shared: RedisBreakerSync | None = None
        self._fleet: RedisFleetSync | None = None
        if config.state.backend == "redis":
            assert config.state.url is not None
            state_url = resolve_env(config.state.url, "state.url")
            register_url(state_url)
            self._shared = RedisBreakerSync(
                state_url, prefix=config.state.prefix,
                clock=self._clock, apply=self._adopt_shared,
                local=lambda: [p.breaker.snapshot() for p in self._state.providers.values()])
            self._shared.start(list(self._state.providers))
            self._fleet = RedisFleetSync(
                state_url, prefix=config.state.prefix, clock=self._clock,
                entries=self._fleet_entries, where=scrub(state_url.split("@")[-1]),
                announce=lambda type_, detail: self._emit(type_, None, None, detail))
        self._notifier = NotifierSlot(self._bus, self._clock)
        self._notifier.update(config)
        if self._fleet is not None:  # after the notifier: its first word may be an event
            self._fleet.start()
        for problem in env_problems(config):
            # Not fatal: that provider fails like a revoked key until the variable is set.
            logger.warning("config: %s", problem)
        self._check_store()
        self._watcher: FileWatcher | None = None
        self._backups: PeriodicBackup | None = None
        self._stop = threading.Event()
        self._reload_lock = threading.Lock()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._preparing: list[threading.Thread] = []
        self._rt = _drivers.Runtime(publish=self._publish, sleep=self._sleep,
                                    asleep=self._asleep, store=self._store,
                                    hedge_pool=self._hedge_pool)
        self._prepare(chained(self._state))
        self._sync_watcher(config)
        self._sync_backups(config)

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

    @classmethod
    def from_env(
        cls, variable: str = CONFIG_ENV, *, clock: Clock | None = None,
        instrumentation: Sequence[Instrumentation] = (),
    ) -> Router:
        """`from_file` on the path in ``$FAILOVER_CONFIG`` (or ``variable``), so one
        image runs with each environment's config; `ConfigError` if it is unset."""
        return cls.from_file(config_path_from_env(variable), clock=clock,
                             instrumentation=instrumentation)

    @property
    def config(self) -> Config:
        return self._state.config

    @property
    def instrumentation(self) -> tuple[Instrumentation, ...]:
        """The hooks told about every request (yours, then OpenTelemetry's if on)."""
        return self._hooks


    # -- requests -------------------------------------------------------------------------

    def _begin(
        self, where: str, messages: MessagesInput, route: str, timeout: float | None,
        deadline: float | None, params: dict[str, Any],
    ) -> _Request:
        """Check the caller's arguments (before any provider is involved) and start the
        request's attempt machine."""
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
        stream = where.endswith("stream")
        route_obj.requests += 1
        state.enter()
        return _Request(
            state.config, route_obj, request, self._clock, self._clock(),
            deadline if deadline is not None else route_obj.config.deadline,
            timeout=timeout, stream=stream,
            hedged=not stream and route_obj.config.hedge is not None,
            store_path=str(state.deferred.path), state=state,
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
        m = self._begin("complete", messages, route, timeout, deadline,
                        {"system": system, **params})
        with _Scope(self, m):
            return self._answered(m, _drivers.complete(self._rt, m))

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
        m = self._begin("acomplete", messages, route, timeout, deadline,
                        {"system": system, **params})
        with _Scope(self, m):
            return self._answered(m, await _drivers.acomplete(self._rt, m))

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
        m = self._begin("stream", messages, route, timeout, deadline,
                        {"system": system, **params})
        return self._stream(m)

    def _stream(self, m: _Request) -> Iterator[StreamEvent]:
        with _Scope(self, m):
            for event in _drivers.stream(self._rt, m):
                if isinstance(event, Completed):
                    self._answered(m, event.response)
                yield event

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
        m = self._begin("astream", messages, route, timeout, deadline,
                        {"system": system, **params})
        # Closed at our yield: the driver is closed now (its permit back), not when collected.
        with _Scope(self, m):
            async with contextlib.aclosing(_drivers.astream(self._rt, m)) as events:
                async for event in events:
                    if isinstance(event, Completed):
                        self._answered(m, event.response)
                    yield event

    def _answered(self, m: Attempts, response: Response) -> Response:
        if self._hooks:
            self._observe(m, response, None)
        return response

    def _observe(
        self, m: Attempts, response: Response | None, error: BaseException | None
    ) -> None:
        if response is not None:
            outcome: Outcome = "fallback" if m.fell_back else "ok"
        else:
            outcome = "deferred" if isinstance(error, Deferred) else "error"
        duration = self._clock() - m.started
        notify_all(self._hooks, RequestRecord(
            route=m.route.name,
            started_at=time.time() - duration,
            duration_s=duration,
            outcome=outcome,
            attempts=tuple(m.attempts),
            provider=response.provider if response is not None else None,
            model=response.model if response is not None else None,
            error_kind=type(error).__name__ if error is not None else None,
            stream=m.stream,
            usage=response.usage if response is not None else None,
            providers=self._tried(m),
            request=m.request,
            response=response,
        ))

    def _tried(self, m: Attempts) -> dict[str, ProviderView]:
        """What telemetry needs of each provider the request tried: type and breaker."""
        providers = self._state.providers
        return {name: ProviderView(p.config.type, p.breaker.state)
                for name in {a.provider for a in m.attempts}
                if (p := providers.get(name)) is not None}

    def _publish(self, m: Attempts) -> None:
        """Emit what the machine collected, in order, once (the drivers call this)."""
        outbox, m.outbox = m.outbox, []
        route = m.route
        transitions = [item for item in outbox if isinstance(item, Transition)]
        for item in outbox:
            if isinstance(item, Note):
                self._emit(item.type, route, item.provider, item.detail, **item.data)
            else:
                self._arrived(item, route)
        self._share(transitions)

    def _hedge_pool(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._reload_lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=32, thread_name_prefix="failover-hedge")
            return self._pool

    def _prepare(self, providers: Sequence[Provider]) -> None:
        """Build ``providers`` on a background thread: a failover must not pay for it."""
        waiting = [p for p in providers if not p.built]
        if not waiting:
            return
        thread = threading.Thread(target=prepare, args=(waiting, self._stop),
                                  name="failover-prepare", daemon=True)
        self._preparing = [t for t in self._preparing if t.is_alive()] + [thread]
        thread.start()

    # -- the manual fallback's store ---------------------------------------------------------

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

    def _store(self, request: Request, failure: FailoverError) -> str | Exception:
        return _replay.store(self._state, request, failure)

    # -- deferred requests -------------------------------------------------------------------

    def list_deferred(self, state: DeferredState | None = None) -> list[DeferredRecord]:
        """Requests kept by ``defer: true`` routes, oldest first; ``state`` filters
        (``"pending"``, ``"replaying"``, ``"answered"``: answered rows keep their answer)."""
        return self._state.deferred.list(state)

    def backup_deferred(self, to: str | os.PathLike[str] | None = None) -> int:
        """Copy the deferred store to ``to`` (default: ``deferred.backup.path``), safely
        while requests are deferred; returns how many requests the copy holds."""
        return self._state.deferred.backup(self._backup_target(to, "backup_deferred"))

    def restore_deferred(self, source: str | os.PathLike[str] | None = None) -> int:
        """Put back the requests of a backup (default: ``deferred.backup.path``) that the
        store lacks, e.g. after its file was lost; returns how many were put back."""
        return self._state.deferred.restore(self._backup_target(source, "restore_deferred"))

    def _backup_target(self, given: str | os.PathLike[str] | None, where: str) -> Path:
        path = Path(given) if given is not None else self._state.config.backup_path()
        if path is None:
            raise BadRequest(f"{where}(): give a path, or set deferred.backup.path")
        return path

    def _sync_backups(self, config: Config) -> None:
        """Back the store up every ``deferred.backup.every`` (when not 0, which mirrors
        each write instead); a reload starts or stops it."""
        backup = config.deferred.backup
        wanted = backup is not None and backup.every > 0 and not self._stop.is_set()
        running = self._backups is not None and self._backups.running
        if wanted and not running:
            self._backups = PeriodicBackup(self.backup_deferred, self._backup_every)

    def _backup_every(self) -> float | None:
        backup = self._state.config.deferred.backup
        return backup.every if backup is not None and not self._stop.is_set() else None

    def deferred(self, ticket: str) -> DeferredRecord | None:
        """One deferred request by its ticket, with its answer once replayed."""
        return self._state.deferred.get(ticket)

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
        state = self._state
        for record, m in _replay.claimed(state, tickets, self._clock):
            try:
                result = m if isinstance(m, BadRequest) else _drivers.complete(self._rt, m)
            except FailoverError as err:
                result = err
            done = _replay.settle(state, record, result)
            if inspect.isawaitable(done):
                _drivers._run_awaitable(done)
            results.append((record.ticket, result))
        return results

    async def areplay_deferred(
        self, tickets: Sequence[str] | None = None
    ) -> list[tuple[str, Response | FailoverError]]:
        results = []
        result: Response | FailoverError
        state = self._state  # the claims and the answers go to the same store
        replays = await asyncio.to_thread(list, _replay.claimed(state, tickets, self._clock))
        for record, m in replays:
            try:
                result = m if isinstance(m, BadRequest) else await _drivers.acomplete(
                    self._rt, m)
            except FailoverError as err:
                result = err
            done = await asyncio.to_thread(_replay.settle, state, record, result)
            if inspect.isawaitable(done):
                await done
            results.append((record.ticket, result))
        return results

    def warm_up(self) -> None:
        """Build every provider's SDK clients now, and wait for it.

        Routed providers are prepared on a background thread anyway; this also builds
        those no route uses yet and resolves every ``${VAR}``: every provider that can be
        built is, then one `ConfigError` lists each key whose variable is not set (those
        providers fail over like a revoked key until it is).
        """
        problems: list[str] = []
        for provider in self._state.providers.values():
            problems += provider.prepare()
        if problems:
            raise ConfigError(problems)

    # -- health and operations -----------------------------------------------------------------

    def health(self) -> dict[str, ProviderHealth]:
        return {  # each breaker read in one consistent view
            name: dataclasses.replace(p.health.snapshot(name, p.breaker), **p.keys_health())
            for name, p in self._state.providers.items()
        }

    def _provider(self, name: str) -> Provider:
        try:
            return self._state.providers[name]
        except KeyError:
            known = ", ".join(sorted(self._state.providers))
            raise KeyError(f"unknown provider {name!r}; configured: {known}") from None

    def force_open(self, name: str) -> None:
        """Skip ``name`` until `reset` or `force_closed` (an operator's override)."""
        self._transitions(self._provider(name).breaker.force_open(), None)

    def force_closed(self, name: str) -> None:
        """Always try ``name``, whatever its breaker says."""
        self._transitions(self._provider(name).breaker.force_closed(), None)

    def reset(self, name: str) -> None:
        """Back to closed with counters cleared, and no forced state."""
        self._transitions(self._provider(name).breaker.reset(), None)

    # -- events ----------------------------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns an unsubscribe function."""
        return self._bus.subscribe(callback)

    def _emit(
        self, type_: EventType, route: Chain | None, provider: str | None, detail: str,
        **data: Any,
    ) -> None:
        if not self._bus.listens(type_):  # nobody listens (a webhook is a subscriber too)
            return
        runbook = route.config.fallback.runbook if route is not None else None
        event = Event(type_, route.name if route else None, provider, scrub(detail),
                      runbook=runbook, data=data)
        self._bus.emit(event)

    def _transitions(self, transitions: Sequence[Transition], route: Chain | None) -> None:
        for transition in transitions:
            self._arrived(transition, route)
        self._share(transitions)

    def _arrived(self, transition: Transition, route: Chain | None) -> None:
        type_ = _ARRIVAL.get(transition.new)
        if type_ is not None:
            self._emit(type_, route, transition.provider,
                       f"{transition.old} -> {transition.new}: {transition.reason}",
                       old_state=transition.old, new_state=transition.new,
                       reason=transition.reason)

    def _share(self, transitions: Sequence[Transition]) -> None:
        """Tell the other workers (Redis) each changed breaker's new state."""
        if self._shared is None or not transitions:
            return
        reasons = {t.provider: t.reason for t in transitions}
        for name, reason in reasons.items():
            provider = self._state.providers.get(name)
            if provider is not None:
                self._shared.publish({**provider.breaker.snapshot(), "reason": reason})

    def _fleet_entries(self) -> list[FleetEntry]:
        """What the fleet shares of each provider (read by the quota thread)."""
        return [
            FleetEntry(name, list(zip(p.key_ids(), p.keys.keys, strict=False)), p.keys.provider,
                       p)
            for name, p in self._state.providers.items()
        ]

    def _adopt_shared(self, name: str, snapshot: Mapping[str, Any]) -> None:
        """Another worker's breaker transition (from the Redis subscriber thread). An
        operator's override (``failover force-open``...) is an event in every worker;
        a transition the other worker saw for itself was already told by it."""
        provider = self._state.providers.get(name)
        if provider is None:
            return
        old = provider.breaker.state
        provider.breaker.restore(snapshot)
        reason = str(snapshot.get("reason") or "")
        if reason in _OPERATOR_REASONS and provider.breaker.state != old:
            self._arrived(Transition(name, old, provider.breaker.state,
                                     f"{reason} (through the shared state)", None), None)

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
                new_state = build_state(config, self._clock, self._state, self._store_path)
            except ConfigError as exc:
                self._emit("config_rejected", None, None, "; ".join(exc.problems)[:500])
                raise
            old = self._state
            self._state = new_state
            self._notifier.update(config)
            if new_state.deferred.path != old.deferred.path:
                self._check_store()
            kept = {id(p) for p in new_state.providers.values()}
            self._retired = [s for s in self._retired if s.retiring]
            self._retired.append(old)
            old.retire([p for p in old.providers.values() if id(p) not in kept])
            self._prepare(chained(new_state))
            self._sync_watcher(config)
            self._sync_backups(config)
            changed = sorted(n for n, p in new_state.providers.items()
                             if old.providers.get(n) is not p)
            self._emit("config_reloaded", None, None,
                       f"new or changed providers: {', '.join(changed) or 'none'}")

    def _sync_watcher(self, config: Config) -> None:
        """Start the file watcher when ``watch`` is on, stop it when a reload turns it off."""
        wanted = config.watch and self._path is not None and not self._stop.is_set()
        running = self._watcher is not None and self._watcher.running
        if wanted and not running:
            assert self._path is not None
            self._watcher = FileWatcher(self._path, self.reload)
        elif running and not wanted and self._watcher is not None:
            self._watcher.stop()

    # -- lifetime ----------------------------------------------------------------------------------

    def _all_providers(self) -> list[Provider]:
        """The live providers, and those of replaced configs not closed yet."""
        providers = {id(p): p for p in self._state.providers.values()}
        for state in self._retired:
            providers.update((id(p), p) for p in state.retiring or ())
        return list(providers.values())

    def _stopping(self) -> list[Provider]:
        """Stop every thread of this router; the providers left to close."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.stop()
        if self._backups is not None:
            self._backups.stop()
        for thread in self._preparing:
            thread.join(timeout=5.0)  # a client built after close would leak its pool
        if self._shared is not None:
            self._shared.close()
        if self._fleet is not None:
            self._fleet.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._notifier.close()
        return [p for p in self._all_providers() if p.built]

    def close(self) -> None:
        for provider in self._stopping():
            provider.adapter.close()

    async def aclose(self) -> None:
        for provider in self._stopping():
            await provider.adapter.aclose()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Router:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        routes = ", ".join(f"{n}: {r.config.labels}" for n, r in self._state.routes.items())
        return f"<failover.Router {routes}>"


class _Request(Attempts):
    """A request's attempt machine, with the state it began on (to count it out)."""

    def __init__(self, *args: Any, state: State, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.state = state


class _Scope:
    """One request's lifetime: a failure told to the hooks, the state counted out."""

    __slots__ = ("_m", "_router")

    def __init__(self, router: Router, m: _Request) -> None:
        self._router, self._m = router, m

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: object) -> None:
        try:
            # A consumer that stops reading a stream is not an outcome of the request.
            if error is not None and self._router._hooks and not isinstance(
                    error, GeneratorExit):
                self._router._observe(self._m, None, error)
        finally:
            self._m.state.leave()
