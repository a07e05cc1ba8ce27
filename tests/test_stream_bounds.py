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


async def ask(built: failover.Router, mode: str) -> failover.Response:
    """One request through ``mode``: its response (the last event's, for a stream)."""
    if mode == "complete":
        return built.complete("hi")
    if mode == "acomplete":
        return await built.acomplete("hi")
    if mode == "stream":
        events: list[Any] = list(built.stream("hi"))
    else:
        events = [e async for e in built.astream("hi")]
    final = events[-1]
    assert isinstance(final, failover.Completed)
    return final.response


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
        response = await ask(built, mode)
        elapsed = time.monotonic() - started
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
        response = await ask(built, mode)
        elapsed = time.monotonic() - started
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


# --- every entry point, against a server that holds the connection or trickles ------------

ENTRY_POINTS = ["complete", "acomplete", "stream", "astream"]


class Hold(_Slow):
    """Reads the request, then holds the connection open without a byte of answer."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.connection.settimeout(10)
        try:
            self.rfile.read(1)  # returns when the client gives up on us
        except OSError:
            pass


class TrickleStream(_Slow):
    """A valid OpenAI stream, one byte every 50 ms: every socket read succeeds, and the
    first text is seconds away."""

    def do_POST(self) -> None:
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                 "choices": [{"index": 0, "delta": {"content": "late"}}]}
        self.start_stream()
        try:
            for byte in f"data: {json.dumps(chunk)}\n\n".encode():
                self.chunk(bytes([byte]), then_wait=0.05)
        except OSError:
            pass


def bounded(port: int, loopback: Loopback, **route: Any) -> failover.Router:
    """A 1 s provider (a whole answer and a first token alike) before a healthy backup."""
    return failover.Router(failover.Config.from_mapping({
        "providers": {
            "slow": {"type": "openai", "model": "m", "api_key": "sk-test-0123456789",
                     "base_url": f"http://127.0.0.1:{port}/v1",
                     "timeouts": {"request": "1s", "first_token": "1s", "stall": "1s"}},
            "backup": loopback.providers()["claude"],
        },
        "routes": {"default": {"chain": ["slow", "backup"], "deadline": "6s", **route}},
    }))


@pytest.mark.parametrize("mode", ENTRY_POINTS)
@pytest.mark.parametrize("handler", [Hold, TrickleStream, Trickle], ids=lambda h: h.__name__)
async def test_every_attempt_ends_at_its_bound_and_the_backup_answers(
    serve: Serve, loopback: Loopback, handler: type[_Slow], mode: str
) -> None:
    with bounded(serve(handler), loopback) as built:
        built.warm_up()
        started = time.monotonic()
        reply = await ask(built, mode)
        elapsed = time.monotonic() - started
    assert reply.provider == "backup"
    first = reply.attempts[0]
    assert first.error_kind in ("Timeout", "StreamInterrupted"), first
    assert 0.9 <= first.latency_s < 1.0 + 0.4, first  # its 1 s bound + scheduling
    assert elapsed < 2.0


@pytest.mark.parametrize("mode", ENTRY_POINTS)
async def test_when_the_deadline_runs_out_first_the_error_is_deadline_exceeded(
    serve: Serve, mode: str
) -> None:
    port = serve(Hold)
    slow = {"type": "openai", "model": "m", "api_key": "sk-test-0123456789",
            "base_url": f"http://127.0.0.1:{port}/v1"}  # its own bounds: 30 s and more
    config = failover.Config.from_mapping({
        "providers": {"one": slow, "two": slow},
        "routes": {"default": {"chain": ["one", "two"], "deadline": "1500ms"}},
    })
    with failover.Router(config) as built:
        built.warm_up()
        started = time.monotonic()
        with pytest.raises(failover.DeadlineExceeded) as info:
            await ask(built, mode)
        elapsed = time.monotonic() - started
    assert 1.4 <= elapsed < 1.5 + 0.4
    assert info.value.attempts[0].provider == "one"


@pytest.mark.parametrize("mode", ["complete", "acomplete"])
@pytest.mark.parametrize("handler", [Hold, Trickle], ids=lambda h: h.__name__)
async def test_hedging_against_a_slow_primary_answers_at_the_hedge_delay(
    serve: Serve, loopback: Loopback, handler: type[_Slow], mode: str
) -> None:
    hedge = {"hedge": {"after": "100ms", "max_ratio": 1.0}, "deadline": "3s"}
    with bounded(serve(handler), loopback, **hedge) as built:
        built.warm_up()
        took = []
        for _ in range(6):
            started = time.monotonic()
            reply = await ask(built, mode)
            took.append(time.monotonic() - started)
            assert reply.provider == "backup"
    assert max(took) < 0.1 + 0.5, took  # the hedge delay, the backup's answer, slack
