"""What a failed attempt means: retry on the same provider, fail over, or raise.

Pure decisions, no I/O and no sleeping: `decide` returns a `Decision` with the delay to
wait, and the router does the waiting. Time only comes from an injected monotonic clock.

The rules (SPEC "Retries"): a route's ``actions`` override wins; ``raise`` raises. A
retry on the same provider needs a transient fault (5xx other than 503/529, a refused
or reset connection, a cut stream, a 429 with a short ``Retry-After``, or HTTP 408/409),
tries left (``retry.attempts`` counts the first), a delay that fits what is left of the
deadline, and a token from the `RetryBudget`. A timeout is never retried on the same
provider: the next one is likely faster than waiting again.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, get_args

import tenacity

from ._errors import ProviderError, RateLimited, Timeout
from ._types import Action

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._config import RetryConfig

__all__ = [
    "Decision",
    "RetryBudget",
    "RollingCounts",
    "action_for",
    "backoff_delay",
    "decide",
]

_OVERLOADED_STATUSES = frozenset((503, 529))
_RETRYABLE_4XX = frozenset((408, 409, 429))
_RETRYABLE_STATUSES = frozenset((408, 409))
#: Each action's name (one list: `failover._types.Action`).
_ACTIONS: dict[str, Action] = {name: name for name in get_args(Action)}


class RollingCounts:
    """Two counters over a sliding time span, kept in a ring of time buckets.

    Adding is O(1) and memory is fixed whatever the traffic; a total covers the last
    ``span`` seconds to within one bucket. Shared by the breaker, health and budget.
    """

    __slots__ = ("_first", "_ids", "_n", "_second", "_width")

    def __init__(self, span: float, buckets: int = 10) -> None:
        self._n = buckets
        # A zero span would divide by zero; a tiny one means "only the current bucket".
        self._width = max(span, 1e-9) / buckets
        self._ids = [-1] * buckets
        self._first = [0] * buckets
        self._second = [0] * buckets

    def add(self, now: float, first: int = 1, second: int = 0) -> None:
        index = int(now // self._width)
        slot = index % self._n
        if self._ids[slot] != index:
            self._ids[slot] = index
            self._first[slot] = first
            self._second[slot] = second
        else:
            self._first[slot] += first
            self._second[slot] += second

    def totals(self, now: float) -> tuple[int, int]:
        index = int(now // self._width)
        oldest = index - self._n
        first = second = 0
        for slot, bucket in enumerate(self._ids):
            if oldest < bucket <= index:
                first += self._first[slot]
                second += self._second[slot]
        return first, second

    def clear(self) -> None:
        n = self._n
        self._ids = [-1] * n
        self._first = [0] * n
        self._second = [0] * n

    def dump(self) -> dict[str, object]:
        return {
            "width": self._width,
            "ids": list(self._ids),
            "first": list(self._first),
            "second": list(self._second),
        }

    def load(self, data: Mapping[str, object]) -> None:
        """Restore `dump` output; data from another bucket layout is dropped, not misread."""
        ids, first, second = data.get("ids"), data.get("first"), data.get("second")
        if (
            data.get("width") != self._width
            or not isinstance(ids, list)
            or not isinstance(first, list)
            or not isinstance(second, list)
            or not len(ids) == len(first) == len(second) == self._n
        ):
            self.clear()
            return
        self._ids = [int(v) for v in ids]
        self._first = [int(v) for v in first]
        self._second = [int(v) for v in second]


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    delay: float = 0.0
    reason: str = ""


class RetryBudget:
    """Retries at most ``ratio`` x requests over a rolling 10 s, never fewer than a floor.

    The floor (``min_per_10s``) keeps a quiet service able to retry its first few
    faults; the ratio stops a retry storm from multiplying load on a sick provider.
    Call `on_request` once per incoming request (not per attempt) and `try_spend`
    when about to retry; a refused spend costs nothing.
    """

    __slots__ = ("_clock", "_counts", "min_per_10s", "ratio")

    def __init__(self, ratio: float, min_per_10s: int, clock: Callable[[], float]) -> None:
        self.ratio = ratio
        self.min_per_10s = min_per_10s
        self._clock = clock
        self._counts = RollingCounts(10.0)  # first: requests, second: retries

    def on_request(self) -> None:
        self._counts.add(self._clock(), 1, 0)

    def try_spend(self) -> bool:
        now = self._clock()
        requests, retries = self._counts.totals(now)
        if retries + 1 > max(self.min_per_10s, self.ratio * requests):
            return False
        self._counts.add(now, 0, 1)
        return True

    def available(self) -> int:
        """Retries that `try_spend` would grant right now."""
        requests, retries = self._counts.totals(self._clock())
        return max(0, int(max(self.min_per_10s, self.ratio * requests)) - retries)


def _override(err: ProviderError, overrides: Mapping[str, str]) -> Action | None:
    if not overrides:
        return None
    # A subclass of a kind (e.g. a custom adapter's error) follows its kind's override.
    for cls in type(err).__mro__:
        action = _ACTIONS.get(overrides.get(cls.__name__, ""))
        if action is not None:
            return action
        if cls is ProviderError:
            break
    return None


def action_for(err: ProviderError, overrides: Mapping[str, str]) -> Action:
    """The route's override for this error's kind, else the kind's default action."""
    return _override(err, overrides) or err.default_action


def _transient(err: ProviderError) -> str | None:
    """Why this fault is worth retrying on the same provider, or None if it is not."""
    status = err.status
    if isinstance(err, Timeout):
        return None
    if status is not None:
        if status in _OVERLOADED_STATUSES:
            return None
        if 400 <= status < 500 and status not in _RETRYABLE_4XX:
            return None
        if status in _RETRYABLE_STATUSES:
            return f"HTTP {status}"
    if isinstance(err, RateLimited) and err.code == "insufficient_quota":
        return None
    return err.kind if err.retryable else None


@functools.lru_cache(maxsize=32)
def _exponential(backoff: float, max_backoff: float) -> tenacity.wait_exponential:
    return tenacity.wait_exponential(multiplier=backoff, max=max_backoff)


@functools.lru_cache(maxsize=1)
def _retrying() -> tenacity.Retrying:
    return tenacity.Retrying()


def backoff_delay(attempt: int, retry: RetryConfig, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff before the retry that follows try number ``attempt``.

    Uniform in ``[0, min(max_backoff, backoff * 2 ** (attempt - 1))]``, the same
    distribution as ``tenacity.wait_random_exponential``. That strategy draws from the
    global `random` module, so tenacity's ``wait_exponential`` gives the window and the
    jitter comes from ``rng``, which lets the router (and tests) seed it.
    """
    state = tenacity.RetryCallState(_retrying(), None, (), {})
    state.attempt_number = max(1, attempt)  # tenacity also counts the failed try as 1
    ceiling = _exponential(retry.backoff, retry.max_backoff)(state)
    uniform = rng.uniform if rng is not None else random.uniform
    return uniform(0.0, ceiling)


def _failover(reason: str) -> Decision:
    return Decision("failover", 0.0, reason)


def _retry_delay(err: ProviderError, attempt: int, retry: RetryConfig, forced: bool,
                 rng: random.Random | None) -> float | Decision:
    """How long to wait before the retry: a 429's Retry-After, else the backoff; or a
    failover when a 429's wait is too long or unknown."""
    if not isinstance(err, RateLimited):
        return backoff_delay(attempt, retry, rng)
    if err.retry_after is None:
        return backoff_delay(attempt, retry, rng) if forced else _failover(
            "RateLimited: no Retry-After")
    delay = max(0.0, err.retry_after)
    if delay > retry.max_retry_after:
        return _failover(f"RateLimited: Retry-After {delay:g}s exceeds max_retry_after "
                         f"{retry.max_retry_after:g}s")
    return delay


def decide(
    err: ProviderError,
    *,
    attempt: int,
    retry: RetryConfig,
    overrides: Mapping[str, str],
    remaining: float | None,
    budget: RetryBudget,
    rng: random.Random | None = None,
) -> Decision:
    """Retry here (after ``delay``), fail over, or raise, for ``err`` after ``attempt`` tries.

    ``remaining`` is what is left of the request's deadline (None: no deadline). The
    budget is consulted last, so a token is spent only on a retry that happens.
    """
    override = _override(err, overrides)
    action = override or err.default_action
    if action == "raise":
        return Decision("raise", 0.0, f"{err.kind}: action is raise")
    if action == "failover" and override == "failover":
        return _failover(f"{err.kind}: route action is failover")

    forced = action == "retry"
    if not forced:
        why = _transient(err)
        if why is None:
            return _failover(f"{err.kind}: not retried on the same provider")
    if attempt >= retry.attempts:
        return _failover(f"{err.kind}: {attempt} of {retry.attempts} attempts made")

    delay = _retry_delay(err, attempt, retry, forced, rng)
    if isinstance(delay, Decision):
        return delay
    if remaining is not None and delay >= remaining:
        return _failover(f"{err.kind}: a {delay:.3g}s wait does not fit the {remaining:.3g}s left")
    if not budget.try_spend():
        return _failover(f"{err.kind}: retry budget exhausted")
    return Decision("retry", delay, f"{err.kind}: retry {attempt + 1} of {retry.attempts}")
