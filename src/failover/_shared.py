"""Shared breaker state through Redis: when one worker sees a provider die, all skip it.

Each process keeps its breakers in memory, so the request path never waits on Redis.
What crosses processes is a breaker's *transitions* (opened, half-open, closed, forced,
reset): the worker that made one writes the breaker's snapshot to
``{prefix}:breaker:{provider}`` and publishes it on ``{prefix}:breakers``; every other
worker adopts it from a background subscriber thread within milliseconds, and a worker
that starts reads the stored snapshots first.

An open period travels as the time *left* (with when it was published), never as a
moment on one host's clock: a receiver subtracts the message's age, which clock skew can
only make larger (the period shorter), and the breaker clamps what it adopts to its own
``max_open_for``. A message from a broken or hostile peer cannot keep a provider open.

Redis being slow or down never touches a request: publishing goes through a bounded
queue on its own thread and the workers carry on with their own breakers. When Redis is
back, each worker republishes the transitions it could not send and re-reads the
others', so a transition made during the outage still reaches every worker, and a
worker that merely lost touch never overwrites what others changed meanwhile. Connection errors are
logged once, then summarised at most once a minute, not several times a second.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ._errors import ConfigError
from ._secrets import scrub

__all__ = ["OutageLog", "RedisBreakerSync"]

logger = logging.getLogger("failover.shared")

_STOP = object()
#: Stored snapshots outlive any open period they describe, then expire by themselves.
_KEY_TTL_S = 24 * 3600


class RedisBreakerSync:
    """Publishes local breaker snapshots and applies the other workers' ones.

    ``apply(provider, snapshot)`` is called (from the subscriber thread) with a snapshot
    whose times are already on this process's ``clock``.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        clock: Callable[[], float],
        apply: Callable[[str, Mapping[str, Any]], None],
        local: Callable[[], list[Mapping[str, Any]]] = list,
    ) -> None:
        try:
            import redis
        except ImportError:
            raise ConfigError(
                "state.backend: redis needs the redis package (pip install 'failover[redis]')"
            ) from None
        self.origin = uuid.uuid4().hex
        self.prefix = prefix
        self.channel = f"{prefix}:breakers"
        self._clock = clock
        self._apply = apply
        #: This worker's current breaker snapshots, republished after an outage.
        self._local = local
        self._providers: list[str] = []
        self._out_of_touch = False
        #: Providers whose last transition could not be published (Redis was down).
        self._unsent: set[str] = set()
        self._errors = OutageLog(logger)
        self._redis: Any = redis.Redis.from_url(
            url, socket_timeout=1.0, socket_connect_timeout=1.0, health_check_interval=10)
        self._outbox: queue.Queue[Any] = queue.Queue(maxsize=1000)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._where = scrub(url.split("@")[-1])

    # -- time translation ----------------------------------------------------------------

    def _to_wire(self, snapshot: Mapping[str, Any]) -> dict[str, Any]:
        open_until = snapshot.get("open_until")
        left = None if open_until is None else max(0.0, float(open_until) - self._clock())
        return {
            "origin": self.origin,
            "provider": snapshot["provider"],
            "state": snapshot["state"],
            "open_for_left": left,
            "open_for": snapshot.get("open_for"),
            "consecutive_failures": snapshot.get("consecutive_failures", 0),
            "reason": snapshot.get("reason"),
            "published_at": time.time(),
        }

    def _from_wire(self, message: Mapping[str, Any]) -> dict[str, Any]:
        left = message.get("open_for_left")
        if left is not None:
            left = float(left)
            published = float(message.get("published_at") or 0.0)
            # A clock ahead of ours makes the age negative: count it as none. A clock
            # behind makes it larger: the period ends sooner, never later.
            left = max(0.0, left - max(0.0, time.time() - published))
        return {
            "provider": str(message["provider"]),
            "state": message["state"],
            "open_until": None if left is None else self._clock() + left,
            "open_for": message.get("open_for"),
            "consecutive_failures": message.get("consecutive_failures", 0),
            "reason": message.get("reason"),
        }

    # -- publishing (never on the caller's thread) -------------------------------------------

    def publish(self, snapshot: Mapping[str, Any]) -> None:
        try:
            self._outbox.put_nowait(self._to_wire(snapshot))
        except queue.Full:
            logger.error("shared breaker state: outbox full, dropped %s", snapshot["provider"])

    def _publisher(self) -> None:
        while True:
            item = self._outbox.get()
            if item is _STOP:
                return
            self._send(item)

    def _send(self, item: Mapping[str, Any]) -> None:
        payload = json.dumps(item, separators=(",", ":"))
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.set(f"{self.prefix}:breaker:{item['provider']}", payload, ex=_KEY_TTL_S)
            pipe.publish(self.channel, payload)
            pipe.execute()
        except Exception as exc:
            self._out_of_touch = True  # republish it once Redis is back
            self._unsent.add(item["provider"])
            self._errors.failed(f"cannot publish to Redis at {self._where}", exc)
        else:
            self._errors.ok(f"Redis at {self._where}")

    # -- receiving ---------------------------------------------------------------------------

    def _adopt(self, raw: bytes | str) -> None:
        try:
            message = json.loads(raw)
            if message.get("origin") == self.origin:
                return
            snapshot = self._from_wire(message)
        except (ValueError, KeyError, TypeError) as exc:
            logger.error("shared breaker state: ignoring a malformed message: %s", exc)
            return
        try:
            self._apply(snapshot["provider"], snapshot)
        except (ValueError, TypeError) as exc:
            logger.error("shared breaker state: refusing a snapshot of %s: %s",
                         snapshot["provider"], exc)
        except Exception:
            logger.exception("shared breaker state: applying %s failed", snapshot["provider"])

    def load(self, providers: list[str]) -> None:
        """Adopt what Redis holds for ``providers`` (a worker that starts late)."""
        if not providers:
            return
        try:
            values = self._redis.mget([f"{self.prefix}:breaker:{p}" for p in providers])
        except Exception as exc:
            self._out_of_touch = True
            self._errors.failed(f"cannot read Redis at {self._where}", exc)
            return
        for raw in values:
            if raw is not None:
                self._adopt(raw)

    def resync(self) -> None:
        """After an outage: tell the others the transitions we could not send, then take
        in theirs. Only those: republishing every local state would overwrite, with a
        stale "closed", what another worker or an operator changed meanwhile."""
        unsent, self._unsent = self._unsent, set()
        for snapshot in self._local():
            if snapshot["provider"] in unsent:
                self.publish(snapshot)
        self._out_of_touch = False
        self.load(self._providers)

    def _confirmed(self, pubsub: Any) -> None:
        """Wait until the server has the subscription (so nothing falls between it and the
        read of the stored snapshots that follows)."""
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.2)
            if message is not None and message.get("type") == "subscribe":
                return
            if message is not None and message.get("type") == "message":
                self._adopt(message["data"])

    def _subscriber(self) -> None:
        pubsub = None
        backoff = 0.5
        while not self._stop.is_set():
            try:
                if pubsub is None:
                    pubsub = self._subscribe()
                    backoff = 0.5
                self._listen(pubsub)
            except Exception as exc:
                self._out_of_touch = True
                self._errors.failed(f"lost Redis at {self._where}", exc)
                _close_quietly(pubsub)
                pubsub = None
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
        _close_quietly(pubsub)

    def _subscribe(self) -> Any:
        pubsub = self._redis.pubsub()
        pubsub.subscribe(self.channel)
        self._confirmed(pubsub)
        # What was published before this subscription held (at start, or during an
        # outage) is in the stored snapshots: read them now.
        if self._out_of_touch:
            self.resync()
        else:
            self.load(self._providers)
        return pubsub

    def _listen(self, pubsub: Any) -> None:
        message = pubsub.get_message(timeout=0.2)
        if message is not None and message.get("type") == "message":
            self._adopt(message["data"])
        elif self._out_of_touch:
            self.resync()  # a publish failed while the subscription held

    # -- lifetime ------------------------------------------------------------------------------

    def start(self, providers: list[str]) -> None:
        self._providers = list(providers)
        self.load(providers)
        for target, name in ((self._publisher, "publish"), (self._subscriber, "subscribe")):
            thread = threading.Thread(target=target, name=f"failover-redis-{name}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self, timeout: float = 10.0) -> None:
        """Stop, after what was queued has been published (within ``timeout``).

        The publisher goes first and gets the whole ``timeout``: ``failover force-open``
        is a router that changes one breaker and closes, and on a loaded machine the
        publisher thread may not have run yet; 2 s was not always enough, and the
        change never reached the workers. A Redis that cannot be reached fails each
        publish within its 1 s socket timeout, so this only waits that long."""
        deadline = time.monotonic() + timeout
        try:
            self._outbox.put_nowait(_STOP)
        except queue.Full:
            pass
        for thread in self._threads:
            if thread.name.endswith("publish"):
                thread.join(timeout)
        if self._unsent:  # a publish failed (a Redis too slow for a moment): once more
            unsent, self._unsent = self._unsent, set()
            for snapshot in self._local():
                if snapshot["provider"] in unsent and time.monotonic() < deadline:
                    self._send(self._to_wire(snapshot))
        self._stop.set()
        for thread in self._threads:
            thread.join(2.0)
        self._threads.clear()
        try:
            self._redis.close()
        except Exception:
            pass


class OutageLog:
    """The first error of an outage at ERROR, then one summary a minute, then "back"."""

    def __init__(self, log: logging.Logger, every: float = 60.0, *,
                 subject: str = "shared breaker state",
                 meanwhile: str = "each worker keeps its own breakers meanwhile") -> None:
        self._log = log
        self._subject = subject
        self._meanwhile = meanwhile
        self._every = every
        self._failing = 0
        self._last = 0.0
        self._lock = threading.Lock()

    def failed(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            self._failing += 1
            first, due = self._failing == 1, now - self._last >= self._every
            if first or due:
                self._last = now
        if first:
            self._log.error("%s: %s: %s; %s", self._subject, what, exc, self._meanwhile)
        elif due:
            self._log.error("%s: %s: still failing (%d errors so far): %s", self._subject,
                            what, self._failing, exc)

    def ok(self, what: str) -> None:
        with self._lock:
            failed, self._failing = self._failing, 0
        if failed:
            self._log.warning("%s: %s is back after %d error(s)", self._subject, what,
                              failed)


def _close_quietly(pubsub: Any) -> None:
    if pubsub is None:
        return
    try:
        pubsub.close()
    except Exception:
        pass
