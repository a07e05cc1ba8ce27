"""Rate limits as routing input and per-key state, through the public API at the HTTP
layer: a revoked key is retired while the provider's other keys serve, a 429 cools only
its key (or, without Retry-After, the provider), and a spent quota is skipped before it
answers 429."""

from __future__ import annotations

from typing import Any

import pytest

import failover
from failover._limits import read_rate_limit_headers
from failover.testing import FakeClock, FakeProviders, answer, fail, sequence

KEY_A, KEY_B = "sk-pool-key-a-0123456789", "sk-pool-key-b-0123456789"


def keyed(*, limits: dict[str, Any] | None = None, retry: dict[str, Any] | None = None,
          keys: tuple[str, ...] = (KEY_A, KEY_B)) -> failover.Config:
    primary: dict[str, Any] = {"type": "openai", "model": "gpt-4o-mini", "api_keys": list(keys)}
    if limits:
        primary["limits"] = limits
    if retry:
        primary["retry"] = retry
    return failover.Config.from_mapping({
        "providers": {"openai": primary,
                      "claude": {"type": "anthropic", "model": "claude-haiku-4-5",
                                 "api_key": "sk-ant-backup-0123456789"}},
        "routes": {"default": {"chain": ["openai", "claude"]}},
    })


def key_of(request: Any) -> str:
    return str(request.headers["authorization"]).removeprefix("Bearer ")


# --- per-key state ------------------------------------------------------------------------


def test_a_revoked_key_is_retired_and_the_next_key_serves_the_same_request(
    clock: FakeClock, fake: FakeProviders, caplog: pytest.LogCaptureFixture
) -> None:
    """The defect: one 401 on the second key opened the whole provider's breaker."""
    events: list[failover.Event] = []
    fake["openai"].set(sequence(fail(401), answer("from the good key")))
    fake["claude"].answer("from claude")
    with failover.Router(keyed(), clock=clock) as router:
        router.subscribe(events.append)
        with caplog.at_level("INFO", logger="failover"):
            reply = router.complete("hi")
        first_bad = key_of(fake["openai"].requests[0])
        assert reply.provider == "openai" and reply.text == "from the good key"
        assert [a.outcome for a in reply.attempts] == ["error", "ok"]
        health = router.health()["openai"]
        assert health.state == "closed"
        assert (health.keys, len(health.keys_retired), health.keys_blocked) == (2, 1, ())
        later = [router.complete("hi") for _ in range(4)]
    assert {r.provider for r in later} == {"openai"}
    sent = [key_of(r) for r in fake["openai"].requests]
    assert sent[0] == first_bad and first_bad not in sent[1:]
    retired = [e for e in events if e.type == "key_retired"]
    assert len(retired) == 1 and retired[0].provider == "openai"
    assert retired[0].data["key"] in (0, 1) and retired[0].data["status"] == 401
    for text in [str(e) for e in events] + [caplog.text]:
        assert KEY_A not in text and KEY_B not in text


def test_the_breaker_opens_only_when_no_key_is_usable(
    clock: FakeClock, fake: FakeProviders
) -> None:
    fake["openai"].fail(401)
    fake["claude"].answer("from claude")
    with failover.Router(keyed(), clock=clock) as router:
        reply = router.complete("hi")
        assert reply.provider == "claude"
        assert [a.provider for a in reply.attempts] == ["openai", "openai", "claude"]
        assert router.health()["openai"].state == "open"
        assert fake["openai"].calls == 2


async def test_a_429_cools_only_its_key(clock: FakeClock, fake: FakeProviders) -> None:
    fake["openai"].set(sequence(fail(429, retry_after=30), answer("other key")))
    fake["claude"].answer("from claude")
    with failover.Router(keyed(), clock=clock) as router:
        reply = await router.acomplete("hi")
        cooled = key_of(fake["openai"].requests[0])
        assert reply.provider == "openai" and len(reply.attempts) == 2
        health = router.health()["openai"]
        assert health.state == "closed" and len(health.keys_blocked) == 1
        for _ in range(4):
            assert (await router.acomplete("hi")).provider == "openai"
        assert cooled not in [key_of(r) for r in fake["openai"].requests[1:]]
        clock.advance(31)
        for _ in range(2):
            await router.acomplete("hi")
    assert cooled in [key_of(r) for r in fake["openai"].requests[-2:]]


def test_a_429_without_retry_after_cools_the_provider_by_default(
    clock: FakeClock, fake: FakeProviders
) -> None:
    """The defect as a user met it, with no setting changed: the rate-limited provider
    kept taking every request."""
    fake["openai"].rate_limit(retry_after=None)
    fake["claude"].answer("from claude")
    with failover.Router(keyed(keys=(KEY_A,)), clock=clock) as router:
        providers = [router.complete("hi").provider for _ in range(4)]
        assert fake["openai"].calls == 1
        clock.advance(5.1)  # retry.rate_limit_cooldown's default
        fake["openai"].answer("back")
        providers.append(router.complete("hi").provider)
    assert providers == ["claude"] * 4 + ["openai"]


def test_a_429_without_retry_after_cools_the_provider_for_a_growing_time(
    clock: FakeClock, fake: FakeProviders
) -> None:
    """The defect: without Retry-After the provider got no cooldown at all."""
    fake["openai"].rate_limit(retry_after=None)
    fake["claude"].answer("from claude")
    cfg = keyed(keys=(KEY_A,), retry={"rate_limit_cooldown": "2s",
                                      "max_rate_limit_cooldown": "5s"})
    with failover.Router(cfg, clock=clock) as router:
        assert router.complete("hi").provider == "claude"
        assert fake["openai"].calls == 1
        assert router.health()["openai"].state == "open"
        assert router.health()["openai"].consecutive_failures == 0  # not a failure
        router.complete("hi")
        assert fake["openai"].calls == 1  # cooling: not asked
        clock.advance(2.1)
        router.complete("hi")  # the probe meets a 429 again: 4 s this time
        assert fake["openai"].calls == 2
        clock.advance(2.1)
        router.complete("hi")
        assert fake["openai"].calls == 2
        clock.advance(2.0)
        fake["openai"].answer("back")
        assert router.complete("hi").provider == "openai"
        clock.advance(0.1)
        fake["openai"].rate_limit(retry_after=None)
        router.complete("hi")  # an answer ended the streak: 2 s again
        clock.advance(2.1)
        fake["openai"].answer("back")
        assert router.complete("hi").provider == "openai"


# --- headroom ------------------------------------------------------------------------------


def test_a_spent_quota_is_skipped_before_it_answers_429(
    clock: FakeClock, fake: FakeProviders
) -> None:
    fake["openai"].quota(rpm=3, per_key=False)
    fake["claude"].answer("from claude")
    with failover.Router(keyed(keys=(KEY_A,)), clock=clock) as router:
        providers = [router.complete("hi").provider for _ in range(6)]
        assert providers == ["openai"] * 3 + ["claude"] * 3
        assert fake["openai"].behaviour.refused == 0  # type: ignore[union-attr]
        assert fake["openai"].calls == 3
        clock.advance(60)  # the headers said when the quota resets
        assert router.complete("hi").provider == "openai"
    assert fake["openai"].behaviour.refused == 0  # type: ignore[union-attr]


async def test_declared_limits_per_key_are_kept_without_any_header(
    clock: FakeClock, fake: FakeProviders
) -> None:
    fake["openai"].answer("from openai")
    fake["claude"].answer("from claude")
    with failover.Router(keyed(limits={"rpm": 2, "per": "key"}), clock=clock) as router:
        providers = [(await router.acomplete("hi")).provider for _ in range(6)]
        assert providers == ["openai"] * 4 + ["claude"] * 2
        assert sorted(key_of(r) for r in fake["openai"].requests) == [KEY_A] * 2 + [KEY_B] * 2
        clock.advance(61)
        assert (await router.acomplete("hi")).provider == "openai"


def test_declared_tokens_a_minute_count_the_prompt_and_max_tokens(
    clock: FakeClock, fake: FakeProviders
) -> None:
    fake["openai"].answer("from openai")
    fake["claude"].answer("from claude")
    with failover.Router(keyed(keys=(KEY_A,), limits={"tpm": 1000}), clock=clock) as router:
        picks = [router.complete("hi", max_tokens=400).provider for _ in range(3)]
    assert picks == ["openai", "openai", "claude"]


def test_a_skip_for_headroom_is_said_in_the_error(clock: FakeClock, fake: FakeProviders) -> None:
    fake["openai"].answer("ok")
    cfg = failover.Config.from_mapping({
        "providers": {"openai": {"type": "openai", "model": "gpt-4o-mini", "api_key": KEY_A,
                                 "limits": {"rpm": 1}}},
        "routes": {"default": {"chain": ["openai"]}},
    })
    with failover.Router(cfg, clock=clock) as router:
        router.complete("hi")
        with pytest.raises(failover.AllProvidersFailed) as caught:
            router.complete("hi")
    assert "no rate-limit headroom" in str(caught.value)
    assert caught.value.attempts == []


@pytest.mark.parametrize(("limits", "problem"), [
    ({"rpm": 0}, "providers.openai.limits.rpm: expected at least 1, got 0"),
    ({"rpm": 10, "per": "account"}, "providers.openai.limits.per: expected 'provider' or "
                                    "'key', got 'account'"),
    ({"rpms": 10}, "providers.openai.limits.rpms: unknown key (did you mean 'rpm'?)"),
])
def test_limits_config_errors_name_the_path(limits: dict[str, Any], problem: str) -> None:
    with pytest.raises(failover.ConfigError) as caught:
        keyed(limits=limits)
    assert caught.value.problems == [problem]


def test_a_cooldown_shorter_than_its_maximum_is_required() -> None:
    with pytest.raises(failover.ConfigError) as caught:
        keyed(retry={"rate_limit_cooldown": "10s", "max_rate_limit_cooldown": "5s"})
    assert caught.value.problems == [
        "providers.openai.retry: max_rate_limit_cooldown must be at least rate_limit_cooldown"]


# --- the headers -----------------------------------------------------------------------------


def raw(**headers: str) -> list[tuple[bytes, bytes]]:
    return [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]


def test_openai_and_azure_headers_are_read() -> None:
    reading = read_rate_limit_headers(raw(
        x_ratelimit_limit_requests="500", x_ratelimit_remaining_requests="499",
        x_ratelimit_reset_requests="6m0s", x_ratelimit_remaining_tokens="1000",
        x_ratelimit_reset_tokens="20ms", content_type="application/json"))
    assert reading is not None
    assert (reading.requests_limit, reading.requests_left) == (500, 499)
    assert reading.requests_reset == 360.0
    assert (reading.tokens_left, reading.tokens_reset) == (1000, 0.02)
    # Azure sends the remaining counts and no reset.
    azure = read_rate_limit_headers(raw(x_ratelimit_remaining_requests="0"))
    assert azure is not None and azure.requests_left == 0 and azure.requests_reset is None


def test_anthropic_headers_are_read_and_the_tighter_token_count_wins() -> None:
    reading = read_rate_limit_headers(raw(
        anthropic_ratelimit_requests_remaining="7",
        anthropic_ratelimit_requests_reset="2099-01-01T00:00:00Z",
        anthropic_ratelimit_input_tokens_remaining="5000",
        anthropic_ratelimit_output_tokens_remaining="300"))
    assert reading is not None and reading.requests_left == 7
    assert reading.requests_reset is not None and reading.requests_reset > 1e9
    assert reading.tokens_left == 300


@pytest.mark.parametrize("value", ["soon", "-1", "1x", "nan"])
def test_a_header_that_does_not_parse_is_ignored(value: str) -> None:
    assert read_rate_limit_headers(raw(x_ratelimit_reset_requests=value)) is None


def test_a_response_without_the_headers_reads_as_none() -> None:
    assert read_rate_limit_headers(raw(content_type="application/json", x_request_id="1")) is None
