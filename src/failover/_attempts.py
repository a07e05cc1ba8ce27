"""The attempt machine: every decision of one request, and nothing else.

`Attempts` is an explicit state object. A driver asks it for the first action, performs
that action (call an adapter, sleep, race a hedge, run the fallback, write the store) and
reports the outcome, which returns the next action::

    Try(provider, permit, request, timeout)   -> succeeded(try, response) | failed(try, err)
    Wait(delay)                               -> waited(wait)      (cancelled(wait) if cut)
    HedgeWait(delay)     (hedged requests)    -> hedge_due() | succeeded / failed
    RunFallback(failure)                      -> fallback_answered(result) | fallback_failed(...)
    Defer(failure)                            -> stored(defer, ticket or StoreError)
    Done(response) | Fail(error)              the end

It never awaits, sleeps or sends: the same object serves `complete`, `acomplete`,
`stream`, `astream`, hedged requests and replay, so each makes the same choices. Breaker
transitions and events are not published from here: they collect in `outbox`, and the
driver hands them to the router after each step (`Router` emits them, once).

Why a state object and not a generator driven by ``send()``: a hedged request has several
attempts in flight, and their outcomes arrive in any order; methods named after what
happened keep each report explicit, and an abandoned attempt (a hedge loser, a cancelled
request) is one more method instead of a ``throw()`` into a suspended generator.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from ._config import RetryConfig
from ._errors import (
    AllProvidersFailed,
    AuthenticationFailed,
    ContextWindowExceeded,
    DeadlineExceeded,
    DeferFailed,
    Deferred,
    FailoverError,
    PermissionDenied,
    ProviderError,
    RateLimited,
    StreamInterrupted,
    Timeout,
)
from ._models import Attempt, Request, Response, Restart, StreamEvent, events_of
from ._policy import action_for, decide
from ._structured import parse_answer

if TYPE_CHECKING:
    from ._breaker import Breaker, Permit, Transition
    from ._config import Config, RouteConfig, TimeoutsConfig
    from ._events import EventType
    from ._health import HealthTracker
    from ._limits import KeyPool
    from ._policy import Decision, RetryBudget
    from ._types import Clock

__all__ = [
    "Action",
    "Attempts",
    "Defer",
    "Done",
    "Fail",
    "HedgeWait",
    "Note",
    "RunFallback",
    "Try",
    "Wait",
]

#: Timers fire up to a clock tick early, and an attempt with a couple of milliseconds left
#: cannot succeed anyway: that close to the deadline counts as past it.
_DEADLINE_SLACK_S = 0.002


class Candidate(Protocol):
    """What the machine needs of a provider (`failover._state.Provider` is one)."""

    name: str
    model: str
    timeouts: TimeoutsConfig
    breaker: Breaker
    health: HealthTracker
    budget: RetryBudget
    context_window: int | None
    keys: KeyPool
    retry: RetryConfig
    slow_call: float | None

    def capability_gap(self, request: Request) -> str | None: ...

    def can_prefill(self) -> bool: ...

    def pick_key(self, now: float, request: Request) -> int | None: ...

    def key_blocked_until(self, now: float) -> float: ...

    def other_key_usable(self, key: int, now: float) -> bool: ...

    def started(self, key: int, request: Request) -> None: ...

    def ended(self) -> None: ...


class Chain(Protocol):
    """What the machine needs of a route (`failover._state.Route` is one)."""

    name: str
    config: RouteConfig
    chain: tuple[Any, ...]
    fallback: Callable[..., Any] | None
    actions: Mapping[str, str]
    hedged: int
    requests: int
    #: Members of pools: a failure moves on to the next member, never waits to retry.
    pooled: frozenset[str]

    def order(self) -> Iterable[Any]: ...


# -- actions ---------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class Try:
    """Send ``request`` to ``provider``. ``timeout`` is the caller's per-attempt timeout cut
    to what is left of the deadline (what the adapter gets); ``limit`` adds the provider's
    own request timeout: the bound on the whole attempt."""

    provider: Candidate
    permit: Permit
    request: Request
    timeout: float | None
    limit: float | None
    started: float
    tries: int
    #: Sent before the attempt's first delta: the stream starts over.
    restart: Restart | None = None
    #: A delta of this attempt reached the caller.
    delivered: bool = False
    #: Seconds from the attempt's start to its first delta (streams).
    first_token: float | None = None
    #: The index of the provider's key the attempt sends with.
    key: int = 0
    #: Counted out of the provider's in-flight requests.
    ended: bool = False


@dataclass(frozen=True, slots=True)
class Wait:
    """Sleep ``delay``, then `Attempts.waited`. ``permit`` was taken before the wait (a
    429's cool-down takes it after), and goes back if the wait is cancelled."""

    delay: float
    provider: Candidate
    permit: Permit | None
    tries: int


@dataclass(frozen=True, slots=True)
class HedgeWait:
    """Wait for a running attempt up to ``delay`` (None: until one ends), then
    `Attempts.hedge_due` if none has."""

    delay: float | None


@dataclass(frozen=True, slots=True)
class RunFallback:
    failure: AllProvidersFailed | DeadlineExceeded
    fallback: Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Defer:
    failure: FailoverError
    cause: BaseException | None = None


@dataclass(frozen=True, slots=True)
class Done:
    response: Response
    #: The manual fallback answered (a stream replays it as events).
    fell_back: bool = False


@dataclass(frozen=True, slots=True)
class Fail:
    error: BaseException
    cause: BaseException | None = None


Action = Try | Wait | HedgeWait | RunFallback | Defer | Done | Fail


@dataclass(frozen=True, slots=True)
class Note:
    """An event for the router to emit."""

    type: EventType
    provider: str | None
    detail: str
    #: Structured fields for machines (``error_kind``, ``status``, ...): the event's data.
    data: Mapping[str, Any] = field(default_factory=dict)


# -- streams ---------------------------------------------------------------------------------


@dataclass
class StreamRecovery:
    """How a stream recovers after it has shown text (the route's ``stream_interrupt``)."""

    policy: str
    #: Deltas reached the caller since the last `Restart`.
    shown: bool = False
    #: Text kept for ``continue``: the next provider continues it.
    prefix: str = ""
    restart_reason: str | None = None

    @property
    def anything_shown(self) -> bool:
        return self.shown or bool(self.prefix)

    def request_for(self, provider: Candidate, request: Request) -> tuple[Request, Restart | None]:
        """The request for the next attempt, and the `Restart` to send before it."""
        if self.prefix and not provider.can_prefill():
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

    def broke(self, provider: str, err: ProviderError) -> StreamInterrupted | None:
        """The stream failed after a delta: the error to raise, or None once ``continue``
        or ``restart`` is set up for the next provider."""
        partial = err.partial_text
        if self.policy == "raise":
            return StreamInterrupted(
                f"stream from {provider} broke: {err.message}",
                partial_text=self.prefix + partial, provider=provider, status=err.status,
                code=None if isinstance(err, StreamInterrupted) else err.kind)
        if self.policy == "continue" and partial:
            self.prefix += partial
        else:
            self.prefix = ""
            self.restart_reason = f"{provider} failed mid-stream: {err.kind}"
        return None

    def replay(self, response: Response) -> Iterator[StreamEvent]:
        """The fallback's answer as stream events (after a `Restart` if text was shown)."""
        if self.anything_shown:
            yield Restart(response.provider, "all providers failed; manual fallback answered")
        yield from events_of(response)


# -- the machine -----------------------------------------------------------------------------


@dataclass(eq=False)
class Attempts:
    """The decisions and the record of one request; see the module docstring."""

    config: Config
    route: Chain
    request: Request
    clock: Clock
    started: float
    deadline_s: float | None = None
    #: The caller's per-attempt ``timeout``.
    timeout: float | None = None
    stream: bool = False
    #: Race providers (the route's ``hedge``); replay and streams never hedge.
    hedged: bool = False
    #: Run the route's fallback (or defer) when every provider failed; replay does not.
    fall_back: bool = True
    #: Where deferred requests go (for messages only).
    store_path: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    errors: list[ProviderError] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    outbox: list[Transition | Note] = field(default_factory=list)
    fell_back: bool = False
    recovery: StreamRecovery | None = None
    deadline_at: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.deadline_s is not None:
            self.deadline_at = self.started + self.deadline_s
        if self.stream:
            self.recovery = StreamRecovery(self.route.config.stream_interrupt)
        self._chain = iter(self.route.order())
        self._chain_done = False
        self._window_floor: int | None = None
        self._last_failed: str | None = None
        #: An attempt timed out at the deadline's bound: the deadline is what ran out.
        self._deadline_hit = False
        self._running: list[Try] = []
        self._hedge_launched: float | None = None

    # -- the start and the end ----------------------------------------------------------

    def start(self) -> Action:
        return self._next()

    def _next(self) -> Action:
        """The next provider of the chain that may be tried, or the end."""
        if self._expired():
            return self._end()
        candidate = self._candidate()
        if candidate is None:
            return self._end()
        return self._launch(*candidate)

    def _launch(self, provider: Candidate, permit: Permit, key: int) -> Try:
        if self._last_failed is not None:
            self.outbox.append(Note("failover", provider.name,
                                    f"{self._last_failed} -> {provider.name}",
                                    {"from_provider": self._last_failed}))
            self._last_failed = None
        # Once per request and provider, whatever the entry point: the budget's base.
        provider.budget.on_request()
        return self._try(provider, permit, 1, key)

    def _end(self) -> Action:
        failure = self._failure()
        if not self.fall_back:
            return Fail(failure)
        self.outbox.append(Note("all_providers_failed", None, str(failure).splitlines()[0]
                                + f" ({len(self.attempts)} attempts)",
                                {"error_kind": type(failure).__name__,
                                 "attempts": len(self.attempts)}))
        if self.route.fallback is not None:
            return RunFallback(failure, self.route.fallback)
        return self._defer(failure, None)

    def _defer(self, failure: FailoverError, cause: BaseException | None) -> Action:
        if self.route.config.fallback.defer:
            return Defer(failure, cause)
        return Fail(failure, cause)

    def _failure(self) -> AllProvidersFailed | DeadlineExceeded:
        if self._expired():
            return DeadlineExceeded(self.route.name, self.deadline_s or 0.0, self.attempts)
        return AllProvidersFailed(self.route.name, self.attempts, errors=self.errors,
                                  skipped=self.skipped)

    # -- choosing a provider --------------------------------------------------------------

    def _candidate(self) -> tuple[Candidate, Permit, int] | None:
        """The next provider in chain order with a usable key and a breaker permit;
        skips cost ~µs."""
        for provider in self._chain:
            key = provider.pick_key(self.clock(), self.request)
            why = self._too_small(provider) or self._no_key(provider, key)
            if why is None:
                assert key is not None
                permit = provider.breaker.allow()
                if permit is None:
                    why = f"breaker {provider.breaker.state}"
                else:
                    if permit.probe:
                        self.outbox.extend(provider.breaker.take_transitions())
                    why = self._gap(provider, permit)
                    if why is None:
                        return provider, permit, key
            self.skipped[provider.name] = why
        self._chain_done = True
        return None

    def _too_small(self, provider: Candidate) -> str | None:
        floor = self._window_floor
        window = provider.context_window
        if floor is None or window is None or window > floor:
            return None
        return f"context window {window} is not larger than {floor}"

    def _no_key(self, provider: Candidate, key: int | None) -> str | None:
        """Why no key of ``provider`` may be used now (retired, cooling, out of quota)."""
        if key is not None:
            return None
        now = self.clock()
        until = provider.key_blocked_until(now)
        if until == float("inf"):
            return "every key retired"
        return f"no rate-limit headroom for {until - now:.3g}s"

    def _gap(self, provider: Candidate, permit: Permit) -> str | None:
        try:
            gap = provider.capability_gap(self.request)
        except BaseException:  # it could not be built (a bad config value): not tried
            provider.breaker.release(permit)
            raise
        if gap is not None:
            provider.breaker.release(permit)
        return gap

    def _try(self, provider: Candidate, permit: Permit, tries: int, key: int) -> Try:
        request, restart = self.request, None
        if self.recovery is not None:
            request, restart = self.recovery.request_for(provider, request)
        timeout = self._attempt_timeout()
        own = provider.timeouts.request
        attempt = Try(provider, permit, request, timeout,
                      own if timeout is None else min(timeout, own), self.clock(), tries,
                      restart, key=key)
        provider.started(key, request)
        if self.hedged:
            self._running.append(attempt)
        return attempt

    # -- outcomes ----------------------------------------------------------------------------

    def succeeded(self, attempt: Try, response: Response) -> Done:
        self._settle(attempt)
        now = self.clock()
        latency = now - attempt.started
        provider = attempt.provider
        transitions = provider.breaker.on_success(attempt.permit, slow=self._slow(attempt, latency))
        if transitions:
            self.outbox.extend(transitions)
        provider.keys.keys[attempt.key].answered()
        provider.health.record(True, latency)
        self.attempts.append(Attempt(provider.name, response.model or provider.model, "ok",
                                     latency_s=latency,
                                     started_s=attempt.started - self.started,
                                     first_token_s=attempt.first_token))
        if self.recovery is not None:
            response = self.recovery.completed(response)
        response.provider = provider.name
        response.attempts = self.attempts
        response.latency_s = now - self.started
        return Done(response)

    def _slow(self, attempt: Try, latency: float) -> bool:
        """Whether the answer was slower than the provider's ``slow_call`` (for a stream:
        its first token came later)."""
        bound = attempt.provider.slow_call
        if bound is None:
            return False
        taken = attempt.first_token if self.stream and attempt.first_token is not None \
            else latency
        return taken > bound

    def shown(self, attempt: Try) -> None:
        """A delta of ``attempt`` reached the caller."""
        if attempt.delivered:
            return
        attempt.delivered = True
        attempt.first_token = self.clock() - attempt.started
        if self.recovery is not None:
            self.recovery.shown = True

    def failed(self, attempt: Try, err: ProviderError) -> Action:
        self._settle(attempt)
        key_only = self._account(attempt, err)
        provider = attempt.provider
        if key_only and not attempt.delivered and not self._expired():
            # The key failed, not the provider: the same request goes at once to the
            # provider's next key (no backoff, no retry spent, no breaker failure).
            key, permit = provider.pick_key(self.clock(), self.request), provider.breaker.allow()
            if key is not None and permit is not None:
                return self._try(provider, permit, attempt.tries, key)
            if permit is not None:
                provider.breaker.release(permit)
        if self.hedged:
            # The next provider is the retry: never the same one again.
            if action_for(err, self.route.actions) == "raise":
                return self._raise(err)
            self._last_failed = provider.name
            return self.waiting() if self._running else self._next()
        decision = self._decide(attempt, err)
        if decision.action == "raise":
            return self._raise(err)
        if attempt.delivered and self.recovery is not None:
            # After a delta, recovery moves on to the next provider (or raises).
            broken = self.recovery.broke(provider.name, err)
            if broken is not None:
                return self._raise(broken)
        elif decision.action == "retry" and not self._expired():
            return self._retry(attempt, err, decision)
        self._last_failed = provider.name
        return self._next()

    def _account(self, attempt: Try, err: ProviderError) -> bool:
        """Record a failed attempt: key, breaker, health, the attempt list, an event.
        True when only the attempt's key failed and another key may serve."""
        provider = attempt.provider
        latency = self.clock() - attempt.started
        err.provider = err.provider or provider.name
        if not err.sent:
            # Refused before sending: the provider never heard of it, nor do its breaker
            # and health.
            provider.breaker.release(attempt.permit)
            self._record(attempt, err, latency)
            return False
        if isinstance(err, Timeout) and self._cut_by_deadline(attempt):
            self._deadline_hit = True
        self.outbox.append(Note("attempt_failed", provider.name, f"{err.kind}" + (
            f" HTTP {err.status}" if err.status else "") + f": {err.message[:200]}",
            {"error_kind": err.kind, "status": err.status}))
        key_only = self._key_failed(attempt, err)
        if not key_only:
            self.outbox.extend(self._report(attempt, err))
        provider.health.record(False, latency, err)
        self._record(attempt, err, latency)
        if isinstance(err, ContextWindowExceeded):
            known = provider.context_window
            floor = known if known is not None else self.request.estimated_input_tokens()
            self._window_floor = max(self._window_floor or 0, floor)
        return key_only

    def _record(self, attempt: Try, err: ProviderError, latency: float) -> None:
        provider = attempt.provider
        self.attempts.append(Attempt(
            provider.name, provider.model, "error", error_kind=err.kind,
            http_status=err.status, latency_s=latency, detail=err.message[:200],
            started_s=attempt.started - self.started, first_token_s=attempt.first_token,
        ))
        self.errors.append(err)

    def _key_failed(self, attempt: Try, err: ProviderError) -> bool:
        """A revoked key (401/403) is retired and a 429 cools its key; when another key
        of the provider may serve, the breaker is left alone (True)."""
        provider, key, now = attempt.provider, attempt.key, self.clock()
        revoked = isinstance(err, (AuthenticationFailed, PermissionDenied)) and (
            err.code != "missing_credential")
        if isinstance(err, RateLimited):
            provider.keys.keys[key].rate_limited(now, err.retry_after, provider.retry)
        elif not revoked:
            return False
        if not provider.other_key_usable(key, now):
            return False
        if revoked and provider.keys.retire(key, err.kind):
            self.outbox.append(Note(
                "key_retired", provider.name,
                f"key {key} retired: {err.kind}" + (f" HTTP {err.status}" if err.status else "")
                + "; the provider's other keys serve", {"key": key, "error_kind": err.kind,
                                                        "status": err.status}))
        provider.breaker.release(attempt.permit)
        return True

    def _report(self, attempt: Try, err: ProviderError) -> list[Transition]:
        """A failed attempt's breaker outcome. A 429 is no failure: it cools the
        provider until one of its keys may be used again."""
        breaker, permit = attempt.provider.breaker, attempt.permit
        if isinstance(err, RateLimited):
            now = self.clock()
            return breaker.on_rate_limited(
                permit, attempt.provider.key_blocked_until(now) - now)
        if err.breaker_failure:
            return breaker.on_failure(permit, long_open=err.long_open)
        # A 400, a filter or a long prompt: the provider answered, so it is alive.
        return breaker.on_success(permit)

    def _decide(self, attempt: Try, err: ProviderError) -> Decision:
        provider = attempt.provider
        retry = self.config.retry_for(self.route.name, provider.name)
        if provider.name in self.route.pooled:
            # Its pool's next member is the retry: the same model, no backoff to pay.
            retry = _one_try(retry)
        return decide(
            err, attempt=attempt.tries, retry=retry,
            overrides=self.route.actions, remaining=self._remaining(), budget=provider.budget,
        )

    def _raise(self, err: ProviderError) -> Fail:
        """End with ``err`` itself (an action of ``raise``), every attempt in it."""
        err.attempts = self.attempts
        return Fail(err)

    def _retry(self, attempt: Try, err: ProviderError, decision: Decision) -> Action:
        """Wait out the backoff, then try the same provider again.

        A 429's cool-down ends exactly when its Retry-After does, so that wait comes
        before asking the breaker; any other retry asks first, so a breaker that just
        opened sends the request on without paying the backoff.
        """
        provider = attempt.provider
        if isinstance(err, RateLimited):
            return Wait(decision.delay, provider, None, attempt.tries + 1)
        permit = provider.breaker.allow()
        if permit is None:
            self._last_failed = provider.name
            return self._next()
        return Wait(decision.delay, provider, permit, attempt.tries + 1)

    def waited(self, wait: Wait) -> Action:
        provider, permit = wait.provider, wait.permit
        key = provider.pick_key(self.clock(), self.request)
        if key is None:
            if permit is not None:
                provider.breaker.release(permit)
            self._last_failed = provider.name
            return self._next()
        if permit is None:
            permit = provider.breaker.allow()
            if permit is None:
                self._last_failed = provider.name
                return self._next()
        if self._expired():
            self._cancel(provider, permit, self.clock())
            return self._end()
        return self._try(provider, permit, wait.tries, key)

    def cancelled(self, action: Try | Wait) -> None:
        """The request was cancelled (or the caller stopped reading) during ``action``:
        its permit goes back, so a half-open provider can be probed again at once."""
        if isinstance(action, Wait):
            if action.permit is not None:
                action.provider.breaker.release(action.permit)
            return
        self._settle(action)
        self._cancel(action.provider, action.permit, action.started)

    def _cancel(self, provider: Candidate, permit: Permit, started: float) -> None:
        provider.breaker.release(permit)
        self.attempts.append(Attempt(provider.name, provider.model, "cancelled",
                                     latency_s=self.clock() - started,
                                     started_s=started - self.started))

    # -- hedging -----------------------------------------------------------------------------

    def waiting(self) -> HedgeWait:
        """How long to wait for the running attempts before starting the next provider."""
        hedge = self.route.config.hedge
        if hedge is None or self._chain_done or len(self._running) > hedge.max_extra:
            return HedgeWait(None)
        return HedgeWait(self._hedge_delay(self._running[0].provider))

    def _hedge_delay(self, provider: Candidate) -> float | None:
        hedge = self.route.config.hedge
        assert hedge is not None
        route = self.route
        if route.hedged >= max(1.0, hedge.max_ratio * route.requests):
            return None
        if hedge.after == "p95":
            p95 = provider.health.percentile(0.95)
            if p95 is None:
                return None
            return max(p95, hedge.min_delay)
        return max(float(hedge.after), hedge.min_delay)

    def hedge_due(self) -> Action:
        """The running attempts were silent for the hedge delay: start the next provider."""
        self.route.hedged += 1
        self._hedge_launched = self.clock()
        candidate = self._candidate()
        if candidate is None:
            # Nothing left to start: wait for what runs (the end comes when it fails).
            return HedgeWait(None)
        return self._launch(*candidate)

    def abandoned(self, attempt: Try, *, won: bool) -> None:
        """A hedged attempt still running when the race ended (``won``: by an answer).

        One that a hedge was started against, still silent when another provider
        answered, was outrun: a breaker failure (not in health's latency), or a hung
        provider behind a hedge would be asked forever, every request paying for it. One
        started as the hedge, or cut by an error or a cancellation, was cancelled.
        """
        self._settle(attempt)
        provider, permit = attempt.provider, attempt.permit
        launched = self._hedge_launched
        if not won or launched is None or attempt.started >= launched:
            self._cancel(provider, permit, attempt.started)
            return
        transitions = provider.breaker.on_failure(permit)
        self.attempts.append(Attempt(provider.name, provider.model, "cancelled",
                                     error_kind="Timeout",
                                     latency_s=self.clock() - attempt.started,
                                     detail="no answer before another provider's",
                                     started_s=attempt.started - self.started))
        self.outbox.extend(transitions)

    def _settle(self, attempt: Try) -> None:
        if not attempt.ended:
            attempt.ended = True
            attempt.provider.ended()
        if self.hedged and attempt in self._running:
            self._running.remove(attempt)

    # -- the manual fallback and the store ---------------------------------------------------

    def fallback_answered(self, result: Any) -> Done:
        """What the route's fallback returned; a `TypeError` if it is not an answer, an
        `InvalidResponse` if it does not match the request's ``response_format`` (then
        the route goes on as if the fallback had failed: defer, or raise)."""
        if isinstance(result, Response):
            response = result
        elif isinstance(result, str):
            response = Response(text=result, finish_reason="stop", provider="fallback",
                                model="manual")
        else:
            raise TypeError(
                f"routes.{self.route.name}.fallback.python returned {type(result).__name__}; "
                "it must return a str or a failover.Response"
            )
        response.provider = response.provider or "fallback"
        parse_answer(self.request.response_format, response)
        response.attempts = self.attempts
        response.latency_s = self.clock() - self.started
        self.fell_back = True
        return Done(response, fell_back=True)

    def fallback_failed(self, run: RunFallback, exc: Exception) -> Action:
        return self._defer(run.failure, exc)

    def stored(self, defer: Defer, ticket: str | Exception) -> Fail:
        """The store kept the request under ``ticket``, or refused it."""
        where = self.store_path
        if isinstance(ticket, Exception):
            self.outbox.append(Note("defer_failed", None, str(ticket)))
            return Fail(DeferFailed(self.route.name, where, str(ticket), self.attempts),
                        defer.failure)
        self.outbox.append(Note("deferred", None, f"ticket {ticket} in {where}",
                                {"ticket": ticket}))
        return Fail(Deferred(ticket, self.route.name, where, self.attempts), defer.failure)

    # -- time ------------------------------------------------------------------------------

    def _remaining(self) -> float | None:
        if self.deadline_at is None:
            return None
        return self.deadline_at - self.clock()

    def _expired(self) -> bool:
        # So is a request whose last attempt was cut by the deadline (its timeout is
        # rounded down a little): the error kind must not depend on how loaded we are.
        return self._deadline_hit or (
            self.deadline_at is not None
            and self.clock() >= self.deadline_at - _DEADLINE_SLACK_S)

    def _attempt_timeout(self) -> float | None:
        """The caller's per-attempt ``timeout``, cut to what is left of the deadline."""
        remaining = self._remaining()
        if remaining is None:
            return self.timeout
        left = max(remaining, 0.001)
        return left if self.timeout is None else min(self.timeout, left)

    def _cut_by_deadline(self, attempt: Try) -> bool:
        """A timed-out attempt whose bound was what was left of the deadline, and that ran
        into it (less the rounding `ProviderAdapter.http_timeout` applies)."""
        if self.deadline_at is None:
            return False
        left = self.deadline_at - attempt.started
        timeouts = attempt.provider.timeouts
        own = timeouts.first_token if self.stream else timeouts.request
        if self.timeout is not None:
            own = min(own, self.timeout)
        rounding = 0.1 if left >= 1.0 else 0.001
        return left <= own and (
            self.clock() >= self.deadline_at - rounding - _DEADLINE_SLACK_S)


@functools.lru_cache(maxsize=64)
def _one_try(retry: RetryConfig) -> RetryConfig:
    return retry.model_copy(update={"attempts": 1})
