from __future__ import annotations

import pytest

from failover import ProviderHealth as PublicProviderHealth
from failover._breaker import Breaker
from failover._clock import FakeClock
from failover._config import BreakerConfig
from failover._errors import Overloaded, Timeout
from failover._health import HealthTracker, ProviderHealth


def test_provider_health_is_re_exported() -> None:
    assert PublicProviderHealth is ProviderHealth


def test_empty_tracker_knows_nothing() -> None:
    tracker = HealthTracker(30, FakeClock())
    assert tracker.success_rate() is None
    assert tracker.percentile(0.95) is None
    assert tracker.calls_and_failures() == (0, 0)


def test_success_rate_over_the_window() -> None:
    tracker = HealthTracker(30, FakeClock())
    for ok in (True, True, True, False):
        tracker.record(ok, 0.1)
    assert tracker.success_rate() == 0.75
    assert tracker.calls_and_failures() == (4, 1)


def test_old_calls_leave_the_window() -> None:
    clock = FakeClock()
    tracker = HealthTracker(10, clock)
    tracker.record(False, 1.0)
    tracker.record(False, 1.0)
    clock.advance(5)
    tracker.record(True, 0.2)
    assert tracker.success_rate() == pytest.approx(1 / 3)
    clock.advance(6)  # the two failures are 11 s old now
    assert tracker.success_rate() == 1.0
    assert tracker.percentile(0.5) == 0.2
    clock.advance(10)
    assert tracker.success_rate() is None
    assert tracker.percentile(0.5) is None


def test_percentiles_interpolate_between_ranks() -> None:
    tracker = HealthTracker(60, FakeClock())
    for ms in range(1, 101):  # 1 ms .. 100 ms, shuffled order must not matter
        tracker.record(True, ((ms * 37) % 100 + 1) / 1000)
    assert tracker.percentile(0.0) == pytest.approx(0.001)
    assert tracker.percentile(1.0) == pytest.approx(0.100)
    assert tracker.percentile(0.5) == pytest.approx(0.0505)
    assert tracker.percentile(0.95) == pytest.approx(0.09505)


def test_single_sample_is_every_percentile() -> None:
    tracker = HealthTracker(60, FakeClock())
    tracker.record(True, 0.3)
    assert tracker.percentile(0.5) == 0.3
    assert tracker.percentile(0.95) == 0.3


def test_failures_do_not_feed_latency_percentiles() -> None:
    tracker = HealthTracker(60, FakeClock())
    tracker.record(True, 0.1)
    tracker.record(False, 30.0, Timeout("read timed out"))
    assert tracker.percentile(1.0) == 0.1


def test_latency_samples_are_capped_keeping_the_newest() -> None:
    clock = FakeClock()
    tracker = HealthTracker(60, clock, max_samples=4)
    for latency in (9.0, 9.0, 9.0, 9.0, 1.0, 2.0, 3.0, 4.0):
        tracker.record(True, latency)
        clock.advance(0.1)
    assert tracker.percentile(1.0) == 4.0
    assert tracker.percentile(0.0) == 1.0
    assert tracker.calls_and_failures() == (8, 0)  # counts are not capped


def test_percentile_reflects_new_samples_and_expiry_in_order() -> None:
    clock = FakeClock()
    tracker = HealthTracker(10, clock)
    tracker.record(True, 5.0)
    assert tracker.percentile(0.5) == 5.0
    clock.advance(6)
    tracker.record(True, 1.0)
    assert tracker.percentile(1.0) == 5.0
    clock.advance(4)  # the 5 s sample is exactly one window old: gone
    assert tracker.percentile(1.0) == 1.0
    assert tracker.percentile(0.0) == 1.0


def test_percentile_takes_a_fraction() -> None:
    tracker = HealthTracker(10, FakeClock())
    with pytest.raises(ValueError, match=r"0\.95 for p95"):
        tracker.percentile(95)


def test_max_samples_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_samples"):
        HealthTracker(10, FakeClock(), max_samples=0)


def test_snapshot_combines_tracker_and_breaker() -> None:
    clock = FakeClock()
    breaker = Breaker("primary", BreakerConfig(open_for=5, consecutive_failures=2), clock)
    tracker = HealthTracker(30, clock)
    tracker.record(True, 0.2)
    for _ in range(2):
        permit = breaker.allow()
        assert permit is not None
        breaker.on_failure(permit)
        tracker.record(False, 0.01, Overloaded("overloaded", provider="primary", status=503))
    clock.advance(2)
    health = tracker.snapshot("primary", breaker)
    assert health == ProviderHealth(
        name="primary",
        state="open",
        success_rate=pytest.approx(1 / 3),  # type: ignore[arg-type]
        latency_p50_s=0.2,
        latency_p95_s=0.2,
        calls=3,
        failures=2,
        consecutive_failures=2,
        open_until=clock() + 3,
        open_for_s=3.0,
        last_error="[primary] Overloaded (HTTP 503): overloaded",
        last_error_kind="Overloaded",
    )
    clock.advance(3)
    later = tracker.snapshot("primary", breaker)
    assert later.state == "half_open"
    assert later.open_until is None
    assert later.open_for_s is None


def test_snapshot_of_a_fresh_provider() -> None:
    clock = FakeClock()
    health = HealthTracker(30, clock).snapshot("p", Breaker("p", BreakerConfig(), clock))
    assert (health.state, health.success_rate, health.calls, health.latency_p95_s) == (
        "closed",
        None,
        0,
        None,
    )
    assert health.last_error is None
