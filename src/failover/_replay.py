"""Deferred requests sent again: claim each row, then keep its answer or release it.

Pure bookkeeping over one `State`'s store; the router's drivers send the requests. A row
is claimed before it is sent, so concurrent replayers (two processes) never send the
same request twice.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ._attempts import Attempts
from ._errors import BadRequest, FailoverError
from ._fallback import DeferredAnswer, DeferredRecord, StoreError
from ._models import Request, Response

if TYPE_CHECKING:
    from ._state import State
    from ._types import Clock

__all__ = ["claimed", "settle", "store"]

logger = logging.getLogger("failover")


def claimed(
    state: State, tickets: Sequence[str] | None, clock: Clock
) -> Iterator[tuple[DeferredRecord, Attempts | BadRequest]]:
    """Each replayable row, claimed first, with the attempt machine that replays it (or
    why it cannot be replayed)."""
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
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
        # A replay answers or fails: it neither runs the fallback nor defers again.
        yield record, Attempts(state.config, route, record.request, clock, clock(),
                               fall_back=False)


def settle(state: State, record: DeferredRecord, result: Response | FailoverError) -> Any:
    """Keep the answer (or release the row); returns what ``on_replay`` returned."""
    store_ = state.deferred
    if not isinstance(result, Response):
        store_.release(record.ticket, str(result))
        return None
    store_.answered(record.ticket, DeferredAnswer.of(result, time.time()))
    route = state.routes.get(record.route)
    if route is None or route.on_replay is None:
        return None
    try:
        return route.on_replay(record, result)
    except Exception:
        logger.exception("on_replay of route %s failed for ticket %s", record.route,
                         record.ticket)
        return None


def store(state: State, request: Request, failure: FailoverError) -> str | Exception:
    """Write a request to the store: its ticket, or why the store refused it."""
    try:
        return state.deferred.add(request, str(failure))
    except StoreError as exc:
        return exc
