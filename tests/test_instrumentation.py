"""Instrumentation: a record per request to every hook, and OpenTelemetry spans/metrics."""

from __future__ import annotations

import json
from dataclasses import dataclass
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


@dataclass
class Otel:
    """The OpenTelemetry SDK with in-memory exporters, and the hook writing to it."""

    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    hook: OpenTelemetryInstrumentation

    def tree(self) -> tuple[Any, list[Any]]:
        """The request span and its attempt spans, in the order they began."""
        finished = self.spans.get_finished_spans()
        [root] = [s for s in finished if s.parent is None]
        children = sorted((s for s in finished if s.parent is not None),
                          key=lambda s: s.start_time)
        assert all(c.parent.span_id == root.context.span_id for c in children)
        return root, children

    def metrics(self) -> dict[str, Any]:
        return {m.name: m for rm in self.reader.get_metrics_data().resource_metrics
                for sm in rm.scope_metrics for m in sm.metrics}


def make_otel(*, capture_content: bool = False) -> Otel:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    hook = OpenTelemetryInstrumentation(tracer_provider, MeterProvider(metric_readers=[reader]),
                                        capture_content=capture_content)
    return Otel(spans, reader, hook)


@pytest.fixture
def otel() -> Otel:
    return make_otel()


def test_a_request_is_a_genai_span_tree(fake: FakeProviders, otel: Otel) -> None:
    fake["openai"].fail(503)
    fake["claude"].answer("ok")
    with failover.Router(config(), instrumentation=[otel.hook]) as router:
        usage = router.complete("the secret plan is tuesday").usage
    root, (first, second) = otel.tree()
    assert root.name == "failover default"
    assert {k: root.attributes[k] for k in (
        "gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.response.model",
        "gen_ai.response.finish_reasons", "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens", "failover.route", "failover.outcome",
        "failover.provider", "failover.attempts")} == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
        "gen_ai.response.model": "claude-haiku-4-5", "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
        "failover.route": "default", "failover.outcome": "ok", "failover.provider": "claude",
        "failover.attempts": 2}
    assert (first.name, second.name) == ("chat gpt-4o-mini", "chat claude-haiku-4-5")
    assert dict(first.attributes) == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini", "failover.attempt": 1,
        "failover.provider": "openai", "failover.outcome": "error",
        "failover.breaker.state": "closed", "error.type": "Overloaded",
        "failover.error_kind": "Overloaded", "http.response.status_code": 503}
    assert first.status.status_code.name == "ERROR"
    assert second.attributes["failover.attempt"] == 2
    assert second.attributes["gen_ai.response.model"] == "claude-haiku-4-5"
    assert root.start_time <= first.start_time <= second.start_time <= root.end_time
    # No content unless asked for.
    texts = [str(v) for s in (root, first, second) for v in s.attributes.values()]
    assert not any("tuesday" in t for t in texts)


def test_genai_client_metrics(fake: FakeProviders, otel: Otel) -> None:
    fake["openai"].fail(503)
    fake["claude"].answer("ok")
    with failover.Router(config(), instrumentation=[otel.hook]) as router:
        usage = router.complete("hi").usage
    assert usage.input_tokens and usage.output_tokens
    metrics = otel.metrics()
    durations = {(p.attributes["gen_ai.provider.name"], p.attributes.get("error.type")): p.count
                 for p in metrics["gen_ai.client.operation.duration"].data.data_points}
    assert durations == {("openai", "Overloaded"): 1, ("anthropic", None): 1}
    assert metrics["gen_ai.client.operation.duration"].unit == "s"
    tokens = {p.attributes["gen_ai.token.type"]: p.sum
              for p in metrics["gen_ai.client.token.usage"].data.data_points}
    assert tokens == {"input": usage.input_tokens, "output": usage.output_tokens}
    attempts = {(p.attributes["failover.provider"], p.attributes["failover.outcome"]): p.value
                for p in metrics["failover.attempts"].data.data_points}
    assert attempts == {("openai", "error"): 1, ("claude", "ok"): 1}


def test_a_stream_records_its_time_to_first_chunk(
    fake: FakeProviders, otel: Otel, clock: FakeClock
) -> None:
    fake["openai"].cut_stream(after=1)
    fake["claude"].slow(0.25, "streamed answer")
    with failover.Router(config(), instrumentation=[otel.hook], clock=clock) as router:
        events = list(router.stream("hi"))
    assert events[-1].response.provider == "claude"
    root, (cut, served) = otel.tree()
    assert root.attributes["gen_ai.request.stream"] is True
    assert cut.attributes["failover.error_kind"] == "StreamInterrupted"
    assert served.attributes["gen_ai.response.time_to_first_chunk"] == pytest.approx(0.25)
    [point] = otel.metrics()["gen_ai.client.operation.time_to_first_chunk"].data.data_points[1:]
    assert point.sum == pytest.approx(0.25)


def test_all_providers_failed_is_an_error_span(fake: FakeProviders, otel: Otel) -> None:
    fake["openai"].fail(503)
    fake["claude"].fail(500)
    with failover.Router(config(), instrumentation=[otel.hook]) as router, \
            pytest.raises(failover.AllProvidersFailed):
        router.complete("hi")
    root, children = otel.tree()
    assert root.status.status_code.name == "ERROR"
    assert root.attributes["error.type"] == "AllProvidersFailed"
    assert [c.attributes["error.type"] for c in children] == [
        "Overloaded", "ServerError", "ServerError"]


def test_content_only_when_asked_for_and_never_a_secret(fake: FakeProviders) -> None:
    otel = make_otel(capture_content=True)
    fake["claude"].answer("see you tuesday")
    with failover.Router(config(chain=["claude"]), instrumentation=[otel.hook]) as router:
        router.complete(f"my key is {PROVIDERS['claude']['api_key']}", system="be brief")
    root, _ = otel.tree()
    assert json.loads(root.attributes["gen_ai.output.messages"])[0]["parts"][0] == {
        "type": "text", "content": "see you tuesday"}
    sent = root.attributes["gen_ai.input.messages"]
    assert "my key is" in sent and PROVIDERS["claude"]["api_key"] not in sent
    assert "be brief" in root.attributes["gen_ai.system_instructions"]


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
