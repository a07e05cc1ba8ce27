"""One circuit breaker per provider: a pure state machine, driven by an injected clock.

    closed ──(failure rate over the window, N failures in a row, or slow-call rate)──> open
    open ──(open_until reached, checked lazily)──> half_open
    half_open ──(probe succeeds)──> closed          (open time back to open_for)
    half_open ──(probe fails, or is slow)──> open   (open time doubled, up to max_open_for)
    forced_open / forced_closed override all of it until `reset`.

Every method changes state in one synchronous step under the breaker's own short lock,
so threads (the sync API, the hedge pool, the Redis subscriber) and the event loop share
one breaker without any lock of the caller's. Reading `state` or `view` changes nothing:
a breaker whose open time is up *reads* half_open, and turns half_open (a new epoch, a
published transition) only when a permit is asked for or an outcome is reported.

Stale results: every transition starts a new *epoch*, and each `Permit` carries the
epoch it was issued in. A result reported with a permit from an older epoch (a slow call
that finishes after the breaker opened, closed again, was forced or reset) is ignored:
it neither counts in the window nor moves the state. A half-open probe's permit is a
lease: once it expires it is reclaimed for another caller, and the late result of the
expired probe is ignored too.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args

from ._policy import RollingCounts
from ._types import BreakerState

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._config import BreakerConfig

__all__ = ["DEFAULT_PROBE_LEASE", "Breaker", "BreakerView", "Permit", "Transition"]

#: A probe lease lasts at least this long unless ``probe_lease`` is configured: the
#: default request timeout, so a probe that is merely slow is not presumed hung.
DEFAULT_PROBE_LEASE = 30.0

_STATES = frozenset(get_args(BreakerState))


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change, for the router to publish as breaker_opened/half_open/closed.

    ``reason`` is a stable token: ``consecutive_failures``, ``failure_rate``,
    ``long_open``, ``slow_calls``, ``probe_failed``, ``probe_slow``, ``probe_succeeded``,
    ``rate_limited``, ``open_elapsed``, ``forced`` or ``reset``.
    """

    provider: str
    old: BreakerState
    new: BreakerState
    reason: str
    open_until: float | None


@dataclass(frozen=True, slots=True)
class BreakerView:
    """One consistent reading of a breaker, taken under its lock."""

    state: BreakerState
    open_until: float | None
    consecutive_failures: int


class Permit:
    """Leave to make one attempt, to be handed back through exactly one ``on_*``/release.

    In the closed state every caller gets the same permit object (no allocation); a
    half-open probe gets its own, which expires at ``expires``.
    """

    __slots__ = ("epoch", "expires", "probe")

    def __init__(self, epoch: int, probe: bool, expires: float) -> None:
        self.epoch = epoch
        self.probe = probe
        self.expires = expires

    def __repr__(self) -> str:
        kind = f"probe until {self.expires:g}" if self.probe else "closed"
        return f"<Permit epoch={self.epoch} {kind}>"


_Method = TypeVar("_Method", bound="Callable[..., Any]")


def _locked(method: _Method) -> _Method:
    """Run a `Breaker` method under the breaker's own lock (short: no I/O inside)."""

    @functools.wraps(method)
    def locked(self: Breaker, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return locked  # type: ignore[return-value]


class Breaker:
    """The circuit breaker of one provider. See the module docstring for the rules."""

    __slots__ = (
        "_clock",
        "_counts",
        "_epoch",
        "_lease",
        "_lock",
        "_open_for",
        "_pending",
        "_permit",
        "_probes",
        "_slow",
        "_state",
        "config",
        "consecutive_failures",
        "open_until",
        "provider",
    )

    def __init__(
        self,
        provider: str,
        config: BreakerConfig,
        clock: Callable[[], float],
        *,
        forced: Literal["open", "closed"] | None = None,
    ) -> None:
        self.provider = provider
        self.config = config
        self._clock = clock
        lease = config.probe_lease
        self._lease = lease if lease is not None else max(config.open_for, DEFAULT_PROBE_LEASE)
        self._counts = RollingCounts(config.window)
        #: Slow calls over the same window (first: slow successes; second: unused).
        self._slow = RollingCounts(config.window)
        self._state: BreakerState = "closed"
        self.open_until: float | None = None
        self.consecutive_failures = 0
        self._open_for = config.open_for
        self._epoch = 0
        self._permit = Permit(0, False, math.inf)
        self._probes: list[Permit] = []
        self._pending: list[Transition] = []
        self._lock = threading.Lock()
        if forced == "open":
            self._state = "forced_open"
        elif forced == "closed":
            self._state = "forced_closed"

    def __repr__(self) -> str:
        return f"<Breaker {self.provider!r} {self._state} epoch={self._epoch}>"

    # -- reading ---------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker whose time is up reads as half_open.

        A pure read: the half_open transition itself happens at the next `allow`."""
        state = self._state
        if state == "open":
            open_until = self.open_until
            if open_until is None or self._clock() >= open_until:
                return "half_open"
        return state

    def view(self) -> BreakerView:
        """State, open time and failure streak, read together (for `Router.health`)."""
        with self._lock:
            state = self.state
            return BreakerView(state, self.open_until if state == "open" else None,
                               self.consecutive_failures)

    @property
    def open_for(self) -> float:
        """How long the next opening from a failed probe will last before doubling."""
        return self._open_for

    @_locked
    def take_transitions(self) -> list[Transition]:
        """Transitions not yet handed out, the due open -> half_open one included.

        Every ``on_*``, ``force_*`` and `reset` result starts with these too, so none is
        lost; the router calls this after `allow` so half_open is published at once.
        """
        if self._state == "open" and self.state == "half_open":
            self._enter("half_open", "open_elapsed", None)
        return self._take()

    def _take(self) -> list[Transition]:
        pending = self._pending
        if not pending:
            return []
        self._pending = []
        return pending

    # -- permits ---------------------------------------------------------------

    def allow(self) -> Permit | None:
        """A permit to try this provider now, or None to skip it."""
        state = self._state
        if state == "closed" or state == "forced_closed":
            # Lock-free on the hot path: if another thread changes the state at this
            # instant, the permit is of the old epoch and its result is ignored.
            return self._permit
        with self._lock:
            return self._allow_slow()

    def _allow_slow(self) -> Permit | None:
        state = self._state
        if state == "closed" or state == "forced_closed":
            return self._permit
        if state == "forced_open":
            return None
        now = self._clock()
        if state == "open":
            if self.open_until is not None and now < self.open_until:
                return None
            self._enter("half_open", "open_elapsed", None)
        probes = self._probes
        if probes and any(p.expires <= now for p in probes):
            # A probe that outlived its lease is presumed hung: its slot goes to this caller.
            probes = self._probes = [p for p in probes if p.expires > now]
        if len(probes) >= self.config.half_open_probes:
            return None
        permit = Permit(self._epoch, True, now + self._lease)
        probes.append(permit)
        return permit

    @_locked
    def release(self, permit: Permit) -> None:
        """Hand back a permit whose attempt was cancelled or ignored; nothing is recorded."""
        if permit.probe and permit.epoch == self._epoch:
            self._drop_probe(permit)

    # -- results ---------------------------------------------------------------

    @_locked
    def on_success(self, permit: Permit, *, slow: bool = False) -> list[Transition]:
        """Count an answer; a ``slow`` one (slower than ``slow_call``) counts toward the
        slow-call rate, and fails a half-open probe: the provider is not back yet."""
        if permit.epoch != self._epoch:
            return self._take()
        now = self._clock()
        if permit.probe:
            if not self._live_probe(permit, now):
                return self._take()
            if slow:
                self._open_for = min(self._open_for * 2, self.config.max_open_for)
                self._open(now, "probe_slow")
            else:
                self._close("probe_succeeded")
            return self._take()
        self._counts.add(now, 1, 0)
        self.consecutive_failures = 0
        if slow:
            self._slow.add(now, 1, 0)
            config = self.config
            if self._state == "closed":
                calls, _ = self._counts.totals(now)
                slow_calls, _ = self._slow.totals(now)
                if calls >= config.min_calls and slow_calls >= config.slow_call_rate * calls:
                    self._open(now, "slow_calls")
        return self._take()

    @_locked
    def on_failure(self, permit: Permit, *, long_open: bool = False) -> list[Transition]:
        """Count a failure; ``long_open`` (bad key, missing model) opens for max_open_for now."""
        if permit.epoch != self._epoch:
            return self._take()
        now = self._clock()
        config = self.config
        if permit.probe:
            if not self._live_probe(permit, now):
                return self._take()
            self.consecutive_failures += 1
            if long_open:
                self._open_for = config.max_open_for
                self._open(now, "long_open")
            else:
                self._open_for = min(self._open_for * 2, config.max_open_for)
                self._open(now, "probe_failed")
            return self._take()

        self._counts.add(now, 1, 1)
        self.consecutive_failures += 1
        if self._state != "closed":  # forced_closed: counted, never opens
            return self._take()
        if long_open:
            self._open_for = config.max_open_for
            self._open(now, "long_open")
        elif self.consecutive_failures >= config.consecutive_failures:
            self._open(now, "consecutive_failures")
        else:
            calls, failures = self._counts.totals(now)
            if calls >= config.min_calls and failures >= config.failure_rate * calls:
                self._open(now, "failure_rate")
        return self._take()

    @_locked
    def on_rate_limited(self, permit: Permit, retry_after: float | None) -> list[Transition]:
        """A 429 is not a failure: with ``retry_after``, cool down (open) that long.

        The cooldown neither counts a failure nor doubles the open time; when it ends
        the breaker is half-open, so traffic comes back one probe at a time instead of
        as a burst into the same limit. Without ``retry_after`` the permit is released.
        """
        if permit.epoch != self._epoch or self._state == "forced_closed":
            return self._take()
        if retry_after is None or retry_after <= 0:
            if permit.probe and permit.epoch == self._epoch:
                self._drop_probe(permit)
            return self._take()
        now = self._clock()
        if permit.probe and not self._live_probe(permit, now):
            return self._take()
        self._enter("open", "rate_limited", now + retry_after)
        return self._take()

    # -- operator overrides ------------------------------------------------------

    @_locked
    def force_open(self) -> list[Transition]:
        if self._state != "forced_open":
            self._enter("forced_open", "forced", None)
        return self._take()

    @_locked
    def force_closed(self) -> list[Transition]:
        if self._state != "forced_closed":
            self._enter("forced_closed", "forced", None)
        return self._take()

    @_locked
    def reset(self) -> list[Transition]:
        """Back to closed with no history; results of calls begun before are ignored."""
        self._counts.clear()
        self._slow.clear()
        self.consecutive_failures = 0
        self._open_for = self.config.open_for
        if self._state != "closed":
            self._enter("closed", "reset", None)
        else:
            self._new_epoch()
        return self._take()

    # -- shared state --------------------------------------------------------------

    @_locked
    def snapshot(self) -> dict[str, object]:
        """Plain data (JSON-able) for a shared-state backend; live probe leases stay local.

        Times are readings of this breaker's clock (``taken_at`` says when): a backend
        that crosses hosts must translate them.
        """
        return {
            "provider": self.provider,
            "state": self._state,
            "open_until": self.open_until,
            "open_for": self._open_for,
            "consecutive_failures": self.consecutive_failures,
            "window": self._counts.dump(),
            "slow_window": self._slow.dump(),
            "taken_at": self._clock(),
        }

    @_locked
    def restore(self, data: Mapping[str, object]) -> None:
        """Adopt a `snapshot`. Publishes no transition: whoever made the change did.

        If the state differs, a new epoch starts (outstanding permits become stale);
        if not, calls in flight still count.
        """
        state = data.get("state")
        if state not in _STATES:
            raise ValueError(f"not a breaker state: {state!r}")
        open_until = data.get("open_until")
        open_for = data.get("open_for", self.config.open_for)
        consecutive = data.get("consecutive_failures", 0)
        if open_until is not None and not isinstance(open_until, (int, float)):
            raise ValueError(f"open_until must be a number or None, got {open_until!r}")
        if not isinstance(open_for, (int, float)) or not isinstance(consecutive, int):
            raise ValueError("open_for must be a number and consecutive_failures an int")
        if not math.isfinite(open_for) or open_for < 0 or consecutive < 0 or (
                open_until is not None and math.isnan(open_until)):
            raise ValueError(f"not a sane snapshot: open_for {open_for!r}, "
                             f"consecutive_failures {consecutive!r}")
        if state != self._state:
            self._state = state  # type: ignore[assignment]
            self._new_epoch()
        # What another worker says is clamped to this breaker's own limits: a provider is
        # never kept open longer than max_open_for from now, whatever arrives.
        cfg = self.config
        self.open_until = None if open_until is None else min(
            float(open_until), self._clock() + cfg.max_open_for)
        self._open_for = min(max(float(open_for), cfg.open_for), cfg.max_open_for)
        self.consecutive_failures = consecutive
        for counts, key in ((self._counts, "window"), (self._slow, "slow_window")):
            window = data.get(key)
            if isinstance(window, Mapping):
                counts.load(window)
            else:
                counts.clear()

    # -- internals -----------------------------------------------------------------

    def _live_probe(self, permit: Permit, now: float) -> bool:
        """Whether a probe's result may decide: its lease is held and not yet expired."""
        if permit not in self._probes:
            return False
        if now >= permit.expires:
            self._drop_probe(permit)
            return False
        return True

    def _drop_probe(self, permit: Permit) -> None:
        try:
            self._probes.remove(permit)
        except ValueError:
            pass

    def _open(self, now: float, reason: str) -> None:
        self._enter("open", reason, now + self._open_for)

    def _close(self, reason: str) -> None:
        self._counts.clear()
        self._slow.clear()
        self.consecutive_failures = 0
        self._open_for = self.config.open_for
        self._enter("closed", reason, None)

    def _new_epoch(self) -> None:
        self._epoch += 1
        self._permit = Permit(self._epoch, False, math.inf)
        self._probes = []

    def _enter(self, new: BreakerState, reason: str, open_until: float | None) -> None:
        old = self._state
        self._state = new
        self.open_until = open_until
        self._new_epoch()
        self._pending.append(Transition(self.provider, old, new, reason, open_until))
