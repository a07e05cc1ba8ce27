"""Instrumentation: a record per request to every hook, and OpenTelemetry spans/metrics."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import failover
from failover import RequestRecord
from failover._instrumentation import OpenTelemetryInstrumentation
from failover.testing import FakeClock, FakeProviders

PROVIDERS = {
    "openai": {"type": "openai", "model": "gpt-4o-mini", "api_key": "sk-test-0123456789"},
    "claude": {"type": "anthropic", "model": "claude-haiku-4-5", "api_key": "sk-ant-0123456789"},
}


def config(**route: Any) -> failover.Config:
    return failover.Config.from_mapping({
        "providers": PROVIDERS,
        "routes": {"default": {"chain": ["openai", "claude"], **route}},
        "telemetry": {"opentelemetry": False},
    })


class Recorder:
    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    def on_request(self, record: RequestRecord) -> None:
        self.records.append(record)


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    with FakeProviders(clock=FakeClock()) as kit:
        yield kit


def test_every_way_a_request_ends_is_recorded(fake: FakeProviders, tmp_path: Any) -> None:
    hook = Recorder()
    fake["openai"].fail(503)
    fake["claude"].answer("ok")
    with failover.Router(config(), clock=FakeClock(), instrumentation=[hook]) as router:
        router.complete("hi")
        list(router.stream("hi"))
        fake["claude"].fail(400)
        with pytest.raises(failover.BadRequest):
            router.complete("hi")
    ok, streamed, bad = hook.records
    assert (ok.outcome, ok.provider, ok.model) == ("ok", "claude", "claude-haiku-4-5")
    assert [a.error_kind for a in ok.attempts] == ["Overloaded", None]
    assert streamed.stream and streamed.outcome == "ok"
    assert (bad.outcome, bad.error_kind, bad.provider) == ("error", "BadRequest", None)

    deferring = failover.Config.from_mapping({
        "providers": PROVIDERS,
        "routes": {"default": {"chain": ["openai"], "fallback": {"defer": True}}},
        "deferred": {"path": str(tmp_path / "d.sqlite")},
        "telemetry": {"opentelemetry": False},
    })
    with failover.Router(deferring, clock=FakeClock(), instrumentation=[hook]) as router, \
            pytest.raises(failover.Deferred):
        router.complete("hi")
    assert hook.records[-1].outcome == "deferred"


async def test_async_and_fallback_outcomes(fake: FakeProviders, tmp_path: Any,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "instr_fallbacks.py").write_text("def f(request, error):\n    return 'manual'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    hook = Recorder()
    fake["openai"].fail(503)
    fake["claude"].fail(503)
    async with failover.Router(config(fallback={"python": "instr_fallbacks:f"}),
                               clock=FakeClock(), instrumentation=[hook]) as router:
        await router.acomplete("hi")
        [e async for e in router.astream("hi")]
    assert [r.outcome for r in hook.records] == ["fallback", "fallback"]
    assert [r.stream for r in hook.records] == [False, True]


def test_a_failing_hook_never_breaks_a_request(fake: FakeProviders) -> None:
    class Broken:
        def on_request(self, record: RequestRecord) -> None:
            raise RuntimeError("hook bug")

    fake["openai"].answer("fine")
    with failover.Router(config(), instrumentation=[Broken()]) as router:
        assert router.complete("hi").text == "fine"


def test_opentelemetry_spans_and_metrics(fake: FakeProviders) -> None:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    otel = OpenTelemetryInstrumentation(tracer_provider, MeterProvider(metric_readers=[reader]))
    fake["openai"].fail(503)
    fake["claude"].answer("ok")
    with failover.Router(config(), instrumentation=[otel]) as router:
        router.complete("hi")
    [span] = spans.get_finished_spans()
    assert span.name == "failover.request"
    assert span.attributes["failover.provider"] == "claude"
    assert span.attributes["failover.outcome"] == "ok"
    assert span.attributes["failover.attempts"] == 2
    events = [(e.name, e.attributes["failover.provider"], e.attributes.get("error.type"))
              for e in span.events]
    assert events == [("failover.attempt", "openai", "Overloaded"),
                      ("failover.attempt", "claude", None)]
    assert span.end_time >= span.start_time
    metrics = {
        m.name: m for rm in reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics for m in sm.metrics
    }
    attempts = {(p.attributes["failover.provider"], p.attributes["failover.outcome"]): p.value
                for p in metrics["failover.attempts"].data.data_points}
    assert attempts == {("openai", "error"): 1, ("claude", "ok"): 1}
    assert "failover.attempt.duration" in metrics and "failover.requests" in metrics


def test_opentelemetry_is_on_when_configured_or_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def router(opentelemetry: bool | None) -> failover.Router:
        return failover.Router(failover.Config.from_mapping({
            "providers": PROVIDERS, "routes": {"default": {"chain": ["openai"]}},
            "telemetry": {"opentelemetry": opentelemetry}}))

    def otel(r: failover.Router) -> bool:
        return any(isinstance(h, OpenTelemetryInstrumentation) for h in r.instrumentation)

    # Nothing configured by the application: auto costs nothing.
    assert not otel(router(None))
    assert otel(router(True)) and not otel(router(False))
    # The application set a tracer provider before building the router: auto is on.
    from opentelemetry import trace

    monkeypatch.setattr(trace, "get_tracer_provider", lambda: TracerProvider())
    assert otel(router(None)) and not otel(router(False))
