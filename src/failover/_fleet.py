"""Quotas shared by the fleet through Redis: N workers together respect one RPM.

What each worker shares, per provider, in one Redis hash ``{prefix}:fleet:{provider}``
that every worker writes its own fields of (so no two ever write the same field, and
each write is atomic):

- ``{origin}:{key}``: what this worker sent on that key (or ``p``, the provider as a
  whole) in the last minute, requests and tokens, with the wall time it was said;
- ``{origin}:inflight``: its requests in flight there;
- ``retired:{key}``: a revoked key, for good; ``cooldown:{key}``: a 429's cooldown, as
  the wall time it ends.

A key is named by a digest of its value (never the value), so workers agree on it
whatever order their configs list keys in, and a rotated key is a new one.

One background thread writes this worker's fields and reads the others' every
``interval`` (50 ms) in one pipelined round trip, and sets each quota's ``fleet_*``
counts and each provider's ``fleet_inflight``. The request path never touches Redis: it
reads numbers at most one interval old, so the fleet can overshoot a limit by what the
others send in one interval (a few requests at most at quota-bound rates).

Redis down or slow: at the first failed round trip every worker drops the others'
counts (its own view, at once) and says so with a ``shared_state_lost`` event;
``shared_state_restored`` follows when a round trip succeeds again.
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

from ._limits import Quota
from ._shared import OutageLog

if TYPE_CHECKING:
    from ._events import EventType

__all__ = ["FleetEntry", "RedisFleetSync"]

logger = logging.getLogger("failover.shared")

#: What a worker said longer ago than this is not counted (it stopped, or lost Redis).
_FRESH_S = 5.0
#: Fields of workers gone this long are deleted.
_GONE_S = 120.0
_HASH_TTL_S = 3600


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
        self._where = where
        self._errors = OutageLog(logger, subject="shared quotas",
                                 meanwhile="each worker counts on its own meanwhile")
        self._lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one round trip ----------------------------------------------------------------------

    def sync_once(self) -> bool:
        """Write this worker's fields, read everyone's, adopt the others'. False if
        Redis could not be reached (the others' counts are then dropped)."""
        entries = list(self._entries())
        if not entries:
            return True
        now, wall = self._clock(), time.time()
        try:
            pipe = self._redis.pipeline(transaction=False)
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
                _drop_fleet(entry)
            return False
        self._errors.ok(f"Redis at {self._where}")
        self._went(lost=False, why="")
        stale: list[tuple[str, list[str]]] = []
        for entry, fields in zip(entries, replies[2::3], strict=True):
            gone = self._adopt(entry, _decoded(fields), now, wall)
            if gone:
                stale.append((f"{self.prefix}:fleet:{entry.provider}", gone))
        if stale:
            self._forget(stale)
        return True

    def _fields(self, entry: FleetEntry, now: float, wall: float) -> dict[str, str]:
        fields = {f"{self.origin}:inflight": json.dumps([entry.counts.inflight, wall])}
        for key, quota in [*entry.keys, ("p", entry.own)]:
            requests, tokens = quota.mine(now)
            fields[f"{self.origin}:{key}"] = json.dumps([requests, tokens, wall])
            if quota.retired is not None:
                fields[f"retired:{key}"] = quota.retired
            if quota.cooldown_until > now:
                fields[f"cooldown:{key}"] = repr(wall + quota.cooldown_until - now)
        return fields

    def _adopt(self, entry: FleetEntry, fields: dict[str, str], now: float,
               wall: float) -> list[str]:  # fmt: skip
        """Set the others' counts from ``fields``; the fields of long-gone workers."""
        quotas: dict[str, Quota] = {**dict(entry.keys), "p": entry.own}
        sums = {key: [0, 0] for key in quotas}
        inflight, gone = 0, []
        for field, value in fields.items():
            head, _, key = field.partition(":")
            if head == "retired" and key in quotas:
                quotas[key].retired = quotas[key].retired or value
                continue
            if head == "cooldown" and key in quotas:
                _cool(quotas[key], value, now, wall)
                continue
            if head == self.origin:
                continue
            said = _said(value)
            if said is None or wall - said[-1] > _GONE_S:
                gone.append(field)
            elif wall - said[-1] <= _FRESH_S:
                if key == "inflight":
                    inflight += int(said[0])
                elif key in sums:
                    sums[key][0] += int(said[0])
                    sums[key][1] += int(said[1])
        for key, quota in quotas.items():
            quota.heard(now, *sums[key])
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


def _drop_fleet(entry: FleetEntry) -> None:
    for _, quota in [*entry.keys, ("p", entry.own)]:
        quota.fleet_requests = quota.fleet_tokens = 0
        quota.fleet_rate = quota.fleet_at = 0.0
    entry.counts.fleet_inflight = 0
