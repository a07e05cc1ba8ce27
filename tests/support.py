"""Helpers the suite shares that are not fixtures: a "real" provider on loopback, a
private Redis server, and waiting for a delivery (not for a breaker's time)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

__all__ = ["LOOPBACK_ANSWERS", "PROVIDERS", "LiveProvider", "LoopbackProvider", "eventually",
           "free_port", "start_redis"]

#: One provider of each type, with test keys, as most router tests configure them.
PROVIDERS = {
    "openai": {"type": "openai", "model": "gpt-4o-mini", "api_key": "sk-test-openai-0123456789"},
    "claude": {"type": "anthropic", "model": "claude-haiku-4-5",
               "api_key": "sk-ant-test-0123456789"},
    "gemini": {"type": "gemini", "model": "gemini-2.5-flash", "api_key": "AIzaTest0123456789abc"},
}


#: What the loopback providers answer, in each wire format.
LOOPBACK_ANSWERS: dict[str, dict[str, Any]] = {
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


class LoopbackProvider(BaseHTTPRequestHandler):
    """Every provider's API on 127.0.0.1, answering each wire format with a whole answer;
    ``received`` is called with the request's format and key."""

    protocol_version = "HTTP/1.1"

    def received(self, fmt: str, key: str) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        fmt = ("gemini" if "generateContent" in self.path
               else "anthropic" if self.path.endswith("/messages") else "openai")
        self.received(fmt, self.headers.get("x-api-key") or self.headers.get(
            "authorization", "").removeprefix("Bearer "))
        body = json.dumps(LOOPBACK_ANSWERS[fmt]).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class LiveProvider(LoopbackProvider):
    """A "real" provider for a live drill: remembers each request's format and key."""

    seen: ClassVar[list[tuple[str, str]]] = []

    def received(self, fmt: str, key: str) -> None:
        type(self).seen.append((fmt, key))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def eventually(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Wait for a Redis message to be applied (a delivery, not a breaker's time)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def start_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    assert binary is not None, "redis-server is needed (.ci/run installs it)"
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline and server.poll() is None
            time.sleep(0.02)
    client.close()
    return server
