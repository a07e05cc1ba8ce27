"""Prometheus metrics for a router (``pip install 'failover[prometheus]'``).

::

    from failover.integrations.prometheus import PrometheusMetrics

    metrics = PrometheusMetrics()                        # or PrometheusMetrics(registry=r)
    router = failover.Router.from_file("failover.yaml", instrumentation=[metrics])
    metrics.watch(router)                                # breaker states, read at scrape
    metrics.serve(9464)                                  # the one-line HTTP exporter

Series (``failover_`` prefix, or ``namespace``):

- ``requests_total`` {route, outcome}: outcome ``ok | fallback | deferred | error``, so
  fallback answers and deferred requests are ``outcome="fallback"`` / ``"deferred"``;
- ``attempts_total`` {route, provider, outcome, error_kind}: every try on every provider;
- ``failovers_total`` {route, from_provider, to_provider}: a move to another provider
  after a failed attempt;
- ``request_duration_seconds`` {route, outcome} and ``attempt_duration_seconds``
  {provider, outcome} histograms; ``time_to_first_token_seconds`` {provider} for streams;
- ``tokens_total`` {provider, type}: input and output tokens of served answers;
- ``breaker_state`` {provider, state}: 1 for the state each breaker is in, 0 for the
  others (read from the watched routers at scrape time, so it is never stale).

Labels hold names and kinds only, never request text.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, get_args

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from failover import BreakerState, RequestRecord

if TYPE_CHECKING:
    from failover import Router

__all__ = ["PrometheusMetrics"]

_STATES: tuple[str, ...] = get_args(BreakerState)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class PrometheusMetrics:
    """An instrumentation hook (``Router(..., instrumentation=[metrics])``) that feeds
    Prometheus series, plus a collector of the breaker states of the routers it
    `watch`\\es. Safe to share between routers and threads."""

    def __init__(self, *, registry: CollectorRegistry | None = None,
                 namespace: str = "failover") -> None:
        self.registry = REGISTRY if registry is None else registry
        ns = namespace

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter:
            return Counter(name, doc, labels, namespace=ns, registry=self.registry)

        def histogram(name: str, doc: str, labels: tuple[str, ...]) -> Histogram:
            return Histogram(name, doc, labels, namespace=ns, registry=self.registry,
                             buckets=_LATENCY_BUCKETS)

        self.requests = counter("requests", "Requests by route and outcome",
                                ("route", "outcome"))
        self.attempts = counter("attempts", "Attempts by provider, outcome and error kind",
                                ("route", "provider", "outcome", "error_kind"))
        self.failovers = counter("failovers", "Moves to another provider after a failure",
                                 ("route", "from_provider", "to_provider"))
        self.tokens = counter("tokens", "Tokens of served answers", ("provider", "type"))
        self.request_duration = histogram(
            "request_duration_seconds", "Whole request time", ("route", "outcome"))
        self.attempt_duration = histogram(
            "attempt_duration_seconds", "Time of one attempt", ("provider", "outcome"))
        self.first_token = histogram(
            "time_to_first_token_seconds", "Stream time to first token", ("provider",))
        self._breakers = _BreakerStates(f"{ns}_breaker_state")
        self.registry.register(self._breakers)

    def watch(self, router: Router) -> Router:
        """Report ``router``'s breaker states at each scrape (until it is collected)."""
        self._breakers.add(router)
        return router

    def serve(self, port: int, addr: str = "127.0.0.1") -> Any:
        """Expose the registry over HTTP on ``addr:port`` (``/metrics``) from a daemon
        thread; returns the server (``.shutdown()`` stops it)."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return server

    def on_request(self, record: RequestRecord) -> None:
        route = record.route
        self.requests.labels(route, record.outcome).inc()
        self.request_duration.labels(route, record.outcome).observe(record.duration_s)
        previous = None
        for attempt in record.attempts:
            self.attempts.labels(route, attempt.provider, attempt.outcome,
                                 attempt.error_kind or "").inc()
            self.attempt_duration.labels(attempt.provider, attempt.outcome).observe(
                attempt.latency_s)
            if attempt.first_token_s is not None:
                self.first_token.labels(attempt.provider).observe(attempt.first_token_s)
            if previous is not None and previous.outcome == "error" and (
                    previous.provider != attempt.provider):
                self.failovers.labels(route, previous.provider, attempt.provider).inc()
            previous = attempt
        if record.usage is not None and record.provider and record.outcome == "ok":
            self.tokens.labels(record.provider, "input").inc(record.usage.input_tokens)
            self.tokens.labels(record.provider, "output").inc(record.usage.output_tokens)


class _BreakerStates(Collector):
    """``breaker_state`` read from the watched routers when Prometheus scrapes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._routers: weakref.WeakSet[Router] = weakref.WeakSet()
        self._lock = threading.Lock()

    def add(self, router: Router) -> None:
        with self._lock:
            self._routers.add(router)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.name, "1 for the state each provider's breaker is in",
                                   labels=("provider", "state"))
        with self._lock:
            routers = list(self._routers)
        for router in routers:
            for name, health in router.health().items():
                for state in _STATES:
                    family.add_metric((name, state), 1.0 if health.state == state else 0.0)
        yield family

    def describe(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily(self.name, "breaker states", labels=("provider", "state"))]
