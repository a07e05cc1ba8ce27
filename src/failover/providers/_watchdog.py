"""The bound on a sync attempt, enforced from outside the blocked read.

httpx2's timeouts bound each socket read, not the attempt: a server that trickles a
valid body a byte at a time, or sends SSE keep-alive comments, keeps every read short
and the attempt endless. The async path cancels the attempt at its bound; a sync read
cannot be cancelled, and a hidden event loop would be a lie. So each sync attempt
carries an `AttemptBound`, the transport registers the socket of its response with it,
and one watchdog thread shuts that socket down (``SHUT_RDWR`` wakes the blocked read)
when the bound passes. The adapter then reports the attempt as a `Timeout` of the whole
attempt, not as the connection error the shutdown produced.
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AttemptBound", "current_bound", "start_watchdog", "watch_response"]


@dataclass(eq=False)
class AttemptBound:
    """When the current attempt must be over (monotonic seconds); movable (a stream's
    stall bound moves with each content chunk; ``inf`` while the caller holds a chunk)."""

    deadline: float
    cut: bool = False
    done: bool = False
    sockets: list[Any] = field(default_factory=list)
    #: The deadline of this bound's entry in the watchdog (inf: none yet).
    armed: float = float("inf")

    def move(self, deadline: float) -> None:
        """Per chunk of a stream: a plain assignment unless the bound comes *sooner*
        than the watchdog's entry for it (a later one is rescheduled by the watchdog
        itself when the old entry comes due)."""
        self.deadline = deadline
        if deadline < self.armed and self.sockets:
            _WATCHDOG.arm(self)


_bound: contextvars.ContextVar[AttemptBound | None] = contextvars.ContextVar(
    "failover_attempt_bound", default=None)


def current_bound() -> contextvars.ContextVar[AttemptBound | None]:
    return _bound


def watch_response(response: Any) -> None:
    """Called by the transport with a sync response: its socket is cut at the bound."""
    bound = _bound.get()
    if bound is None or bound.done:
        return
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is None:
        return
    bound.sockets.append(sock)
    _WATCHDOG.arm(bound)


class _Watchdog:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, AttemptBound]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread now (at most once), not on the first attempt."""
        with self._wake:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="failover-watchdog",
                                                daemon=True)
                self._thread.start()

    def arm(self, bound: AttemptBound) -> None:
        if self._thread is None:
            self.start()
        with self._wake:
            bound.armed = bound.deadline
            entry = (bound.deadline, next(self._order), bound)
            heapq.heappush(self._heap, entry)
            # The thread sleeps until the earliest entry: only a new earliest wakes it,
            # so an attempt (normally done long before its bound) costs a heap push.
            if self._heap[0] is entry:
                self._wake.notify()

    def _due(self) -> AttemptBound:
        """Wait for the next bound that has really passed (stale entries are skipped)."""
        with self._wake:
            while True:
                if not self._heap:
                    self._wake.wait()
                    continue
                when, _, bound = self._heap[0]
                if bound.done or when != bound.armed:
                    heapq.heappop(self._heap)  # finished, or superseded by a sooner entry
                    continue
                if bound.deadline > when:      # moved later: wait for the new deadline
                    heapq.heapreplace(self._heap, (bound.deadline, next(self._order), bound))
                    bound.armed = bound.deadline
                    continue
                left = when - time.monotonic()
                if left > 0:
                    self._wake.wait(min(left, 3600.0))
                    continue
                heapq.heappop(self._heap)
                return bound

    def _run(self) -> None:
        while True:
            bound = self._due()
            bound.cut = True
            for sock in bound.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed: the attempt ended on its own


_WATCHDOG = _Watchdog()


def start_watchdog() -> None:
    """Have the watchdog's thread running before the first sync attempt needs it."""
    _WATCHDOG.start()
