"""Claude on Amazon Bedrock through the anthropic SDK's Bedrock clients, at the HTTP
layer: SigV4-signed ``/invoke`` and ``/invoke-with-response-stream`` (AWS event-stream
frames, decoded by botocore), credentials from config, the environment or a profile, and
each Bedrock error type mapped to one kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from failover import (
    AuthenticationFailed,
    BadRequest,
    ContextWindowExceeded,
    ModelNotFound,
    Overloaded,
    PermissionDenied,
    RateLimited,
    ServerError,
    StreamInterrupted,
    Timeout,
    ToolCall,
)
from failover._models import build_request
from failover.providers._base import override_transport
from failover.providers._cloud_wire import EVENT_STREAM_CONTENT_TYPE, event_frame
from failover.testing import FakeProviders, RespxTransport
from support import CLOUD_SECRETS

from ._calls import MODES, build, complete, failure, stream

HOST = "https://bedrock-runtime.us-east-1.amazonaws.com"
MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"
HELLO = build_request("Hello")


@pytest.mark.parametrize("mode", MODES)
async def test_invoke_is_signed_and_carries_the_bedrock_body(
        fake: FakeProviders, cloud_providers: dict[str, Any], mode: str) -> None:
    adapter = build("bedrock", cloud_providers["bedrock"])
    fake["bedrock"].answer("Hi from Bedrock")
    assert (await complete(adapter, HELLO, mode)).text == "Hi from Bedrock"
    sent = fake["bedrock"].last_request
    assert fake["bedrock"].calls == 1
    assert sent.url == f"{HOST}/model/{MODEL}/invoke"
    assert sent.headers["authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={CLOUD_SECRETS[1]}/")
    assert "/us-east-1/bedrock/aws4_request" in sent.headers["authorization"]
    assert sent.headers["x-amz-security-token"] == CLOUD_SECRETS[3]
    # The model is in the URL; the body says which Messages API version it speaks.
    assert sent.json["anthropic_version"]
    assert "model" not in sent.json
    assert "stream" not in sent.json
    await adapter.aclose()


@pytest.mark.parametrize("mode", MODES)
async def test_streams_arrive_as_event_stream_frames(
        fake: FakeProviders, cloud_providers: dict[str, Any], mode: str) -> None:
    adapter = build("bedrock", cloud_providers["bedrock"])
    fake["bedrock"].answer("Streamed from Bedrock", tool_calls=[
        {"id": "toolu_1", "name": "weather", "arguments": {"city": "Oslo"}}])
    ask = build_request("Weather?", tools=[{"name": "weather"}])
    text, reply = await stream(adapter, ask, mode)
    assert text == "Streamed from Bedrock"
    assert reply.tool_calls == (ToolCall("toolu_1", "weather", {"city": "Oslo"}),)
    assert fake["bedrock"].last_request.url == f"{HOST}/model/{MODEL}/invoke-with-response-stream"
    assert fake["bedrock"].calls == 1
    await adapter.aclose()


@pytest.mark.parametrize("mode", MODES)
async def test_a_cut_stream_is_interrupted(fake: FakeProviders, cloud_providers: dict[str, Any],
                                           mode: str) -> None:
    adapter = build("bedrock", cloud_providers["bedrock"])
    fake["bedrock"].cut_stream(after=2)
    err = await failure(adapter, HELLO, mode, streaming=True)
    assert isinstance(err, StreamInterrupted)
    assert err.partial_text
    await adapter.aclose()


# --- Bedrock's errors, as Bedrock sends them ---------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("status", "error_type", "message", "kind"), [
    (429, "ThrottlingException", "Too many requests, please wait before trying again.",
     RateLimited),
    (400, "ServiceQuotaExceededException", "Your request exceeds the service quota.",
     RateLimited),
    (503, "ServiceUnavailableException", "Bedrock is unable to process your request.",
     Overloaded),
    (429, "ModelNotReadyException", "The model is not ready to serve inference requests.",
     Overloaded),
    (408, "ModelTimeoutException", "The request took too long to process.", Timeout),
    (400, "ValidationException", "messages: roles must alternate", BadRequest),
    (400, "ValidationException", "prompt is too long: 250000 tokens > 200000 maximum",
     ContextWindowExceeded),
    (403, "AccessDeniedException", "You don't have access to the model with the specified "
     "model ID.", PermissionDenied),
    (403, "UnrecognizedClientException", "The security token included in the request is "
     "invalid.", AuthenticationFailed),
    (404, "ResourceNotFoundException", "Could not resolve the foundation model.", ModelNotFound),
    (500, "InternalServerException", "An internal server error occurred.", ServerError),
    (424, "ModelErrorException", "The model returned an error.", ServerError),
])
async def test_each_bedrock_error_type_is_one_kind(
        cloud_providers: dict[str, Any], mode: str, status: int, error_type: str,
        message: str, kind: type) -> None:
    adapter = build("bedrock", cloud_providers["bedrock"])
    mock = respx.Router()
    route = mock.post(f"{HOST}/model/{MODEL}/invoke").mock(return_value=httpx.Response(
        status, json={"message": message},
        headers={"x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/"}))
    with override_transport(RespxTransport(mock)):
        err = await failure(adapter, HELLO, mode)
    assert type(err) is kind
    assert err.status == status
    assert err.code == error_type
    assert route.call_count == 1
    await adapter.aclose()


def chunk(event: dict[str, Any]) -> bytes:
    import base64

    payload = json.dumps({"bytes": base64.b64encode(json.dumps(event).encode()).decode()})
    return event_frame(payload.encode(), ((":event-type", "chunk"),
                                          (":content-type", "application/json"),
                                          (":message-type", "event")))


def exception(kind: str, message: str) -> bytes:
    return event_frame(json.dumps({"message": message}).encode(), (
        (":exception-type", kind), (":content-type", "application/json"),
        (":message-type", "exception")))


START = {"type": "message_start", "message": {
    "id": "msg_1", "type": "message", "role": "assistant", "model": MODEL, "content": [],
    "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 1}}}
TEXT = [{"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "text_delta", "text": "Once upon"}}]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("frames", "kind"), [
    ([chunk(START), exception("throttlingException", "Too many tokens")], RateLimited),
    ([chunk(START), exception("serviceUnavailableException", "Try later")], Overloaded),
    ([chunk(START), *map(chunk, TEXT), exception("modelStreamErrorException", "broke")],
     StreamInterrupted),
])
async def test_an_exception_frame_mid_stream_is_mapped_by_its_type(
        cloud_providers: dict[str, Any], mode: str, frames: list[bytes], kind: type) -> None:
    adapter = build("bedrock", cloud_providers["bedrock"])
    mock = respx.Router()
    mock.post(f"{HOST}/model/{MODEL}/invoke-with-response-stream").mock(
        return_value=httpx.Response(200, headers={"content-type": EVENT_STREAM_CONTENT_TYPE},
                                    content=b"".join(frames)))
    with override_transport(RespxTransport(mock)):
        err = await failure(adapter, HELLO, mode, streaming=True)
    assert type(err) is kind
    await adapter.aclose()


# --- credentials ------------------------------------------------------------------------


@pytest.fixture
def no_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An environment with no AWS credentials anywhere (and no instance metadata)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_BEARER_TOKEN_BEDROCK",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


def bedrock_without_credentials(cloud_providers: dict[str, Any], **extra: Any) -> dict[str, Any]:
    config = dict(cloud_providers["bedrock"])
    del config["credentials"]
    return {**config, **extra}


@pytest.mark.parametrize("mode", MODES)
async def test_credentials_come_from_the_standard_chain_where_config_gives_none(
        fake: FakeProviders, cloud_providers: dict[str, Any], mode: str,
        no_aws_environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (no_aws_environment / "credentials").write_text(
        "[prod]\naws_access_key_id = AKIAPROFILE000000001\n"
        "aws_secret_access_key = profile-secret-0123456789\n")
    adapter = build("bedrock", bedrock_without_credentials(
        cloud_providers, credentials={"aws_profile": "prod"}))
    fake["bedrock"].answer("signed by a profile")
    await complete(adapter, HELLO, mode)
    assert "Credential=AKIAPROFILE000000001/" in fake["bedrock"].last_request.headers[
        "authorization"]
    await adapter.aclose()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT00001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret-0123456789")
    adapter = build("bedrock", bedrock_without_credentials(cloud_providers))
    await complete(adapter, HELLO, mode)
    assert "Credential=AKIAENVIRONMENT00001/" in fake["bedrock"].last_request.headers[
        "authorization"]
    await adapter.aclose()


@pytest.mark.parametrize("mode", MODES)
async def test_no_credentials_anywhere_fails_the_attempt_before_sending(
        fake: FakeProviders, cloud_providers: dict[str, Any], mode: str,
        no_aws_environment: Path) -> None:
    adapter = build("bedrock", bedrock_without_credentials(cloud_providers))
    err = await failure(adapter, HELLO, mode)
    assert isinstance(err, AuthenticationFailed)
    assert "no AWS credentials found" in str(err)
    assert fake.requests == []
    await adapter.aclose()


@pytest.mark.parametrize("mode", MODES)
async def test_a_bedrock_api_key_is_sent_as_a_bearer_token(
        fake: FakeProviders, cloud_providers: dict[str, Any], mode: str,
        no_aws_environment: Path) -> None:
    adapter = build("bedrock", bedrock_without_credentials(
        cloud_providers, api_key="bedrock-api-key-0123456789"))
    fake["bedrock"].answer("Hi")
    await complete(adapter, HELLO, mode)
    assert fake["bedrock"].last_request.headers["authorization"] == (
        "Bearer bedrock-api-key-0123456789")
    await adapter.aclose()


@pytest.mark.parametrize("mode", MODES)
async def test_without_the_bedrock_extra_the_attempt_fails_naming_it(
        fake: FakeProviders, cloud_providers: dict[str, Any], mode: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "boto3", None)  # not installed
    adapter = build("bedrock", cloud_providers["bedrock"])
    err = await failure(adapter, HELLO, mode)
    assert isinstance(err, AuthenticationFailed)
    assert "pip install 'failover[bedrock]'" in str(err)
    assert fake.requests == []
    await adapter.aclose()


async def test_the_kit_counts_a_quota_per_aws_key_though_each_request_is_signed_anew(
        fake: FakeProviders, cloud_providers: dict[str, Any]) -> None:
    adapter = build("bedrock", cloud_providers["bedrock"])
    fake["bedrock"].quota(rpm=2)
    for _ in range(2):
        await complete(adapter, HELLO, "sync")
    err = await failure(adapter, HELLO, "sync")
    assert isinstance(err, RateLimited)
    assert err.code == "ThrottlingException"
    await adapter.aclose()
