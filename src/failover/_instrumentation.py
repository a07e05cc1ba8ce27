"""Instrumentation hooks: one record per finished request, for metrics and traces.

An `Instrumentation` is anything with ``on_request(record)``; the router calls every
installed one after each request ends, however it ended. OpenTelemetry is the built-in
integration (`OpenTelemetryInstrumentation`), used automatically when the application
has configured an OpenTelemetry tracer or meter provider before building the router
(``telemetry: {opentelemetry: true}`` forces it, ``false`` turns it off). It follows the
OpenTelemetry GenAI semantic conventions: a span per request with a child span per
attempt, and the GenAI client metrics. With nothing configured the router skips it and
pays nothing. Prometheus is `failover.integrations.prometheus`, another such hook.

No prompt or answer text goes into telemetry unless ``telemetry.capture_content`` is on.
A hook that raises is logged and never breaks a request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from ._errors import ConfigError
from ._secrets import scrub

if TYPE_CHECKING:
    from ._config import Config
    from ._models import Attempt, Request, Response, Usage

__all__ = [
    "GENAI_PROVIDER_NAMES",
    "Instrumentation",
    "OpenTelemetryInstrumentation",
    "ProviderView",
    "RequestRecord",
    "opentelemetry_configured",
    "opentelemetry_instrumentation",
    "telemetry_hooks",
]

logger = logging.getLogger("failover")

Outcome = Literal["ok", "fallback", "deferred", "error"]

#: ``gen_ai.provider.name`` (GenAI conventions' well-known values) of each provider type.
GENAI_PROVIDER_NAMES: Mapping[str, str] = {
    "openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini",
    "fake": "failover.simulated",
}


@dataclass(frozen=True, slots=True)
class ProviderView:
    """What telemetry knows of a provider a request tried: its type, and its breaker's
    state once the request had ended."""

    type: str
    breaker_state: str

    @property
    def genai_name(self) -> str:
        return GENAI_PROVIDER_NAMES.get(self.type, self.type)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """How one request went. ``started_at`` is epoch seconds; each attempt's
    ``started_s`` counts from it. ``request`` is what was asked and ``response`` the
    answer (None if none came), for hooks that need more than the summary (the finish
    reason; the content, where a hook captures it)."""

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
    #: The providers the attempts went to, by config name.
    providers: Mapping[str, ProviderView] = field(default_factory=dict)
    request: Request | None = field(default=None, repr=False)
    response: Response | None = field(default=None, repr=False)


@runtime_checkable
class Instrumentation(Protocol):
    def on_request(self, record: RequestRecord) -> None: ...


def notify_all(hooks: Sequence[Instrumentation], record: RequestRecord) -> None:
    for hook in hooks:
        try:
            hook.on_request(record)
        except Exception:
            logger.exception("instrumentation %r failed", hook)


_OPERATION = "chat"


class OpenTelemetryInstrumentation:
    """Spans and metrics through the OpenTelemetry API (the app configures the SDK),
    named and attributed by the GenAI semantic conventions.

    - span ``failover {route}`` (CLIENT) per request: ``gen_ai.operation.name``,
      ``gen_ai.provider.name``/``gen_ai.response.model``/``gen_ai.response.finish_reasons``
      and token usage of what served, ``failover.route``, ``failover.outcome``,
      ``failover.provider``, ``failover.attempts``, ``error.type``; status ERROR when no
      provider answered.
    - a child span ``chat {model}`` per attempt, at the attempt's own time:
      ``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
      ``gen_ai.response.model`` (when it answered), ``error.type``, ``failover.attempt``
      (1, 2, ...), ``failover.provider``, ``failover.outcome``, ``failover.error_kind``,
      ``failover.breaker.state``, ``http.response.status_code``,
      ``gen_ai.response.time_to_first_chunk``.
    - ``gen_ai.client.operation.duration`` (s) per attempt, ``gen_ai.client.token.usage``
      ({token}, ``gen_ai.token.type`` input/output), and
      ``gen_ai.client.operation.time_to_first_chunk`` (s) for streams;
      ``failover.requests`` {failover.route, failover.outcome} and ``failover.attempts``
      {failover.provider, failover.outcome, error.type}.
    - with ``capture_content``: ``gen_ai.input.messages``/``gen_ai.output.messages`` on
      the request span, scrubbed of secrets.
    """

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None, *,
                 capture_content: bool = False) -> None:
        from opentelemetry import metrics, trace

        from . import __version__

        self._trace = trace
        self.capture_content = capture_content
        self.tracer = trace.get_tracer("failover", __version__, tracer_provider)
        meter = metrics.get_meter("failover", __version__, meter_provider)
        self.operation_duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS)
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS)
        self.first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk", unit="s",
            description="Time to receive the first chunk in a streaming operation",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS)
        self.requests = meter.create_counter(
            "failover.requests", unit="{request}", description="requests by outcome")
        self.attempts = meter.create_counter(
            "failover.attempts", unit="{attempt}", description="attempts per provider")

    def on_request(self, record: RequestRecord) -> None:
        start_ns = int(record.started_at * 1e9)
        span = self.tracer.start_span(f"failover {record.route}", start_time=start_ns,
                                      kind=self._trace.SpanKind.CLIENT,
                                      attributes=self._request_attributes(record))
        if record.outcome == "error" and record.error_kind:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR,
                                               record.error_kind))
        context = self._trace.set_span_in_context(span)
        for number, attempt in enumerate(record.attempts, 1):
            self._attempt(record, attempt, number, start_ns, context)
        self._usage(record)
        self.requests.add(1, {"failover.route": record.route,
                              "failover.outcome": record.outcome})
        span.end(end_time=start_ns + int(record.duration_s * 1e9))

    def _request_attributes(self, record: RequestRecord) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": _OPERATION, "failover.route": record.route,
            "failover.outcome": record.outcome, "failover.attempts": len(record.attempts),
            "gen_ai.request.stream": record.stream,
        }
        served = record.providers.get(record.provider or "")
        if record.provider:
            attributes["failover.provider"] = record.provider
        if served is not None:
            attributes["gen_ai.provider.name"] = served.genai_name
        if record.model:
            attributes["gen_ai.response.model"] = record.model
        if record.response is not None:
            attributes["gen_ai.response.finish_reasons"] = (record.response.finish_reason,)
        if record.error_kind:
            attributes["error.type"] = record.error_kind
        if record.usage is not None:
            attributes["gen_ai.usage.input_tokens"] = record.usage.input_tokens
            attributes["gen_ai.usage.output_tokens"] = record.usage.output_tokens
        if self.capture_content:
            attributes.update(_content(record))
        return attributes

    def _attempt(self, record: RequestRecord, attempt: Attempt, number: int, start_ns: int,
                 context: Any) -> None:
        view = record.providers.get(attempt.provider)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": _OPERATION, "gen_ai.request.model": attempt.model,
            "failover.attempt": number, "failover.provider": attempt.provider,
            "failover.outcome": attempt.outcome,
        }
        if view is not None:
            attributes["gen_ai.provider.name"] = view.genai_name
            attributes["failover.breaker.state"] = view.breaker_state
        if attempt.outcome == "ok":
            attributes["gen_ai.response.model"] = attempt.model
        if attempt.error_kind:
            attributes["error.type"] = attributes["failover.error_kind"] = attempt.error_kind
        if attempt.http_status:
            attributes["http.response.status_code"] = attempt.http_status
        if attempt.first_token_s is not None:
            attributes["gen_ai.response.time_to_first_chunk"] = attempt.first_token_s
        began = start_ns + int(attempt.started_s * 1e9)
        span = self.tracer.start_span(f"{_OPERATION} {attempt.model}", context=context,
                                      start_time=began, kind=self._trace.SpanKind.CLIENT,
                                      attributes=attributes)
        if attempt.outcome == "error":
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR,
                                               attempt.error_kind))
        span.end(end_time=began + int(attempt.latency_s * 1e9))
        self._attempt_metrics(attributes, attempt)

    def _attempt_metrics(self, attributes: Mapping[str, Any], attempt: Attempt) -> None:
        labels = {k: v for k, v in attributes.items() if k in _METRIC_LABELS}
        self.operation_duration.record(attempt.latency_s, labels)
        if attempt.first_token_s is not None:
            self.first_chunk.record(attempt.first_token_s, labels)
        counted = {"failover.provider": attempt.provider, "failover.outcome": attempt.outcome}
        if attempt.error_kind:
            counted["error.type"] = attempt.error_kind
        self.attempts.add(1, counted)

    def _usage(self, record: RequestRecord) -> None:
        served = record.providers.get(record.provider or "")
        if record.usage is None or served is None:
            return
        labels = {"gen_ai.operation.name": _OPERATION, "gen_ai.provider.name": served.genai_name,
                  "gen_ai.response.model": record.model or ""}
        self.token_usage.record(record.usage.input_tokens,
                                {**labels, "gen_ai.token.type": "input"})
        self.token_usage.record(record.usage.output_tokens,
                                {**labels, "gen_ai.token.type": "output"})


_METRIC_LABELS = frozenset({"gen_ai.operation.name", "gen_ai.provider.name",
                            "gen_ai.request.model", "gen_ai.response.model", "error.type"})
# The bucket boundaries the GenAI conventions advise for these two histograms.
_DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24,
                     20.48, 40.96, 81.92]
_TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                  16777216, 67108864]


def _content(record: RequestRecord) -> dict[str, str]:
    """The opted-in content, as the conventions' JSON message lists, secrets scrubbed."""
    out: dict[str, str] = {}
    if record.request is not None:
        messages = [{"role": m.role, "parts": [{"type": "text", "content": m.text}]}
                    for m in record.request.messages]
        if record.request.system:
            out["gen_ai.system_instructions"] = scrub(json.dumps(
                [{"type": "text", "content": record.request.system}]))
        out["gen_ai.input.messages"] = scrub(json.dumps(messages))
    if record.response is not None:
        parts: list[dict[str, Any]] = [{"type": "text", "content": record.response.text}]
        parts += [{"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments}
                  for c in record.response.tool_calls]
        out["gen_ai.output.messages"] = scrub(json.dumps([{
            "role": "assistant", "parts": parts,
            "finish_reason": record.response.finish_reason}]))
    return out


def opentelemetry_configured() -> bool:
    """Whether the application has set a tracer or meter provider (not the API's proxy)."""
    try:
        from opentelemetry import metrics, trace
    except ImportError:
        return False
    tracing = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    metering = "Proxy" not in type(metrics.get_meter_provider()).__name__
    return tracing or metering


def opentelemetry_instrumentation(
    *, auto: bool, capture_content: bool = False
) -> OpenTelemetryInstrumentation | None:
    """The OpenTelemetry hook; None when the API is missing or, with ``auto``, when the
    application has configured no OpenTelemetry SDK (then it would record nothing)."""
    if auto and not opentelemetry_configured():
        return None
    try:
        return OpenTelemetryInstrumentation(capture_content=capture_content)
    except ImportError:
        return None


def telemetry_hooks(config: Config) -> tuple[Instrumentation, ...]:
    """The OpenTelemetry hook ``telemetry.opentelemetry`` asks for (None: if installed)."""
    wanted = config.telemetry.opentelemetry
    if wanted is False:
        return ()
    hook = opentelemetry_instrumentation(auto=wanted is None,
                                         capture_content=config.telemetry.capture_content)
    if hook is None:
        if wanted:
            raise ConfigError("telemetry.opentelemetry: true, but the opentelemetry package "
                              "is not installed (pip install opentelemetry-api)")
        return ()
    return (hook,)
