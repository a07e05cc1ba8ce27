"""The thin drivers: they perform what the attempt machine asks, and decide nothing.

One sync and one async driver each for a completion (hedged or not, replay included) and
for a stream. Every driver is the same loop: take an action from `Attempts`, perform it
(call the adapter with its bound, sleep, race a hedge, run the fallback, write the
store), report the outcome, hand the machine's events to the router. Whatever interrupts
a step (a cancellation, the caller closing a stream, Ctrl-C) is reported as
`Attempts.cancelled`, so every breaker permit goes back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import inspect
import logging
import sys
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
)
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from ._attempts import Action, Attempts, Defer, Done, Fail, HedgeWait, RunFallback, Try, Wait
from ._errors import FailoverError, ProviderError, StreamInterrupted, Timeout
from ._models import Completed, Request, Response, StreamEvent

if TYPE_CHECKING:
    from ._state import Provider

__all__ = ["Runtime", "acomplete", "astream", "complete", "stream"]

logger = logging.getLogger("failover")


@dataclass(frozen=True, slots=True)
class Runtime:
    """What the drivers need of the router."""

    #: Emit the machine's collected transitions and events.
    publish: Callable[[Attempts], None]
    sleep: Callable[[float], None]
    asleep: Callable[[float], Awaitable[Any]]
    #: Write a request to the deferred store: its ticket, or why the store refused it.
    store: Callable[[Request, FailoverError], str | Exception]
    hedge_pool: Callable[[], concurrent.futures.ThreadPoolExecutor]


def _adapter(attempt: Try) -> Any:
    provider: Provider = attempt.provider  # type: ignore[assignment]
    return provider.adapter


def _throw(action: Action) -> NoReturn:
    assert isinstance(action, Fail), action
    if action.cause is not None:
        raise action.error from action.cause
    raise action.error


# -- sync ------------------------------------------------------------------------------------


def complete(rt: Runtime, m: Attempts) -> Response:
    action = m.start()
    if m.hedged:
        action = _race(rt, m, action)
    while True:
        if m.outbox:
            rt.publish(m)
        if isinstance(action, Try):
            action = _call(m, action)
        elif isinstance(action, Done):
            return action.response
        else:
            action = _step(rt, m, action)


def _call(m: Attempts, attempt: Try) -> Action:
    try:
        response = _adapter(attempt).complete(attempt.request, timeout=attempt.timeout,
                                                  key=attempt.key)
    except ProviderError as exc:
        err = exc
    except BaseException:
        m.cancelled(attempt)
        raise
    else:
        return m.succeeded(attempt, response)
    return m.failed(attempt, err)


def _step(rt: Runtime, m: Attempts, action: Action) -> Action:
    """Any action but an attempt: a backoff, the fallback, the store, the end."""
    if isinstance(action, Wait):
        try:
            rt.sleep(action.delay)
        except BaseException:
            m.cancelled(action)
            raise
        return m.waited(action)
    if isinstance(action, RunFallback):
        try:
            result = action.fallback(m.request, action.failure)
            if inspect.isawaitable(result):
                result = _run_awaitable(result)
            return m.fallback_answered(result)
        except Exception as exc:
            logger.exception("fallback of route %s failed", m.route.name)
            return m.fallback_failed(action, exc)
    if isinstance(action, Defer):
        return m.stored(action, rt.store(m.request, action.failure))
    _throw(action)


def _race(rt: Runtime, m: Attempts, action: Action) -> Action:
    """Hedged attempts on threads until one wins or all fail. A losing attempt cannot be
    interrupted: it runs out on its thread, cut by its own bound, its answer dropped."""
    pool = rt.hedge_pool()
    running: dict[concurrent.futures.Future[Response], Try] = {}
    try:
        while True:
            if m.outbox:
                rt.publish(m)
            if isinstance(action, Try):
                # Each attempt runs in a copy of the caller's context (the test kit's seam).
                run = contextvars.copy_context().run
                future = pool.submit(run, _adapter(action).complete, action.request,
                                     timeout=action.timeout, key=action.key)
                running[future] = action
                action = m.waiting()
            elif isinstance(action, HedgeWait):
                done, _ = concurrent.futures.wait(
                    running, timeout=action.delay, return_when=concurrent.futures.FIRST_COMPLETED)
                action = _finished(m, running, done) if done else m.hedge_due()
            else:
                return action
    finally:
        won = isinstance(action, Done)
        for future, attempt in running.items():
            future.cancel()
            m.abandoned(attempt, won=won)
        if m.outbox:
            rt.publish(m)


def _finished(m: Attempts, running: dict[Any, Try], done: set[Any]) -> Action:
    """Report one finished hedged attempt (the others are seen on the next wait)."""
    future = done.pop()
    attempt = running.pop(future)
    err = future.exception()
    if err is None:
        return m.succeeded(attempt, future.result())
    if not isinstance(err, ProviderError):
        raise err
    return m.failed(attempt, err)


def stream(rt: Runtime, m: Attempts) -> Iterator[StreamEvent]:
    action = m.start()
    while True:
        if m.outbox:
            rt.publish(m)
        if isinstance(action, Try):
            action = yield from _stream_attempt(m, action)
        elif isinstance(action, Done):
            yield from _final(m, action)
            return
        else:
            action = _step(rt, m, action)


def _stream_attempt(m: Attempts, attempt: Try) -> Generator[StreamEvent, None, Action]:
    events = None
    err: ProviderError
    try:
        if attempt.restart is not None:
            yield attempt.restart
        events = _adapter(attempt).stream(attempt.request, timeout=attempt.timeout,
                                          key=attempt.key)
        for event in events:
            if isinstance(event, Completed):
                return m.succeeded(attempt, event.response)
            if not attempt.delivered:
                m.shown(attempt)
            yield event
        err = _unfinished(attempt)
    except ProviderError as exc:
        err = exc
    except BaseException:  # the consumer stopped reading early, or a cancellation
        m.cancelled(attempt)
        raise
    finally:
        if events is not None:
            events.close()
    return m.failed(attempt, err)


def _final(m: Attempts, done: Done) -> Iterator[StreamEvent]:
    if done.fell_back and m.recovery is not None:
        yield from m.recovery.replay(done.response)
    else:
        yield Completed(done.response)


def _unfinished(attempt: Try) -> StreamInterrupted:
    return StreamInterrupted("the stream ended without its final event",
                             provider=attempt.provider.name)


def _run_awaitable(awaitable: Any) -> Any:
    async def wrap() -> Any:
        return await awaitable

    return asyncio.run(wrap())


# -- async -----------------------------------------------------------------------------------


async def acomplete(rt: Runtime, m: Attempts) -> Response:
    action = m.start()
    if m.hedged:
        action = await _arace(rt, m, action)
    while True:
        if m.outbox:
            rt.publish(m)
        if isinstance(action, Try):
            action = await _acall(m, action)
        elif isinstance(action, Done):
            return action.response
        else:
            action = await _astep(rt, m, action)


async def _bounded(attempt: Try) -> Response:
    # The whole attempt, not each socket read: the provider's own request timeout, the
    # caller's, and what is left of the deadline, whichever is first.
    limit = attempt.limit
    try:
        async with _timeout(limit):
            response: Response = await _adapter(attempt).acomplete(
                attempt.request, timeout=limit, key=attempt.key)
            return response
    except (asyncio.TimeoutError, TimeoutError):
        raise Timeout(f"no answer within {limit:g}s", provider=attempt.provider.name) from None


def _timeout(seconds: float | None) -> Any:
    if seconds is None or sys.version_info < (3, 11):
        return contextlib.nullcontext()  # 3.10: the socket timeouts alone bound it
    return asyncio.timeout(seconds)


async def _acall(m: Attempts, attempt: Try) -> Action:
    try:
        response = await _bounded(attempt)
    except ProviderError as exc:
        err = exc
    except BaseException:
        m.cancelled(attempt)
        raise
    else:
        return m.succeeded(attempt, response)
    return m.failed(attempt, err)


async def _astep(rt: Runtime, m: Attempts, action: Action) -> Action:
    if isinstance(action, Wait):
        try:
            await rt.asleep(action.delay)
        except BaseException:  # cancelled in the backoff: the permit goes back
            m.cancelled(action)
            raise
        return m.waited(action)
    if isinstance(action, RunFallback):
        try:
            result = action.fallback(m.request, action.failure)
            if inspect.isawaitable(result):
                result = await result
            return m.fallback_answered(result)
        except Exception as exc:
            logger.exception("fallback of route %s failed", m.route.name)
            return m.fallback_failed(action, exc)
    if isinstance(action, Defer):
        # Off the event loop: another process may hold the store's lock for a while.
        ticket = await asyncio.to_thread(rt.store, m.request, action.failure)
        return m.stored(action, ticket)
    _throw(action)


async def _arace(rt: Runtime, m: Attempts, action: Action) -> Action:
    """Hedged attempts as tasks until one wins or all fail; the losers are cancelled."""
    running: dict[asyncio.Future[Response], Try] = {}
    try:
        while True:
            if m.outbox:
                rt.publish(m)
            if isinstance(action, Try):
                running[asyncio.ensure_future(_bounded(action))] = action
                action = m.waiting()
            elif isinstance(action, HedgeWait):
                done, _ = await asyncio.wait(
                    running, timeout=action.delay, return_when=asyncio.FIRST_COMPLETED)
                action = _finished(m, running, done) if done else m.hedge_due()
            else:
                return action
    finally:
        won = isinstance(action, Done)
        for task, attempt in running.items():
            task.cancel()
            m.abandoned(attempt, won=won)
        if m.outbox:
            rt.publish(m)


async def astream(rt: Runtime, m: Attempts) -> AsyncGenerator[StreamEvent, None]:
    action = m.start()
    while True:
        if m.outbox:
            rt.publish(m)
        if isinstance(action, Try):
            # An async generator cannot return a value: the next action comes back here.
            outcome: list[Action] = []
            # Closed at our yield: the attempt is closed too, returning its permit.
            async with contextlib.aclosing(_astream_attempt(m, action, outcome)) as attempt:
                async for event in attempt:
                    yield event
            action = outcome[0]
        elif isinstance(action, Done):
            for event in _final(m, action):
                yield event
            return
        else:
            action = await _astep(rt, m, action)


async def _astream_attempt(
    m: Attempts, attempt: Try, outcome: list[Action]
) -> AsyncGenerator[StreamEvent, None]:
    events = None
    err: ProviderError
    try:
        if attempt.restart is not None:
            yield attempt.restart
        events = _adapter(attempt).astream(attempt.request, timeout=attempt.timeout,
                                           key=attempt.key)
        async for event in events:
            if isinstance(event, Completed):
                outcome.append(m.succeeded(attempt, event.response))
                return
            if not attempt.delivered:
                m.shown(attempt)
            yield event
        err = _unfinished(attempt)
    except ProviderError as exc:
        err = exc
    except BaseException:
        m.cancelled(attempt)
        raise
    finally:
        if events is not None:
            with contextlib.suppress(Exception):
                await events.aclose()
    outcome.append(m.failed(attempt, err))
