"""Structured output: ``response_format`` answers are parsed and validated on every path
(each provider type, every entry point, the manual fallback), and one that does not match
is that attempt's `InvalidResponse`, so the request fails over."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pydantic
import pytest

import failover
from failover._structured import schema_errors
from failover.testing import FakeClock, FakeProviders
from support import PROVIDERS


class City(pydantic.BaseModel):
    name: str
    population: int


CITY_JSON = '{"name": "Lyon", "population": 522000}'
CITY_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"},
                                                "population": {"type": "integer"}},
               "required": ["name", "population"], "additionalProperties": False}


def router_for(chain: list[str], clock: FakeClock, **route: Any) -> failover.Router:
    return failover.Router(failover.Config.from_mapping({
        "providers": PROVIDERS, "routes": {"default": {"chain": chain, **route}},
    }), clock=clock)


async def ask(router: failover.Router, entry: str, **params: Any) -> failover.Response:
    """One request through ``entry``: the same question through each public door."""
    if entry == "complete":
        return router.complete("a city?", **params)
    if entry == "acomplete":
        return await router.acomplete("a city?", **params)
    if entry == "stream":
        events = list(router.stream("a city?", **params))
    else:
        events = [e async for e in router.astream("a city?", **params)]
    assert events[-1].type == "completed"
    return events[-1].response


ENTRIES = ["complete", "acomplete", "stream", "astream"]


@pytest.mark.parametrize("provider", list(PROVIDERS))
@pytest.mark.parametrize("entry", ENTRIES)
async def test_a_pydantic_model_gives_a_parsed_instance_on_every_provider(
    fake: FakeProviders, clock: FakeClock, provider: str, entry: str
) -> None:
    fake[provider].answer(CITY_JSON)
    with router_for([provider], clock) as router:
        reply = await ask(router, entry, response_format=City)
    assert reply.parsed == City(name="Lyon", population=522000)
    assert isinstance(reply.parsed, City)


@pytest.mark.parametrize("entry", ENTRIES)
async def test_an_answer_that_does_not_match_fails_over(
    fake: FakeProviders, clock: FakeClock, entry: str
) -> None:
    fake["openai"].answer("Lyon, about half a million people.")
    fake["claude"].answer('{"name": "Lyon"}')
    fake["gemini"].answer(CITY_JSON)
    with router_for(["openai", "claude", "gemini"], clock) as router:
        reply = await ask(router, entry, response_format=City)
    assert reply.provider == "gemini" and reply.parsed.population == 522000
    assert [(a.provider, a.error_kind) for a in reply.attempts] == [
        ("openai", "InvalidResponse"), ("claude", "InvalidResponse"), ("gemini", None)]
    assert "population" in reply.attempts[1].detail


def test_a_json_schema_gives_the_parsed_json(fake: FakeProviders, clock: FakeClock) -> None:
    fake["claude"].answer("```json\n" + CITY_JSON + "\n```")
    with router_for(["claude"], clock) as router:
        reply = router.complete("a city?", response_format={
            "type": "json_schema", "json_schema": {"name": "city", "schema": CITY_SCHEMA}})
    assert reply.parsed == {"name": "Lyon", "population": 522000}


def test_every_provider_failing_the_schema_is_all_providers_failed(
    fake: FakeProviders, clock: FakeClock
) -> None:
    fake["openai"].answer("[1, 2]")
    with router_for(["openai"], clock) as router, \
            pytest.raises(failover.AllProvidersFailed) as caught:
        router.complete("a city?", response_format=CITY_SCHEMA)
    assert "does not match response_format 'response': $: expected object, got array" in str(
        caught.value)


def test_openai_is_sent_the_strict_form_of_a_pydantic_model(
    fake: FakeProviders, clock: FakeClock
) -> None:
    fake["openai"].answer(CITY_JSON)
    with router_for(["openai"], clock) as router:
        router.complete("a city?", response_format=City)
    sent = fake["openai"].last_request.json["response_format"]["json_schema"]
    assert sent["strict"] is True and sent["schema"]["additionalProperties"] is False


def test_without_a_format_nothing_is_parsed(fake: FakeProviders, clock: FakeClock) -> None:
    fake["openai"].answer("not json at all")
    with router_for(["openai"], clock) as router:
        assert router.complete("hi").parsed is None


# --- the manual fallback's answer is held to the same format --------------------------------

FALLBACKS = """
    import json

    def city(request, error):
        return json.dumps({"name": "Fallbackville", "population": 1})

    def prose(request, error):
        return "We are down; here is a city: Lyon."
"""


@pytest.fixture
def fallbacks(app_module: Callable[[str, str], str]) -> str:
    return app_module("structured_fallbacks", FALLBACKS)


def test_a_fallback_answer_is_parsed_too(
    fake: FakeProviders, clock: FakeClock, fallbacks: str
) -> None:
    fake["openai"].fail(503)
    with router_for(["openai"], clock, fallback={"python": f"{fallbacks}:city"}) as router:
        reply = router.complete("a city?", response_format=City)
    assert reply.provider == "fallback" and reply.parsed == City(name="Fallbackville",
                                                                  population=1)


def test_a_fallback_answer_that_does_not_match_is_not_served(
    fake: FakeProviders, clock: FakeClock, fallbacks: str, tmp_path: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Prose from the runbook's fallback is no answer to a schema request: the route goes
    on as if its fallback had failed (here: defers durably), so no caller gets prose where
    it parses JSON."""
    fake["openai"].fail(503)
    config = failover.Config.from_mapping({
        "providers": PROVIDERS,
        "routes": {"default": {"chain": ["openai"],
                               "fallback": {"python": f"{fallbacks}:prose", "defer": True}}},
        "deferred": {"path": str(tmp_path / "deferred.sqlite")},
    })
    with failover.Router(config, clock=clock) as router, \
            pytest.raises(failover.Deferred) as caught:
        router.complete("a city?", response_format=City)
    assert caught.value.ticket
    with failover.Router(config, clock=clock) as router:
        stored = router.deferred(caught.value.ticket)
    assert stored is not None and stored.request.response_format is not None
    assert stored.request.response_format.name == "City"
    assert "does not match response_format 'City'" in caplog.text


# --- the validator --------------------------------------------------------------------------

NESTED = {
    "type": "object",
    "properties": {
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        "kind": {"enum": ["a", "b"]},
        "size": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]},
        "home": {"$ref": "#/$defs/Place"},
    },
    "required": ["kind"],
    "additionalProperties": False,
    "$defs": {"Place": {"type": "object", "properties": {"zip": {"type": "string"}},
                        "required": ["zip"]}},
}


@pytest.mark.parametrize(("value", "problems"), [
    ({"kind": "a", "tags": ["x"], "size": None, "home": {"zip": "69001"}}, []),
    ({"kind": "a", "size": 3.0}, []),
    ({"tags": ["x"]}, ["$: missing required 'kind'"]),
    ({"kind": "c"}, ["$.kind: 'c' is not one of ['a', 'b']"]),
    ({"kind": "a", "tags": ["x", 1]}, ["$.tags[1]: expected string, got integer"]),
    ({"kind": "a", "tags": ["x", "y", "z"]}, ["$.tags: 3 items, above maxItems 2"]),
    ({"kind": "a", "size": 0}, ["$.size: matches none of 2 anyOf options"]),
    ({"kind": "a", "size": True}, ["$.size: matches none of 2 anyOf options"]),
    ({"kind": "a", "home": {}}, ["$.home: missing required 'zip'"]),
    ({"kind": "a", "colour": "red"}, ["$: unexpected property 'colour'"]),
])
def test_schema_errors_name_each_problem_by_path(value: Any, problems: list[str]) -> None:
    assert schema_errors(NESTED, value) == problems


def test_a_continued_stream_is_validated_whole(fake: FakeProviders, clock: FakeClock) -> None:
    """With ``stream_interrupt: continue`` the backup writes the rest of the JSON the
    primary began: it is the two together that must match, not the continuation."""
    fake["openai"].cut_stream(after=2, text=CITY_JSON)
    fake["claude"].answer(' "population": 522000}')
    with router_for(["openai", "claude"], clock, stream_interrupt="continue") as router:
        events = list(router.stream("a city?", response_format=City))
    reply = events[-1].response
    assert not any(e.type == "restart" for e in events)
    assert reply.parsed == City(name="Lyon", population=522000)
    assert fake["claude"].last_request.json["messages"][-1]["role"] == "assistant"
