"""``first_token`` bounds the time from an attempt's start to the first content, against a
real loopback server: chunks that carry no content (a role, an empty delta) do not reset
it, so a provider that sends only those is cut and the backup answers."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

import pytest

import failover

if TYPE_CHECKING:
    from conftest import Loopback, Serve


class _Slow(BaseHTTPRequestHandler):
    """What the slow servers below share: HTTP/1.1, chunked writes, no log lines."""

    protocol_version = "HTTP/1.1"

    def start_stream(self, content_type: str = "text/event-stream") -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

    def chunk(self, data: bytes, then_wait: float) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()
        time.sleep(then_wait)

    def log_message(self, *args: object) -> None:
        pass


class RoleOnly(_Slow):
    """An OpenAI-style stream that sends a role-only chunk every 0.2 s and never text."""

    def do_POST(self) -> None:
        self.start_stream()
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                 "choices": [{"index": 0, "delta": {"role": "assistant"}}]}
        try:
            for _ in range(30):
                self.chunk(f"data: {json.dumps(chunk)}\n\n".encode(), then_wait=0.2)
        except OSError:
            pass  # the client cut the attempt, as it should


@pytest.fixture
def role_only(serve: Serve) -> int:
    return serve(RoleOnly)


def router(role_only: int, loopback: Loopback) -> failover.Router:
    providers: dict[str, Any] = {
        "slow": {"type": "openai", "model": "m", "api_key": "sk-test-0123456789",
                 "base_url": f"http://127.0.0.1:{role_only}/v1",
                 "timeouts": {"first_token": "500ms", "stall": "500ms"}},
        "backup": loopback.providers()["claude"],
    }
    return failover.Router(failover.Config.from_mapping({
        "providers": providers, "routes": {"default": {"chain": ["slow", "backup"]}},
    }))


@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_role_only_chunks_do_not_hold_off_the_first_token_bound(
    role_only: int, loopback: Loopback, mode: str
) -> None:
    with router(role_only, loopback) as built:
        built.warm_up()
        started = time.monotonic()
        if mode == "stream":
            events = list(built.stream("hi"))
        else:
            events = [e async for e in built.astream("hi")]
        elapsed = time.monotonic() - started
    response = events[-1].response
    assert response.provider == "backup" and response.text == "hi from loopback"
    assert response.attempts[0].error_kind == "Timeout"
    assert response.attempts[0].latency_s < 0.5 + 0.2 + 0.3   # the bound, a chunk, slack
    assert elapsed < 1.5


class Trickle(_Slow):
    """A valid chat completion, sent one byte every 100 ms: each socket read succeeds."""

    def do_POST(self) -> None:
        body = json.dumps({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                           "choices": [{"index": 0, "finish_reason": "stop", "message": {
                               "role": "assistant", "content": "late"}}]}).encode()
        self.start_stream("application/json")
        try:
            for byte in body:
                self.chunk(bytes([byte]), then_wait=0.1)
        except OSError:
            pass


@pytest.fixture
def trickle(serve: Serve) -> int:
    return serve(Trickle)


@pytest.mark.parametrize("mode", ["complete", "acomplete"])
async def test_an_attempt_ends_at_the_providers_timeout_on_a_trickling_server(
    trickle: int, loopback: Loopback, mode: str
) -> None:
    config = failover.Config.from_mapping({
        "providers": {
            "slow": {"type": "openai", "model": "m", "api_key": "sk-test-0123456789",
                     "base_url": f"http://127.0.0.1:{trickle}/v1", "timeout": "1s"},
            "backup": loopback.providers()["claude"],
        },
        "routes": {"default": {"chain": ["slow", "backup"], "deadline": "6s"}},
    })
    with failover.Router(config) as built:
        built.warm_up()
        started = time.monotonic()
        reply = built.complete("hi") if mode == "complete" else await built.acomplete("hi")
        elapsed = time.monotonic() - started
    assert reply.provider == "backup"
    assert reply.attempts[0].error_kind == "Timeout"
    assert 0.9 <= reply.attempts[0].latency_s < 1.3      # its own 1 s, not the 6 s deadline
    assert elapsed < 2.0


class Pings(_Slow):
    """A stream that only ever sends SSE keep-alive comments (``: ping``), every 0.1 s."""

    def do_POST(self) -> None:
        self.start_stream()
        try:
            for _ in range(100):
                self.chunk(b": ping\n\n", then_wait=0.1)
        except OSError:
            pass


@pytest.fixture
def pings(serve: Serve) -> int:
    return serve(Pings)


@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_keep_alive_comments_do_not_hold_off_the_first_token_bound(
    pings: int, loopback: Loopback, mode: str
) -> None:
    with router(pings, loopback) as built:
        built.warm_up()
        started = time.monotonic()
        if mode == "stream":
            events = list(built.stream("hi"))
        else:
            events = [e async for e in built.astream("hi")]
        elapsed = time.monotonic() - started
    response = events[-1].response
    assert response.provider == "backup"
    assert response.attempts[0].error_kind == "Timeout"
    assert response.attempts[0].latency_s < 0.5 + 0.3
    assert elapsed < 1.5


def test_sync_hedging_against_a_trickling_primary_never_clogs(
    trickle: int, loopback: Loopback
) -> None:
    config = failover.Config.from_mapping({
        "providers": {
            "slow": {"type": "openai", "model": "m", "api_key": "sk-test-0123456789",
                     "base_url": f"http://127.0.0.1:{trickle}/v1", "timeout": "1s"},
            "backup": loopback.providers()["claude"],
        },
        "routes": {"default": {"chain": ["slow", "backup"], "deadline": "3s",
                               "hedge": {"after": "100ms", "max_ratio": 1.0}}},
    })
    with failover.Router(config) as built:
        built.warm_up()
        took = []
        for _ in range(12):                     # more than the hedge pool keeps busy
            started = time.monotonic()
            reply = built.complete("hi")
            took.append(time.monotonic() - started)
            assert reply.provider == "backup"
    assert max(took) < 1.5, took                 # losers are cut at 1 s, never 26 s
