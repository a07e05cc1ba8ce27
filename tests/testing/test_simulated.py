"""Every simulated behaviour end to end: the real adapters and SDKs run behind the seam,
for the OpenAI, Anthropic and Gemini wire formats, sync and async, streamed and not."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from failover._config import ProviderConfig, TimeoutsConfig
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
from failover._limits import QuotaReading
from failover._models import Completed, Response, TextDelta, ToolCall, build_request
from failover.providers import build_adapter
from failover.providers._base import ProviderAdapter, current_override
from failover.providers._wire import DEFAULT_TEXT
from failover.testing import (
    FakeClock,
    FakeProviders,
    answer,
    cut_stream,
    down,
    fail,
    flaky,
    quota,
    refuse,
    sequence,
    timeout,
)

CONFIGS = {
    "openai": {"type": "openai", "model": "gpt-4o-mini", "api_key": "sk-test-0123456789"},
    "claude": {"type": "anthropic", "model": "claude-haiku-4-5", "api_key": "sk-ant-test-01234"},
    "gemini": {"type": "gemini", "model": "gemini-2.5-flash", "api_key": "AIzaTest0123456789"},
}
FORMATS = {"openai": "openai", "claude": "anthropic", "gemini": "gemini"}
REQUEST = build_request("Say hello", max_tokens=50)


def make_adapter(name: str, timeouts: TimeoutsConfig | None = None) -> ProviderAdapter:
    return build_adapter(name, ProviderConfig(**CONFIGS[name]), timeouts or TimeoutsConfig())


@pytest.fixture(params=list(CONFIGS))
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def call(adapter: ProviderAdapter, mode: str, *, stream: bool = False) -> Response:
    """One request through the adapter; a stream must end with `Completed`."""
    if not stream:
        if mode == "sync":
            return adapter.complete(REQUEST)
        return asyncio.run(adapter.acomplete(REQUEST))
    if mode == "sync":
        events = list(adapter.stream(REQUEST))
    else:
        async def collect() -> list[Any]:
            return [e async for e in adapter.astream(REQUEST)]

        events = asyncio.run(collect())
    last = events[-1]
    assert isinstance(last, Completed)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == last.response.text
    return last.response


def failure(adapter: ProviderAdapter, mode: str, *, stream: bool = False) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        call(adapter, mode, stream=stream)
    return info.value


def outcomes(adapter: ProviderAdapter, n: int) -> list[str]:
    result = []
    for _ in range(n):
        try:
            result.append(adapter.complete(REQUEST).text)
        except ProviderError as err:
            result.append(err.kind)
    return result


# --- answers ------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_answer_text_in_each_wire_format(
    fake: FakeProviders, name: str, mode: str, stream: bool
) -> None:
    fake[name].answer("Hello from the simulated provider")
    reply = call(make_adapter(name), mode, stream=stream)
    assert reply.text == "Hello from the simulated provider"
    assert reply.provider == name
    assert reply.model == CONFIGS[name]["model"]
    assert reply.finish_reason == "stop"
    assert reply.usage.input_tokens > 0
    assert reply.usage.output_tokens > 0
    assert fake[name].calls == 1
    assert fake[name].requests[0].format == FORMATS[name]
    assert fake[name].requests[0].stream is stream


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_answer_tool_calls(fake: FakeProviders, name: str, mode: str, stream: bool) -> None:
    fake[name].answer(
        "", tool_calls=[ToolCall("call_1", "get_weather", {"city": "Paris", "days": 3}),
                        {"name": "get_time", "arguments": {"tz": "CET"}}],
    )  # fmt: skip
    reply = call(make_adapter(name), mode, stream=stream)
    assert reply.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [
        ("get_weather", {"city": "Paris", "days": 3}),
        ("get_time", {"tz": "CET"}),
    ]


def test_answer_streams_word_by_word_or_by_chunk_size(fake: FakeProviders, name: str) -> None:
    adapter = make_adapter(name)
    fake[name].answer("one two three")
    deltas = [e.text for e in adapter.stream(REQUEST) if isinstance(e, TextDelta)]
    assert deltas == ["one ", "two ", "three"]
    fake[name].answer("abcdefg", chunk_size=3)
    deltas = [e.text for e in adapter.stream(REQUEST) if isinstance(e, TextDelta)]
    assert deltas == ["abc", "def", "g"]


def test_answer_with_finish_reason_length(fake: FakeProviders, name: str) -> None:
    fake[name].answer("truncated", finish_reason="length")
    assert make_adapter(name).complete(REQUEST).finish_reason == "length"


# --- HTTP errors --------------------------------------------------------------------------

STATUSES = [
    (503, Overloaded), (529, Overloaded), (500, ServerError), (502, ServerError),
    (401, AuthenticationFailed), (403, PermissionDenied), (404, ModelNotFound),
    (400, BadRequest), (429, RateLimited),
]  # fmt: skip


@pytest.mark.parametrize(("status", "kind"), STATUSES, ids=[str(s) for s, _ in STATUSES])
def test_fail_with_status(fake: FakeProviders, name: str, mode: str, status: int,
                          kind: type[ProviderError]) -> None:  # fmt: skip
    fake[name].fail(status)
    err = failure(make_adapter(name), mode)
    assert type(err) is kind
    assert err.status == status
    assert fake[name].calls == 1  # exactly one HTTP request: SDK retries are off


def test_fail_in_a_stream_request(fake: FakeProviders, name: str, mode: str) -> None:
    fake[name].fail(503)
    assert isinstance(failure(make_adapter(name), mode, stream=True), Overloaded)


def test_rate_limit_carries_retry_after(fake: FakeProviders, name: str, mode: str) -> None:
    fake[name].rate_limit(retry_after=7)
    err = failure(make_adapter(name), mode)
    assert isinstance(err, RateLimited)
    assert err.retry_after == 7.0


def test_context_window(fake: FakeProviders, name: str, mode: str) -> None:
    fake[name].context_window()
    assert isinstance(failure(make_adapter(name), mode), ContextWindowExceeded)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_content_filter_is_not_an_empty_success(
    fake: FakeProviders, name: str, mode: str, stream: bool
) -> None:
    fake[name].content_filter()
    assert isinstance(failure(make_adapter(name), mode, stream=stream), ContentFiltered)


# --- transport faults ---------------------------------------------------------------------

TRANSPORT = [
    ("timeout", Timeout), ("refuse", ConnectionFailed), ("reset", ConnectionFailed),
]  # fmt: skip


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(("fault", "kind"), TRANSPORT, ids=[f for f, _ in TRANSPORT])
def test_transport_faults(fake: FakeProviders, name: str, mode: str, stream: bool,
                          fault: str, kind: type[ProviderError]) -> None:  # fmt: skip
    getattr(fake[name], fault)()
    started = time.monotonic()
    err = failure(make_adapter(name), mode, stream=stream)
    assert type(err) is kind
    assert time.monotonic() - started < 5  # timeout() raises at once, it does not wait
    assert fake[name].calls == 1


def test_cut_stream_after_n_chunks(fake: FakeProviders, name: str, mode: str) -> None:
    fake[name].cut_stream(after=2, text="alpha beta gamma delta")
    err = failure(make_adapter(name), mode, stream=True)
    assert isinstance(err, StreamInterrupted)
    assert err.partial_text == "alpha beta "


def test_cut_stream_before_any_chunk_is_a_connection_failure(
    fake: FakeProviders, name: str, mode: str
) -> None:
    fake[name].cut_stream(after=0)
    assert isinstance(failure(make_adapter(name), mode, stream=True), ConnectionFailed)


def test_cut_body_without_stream(fake: FakeProviders, name: str, mode: str) -> None:
    fake[name].cut_stream()
    assert isinstance(failure(make_adapter(name), mode), ConnectionFailed)


def test_stall_after_n_chunks(fake: FakeProviders, name: str, mode: str) -> None:
    fake[name].stall(after=1, text="alpha beta gamma")
    err = failure(make_adapter(name), mode, stream=True)
    assert isinstance(err, StreamInterrupted)
    assert err.partial_text == "alpha "
    fake[name].stall()
    assert isinstance(failure(make_adapter(name), mode), Timeout)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_malformed_body(fake: FakeProviders, name: str, mode: str, stream: bool) -> None:
    fake[name].malformed()
    assert isinstance(failure(make_adapter(name), mode, stream=stream), InvalidResponse)


def test_malformed_chunk_mid_stream(fake: FakeProviders, name: str, mode: str) -> None:
    fake[name].malformed(after=2, text="alpha beta gamma")
    err = failure(make_adapter(name), mode, stream=True)
    # A chunk that does not parse is an integration failure (SPEC), partial text kept.
    assert isinstance(err, InvalidResponse)
    assert err.partial_text == "alpha beta "


# --- time ---------------------------------------------------------------------------------


def test_slow_advances_the_kits_clock(fake: FakeProviders, clock: FakeClock, name: str,
                                      mode: str) -> None:  # fmt: skip
    fake[name].slow(2.5, "late but fine")
    before = clock()
    assert call(make_adapter(name), mode).text == "late but fine"
    assert clock() - before == pytest.approx(2.5)
    assert fake[name].requests[0].time == before


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_slow_really_waits_without_a_clock(mode: str, stream: bool) -> None:
    with FakeProviders() as fake:
        fake["openai"].slow(0.05, "late")
        started = time.monotonic()
        assert call(make_adapter("openai"), mode, stream=stream).text == "late"
        assert time.monotonic() - started >= 0.05


def test_hang_times_out_at_the_clients_read_timeout(
    fake: FakeProviders, clock: FakeClock, name: str, mode: str
) -> None:
    fake[name].hang()
    before = clock()
    err = failure(make_adapter(name, TimeoutsConfig(request=3.0)), mode)
    assert isinstance(err, Timeout)
    assert clock() - before == pytest.approx(3.0)


def test_hang_for_less_than_the_timeout(fake: FakeProviders, clock: FakeClock) -> None:
    fake["openai"].hang(1.5)
    before = clock()
    assert isinstance(failure(make_adapter("openai"), "sync"), Timeout)
    assert clock() - before == pytest.approx(1.5)


def test_hang_really_waits_without_a_clock(mode: str) -> None:
    with FakeProviders() as fake:
        fake["openai"].hang(0.05)
        started = time.monotonic()
        assert isinstance(failure(make_adapter("openai"), mode), Timeout)
        assert time.monotonic() - started >= 0.05


# --- patterns -----------------------------------------------------------------------------


def test_flaky_is_seeded(name: str) -> None:
    runs = []
    for _ in range(2):
        with FakeProviders() as fake:
            fake[name].flaky(0.5, seed=7, text="ok")
            runs.append(outcomes(make_adapter(name), 20))
    assert runs[0] == runs[1]
    assert {"ok", "Overloaded"} == set(runs[0])
    with FakeProviders() as fake:
        fake[name].flaky(0.5, seed=8, text="ok")
        assert outcomes(make_adapter(name), 20) != runs[0]


def test_flaky_rate_and_status(fake: FakeProviders) -> None:
    adapter = make_adapter("openai")
    fake["openai"].flaky(0.0, text="ok")
    assert outcomes(adapter, 5) == ["ok"] * 5
    fake["openai"].flaky(1.0, status=500)
    assert outcomes(adapter, 3) == ["ServerError"] * 3


def test_down_after_n_for_m_requests(fake: FakeProviders, name: str) -> None:
    fake[name].down(after=2, requests=3, text="up")
    assert outcomes(make_adapter(name), 7) == ["up", "up"] + ["Overloaded"] * 3 + ["up", "up"]


def test_down_for_seconds_on_the_kits_clock(fake: FakeProviders, clock: FakeClock) -> None:
    adapter = make_adapter("openai")
    fake["openai"].down(after=1, for_seconds=10, text="up")
    assert outcomes(adapter, 1) == ["up"]
    assert outcomes(adapter, 2) == ["Overloaded"] * 2  # the outage starts here
    clock.advance(9.5)
    assert outcomes(adapter, 1) == ["Overloaded"]
    clock.advance(0.5)
    assert outcomes(adapter, 2) == ["up", "up"]


def test_down_with_another_fault_and_for_good(fake: FakeProviders) -> None:
    adapter = make_adapter("openai")
    fake["openai"].down(after=1, fault=refuse(), text="up")
    assert outcomes(adapter, 4) == ["up"] + ["ConnectionFailed"] * 3


def test_sequence_then_the_last_repeats(fake: FakeProviders, name: str, mode: str) -> None:
    adapter = make_adapter(name)
    fake[name].sequence(fail(503), timeout(), answer("ok"))
    assert isinstance(failure(adapter, mode), Overloaded)
    assert isinstance(failure(adapter, mode), Timeout)
    assert call(adapter, mode).text == "ok"
    assert call(adapter, mode).text == "ok"
    assert fake[name].calls == 4


def test_sequence_gives_one_request_to_each_step_and_the_last_keeps_its_state(
    fake: FakeProviders,
) -> None:
    fake["openai"].sequence(cut_stream(), down(after=1, requests=1, text="up"))
    adapter = make_adapter("openai")
    assert outcomes(adapter, 4) == ["ConnectionFailed", "up", "Overloaded", "up"]


def test_a_new_behaviour_replaces_the_previous(fake: FakeProviders) -> None:
    adapter = make_adapter("openai")
    fake["openai"].fail(503)
    fake["openai"].answer("second thoughts")
    assert adapter.complete(REQUEST).text == "second thoughts"


def test_one_behaviour_object_given_to_two_providers_keeps_two_states(
    fake: FakeProviders,
) -> None:
    outage = down(requests=1, text="up")
    fake["openai"].set(outage)
    fake["claude"].set(outage)
    assert outcomes(make_adapter("openai"), 2) == ["Overloaded", "up"]
    assert outcomes(make_adapter("claude"), 2) == ["Overloaded", "up"]


# --- records ------------------------------------------------------------------------------


def test_records_what_each_provider_received(
    fake: FakeProviders, clock: FakeClock, name: str
) -> None:
    fake[name].answer("ok")
    adapter = make_adapter(name)
    adapter.complete(REQUEST)
    clock.advance(3)
    list(adapter.stream(REQUEST))
    first, second = fake[name].requests
    assert fake[name].calls == 2
    assert first.provider == name
    assert first.method == "POST"
    assert first.format == FORMATS[name]
    assert first.model == CONFIGS[name]["model"]
    assert (first.stream, second.stream) == (False, True)
    assert second.time - first.time == 3
    assert "Say hello" in str(first.messages)
    assert fake[name].last_request is second
    if name == "gemini":
        assert first.url.endswith("/models/gemini-2.5-flash:generateContent")
        assert ":streamGenerateContent" in second.url
        assert first.headers["x-goog-api-key"] == CONFIGS[name]["api_key"]
    else:
        assert first.json["model"] == CONFIGS[name]["model"]
        assert first.json["max_tokens" if name == "claude" else "max_completion_tokens"] == 50
        assert second.json["stream"] is True
    # a repr never shows the key, even in a failing assertion's message
    assert CONFIGS[name]["api_key"] not in repr(first)
    assert "***" in str(first.redacted_headers())


def test_the_kit_lists_every_request_in_order(fake: FakeProviders) -> None:
    fake["openai"].fail(503)
    fake["claude"].answer("ok")
    openai, claude = make_adapter("openai"), make_adapter("claude")
    with pytest.raises(Overloaded):
        openai.complete(REQUEST)
    claude.complete(REQUEST)  # the fake clock has not moved: order is arrival order
    with pytest.raises(Overloaded):
        openai.complete(REQUEST)
    assert [r.provider for r in fake.requests] == ["openai", "claude", "openai"]
    assert set(fake) == {"openai", "claude"}
    assert "gemini" not in fake


# --- matching -----------------------------------------------------------------------------


def local_adapter(name: str = "local") -> ProviderAdapter:
    config = ProviderConfig(type="openai", model="llama3.1",
                            base_url="http://localhost:11434/v1", api_key="none")
    return build_adapter(name, config, TimeoutsConfig())


def test_match_by_base_url(fake: FakeProviders, mode: str) -> None:
    fake["http://localhost:11434/v1"].answer("from the local server")
    assert call(local_adapter(), mode).text == "from the local server"
    assert call(local_adapter("other-name"), mode).text == "from the local server"
    assert fake["http://localhost:11434/v1"].calls == 2
    assert fake["http://localhost:11434/v1"].requests[0].provider == "local"


def test_a_name_is_more_specific_than_a_base_url(fake: FakeProviders) -> None:
    fake["http://localhost:11434"].fail(503)
    fake["http://localhost:11434/v1"].answer("longest prefix")
    fake["local"].answer("by name")
    assert local_adapter().complete(REQUEST).text == "by name"
    assert local_adapter("other").complete(REQUEST).text == "longest prefix"
    assert fake["http://localhost:11434"].calls == 0


# --- requests nobody planned for ----------------------------------------------------------


def test_a_provider_with_no_behaviour_fails_clearly(fake: FakeProviders, name: str,
                                                    mode: str) -> None:  # fmt: skip
    err = failure(make_adapter(name), mode)
    assert isinstance(err, ConnectionFailed)
    assert f"fake_providers: provider {name!r}" in str(err)
    assert f"fake_providers[{name!r}].answer('...')" in str(err)
    assert [r.provider for r in fake.unexpected] == [name]


def test_a_provider_looked_at_but_given_no_behaviour_is_unexpected_too(
    fake: FakeProviders,
) -> None:
    assert fake["openai"].calls == 0
    with pytest.raises(ConnectionFailed, match="no behaviour was set"):
        make_adapter("openai").complete(REQUEST)
    assert fake["openai"].calls == 1
    assert len(fake.unexpected) == 1


def test_default_behaviour_for_every_provider(clock: FakeClock) -> None:
    with FakeProviders(clock=clock, default=answer("by default")) as fake:
        fake["claude"].fail(503)
        assert make_adapter("openai").complete(REQUEST).text == "by default"
        assert isinstance(failure(make_adapter("claude"), "sync"), Overloaded)
        assert fake.unexpected == []
    with FakeProviders(default=down(requests=1, text="back")):
        gemini = make_adapter("gemini")
        assert isinstance(failure(gemini, "async"), Overloaded)
        assert call(gemini, "async").text == "back"
        assert isinstance(failure(make_adapter("openai"), "sync"), Overloaded)  # own state


# --- the seam -----------------------------------------------------------------------------


def test_the_seam_is_removed_on_exit() -> None:
    fake = FakeProviders()
    assert current_override() is None
    with fake:
        assert current_override() is fake.transport
        with fake:  # re-entrant
            assert current_override() is fake.transport
        assert current_override() is fake.transport
    assert current_override() is None


async def test_works_in_async_code(clock: FakeClock) -> None:
    async with FakeProviders(clock=clock) as fake:
        fake["claude"].slow(4, "async hello")
        adapter = make_adapter("claude")
        reply = await adapter.acomplete(REQUEST)
        events = [e async for e in adapter.astream(REQUEST)]
        await adapter.aclose()
    assert reply.text == "async hello"
    assert isinstance(events[-1], Completed)
    assert events[-1].response.text == "async hello"
    assert clock.sleeps == [4, 4]


async def test_parallel_tasks_see_their_own_fakes() -> None:
    async def run(text: str) -> str:
        with FakeProviders() as fake:
            fake["openai"].slow(0.01, text)
            reply = await make_adapter("openai").acomplete(REQUEST)
            assert fake["openai"].calls == 1
            return reply.text

    assert list(await asyncio.gather(run("first"), run("second"))) == ["first", "second"]


def test_concurrent_requests_from_threads_each_count_once(fake: FakeProviders) -> None:
    fake["openai"].down(requests=20, text="up")
    adapter = make_adapter("openai")

    def one(context: contextvars.Context) -> str:
        return context.run(outcomes, adapter, 1)[0]

    # Threads do not inherit context variables: each task takes a copy of this one's.
    contexts = [contextvars.copy_context() for _ in range(60)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, contexts))
    assert results.count("Overloaded") == 20
    assert results.count("up") == 40
    assert fake["openai"].calls == 60


# --- misuse -------------------------------------------------------------------------------

MISUSE: list[tuple[Callable[[], Any], type[Exception], str]] = [
    (lambda: fail(200), ValueError, "HTTP error status"),
    (lambda: sequence(), ValueError, "at least one"),
    (lambda: sequence(fail(503), "ok"), TypeError, "not a behaviour"),  # type: ignore[arg-type]
    (lambda: down(requests=1, for_seconds=2), ValueError, "not both"),
    (lambda: flaky(1.5), ValueError, "between 0 and 1"),
    (lambda: cut_stream(after=-1), ValueError, "0 or more"),
    (lambda: answer("x", tool_calls=[{"arguments": {}}]), TypeError, "'name'"),
    (lambda: FakeProviders()["openai"].set("dwon"), ValueError, "not a behaviour"),
    (lambda: FakeProviders()[3], TypeError, "provider name"),  # type: ignore[index]
]


@pytest.mark.parametrize(("build", "error", "says"), MISUSE, ids=range(len(MISUSE)))
def test_misuse_says_what_is_wrong(build: Callable[[], Any], error: type[Exception],
                                   says: str) -> None:  # fmt: skip
    with pytest.raises(error, match=says):
        build()


def test_shorthands(fake: FakeProviders) -> None:
    adapter = make_adapter("openai")
    cases: list[tuple[str | int, str]] = [
        ("down", "Overloaded"), ("503", "Overloaded"), (500, "ServerError"),
        ("refused", "ConnectionFailed"), ("timeout", "Timeout"), ("rate_limit", "RateLimited"),
        ("malformed", "InvalidResponse"), ("overloaded", "Overloaded"),
    ]  # fmt: skip
    for shorthand, kind in cases:
        fake["openai"].set(shorthand)
        assert outcomes(adapter, 1) == [kind], shorthand
    fake["openai"].set("ok")
    assert outcomes(adapter, 1) == ["This is a simulated answer."]


# --- quotas --------------------------------------------------------------------------------


def test_quota_enforces_rpm_per_key_with_the_providers_own_headers(fake: FakeProviders) -> None:
    """OpenAI-style and Anthropic-style headers: what the adapters read (Gemini sends none)."""
    fake["openai"].quota(rpm=2)
    fake["claude"].quota(rpm=2, tpm=100_000)
    for name in ("openai", "claude"):
        adapter = make_adapter(name)
        readings: list[QuotaReading] = []

        def heard(key: int, reading: QuotaReading, readings: list[QuotaReading] = readings
                  ) -> None:
            readings.append(reading)

        adapter.on_rate_limits = heard
        assert outcomes(adapter, 3) == [DEFAULT_TEXT, DEFAULT_TEXT, "RateLimited"]
        assert [r.requests_left for r in readings] == [1, 0, 0]
        assert {r.requests_limit for r in readings} == {2}
    # Another key has its own quota.
    other = build_adapter("openai", ProviderConfig(**{**CONFIGS["openai"],
                                                      "api_key": "sk-another-0123456789"}),
                          TimeoutsConfig())
    assert outcomes(other, 1) == [DEFAULT_TEXT]


def test_quota_resets_with_its_window_on_the_kits_clock(clock: FakeClock,
                                                       fake: FakeProviders) -> None:
    fake["gemini"].quota(rpm=1, window=10)
    adapter = make_adapter("gemini")
    assert outcomes(adapter, 2) == [DEFAULT_TEXT, "RateLimited"]
    clock.advance(10)
    assert outcomes(adapter, 1) == [DEFAULT_TEXT]
    assert fake["gemini"].behaviour.refused == 1  # type: ignore[union-attr]


def test_quota_counts_tokens_and_may_send_retry_after(fake: FakeProviders) -> None:
    fake["openai"].quota(tpm=80, retry_after=True)
    adapter = make_adapter("openai")
    first = adapter.complete(REQUEST)  # max_tokens 50 plus the prompt's estimate
    assert first.text == DEFAULT_TEXT
    err = failure(adapter, "sync")
    assert isinstance(err, RateLimited) and err.retry_after is not None and err.retry_after > 0


def test_quota_needs_a_limit() -> None:
    with pytest.raises(ValueError, match="rpm=, tpm= or both"):
        quota()
