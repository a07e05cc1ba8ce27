"""Gemini on Google Vertex AI through google-genai (``vertexai=True``), at the HTTP layer:
the regional publisher URL, a service account's token from the kit's token endpoint, no
API key, and Vertex's errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx

from failover import (
    AuthenticationFailed,
    BadRequest,
    Overloaded,
    PermissionDenied,
    RateLimited,
    StreamInterrupted,
    ToolCall,
)
from failover._models import build_request
from failover.providers._base import override_transport
from failover.testing import FakeProviders, RespxTransport

from ._calls import MODES, build, complete, failure, stream

URL = ("https://us-central1-aiplatform.googleapis.com/v1beta1/projects/acme-prod/locations/"
       "us-central1/publishers/google/models/gemini-2.5-flash")
HELLO = build_request("Hello")


@pytest.mark.parametrize("mode", MODES)
async def test_generate_content_on_vertex_with_a_service_account_token(
        fake: FakeProviders, cloud_providers: dict[str, Any], mode: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK's own lookups must not move a configured provider.
    monkeypatch.setenv("GOOGLE_API_KEY", "AIzaEnvironmentKey0123456789")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "someone-else")
    adapter = build("vertex-gemini", cloud_providers["vertex-gemini"])
    fake["vertex-gemini"].answer("Hi from Vertex Gemini")
    assert (await complete(adapter, HELLO, mode)).text == "Hi from Vertex Gemini"
    sent = fake["vertex-gemini"].last_request
    assert fake["vertex-gemini"].calls == 1
    assert sent.url == f"{URL}:generateContent"
    assert sent.headers["authorization"] == f"Bearer {fake.identity.tokens[0]}"
    assert "x-goog-api-key" not in sent.headers
    await adapter.aclose()


@pytest.mark.parametrize("mode", MODES)
async def test_streams_tools_and_a_cut_stream(fake: FakeProviders,
                                              cloud_providers: dict[str, Any],
                                              mode: str) -> None:
    adapter = build("vertex-gemini", cloud_providers["vertex-gemini"])
    fake["vertex-gemini"].answer("Streamed from Vertex", tool_calls=[
        {"name": "weather", "arguments": {"city": "Oslo"}}])
    text, reply = await stream(adapter, build_request("Weather?", tools=[{"name": "weather"}]),
                               mode)
    assert text == "Streamed from Vertex"
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [("weather", {"city": "Oslo"})]
    assert isinstance(reply.tool_calls[0], ToolCall)
    assert fake["vertex-gemini"].last_request.url == f"{URL}:streamGenerateContent?alt=sse"
    fake["vertex-gemini"].cut_stream(after=1)
    err = await failure(adapter, HELLO, mode, streaming=True)
    assert isinstance(err, StreamInterrupted)
    await adapter.aclose()


async def test_the_global_location_uses_the_global_endpoint(
        fake: FakeProviders, cloud_providers: dict[str, Any]) -> None:
    adapter = build("vertex-gemini", {**cloud_providers["vertex-gemini"], "region": "global"})
    fake["vertex-gemini"].answer("Hi")
    adapter.complete(HELLO)
    assert fake["vertex-gemini"].last_request.url.startswith(
        "https://aiplatform.googleapis.com/v1beta1/projects/acme-prod/locations/global/")
    await adapter.aclose()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("status", "error", "kind", "retry_after"), [
    (429, {"code": 429, "message": "Resource exhausted. Please try again later.",
           "status": "RESOURCE_EXHAUSTED", "details": [
               {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]},
     RateLimited, 7.0),
    (403, {"code": 403, "message": "Permission 'aiplatform.endpoints.predict' denied.",
           "status": "PERMISSION_DENIED"}, PermissionDenied, None),
    (400, {"code": 400, "message": "Billing is disabled for project acme-prod.",
           "status": "FAILED_PRECONDITION"}, PermissionDenied, None),
    (400, {"code": 400, "message": "Request contains an invalid argument.",
           "status": "INVALID_ARGUMENT"}, BadRequest, None),
    (503, {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"},
     Overloaded, None),
])
async def test_each_vertex_error_is_one_kind(
        cloud_providers: dict[str, Any], mode: str, status: int, error: dict[str, Any],
        kind: type, retry_after: float | None) -> None:
    token = "ya29.static-gemini-token-0123456789"
    adapter = build("vertex-gemini", {**cloud_providers["vertex-gemini"],
                                      "credentials": {"access_token": token}})
    mock = respx.Router()
    route = mock.post(f"{URL}:generateContent").mock(
        return_value=httpx.Response(status, json={"error": error}))
    with override_transport(RespxTransport(mock)):
        err = await failure(adapter, HELLO, mode)
    assert type(err) is kind
    assert err.retry_after == retry_after
    assert route.call_count == 1
    assert route.calls.last.request.headers["authorization"] == f"Bearer {token}"
    assert token not in str(err)
    await adapter.aclose()


@pytest.mark.parametrize("mode", MODES)
async def test_a_refused_token_is_an_authentication_failure(
        fake: FakeProviders, cloud_providers: dict[str, Any], mode: str) -> None:
    adapter = build("vertex-gemini", cloud_providers["vertex-gemini"])
    fake["vertex-gemini"].answer("never")
    fake.identity.fail(403)
    err = await failure(adapter, HELLO, mode)
    assert isinstance(err, AuthenticationFailed)
    assert fake["vertex-gemini"].calls == 0
    await adapter.aclose()
