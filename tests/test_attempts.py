"""The attempt machine alone: actions out, outcomes in; no HTTP, no router, the clock
injected. Providers and routes are the real live state built from a config (their
adapters are never called)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import failover
from failover._attempts import (
    Attempts,
    Defer,
    Done,
    Fail,
    HedgeWait,
    Note,
    RunFallback,
    Try,
    Wait,
)
from failover._breaker import Transition
from failover._errors import (
    ContextWindowExceeded,
    Overloaded,
    RateLimited,
    ServerError,
    StreamInterrupted,
    Timeout,
)
from failover._models import build_request
from failover._state import State, build_state
from failover.testing import FakeClock

PROVIDERS = {
    name: {"type": "openai", "model": "gpt-4o-mini", "api_key": f"sk-test-{name}-0123456789"}
    for name in ("primary", "backup", "last")
}


def state_of(tmp_path: Path, clock: FakeClock, **route: Any) -> State:
    config = failover.Config.from_mapping({
        "providers": PROVIDERS,
        "routes": {"default": {"chain": ["primary", "backup", "last"], **route}},
    })
    return build_state(config, clock, None, tmp_path / "deferred.db")


def machine(state: State, clock: FakeClock, **options: Any) -> Attempts:
    route = state.routes["default"]
    return Attempts(state.config, route, build_request("hi", route="default"), clock,
                    clock(), options.pop("deadline_s", route.config.deadline), **options)


def notes(m: Attempts) -> list[str]:
    return [item.type if isinstance(item, Note) else f"{item.provider}:{item.new}"
            for item in m.outbox]


@pytest.fixture
def state(tmp_path: Path, clock: FakeClock) -> State:
    return state_of(tmp_path, clock)


def test_a_healthy_request_is_one_try_and_done(state: State, clock: FakeClock) -> None:
    m = machine(state, clock)
    action = m.start()
    assert isinstance(action, Try) and action.provider.name == "primary" and action.tries == 1
    clock.advance(0.25)
    done = m.succeeded(action, failover.Response(text="ok", finish_reason="stop"))
    assert isinstance(done, Done) and not done.fell_back
    assert done.response.provider == "primary" and done.response.latency_s == 0.25
    assert [(a.provider, a.outcome) for a in m.attempts] == [("primary", "ok")]
    assert m.outbox == []  # nothing to publish on the healthy path


@pytest.mark.parametrize("stream", [False, True])
def test_every_request_counts_toward_the_retry_budget(
    state: State, clock: FakeClock, stream: bool
) -> None:
    # The budget allows 20% of requests as retries (above a floor of 3 per 10 s): a
    # stream is a request like any other.
    budget = state.providers["primary"].budget
    for _ in range(100):
        action = machine(state, clock, stream=stream).start()
        assert isinstance(action, Try)
    assert budget.available() == 20


def test_a_500_waits_then_retries_the_same_provider(state: State, clock: FakeClock) -> None:
    m = machine(state, clock)
    first = m.start()
    assert isinstance(first, Try)
    wait = m.failed(first, ServerError("boom", status=500))
    assert isinstance(wait, Wait) and wait.provider.name == "primary" and wait.delay >= 0
    assert wait.permit is not None  # asked for before the backoff
    again = m.waited(wait)
    assert isinstance(again, Try) and again.provider.name == "primary" and again.tries == 2
    assert notes(m) == ["attempt_failed"]


def test_a_503_fails_over_and_says_so(state: State, clock: FakeClock) -> None:
    m = machine(state, clock)
    first = m.start()
    assert isinstance(first, Try)
    nxt = m.failed(first, Overloaded("busy", status=503))
    assert isinstance(nxt, Try) and nxt.provider.name == "backup"
    assert notes(m) == ["attempt_failed", "failover"]


def test_a_429_with_retry_after_waits_before_asking_the_breaker(
    state: State, clock: FakeClock
) -> None:
    m = machine(state, clock)
    first = m.start()
    assert isinstance(first, Try)
    wait = m.failed(first, RateLimited("slow", status=429, retry_after=2.0))
    assert isinstance(wait, Wait) and wait.delay == 2.0 and wait.permit is None
    assert notes(m) == ["attempt_failed", "primary:open"]  # the cool-down
    clock.advance(2.0)
    again = m.waited(wait)
    assert isinstance(again, Try) and again.provider.name == "primary" and again.permit.probe


def test_an_open_breaker_is_skipped_with_its_reason(state: State, clock: FakeClock) -> None:
    state.providers["primary"].breaker.force_open()
    m = machine(state, clock)
    action = m.start()
    assert isinstance(action, Try) and action.provider.name == "backup"
    assert m.skipped == {"primary": "breaker forced_open"}


def test_a_long_prompt_skips_providers_whose_window_is_no_larger(
    tmp_path: Path, clock: FakeClock
) -> None:
    state = state_of(tmp_path, clock)
    state.providers["primary"].context_window = 8_000
    state.providers["backup"].context_window = 8_000
    state.providers["last"].context_window = 128_000
    m = machine(state, clock)
    first = m.start()
    assert isinstance(first, Try)
    nxt = m.failed(first, ContextWindowExceeded("too long", status=400))
    assert isinstance(nxt, Try) and nxt.provider.name == "last"
    assert "context window 8000" in m.skipped["backup"]


def test_when_all_fail_the_fallback_runs_then_defer(tmp_path: Path, clock: FakeClock) -> None:
    state = state_of(tmp_path, clock, fallback={"defer": True})
    m = machine(state, clock)
    action = m.start()
    while isinstance(action, Try):
        action = m.failed(action, Overloaded("busy", status=503))
    assert isinstance(action, Defer)
    assert isinstance(action.failure, failover.AllProvidersFailed)
    assert notes(m)[-1] == "all_providers_failed"
    end = m.stored(action, "T-1")
    assert isinstance(end, Fail) and isinstance(end.error, failover.Deferred)
    assert end.error.ticket == "T-1" and end.cause is action.failure
    refused = m.stored(action, OSError("disk full"))
    assert isinstance(refused.error, failover.DeferFailed)


def test_a_fallback_answer_is_done_and_a_bad_one_defers_or_raises(
    state: State, clock: FakeClock
) -> None:
    state.routes["default"].fallback = lambda request, failure: "manual"
    m = machine(state, clock)
    action = m.start()
    while isinstance(action, Try):
        action = m.failed(action, Overloaded("busy", status=503))
    assert isinstance(action, RunFallback)
    done = m.fallback_answered("manual answer")
    assert done.fell_back and done.response.provider == "fallback" and m.fell_back
    with pytest.raises(TypeError, match="must return a str"):
        m.fallback_answered(42)
    end = m.fallback_failed(action, RuntimeError("runbook down"))
    assert isinstance(end, Fail) and end.error is action.failure
    assert isinstance(end.cause, RuntimeError)


def test_replay_never_falls_back(state: State, clock: FakeClock) -> None:
    state.routes["default"].fallback = lambda request, failure: "manual"
    m = machine(state, clock, fall_back=False)
    action = m.start()
    while isinstance(action, Try):
        action = m.failed(action, Overloaded("busy", status=503))
    assert isinstance(action, Fail) and isinstance(action.error, failover.AllProvidersFailed)
    assert "all_providers_failed" not in notes(m)


def test_the_deadline_ends_the_request_whatever_is_left(state: State, clock: FakeClock) -> None:
    m = machine(state, clock, deadline_s=2.0)
    first = m.start()
    assert isinstance(first, Try) and first.timeout == 2.0
    clock.advance(2.0)
    end = m.failed(first, Timeout("slow"))
    assert isinstance(end, Fail) and isinstance(end.error, failover.DeadlineExceeded)


def test_a_timeout_cut_by_the_deadline_is_deadline_exceeded_however_loaded(
    state: State, clock: FakeClock
) -> None:
    # The attempt's bound was what was left of the deadline, rounded down a little: it
    # ended 90 ms before the deadline, and the deadline is still what ran out.
    m = machine(state, clock, deadline_s=2.0)
    first = m.start()
    assert isinstance(first, Try)
    clock.advance(1.91)
    end = m.failed(first, Timeout("slow"))
    assert isinstance(end, Fail) and isinstance(end.error, failover.DeadlineExceeded)


def test_a_cancelled_probe_gives_its_permit_back(state: State, clock: FakeClock) -> None:
    breaker = state.providers["primary"].breaker
    for _ in range(breaker.config.consecutive_failures):
        permit = breaker.allow()
        assert permit is not None
        breaker.on_failure(permit)
    clock.advance(breaker.config.open_for)
    m = machine(state, clock)
    probe = m.start()
    assert isinstance(probe, Try) and probe.provider.name == "primary" and probe.permit.probe
    assert breaker.allow() is None  # the one probe slot is taken
    m.cancelled(probe)
    assert m.attempts[-1].outcome == "cancelled"
    again = breaker.allow()
    assert again is not None and again.probe


def test_a_broken_stream_restarts_on_the_next_provider_or_raises(
    tmp_path: Path, clock: FakeClock
) -> None:
    for policy, expected in (("restart", Try), ("raise", Fail)):
        state = state_of(tmp_path, clock, stream_interrupt=policy)
        m = machine(state, clock, stream=True)
        first = m.start()
        assert isinstance(first, Try)
        m.shown(first)
        nxt = m.failed(first, StreamInterrupted("cut", partial_text="Hal"))
        assert isinstance(nxt, expected)
        if isinstance(nxt, Try):
            assert nxt.provider.name == "backup" and nxt.restart is not None
            assert "primary failed mid-stream" in nxt.restart.reason
        else:
            assert isinstance(nxt.error, StreamInterrupted)
            assert nxt.error.partial_text == "Hal"


def hedged(tmp_path: Path, clock: FakeClock) -> tuple[State, Attempts, Try, Try]:
    """A hedged request whose primary was silent for the 100 ms hedge delay."""
    state = state_of(tmp_path, clock, hedge={"after": "100ms"})
    m = machine(state, clock, hedged=True)
    slow = m.start()
    assert isinstance(slow, Try)
    assert m.waiting() == HedgeWait(0.1)
    clock.advance(0.1)
    hedge = m.hedge_due()
    assert isinstance(hedge, Try) and hedge.provider.name == "backup"
    return state, m, slow, hedge


def test_a_hedge_starts_the_next_provider_and_the_loser_is_outrun(
    tmp_path: Path, clock: FakeClock
) -> None:
    state, m, slow, hedge = hedged(tmp_path, clock)
    assert m.waiting() == HedgeWait(None)  # max_extra: one hedge at a time
    clock.advance(0.05)
    done = m.succeeded(hedge, failover.Response(text="fast", finish_reason="stop"))
    assert isinstance(done, Done)
    m.abandoned(slow, won=True)
    outrun = m.attempts[-1]
    assert (outrun.provider, outrun.outcome, outrun.error_kind) == (
        "primary", "cancelled", "Timeout")
    assert state.providers["primary"].breaker.consecutive_failures == 1


def test_a_hedged_failure_waits_for_the_others_then_moves_on(
    tmp_path: Path, clock: FakeClock
) -> None:
    state, m, slow, hedge = hedged(tmp_path, clock)
    # A hedged request never retries the same provider, so no budget is spent.
    assert isinstance(m.failed(hedge, ServerError("boom", status=500)), HedgeWait)
    nxt = m.failed(slow, ServerError("boom", status=500))
    assert isinstance(nxt, Try) and nxt.provider.name == "last"
    assert state.providers["primary"].budget.available() == 3


def test_transitions_are_values_for_the_driver_to_publish(
    state: State, clock: FakeClock
) -> None:
    needed = state.providers["primary"].breaker.config.consecutive_failures
    for n in range(1, needed + 1):
        m = machine(state, clock)
        first = m.start()
        assert isinstance(first, Try) and first.provider.name == "primary"
        m.failed(first, Overloaded("busy", status=503))
        opened = [(t.provider, t.old, t.new) for t in m.outbox if isinstance(t, Transition)]
        assert opened == ([("primary", "closed", "open")] if n == needed else [])
    # Nothing was published from inside the machine: the next request just skips.
    assert machine(state, clock).start().provider.name == "backup"  # type: ignore[union-attr]
