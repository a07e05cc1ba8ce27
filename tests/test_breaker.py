from __future__ import annotations

import json
from typing import Any

import pytest

from failover._breaker import DEFAULT_PROBE_LEASE, Breaker, BreakerView, Permit, Transition
from failover._clock import FakeClock
from failover._config import BreakerConfig


def state(breaker: Breaker) -> str:
    """Read the state afresh (a plain ``breaker.state`` would be narrowed by mypy)."""
    return breaker.state


def make(clock: FakeClock, **settings: Any) -> Breaker:
    return Breaker("primary", BreakerConfig(**settings), clock)


def fail(breaker: Breaker, n: int = 1, **kw: Any) -> list[Transition]:
    out: list[Transition] = []
    for _ in range(n):
        permit = breaker.allow()
        assert permit is not None
        out += breaker.on_failure(permit, **kw)
    return out


def succeed(breaker: Breaker, n: int = 1) -> list[Transition]:
    out: list[Transition] = []
    for _ in range(n):
        permit = breaker.allow()
        assert permit is not None
        out += breaker.on_success(permit)
    return out


def trip(breaker: Breaker) -> None:
    """Open a default-config breaker through consecutive failures."""
    fail(breaker, breaker.config.consecutive_failures)
    assert state(breaker) == "open"


def to_half_open(breaker: Breaker, clock: FakeClock) -> None:
    trip(breaker)
    assert breaker.open_until is not None
    clock.advance(breaker.open_until - clock())
    assert state(breaker) == "half_open"
    assert [t.new for t in breaker.take_transitions()] == ["half_open"]


# -- closed ---------------------------------------------------------------------------


def test_starts_closed_and_closed_permit_is_shared() -> None:
    breaker = make(FakeClock())
    assert state(breaker) == "closed"
    first, second = breaker.allow(), breaker.allow()
    assert first is not None
    assert first is second
    assert not first.probe


def test_consecutive_failures_open_the_breaker() -> None:
    clock = FakeClock()
    breaker = make(clock, consecutive_failures=3, min_calls=100)
    assert fail(breaker, 2) == []
    assert breaker.consecutive_failures == 2
    (opened,) = fail(breaker)
    assert opened == Transition("primary", "closed", "open", "consecutive_failures", clock() + 5)
    assert state(breaker) == "open"
    assert breaker.open_until == clock() + 5


def test_a_success_resets_the_consecutive_count() -> None:
    breaker = make(FakeClock(), consecutive_failures=3, min_calls=100)
    fail(breaker, 2)
    succeed(breaker)
    assert breaker.consecutive_failures == 0
    fail(breaker, 2)
    assert state(breaker) == "closed"


def test_failure_rate_opens_only_with_min_calls() -> None:
    clock = FakeClock()
    breaker = make(clock, min_calls=6, failure_rate=0.5, consecutive_failures=100)
    succeed(breaker, 3)
    fail(breaker, 2)  # 2/5: below min_calls and below the rate
    assert state(breaker) == "closed"
    (opened,) = fail(breaker)  # 3/6 = 50%
    assert opened.reason == "failure_rate"
    assert state(breaker) == "open"


def test_failure_rate_below_threshold_stays_closed() -> None:
    breaker = make(FakeClock(), min_calls=5, failure_rate=0.5, consecutive_failures=100)
    for _ in range(10):
        succeed(breaker, 2)
        fail(breaker)  # 1 in 3 fail: 33%
    assert state(breaker) == "closed"


def test_min_calls_not_reached_keeps_it_closed_even_at_full_failure_rate() -> None:
    breaker = make(FakeClock(), min_calls=5, failure_rate=0.5, consecutive_failures=100)
    fail(breaker, 4)
    assert state(breaker) == "closed"
    fail(breaker)
    assert state(breaker) == "open"


def test_old_calls_slide_out_of_the_window() -> None:
    clock = FakeClock()
    breaker = make(clock, window=10, min_calls=4, failure_rate=0.5, consecutive_failures=100)
    fail(breaker, 3)
    clock.advance(11)  # those three failures are out of the window now
    fail(breaker)
    succeed(breaker, 3)
    fail(breaker)  # 2/5 = 40%; with the old three it would be 5/8
    assert state(breaker) == "closed"
    (opened,) = fail(breaker)  # 3/6 = 50%
    assert opened.reason == "failure_rate"


def test_window_counts_calls_spread_inside_the_window() -> None:
    clock = FakeClock()
    breaker = make(clock, window=30, min_calls=4, failure_rate=0.75, consecutive_failures=100)
    for _ in range(3):
        fail(breaker)
        clock.advance(7)  # 21 s in total: all three still inside the 30 s window
    (opened,) = fail(breaker)
    assert opened.reason == "failure_rate"


def test_window_memory_is_bounded() -> None:
    clock = FakeClock()
    breaker = make(clock, window=10, min_calls=10**9, consecutive_failures=10**9)
    for _ in range(5000):
        fail(breaker)
        succeed(breaker)
        clock.advance(0.37)
    window = breaker.snapshot()["window"]
    assert isinstance(window, dict)
    assert len(window["ids"]) == 10


# -- open and half-open -------------------------------------------------------------------


def test_open_breaker_skips_until_open_for_then_turns_half_open_lazily() -> None:
    clock = FakeClock()
    breaker = make(clock, open_for=5)
    trip(breaker)
    breaker.take_transitions()
    clock.advance(4.999)
    assert breaker.allow() is None
    assert state(breaker) == "open"
    clock.advance(0.001)
    assert state(breaker) == "half_open"
    assert breaker.view() == BreakerView("half_open", None, breaker.config.consecutive_failures)
    (half,) = breaker.take_transitions()
    assert (half.old, half.new, half.reason) == ("open", "half_open", "open_elapsed")
    assert breaker.take_transitions() == []


def test_half_open_transition_reaches_the_next_result_if_not_taken() -> None:
    clock = FakeClock()
    breaker = make(clock)
    trip(breaker)
    clock.advance(5)
    probe = breaker.allow()
    assert probe is not None
    assert probe.probe
    transitions = breaker.on_success(probe)
    assert [(t.old, t.new) for t in transitions] == [("open", "half_open"), ("half_open", "closed")]


def test_half_open_lets_exactly_k_probes_through_out_of_100_callers() -> None:
    clock = FakeClock()
    breaker = make(clock, half_open_probes=3)
    to_half_open(breaker, clock)
    permits = [breaker.allow() for _ in range(100)]
    granted = [p for p in permits if p is not None]
    assert len(granted) == 3
    assert len({id(p) for p in granted}) == 3


def test_probe_success_closes_and_resets_counters_and_open_time() -> None:
    clock = FakeClock()
    breaker = make(clock, open_for=5, max_open_for=40)
    to_half_open(breaker, clock)
    fail(breaker)  # reopens for 10
    clock.advance(10)
    (closed,) = [t for t in succeed(breaker) if t.new == "closed"]
    assert closed == Transition("primary", "half_open", "closed", "probe_succeeded", None)
    assert state(breaker) == "closed"
    assert breaker.consecutive_failures == 0
    assert breaker.open_for == 5
    # Fresh window: the failures before opening do not count against the new period.
    fail(breaker, 2)
    assert state(breaker) == "closed"
    (opened,) = fail(breaker)
    assert opened.open_until == clock() + 5


def test_probe_failure_doubles_the_open_time_up_to_max_open_for() -> None:
    clock = FakeClock()
    breaker = make(clock, open_for=5, max_open_for=30)
    trip(breaker)
    durations = []
    for _ in range(5):
        assert breaker.open_until is not None
        clock.advance(breaker.open_until - clock())
        probe = breaker.allow()
        assert probe is not None
        reopened = breaker.on_failure(probe)[-1]
        assert (reopened.old, reopened.new, reopened.reason) == (
            "half_open",
            "open",
            "probe_failed",
        )
        assert reopened.open_until is not None
        durations.append(reopened.open_until - clock())
    assert durations == [10, 20, 30, 30, 30]


def test_other_callers_are_skipped_while_the_probe_is_out() -> None:
    clock = FakeClock()
    breaker = make(clock, half_open_probes=1)
    to_half_open(breaker, clock)
    probe = breaker.allow()
    assert probe is not None
    assert breaker.allow() is None
    breaker.on_success(probe)
    assert breaker.allow() is not None


def test_release_returns_a_probe_permit_without_recording() -> None:
    clock = FakeClock()
    breaker = make(clock, half_open_probes=1)
    to_half_open(breaker, clock)
    breaker.take_transitions()
    probe = breaker.allow()
    assert probe is not None
    assert breaker.allow() is None
    breaker.release(probe)
    assert state(breaker) == "half_open"
    assert breaker.take_transitions() == []
    again = breaker.allow()
    assert again is not None
    assert again is not probe
    # The released permit no longer decides anything.
    assert breaker.on_success(probe) == []
    assert state(breaker) == "half_open"


def test_release_of_a_closed_permit_records_nothing() -> None:
    breaker = make(FakeClock(), consecutive_failures=2)
    fail(breaker)
    before = breaker.snapshot()
    permit = breaker.allow()
    assert permit is not None
    breaker.release(permit)
    assert breaker.snapshot() == before
    assert breaker.consecutive_failures == 1


def test_expired_lease_of_a_hung_probe_is_reclaimed() -> None:
    clock = FakeClock()
    breaker = make(clock, half_open_probes=1, probe_lease=20)
    to_half_open(breaker, clock)
    hung = breaker.allow()
    assert hung is not None
    assert hung.expires == clock() + 20
    clock.advance(19.9)
    assert breaker.allow() is None
    clock.advance(0.1)
    fresh = breaker.allow()
    assert fresh is not None
    assert fresh is not hung
    # The hung probe finally answers: too late, its lease is gone; only `fresh` decides.
    assert breaker.on_success(hung) == []
    assert state(breaker) == "half_open"
    assert breaker.on_failure(hung) == []
    assert state(breaker) == "half_open"
    assert breaker.on_success(fresh)[-1].new == "closed"


def test_an_expired_probe_not_yet_reclaimed_does_not_decide_either() -> None:
    clock = FakeClock()
    breaker = make(clock, probe_lease=10)
    to_half_open(breaker, clock)
    probe = breaker.allow()
    assert probe is not None
    clock.advance(10)
    breaker.take_transitions()
    assert breaker.on_success(probe) == []
    assert state(breaker) == "half_open"
    assert breaker.allow() is not None  # its slot is free again


def test_default_probe_lease() -> None:
    clock = FakeClock()
    breaker = make(clock, open_for=5)
    to_half_open(breaker, clock)
    probe = breaker.allow()
    assert probe is not None
    assert probe.expires == clock() + DEFAULT_PROBE_LEASE
    long_open = make(clock, open_for=60, max_open_for=60)
    to_half_open(long_open, clock)
    probe = long_open.allow()
    assert probe is not None
    assert probe.expires == clock() + 60


# -- long open ---------------------------------------------------------------------------


def test_long_open_failure_opens_at_once_for_max_open_for() -> None:
    clock = FakeClock()
    breaker = make(clock, open_for=5, max_open_for=30, consecutive_failures=3)
    (opened,) = fail(breaker, long_open=True)
    assert (opened.new, opened.reason, opened.open_until) == ("open", "long_open", clock() + 30)
    clock.advance(29)
    assert breaker.allow() is None


def test_long_open_probe_failure_reopens_for_max_open_for() -> None:
    clock = FakeClock()
    breaker = make(clock, open_for=5, max_open_for=30)
    to_half_open(breaker, clock)
    reopened = fail(breaker, long_open=True)[-1]
    assert (reopened.reason, reopened.open_until) == ("long_open", clock() + 30)
    clock.advance(30)
    reopened = fail(breaker)[-1]
    assert reopened.open_until == clock() + 30  # already at the cap


# -- rate limits ----------------------------------------------------------------------------


def test_rate_limit_with_retry_after_cools_down_without_counting_a_failure() -> None:
    clock = FakeClock()
    breaker = make(clock, open_for=5, consecutive_failures=2)
    fail(breaker)
    permit = breaker.allow()
    assert permit is not None
    (cooling,) = breaker.on_rate_limited(permit, 2.5)
    assert cooling == Transition("primary", "closed", "open", "rate_limited", clock() + 2.5)
    assert breaker.consecutive_failures == 1
    assert breaker.open_for == 5
    clock.advance(2.4)
    assert breaker.allow() is None
    clock.advance(0.1)
    probe = breaker.allow()
    assert probe is not None
    assert breaker.on_success(probe)[-1].new == "closed"


def test_rate_limit_cooldown_does_not_double_the_open_time() -> None:
    clock = FakeClock()
    breaker = make(clock, open_for=5, max_open_for=30)
    to_half_open(breaker, clock)
    probe = breaker.allow()
    assert probe is not None
    cooling = breaker.on_rate_limited(probe, 1)[-1]
    assert (cooling.old, cooling.new, cooling.open_until) == ("half_open", "open", clock() + 1)
    assert breaker.open_for == 5
    clock.advance(1)
    reopened = fail(breaker)[-1]
    assert reopened.open_until == clock() + 10  # one doubling, from the failed probe only


def test_rate_limit_without_retry_after_just_releases() -> None:
    clock = FakeClock()
    breaker = make(clock, half_open_probes=1)
    permit = breaker.allow()
    assert permit is not None
    assert breaker.on_rate_limited(permit, None) == []
    assert state(breaker) == "closed"
    to_half_open(breaker, clock)
    breaker.take_transitions()
    probe = breaker.allow()
    assert probe is not None
    assert breaker.on_rate_limited(probe, None) == []
    assert state(breaker) == "half_open"
    assert breaker.allow() is not None  # the probe slot came back


def test_many_rate_limits_in_flight_open_once() -> None:
    clock = FakeClock()
    breaker = make(clock)
    permits = [breaker.allow() for _ in range(5)]
    transitions = []
    for permit in permits:
        assert permit is not None
        transitions += breaker.on_rate_limited(permit, 3)
    assert len(transitions) == 1
    assert breaker.open_until == clock() + 3


# -- forced states and reset --------------------------------------------------------------


def test_forced_open_skips_everything_until_reset() -> None:
    clock = FakeClock()
    breaker = make(clock)
    (forced,) = breaker.force_open()
    assert forced == Transition("primary", "closed", "forced_open", "forced", None)
    assert breaker.force_open() == []
    clock.advance(10_000)
    assert state(breaker) == "forced_open"
    assert breaker.allow() is None
    (back,) = breaker.reset()
    assert (back.old, back.new, back.reason) == ("forced_open", "closed", "reset")
    assert breaker.allow() is not None


def test_forced_closed_never_opens_but_still_counts() -> None:
    breaker = Breaker(
        "primary", BreakerConfig(consecutive_failures=2), FakeClock(), forced="closed"
    )
    assert state(breaker) == "forced_closed"
    assert fail(breaker, 10) == []
    fail(breaker, 2, long_open=True)
    assert state(breaker) == "forced_closed"
    assert breaker.consecutive_failures == 12
    permit = breaker.allow()
    assert permit is not None
    assert breaker.on_rate_limited(permit, 5) == []
    assert state(breaker) == "forced_closed"


def test_forced_from_constructor_and_api_override_an_open_breaker() -> None:
    clock = FakeClock()
    assert Breaker("p", BreakerConfig(), clock, forced="open").allow() is None
    breaker = make(clock)
    trip(breaker)
    breaker.take_transitions()
    (forced,) = breaker.force_closed()
    assert (forced.old, forced.new) == ("open", "forced_closed")
    assert breaker.allow() is not None
    (forced,) = breaker.force_open()
    assert (forced.old, forced.new) == ("forced_closed", "forced_open")


def test_reset_clears_counters_and_open_time() -> None:
    clock = FakeClock()
    breaker = make(clock, open_for=5, max_open_for=30, consecutive_failures=3)
    to_half_open(breaker, clock)
    fail(breaker)  # open for 10 now
    (back,) = [t for t in breaker.reset() if t.new == "closed"]
    assert back.old == "open"
    assert state(breaker) == "closed"
    assert breaker.consecutive_failures == 0
    assert breaker.open_for == 5
    assert breaker.open_until is None
    fail(breaker, 2)
    assert state(breaker) == "closed"
    assert fail(breaker)[0].open_until == clock() + 5


def test_reset_of_a_closed_breaker_emits_nothing_but_forgets() -> None:
    breaker = make(FakeClock(), consecutive_failures=3)
    fail(breaker, 2)
    assert breaker.reset() == []
    fail(breaker, 2)
    assert state(breaker) == "closed"


# -- stale results ---------------------------------------------------------------------------


def test_stale_success_does_not_close_an_open_breaker() -> None:
    clock = FakeClock()
    breaker = make(clock)
    slow = breaker.allow()
    assert slow is not None
    trip(breaker)
    breaker.take_transitions()
    assert breaker.on_success(slow) == []
    assert state(breaker) == "open"
    assert breaker.consecutive_failures == 3


def test_stale_success_does_not_close_a_half_open_breaker_nor_take_a_probe_slot() -> None:
    clock = FakeClock()
    breaker = make(clock)
    slow = breaker.allow()
    assert slow is not None
    to_half_open(breaker, clock)
    breaker.take_transitions()
    assert breaker.on_success(slow) == []
    assert state(breaker) == "half_open"
    assert breaker.allow() is not None


def test_stale_failure_does_not_extend_or_reopen() -> None:
    clock = FakeClock()
    breaker = make(clock)
    slow = breaker.allow()
    assert slow is not None
    trip(breaker)
    open_until = breaker.open_until
    breaker.take_transitions()
    assert breaker.on_failure(slow) == []
    assert breaker.on_failure(slow, long_open=True) == []
    assert breaker.on_rate_limited(slow, 60) == []
    assert breaker.open_until == open_until


def test_failure_from_before_a_close_does_not_count_in_the_new_period() -> None:
    clock = FakeClock()
    breaker = make(clock, consecutive_failures=3)
    slow = [breaker.allow() for _ in range(3)]
    to_half_open(breaker, clock)
    succeed(breaker)
    assert state(breaker) == "closed"
    for permit in slow:
        assert permit is not None
        assert breaker.on_failure(permit) == []
    assert state(breaker) == "closed"
    assert breaker.consecutive_failures == 0


def test_results_begun_before_a_reset_are_ignored() -> None:
    breaker = make(FakeClock(), consecutive_failures=2)
    slow = breaker.allow()
    assert slow is not None
    fail(breaker)
    breaker.reset()
    breaker.on_failure(slow)
    assert breaker.consecutive_failures == 0


def test_a_probe_result_reported_twice_counts_once() -> None:
    clock = FakeClock()
    breaker = make(clock)
    to_half_open(breaker, clock)
    probe = breaker.allow()
    assert probe is not None
    breaker.on_success(probe)
    assert breaker.on_failure(probe) == []
    assert state(breaker) == "closed"


# -- snapshot / restore ------------------------------------------------------------------------


def test_snapshot_is_plain_data_and_restores_into_another_breaker() -> None:
    clock = FakeClock()
    source = make(clock, min_calls=100, consecutive_failures=100)
    fail(source, 4)
    succeed(source, 1)
    fail(source, 2)
    data = json.loads(json.dumps(source.snapshot()))
    twin = make(clock, min_calls=100, consecutive_failures=100)
    twin.restore(data)
    assert twin.snapshot() == source.snapshot()
    assert twin.consecutive_failures == 2


def test_restore_an_open_state_makes_it_skip_and_invalidates_old_permits() -> None:
    clock = FakeClock()
    source = make(clock)
    trip(source)
    twin = make(clock)
    before = twin.allow()
    assert before is not None
    twin.restore(source.snapshot())
    assert twin.take_transitions() == []
    assert state(twin) == "open"
    assert twin.allow() is None
    assert twin.on_success(before) == []
    assert state(twin) == "open"
    clock.advance(5)
    assert twin.allow() is not None


def test_restore_of_the_same_state_keeps_calls_in_flight_counting() -> None:
    clock = FakeClock()
    breaker = make(clock, consecutive_failures=2)
    in_flight = breaker.allow()
    assert in_flight is not None
    fail(breaker)
    breaker.restore(breaker.snapshot())
    assert breaker.on_failure(in_flight)[0].new == "open"


def test_restore_rejects_garbage() -> None:
    breaker = make(FakeClock())
    with pytest.raises(ValueError, match="breaker state"):
        breaker.restore({"state": "ajar"})
    with pytest.raises(ValueError, match="open_until"):
        breaker.restore({"state": "open", "open_until": "soon"})


def test_permit_repr_and_breaker_repr_are_readable() -> None:
    breaker = make(FakeClock())
    assert "closed" in repr(breaker)
    assert "closed" in repr(Permit(0, False, 0.0))


# -- consistency -------------------------------------------------------------------------


def test_reading_the_state_changes_nothing() -> None:
    clock = FakeClock()
    breaker = make(clock, open_for=5)
    trip(breaker)
    clock.advance(5)
    for _ in range(3):
        assert state(breaker) == "half_open"
    # Still open inside: the half_open transition waits for a permit to be asked for.
    assert breaker.snapshot()["state"] == "open"
    assert breaker.view().state == "half_open"
    permit = breaker.allow()
    assert permit is not None and permit.probe
    assert breaker.snapshot()["state"] == "half_open"



# --- slow calls ---------------------------------------------------------------------------


def answer_slowly(breaker: Breaker, n: int = 1) -> list[Transition]:
    out: list[Transition] = []
    for _ in range(n):
        permit = breaker.allow()
        assert permit is not None
        out += breaker.on_success(permit, slow=True)
    return out


def test_a_slow_call_rate_opens_the_breaker() -> None:
    clock = FakeClock()
    breaker = make(clock, slow_call=2.0, slow_call_rate=0.5, min_calls=4)
    succeed(breaker, 2)
    assert answer_slowly(breaker) == []  # 1 of 3: under min_calls
    (opened,) = answer_slowly(breaker)  # 2 of 4: the rate
    assert (opened.new, opened.reason) == ("open", "slow_calls")
    assert breaker.consecutive_failures == 0  # slow is not failed


def test_a_slow_probe_opens_again_and_a_fast_one_closes() -> None:
    clock = FakeClock()
    breaker = make(clock, slow_call=2.0, min_calls=1, slow_call_rate=1.0, open_for=5,
                   max_open_for=20)
    answer_slowly(breaker)
    clock.advance(5)
    (half_open, reopened) = answer_slowly(breaker)
    assert (half_open.new, reopened.new, reopened.reason) == ("half_open", "open", "probe_slow")
    assert breaker.open_for == 10
    clock.advance(10)
    transitions = succeed(breaker)
    assert [t.reason for t in transitions] == ["open_elapsed", "probe_succeeded"]


def test_slow_calls_travel_in_the_snapshot() -> None:
    clock = FakeClock()
    breaker = make(clock, slow_call=2.0, min_calls=4)
    answer_slowly(breaker, 3)
    other = make(clock, slow_call=2.0, min_calls=4)
    other.restore(json.loads(json.dumps(breaker.snapshot())))
    (opened,) = answer_slowly(other)
    assert opened.reason == "slow_calls"
