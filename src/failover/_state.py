"""The router's live state: providers (adapter, breaker, health, budget), routes, and the
state of one config as a whole, rebuilt by a reload.

A reload builds a new `State` with `build_state`: providers whose settings did not change
are carried over (their breaker and health with them), and the replaced state closes the
providers it alone used once the last request that began on it has finished.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._breaker import Breaker
from ._config import (
    Config,
    ProviderConfig,
    RetryConfig,
    RouteConfig,
    TimeoutsConfig,
    resolve_env,
)
from ._errors import ConfigError
from ._fallback import DeferredStore, load_callable
from ._health import HealthTracker
from ._limits import KeyPool, QuotaReading
from ._models import Request
from ._policy import RetryBudget
from ._pools import Pool
from ._secrets import register
from .providers import build_adapter
from .providers._known import known_context_window

if TYPE_CHECKING:
    from ._types import Clock
    from .providers._base import ProviderAdapter

__all__ = ["Provider", "Route", "State", "build_state", "chained", "prepare"]

logger = logging.getLogger("failover")


class Provider:
    """One configured provider: its adapter (built on first use), breaker, health, keys
    (each with its quota) and the requests it has in flight."""

    def __init__(
        self, name: str, config: ProviderConfig, timeouts: TimeoutsConfig, state_key: Any,
        breaker: Breaker, health: HealthTracker, budget: RetryBudget, *,
        retry: RetryConfig, clock: Clock,
    ) -> None:
        self.name = name
        self.config = config
        self.timeouts = timeouts
        self.state_key = state_key
        self.breaker = breaker
        self.health = health
        self.budget = budget
        self.retry = retry
        self.model = config.model
        #: Tokens, from config or what is known of the model; None when unknown.
        self.context_window = (config.capabilities.context_window
                               or known_context_window(config.model))
        #: A completion slower than this (a stream's first token later) is slow.
        self.slow_call = breaker.config.slow_call
        self.keys = KeyPool(len(config.key_refs()), config.limits, clock)
        self._clock = clock
        self._counts_tokens = config.limits is not None and config.limits.tpm is not None
        self._limited = config.limits is not None
        self._inflight = 0
        #: Requests the other workers have in flight here (a shared-state backend's).
        self.fleet_inflight = 0
        self._inflight_lock = threading.Lock()
        self._key_ids: list[str] | None = None
        self._adapter: ProviderAdapter | None = None
        self._build_lock = threading.Lock()

    @property
    def adapter(self) -> ProviderAdapter:
        adapter = self._adapter
        if adapter is None:
            with self._build_lock:
                if self._adapter is None:
                    built = build_adapter(self.name, self.config, self.timeouts)
                    built.on_rate_limits = self._observe
                    self._adapter = built
                adapter = self._adapter
        return adapter

    # -- keys and quota --------------------------------------------------------------------

    def pick_key(self, now: float, request: Request) -> int | None:
        """The key for the next attempt, or None when no key may be used now. When no
        key's ``${VAR}`` is set, one of them: the adapter's error names the variables."""
        if len(self.keys.keys) == 1:  # its variable, set or not, is the adapter's to say
            return self.keys.pick(now, (), self._cost(request))
        missing = self.adapter.missing_keys()
        key = self.keys.pick(now, missing, self._cost(request))
        if key is None and len(missing) == len(self.keys.keys):
            return min(missing)
        return key

    def _cost(self, request: Request) -> int:
        """The tokens ``request`` counts against a tokens-a-minute limit (0: none kept)."""
        if not self._counts_tokens:
            return 0
        return request.estimated_input_tokens() + (request.max_tokens or 0)

    def key_blocked_until(self, now: float) -> float:
        return self.keys.blocked_until(now, self.adapter.missing_keys())

    def other_key_usable(self, key: int, now: float) -> bool:
        return self.keys.usable_besides(key, now, self.adapter.missing_keys())

    def key_ids(self) -> list[str]:
        """Each key named by a digest of its value (for the fleet), never the value."""
        ids = self._key_ids
        if ids is None:
            refs = self.config.key_refs()
            ids = self._key_ids = [
                _digest(f"{self.name}:{i}:" + _resolved_or_empty(ref.get_secret_value(), self.name))
                for i, ref in enumerate(refs)] or [_digest(f"{self.name}:keyless")]
        return ids

    def keys_health(self) -> dict[str, Any]:
        """The key and quota fields of `ProviderHealth`."""
        now = self._clock()
        quotas = self.keys.keys
        return {
            "keys": len(quotas),
            "keys_retired": tuple(i for i, q in enumerate(quotas) if q.retired is not None),
            "keys_blocked": tuple(i for i, q in enumerate(quotas)
                                  if q.retired is None and q.blocked(now) is not None),
            "in_flight": self.busy(),
            "headroom": self.keys.headroom(now),
        }

    def _observe(self, key: int, reading: QuotaReading) -> None:
        if 0 <= key < len(self.keys.keys):
            self.keys.keys[key].observe(self._clock(), reading)

    # -- in flight -------------------------------------------------------------------------

    def started(self, key: int, request: Request) -> None:
        """An attempt on ``key`` is about to be sent."""
        with self._inflight_lock:
            self._inflight += 1
        quota = self.keys.keys[key]
        if not self._limited and quota.requests_left is None and quota.tokens_left is None:
            return  # nothing counts this request: no limit declared, no header seen
        tokens = self._cost(request)
        if not tokens and quota.tokens_left is not None:
            tokens = request.estimated_input_tokens() + (request.max_tokens or 0)
        self.keys.sent(key, self._clock(), tokens)

    def ended(self) -> None:
        with self._inflight_lock:
            self._inflight -= 1

    @property
    def inflight(self) -> int:
        """This process's attempts in flight here."""
        return self._inflight

    # -- what pool strategies read ---------------------------------------------------------

    def busy(self) -> int:
        return self._inflight + self.fleet_inflight

    def recent_latency(self) -> float | None:
        return self.health.recent_latency

    def headroom(self) -> float:
        return self.keys.headroom(self._clock())

    @property
    def built(self) -> bool:
        return self._adapter is not None

    def capability_gap(self, request: Request) -> str | None:
        caps = self.adapter.capabilities
        return caps.missing_for(request)

    def can_prefill(self) -> bool:
        return self.adapter.capabilities.prefill

    def prepare(self) -> list[str]:
        """Build the adapter, its SDK clients and its pool now, so no request pays for
        them (an SDK import can take a second); the unset ``${VAR}`` keys otherwise."""
        adapter = self.adapter
        missing = adapter.missing_credentials()
        if missing:
            return missing
        adapter.sync_client()
        adapter.async_client()
        adapter.transport.warm()
        adapter.prime()
        return []


@dataclass
class Route:
    name: str
    config: RouteConfig
    #: Every provider of the chain, pool members included, in config order.
    chain: tuple[Provider, ...]
    fallback: Callable[..., Any] | None
    actions: Mapping[str, str]
    on_replay: Callable[..., Any] | None = None
    hedged: int = 0
    requests: int = 0
    #: The chain's elements: a provider, or a `Pool` of them (empty: no pools).
    elements: tuple[Provider | Pool, ...] = ()
    #: The providers that are members of a pool of two or more.
    pooled: frozenset[str] = frozenset()

    def order(self) -> Iterable[Provider]:
        """The providers one request tries, in order: each pool as its strategy says."""
        if not self.elements:
            return self.chain
        return self._ordered()

    def _ordered(self) -> Iterator[Provider]:
        for element in self.elements:
            if isinstance(element, Pool):
                yield from element.order()  # type: ignore[misc]
            else:
                yield element


@dataclass
class State:
    """One config's live state. Requests count themselves in and out, so providers a
    reload retired are closed once the last request that uses them has finished."""

    config: Config
    providers: dict[str, Provider]
    routes: dict[str, Route]
    deferred: DeferredStore
    inflight: int = 0
    #: Set by a reload: the providers to close when ``inflight`` reaches zero.
    retiring: tuple[Provider, ...] | None = None
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

    def retire(self, providers: Sequence[Provider]) -> None:
        """This state was replaced: close ``providers`` now, or when its requests end."""
        with self.lock:
            if self.inflight:
                self.retiring = tuple(providers)
                return
            self.retiring = ()
        _close_providers(providers)


def _close_providers(providers: Sequence[Provider]) -> None:
    for provider in providers:
        if provider.built:
            provider.adapter.close()


def _provider_state_key(config: Config, name: str) -> Any:
    """Everything that, if changed, makes a provider new (its health starts over): its
    settings, and the credentials they resolve to, so a key rotated in the environment
    or in its ``api_key_file`` is picked up by a reload with the same file."""
    return (
        config.providers[name],
        config.breaker_for(name),
        config.timeouts_for(name),
        config.providers[name].retry or config.defaults.retry,
        credentials_fingerprint(config, name),
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _resolved_or_empty(raw: str, where: str) -> str:
    try:
        return resolve_env(raw, where)
    except ConfigError:
        return ""


def credentials_fingerprint(config: Config, name: str) -> str:
    """A digest of the credential values provider ``name`` resolves to right now (env
    references expanded, the key file read; a missing one counts as missing). Only the
    digest is kept: no key value is held by the state."""
    provider = config.providers[name]
    digest = hashlib.sha256()
    values = [ref.get_secret_value() for ref in provider.key_refs()]
    values += [f"{header}={value}" for header, value in sorted(provider.headers.items())]
    for raw in values:
        try:
            digest.update(resolve_env(raw, name).encode() + b"\0")
        except ConfigError:
            digest.update(b"<missing>\0")
    key_file = config.key_file_for(name)
    if key_file is not None:
        try:
            digest.update(key_file.read_bytes().strip())
        except OSError:
            digest.update(b"<unreadable>")
    return digest.hexdigest()


def build_state(config: Config, clock: Clock, previous: State | None,
                 store_path: Path | None = None) -> State:
    old = previous.providers if previous else {}
    providers: dict[str, Provider] = {}
    for name, pconf in config.providers.items():
        key = _provider_state_key(config, name)
        kept = old.get(name)
        if kept is not None and kept.state_key == key:
            providers[name] = kept
            continue
        retry = pconf.retry or config.defaults.retry
        pconf = config.provider_with_paths(name)  # files where the config file says
        for value in pconf.secret_values():
            register(value)
        providers[name] = Provider(
            name, pconf, config.timeouts_for(name), key,
            breaker=Breaker(name, config.breaker_for(name), clock, forced=pconf.force),
            health=HealthTracker(config.breaker_for(name).window, clock),
            budget=RetryBudget(retry.budget, retry.min_retries_per_10s, clock),
            retry=retry, clock=clock,
        )
    problems: list[str] = []
    routes: dict[str, Route] = {}
    for rname, rconf in config.routes.items():
        callables = {}
        for key in ("python", "on_replay"):
            ref = getattr(rconf.fallback, key)
            try:
                callables[key] = load_callable(ref, f"routes.{rname}.fallback.{key}") if ref \
                    else None
            except ConfigError as exc:
                problems.extend(exc.problems)
        routes[rname] = Route(
            name=rname, config=rconf, chain=tuple(providers[p] for p in rconf.providers),
            fallback=callables.get("python"), actions=dict(rconf.actions),
            on_replay=callables.get("on_replay"), elements=_elements(rconf, providers),
            pooled=frozenset(m.provider for e in rconf.chain if not isinstance(e, str)
                             and len(e.pool) > 1 for m in e.members),
        )
    if problems:
        raise ConfigError(problems)
    store = config.deferred
    mirror = config.backup_path() if store.backup and store.backup.every == 0 else None
    return State(config, providers, routes, DeferredStore(
        store_path or config.deferred_path(), lock_timeout=store.lock_timeout,
        keep_answers=store.keep_answers, replay_lease=store.replay_lease, mirror=mirror))


def _elements(route: RouteConfig, providers: Mapping[str, Provider]
              ) -> tuple[Provider | Pool, ...]:
    """The chain as a route orders it; empty when it has no pool (the fast path)."""
    if all(isinstance(e, str) for e in route.chain):
        return ()
    return tuple(
        providers[e] if isinstance(e, str) else Pool(
            [providers[m.provider] for m in e.members], e.strategy,
            [m.weight for m in e.members])
        for e in route.chain
    )


def prepare(providers: Sequence[Provider], stop: threading.Event) -> None:
    """Make ``providers`` ready, in order, until ``stop`` is set (a background thread's
    work: a failover must not pay for building its backup)."""
    for provider in providers:
        if stop.is_set():
            return
        try:
            provider.prepare()
        except Exception:  # the request that needs it will raise it, with context
            logger.debug("preparing provider %s failed", provider.name, exc_info=True)


def chained(state: State) -> list[Provider]:
    """The providers some route's chain uses, each once, primaries first."""
    seen: dict[int, Provider] = {}
    depth = max((len(r.chain) for r in state.routes.values()), default=0)
    for index in range(depth):
        for route in state.routes.values():
            if index < len(route.chain):
                seen.setdefault(id(route.chain[index]), route.chain[index])
    return list(seen.values())
