"""Each measure's definition, on scripted timelines (no router, no clock): what the
drill reports is what docs/drills.md says it is."""

from __future__ import annotations

import pytest

from failover.drills import (
    DrillRequest,
    impact,
    outcome_counts,
    percentile,
    rpo_met,
    rto_met,
    time_to_detect,
    time_to_recover,
)


def served(t: float, latency: float = 0.01, *, timeout: bool = False) -> DrillRequest:
    return DrillRequest(t, latency, "served", provider="backup", paid_timeout=timeout)


def test_a_hang_is_detected_before_it_is_recovered() -> None:
    """Three requests pay a 2 s timeout before the breaker opens at 6 s: recovery is the
    fourth request's start, after detection; today's "RTO 2 s" was the first's end."""
    requests = [served(0.0, 2.01, timeout=True), served(2.01, 2.01, timeout=True),
                served(4.02, 2.01, timeout=True), served(6.03), served(6.04), served(6.05)]
    events = [(2.0, "attempt_failed"), (6.03, "breaker_opened"), (6.03, "failover")]
    detect, recover = time_to_detect(events), time_to_recover(requests)
    assert detect == 6.03 and recover == 6.03
    assert detect <= recover
    paid = impact(requests)
    assert (paid.requests, paid.paid_timeout) == (6, 3)
    assert (paid.p50_s, paid.p99_s) == (0.01, 2.01)
    assert impact(requests, until=4.0).paid_timeout == 2  # the fault ended at 4 s


def test_a_total_outage_with_deferral_is_not_recovered_nothing_lost_all_deferred() -> None:
    requests = [DrillRequest(i * 0.01, 0.01, "deferred", ticket=f"t{i}") for i in range(20)]
    events = [(0.0, "all_providers_failed"), (0.0, "deferred")]
    assert time_to_detect(events) == 0.0
    assert time_to_recover(requests) is None
    counts = outcome_counts(requests)
    assert (counts["deferred"], counts["lost"], counts["served"]) == (20, 0, 0)
    assert not rto_met(None, 2.0)
    assert rpo_met(counts["lost"], 0, deferred_verified=True)


def test_a_lost_request_fails_the_rpo() -> None:
    requests = [served(0.0), DrillRequest(0.1, 0.01, "lost"), served(0.2)]
    assert outcome_counts(requests)["lost"] == 1
    assert not rpo_met(1, 0, deferred_verified=True)
    assert rpo_met(1, 1, deferred_verified=True)
    # A deferral the store does not hold fails it too, whatever was counted.
    assert not rpo_met(0, 0, deferred_verified=False)


def test_recovery_needs_k_consecutive_normal_requests() -> None:
    """A flaky provider that serves one request between failures has not recovered."""
    failed = DrillRequest(0.0, 0.01, "failed", error_kind="AllProvidersFailed")
    degraded = DrillRequest(0.0, 0.01, "degraded", provider="fallback")
    requests = [served(0.0), DrillRequest(0.1, 0.01, "failed"), served(0.2), served(0.3),
                DrillRequest(0.4, 0.01, "degraded"), served(0.5), served(0.6), served(0.7)]
    assert time_to_recover(requests, run=3) == 0.5
    assert time_to_recover(requests, run=2) == 0.2
    assert time_to_recover(requests, run=1) == 0.0
    assert time_to_recover(requests, run=4) is None
    # A manual fallback's answer is degraded service, not recovery.
    assert time_to_recover([replace_t(degraded, i * 0.1) for i in range(5)]) is None
    assert time_to_recover([replace_t(failed, i * 0.1) for i in range(5)]) is None
    with pytest.raises(ValueError, match="at least 1"):
        time_to_recover(requests, run=0)


def test_warm_up_requests_and_events_before_the_onset_do_not_count() -> None:
    requests = [served(-0.3), served(-0.2), served(-0.1), DrillRequest(0.0, 0.01, "failed")]
    assert time_to_recover(requests) is None
    assert time_to_detect([(-1.0, "breaker_opened")]) is None
    assert outcome_counts(requests)["served"] == 0


def test_served_after_a_timeout_is_served_but_not_normal() -> None:
    requests = [served(0.0, 30.0, timeout=True), served(30.0, 30.0, timeout=True)]
    assert outcome_counts(requests)["served"] == 2
    assert time_to_recover(requests, run=1) is None


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (
        50.0, 99.0, 100.0)
    assert percentile([], 50) is None
    assert impact([], None).p99_s is None


def replace_t(request: DrillRequest, t: float) -> DrillRequest:
    from dataclasses import replace

    return replace(request, t_s=t)
