"""``type: fake``: the OpenAI adapter over an in-process simulator driven by its settings."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from failover._config import ProviderConfig, TimeoutsConfig
from failover._errors import (
    ConnectionFailed,
    InvalidResponse,
    Overloaded,
    ProviderError,
    RateLimited,
    StreamInterrupted,
    Timeout,
)
from failover._models import Completed, TextDelta, build_request
from failover.providers import build_adapter
from failover.providers._base import ProviderAdapter
from failover.providers.fake import DEFAULT_BASE_URL, FakeAdapter
from failover.testing import FakeProviders

REQUEST = build_request("hello")


def fake_adapter(name: str = "sim", **settings: Any) -> ProviderAdapter:
    config = ProviderConfig(type="fake", fake=settings or None)
    return build_adapter(name, config, TimeoutsConfig())


def outcomes(adapter: ProviderAdapter, n: int) -> list[str]:
    result = []
    for _ in range(n):
        try:
            adapter.complete(REQUEST)
            result.append("ok")
        except ProviderError as err:
            result.append(err.kind)
    return result


def test_answers_with_defaults_no_key_no_network() -> None:
    adapter = fake_adapter()
    assert isinstance(adapter, FakeAdapter)
    reply = adapter.complete(REQUEST)
    assert reply.text == "This is a simulated answer."
    assert reply.model == "fake-model"
    assert reply.provider == "sim"
    assert reply.finish_reason == "stop"
    assert reply.usage.output_tokens > 0
    assert adapter.config.base_url == DEFAULT_BASE_URL


def test_text_model_and_stream_chunks() -> None:
    config = ProviderConfig(type="fake", model="my-sim", fake={"text": "abcdefghij",
                                                               "chunk_size": 4})
    adapter = build_adapter("sim", config, TimeoutsConfig())
    events = list(adapter.stream(REQUEST))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["abcd", "efgh", "ij"]
    last = events[-1]
    assert isinstance(last, Completed)
    assert last.response.text == "abcdefghij"
    assert last.response.model == "my-sim"
    assert last.response.usage.output_tokens > 0  # the usage chunk was asked for and sent


async def test_async_answer_and_stream() -> None:
    adapter = fake_adapter(text="async sim")
    assert (await adapter.acomplete(REQUEST)).text == "async sim"
    events = [e async for e in adapter.astream(REQUEST)]
    assert isinstance(events[-1], Completed)
    assert events[-1].response.text == "async sim"
    await adapter.aclose()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_latency_is_really_waited(mode: str) -> None:
    adapter = fake_adapter(latency="30ms")
    started = time.monotonic()
    if mode == "sync":
        adapter.complete(REQUEST)
    else:
        asyncio.run(adapter.acomplete(REQUEST))
    assert time.monotonic() - started >= 0.03


def test_fail_rate_is_seeded() -> None:
    first = outcomes(fake_adapter(fail_rate=0.5, seed=3), 30)
    again = outcomes(fake_adapter(fail_rate=0.5, seed=3), 30)
    other = outcomes(fake_adapter(fail_rate=0.5, seed=4), 30)
    assert first == again != other
    assert set(first) == {"ok", "Overloaded"}
    assert 5 < first.count("Overloaded") < 25


def test_fail_status() -> None:
    assert outcomes(fake_adapter(fail_rate=1.0, fail_status=500), 2) == ["ServerError"] * 2


FAULTS = [
    ({"status": 429, "retry_after": 4}, RateLimited),
    ({"kind": "timeout"}, Timeout),
    ({"kind": "refused"}, ConnectionFailed),
    ({"kind": "reset"}, ConnectionFailed),
    ({"kind": "malformed"}, InvalidResponse),
    ({"kind": "cut_stream"}, ConnectionFailed),
]


@pytest.mark.parametrize(("fault", "kind"), FAULTS, ids=[str(f) for f, _ in FAULTS])
def test_fault_settings(fault: dict[str, Any], kind: type[ProviderError]) -> None:
    with pytest.raises(kind) as info:
        fake_adapter(fault=fault).complete(REQUEST)
    if "retry_after" in fault:
        assert info.value.retry_after == fault["retry_after"]


@pytest.mark.parametrize(("fault", "kind"), [("malformed", InvalidResponse),
                                             ("cut_stream", StreamInterrupted)])
def test_fault_settings_mid_stream(fault: str, kind: type[ProviderError]) -> None:
    with pytest.raises(kind) as info:
        list(fake_adapter(fault={"kind": fault}, chunk_size=2).stream(REQUEST))
    assert info.value.partial_text


def test_fault_rate() -> None:
    result = outcomes(fake_adapter(fault={"kind": "refused", "rate": 0.5}, seed=1), 20)
    assert set(result) == {"ok", "ConnectionFailed"}


def test_the_test_kit_overrides_a_fake_provider_by_name() -> None:
    adapter = fake_adapter("drill-target", text="from settings")
    with FakeProviders() as fake:
        fake["drill-target"].fail(503)
        with pytest.raises(Overloaded):
            adapter.complete(REQUEST)
        assert fake["drill-target"].calls == 1
        assert fake["drill-target"].requests[0].url == DEFAULT_BASE_URL + "/chat/completions"
    assert adapter.complete(REQUEST).text == "from settings"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_fake_provider_the_kit_was_not_told_about_answers_from_its_settings(
    mode: str,
) -> None:
    adapter = fake_adapter(text="from settings", chunk_size=5)
    with FakeProviders() as fake:
        if mode == "sync":
            assert adapter.complete(REQUEST).text == "from settings"
            assert list(adapter.stream(REQUEST))[-1].response.text == "from settings"  # type: ignore[union-attr]
        else:
            assert asyncio.run(adapter.acomplete(REQUEST)).text == "from settings"
        assert fake.unexpected == []
