"""Pools of equivalent providers: the order one request tries a pool's members in.

A chain element may be a pool (``{pool: [a, b, c], strategy: least_busy}``): the same
model behind several keys, accounts, regions or clouds. A request tries the members in
the order its strategy gives, then moves to the next element. The strategies:

- ``priority``: config order (a chain inside the chain).
- ``round_robin``: each request starts one member further on.
- ``weighted``: smooth weighted round robin (nginx's): over any run of requests each
  member leads in proportion to its ``weight``, interleaved, with no randomness.
- ``least_busy``: fewest requests in flight (the fleet's, when shared) first; among
  equally busy members, the one with the lower recent latency.
- ``least_latency``: lowest recent latency (an exponential average) first; one request
  in ``_EXPLORE_EVERY`` (1%) leads with each member in turn, so one that was slow is
  measured again.
- ``headroom``: most remaining quota (rate-limit headers, declared limits) first.

An order is a decision, not a reservation: members the order puts first may still be
skipped (open breaker, no headroom) by the attempt machine, which tries the next.
Pure: nothing here sends or sleeps; latency and quota are read, never waited for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ._types import Strategy

__all__ = ["Member", "Pool"]

#: ``least_latency`` sends one request in this many to the members in turn, so one that
#: was slow is measured again (1%: a slow member then stays out of the p99).
_EXPLORE_EVERY = 100


class Member(Protocol):
    """What a strategy reads of a provider (`failover._state.Provider` is one)."""

    name: str

    def busy(self) -> int: ...

    def recent_latency(self) -> float | None: ...

    def headroom(self) -> float: ...


class Pool:
    """One pool element of a route's chain and its strategy's small state."""

    __slots__ = ("_current", "_lock", "_orders", "_requests", "_turn", "members", "strategy",
                 "weights")

    def __init__(self, members: Sequence[Member], strategy: Strategy,
                 weights: Sequence[float]) -> None:
        self.members = tuple(members)
        self.strategy = strategy
        self.weights = tuple(weights)
        self._turn = 0
        self._requests = 0
        self._current = [0.0] * len(self.members)
        self._lock = threading.Lock()
        self._orders: dict[str, Callable[[], list[Member]]] = {
            "priority": lambda: list(self.members),
            "round_robin": self._rotation,
            "weighted": self._weighted,
            "least_busy": lambda: self._least(lambda m: (m.busy(), _latency(m))),
            "least_latency": self._least_latency,
            "headroom": lambda: self._least(lambda m: (-m.headroom(), 0.0)),
        }

    def __repr__(self) -> str:
        return f"<Pool {self.strategy} {[m.name for m in self.members]}>"

    def order(self) -> list[Member]:
        """The members in the order this request should try them."""
        return self._orders[self.strategy]()

    def _rotation(self) -> list[Member]:
        with self._lock:
            turn = self._turn
            self._turn = (turn + 1) % len(self.members)
            self._requests += 1
        members = self.members
        return list(members[turn:] + members[:turn])

    def _least(self, key: Callable[[Member], tuple[float, float]]) -> list[Member]:
        # Ties (an idle pool) go round robin, so load still spreads.
        return sorted(self._rotation(), key=key)

    def _least_latency(self) -> list[Member]:
        rotation = self._rotation()
        if self._requests % _EXPLORE_EVERY == 0:
            turn = self._requests // _EXPLORE_EVERY % len(self.members)
            return list(self.members[turn:] + self.members[:turn])
        return sorted(rotation, key=_latency)

    def _weighted(self) -> list[Member]:
        """Smooth weighted round robin picks the leader; the rest follow by weight."""
        weights = self.weights
        with self._lock:
            current = self._current
            for i, weight in enumerate(weights):
                current[i] += weight
            lead = max(range(len(current)), key=current.__getitem__)
            current[lead] -= sum(weights)
        rest = sorted((i for i in range(len(weights)) if i != lead),
                      key=lambda i: -weights[i])
        return [self.members[lead], *(self.members[i] for i in rest)]


def _latency(member: Member) -> float:
    seen = member.recent_latency()
    return 0.0 if seen is None else seen  # unmeasured: try it, to measure it
