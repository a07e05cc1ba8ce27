"""A pydantic-ai ``Agent`` on a failover route: a tool-using two-step task completes, with
the tool run once, while the primary is down and while its stream is cut mid-answer."""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Any

import pydantic
import pytest
from pydantic_ai import Agent, NativeOutput, PromptedOutput
from pydantic_ai.exceptions import ModelAPIError

import failover
from failover.integrations.pydantic_ai import FailoverModel
from failover.testing import FakeProviders, answer

from .conftest import all_down

TOOL_CALL = answer("", [{"name": "get_weather", "arguments": {"city": "Lyon"}}])
FINAL = "It is 21 °C in Lyon."


def weather_agent(router: failover.Router, **kwargs: Any) -> tuple[Agent[None, Any], list[str]]:
    ran: list[str] = []
    agent: Agent[None, Any] = Agent(FailoverModel(router), instructions="Be brief.", **kwargs)

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """The weather in a city."""
        ran.append(city)
        return "21 °C"

    return agent, ran


async def streamed(agent: Agent[None, Any], prompt: str) -> tuple[Any, list[Any]]:
    """Run the agent with an event stream handler, which streams every model request."""
    seen: list[Any] = []

    async def handler(ctx: Any, events: AsyncIterable[Any]) -> None:
        seen.extend([event async for event in events])

    result = await agent.run(prompt, event_stream_handler=handler)
    return result.output, seen


def test_a_tool_task_completes_while_the_primary_is_down(
    router: failover.Router, fake: FakeProviders
) -> None:
    fake["openai"].fail(503)
    fake["claude"].sequence(TOOL_CALL, answer(FINAL))
    agent, ran = weather_agent(router)
    result = agent.run_sync("Weather in Lyon?")
    assert result.output == FINAL and ran == ["Lyon"]
    sent = fake["claude"].last_request
    assert sent.json["system"] == "Be brief."
    assert [m["role"] for m in sent.messages] == ["user", "assistant", "user"]
    assert sent.messages[2]["content"][0]["tool_use_id"] == sent.messages[1]["content"][0]["id"]
    last = result.all_messages()[-1]
    assert last.provider_name == "claude" and last.model_name == "claude-haiku-4-5"


async def test_a_streamed_tool_task_completes_while_the_primary_is_down(
    router: failover.Router, fake: FakeProviders
) -> None:
    fake["openai"].fail(503)
    fake["claude"].sequence(TOOL_CALL, answer(FINAL))
    agent, ran = weather_agent(router)
    output, events = await streamed(agent, "Weather in Lyon?")
    assert output == FINAL and ran == ["Lyon"]
    assert events


async def test_a_cut_stream_recovers_and_the_tool_runs_once(
    router: failover.Router, fake: FakeProviders
) -> None:
    """The primary streams its first words, then its connection is cut, on both turns;
    each turn starts over on the backup, and the agent keeps only whole answers."""
    fake["openai"].cut_stream(after=2, text="Partial words that never finish")
    fake["claude"].sequence(TOOL_CALL, answer(FINAL))
    agent, ran = weather_agent(router)
    output, _events = await streamed(agent, "Weather in Lyon?")
    assert output == FINAL
    assert ran == ["Lyon"]
    assert fake["openai"].calls == 2 and fake["claude"].calls == 2


class Forecast(pydantic.BaseModel):
    city: str
    celsius: int


def test_structured_output_through_the_output_tool(
    router: failover.Router, fake: FakeProviders
) -> None:
    fake["openai"].fail(503)
    fake["claude"].answer("", [{"name": "final_result",
                                "arguments": {"city": "Lyon", "celsius": 21}}])
    agent: Agent[None, Forecast] = Agent(FailoverModel(router), output_type=Forecast)
    assert agent.run_sync("Forecast?").output == Forecast(city="Lyon", celsius=21)
    sent = fake["claude"].last_request.json
    assert [t["name"] for t in sent["tools"]] == ["final_result"]
    assert sent["tool_choice"]["type"] == "any"


def test_every_provider_failing_is_a_model_api_error(
    router: failover.Router, fake: FakeProviders
) -> None:
    all_down(fake)
    agent, ran = weather_agent(router)
    with pytest.raises(ModelAPIError) as caught:
        agent.run_sync("Weather in Lyon?")
    assert isinstance(caught.value.__cause__, failover.AllProvidersFailed)
    assert ran == []


def test_an_unknown_route_is_refused_at_construction(router: failover.Router) -> None:
    with pytest.raises(ValueError, match="'nope' is not a route"):
        FailoverModel(router, route="nope")


def test_native_output_sends_the_schema_and_is_validated(
    router: failover.Router, fake: FakeProviders
) -> None:
    """Native mode rides on ``response_format``: the answer is validated by failover
    first, so a provider whose JSON does not match is failed over, not retried by the
    agent."""
    fake["openai"].answer('{"city": "Lyon"}')          # misses celsius: InvalidResponse
    fake["claude"].answer('{"city": "Lyon", "celsius": 21}')
    agent: Agent[None, Forecast] = Agent(FailoverModel(router),
                                         output_type=NativeOutput(Forecast))
    result = agent.run_sync("Forecast?")
    assert result.output == Forecast(city="Lyon", celsius=21)
    sent = fake["claude"].last_request.json["output_config"]["format"]
    assert sent["type"] == "json_schema" and sent["schema"]["required"] == ["city", "celsius"]
    assert fake["openai"].calls == 1 and len(result.all_messages()) == 2


def test_prompted_output_rides_in_the_instructions(
    router: failover.Router, fake: FakeProviders
) -> None:
    fake["openai"].fail(503)
    fake["claude"].answer('{"city": "Lyon", "celsius": 21}')
    agent: Agent[None, Forecast] = Agent(FailoverModel(router),
                                         output_type=PromptedOutput(Forecast))
    assert agent.run_sync("Forecast?").output == Forecast(city="Lyon", celsius=21)
    assert "celsius" in fake["claude"].last_request.json["system"]
