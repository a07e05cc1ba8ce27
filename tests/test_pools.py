"""Pools of equivalent providers in a chain: every strategy's choice, failover inside a
pool, then on to the next element; config errors name the pool and member."""

from __future__ import annotations

import collections
from typing import Any

import pytest

import failover
from failover.testing import FakeClock, FakeProviders, slow

POOL = ["east", "west", "spare"]


def pooled(strategy: str, members: list[Any] | None = None, **route: Any) -> failover.Config:
    providers = {name: {"type": "openai", "model": "gpt-4o-mini",
                        "api_key": f"sk-{name}-0123456789",
                        "base_url": f"https://{name}.example/v1"} for name in POOL}
    providers["claude"] = {"type": "anthropic", "model": "claude-haiku-4-5",
                           "api_key": "sk-ant-pool-0123456789"}
    return failover.Config.from_mapping({
        "providers": providers,
        "routes": {"default": {
            "chain": [{"pool": members or POOL, "strategy": strategy}, "claude"], **route}},
    })


def answering(fake: FakeProviders) -> None:
    for name in [*POOL, "claude"]:
        fake[name].answer(f"from {name}")


def served(router: failover.Router, n: int) -> list[str]:
    return [router.complete("hi").provider for _ in range(n)]


def test_priority_is_config_order(clock: FakeClock, fake: FakeProviders) -> None:
    answering(fake)
    with failover.Router(pooled("priority"), clock=clock) as router:
        assert served(router, 4) == ["east"] * 4


def test_round_robin_starts_one_member_further_each_request(
    clock: FakeClock, fake: FakeProviders
) -> None:
    answering(fake)
    with failover.Router(pooled("round_robin"), clock=clock) as router:
        assert served(router, 6) == ["east", "west", "spare"] * 2


def test_weighted_splits_by_weight_interleaved(clock: FakeClock, fake: FakeProviders) -> None:
    answering(fake)
    members = [{"provider": "east", "weight": 3}, {"provider": "west", "weight": 1}, "spare"]
    with failover.Router(pooled("weighted", members), clock=clock) as router:
        counts = collections.Counter(served(router, 500))
        first_ten = served(router, 10)
    assert counts == {"east": 300, "west": 100, "spare": 100}
    assert len(set(first_ten[:5])) > 1  # interleaved, not 3 in a row then 1 and 1


def test_least_busy_sends_to_the_member_with_fewest_in_flight(
    clock: FakeClock, fake: FakeProviders
) -> None:
    answering(fake)
    with failover.Router(pooled("least_busy"), clock=clock) as router:
        # A stream that has begun and is not read to its end keeps its attempt in flight.
        held = [router.stream("hi"), router.stream("hi")]
        for stream in held:
            next(iter(stream))
        busy = {r.provider for r in fake.requests}
        assert len(busy) == 2
        idle = next(name for name in POOL if name not in busy)
        assert served(router, 1) == [idle]
        for stream in held:
            for _ in stream:
                pass
        # Nothing in flight again: ties go round robin.
        assert len(set(served(router, 3))) == 3


def test_least_latency_prefers_the_fast_member_and_still_measures_the_others(
    clock: FakeClock, fake: FakeProviders
) -> None:
    fake["east"].set(slow(2.0, "slow east"))
    fake["west"].set(slow(0.1, "quick west"))
    fake["spare"].set(slow(0.5, "middling spare"))
    fake["claude"].answer("claude")
    with failover.Router(pooled("least_latency"), clock=clock) as router:
        warm = served(router, 3)  # each unmeasured member is tried first, once
        counts = collections.Counter(served(router, 600))
    assert sorted(warm) == sorted(POOL)
    assert counts["west"] >= 590
    assert counts["east"] >= 1 and counts["spare"] >= 1  # re-measured now and then


def test_headroom_prefers_the_member_with_most_quota_left(
    clock: FakeClock, fake: FakeProviders
) -> None:
    for name, rpm in (("east", 1000), ("west", 10), ("spare", 20)):
        fake[name].quota(rpm=rpm)
    fake["claude"].answer("claude")
    with failover.Router(pooled("headroom"), clock=clock) as router:
        assert len(set(served(router, 3))) == 3  # nothing known yet: round robin
        # Now the headers say: east 999 of 1000 left, west 9 of 10, spare 19 of 20.
        assert served(router, 40) == ["east"] * 40


def test_headroom_is_read_from_anthropic_headers_too(
    clock: FakeClock, fake: FakeProviders
) -> None:
    cfg = failover.Config.from_mapping({
        "providers": {name: {"type": "anthropic", "model": "claude-haiku-4-5",
                             "api_key": f"sk-ant-{name}-0123456789",
                             "base_url": f"https://{name}.example"} for name in ("a", "b")},
        "routes": {"default": {"chain": [{"pool": ["a", "b"], "strategy": "headroom"}]}},
    })
    fake["a"].quota(rpm=5)
    fake["b"].quota(rpm=500)
    with failover.Router(cfg, clock=clock) as router:
        picks = served(router, 12)
    assert picks[2:] == ["b"] * 10


def test_failover_inside_a_pool_then_to_the_next_element(
    clock: FakeClock, fake: FakeProviders
) -> None:
    fake["east"].fail(503)
    fake["west"].fail(500)
    fake["spare"].answer("spare")
    fake["claude"].answer("claude")
    with failover.Router(pooled("priority"), clock=clock) as router:
        reply = router.complete("hi")
        assert reply.provider == "spare"
        assert [a.provider for a in reply.attempts] == ["east", "west", "spare"]
        fake["spare"].fail(503)
        reply = router.complete("hi")
    assert reply.provider == "claude"
    assert [a.provider for a in reply.attempts][-1] == "claude"


def test_a_pool_member_with_an_open_breaker_is_skipped(
    clock: FakeClock, fake: FakeProviders
) -> None:
    answering(fake)
    with failover.Router(pooled("round_robin"), clock=clock) as router:
        router.force_open("west")
        picks = served(router, 6)
    assert "west" not in picks and set(picks) == {"east", "spare"}


async def test_async_and_streams_use_the_same_order(clock: FakeClock, fake: FakeProviders) -> None:
    answering(fake)
    with failover.Router(pooled("round_robin"), clock=clock) as router:
        picks = [(await router.acomplete("hi")).provider]
        for event in router.stream("hi"):
            if isinstance(event, failover.Completed):
                picks.append(event.response.provider)
        async for event in router.astream("hi"):
            if isinstance(event, failover.Completed):
                picks.append(event.response.provider)
    assert picks == POOL


@pytest.mark.parametrize(("chain", "problem"), [
    ([{"pool": ["east", "wst"]}], "routes.default.chain[0].pool[1]: unknown provider 'wst' "
                                  "(did you mean 'west'?)"),
    ([{"pool": ["east", {"provider": "west", "weight": 0}], "strategy": "weighted"}],
     "routes.default.chain[0].pool[1].weight: expected more than 0"),
    ([{"pool": ["east", {"provider": "west", "weight": 2}]}],
     "routes.default.chain[0]: pool[1].weight: only strategy: weighted uses weights"),
    ([{"pool": ["east"], "strategy": "fastest"}], "routes.default.chain[0].strategy: expected"),
    ([{"pool": []}], "routes.default.chain[0].pool: expected at least 1 item"),
    ([{"pool": ["east", "west"]}, "west"],
     "routes.default.chain[1]: provider 'west' appears twice in the chain"),
    ([{"pool": ["east"], "stratgy": "round_robin"}],
     "routes.default.chain[0].stratgy: unknown key (did you mean 'strategy'?)"),
])
def test_pool_config_errors_name_the_pool_and_member(chain: list[Any], problem: str) -> None:
    providers = {name: {"type": "fake"} for name in POOL}
    with pytest.raises(failover.ConfigError) as caught:
        failover.Config.from_mapping({"providers": providers,
                                      "routes": {"default": {"chain": chain}}})
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems
    assert len(caught.value.problems) == 1, caught.value.problems
