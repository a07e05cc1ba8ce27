"""Slow is a failure too: a provider whose latency creeps up is skipped on its slow-call
rate before any request times out, and gets traffic back once it is fast again."""

from __future__ import annotations

from typing import Any

import pytest

import failover
from failover.testing import FakeClock, FakeProviders, answer, sequence, slow

CREEP = [0.2, 0.5, 1.0, 2.5, 3.0, 4.0, 5.0, 6.0]


def config(**breaker: Any) -> failover.Config:
    return failover.Config.from_mapping({
        "providers": {
            "primary": {"type": "openai", "model": "gpt-4o-mini",
                        "api_key": "sk-slow-0123456789", "timeouts": {"request": "10s",
                                                                     "first_token": "10s"},
                        "breaker": {"slow_call": "2s", "slow_call_rate": 0.5, "min_calls": 4,
                                    "window": "60s", "open_for": "5s", "max_open_for": "10s",
                                    **breaker}},
            "backup": {"type": "anthropic", "model": "claude-haiku-4-5",
                       "api_key": "sk-ant-slow-0123456789"},
        },
        "routes": {"default": {"chain": ["primary", "backup"], "deadline": None}},
    })


def creeping() -> failover.testing.Behaviour:
    return sequence(*(slow(s, f"after {s}s") for s in CREEP))


@pytest.mark.parametrize("mode", ["complete", "stream"])
def test_creeping_latency_opens_on_the_slow_call_rate_before_any_timeout(
    clock: FakeClock, fake: FakeProviders, mode: str
) -> None:
    fake["primary"].set(creeping())
    fake["backup"].answer("from backup")
    served: list[failover.Response] = []
    with failover.Router(config(), clock=clock) as router:
        for _ in range(8):
            if mode == "complete":
                served.append(router.complete("hi"))
            else:
                served.extend(e.response for e in router.stream("hi")
                              if isinstance(e, failover.Completed))
        health = router.health()["primary"]
    providers = [r.provider for r in served]
    # 0.2, 0.5, 1, 2.5 (1 slow of 4), 3 (2 of 5), 4 (3 of 6: the rate): then skipped.
    assert providers == ["primary"] * 6 + ["backup"] * 2
    assert fake["primary"].calls == 6
    assert health.state == "open"
    assert not any(a.error_kind == "Timeout" for r in served for a in r.attempts)


def test_a_slow_provider_gets_traffic_back_when_it_is_fast_again(
    clock: FakeClock, fake: FakeProviders
) -> None:
    events: list[failover.Event] = []
    fake["primary"].set(sequence(*(slow(s) for s in CREEP[:6]), slow(5.0), answer("fast")))
    fake["backup"].answer("from backup")
    with failover.Router(config(), clock=clock) as router:
        router.subscribe(events.append)
        for _ in range(6):
            router.complete("hi")
        assert router.health()["primary"].state == "open"
        clock.advance(5)
        assert router.complete("hi").provider == "primary"  # a probe, still slow (5 s)
        assert router.health()["primary"].state == "open"
        clock.advance(10)
        assert router.complete("hi").provider == "primary"  # a fast probe
        assert router.health()["primary"].state == "closed"
        assert [router.complete("hi").provider for _ in range(3)] == ["primary"] * 3
    reasons = [e.data.get("reason") for e in events if e.provider == "primary"
               and e.type.startswith("breaker_")]
    assert reasons == ["slow_calls", "open_elapsed", "probe_slow", "open_elapsed",
                       "probe_succeeded"]


def test_without_slow_call_a_slow_provider_is_only_slow(
    clock: FakeClock, fake: FakeProviders
) -> None:
    fake["primary"].set(sequence(*(slow(s) for s in CREEP)))
    fake["backup"].answer("from backup")
    with failover.Router(config(slow_call=None), clock=clock) as router:
        providers = [router.complete("hi").provider for _ in range(8)]
    assert providers == ["primary"] * 8
