"""Rate limits as routing input: each key's quota, cooldowns and revocation.

A provider's keys form a `KeyPool`. Each key has a `Quota`: what the provider's
rate-limit headers last said (requests and tokens remaining, and when they reset), what
this process sent in the last minute against declared ``limits``, a 429 cooldown, and
whether the key was retired (revoked). The attempt machine asks the pool for a key
before it sends, so a key (or a provider) with no headroom is skipped until its reset
*before* it answers 429, and a revoked key is never sent again while another serves.

Pure and synchronous: time comes from an injected clock and nothing here sends. With a
shared-state backend (``state: {backend: redis}``), a declared limit is the fleet's: a
background thread leases small shares of it from one count in Redis (`Lease`), and a
request only spends what this worker already holds, so the fleet never sends more than
the limit and no request waits on Redis. Counters of one process are approximate under
threads (no lock on the hot path): a limit is a bound to stay under, not a ledger.
"""

from __future__ import annotations

import email.utils
import math
import re
import threading
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._policy import RollingCounts

if TYPE_CHECKING:
    from ._config import LimitsConfig, RetryConfig
    from ._types import Clock

__all__ = ["BUCKETS", "BUCKET_S", "KeyPool", "Lease", "Quota", "QuotaReading",
           "read_rate_limit_headers"]

#: Declared limits are per minute, counted over a sliding minute of 12 buckets (the
#: fleet's count in Redis uses the same buckets, on the wall clock).
_MINUTE = 60.0
BUCKETS = 12
BUCKET_S = _MINUTE / BUCKETS
#: A worker whose lease is spent waits this long for the next one (the lease thread's
#: interval).
_LEASE_WAIT_S = 0.05
#: Headers that say "0 left" but not when it resets: skip the key for this long.
_UNKNOWN_RESET_S = 1.0

# -- the headers ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuotaReading:
    """What one response's rate-limit headers said; times are seconds from now."""

    requests_left: int | None = None
    requests_reset: float | None = None
    tokens_left: int | None = None
    tokens_reset: float | None = None
    requests_limit: int | None = None
    tokens_limit: int | None = None


#: Header name -> (QuotaReading field, how to read the value). OpenAI and Azure OpenAI
#: send ``x-ratelimit-*``; Anthropic sends ``anthropic-ratelimit-*`` (input and output
#: tokens too: the tighter of those is what limits the next request).
_FIELDS: dict[bytes, tuple[str, str]] = {
    b"x-ratelimit-remaining-requests": ("requests_left", "count"),
    b"x-ratelimit-remaining-tokens": ("tokens_left", "count"),
    b"x-ratelimit-reset-requests": ("requests_reset", "period"),
    b"x-ratelimit-reset-tokens": ("tokens_reset", "period"),
    b"x-ratelimit-limit-requests": ("requests_limit", "count"),
    b"x-ratelimit-limit-tokens": ("tokens_limit", "count"),
    b"anthropic-ratelimit-requests-remaining": ("requests_left", "count"),
    b"anthropic-ratelimit-requests-reset": ("requests_reset", "moment"),
    b"anthropic-ratelimit-requests-limit": ("requests_limit", "count"),
    b"anthropic-ratelimit-tokens-remaining": ("tokens_left", "count"),
    b"anthropic-ratelimit-tokens-reset": ("tokens_reset", "moment"),
    b"anthropic-ratelimit-tokens-limit": ("tokens_limit", "count"),
    b"anthropic-ratelimit-input-tokens-remaining": ("tokens_left", "count"),
    b"anthropic-ratelimit-input-tokens-reset": ("tokens_reset", "moment"),
    b"anthropic-ratelimit-output-tokens-remaining": ("tokens_left", "count"),
    b"anthropic-ratelimit-output-tokens-reset": ("tokens_reset", "moment"),
}
_PREFIXES = (b"x-ratelimit-", b"anthropic-ratelimit-")
_PERIOD_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _count(value: str) -> int | None:
    try:
        number = int(float(value))
    except ValueError:
        return None
    return number if number >= 0 else None


def _period(value: str) -> float | None:
    """``1s``, ``6m0s``, ``20ms``, ``1h2m3.5s`` or plain seconds."""
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        parts = _PERIOD_PART.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            return None
        seconds = sum(float(n) * _UNIT_S[u] for n, u in parts)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _moment(value: str) -> float | None:
    """An RFC 3339 (or HTTP-date) moment, as seconds from now."""
    from datetime import datetime

    try:
        at = datetime.fromisoformat(value.strip().replace("Z", "+00:00")).timestamp()
    except ValueError:
        try:
            at = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            return _period(value)
    return max(0.0, at - time.time())


_READERS = {"count": _count, "period": _period, "moment": _moment}


def read_rate_limit_headers(raw: Iterable[tuple[bytes, bytes]]) -> QuotaReading | None:
    """The rate-limit headers of one response (httpx2's ``headers.raw``), or None when it
    has none: one pass over the headers, no allocation for a response without them."""
    found: dict[str, int | float] | None = None
    for name, value in raw:
        lowered = name.lower()
        if not lowered.startswith(_PREFIXES):
            continue
        spec = _FIELDS.get(lowered)
        if spec is None:
            continue
        number = _READERS[spec[1]](value.decode("latin-1"))
        if number is None:
            continue
        found = found if found is not None else {}
        old = found.get(spec[0])
        # Two headers for one field (Anthropic's input and output tokens): the tighter.
        found[spec[0]] = number if old is None or spec[0].endswith("_limit") else min(old, number)
    return None if found is None else QuotaReading(**found)  # type: ignore[arg-type]


# -- one key's quota -------------------------------------------------------------------------


def wall_bucket() -> int:
    """The current bucket of the fleet's sliding minute."""
    return int(time.time() // BUCKET_S)


@dataclass(eq=False)
class Lease:
    """A share of a declared limit leased from the fleet's count, for this worker to
    spend. Valid in the bucket it was granted in: it was counted there, so spending it
    later would outlive the count."""

    bucket: int
    requests: int = 0
    tokens: int = 0
    #: The fleet's count of the sliding minute at the grant (for ``headroom``).
    fleet_requests: int = 0
    fleet_tokens: int = 0
    #: Spent since the last top-up, and the largest request refused for want of tokens:
    #: the lease thread sizes the next grant on them.
    spent_requests: int = 0
    spent_tokens: int = 0
    largest: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def covers(self, cost: int, limits: LimitsConfig) -> bool:
        if self.bucket != wall_bucket():
            return False
        if limits.rpm is not None and self.requests <= 0:
            return False
        if limits.tpm is not None and self.tokens < cost:
            self.largest = max(self.largest, cost)
            return False
        return True

    def spend(self, tokens: int) -> None:
        with self.lock:
            self.requests -= 1
            self.tokens -= tokens
            self.spent_requests += 1
            self.spent_tokens += tokens


class Quota:
    """One key's (or one provider's) rate-limit state. See the module docstring."""

    __slots__ = ("_clock", "_sent", "cooldown_until", "fleet", "lease", "limits",
                 "requests_left", "requests_limit", "requests_reset_at", "retired", "streak",
                 "tokens_left", "tokens_limit", "tokens_reset_at")

    def __init__(self, limits: LimitsConfig | None, clock: Clock) -> None:
        self.limits = limits if limits is not None and (limits.rpm or limits.tpm) else None
        self._clock = clock
        self._sent = RollingCounts(_MINUTE, BUCKETS)  # first: requests, second: tokens
        #: In touch with the fleet's count: the declared limits are spent from `lease`
        #: (False: counted by this process alone, as when Redis is lost).
        self.fleet = False
        self.lease: Lease | None = None
        self.requests_left: int | None = None
        self.requests_reset_at = 0.0
        self.tokens_left: int | None = None
        self.tokens_reset_at = 0.0
        self.requests_limit: int | None = None
        self.tokens_limit: int | None = None
        self.cooldown_until = 0.0
        #: 429s in a row without Retry-After: each doubles the cooldown.
        self.streak = 0
        #: Why the key was retired (revoked), or None while it may be used.
        self.retired: str | None = None

    def sent(self, now: float, tokens: int) -> None:
        """A request is about to go out on this key."""
        if self.limits is not None:
            self._sent.add(now, 1, tokens)
            lease = self.lease
            if self.fleet and lease is not None:
                lease.spend(tokens)
        if self.requests_left is not None and self.requests_left > 0:
            self.requests_left -= 1
        if self.tokens_left is not None:
            self.tokens_left = max(0, self.tokens_left - tokens)

    def used(self, now: float) -> tuple[int, int]:
        """Requests and tokens of the last minute counted against the limits: the
        fleet's (less what this worker holds unspent), or this process's alone."""
        lease = self.lease
        if self.fleet and lease is not None:
            return (lease.fleet_requests - max(lease.requests, 0),
                    lease.fleet_tokens - max(lease.tokens, 0))
        return self._sent.totals(now)

    def blocked(self, now: float, cost: int = 0) -> float | None:
        """When this key may be used again if it may not be now (for a request of
        ``cost`` tokens), else None."""
        if self.retired is not None:
            return math.inf
        until = self.cooldown_until if self.cooldown_until > now else 0.0
        if self.requests_left == 0 and self.requests_reset_at > now:
            until = max(until, self.requests_reset_at)
        if self.tokens_left == 0 and self.tokens_reset_at > now:
            until = max(until, self.tokens_reset_at)
        limits = self.limits
        if limits is not None:
            if self.fleet:
                lease = self.lease
                if lease is None or not lease.covers(cost, limits):
                    until = max(until, now + _LEASE_WAIT_S)
            elif self._over(now, cost, limits):
                until = max(until, now + BUCKET_S)  # the oldest bucket leaves by then
        return until or None

    def _over(self, now: float, cost: int, limits: LimitsConfig) -> bool:
        """Whether this process alone has spent the minute's limits."""
        requests, tokens = self._sent.totals(now)
        # A minute with nothing in it lets any request through: one too large for the
        # limit is the provider's to refuse, not ours to hold forever.
        return (limits.rpm is not None and requests >= limits.rpm) or (
            limits.tpm is not None and bool(tokens) and tokens + cost > limits.tpm)

    def headroom(self, now: float) -> float:
        """The share of the tightest quota left, 0 to 1 (1 when nothing is known)."""
        shares = [1.0]
        if self.requests_left is not None and self.requests_limit and (
                self.requests_reset_at > now):
            shares.append(self.requests_left / self.requests_limit)
        if self.tokens_left is not None and self.tokens_limit and self.tokens_reset_at > now:
            shares.append(self.tokens_left / self.tokens_limit)
        limits = self.limits
        if limits is not None:
            requests, tokens = self.used(now)
            if limits.rpm:
                shares.append(1.0 - requests / limits.rpm)
            if limits.tpm:
                shares.append(1.0 - tokens / limits.tpm)
        return max(0.0, min(shares))

    def observe(self, now: float, reading: QuotaReading) -> None:
        """What a response's headers said about this key's quota."""
        if reading.requests_left is not None:
            self.requests_left = reading.requests_left
            self.requests_reset_at = now + (reading.requests_reset
                                            if reading.requests_reset is not None
                                            else _UNKNOWN_RESET_S)
        if reading.tokens_left is not None:
            self.tokens_left = reading.tokens_left
            self.tokens_reset_at = now + (reading.tokens_reset
                                          if reading.tokens_reset is not None
                                          else _UNKNOWN_RESET_S)
        if reading.requests_limit is not None:
            self.requests_limit = reading.requests_limit
        if reading.tokens_limit is not None:
            self.tokens_limit = reading.tokens_limit

    def rate_limited(self, now: float, retry_after: float | None, retry: RetryConfig) -> float:
        """A 429 on this key: cool it, and return for how long. Retry-After says how long;
        without it the cooldown starts at ``rate_limit_cooldown`` and doubles per 429 in
        a row, up to ``max_rate_limit_cooldown``."""
        if retry_after is not None and retry_after > 0:
            cooldown = retry_after
        else:
            cooldown = min(retry.rate_limit_cooldown * 2 ** self.streak,
                           retry.max_rate_limit_cooldown)
            self.streak += 1
        self.cooldown_until = max(self.cooldown_until, now + cooldown)
        return cooldown

    def answered(self) -> None:
        """A request on this key was answered: the 429 streak is over."""
        if self.streak:
            self.streak = 0


class KeyPool:
    """A provider's keys, each with its `Quota`, and the provider's own declared limits.

    `pick` rotates through the keys that may be used now, as the adapter used to, so a
    pool spreads its load; a key that is retired, cooling or out of quota is passed over.
    """

    __slots__ = ("_clock", "_next", "keys", "provider")

    def __init__(self, size: int, limits: LimitsConfig | None, clock: Clock) -> None:
        per_key = limits is not None and limits.per == "key"
        self._clock = clock
        self.keys = [Quota(limits if per_key else None, clock) for _ in range(max(size, 1))]
        #: Declared limits of the provider as a whole (``per: provider``).
        self.provider = Quota(None if per_key else limits, clock)
        self._next = 0

    def pick(self, now: float, missing: Collection[int] = (), cost: int = 0) -> int | None:
        """The key to send the next request (of ``cost`` tokens) with, or None when none
        may be used now."""
        keys = self.keys
        if len(keys) == 1:
            quota = keys[0]
            if quota.retired is None and quota.cooldown_until <= now and (
                    quota.requests_left != 0 and quota.tokens_left != 0
                    and quota.limits is None) and self.provider.limits is None:
                return 0  # the common case: one key, nothing near a limit
        if self.provider.blocked(now, cost) is not None:
            return None
        for _ in range(len(keys)):
            index = self._next
            self._next = (index + 1) % len(keys)
            if index not in missing and keys[index].blocked(now, cost) is None:
                return index
        return None

    def sent(self, index: int, now: float, tokens: int) -> None:
        self.keys[index].sent(now, tokens)
        self.provider.sent(now, tokens)

    def blocked_until(self, now: float, missing: Collection[int] = ()) -> float:
        """When some key may be used again (for the skip reason and the cooldown)."""
        until = [q.blocked(now) or now for i, q in enumerate(self.keys) if i not in missing]
        own = self.provider.blocked(now) or now
        return max(own, min(until, default=math.inf))

    def usable_besides(self, index: int, now: float, missing: Collection[int] = ()) -> bool:
        """Whether a key other than ``index`` may serve now."""
        return any(i != index and i not in missing and q.blocked(now) is None
                   for i, q in enumerate(self.keys)) and self.provider.blocked(now) is None

    def retire(self, index: int, why: str) -> bool:
        """Retire a revoked key; False if it already was."""
        quota = self.keys[index]
        if quota.retired is not None:
            return False
        quota.retired = why
        return True

    def headroom(self, now: float) -> float:
        """The best share of quota left among the usable keys (for ``headroom`` pools)."""
        own = self.provider.headroom(now)
        best = max((q.headroom(now) for q in self.keys if q.retired is None), default=0.0)
        return min(own, best)
