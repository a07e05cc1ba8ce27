"""Instrumentation hooks: one record per finished request, for metrics and traces.

An `Instrumentation` is anything with ``on_request(record)``; the router calls every
installed one after each request ends, however it ended. OpenTelemetry is the built-in
integration (`OpenTelemetryInstrumentation`), used automatically when the application
has configured an OpenTelemetry tracer or meter provider before building the router
(``telemetry: {opentelemetry: true}`` forces it, ``false`` turns it off): each request
becomes a span ``failover.request`` (with an event per attempt) and feeds three
instruments. With nothing configured the router skips it and pays nothing.

A hook that raises is logged and never breaks a request.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from ._errors import ConfigError

if TYPE_CHECKING:
    from ._config import Config
    from ._models import Attempt, Usage

__all__ = [
    "Instrumentation",
    "OpenTelemetryInstrumentation",
    "RequestRecord",
    "opentelemetry_configured",
    "opentelemetry_instrumentation",
    "telemetry_hooks",
]

logger = logging.getLogger("failover")

Outcome = Literal["ok", "fallback", "deferred", "error"]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """How one request went. ``started_at`` is epoch seconds."""

    route: str
    started_at: float
    duration_s: float
    outcome: Outcome
    attempts: Sequence[Attempt]
    provider: str | None = None
    model: str | None = None
    error_kind: str | None = None
    stream: bool = False
    usage: Usage | None = None


@runtime_checkable
class Instrumentation(Protocol):
    def on_request(self, record: RequestRecord) -> None: ...


def notify_all(hooks: Sequence[Instrumentation], record: RequestRecord) -> None:
    for hook in hooks:
        try:
            hook.on_request(record)
        except Exception:
            logger.exception("instrumentation %r failed", hook)


class OpenTelemetryInstrumentation:
    """Spans and metrics through the OpenTelemetry API (the app configures the SDK).

    - span ``failover.request``: ``failover.route``, ``failover.outcome``,
      ``failover.provider``, ``gen_ai.request.model``/``gen_ai.response.model``,
      ``failover.attempts``, token usage; one span event ``failover.attempt`` per attempt;
      status ERROR when no provider answered.
    - counter ``failover.requests`` {route, outcome}
    - counter ``failover.attempts`` {provider, outcome, error.type}
    - histogram ``failover.attempt.duration`` (s) {provider, outcome}
    """

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        from opentelemetry import metrics, trace

        from . import __version__

        self._trace = trace
        self.tracer = trace.get_tracer("failover", __version__, tracer_provider)
        meter = metrics.get_meter("failover", __version__, meter_provider)
        self.requests = meter.create_counter(
            "failover.requests", unit="{request}", description="requests by outcome")
        self.attempts = meter.create_counter(
            "failover.attempts", unit="{attempt}", description="attempts per provider")
        self.duration = meter.create_histogram(
            "failover.attempt.duration", unit="s", description="time of one attempt")

    def on_request(self, record: RequestRecord) -> None:
        start_ns = int(record.started_at * 1e9)
        span = self.tracer.start_span(
            "failover.request", start_time=start_ns, kind=self._trace.SpanKind.CLIENT)
        span.set_attribute("failover.route", record.route)
        span.set_attribute("failover.outcome", record.outcome)
        span.set_attribute("failover.attempts", len(record.attempts))
        span.set_attribute("failover.stream", record.stream)
        if record.provider:
            span.set_attribute("failover.provider", record.provider)
        if record.model:
            span.set_attribute("gen_ai.response.model", record.model)
        if record.error_kind:
            span.set_attribute("error.type", record.error_kind)
            if record.outcome == "error":
                span.set_status(self._trace.Status(self._trace.StatusCode.ERROR,
                                                   record.error_kind))
        if record.usage is not None:
            span.set_attribute("gen_ai.usage.input_tokens", record.usage.input_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", record.usage.output_tokens)
        for a in record.attempts:
            attributes: dict[str, Any] = {
                "failover.provider": a.provider, "gen_ai.request.model": a.model,
                "failover.outcome": a.outcome, "failover.latency_s": a.latency_s,
            }
            if a.error_kind:
                attributes["error.type"] = a.error_kind
            if a.http_status:
                attributes["http.response.status_code"] = a.http_status
            span.add_event("failover.attempt", attributes)
            labels = {"failover.provider": a.provider, "failover.outcome": a.outcome}
            self.duration.record(a.latency_s, labels)
            if a.error_kind:
                labels = {**labels, "error.type": a.error_kind}
            self.attempts.add(1, labels)
        self.requests.add(1, {"failover.route": record.route,
                              "failover.outcome": record.outcome})
        span.end(end_time=start_ns + int(record.duration_s * 1e9))


def opentelemetry_configured() -> bool:
    """Whether the application has set a tracer or meter provider (not the API's proxy)."""
    try:
        from opentelemetry import metrics, trace
    except ImportError:
        return False
    tracing = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    metering = "Proxy" not in type(metrics.get_meter_provider()).__name__
    return tracing or metering


def opentelemetry_instrumentation(*, auto: bool) -> OpenTelemetryInstrumentation | None:
    """The OpenTelemetry hook; None when the API is missing or, with ``auto``, when the
    application has configured no OpenTelemetry SDK (then it would record nothing)."""
    if auto and not opentelemetry_configured():
        return None
    try:
        return OpenTelemetryInstrumentation()
    except ImportError:
        return None


def telemetry_hooks(config: Config) -> tuple[Instrumentation, ...]:
    """The OpenTelemetry hook ``telemetry.opentelemetry`` asks for (None: if installed)."""
    wanted = config.telemetry.opentelemetry
    if wanted is False:
        return ()
    hook = opentelemetry_instrumentation(auto=wanted is None)
    if hook is None:
        if wanted:
            raise ConfigError("telemetry.opentelemetry: true, but the opentelemetry package "
                              "is not installed (pip install opentelemetry-api)")
        return ()
    return (hook,)
