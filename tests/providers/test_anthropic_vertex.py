"""Claude on Google Vertex AI through the anthropic SDK's Vertex clients, at the HTTP layer:
``:rawPredict`` / ``:streamRawPredict``, a service account's token from the kit's token
endpoint (refreshed), a static token, and Vertex's Google-shaped errors."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from failover import (
    AuthenticationFailed,
    BadRequest,
    ModelNotFound,
    Overloaded,
    PermissionDenied,
    RateLimited,
    StreamInterrupted,
    ToolCall,
)
from failover._models import build_request
from failover.providers._base import override_transport
from failover.testing import FakeProviders, RespxTransport

from ._calls import MODES, assert_no_secret, build, complete, failure, stream

URL = ("https://us-east5-aiplatform.googleapis.com/v1/projects/acme-prod/locations/us-east5/"
       "publishers/anthropic/models/claude-haiku-4-5@20251001")
HELLO = build_request("Hello")
STATIC_TOKEN = "ya29.static-vertex-token-0123456789"


def with_static_token(cloud_providers: dict[str, Any]) -> dict[str, Any]:
    return {**cloud_providers["vertex-claude"], "credentials": {"access_token": STATIC_TOKEN}}


@pytest.mark.parametrize("mode", MODES)
async def test_raw_predict_with_a_service_account_token(
        fake: FakeProviders, cloud_providers: dict[str, Any], mode: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    adapter = build("vertex-claude", cloud_providers["vertex-claude"])
    fake["vertex-claude"].answer("Hi from Vertex")
    assert (await complete(adapter, HELLO, mode)).text == "Hi from Vertex"
    sent = fake["vertex-claude"].last_request
    assert fake["vertex-claude"].calls == 1
    assert sent.url == f"{URL}:rawPredict"
    assert sent.headers["authorization"] == f"Bearer {fake.identity.tokens[0]}"
    assert sent.json["anthropic_version"]
    assert "model" not in sent.json
    grant = parse_qs(fake.identity.requests[0].body.decode())
    assert grant["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    assert_no_secret(caplog.text, also=tuple(fake.identity.tokens))
    await adapter.aclose()


@pytest.mark.parametrize("mode", MODES)
async def test_an_expiring_token_is_refreshed_before_the_next_request(
        fake: FakeProviders, cloud_providers: dict[str, Any], mode: str) -> None:
    adapter = build("vertex-claude", cloud_providers["vertex-claude"])
    fake["vertex-claude"].answer("Hi")
    fake.identity.answer(expires_in=1)  # within google-auth's refresh margin at once
    for _ in range(2):
        await complete(adapter, HELLO, mode)
    sent = [r.headers["authorization"] for r in fake["vertex-claude"].requests]
    assert sent == [f"Bearer {t}" for t in fake.identity.tokens]
    assert len(set(sent)) == 2
    await adapter.aclose()


@pytest.mark.parametrize("mode", MODES)
async def test_streams_and_tools(fake: FakeProviders, cloud_providers: dict[str, Any],
                                 mode: str) -> None:
    adapter = build("vertex-claude", with_static_token(cloud_providers))
    fake["vertex-claude"].answer("Streamed from Vertex", tool_calls=[
        {"id": "toolu_1", "name": "weather", "arguments": {"city": "Oslo"}}])
    text, reply = await stream(adapter, build_request("Weather?", tools=[{"name": "weather"}]),
                               mode)
    assert text == "Streamed from Vertex"
    assert reply.tool_calls == (ToolCall("toolu_1", "weather", {"city": "Oslo"}),)
    sent = fake["vertex-claude"].last_request
    assert sent.url == f"{URL}:streamRawPredict"
    assert sent.headers["authorization"] == f"Bearer {STATIC_TOKEN}"
    assert fake.identity.requests == []  # a static token is never exchanged
    fake["vertex-claude"].cut_stream(after=1)
    err = await failure(adapter, HELLO, mode, streaming=True)
    assert isinstance(err, StreamInterrupted)
    assert STATIC_TOKEN not in str(err)
    await adapter.aclose()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("status", "body", "kind"), [
    (429, {"error": {"code": 429, "message": "Quota exceeded for aiplatform.googleapis.com/"
                     "online_prediction_requests_per_base_model with base model: "
                     "anthropic-claude-haiku-4-5.", "status": "RESOURCE_EXHAUSTED"}},
     RateLimited),
    (403, {"error": {"code": 403, "message": "Permission 'aiplatform.endpoints.predict' denied "
                     "on resource.", "status": "PERMISSION_DENIED"}}, PermissionDenied),
    (400, {"error": {"code": 400, "message": "Project `acme-prod` is not allowed to use "
                     "Publisher Model `claude-haiku-4-5`", "status": "FAILED_PRECONDITION"}},
     PermissionDenied),
    (404, {"error": {"code": 404, "message": "Publisher Model was not found.",
                     "status": "NOT_FOUND"}}, ModelNotFound),
    (400, {"error": {"code": 400, "message": "Invalid JSON payload received.",
                     "status": "INVALID_ARGUMENT"}}, BadRequest),
    (503, {"error": {"code": 503, "message": "The service is currently unavailable.",
                     "status": "UNAVAILABLE"}}, Overloaded),
    # What Vertex passes on from Anthropic keeps Anthropic's shape.
    (529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
     Overloaded),
])
async def test_each_vertex_error_is_one_kind(cloud_providers: dict[str, Any], mode: str,
                                             status: int, body: Any, kind: type) -> None:
    adapter = build("vertex-claude", with_static_token(cloud_providers))
    mock = respx.Router()
    route = mock.post(f"{URL}:rawPredict").mock(return_value=httpx.Response(status, json=body))
    with override_transport(RespxTransport(mock)):
        err = await failure(adapter, HELLO, mode)
    assert type(err) is kind
    assert err.status == status
    assert route.call_count == 1
    assert STATIC_TOKEN not in str(err)
    await adapter.aclose()


@pytest.mark.parametrize("mode", MODES)
async def test_a_refused_token_is_an_authentication_failure_and_nothing_is_sent(
        fake: FakeProviders, cloud_providers: dict[str, Any], mode: str) -> None:
    adapter = build("vertex-claude", cloud_providers["vertex-claude"])
    fake["vertex-claude"].answer("never")
    fake.identity.fail(401)
    err = await failure(adapter, HELLO, mode)
    assert isinstance(err, AuthenticationFailed)
    assert fake["vertex-claude"].calls == 0
    await adapter.aclose()


@pytest.mark.parametrize("mode", MODES)
async def test_an_unreadable_service_account_file_names_the_file(
        fake: FakeProviders, cloud_providers: dict[str, Any], mode: str, tmp_path: Any) -> None:
    missing = tmp_path / "nope.json"
    adapter = build("vertex-claude", {**cloud_providers["vertex-claude"],
                                      "credentials": {"service_account_file": str(missing)}})
    err = await failure(adapter, HELLO, mode)
    assert isinstance(err, AuthenticationFailed)
    assert "providers.vertex-claude.credentials.service_account_file" in str(err)
    assert str(missing) in str(err)
    assert fake.requests == []
    await adapter.aclose()


@pytest.mark.parametrize("mode", MODES)
async def test_application_default_credentials_where_config_gives_none(
        fake: FakeProviders, cloud_providers: dict[str, Any], mode: str,
        service_account: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", service_account)
    config = {k: v for k, v in cloud_providers["vertex-claude"].items() if k != "credentials"}
    adapter = build("vertex-claude", config)
    fake["vertex-claude"].answer("Hi with ADC")
    assert (await complete(adapter, HELLO, mode)).text == "Hi with ADC"
    assert fake["vertex-claude"].last_request.headers["authorization"] == (
        f"Bearer {fake.identity.tokens[0]}")
    await adapter.aclose()
