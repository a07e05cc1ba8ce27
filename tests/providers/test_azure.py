"""Azure OpenAI through the openai SDK's Azure clients, at the HTTP layer: the deployment
URL and api-version, the key or an Entra ID token (fetched from the kit's token endpoint
and refreshed), Azure's content filter and ``retry-after-ms``."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
import respx

from failover import (
    AuthenticationFailed,
    ContentFiltered,
    ModelNotFound,
    Overloaded,
    RateLimited,
    ToolCall,
)
from failover._models import build_request
from failover.providers._base import override_transport
from failover.testing import FakeProviders, RespxTransport

from ._calls import MODES, assert_no_secret, build, complete, failure, stream

URL = ("https://contoso.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions"
       "?api-version=2024-10-21")
HELLO = build_request("Hello")


def completion(content: str = "Hi from Azure", finish: str = "stop") -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
            "choices": [{"index": 0, "finish_reason": finish, "logprobs": None,
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}


@pytest.mark.parametrize("mode", MODES)
async def test_a_deployment_is_called_at_its_url_with_the_key(
        fake: FakeProviders, cloud_providers: dict[str, Any], mode: str) -> None:
    adapter = build("azure", cloud_providers["azure"])
    fake["azure"].answer("Hi from Azure")
    reply = await complete(adapter, build_request("Hello", max_tokens=50), mode)
    assert reply.text == "Hi from Azure"
    sent = fake["azure"].last_request
    assert fake["azure"].calls == 1
    assert sent.url == URL
    assert sent.headers["api-key"] == cloud_providers["azure"]["api_key"]
    assert "authorization" not in sent.headers
    # Azure's reasoning deployments refuse the deprecated max_tokens, as OpenAI's do.
    assert sent.json["max_completion_tokens"] == 50
    assert "max_tokens" not in sent.json
    await adapter.aclose()


@pytest.mark.parametrize("mode", MODES)
async def test_streams_and_tool_calls(fake: FakeProviders, cloud_providers: dict[str, Any],
                                      mode: str) -> None:
    adapter = build("azure", cloud_providers["azure"])
    fake["azure"].answer("Streamed from Azure")
    text, _ = await stream(adapter, HELLO, mode)
    assert text == "Streamed from Azure"
    assert fake["azure"].last_request.json["stream"] is True
    fake["azure"].answer("", tool_calls=[{"id": "call_1", "name": "weather",
                                          "arguments": {"city": "Oslo"}}])
    ask = build_request("Weather?", tools=[{"name": "weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}])
    _, reply = await stream(adapter, ask, mode)
    assert reply.tool_calls == (ToolCall("call_1", "weather", {"city": "Oslo"}),)
    assert fake["azure"].last_request.json["tools"][0]["function"]["name"] == "weather"
    assert fake["azure"].calls == 2
    await adapter.aclose()


# --- Azure's own answers, byte for byte -------------------------------------------------


def azure_route(mock: respx.Router, status: int, body: Any,
                headers: dict[str, str] | None = None) -> respx.Route:
    return mock.post(URL).mock(return_value=httpx.Response(status, json=body,
                                                           headers=headers or {}))


CONTENT_FILTER_400 = {"error": {
    "message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
               "management policy.", "type": None, "param": "prompt", "code": "content_filter",
    "status": 400, "innererror": {"code": "ResponsibleAIPolicyViolation",
                                  "content_filter_result": {"violence": {"filtered": True,
                                                                         "severity": "high"}}}}}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("status", "body", "headers", "kind", "retry_after"), [
    (400, CONTENT_FILTER_400, {}, ContentFiltered, None),
    (200, completion("", finish="content_filter"), {}, ContentFiltered, None),
    (429, {"error": {"code": "429", "message": "Requests to the ChatCompletions_Create "
                     "Operation have exceeded token rate limit. Please retry after 1 second."}},
     {"retry-after-ms": "250", "retry-after": "1"}, RateLimited, 0.25),
    (404, {"error": {"code": "DeploymentNotFound", "message": "The API deployment for this "
                     "resource does not exist."}}, {}, ModelNotFound, None),
    (401, {"error": {"code": "401", "message": "Access denied due to invalid subscription key "
                     "or wrong API endpoint."}}, {}, AuthenticationFailed, None),
    (503, {"error": {"code": "ServiceUnavailable", "message": "The service is temporarily "
                     "unable to process your request."}}, {}, Overloaded, None),
])
async def test_each_azure_error_is_one_kind(
        cloud_providers: dict[str, Any], mode: str, status: int, body: Any,
        headers: dict[str, str], kind: type, retry_after: float | None) -> None:
    adapter = build("azure", cloud_providers["azure"])
    mock = respx.Router()
    route = azure_route(mock, status, body, headers)
    with override_transport(RespxTransport(mock)):
        err = await failure(adapter, HELLO, mode)
    assert type(err) is kind
    assert err.retry_after == retry_after
    assert route.call_count == 1  # the SDK's retries are off
    await adapter.aclose()


@pytest.mark.parametrize("mode", MODES)
async def test_a_stream_the_content_filter_stops_is_content_filtered(
        cloud_providers: dict[str, Any], mode: str) -> None:
    adapter = build("azure", cloud_providers["azure"])
    chunk = ('data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o",'
             '"choices":[{"index":0,"delta":{"content":"%s"},"finish_reason":%s,'
             '"content_filter_results":{}}]}\n\n')
    body = ('data: {"id":"","object":"","created":0,"model":"","choices":[],'
            '"prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}]}\n\n'
            + chunk % ("Once upon", "null") + chunk % ("", '"content_filter"')
            + "data: [DONE]\n\n")
    mock = respx.Router()
    mock.post(URL).mock(return_value=httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=body.encode()))
    with override_transport(RespxTransport(mock)):
        err = await failure(adapter, HELLO, mode, streaming=True)
    assert isinstance(err, ContentFiltered)
    await adapter.aclose()


# --- Microsoft Entra ID -----------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_entra_id_tokens_come_from_the_token_endpoint_and_are_refreshed(
        fake: FakeProviders, cloud_providers: dict[str, Any], mode: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    adapter = build("azure-entra", cloud_providers["azure-entra"])
    fake["azure-entra"].answer("Hi with Entra ID")
    # A token that expires at once: azure-identity must fetch a new one for the next call.
    fake.identity.answer(expires_in=1)
    for _ in range(2):
        assert (await complete(adapter, HELLO, mode)).text == "Hi with Entra ID"
    assert fake["azure-entra"].calls == 2
    sent = [r.headers["authorization"] for r in fake["azure-entra"].requests]
    assert sent == [f"Bearer {t}" for t in fake.identity.tokens[:2]]
    assert sent[0] != sent[1]
    token_posts = [r for r in fake.identity.requests if r.method == "POST"]
    assert token_posts[0].url == ("https://login.microsoftonline.com/contoso-tenant/oauth2/v2.0/"
                                  "token")
    assert "api-key" not in fake["azure-entra"].last_request.headers
    # Neither the client secret nor a token reaches any log line.
    assert_no_secret(caplog.text, also=tuple(fake.identity.tokens))
    await adapter.aclose()


@pytest.mark.parametrize("mode", MODES)
async def test_a_refused_token_is_an_authentication_failure_and_nothing_is_sent(
        fake: FakeProviders, cloud_providers: dict[str, Any], mode: str) -> None:
    adapter = build("azure-entra", cloud_providers["azure-entra"])
    fake["azure-entra"].answer("never")
    fake.identity.fail(401)
    err = await failure(adapter, HELLO, mode)
    assert isinstance(err, AuthenticationFailed)
    assert fake["azure-entra"].calls == 0
    await adapter.aclose()


@pytest.mark.parametrize("mode", MODES)
async def test_an_unset_client_secret_names_its_variable(
        fake: FakeProviders, cloud_providers: dict[str, Any], mode: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENTRA_SECRET", raising=False)
    config = cloud_providers["azure-entra"]
    config["credentials"]["client_secret"] = "${ENTRA_SECRET}"
    adapter = build("azure-entra", config)
    err = await failure(adapter, HELLO, mode)
    assert isinstance(err, AuthenticationFailed)
    assert "providers.azure-entra.credentials.client_secret" in str(err)
    assert "ENTRA_SECRET" in str(err)
    assert fake.requests == []
    await adapter.aclose()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("on", ["prompt", "answer"])
async def test_the_kit_filters_like_azure(fake: FakeProviders, cloud_providers: dict[str, Any],
                                          mode: str, on: str) -> None:
    adapter = build("azure", cloud_providers["azure"])
    fake["azure"].content_filter(on=on)  # type: ignore[arg-type]
    err = await failure(adapter, HELLO, mode)
    assert isinstance(err, ContentFiltered)
    assert err.status == (400 if on == "prompt" else 200)
    await adapter.aclose()


@pytest.mark.parametrize("mode", MODES)
async def test_without_azure_identity_entra_id_fails_naming_the_extra(
        fake: FakeProviders, cloud_providers: dict[str, Any], mode: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "azure.identity", None)  # not installed
    adapter = build("azure-entra", cloud_providers["azure-entra"])
    err = await failure(adapter, HELLO, mode)
    assert isinstance(err, AuthenticationFailed)
    assert "pip install 'failover[azure]'" in str(err)
    assert fake.requests == []
    await adapter.aclose()
