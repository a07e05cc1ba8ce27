"""The router end to end: real adapters and SDKs, simulated providers at the HTTP layer,
and an injected clock (nothing here sleeps to wait for a breaker)."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

import failover
from failover.testing import FakeClock, FakeProviders
from support import PROVIDERS


def make_config(**overrides: Any) -> failover.Config:
    data: dict[str, Any] = {
        "providers": PROVIDERS,
        "routes": {"default": {"chain": ["openai", "claude", "gemini"], "deadline": "30s"}},
    }
    data.update(overrides)
    return failover.Config.from_mapping(data)


@pytest.fixture
def router(clock: FakeClock) -> Iterator[failover.Router]:
    with failover.Router(make_config(), clock=clock) as r:
        yield r


# --- failover for every kind of the SPEC's table ------------------------------------------

FAILOVER_KINDS = [
    ("503", lambda p: p.fail(503), "Overloaded", 1),
    ("529", lambda p: p.fail(529), "Overloaded", 1),
    ("500", lambda p: p.fail(500), "ServerError", 2),     # one retry, then fail over
    ("502", lambda p: p.fail(502), "ServerError", 2),
    ("429-long", lambda p: p.rate_limit(retry_after=60), "RateLimited", 1),
    ("429-none", lambda p: p.fail(429), "RateLimited", 1),
    ("timeout", lambda p: p.timeout(), "Timeout", 1),     # a timed-out provider is not retried
    ("refused", lambda p: p.refuse(), "ConnectionFailed", 2),
    ("401", lambda p: p.fail(401), "AuthenticationFailed", 1),
    ("403", lambda p: p.fail(403), "PermissionDenied", 1),
    ("404", lambda p: p.fail(404), "ModelNotFound", 1),
    ("malformed", lambda p: p.malformed(), "InvalidResponse", 1),
    ("context", lambda p: p.context_window(), "ContextWindowExceeded", 1),
]


@pytest.mark.parametrize(("fault", "kind", "tries"),
                         [pytest.param(f, k, t, id=i) for i, f, k, t in FAILOVER_KINDS])
def test_fails_over_for_every_kind(
    router: failover.Router, fake: FakeProviders, fault: Any, kind: str, tries: int
) -> None:
    fault(fake["openai"])
    fake["claude"].answer("from claude")
    reply = router.complete("hi")
    assert reply.text == "from claude"
    assert reply.provider == "claude" and reply.model == "claude-haiku-4-5"
    assert fake["openai"].calls == tries
    assert [a.error_kind for a in reply.attempts] == [kind] * tries + [None]
    assert [a.outcome for a in reply.attempts] == ["error"] * tries + ["ok"]
    assert fake["gemini"].calls == 0


@pytest.mark.parametrize(("fault", "kind", "tries"),
                         [pytest.param(f, k, t, id=i) for i, f, k, t in FAILOVER_KINDS])
async def test_fails_over_for_every_kind_async(
    router: failover.Router, fake: FakeProviders, fault: Any, kind: str, tries: int
) -> None:
    fault(fake["openai"])
    fake["claude"].answer("from claude")
    reply = await router.acomplete("hi")
    assert reply.provider == "claude"
    assert fake["openai"].calls == tries
    assert [a.error_kind for a in reply.attempts] == [kind] * tries + [None]


def test_bad_request_raises_with_no_request_to_the_next_provider(
    router: failover.Router, fake: FakeProviders
) -> None:
    fake["openai"].fail(400)
    fake["claude"].answer("never")
    with pytest.raises(failover.BadRequest) as info:
        router.complete("hi")
    assert info.value.provider == "openai" and info.value.status == 400
    assert fake["openai"].calls == 1 and fake["claude"].calls == 0
    assert [a.error_kind for a in info.value.attempts] == ["BadRequest"]


def test_content_filter_raises_by_default_and_fails_over_when_configured(
    clock: FakeClock, fake: FakeProviders
) -> None:
    fake["openai"].content_filter()
    fake["claude"].answer("from claude")
    with failover.Router(make_config(), clock=clock) as router, \
            pytest.raises(failover.ContentFiltered):
        router.complete("hi")
    assert fake["claude"].calls == 0
    config = make_config(routes={"default": {
        "chain": ["openai", "claude"], "actions": {"ContentFiltered": "failover"}}})
    with failover.Router(config, clock=clock) as router:
        assert router.complete("hi").provider == "claude"


def test_all_providers_failed_says_why_for_each(router: failover.Router,
                                                fake: FakeProviders) -> None:
    fake["openai"].fail(503)
    fake["claude"].fail(401)
    fake["gemini"].timeout()
    with pytest.raises(failover.AllProvidersFailed) as info:
        router.complete("hi")
    text = str(info.value)
    assert "openai (gpt-4o-mini): Overloaded HTTP 503" in text
    assert "claude (claude-haiku-4-5): AuthenticationFailed HTTP 401" in text
    assert "gemini (gemini-2.5-flash): Timeout" in text
    assert [type(e).__name__ for e in info.value.errors] == [
        "Overloaded", "AuthenticationFailed", "Timeout"]


# --- breakers -----------------------------------------------------------------------------


def test_dead_primary_stops_getting_traffic_then_only_probes(
    clock: FakeClock, fake: FakeProviders
) -> None:
    config = make_config(defaults={"breaker": {"consecutive_failures": 3, "open_for": "5s",
                                               "max_open_for": "30s"}})
    fake["openai"].fail(503)
    fake["claude"].answer("ok")
    with failover.Router(config, clock=clock) as router:
        for _ in range(20):
            assert router.complete("hi").provider == "claude"
        assert fake["openai"].calls == 3
        assert router.health()["openai"].state == "open"
        # After open_for, one probe; it fails, so the open time doubles (5 -> 10 s).
        clock.advance(5)
        for _ in range(10):
            router.complete("hi")
        assert fake["openai"].calls == 4
        clock.advance(5)
        router.complete("hi")
        assert fake["openai"].calls == 4   # still open: 10 s now
        clock.advance(5)
        router.complete("hi")
        assert fake["openai"].calls == 5
        # A minute of traffic costs only a handful of probes, not one a request.
        for _ in range(60):
            clock.advance(1)
            router.complete("hi")
        assert fake["openai"].calls <= 5 + 3


def test_recovered_primary_gets_traffic_back_within_max_open_for(
    clock: FakeClock, fake: FakeProviders
) -> None:
    fake["openai"].fail(503)
    fake["claude"].answer("claude")
    with failover.Router(make_config(), clock=clock) as router:
        for _ in range(3):
            router.complete("hi")
        # Keep it failing long enough for the open time to reach its cap.
        for _ in range(6):
            clock.advance(30)
            router.complete("hi")
        fake["openai"].answer("openai is back")
        served = []
        for _ in range(31):
            clock.advance(1)
            served.append(router.complete("hi").provider)
        assert "openai" in served
        first_back = served.index("openai")
        assert first_back <= 30 and all(p == "openai" for p in served[first_back:])
        assert router.health()["openai"].state == "closed"


async def test_half_open_admits_exactly_k_probes_among_100_callers(clock: FakeClock) -> None:
    config = make_config(defaults={"breaker": {"half_open_probes": 2}})
    gate = asyncio.Event()
    primary_calls = 0
    with FakeProviders(clock=clock) as fake:
        fake["openai"].fail(503)
        fake["claude"].answer("claude")
        router = failover.Router(config, clock=clock)
        for _ in range(3):
            await router.acomplete("hi")
        clock.advance(5)
        # While the probes hang on the gate, 100 callers arrive.
        fake["openai"].answer("probe ok")
        original = fake["openai"].route.side_effect

        async def gated(request: Any) -> Any:
            nonlocal primary_calls
            primary_calls += 1
            await gate.wait()
            result = original(request)
            return await result if inspect.isawaitable(result) else result

        fake["openai"].route.side_effect = gated
        tasks = [asyncio.create_task(router.acomplete("hi")) for _ in range(100)]
        for _ in range(20):
            await asyncio.sleep(0)
        assert primary_calls == 2
        gate.set()
        replies = await asyncio.gather(*tasks)
        assert sorted(r.provider for r in replies).count("openai") == 2
        assert router.health()["openai"].state == "closed"
        await router.aclose()


def test_forced_states(router: failover.Router, fake: FakeProviders) -> None:
    fake["openai"].answer("openai")
    fake["claude"].answer("claude")
    router.force_open("openai")
    assert router.complete("hi").provider == "claude"
    assert router.health()["openai"].state == "forced_open"
    assert fake["openai"].calls == 0
    router.reset("openai")
    assert router.complete("hi").provider == "openai"
    fake["openai"].fail(503)
    router.force_closed("openai")
    for _ in range(10):
        router.complete("hi")
    assert fake["openai"].calls == 1 + 10   # forced closed: tried every time
    with pytest.raises(KeyError, match="unknown provider 'nope'"):
        router.force_open("nope")


def test_forced_open_from_config(clock: FakeClock, fake: FakeProviders) -> None:
    providers = {**PROVIDERS, "openai": {**PROVIDERS["openai"], "force": "open"}}
    fake["claude"].answer("claude")
    with failover.Router(make_config(providers=providers), clock=clock) as router:
        assert router.complete("hi").provider == "claude"
    assert fake["openai"].calls == 0


# --- retries, Retry-After and the deadline --------------------------------------------------


def test_short_retry_after_is_honoured_on_the_same_provider(
    router: failover.Router, fake: FakeProviders, clock: FakeClock
) -> None:
    fake["openai"].sequence(failover.testing.rate_limit(retry_after=2),
                            failover.testing.answer("after the wait"))
    before = clock()
    reply = router.complete("hi")
    assert reply.provider == "openai" and reply.text == "after the wait"
    assert fake["openai"].calls == 2 and fake["claude"].calls == 0
    assert clock.sleeps == [2.0]
    assert clock() - before >= 2


def test_long_retry_after_fails_over_at_once_and_cools_down(
    router: failover.Router, fake: FakeProviders, clock: FakeClock
) -> None:
    fake["openai"].rate_limit(retry_after=60)
    fake["claude"].answer("claude")
    for _ in range(10):
        assert router.complete("hi").provider == "claude"
    assert fake["openai"].calls == 1      # cooling down until Retry-After, never hammered
    assert clock.sleeps == []
    clock.advance(61)
    fake["openai"].answer("openai")
    assert router.complete("hi").provider == "openai"


def test_retry_after_that_does_not_fit_the_deadline_fails_over(
    clock: FakeClock, fake: FakeProviders
) -> None:
    fake["openai"].rate_limit(retry_after=5)
    fake["claude"].answer("claude")
    config = make_config(routes={"default": {"chain": ["openai", "claude"], "deadline": "3s"}})
    with failover.Router(config, clock=clock) as router:
        assert router.complete("hi").provider == "claude"
    assert clock.sleeps == []


def test_deadline_is_never_exceeded(clock: FakeClock, fake: FakeProviders) -> None:
    config = make_config(routes={"default": {"chain": ["openai", "claude", "gemini"],
                                             "deadline": "10s"}})
    # The kit honours each request's read timeout, as a real socket would: the router
    # must have cut the first attempt's timeout to the deadline.
    fake["openai"].slow(25, "too late")
    fake["claude"].answer("never reached")
    fake["gemini"].answer("never reached")
    with failover.Router(config, clock=clock) as router:
        start = clock()
        with pytest.raises(failover.DeadlineExceeded) as info:
            router.complete("hi")
        assert clock() - start == pytest.approx(10.0)
    assert fake["claude"].calls == 0 and fake["gemini"].calls == 0
    assert [(a.provider, a.error_kind) for a in info.value.attempts] == [("openai", "Timeout")]
    assert "deadline of 10s exceeded" in str(info.value)


def test_each_attempt_gets_what_is_left_of_the_deadline(
    clock: FakeClock, fake: FakeProviders
) -> None:
    config = make_config(routes={"default": {"chain": ["openai", "claude"],
                                             "deadline": "10s"}})
    fake["openai"].slow(4, then=failover.testing.fail(503))   # 4 s, then Overloaded
    fake["claude"].slow(8, "too slow for the 6 s that are left")
    with failover.Router(config, clock=clock) as router:
        start = clock()
        with pytest.raises(failover.DeadlineExceeded) as info:
            router.complete("hi")
        assert clock() - start == pytest.approx(10.0)
    assert [(a.provider, a.error_kind) for a in info.value.attempts] == [
        ("openai", "Overloaded"), ("claude", "Timeout")]


async def test_async_deadline_cancels_a_hung_attempt() -> None:
    config = make_config(routes={"default": {"chain": ["openai", "claude"],
                                             "deadline": "150ms"}})
    with FakeProviders() as fake:
        fake["openai"].hang(30)
        fake["claude"].answer("never")
        loop = asyncio.get_running_loop()
        async with failover.Router(config) as router:
            router.warm_up()                     # the SDK import is not what is timed
            start = loop.time()
            with pytest.raises(failover.DeadlineExceeded) as info:
                await router.acomplete("hi")
            assert loop.time() - start < 0.5
        assert fake["claude"].calls == 0
        assert [(a.provider, a.error_kind) for a in info.value.attempts] == [
            ("openai", "Timeout")]


def test_retry_budget_stops_retry_storms(clock: FakeClock, fake: FakeProviders) -> None:
    config = make_config(defaults={
        "breaker": {"consecutive_failures": 1000, "min_calls": 1000},
        "retry": {"attempts": 2, "budget": 0.1, "backoff": "10ms"},
    })
    fake["openai"].fail(500)
    fake["claude"].answer("claude")
    with failover.Router(config, clock=clock) as router:
        for _ in range(100):
            router.complete("hi")
    retries = fake["openai"].calls - 100
    assert 3 <= retries <= 3 + 10


# --- capabilities and context windows ---------------------------------------------------------


def test_requests_needing_a_capability_skip_providers_without_it(
    clock: FakeClock, fake: FakeProviders
) -> None:
    providers = {**PROVIDERS, "openai": {**PROVIDERS["openai"],
                                         "capabilities": {"tools": False}}}
    fake["claude"].answer("used a tool")
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"q": {"type": "string"}}}}}]
    with failover.Router(make_config(providers=providers), clock=clock) as router:
        reply = router.complete("hi", tools=tools)
        assert reply.provider == "claude"
        assert fake["openai"].calls == 0
        assert fake["claude"].last_request.json["tools"][0]["name"] == "lookup"


def test_says_so_when_no_provider_has_the_capability(clock: FakeClock,
                                                     fake: FakeProviders) -> None:
    caps = {"capabilities": {"images": False}}
    providers = {n: {**p, **caps} for n, p in PROVIDERS.items()}
    image = [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]
    with failover.Router(make_config(providers=providers), clock=clock) as router, \
            pytest.raises(failover.AllProvidersFailed) as info:
        router.complete(image)
    assert info.value.skipped == {n: "does not support images" for n in PROVIDERS}
    assert "openai: skipped, does not support images" in str(info.value)
    assert fake.requests == []


def test_context_window_skips_providers_that_are_not_larger(
    clock: FakeClock, fake: FakeProviders
) -> None:
    providers = {
        "openai": {**PROVIDERS["openai"], "capabilities": {"context_window": 128000}},
        "claude": {**PROVIDERS["claude"], "capabilities": {"context_window": 100000}},
        "gemini": {**PROVIDERS["gemini"], "capabilities": {"context_window": 1000000}},
    }
    fake["openai"].context_window()
    fake["claude"].answer("too small, never asked")
    fake["gemini"].answer("big window")
    with failover.Router(make_config(providers=providers), clock=clock) as router:
        reply = router.complete("a long prompt")
    assert reply.provider == "gemini" and fake["claude"].calls == 0


# --- accounting, secrets, events -------------------------------------------------------------


def test_response_accounts_for_the_serving_attempt_only(router: failover.Router,
                                                         fake: FakeProviders) -> None:
    fake["openai"].fail(503)
    fake["claude"].answer("four words of answer")
    reply = router.complete("hi")
    assert reply.usage.output_tokens > 0
    assert reply.attempts[0].provider == "openai" and reply.attempts[0].http_status == 503
    assert reply.attempts[1].provider == "claude" and reply.attempts[1].outcome == "ok"
    assert reply.latency_s >= 0 and reply.raw is not None


def test_api_keys_never_appear_in_any_output(
    router: failover.Router, fake: FakeProviders, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level("DEBUG", logger="failover")
    events: list[failover.Event] = []
    router.subscribe(events.append)
    fake["openai"].fail(401)
    fake["claude"].fail(403)
    fake["gemini"].fail(500)
    with pytest.raises(failover.AllProvidersFailed) as info:
        router.complete("hi")
    outputs = [str(info.value), repr(info.value), repr(router), repr(router.config),
               str(router.health()), caplog.text, capsys.readouterr().out,
               *(str(e) + repr(e) for e in events), *(str(e) for e in info.value.errors)]
    for key in ("sk-test-openai-0123456789", "sk-ant-test-0123456789",
                "AIzaTest0123456789abc"):
        assert all(key not in out for out in outputs), key
    # ...while the keys did reach the providers, in their own headers.
    assert fake["openai"].last_request.headers["authorization"].endswith("0123456789")


def test_events_reach_sync_and_async_subscribers_and_a_failing_one_breaks_nothing(
    router: failover.Router, fake: FakeProviders
) -> None:
    seen: list[str] = []
    router.subscribe(lambda e: seen.append(e.type))

    def broken(event: failover.Event) -> None:
        raise RuntimeError("subscriber bug")

    router.subscribe(broken)
    fake["openai"].fail(503)
    fake["claude"].answer("ok")
    for _ in range(3):
        assert router.complete("hi").provider == "claude"
    assert seen.count("attempt_failed") == 3
    assert seen.count("failover") == 3
    assert seen.count("breaker_opened") == 1


async def test_async_subscriber(router: failover.Router, fake: FakeProviders) -> None:
    got: list[failover.Event] = []

    async def collect(event: failover.Event) -> None:
        got.append(event)

    router.subscribe(collect)
    fake["openai"].fail(503)
    fake["claude"].answer("ok")
    await router.acomplete("hi")
    await asyncio.sleep(0)
    failed = [e for e in got if e.type == "attempt_failed"]
    assert failed and failed[0].provider == "openai" and failed[0].route == "default"
    assert "Overloaded" in failed[0].detail


def test_unknown_route_is_a_clear_bad_request(router: failover.Router) -> None:
    with pytest.raises(failover.BadRequest, match="unknown route 'nope'; configured routes: "
                                                  "default"):
        router.complete("hi", route="nope")


def test_messages_forms_and_system(router: failover.Router, fake: FakeProviders) -> None:
    fake["openai"].answer("ok")
    router.complete([{"role": "system", "content": "be brief"},
                     {"role": "user", "content": "hi"}])
    router.complete([failover.Message("user", "hi")], system="be brief")
    for request in fake["openai"].requests:
        assert request.json["messages"][0] == {"role": "system", "content": "be brief"}
        assert request.json["messages"][1]["content"] == "hi"


# --- hedging -----------------------------------------------------------------------------------


async def test_hedge_starts_the_next_provider_when_the_first_is_slow() -> None:
    config = make_config(routes={"default": {
        "chain": ["openai", "claude"], "hedge": {"after": "50ms", "max_ratio": 1.0}}})
    with FakeProviders() as fake:
        fake["openai"].hang(5)
        fake["claude"].answer("hedged")
        loop = asyncio.get_running_loop()
        async with failover.Router(config) as router:
            router.warm_up()
            start = loop.time()
            reply = await router.acomplete("hi")
            elapsed = loop.time() - start
        assert reply.provider == "claude" and reply.text == "hedged"
        assert elapsed < 1.0
        assert [a.outcome for a in reply.attempts] == ["ok", "cancelled"] or [
            a.outcome for a in reply.attempts] == ["cancelled", "ok"]


def test_sync_hedge_races_on_threads_and_the_first_success_wins() -> None:
    config = make_config(routes={"default": {
        "chain": ["openai", "claude"], "hedge": {"after": "50ms", "max_ratio": 1.0}}})
    with FakeProviders() as fake:
        fake["openai"].hang(1)
        fake["claude"].answer("hedged")
        with failover.Router(config) as router:
            router.warm_up()
            start = time.monotonic()
            reply = router.complete("hi")
            elapsed = time.monotonic() - start
    assert (reply.provider, reply.text) == ("claude", "hedged")
    assert elapsed < 0.9
    assert sorted(a.outcome for a in reply.attempts) == ["cancelled", "ok"]


async def test_hedge_after_p95_waits_for_observed_latency_and_caps_extra_load() -> None:
    config = make_config(routes={"default": {
        "chain": ["openai", "claude"],
        "hedge": {"after": "p95", "max_ratio": 0.2, "min_delay": "10ms"}}})
    with FakeProviders() as fake:
        fake["openai"].slow(0.03, "openai")
        fake["claude"].answer("claude")
        async with failover.Router(config) as router:
            router.warm_up()       # client set-up must not count as observed latency
            # No latency observed yet: no hedge, the primary answers.
            for _ in range(5):
                assert (await router.acomplete("hi")).provider == "openai"
            assert fake["claude"].calls == 0
            p95 = router.health()["openai"].latency_p95_s
            assert p95 is not None and p95 >= 0.03
            # Now the primary stalls for longer than its p95: the next provider starts.
            fake["openai"].slow(0.5, "late openai")
            served = [(await router.acomplete("hi")).provider for _ in range(5)]
    # At most max_ratio of the route's 10 requests hedge: 2, then the slow primary wins.
    assert served.count("claude") == 2
    assert fake["claude"].calls == 2


def test_warm_up_builds_clients_and_resolves_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    providers = {**PROVIDERS, "claude": {**PROVIDERS["claude"], "api_key": "${NO_SUCH_KEY_X}"}}
    monkeypatch.delenv("NO_SUCH_KEY_X", raising=False)
    router = failover.Router(make_config(providers=providers))
    with pytest.raises(failover.ConfigError, match=r"providers\.claude\.api_key: "
                                                   r"environment variable NO_SUCH_KEY_X"):
        router.warm_up()
    monkeypatch.setenv("NO_SUCH_KEY_X", "sk-ant-from-env-0123456789")
    router.warm_up()
    router.close()


def test_webhook_is_told_with_the_runbook_and_never_sees_a_key(clock: FakeClock) -> None:
    config = make_config(
        routes={"default": {"chain": ["openai", "claude"],
                            "fallback": {"runbook": "docs/runbooks/llm.md"}}},
        notify={"webhook": {"url": "https://hooks.example.test/services/T0/B0/secret",
                            "events": ["breaker_opened", "all_providers_failed"]}},
    )
    with FakeProviders(clock=clock) as fake:
        fake["openai"].fail(401)
        fake["claude"].answer("ok")
        fake["webhook"].answer("ok")        # any 200 is a delivered webhook
        with failover.Router(config, clock=clock) as router:
            for _ in range(5):
                router.complete("hi")
    [post] = fake["webhook"].requests
    assert post.url == "https://hooks.example.test/services/T0/B0/secret"
    text = post.json["text"]
    assert "breaker_opened" in text and "openai" in text and "docs/runbooks/llm.md" in text
    assert "sk-test-openai" not in json.dumps(post.json)


def test_a_failing_webhook_never_breaks_a_request(clock: FakeClock) -> None:
    config = make_config(notify={"webhook": {"url": "https://hooks.example.test/x",
                                             "events": ["attempt_failed"]}})
    with FakeProviders(clock=clock) as fake:
        fake["openai"].fail(503)
        fake["claude"].answer("ok")
        fake["webhook"].refuse()
        with failover.Router(config, clock=clock) as router:
            assert router.complete("hi").provider == "claude"
    assert fake["webhook"].calls == 1


def test_per_route_actions_override_the_kind_defaults(clock: FakeClock,
                                                       fake: FakeProviders) -> None:
    fake["openai"].fail(503)
    fake["claude"].answer("claude")
    strict = make_config(routes={"default": {"chain": ["openai", "claude"],
                                             "actions": {"Overloaded": "raise"}}})
    with failover.Router(strict, clock=clock) as router, pytest.raises(failover.Overloaded):
        router.complete("hi")
    assert (fake["openai"].calls, fake["claude"].calls) == (1, 0)

    patient = make_config(routes={"default": {"chain": ["openai", "claude"],
                                              "actions": {"Overloaded": "retry"}}})
    with failover.Router(patient, clock=clock) as router:
        assert router.complete("hi").provider == "claude"
    assert fake["openai"].calls == 1 + 2     # retried once on the same provider

    no_retry = make_config(routes={"default": {"chain": ["openai", "claude"],
                                               "actions": {"ServerError": "failover"}}})
    fake["openai"].fail(500)
    with failover.Router(no_retry, clock=clock) as router:
        assert router.complete("hi").provider == "claude"
    assert fake["openai"].calls == 3 + 1     # a 500 is normally retried; not here


def test_known_context_windows_are_used_when_the_config_says_nothing(
    clock: FakeClock, fake: FakeProviders
) -> None:
    # gpt-4o-mini (128k) fails on length: claude (200k) is larger, gemini (1M) too.
    providers = {**PROVIDERS, "small": {"type": "openai", "model": "gpt-3.5-turbo",
                                        "api_key": "sk-test-small-0123456789"}}
    config = make_config(providers=providers, routes={"default": {
        "chain": ["openai", "small", "gemini"]}})
    fake["openai"].context_window()
    fake["small"].answer("16k is not larger than 128k: never asked")
    fake["gemini"].answer("a million tokens")
    with failover.Router(config, clock=clock) as router:
        reply = router.complete("a long prompt")
    assert reply.provider == "gemini" and fake["small"].calls == 0


async def test_a_hung_primary_behind_a_hedge_still_opens_its_breaker() -> None:
    config = make_config(routes={"default": {
        "chain": ["openai", "claude"], "hedge": {"after": "30ms", "max_ratio": 1.0}}})
    with FakeProviders() as fake:
        fake["openai"].hang(2)
        fake["claude"].answer("claude")
        async with failover.Router(config) as router:
            router.warm_up()
            replies = [await router.acomplete("hi") for _ in range(8)]
            assert router.health()["openai"].state == "open"
    assert all(r.provider == "claude" for r in replies)
    assert fake["openai"].calls == 3      # consecutive_failures, then only skipped
    outrun = replies[0].attempts[-1] if replies[0].attempts[0].outcome == "ok" else (
        replies[0].attempts[0])
    assert (outrun.provider, outrun.outcome, outrun.error_kind) == (
        "openai", "cancelled", "Timeout")
    assert [a.provider for a in replies[-1].attempts] == ["claude"]


def test_per_call_timeout_bounds_each_attempt(clock: FakeClock, fake: FakeProviders) -> None:
    fake["openai"].slow(5, "too slow for a 2 s attempt")
    fake["claude"].answer("claude")
    with failover.Router(make_config(), clock=clock) as router:
        start = clock()
        reply = router.complete("hi", timeout=2)
    assert reply.provider == "claude"
    assert [(a.provider, a.error_kind) for a in reply.attempts] == [
        ("openai", "Timeout"), ("claude", None)]
    assert clock() - start == pytest.approx(2.0)


def test_a_60_second_outage_ends_with_traffic_back_within_the_default_max_open_for(
    clock: FakeClock, fake: FakeProviders
) -> None:
    # failoverbench S15: primary down for 60 s, one request every 4 s, default breaker.
    fake["openai"].down(for_seconds=60)
    fake["claude"].answer("claude")
    limit = failover.Config.from_mapping({"providers": PROVIDERS, "routes": {
        "default": {"chain": ["openai"]}}}).defaults.breaker.max_open_for
    assert limit == 10.0
    with failover.Router(make_config(), clock=clock) as router:
        served = []
        for _ in range(40):                           # 160 s
            served.append((clock(), router.complete("hi").provider))
            clock.advance(4)
    healed = served[0][0] + 60                         # the outage began with request 1
    during = [r for r in fake["openai"].requests if r.time < healed]
    back = next(t for t, provider in served if t >= healed and provider == "openai")
    assert back - healed <= limit                      # healed: traffic within max_open_for
    assert all(provider == "openai" for t, provider in served if t >= back)
    # What the dead primary cost: 3 to open its breaker, then about one probe a period.
    assert len(during) <= 3 + 60 / 5 + 1, len(during)


@pytest.mark.parametrize("mode", ["complete", "acomplete", "stream", "astream"])
async def test_a_hung_provider_at_the_deadline_is_deadline_exceeded_whatever_the_load(
    clock: FakeClock, fake: FakeProviders, mode: str
) -> None:
    # The last attempt's timeout is rounded down a little: it times out just before the
    # deadline. The kind must still say that the deadline is what ran out.
    from failover.testing import fail

    fake["claude"].slow(0.05, then=fail(503))   # 50 ms gone: 1.95 s left for the next
    fake["openai"].hang()
    config = make_config(routes={"default": {"chain": ["claude", "openai"], "deadline": "2s"}})
    with failover.Router(config, clock=clock) as router:
        started = clock()
        with pytest.raises(failover.DeadlineExceeded) as caught:
            await entry_point(router, mode)
    assert 1.8 <= clock() - started <= 2.0
    assert [a.error_kind for a in caught.value.attempts] == ["Overloaded", "Timeout"]


async def entry_point(router: failover.Router, mode: str) -> Any:
    if mode == "complete":
        return router.complete("hi")
    if mode == "acomplete":
        return await router.acomplete("hi")
    if mode == "stream":
        return list(router.stream("hi"))
    return [e async for e in router.astream("hi")]


# --- Router.from_env ------------------------------------------------------------------------


def test_from_env_reads_the_config_failover_config_names(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, fake: FakeProviders
) -> None:
    path = tmp_path / "failover.json"
    path.write_text(json.dumps({"providers": {"claude": PROVIDERS["claude"]},
                                "routes": {"default": {"chain": ["claude"]}}}))
    monkeypatch.setenv("FAILOVER_CONFIG", str(path))
    fake["claude"].answer("configured by the environment")
    with failover.Router.from_env() as router:
        assert router.complete("hi").text == "configured by the environment"
        router.reload()  # the file is the router's own: reload re-reads it
        assert list(router.config.providers) == ["claude"]


def test_from_env_without_the_variable_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FAILOVER_CONFIG", raising=False)
    with pytest.raises(failover.ConfigError, match="FAILOVER_CONFIG is not set: set it to"):
        failover.Router.from_env()
    monkeypatch.setenv("MY_APP_CONFIG", "/nonexistent/failover.yaml")
    with pytest.raises(failover.ConfigError, match="file not found"):
        failover.Router.from_env("MY_APP_CONFIG")
