"""Prometheus: a scripted outage, then a scrape of the one-line exporter over HTTP."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import failover
from failover.integrations.prometheus import PrometheusMetrics
from failover.testing import FakeClock, FakeProviders
from support import PROVIDERS


@pytest.fixture
def metrics() -> PrometheusMetrics:
    return PrometheusMetrics(registry=CollectorRegistry())


@pytest.fixture
def router(metrics: PrometheusMetrics, clock: FakeClock,
           tmp_path: Any) -> Iterator[failover.Router]:
    config = failover.Config.from_mapping({
        "providers": PROVIDERS,
        "routes": {"default": {"chain": ["openai", "claude"]},
                   "only_openai": {"chain": ["openai"], "fallback": {"defer": True}}},
        "telemetry": {"opentelemetry": False},
        "deferred": {"path": str(tmp_path / "deferred.sqlite")},
    })
    with failover.Router(config, clock=clock, instrumentation=[metrics]) as r:
        yield metrics.watch(r)


def scrape(metrics: PrometheusMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    server = metrics.serve(0)
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_a_scripted_outage_shows_in_the_scrape(
    router: failover.Router, metrics: PrometheusMetrics, fake: FakeProviders
) -> None:
    fake["openai"].fail(503)
    fake["claude"].answer("from claude")
    for _ in range(4):  # three failures open openai's breaker; the fourth skips it
        router.complete("hi")
    with pytest.raises(failover.Deferred):
        router.complete("hi", route="only_openai")
    samples = scrape(metrics)
    assert value(samples, "failover_requests_total", route="default", outcome="ok") == 4
    assert value(samples, "failover_requests_total", route="only_openai",
                 outcome="deferred") == 1
    assert value(samples, "failover_attempts_total", route="default", provider="openai",
                 outcome="error", error_kind="Overloaded") == 3
    assert value(samples, "failover_attempts_total", route="default", provider="claude",
                 outcome="ok", error_kind="") == 4
    assert value(samples, "failover_failovers_total", route="default",
                 from_provider="openai", to_provider="claude") == 3
    assert value(samples, "failover_breaker_state", provider="openai", state="open") == 1
    assert value(samples, "failover_breaker_state", provider="openai", state="closed") == 0
    assert value(samples, "failover_breaker_state", provider="claude", state="closed") == 1
    assert value(samples, "failover_attempt_duration_seconds_count", provider="openai",
                 outcome="error") == 3
    assert value(samples, "failover_request_duration_seconds_count", route="default",
                 outcome="ok") == 4
    assert value(samples, "failover_tokens_total", provider="claude", type="output") > 0


def test_a_stream_feeds_time_to_first_token(
    router: failover.Router, metrics: PrometheusMetrics, fake: FakeProviders
) -> None:
    fake["openai"].slow(0.3, "streamed")
    list(router.stream("hi"))
    samples = scrape(metrics)
    assert value(samples, "failover_time_to_first_token_seconds_count", provider="openai") == 1
    assert value(samples, "failover_time_to_first_token_seconds_sum",
                 provider="openai") == pytest.approx(0.3)


def test_no_label_carries_request_text(
    router: failover.Router, metrics: PrometheusMetrics, fake: FakeProviders
) -> None:
    fake["openai"].fail(503)
    fake["claude"].answer("the answer is tuesday")
    router.complete("the plan is tuesday")
    assert not any("tuesday" in str(key) for key in scrape(metrics))
