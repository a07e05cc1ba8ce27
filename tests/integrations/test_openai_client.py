"""The openai SDK's own usage patterns, unchanged, against ``OpenAI(router)`` with a
failing primary: plain, streaming, tools, ``parse``, and the SDK's exception classes."""

from __future__ import annotations

import json
from typing import Any

import openai
import pydantic
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ParsedChatCompletion

import failover
from failover.integrations.openai import AsyncOpenAI, OpenAI
from failover.testing import FakeClock, FakeProviders, answer

from .conftest import all_down, make_router

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


class Weather(pydantic.BaseModel):
    city: str
    celsius: int


def get_weather(city: str) -> str:
    return json.dumps({"city": city, "celsius": 21})


@pytest.fixture
def client(router: failover.Router) -> OpenAI:
    return OpenAI(router)


def test_create_returns_the_sdks_chat_completion(
    client: OpenAI, fake: FakeProviders
) -> None:
    fake["openai"].fail(503)
    fake["claude"].answer("Hello from the backup.")
    completion = client.chat.completions.create(
        model="default", messages=[{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "Hello?"}],
        temperature=0.2, max_completion_tokens=50, seed=7)
    assert isinstance(completion, ChatCompletion)
    assert completion.choices[0].message.content == "Hello from the backup."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "claude-haiku-4-5"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert completion.failover.provider == "claude"
    assert [a.error_kind for a in completion.failover.attempts] == ["Overloaded", None]
    sent = fake["claude"].last_request.json
    assert sent["system"] == "Be brief." and sent["max_tokens"] == 50


def test_streaming_yields_chat_completion_chunks(client: OpenAI, fake: FakeProviders) -> None:
    fake["openai"].fail(503)
    fake["claude"].answer("streamed from the backup")
    stream = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Hi"}], stream=True,
        stream_options={"include_usage": True})
    with stream:
        chunks = list(stream)
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "streamed from the backup"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len({c.id for c in chunks}) == 1
    assert stream.response is not None and stream.response.provider == "claude"


def test_a_tool_calling_loop_runs_as_written_for_the_sdk(
    client: OpenAI, fake: FakeProviders
) -> None:
    """The SDK's tool loop: append the assistant message object, run the tool, append
    the result, ask again; the backup serves both turns while the primary is down."""
    fake["openai"].fail(503)
    fake["claude"].sequence(
        answer("", [{"name": "get_weather", "arguments": {"city": "Lyon"}}]),
        answer("It is 21 °C in Lyon."))
    messages: list[Any] = [{"role": "user", "content": "Weather in Lyon?"}]
    ran: list[str] = []
    while True:
        completion = client.chat.completions.create(
            model="default", messages=messages, tools=[WEATHER_TOOL], tool_choice="auto")
        message = completion.choices[0].message
        if not message.tool_calls:
            break
        messages.append(message)
        for call in message.tool_calls:
            ran.append(call.function.name)
            result = get_weather(**json.loads(call.function.arguments))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    assert message.content == "It is 21 °C in Lyon."
    assert ran == ["get_weather"]
    sent = fake["claude"].last_request.messages
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[2]["content"][0]["type"] == "tool_result"


def test_parse_returns_a_parsed_chat_completion(client: OpenAI, fake: FakeProviders) -> None:
    fake["openai"].fail(503)
    fake["claude"].answer('{"city": "Lyon", "celsius": 21}')
    completion = client.chat.completions.parse(
        model="default", messages=[{"role": "user", "content": "Weather?"}],
        response_format=Weather)
    assert isinstance(completion, ParsedChatCompletion)
    assert completion.choices[0].message.parsed == Weather(city="Lyon", celsius=21)


def test_every_provider_failing_is_caught_as_the_sdks_api_status_error(
    client: OpenAI, fake: FakeProviders
) -> None:
    all_down(fake)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="default",
                                       messages=[{"role": "user", "content": "Hi"}])
    error = caught.value
    assert isinstance(error, openai.InternalServerError) and error.status_code == 503
    assert isinstance(error.__cause__, failover.AllProvidersFailed)
    assert [a.provider for a in error.__cause__.attempts] == ["openai", "claude", "gemini"]
    assert error.failover is error.__cause__  # type: ignore[attr-defined]
    assert "all providers failed" in error.message


def test_a_stream_whose_providers_all_fail_raises_the_sdks_error(
    client: OpenAI, fake: FakeProviders
) -> None:
    all_down(fake)
    stream = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Hi"}], stream=True)
    with pytest.raises(openai.APIStatusError) as caught:
        list(stream)
    assert isinstance(caught.value.__cause__, failover.AllProvidersFailed)


def test_caller_mistakes_are_the_sdks_errors(client: OpenAI, fake: FakeProviders) -> None:
    with pytest.raises(openai.NotFoundError, match="'gpt-4o' is not a route"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user",
                                                                   "content": "Hi"}])
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.chat.completions.create(model="default", temperature=float("nan"),
                                       messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(openai.BadRequestError, match="temperature"):
        list(client.chat.completions.create(model="default", temperature=float("nan"),
                                            messages=[{"role": "user", "content": "Hi"}],
                                            stream=True))
    with pytest.raises(openai.BadRequestError, match="only one choice"):
        client.chat.completions.create(model="default", n=2,
                                       messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(TypeError, match="temprature"):
        client.chat.completions.create(model="default", temprature=0.1,
                                       messages=[{"role": "user", "content": "Hi"}])
    assert fake.requests == []
    assert client.router.health()["openai"].calls == 0


def test_a_restart_chunk_tells_the_consumer_to_drop_what_it_showed(
    client: OpenAI, fake: FakeProviders
) -> None:
    fake["openai"].cut_stream(after=2, text="first words that get cut")
    fake["claude"].answer("the whole answer")
    chunks = list(client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Hi"}], stream=True))
    restart = [c for c in chunks if not c.choices and c.model_extra]
    assert len(restart) == 1
    assert restart[0].model_extra["failover_restart"]["provider"] == "claude"
    after = chunks[chunks.index(restart[0]) + 1:]
    assert "".join(c.choices[0].delta.content or "" for c in after) == "the whole answer"


async def test_the_async_client(fake: FakeProviders, clock: FakeClock) -> None:
    fake["openai"].fail(503)
    fake["claude"].sequence(answer("async hello"), answer("async stream"),
                            answer('{"city": "Oslo", "celsius": 3}'))
    async with AsyncOpenAI(make_router(clock)) as client:
        completion = await client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "Hi"}])
        assert completion.choices[0].message.content == "async hello"
        stream = await client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "Hi"}], stream=True)
        async with stream:
            text = "".join([c.choices[0].delta.content or "" async for c in stream
                            if c.choices])
        assert text == "async stream"
        parsed = await client.chat.completions.parse(
            model="default", messages=[{"role": "user", "content": "Hi"}],
            response_format=Weather)
        assert parsed.choices[0].message.parsed == Weather(city="Oslo", celsius=3)
        stream = await client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "Hi"}],
            temperature=-1, stream=True)
        with pytest.raises(openai.BadRequestError, match="temperature"):
            [c async for c in stream]
        fake["claude"].fail(503)
        fake["gemini"].fail(503)
        with pytest.raises(openai.APIStatusError):
            await client.chat.completions.create(
                model="default", messages=[{"role": "user", "content": "Hi"}])
        stream = await client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "Hi"}], stream=True)
        with pytest.raises(openai.APIStatusError) as caught:
            [c async for c in stream]
        assert isinstance(caught.value.__cause__, failover.AllProvidersFailed)
