"""The webhook notifier: tells people when a provider dies, a request is lost or deferred.

`WebhookNotifier` is an event subscriber (``router.subscribe(notifier)``). It posts the
configured event types to a chat webhook (Slack-style ``{"text": ...}``, which Slack,
Mattermost, Rocket.Chat and Teams connectors accept) or, with ``format: generic``, the
event's fields as JSON. It must never slow down or break a request, so:

- the caller only formats a small payload and puts it on a bounded queue; a daemon
  thread does the HTTP post (a full queue drops the message and logs that it did);
- the same event type on the same route and provider is sent once per
  ``min_interval``; the next message that goes out for it says how many were suppressed;
- at most ``max_per_minute`` messages go out; the rest are counted and the count rides
  along with the next message;
- a webhook that answers 500, refuses, or times out is logged (never its URL, which
  often embeds a token) and forgotten.

The post goes through an ``httpx2`` client over ``SeamTransport("webhook")``, so the
test kit intercepts it like any provider call. Each message is posted in a copy of the
context that emitted the event, so a transport override active there applies to it.
"""

from __future__ import annotations

import collections
import contextvars
import datetime
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ._config import resolve_env
from ._secrets import register_url, scrub

if TYPE_CHECKING:
    import httpx2

    from ._config import Config, NotifyConfig, WebhookConfig
    from ._events import Event, EventBus

__all__ = ["NotifierSlot", "WebhookNotifier"]

logger = logging.getLogger("failover.notify")

_RATE_WINDOW = 60.0
_STOP = object()

_ICONS = {
    "breaker_opened": ":warning:",
    "all_providers_failed": ":rotating_light:",
    "deferred": ":rotating_light:",
    "defer_failed": ":rotating_light:",
    "config_rejected": ":rotating_light:",
    "attempt_failed": ":small_orange_diamond:",
    "failover": ":twisted_rightwards_arrows:",
    "breaker_half_open": ":hourglass_flowing_sand:",
    "breaker_closed": ":white_check_mark:",
    "config_reloaded": ":information_source:",
}


class WebhookNotifier:
    """Posts events to a webhook from a background thread; never raises into the caller.

    ``runbooks`` maps route names to their runbook (quoted in the message when the
    event itself carries none). ``clock`` is monotonic seconds, for deduplication and
    the rate limit.
    """

    def __init__(
        self,
        config: WebhookConfig,
        *,
        runbooks: Mapping[str, str | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_per_minute: int = 20,
        queue_size: int = 100,
    ) -> None:
        self.config = config
        self._url = resolve_env(config.url, "notify.webhook.url")
        register_url(self._url)  # the path token is the credential of a webhook
        self._events = frozenset(config.events)
        self._runbooks = dict(runbooks or {})
        self._clock = clock
        self._max_per_minute = max_per_minute
        self._lock = threading.Lock()
        self._last_sent: dict[tuple[str, str | None, str | None], float] = {}
        self._suppressed: collections.Counter[tuple[str, str | None, str | None]] = (
            collections.Counter()
        )
        self._recent: collections.deque[float] = collections.deque()
        self._rate_limited = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._pending = 0
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None
        self._client: httpx2.Client | None = None
        self._closed = False
        #: Messages handed to the webhook and answered with a 2xx (for tests and stats).
        self.sent = 0
        #: Messages that could not be delivered (error status, network error, full queue).
        self.failed = 0

    def __repr__(self) -> str:  # the URL often embeds a token: never show it
        return f"<WebhookNotifier events={sorted(self._events)} format={self.config.format}>"

    # -- the subscriber --------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        if self._closed or event.type not in self._events:
            return
        try:
            payload = self._admit(event)
            if payload is not None:
                self._enqueue(payload)
        except Exception:  # a notifier bug must never break the request that emitted
            logger.exception("webhook notifier failed to handle %s", event.type)

    def _admit(self, event: Event) -> dict[str, Any] | None:
        """Apply deduplication and the rate limit; the payload to post, or None."""
        key = (event.type, event.route, event.provider)
        now = self._clock()
        with self._lock:
            last = self._last_sent.get(key)
            if last is not None and now - last < self.config.min_interval:
                self._suppressed[key] += 1
                return None
            while self._recent and now - self._recent[0] >= _RATE_WINDOW:
                self._recent.popleft()
            if len(self._recent) >= self._max_per_minute:
                self._rate_limited += 1
                return None
            self._recent.append(now)
            self._last_sent[key] = now
            suppressed = self._suppressed.pop(key, 0)
            rate_limited, self._rate_limited = self._rate_limited, 0
        return self._payload(event, suppressed, rate_limited)

    # -- payloads ----------------------------------------------------------------------

    def _runbook(self, event: Event) -> str | None:
        if event.runbook:
            return event.runbook
        return self._runbooks.get(event.route) if event.route else None

    def _payload(self, event: Event, suppressed: int, rate_limited: int) -> dict[str, Any]:
        detail = scrub(event.detail)
        runbook = self._runbook(event)
        when = datetime.datetime.fromtimestamp(event.time, tz=datetime.timezone.utc)
        if self.config.format == "generic":
            return {
                "source": "failover",
                "event": event.type,
                "route": event.route,
                "provider": event.provider,
                "detail": detail,
                "time": event.time,
                "time_iso": when.isoformat(timespec="seconds"),
                "runbook": runbook,
                "suppressed": suppressed,
                "rate_limited": rate_limited,
                "data": json.loads(json.dumps(dict(event.data), default=str)),
            }
        where = ", ".join(
            part for part in (
                f"provider `{event.provider}`" if event.provider else "",
                f"route `{event.route}`" if event.route else "",
            ) if part
        )  # fmt: skip
        icon = _ICONS.get(event.type, ":information_source:")
        lines = [f"{icon} *failover: {event.type}*" + (f" ({where})" if where else "")]
        if detail:
            lines.append(detail)
        if runbook:
            lines.append(f"Runbook: {runbook}")
        if suppressed:
            lines.append(
                f"_{suppressed} more like this in the last "
                f"{self.config.min_interval:g}s were not sent._"
            )
        if rate_limited:
            lines.append(f"_{rate_limited} other event(s) were not sent (rate limit)._")
        lines.append(f"_{when.strftime('%Y-%m-%d %H:%M:%S UTC')}_")
        return {"text": "\n".join(lines)}

    # -- delivery ----------------------------------------------------------------------

    def _enqueue(self, payload: dict[str, Any]) -> None:
        self._ensure_thread()
        with self._idle:
            self._pending += 1
        try:
            self._queue.put_nowait((payload, contextvars.copy_context()))
        except queue.Full:
            self._done()
            self.failed += 1
            logger.warning("webhook queue is full: a notification was dropped")

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="failover-webhook", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            payload, context = item
            try:
                context.run(self._post, payload)
            except Exception:
                logger.exception("webhook notifier thread failed")
            finally:
                self._done()

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            if self._pending <= 0:
                self._idle.notify_all()

    def _http(self) -> httpx2.Client:
        if self._client is None:
            import httpx2

            from .providers._base import SeamTransport

            self._client = httpx2.Client(
                transport=SeamTransport("webhook"),
                timeout=httpx2.Timeout(self.config.timeout),
                follow_redirects=False,
            )
        return self._client

    def _post(self, payload: dict[str, Any]) -> None:
        try:
            response = self._http().post(self._url, json=payload)
        except Exception as exc:
            self.failed += 1
            # The exception text may quote the URL (and its token): log the class only.
            logger.warning("webhook notification failed: %s", type(exc).__name__)
            return
        if response.status_code >= 300:
            self.failed += 1
            logger.warning("webhook answered HTTP %d", response.status_code)
        else:
            self.sent += 1

    # -- lifecycle ---------------------------------------------------------------------

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until every queued message was posted (or failed); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float = 2.0) -> None:
        """Flush briefly, stop the thread and close the HTTP client. Idempotent."""
        if self._closed:
            return
        self._closed = True
        thread = self._thread
        if thread is not None:
            self.flush(timeout)
            try:
                self._queue.put_nowait(_STOP)
            except queue.Full:
                pass  # daemon thread: it dies with the process
            thread.join(timeout=min(timeout, 0.5))
        if self._client is not None and (thread is None or not thread.is_alive()):
            self._client.close()
            self._client = None


class NotifierSlot:
    """A router's webhook notifier: built from ``notify``, rebuilt only when it changes."""

    def __init__(self, bus: EventBus, clock: Callable[[], float]) -> None:
        self._bus = bus
        self._clock = clock
        self._config: NotifyConfig | None = None
        self._notifier: WebhookNotifier | None = None
        self._unsubscribe: Callable[[], None] = lambda: None

    def update(self, config: Config) -> None:
        if self._notifier is not None and self._config == config.notify:
            return
        self.close()
        self._config = config.notify
        webhook = config.notify.webhook
        if webhook is None:
            return
        runbooks = {name: r.fallback.runbook for name, r in config.routes.items()}
        self._notifier = WebhookNotifier(webhook, runbooks=runbooks, clock=self._clock)
        self._unsubscribe = self._bus.subscribe(self._notifier)

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until every queued post went out (True without a webhook)."""
        return self._notifier is None or self._notifier.flush(timeout)

    def close(self) -> None:
        if self._notifier is not None:
            self._unsubscribe()
            self._notifier.close()
            self._notifier = None
