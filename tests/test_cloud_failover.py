"""The same model from another cloud, through the public API: OpenAI -> Azure OpenAI,
Anthropic -> Claude on Bedrock, Anthropic -> Claude on Vertex AI, Gemini Developer API ->
Gemini on Vertex AI, each failed over by a 503, a 429 and a cut stream, sync and async,
with every attempt recorded and no credential in any of them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import failover
from failover.testing import FakeClock, FakeProviders
from support import CLOUD_SECRETS, PROVIDERS

#: primary -> its backup on another cloud, and what the backup's URL looks like.
PLANS = [
    ("openai", "azure", "https://contoso.openai.azure.com/openai/deployments/gpt4o-prod/"),
    ("claude", "bedrock", "https://bedrock-runtime.us-east-1.amazonaws.com/model/"),
    ("claude", "vertex-claude", "https://us-east5-aiplatform.googleapis.com/v1/projects/"
                                "acme-prod/locations/us-east5/publishers/anthropic/"),
    ("gemini", "vertex-gemini", "https://us-central1-aiplatform.googleapis.com/v1beta1/"
                                "projects/acme-prod/locations/us-central1/publishers/google/"),
]
IDS = [f"{a}->{b}" for a, b, _ in PLANS]


@pytest.fixture
def router(clock: FakeClock, fake: FakeProviders,
           cloud_providers: dict[str, Any]) -> Iterator[failover.Router]:
    config = failover.Config.from_mapping({
        "providers": {**PROVIDERS, **cloud_providers},
        "routes": {f"{a}-{b}": {"chain": [a, b]} for a, b, _ in PLANS},
        "defaults": {"retry": {"attempts": 1}},
    })
    with failover.Router(config, clock=clock) as built:
        yield built


def check(reply: failover.Response, fake: FakeProviders, primary: str, backup: str,
          url: str, kind: str) -> None:
    assert reply.provider == backup
    assert reply.text == f"served by {backup}"
    assert [(a.provider, a.outcome, a.error_kind) for a in reply.attempts] == [
        (primary, "error", kind), (backup, "ok", None)]
    assert fake[backup].calls == 1
    assert fake[backup].last_request.url.startswith(url)
    for attempt in reply.attempts:
        for secret in CLOUD_SECRETS:
            assert secret not in attempt.detail


FAULTS = {
    "503": (lambda p: p.fail(503), "Overloaded"),
    "429": (lambda p: p.fail(429, retry_after=30), "RateLimited"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize(("primary", "backup", "url"), PLANS, ids=IDS)
def test_a_failing_maker_api_fails_over_to_its_cloud(
        router: failover.Router, fake: FakeProviders, primary: str, backup: str, url: str,
        fault: str) -> None:
    inject, kind = FAULTS[fault]
    inject(fake[primary])
    fake[backup].answer(f"served by {backup}")
    reply = router.complete("Hello", route=f"{primary}-{backup}")
    check(reply, fake, primary, backup, url, kind)


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize(("primary", "backup", "url"), PLANS, ids=IDS)
async def test_a_failing_maker_api_fails_over_to_its_cloud_async(
        router: failover.Router, fake: FakeProviders, primary: str, backup: str, url: str,
        fault: str) -> None:
    inject, kind = FAULTS[fault]
    inject(fake[primary])
    fake[backup].answer(f"served by {backup}")
    reply = await router.acomplete("Hello", route=f"{primary}-{backup}")
    check(reply, fake, primary, backup, url, kind)


@pytest.mark.parametrize(("primary", "backup", "url"), PLANS, ids=IDS)
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_cut_stream_restarts_on_the_cloud(
        router: failover.Router, fake: FakeProviders, primary: str, backup: str, url: str,
        mode: str) -> None:
    fake[primary].cut_stream(after=2)
    fake[backup].answer(f"served by {backup}")
    route = f"{primary}-{backup}"
    if mode == "sync":
        events = list(router.stream("Hello", route=route))
    else:
        events = [e async for e in router.astream("Hello", route=route)]
    restarts = [e for e in events if isinstance(e, failover.Restart)]
    assert [r.provider for r in restarts] == [backup]
    done = events[-1]
    assert isinstance(done, failover.Completed)
    check(done.response, fake, primary, backup, url, "StreamInterrupted")
    assert fake[backup].last_request.stream


async def test_one_entra_token_serves_every_entry_point_of_a_new_router(
        clock: FakeClock, fake: FakeProviders, cloud_providers: dict[str, Any]) -> None:
    # The background preparation and the first request used to build a client each,
    # and so fetch a token each.
    config = failover.Config.from_mapping({
        "providers": {"azure-entra": cloud_providers["azure-entra"]},
        "routes": {"default": {"chain": ["azure-entra"]}}})
    fake["azure-entra"].answer("hi")
    with failover.Router(config, clock=clock) as router:
        for _ in range(3):
            router.complete("Hello")
        await router.acomplete("Hello")
    posts = [r for r in fake.identity.requests if r.method == "POST"]
    assert len(posts) == 1
    assert fake["azure-entra"].calls == 4


@pytest.mark.parametrize("backup", ["azure-entra", "vertex-claude", "vertex-gemini"])
def test_an_unreachable_token_endpoint_is_a_connection_failure_that_fails_over(
        router_with_entra: failover.Router, fake: FakeProviders, backup: str) -> None:
    fake.identity.refuse()
    fake[backup].answer("never")
    fake["openai"].answer("served by openai")
    reply = router_with_entra.complete("Hello", route=f"{backup}-openai")
    assert reply.provider == "openai"
    assert [(a.provider, a.error_kind) for a in reply.attempts[:1]] == [
        (backup, "ConnectionFailed")]
    assert fake[backup].calls == 0


@pytest.fixture
def router_with_entra(clock: FakeClock, fake: FakeProviders,
                      cloud_providers: dict[str, Any]) -> Iterator[failover.Router]:
    names = ["azure-entra", "vertex-claude", "vertex-gemini"]
    config = failover.Config.from_mapping({
        "providers": {**PROVIDERS, **cloud_providers},
        "routes": {f"{n}-openai": {"chain": [n, "openai"]} for n in names},
        "defaults": {"retry": {"attempts": 1}},
    })
    with failover.Router(config, clock=clock) as built:
        yield built
