from __future__ import annotations

import random

import pytest

from failover._clock import FakeClock
from failover._config import RetryConfig
from failover._errors import (
    AuthenticationFailed,
    BadRequest,
    ConnectionFailed,
    ContentFiltered,
    ContextWindowExceeded,
    InvalidResponse,
    ModelNotFound,
    Overloaded,
    PermissionDenied,
    ProviderError,
    RateLimited,
    ServerError,
    StreamInterrupted,
    Timeout,
)
from failover._policy import (
    Decision,
    RetryBudget,
    RollingCounts,
    action_for,
    backoff_delay,
    decide,
)

RETRY = RetryConfig()  # attempts 2, backoff 0.5, max_backoff 4, max_retry_after 10


def roomy_budget() -> RetryBudget:
    return RetryBudget(1.0, 1000, FakeClock())


def run(
    err: ProviderError,
    *,
    attempt: int = 1,
    retry: RetryConfig = RETRY,
    overrides: dict[str, str] | None = None,
    remaining: float | None = None,
    budget: RetryBudget | None = None,
    seed: int = 7,
) -> Decision:
    return decide(
        err,
        attempt=attempt,
        retry=retry,
        overrides=overrides or {},
        remaining=remaining,
        budget=budget or roomy_budget(),
        rng=random.Random(seed),
    )


# -- action_for -------------------------------------------------------------------------


def test_action_for_uses_the_kind_default() -> None:
    assert action_for(ServerError("boom"), {}) == "failover"
    assert action_for(BadRequest("bad"), {}) == "raise"
    assert action_for(ContentFiltered("no"), {}) == "raise"


def test_action_for_prefers_the_route_override() -> None:
    overrides = {"ContentFiltered": "failover", "Overloaded": "raise"}
    assert action_for(ContentFiltered("no"), overrides) == "failover"
    assert action_for(Overloaded("busy"), overrides) == "raise"
    assert action_for(ServerError("boom"), overrides) == "failover"


def test_action_for_a_subclass_follows_its_kind() -> None:
    class GatewayOverloaded(Overloaded):
        pass

    assert action_for(GatewayOverloaded("x"), {"Overloaded": "raise"}) == "raise"


# -- transient faults are retried once -------------------------------------------------------


@pytest.mark.parametrize(
    "err",
    [
        ServerError("internal", status=500),
        ServerError("bad gateway", status=502),
        ServerError("gateway timeout", status=504),
        ConnectionFailed("reset"),
        StreamInterrupted("cut", partial_text="Hel"),
        RateLimited("slow down", status=429, retry_after=1.0),
    ],
)
def test_transient_faults_are_retried_once(err: ProviderError) -> None:
    decision = run(err, attempt=1)
    assert decision.action == "retry"
    assert run(err, attempt=2).action == "failover"


@pytest.mark.parametrize(
    "err",
    [
        Overloaded("overloaded", status=503),
        Overloaded("overloaded_error", status=529),
        ServerError("odd 503", status=503),
        Timeout("read timed out"),
        AuthenticationFailed("bad key", status=401),
        PermissionDenied("no", status=403),
        ModelNotFound("gone", status=404),
        InvalidResponse("not json"),
        ContextWindowExceeded("too long", status=400),
        ServerError("a 4xx dressed as 5xx", status=418),
    ],
)
def test_non_transient_faults_fail_over_at_once(err: ProviderError) -> None:
    decision = run(err, attempt=1)
    assert decision == Decision("failover", 0.0, decision.reason)
    assert err.kind in decision.reason


@pytest.mark.parametrize("status", [408, 409])
def test_408_and_409_are_retried_whatever_the_kind(status: int) -> None:
    assert run(InvalidResponse("conflict", status=status)).action == "retry"


def test_bad_request_and_content_filter_raise() -> None:
    assert run(BadRequest("bad", status=400)).action == "raise"
    assert run(ContentFiltered("blocked")).action == "raise"
    assert run(BadRequest("timeout", status=408)).action == "raise"  # raise wins over 408


def test_timeout_is_never_retried_even_with_a_408() -> None:
    assert run(Timeout("request timeout", status=408)).action == "failover"


def test_more_attempts_allow_more_retries() -> None:
    retry = RetryConfig(attempts=4)
    err = ServerError("boom", status=500)
    assert [run(err, attempt=n, retry=retry).action for n in (1, 2, 3, 4)] == [
        "retry",
        "retry",
        "retry",
        "failover",
    ]


def test_single_attempt_config_never_retries() -> None:
    assert run(ServerError("boom", status=500), retry=RetryConfig(attempts=1)).action == "failover"


# -- backoff -----------------------------------------------------------------------------


def test_backoff_is_full_jitter_within_the_exponential_window() -> None:
    retry = RetryConfig(backoff=0.5, max_backoff=4.0)
    rng = random.Random(1)
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (60, 4.0)):
        delays = [backoff_delay(attempt, retry, rng) for _ in range(300)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.9  # the window is really that wide
        assert min(delays) < ceiling * 0.1  # ... and starts at zero (full jitter)


def test_backoff_is_reproducible_with_a_seeded_rng() -> None:
    first = [backoff_delay(2, RETRY, random.Random(42)) for _ in range(3)]
    second = [backoff_delay(2, RETRY, random.Random(42)) for _ in range(3)]
    assert first == second
    assert backoff_delay(1, RETRY) <= 0.5  # the global generator works too


def test_retry_decision_carries_the_backoff_delay() -> None:
    decision = run(ServerError("boom", status=500), seed=3)
    assert decision.action == "retry"
    assert decision.delay == backoff_delay(1, RETRY, random.Random(3))
    assert 0.0 <= decision.delay <= 0.5


# -- rate limits --------------------------------------------------------------------------


def test_rate_limit_waits_exactly_retry_after() -> None:
    decision = run(RateLimited("slow", status=429, retry_after=2.5), remaining=10)
    assert decision == Decision("retry", 2.5, decision.reason)


def test_rate_limit_without_retry_after_fails_over() -> None:
    decision = run(RateLimited("slow", status=429))
    assert decision.action == "failover"
    assert "Retry-After" in decision.reason


def test_rate_limit_with_long_retry_after_fails_over() -> None:
    retry = RetryConfig(max_retry_after=10)
    assert run(RateLimited("slow", retry_after=10.0), retry=retry).action == "retry"
    decision = run(RateLimited("slow", retry_after=10.5), retry=retry)
    assert decision.action == "failover"
    assert "max_retry_after" in decision.reason


def test_rate_limit_that_does_not_fit_the_deadline_fails_over() -> None:
    err = RateLimited("slow", retry_after=3.0)
    assert run(err, remaining=3.5).action == "retry"
    assert run(err, remaining=3.0).action == "failover"
    assert run(err, remaining=1.0).action == "failover"


def test_insufficient_quota_is_never_retried() -> None:
    err = RateLimited("quota", status=429, retry_after=1.0, code="insufficient_quota")
    assert run(err).action == "failover"


# -- deadline and budget ---------------------------------------------------------------------


def test_backoff_must_fit_the_remaining_deadline() -> None:
    err = ServerError("boom", status=500)
    delay = backoff_delay(1, RETRY, random.Random(5))
    assert run(err, remaining=delay + 0.001, seed=5).action == "retry"
    assert run(err, remaining=delay, seed=5).action == "failover"
    assert run(err, remaining=0.0).action == "failover"


def test_no_budget_no_retry() -> None:
    clock = FakeClock()
    budget = RetryBudget(0.0, 0, clock)
    budget.on_request()
    decision = run(ServerError("boom", status=500), budget=budget)
    assert decision.action == "failover"
    assert "budget" in decision.reason


def test_a_failover_decision_spends_no_budget() -> None:
    budget = RetryBudget(0.0, 1, FakeClock())
    assert run(Timeout("slow"), budget=budget).action == "failover"
    assert run(RateLimited("slow", retry_after=60), budget=budget).action == "failover"
    assert run(ServerError("boom"), attempt=2, budget=budget).action == "failover"
    assert budget.available() == 1
    assert run(ServerError("boom"), budget=budget).action == "retry"
    assert budget.available() == 0


def test_budget_floor_allows_three_retries_per_10s_whatever_the_ratio() -> None:
    clock = FakeClock()
    budget = RetryBudget(0.0, 3, clock)
    assert [budget.try_spend() for _ in range(4)] == [True, True, True, False]
    clock.advance(9)
    assert not budget.try_spend()
    clock.advance(1.5)  # the first three spends are older than 10 s now
    assert [budget.try_spend() for _ in range(4)] == [True, True, True, False]


def test_budget_ratio_caps_retries_at_a_share_of_requests() -> None:
    clock = FakeClock()
    budget = RetryBudget(0.2, 3, clock)
    for _ in range(50):
        budget.on_request()
    spent = 0
    while budget.try_spend():
        spent += 1
    assert spent == 10  # 0.2 x 50, above the floor of 3
    budget.on_request()
    budget.on_request()
    budget.on_request()
    budget.on_request()
    budget.on_request()  # 55 requests: 11 retries allowed
    assert budget.try_spend()
    assert not budget.try_spend()


def test_budget_requests_slide_out_of_the_window() -> None:
    clock = FakeClock()
    budget = RetryBudget(0.5, 0, clock)
    for _ in range(10):
        budget.on_request()
    clock.advance(11)
    assert not budget.try_spend()
    budget.on_request()
    budget.on_request()
    assert budget.try_spend()
    assert not budget.try_spend()


def test_storm_of_failures_is_capped_by_the_budget() -> None:
    clock = FakeClock()
    budget = RetryBudget(0.2, 3, clock)
    retries = 0
    for _ in range(100):
        budget.on_request()
        if run(ConnectionFailed("reset"), budget=budget).action == "retry":
            retries += 1
        clock.advance(0.01)
    assert retries == 20


# -- route overrides -------------------------------------------------------------------------


def test_override_failover_forbids_a_retry() -> None:
    err = ServerError("boom", status=500)
    decision = run(err, overrides={"ServerError": "failover"})
    assert decision.action == "failover"
    assert "route" in decision.reason


def test_override_retry_forces_a_retry_on_a_non_transient_kind() -> None:
    for err in (Overloaded("busy", status=503), Timeout("slow"), ContentFiltered("no")):
        overrides = {err.kind: "retry"}
        assert run(err, overrides=overrides).action == "retry", err
        assert run(err, overrides=overrides, attempt=2).action == "failover"
        assert run(err, overrides=overrides, remaining=0.0).action == "failover"
        empty = RetryBudget(0.0, 0, FakeClock())
        assert run(err, overrides=overrides, budget=empty).action == "failover"


def test_override_retry_on_rate_limit_without_retry_after_uses_backoff() -> None:
    decision = run(RateLimited("slow"), overrides={"RateLimited": "retry"}, seed=9)
    assert decision.action == "retry"
    assert decision.delay == backoff_delay(1, RETRY, random.Random(9))


def test_override_raise_raises() -> None:
    decision = run(ServerError("boom", status=500), overrides={"ServerError": "raise"})
    assert decision.action == "raise"


# -- rolling counts ---------------------------------------------------------------------------


def test_rolling_counts_drop_buckets_older_than_the_span() -> None:
    clock = FakeClock(now=0.0)
    counts = RollingCounts(10.0)
    for _ in range(20):
        counts.add(clock(), 1, 1)
        clock.advance(1.0)
    assert counts.totals(clock()) == (9, 9)  # t = 11..19 are within the last 10 s buckets


def test_rolling_counts_dump_and_load() -> None:
    counts = RollingCounts(10.0)
    counts.add(3.0, 2, 1)
    twin = RollingCounts(10.0)
    twin.load(counts.dump())
    assert twin.totals(3.5) == (2, 1)
    other_layout = RollingCounts(20.0)
    other_layout.add(3.0)
    other_layout.load(counts.dump())
    assert other_layout.totals(3.5) == (0, 0)


def test_decision_defaults() -> None:
    assert Decision("failover") == Decision("failover", 0.0, "")
