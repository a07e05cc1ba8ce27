"""Quotas shared by the fleet through Redis: N workers together keep one RPM.

**Declared limits** are the fleet's. Each limit has one count in Redis, a hash
``{prefix}:quota:{provider}:{key}`` of the sliding minute's 5-second buckets (wall
clock). A background thread in each worker *leases* small shares of it with one Lua
script (read the minute's count, grant what is left up to the share asked, add it to
the current bucket: atomic, so two workers never get the same permit). A request only
spends what its worker holds (`failover._limits.Lease`): the fleet never sends more than
the limit, and the request path never waits on Redis. A worker asks for about two
intervals of its own recent traffic, so a busy worker gets more and an idle one holds
little, and no grant is more than half of what is left, so near the limit the last
permits are shared out rather than held by the first to ask. What a worker still holds
when its bucket ends is void (it was counted there).

**The rest** (requests in flight, retired keys, 429 cooldowns) goes in one hash per
provider, ``{prefix}:fleet:{provider}``, where each worker writes only its own fields:
``{origin}:inflight`` with the wall time it was said, ``retired:{key}``, and
``cooldown:{key}`` (the wall time it ends). A key is named by a digest of its value
(never the value), so workers agree on it whatever order their configs list keys in,
and a rotated key is a new one.

One thread does all of it every ``interval`` (50 ms), pipelined in one round trip.
Redis down or slow: at the first failed round trip the worker drops the leases and the
others' numbers, counts on its own at once, and says so with a ``shared_state_lost``
event; ``shared_state_restored`` follows when a round trip succeeds again.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ._limits import BUCKETS, Lease, Quota, wall_bucket
from ._shared import OutageLog

if TYPE_CHECKING:
    from ._events import EventType

__all__ = ["FleetEntry", "InFlight", "RedisFleetSync"]

logger = logging.getLogger("failover.shared")

#: What a worker said longer ago than this is not counted (it stopped, or lost Redis).
_FRESH_S = 5.0
#: Fields of workers gone this long are deleted.
_GONE_S = 120.0
_HASH_TTL_S = 3600
#: The smallest share a worker holds, how many intervals of its traffic, and the share
#: of what the minute has left (so a burst after a quiet spell fits).
_LEASE_MIN = 1
_LEASE_INTERVALS = 2
_LEASE_OF_LEFT = 0.05

#: KEYS[1]: the limit's hash; ARGV: bucket, requests asked, rpm, tokens asked, tpm, and
#: the bucket of the last lease with the requests and tokens it left unspent (given
#: back). Returns the requests and tokens granted and the minute's counts after.
_LEASE_SCRIPT = f"""
local name, bucket = KEYS[1], tonumber(ARGV[1])
local old = tonumber(ARGV[6])
for i, kind in ipairs({{'r', 't'}}) do
  local back = tonumber(ARGV[6 + i])
  if old > 0 and back > 0 then redis.call('HINCRBY', name, kind .. old, -back) end
end
local function lease(kind, take, limit)
  if limit <= 0 then return {{0, 0}} end
  local used = 0
  for i = 0, {BUCKETS - 1} do
    used = used + tonumber(redis.call('HGET', name, kind .. (bucket - i)) or '0')
  end
  -- Never more than half of what is left (at least one): near the limit the last
  -- permits are shared out among the workers that ask, not held by the first.
  local left = limit - used
  local grant = math.max(0, math.min(take, math.max(1, math.floor(left / 2)), left))
  if grant > 0 then redis.call('HINCRBY', name, kind .. bucket, grant) end
  return {{grant, used + grant}}
end
local r = lease('r', tonumber(ARGV[2]), tonumber(ARGV[3]))
local t = lease('t', tonumber(ARGV[4]), tonumber(ARGV[5]))
redis.call('HDEL', name, 'r' .. (bucket - {BUCKETS}), 't' .. (bucket - {BUCKETS}))
redis.call('EXPIRE', name, 180)
return {{r[1], r[2], t[1], t[2]}}
"""


class InFlight(Protocol):
    """A provider's in-flight requests: this worker's, and the others' as last read."""

    @property
    def inflight(self) -> int: ...

    fleet_inflight: int


@dataclass(frozen=True, slots=True)
class FleetEntry:
    """One provider's shared numbers: its keys' quotas and its in-flight count."""

    provider: str
    #: Each key's digest and quota.
    keys: Sequence[tuple[str, Quota]]
    #: The provider's own quota (declared limits ``per: provider``).
    own: Quota
    counts: InFlight

    @property
    def quotas(self) -> list[tuple[str, Quota]]:
        return [*self.keys, ("p", self.own)]


class RedisFleetSync:
    """The background thread of the module docstring."""

    def __init__(self, url: str, *, prefix: str, clock: Callable[[], float],
                 entries: Callable[[], Iterable[FleetEntry]],
                 announce: Callable[[EventType, str], None], interval: float = 0.05,
                 where: str = "") -> None:  # fmt: skip
        import redis

        self.origin = uuid.uuid4().hex[:16]
        self.prefix = prefix
        self.interval = interval
        self._clock = clock
        self._entries = entries
        self._announce = announce
        self._redis: Any = redis.Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._lease = self._redis.register_script(_LEASE_SCRIPT)
        self._where = where
        self._errors = OutageLog(logger, subject="shared quotas",
                                 meanwhile="each worker counts on its own meanwhile")
        self._lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one round trip ----------------------------------------------------------------------

    def sync_once(self) -> bool:
        """Top up every lease, write this worker's fields, read everyone's. False if
        Redis could not be reached (this worker then counts on its own)."""
        entries = list(self._entries())
        if not entries:
            return True
        now, wall, bucket = self._clock(), time.time(), wall_bucket()
        leases: list[tuple[Quota, Lease]] = []
        try:
            pipe = self._redis.pipeline(transaction=False)
            for entry in entries:  # the leases' replies come first, the hashes' after
                for key, quota in entry.quotas:
                    limits = quota.limits
                    if limits is None:
                        continue
                    lease, asked, back = _next_lease(quota, bucket)
                    self._lease(keys=[f"{self.prefix}:quota:{entry.provider}:{key}"],
                                args=[bucket, asked[0], limits.rpm or 0, asked[1],
                                      limits.tpm or 0, *back], client=pipe)
                    leases.append((quota, lease))
            for entry in entries:
                name = f"{self.prefix}:fleet:{entry.provider}"
                pipe.hset(name, mapping=self._fields(entry, now, wall))
                pipe.expire(name, _HASH_TTL_S)
                pipe.hgetall(name)
            replies = pipe.execute()
        except Exception as exc:
            self._errors.failed(f"cannot share quotas through Redis at {self._where}", exc)
            self._went(lost=True, why=f"{type(exc).__name__}: {exc}")
            for entry in entries:
                _on_its_own(entry)
            return False
        self._errors.ok(f"Redis at {self._where}")
        self._went(lost=False, why="")
        for (quota, lease), granted in zip(leases, replies, strict=False):
            _granted(quota, lease, granted)
        self._adopt_all(entries, replies[len(leases):], now, wall)
        return True

    def _fields(self, entry: FleetEntry, now: float, wall: float) -> dict[str, str]:
        fields = {f"{self.origin}:inflight": json.dumps([entry.counts.inflight, wall])}
        for key, quota in entry.keys:
            if quota.retired is not None:
                fields[f"retired:{key}"] = quota.retired
            if quota.cooldown_until > now:
                fields[f"cooldown:{key}"] = repr(wall + quota.cooldown_until - now)
        return fields

    def _adopt_all(self, entries: list[FleetEntry], replies: list[Any], now: float,
                   wall: float) -> None:  # fmt: skip
        stale: list[tuple[str, list[str]]] = []
        for entry, fields in zip(entries, replies[2::3], strict=True):
            gone = self._adopt(entry, _decoded(fields), now, wall)
            if gone:
                stale.append((f"{self.prefix}:fleet:{entry.provider}", gone))
        if stale:
            self._forget(stale)

    def _adopt(self, entry: FleetEntry, fields: dict[str, str], now: float,
               wall: float) -> list[str]:  # fmt: skip
        """Adopt the others' retirements, cooldowns and in-flight counts; returns the
        fields of long-gone workers."""
        quotas = dict(entry.keys)
        inflight, gone = 0, []
        for name, value in fields.items():
            head, _, key = name.partition(":")
            if head == "retired" and key in quotas:
                quotas[key].retired = quotas[key].retired or value
            elif head == "cooldown" and key in quotas:
                _cool(quotas[key], value, now, wall)
            elif head != self.origin and key == "inflight":
                said = _said(value)
                if said is None or wall - said[-1] > _GONE_S:
                    gone.append(name)
                elif wall - said[-1] <= _FRESH_S:
                    inflight += int(said[0])
        entry.counts.fleet_inflight = inflight
        return gone

    def _forget(self, stale: list[tuple[str, list[str]]]) -> None:
        try:
            pipe = self._redis.pipeline(transaction=False)
            for name, fields in stale:
                pipe.hdel(name, *fields)
            pipe.execute()
        except Exception:  # the next round trip says whether Redis is there
            logger.debug("shared quotas: could not delete stale fields", exc_info=True)

    def _went(self, *, lost: bool, why: str) -> None:
        if lost == self._lost:
            return
        self._lost = lost
        if lost:
            self._announce("shared_state_lost",
                           f"Redis at {self._where} unreachable ({why[:120]}); this worker "
                           "counts rate limits and in-flight requests on its own")
        else:
            self._announce("shared_state_restored",
                           f"Redis at {self._where} is back; rate limits are shared again")

    # -- lifetime ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                ok = self.sync_once()
            except Exception:
                logger.exception("shared quotas: a round trip failed unexpectedly")
                ok = False
            # Lost: try again every second, not twenty times a second.
            pause = self.interval if ok else 1.0
            self._stop.wait(max(0.0, pause - (time.monotonic() - started)))

    def start(self) -> None:
        """The first round trip now (a router being built already waits on Redis for
        the breakers' snapshots), so the first requests have their leases; then the
        thread."""
        self.sync_once()
        self._thread = threading.Thread(target=self._run, name="failover-redis-quotas",
                                        daemon=True)
        self._thread.start()

    def close(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        try:
            self._redis.close()
        except Exception:
            pass


def _next_lease(quota: Quota, bucket: int
                ) -> tuple[Lease, tuple[int, int], tuple[int, int, int]]:
    """The lease to top up, the requests and tokens to ask for, and what to give back:
    in a new bucket, a new lease, and the last one's unspent permits go back to the
    fleet (they were counted in their bucket). A worker asks for `_LEASE_INTERVALS` of
    what it spent lately, and at least `_LEASE_OF_LEFT` of what the minute has left."""
    lease, back = quota.lease, (0, 0, 0)
    limits = quota.limits
    assert limits is not None
    if lease is None or lease.bucket != bucket:
        old, lease = lease, Lease(bucket)
        if old is not None:  # carry the sizes over, and give the permits back
            with old.lock:
                back = (old.bucket, max(old.requests, 0), max(old.tokens, 0))
                old.requests = old.tokens = 0
            lease.spent_requests, lease.spent_tokens = old.spent_requests, old.spent_tokens
            lease.largest = old.largest
            lease.fleet_requests, lease.fleet_tokens = old.fleet_requests, old.fleet_tokens
    with lease.lock:
        want_requests = max(_LEASE_MIN, _LEASE_INTERVALS * lease.spent_requests,
                            int(_LEASE_OF_LEFT * ((limits.rpm or 0) - lease.fleet_requests)))
        want_tokens = max(2 * lease.largest, _LEASE_INTERVALS * lease.spent_tokens, 1,
                          int(_LEASE_OF_LEFT * ((limits.tpm or 0) - lease.fleet_tokens)))
        asked = (max(0, want_requests - lease.requests), max(0, want_tokens - lease.tokens))
    return lease, asked, back


def _granted(quota: Quota, lease: Lease, reply: Any) -> None:
    try:
        requests, fleet_requests, tokens, fleet_tokens = (int(x) for x in reply)
    except (TypeError, ValueError):
        logger.error("shared quotas: a lease reply does not parse: %r", reply)
        return
    with lease.lock:
        lease.requests += requests
        lease.tokens += tokens
        lease.fleet_requests, lease.fleet_tokens = fleet_requests, fleet_tokens
        lease.spent_requests = lease.spent_tokens = 0
    quota.lease = lease
    quota.fleet = True


def _decoded(fields: dict[Any, Any]) -> dict[str, str]:
    return {(k.decode() if isinstance(k, bytes) else str(k)):
            (v.decode() if isinstance(v, bytes) else str(v)) for k, v in fields.items()}


def _said(value: str) -> list[float] | None:
    try:
        said = json.loads(value)
    except ValueError:
        return None
    if not isinstance(said, list) or not said or not all(
            isinstance(x, (int, float)) and math.isfinite(x) for x in said):
        return None
    return [float(x) for x in said]


def _cool(quota: Quota, value: str, now: float, wall: float) -> None:
    """Adopt another worker's cooldown (a wall time), never beyond an hour from now."""
    try:
        until = float(value)
    except ValueError:
        return
    if math.isfinite(until) and until > wall:
        quota.cooldown_until = max(quota.cooldown_until, now + min(until - wall, 3600.0))


def _on_its_own(entry: FleetEntry) -> None:
    """Redis is lost: the declared limits are counted by this process alone, at once."""
    for _, quota in entry.quotas:
        quota.fleet = False
        quota.lease = None
    entry.counts.fleet_inflight = 0
