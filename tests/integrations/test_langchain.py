"""A LangChain tool-calling agent on a failover route: the two-step task completes with
the tool run once, while the primary is down and while its stream is cut mid-answer;
``bind_tools`` and ``with_structured_output`` survive the failover."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pydantic
import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool

import failover
from failover.integrations.langchain import FailoverChatModel, acollect, collect
from failover.testing import FakeProviders, answer

from .conftest import all_down

TOOL_CALL = answer("", [{"name": "get_weather", "arguments": {"city": "Lyon"}}])
FINAL = "It is 21 °C in Lyon."


def weather_tool(ran: list[str]) -> Any:
    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        ran.append(city)
        return "21 °C"

    return get_weather


def run_agent(step: Callable[[list[BaseMessage]], Any], tools: dict[str, Any]) -> AIMessage:
    """The tool-calling loop: ask, run each tool call, give back its result, ask again."""
    messages: list[BaseMessage] = [SystemMessage("Be brief."), HumanMessage("Weather in Lyon?")]
    for _ in range(5):
        reply = step(messages)
        messages.append(reply)
        if not reply.tool_calls:
            return reply
        messages.extend(tools[call["name"]].invoke(call) for call in reply.tool_calls)
    raise AssertionError("the agent never answered")


@pytest.fixture
def llm(router: failover.Router) -> FailoverChatModel:
    return FailoverChatModel(router=router)


def test_a_tool_calling_agent_completes_while_the_primary_is_down(
    llm: FailoverChatModel, fake: FakeProviders
) -> None:
    fake["openai"].fail(503)
    fake["claude"].sequence(TOOL_CALL, answer(FINAL))
    ran: list[str] = []
    get_weather = weather_tool(ran)
    bound = llm.bind_tools([get_weather])
    reply = run_agent(bound.invoke, {"get_weather": get_weather})
    assert reply.content == FINAL and ran == ["Lyon"]
    assert reply.response_metadata["failover_provider"] == "claude"
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] > 0
    sent = fake["claude"].last_request
    assert sent.json["system"] == "Be brief."
    assert [t["name"] for t in sent.json["tools"]] == ["get_weather"]
    assert sent.messages[2]["content"][0]["type"] == "tool_result"


def test_a_streamed_agent_recovers_from_a_cut_stream_and_runs_the_tool_once(
    llm: FailoverChatModel, fake: FakeProviders
) -> None:
    fake["openai"].cut_stream(after=2, text="Partial words that never finish")
    fake["claude"].sequence(TOOL_CALL, answer(FINAL))
    ran: list[str] = []
    get_weather = weather_tool(ran)
    bound = llm.bind_tools([get_weather])
    reply = run_agent(lambda messages: collect(bound.stream(messages)),
                      {"get_weather": get_weather})
    assert reply.content == FINAL and ran == ["Lyon"]
    assert fake["openai"].calls == 2 and fake["claude"].calls == 2


def test_the_restart_chunk_is_what_plain_addition_would_miss(
    llm: FailoverChatModel, fake: FakeProviders
) -> None:
    fake["openai"].cut_stream(after=2, text="Partial words that never finish")
    fake["claude"].answer(FINAL)
    chunks = list(llm.stream("hi"))
    restarts = [c for c in chunks if "failover_restart" in c.response_metadata]
    assert [r.response_metadata["failover_restart"]["provider"] for r in restarts] == ["claude"]
    whole = collect(chunks)
    assert whole is not None and whole.content == FINAL
    assert whole.response_metadata["failover_provider"] == "claude"


async def test_async_invoke_and_stream(llm: FailoverChatModel, fake: FakeProviders) -> None:
    fake["openai"].fail(503)
    fake["claude"].sequence(answer("async hello"), answer("async stream"))
    assert (await llm.ainvoke("hi")).content == "async hello"
    whole = await acollect(llm.astream("hi"))
    assert whole is not None and whole.content == "async stream"


class Forecast(pydantic.BaseModel):
    """A forecast."""

    city: str
    celsius: int


def test_with_structured_output_survives_a_failover(
    llm: FailoverChatModel, fake: FakeProviders
) -> None:
    fake["openai"].fail(503)
    fake["claude"].answer("", [{"name": "Forecast", "arguments": {"city": "Lyon",
                                                                 "celsius": 21}}])
    assert llm.with_structured_output(Forecast).invoke("Forecast?") == Forecast(
        city="Lyon", celsius=21)
    assert fake["claude"].last_request.json["tool_choice"]["type"] == "any"


def test_provider_failures_stay_typed_with_their_attempts(
    llm: FailoverChatModel, fake: FakeProviders
) -> None:
    all_down(fake)
    with pytest.raises(failover.AllProvidersFailed) as caught:
        llm.invoke("hi")
    assert [a.provider for a in caught.value.attempts] == ["openai", "claude", "gemini"]
    with pytest.raises(ValueError, match="temperature"):
        FailoverChatModel(router=llm.router, temperature=float("nan")).invoke("hi")
