"""Shared breaker state through Redis: when one worker sees a provider die, all skip it.

Each process keeps its breakers in memory, so the request path never waits on Redis.
What crosses processes is a breaker's *transitions* (opened, half-open, closed, forced,
reset): the worker that made one writes the breaker's snapshot to
``{prefix}:breaker:{provider}`` and publishes it on ``{prefix}:breakers``; every other
worker adopts it from a background subscriber thread within milliseconds, and a worker
that starts reads the stored snapshots first. Times travel as wall-clock seconds and are
turned back into each process's monotonic clock on arrival.

Redis being slow or down never touches a request: publishing goes through a bounded
queue on its own thread, failures are logged, and the workers carry on with their own
breakers until Redis is back.
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

__all__ = ["RedisBreakerSync"]

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
        self._redis: Any = redis.Redis.from_url(
            url, socket_timeout=1.0, socket_connect_timeout=1.0, health_check_interval=10)
        self._outbox: queue.Queue[Any] = queue.Queue(maxsize=1000)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._where = scrub(url.split("@")[-1])

    # -- time translation ----------------------------------------------------------------

    def _to_wire(self, snapshot: Mapping[str, Any]) -> dict[str, Any]:
        offset = time.time() - self._clock()
        open_until = snapshot.get("open_until")
        return {
            "origin": self.origin,
            "provider": snapshot["provider"],
            "state": snapshot["state"],
            "open_until_epoch": None if open_until is None else float(open_until) + offset,
            "open_for": snapshot.get("open_for"),
            "consecutive_failures": snapshot.get("consecutive_failures", 0),
            "published_at": time.time(),
        }

    def _from_wire(self, message: Mapping[str, Any]) -> dict[str, Any]:
        offset = self._clock() - time.time()
        epoch = message.get("open_until_epoch")
        return {
            "provider": message["provider"],
            "state": message["state"],
            "open_until": None if epoch is None else float(epoch) + offset,
            "open_for": message.get("open_for"),
            "consecutive_failures": message.get("consecutive_failures", 0),
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
            payload = json.dumps(item, separators=(",", ":"))
            try:
                pipe = self._redis.pipeline(transaction=False)
                pipe.set(f"{self.prefix}:breaker:{item['provider']}", payload, ex=_KEY_TTL_S)
                pipe.publish(self.channel, payload)
                pipe.execute()
            except Exception as exc:
                logger.error("shared breaker state: cannot publish to Redis at %s: %s",
                             self._where, exc)

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
        except Exception:
            logger.exception("shared breaker state: applying %s failed", snapshot["provider"])

    def load(self, providers: list[str]) -> None:
        """Adopt what Redis holds for ``providers`` (a worker that starts late)."""
        if not providers:
            return
        try:
            values = self._redis.mget([f"{self.prefix}:breaker:{p}" for p in providers])
        except Exception as exc:
            logger.error("shared breaker state: cannot read Redis at %s: %s", self._where, exc)
            return
        for raw in values:
            if raw is not None:
                self._adopt(raw)

    def _subscriber(self) -> None:
        pubsub = None
        while not self._stop.is_set():
            try:
                if pubsub is None:
                    pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(self.channel)
                message = pubsub.get_message(timeout=0.2)
                if message is not None and message.get("type") == "message":
                    self._adopt(message["data"])
            except Exception as exc:
                logger.error("shared breaker state: lost Redis at %s (%s); retrying",
                             self._where, exc)
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:
                        pass
                    pubsub = None
                self._stop.wait(1.0)
        if pubsub is not None:
            try:
                pubsub.close()
            except Exception:
                pass

    # -- lifetime ------------------------------------------------------------------------------

    def start(self, providers: list[str]) -> None:
        self.load(providers)
        for target, name in ((self._publisher, "publish"), (self._subscriber, "subscribe")):
            thread = threading.Thread(target=target, name=f"failover-redis-{name}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self, timeout: float = 2.0) -> None:
        self._stop.set()
        try:
            self._outbox.put_nowait(_STOP)
        except queue.Full:
            pass
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        try:
            self._redis.close()
        except Exception:
            pass
