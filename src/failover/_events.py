"""Events: what happened to which provider on which route, for people and machines.

The router emits an `Event` for every failed attempt, failover, breaker transition,
total failure, deferral and config reload. They go to `router.subscribe` callbacks
(sync or async; a callback that raises is logged and never breaks a request), to the
``failover`` logger, and to the webhook notifier. No event carries a secret.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Event", "EventBus", "EventType", "Subscriber", "log_fields"]

EventType = Literal[
    "attempt_failed",
    "failover",
    "breaker_opened",
    "breaker_half_open",
    "breaker_closed",
    "all_providers_failed",
    "deferred",
    "defer_failed",
    "config_reloaded",
    "config_rejected",
    "key_retired",
    "shared_state_lost",
    "shared_state_restored",
]

logger = logging.getLogger("failover")
# A library never prints by default; the application decides where log records go.
logger.addHandler(logging.NullHandler())

_LEVELS: dict[str, int] = {
    "attempt_failed": logging.INFO,
    "failover": logging.WARNING,
    "breaker_opened": logging.WARNING,
    "breaker_half_open": logging.INFO,
    "breaker_closed": logging.INFO,
    "all_providers_failed": logging.ERROR,
    "deferred": logging.ERROR,
    "defer_failed": logging.CRITICAL,
    "config_reloaded": logging.INFO,
    "config_rejected": logging.ERROR,
    "key_retired": logging.ERROR,
    "shared_state_lost": logging.ERROR,
    "shared_state_restored": logging.WARNING,
}


@dataclass(frozen=True, slots=True)
class Event:
    """``time`` is wall-clock epoch seconds; ``data`` holds structured extras."""

    type: EventType
    route: str | None = None
    provider: str | None = None
    detail: str = ""
    time: float = field(default_factory=time.time)
    runbook: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        where = " ".join(
            part for part in (
                f"route={self.route}" if self.route else "",
                f"provider={self.provider}" if self.provider else "",
            ) if part
        )  # fmt: skip
        return f"{self.type} {where}: {self.detail}".replace("  ", " ")


Subscriber = Callable[[Event], Awaitable[None] | None]


def log_fields(event: Event) -> dict[str, Any]:
    """The event as flat fields of its log record (``record.event``, ``record.route``,
    ``record.provider``, ``record.error_kind``, ...), so a JSON log handler writes them as
    top-level keys; ``record.failover_event`` keeps the `Event` itself."""
    fields: dict[str, Any] = {
        "event": event.type, "route": event.route, "provider": event.provider,
        "detail": event.detail, "runbook": event.runbook, "failover_event": event,
    }
    for key, value in event.data.items():
        # A field a LogRecord already has (``name``, ``msg``...) would make logging raise.
        fields[key if key not in _RECORD_FIELDS else f"data_{key}"] = value
    return fields


_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime"}


class EventBus:
    """Fan-out to subscribers. Emitting with nobody listening costs one check."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def listens(self, type_: EventType) -> bool:
        """Whether an event of ``type_`` would reach anyone (a subscriber, or the log at
        its level): if not, the router does not even build it."""
        return bool(self._subscribers) or logger.isEnabledFor(_LEVELS[type_])

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Add ``callback``; returns a function that removes it."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def emit(self, event: Event) -> None:
        level = _LEVELS.get(event.type, logging.INFO)
        if logger.isEnabledFor(level):
            logger.log(level, "%s", event, extra=log_fields(event))
        for callback in tuple(self._subscribers):
            try:
                result = callback(event)
            except Exception:
                logger.exception("event subscriber %r failed on %s", callback, event.type)
                continue
            if inspect.isawaitable(result):
                self._schedule(result, callback, event)

    def _schedule(self, awaitable: Awaitable[None], callback: Subscriber, event: Event) -> None:
        async def run() -> None:
            try:
                await awaitable
            except Exception:
                logger.exception("event subscriber %r failed on %s", callback, event.type)

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # Sync caller with an async subscriber: run it to completion here, since
            # there is no loop to hand it to and dropping it would lose the event.
            asyncio.run(run())
            return
        task = loop.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
