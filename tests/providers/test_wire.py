"""Reading provider requests and building each wire format (the SDKs parse what is built
here in test_simulated.py; these pin the request detection and the error bodies)."""

from __future__ import annotations

import json

import pytest

from failover.providers import _wire


@pytest.mark.parametrize(("url", "fmt"), [
    ("https://api.openai.com/v1/chat/completions", "openai"),
    ("http://localhost:11434/v1/chat/completions", "openai"),
    ("https://api.anthropic.com/v1/messages", "anthropic"),
    ("https://generativelanguage.googleapis.com/v1/models/gemini-2.5-flash:generateContent",
     "gemini"),
    ("https://generativelanguage.googleapis.com/v1beta/models/g:streamGenerateContent?alt=sse",
     "gemini"),
    ("https://api.openai.com/v1/embeddings", None),
])  # fmt: skip
def test_detect_format(url: str, fmt: str | None) -> None:
    assert _wire.detect_format(url) == fmt


def test_read_openai_stream_request() -> None:
    body = {"model": "gpt-4o", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "hi"}]}
    wire = _wire.read_request("https://x/v1/chat/completions", json.dumps(body).encode())
    assert (wire.format, wire.stream, wire.model, wire.include_usage) == (
        "openai", True, "gpt-4o", True)
    assert wire.body == body
    assert wire.input_tokens > 1


def test_read_gemini_request_model_and_stream_from_the_url() -> None:
    url = "https://g/v1/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    wire = _wire.read_request(url, b'{"contents": []}')
    assert (wire.format, wire.stream, wire.model) == ("gemini", True, "gemini-2.5-pro")
    wire = _wire.read_request(url.replace("streamGenerateContent", "generateContent"), b"")
    assert (wire.stream, wire.body) == (False, None)


def test_read_request_with_a_body_that_is_not_json() -> None:
    wire = _wire.read_request("https://a/v1/messages", b"\xff not json")
    assert (wire.format, wire.stream, wire.model, wire.body) == ("anthropic", False, None, None)


def test_openai_stream_ends_with_usage_then_done() -> None:
    events = _wire.stream_events("openai", text="a b", model="m", include_usage=True)
    datas = [e.data.decode() for e in events]
    assert datas[-1] == "data: [DONE]\n\n"
    usage = json.loads(datas[-2].removeprefix("data: "))
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == 2
    assert [e.content for e in events] == [False, True, True, False, False, False]
    no_usage = _wire.stream_events("openai", text="a b", model="m", include_usage=False)
    assert len(no_usage) == len(events) - 1


def test_anthropic_stream_has_named_events() -> None:
    events = _wire.stream_events("anthropic", text="a", model="m")
    names = [e.data.decode().split("\n")[0].removeprefix("event: ") for e in events]
    assert names == ["message_start", "ping", "content_block_start", "content_block_delta",
                     "content_block_stop", "message_delta", "message_stop"]


def test_gemini_stream_puts_finish_and_usage_in_the_last_chunk() -> None:
    events = _wire.stream_events("gemini", text="a b", model="m")
    chunks = [json.loads(e.data.decode().removeprefix("data: ")) for e in events]
    assert "finishReason" not in chunks[0]["candidates"][0]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == 2
    assert not any(b"[DONE]" in e.data for e in events)


def test_error_bodies() -> None:
    assert _wire.error_body("openai", 429)["error"]["code"] == "rate_limit_exceeded"
    anthropic = _wire.error_body("anthropic", 529)
    assert anthropic["type"] == "error"
    assert anthropic["error"]["type"] == "overloaded_error"
    gemini = _wire.error_body("gemini", 429, retry_after=37)["error"]
    assert gemini["status"] == "RESOURCE_EXHAUSTED"
    assert gemini["code"] == 429
    assert gemini["details"] == [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                  "retryDelay": "37s"}]


def test_split_text() -> None:
    assert _wire.split_text("one two  three") == ["one ", "two  ", "three"]
    assert _wire.split_text("abcde", 2) == ["ab", "cd", "e"]
    assert _wire.split_text("") == []
