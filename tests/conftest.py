"""Fixtures shared by the whole suite: the injected clock and the simulated providers."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from failover.testing import FakeClock, FakeProviders


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeProviders]:
    with FakeProviders(clock=clock) as kit:
        yield kit


# --- a real HTTP server on loopback ------------------------------------------------------

_ANSWERS: dict[str, dict[str, Any]] = {
    "anthropic": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
                  "content": [{"type": "text", "text": "hi from loopback"}],
                  "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 4}},
    "gemini": {"candidates": [{"content": {"role": "model",
                                           "parts": [{"text": "hi from loopback"}]},
                               "finishReason": "STOP"}],
               "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4}},
    "openai": {"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-x",
               "choices": [{"index": 0, "finish_reason": "stop",
                            "message": {"role": "assistant", "content": "hi from loopback"}}],
               "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}},
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _LoopbackServer

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        self.server.requests += 1
        fmt = ("gemini" if "generateContent" in self.path
               else "anthropic" if self.path.endswith("/messages") else "openai")
        body = json.dumps(_ANSWERS[fmt]).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True
    requests = 0


@dataclass
class Loopback:
    """A real HTTP server on 127.0.0.1 answering every wire format with a whole answer."""

    port: int
    server: _LoopbackServer

    @property
    def requests(self) -> int:
        return self.server.requests

    def providers(self) -> dict[str, dict[str, Any]]:
        base = f"http://127.0.0.1:{self.port}"
        return {
            "openai": {"type": "openai", "model": "gpt-x", "api_key": "sk-loop-0123456789",
                       "base_url": f"{base}/v1"},
            "claude": {"type": "anthropic", "model": "claude-x",
                       "api_key": "sk-ant-loop-0123456789", "base_url": base},
            "gemini": {"type": "gemini", "model": "gemini-x", "api_key": "AIzaLoop0123456789",
                       "base_url": base},
        }


Serve = Callable[[type[BaseHTTPRequestHandler]], int]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """``serve(Handler)``: a real HTTP server on 127.0.0.1 for this test; its port."""
    servers: list[ThreadingHTTPServer] = []

    def start(handler: type[BaseHTTPRequestHandler]) -> int:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return int(server.server_address[1])

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    server = _LoopbackServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Loopback(server.server_address[1], server)
    finally:
        server.shutdown()
        server.server_close()

pytest_plugins = ["pytester"]


@pytest.fixture
def app_module(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], str]:
    """``app_module(name, source)``: an importable module of the application under test
    (a route's ``fallback.python`` target, say); returns its name."""
    import sys
    import textwrap

    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        sys.modules.pop(name, None)
        monkeypatch.delitem(sys.modules, name, raising=False)
        return name

    return write


# --- "real" providers for a live drill -------------------------------------------------

_LIVE_ANSWERS = {
    "anthropic": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
                  "content": [{"type": "text", "text": "live from claude"}],
                  "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 4}},
    "openai": {"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-x",
               "choices": [{"index": 0, "finish_reason": "stop",
                            "message": {"role": "assistant", "content": "live from openai"}}],
               "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}},
}


class LiveProvider(BaseHTTPRequestHandler):
    """A provider's API on 127.0.0.1: answers, and remembers each request's key."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, str]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        fmt = "anthropic" if self.path.endswith("/messages") else "openai"
        key = (self.headers.get("x-api-key")
               or self.headers.get("authorization", "").removeprefix("Bearer "))
        type(self).seen.append((fmt, key))
        body = json.dumps(_LIVE_ANSWERS[fmt]).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def live_providers(serve: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A config of two "real" providers (OpenAI and Anthropic wire formats) on one
    loopback server that remembers each request's format and key
    (``LiveProvider.seen``), their keys in the environment: a live drill's world."""
    LiveProvider.seen = []
    port = serve(LiveProvider)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-openai-0123456789")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-live-0123456789")
    return {
        "providers": {
            "openai": {"type": "openai", "model": "gpt-x", "api_key": "${OPENAI_API_KEY}",
                       "base_url": f"http://127.0.0.1:{port}/v1"},
            "claude": {"type": "anthropic", "model": "claude-x",
                       "api_key": "${ANTHROPIC_API_KEY}", "base_url": f"http://127.0.0.1:{port}"},
        },
        "routes": {"default": {"chain": ["openai", "claude"], "fallback": {"defer": True}}},
        "defaults": {"breaker": {"open_for": "50ms", "max_open_for": "100ms"}},
        "objectives": {"rto": "2s", "rpo": 0},
    }
