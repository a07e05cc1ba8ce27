"""Fixtures shared by the whole suite: the injected clock, the simulated providers, real
loopback servers, and a real Redis server."""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from failover.testing import FakeClock, FakeProviders
from support import (
    LiveProvider,
    LoopbackProvider,
    clouds,
    free_port,
    start_redis,
    write_service_account,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeProviders]:
    with FakeProviders(clock=clock) as kit:
        yield kit


@pytest.fixture(scope="session")
def service_account(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_service_account(tmp_path_factory.mktemp("gcp") / "service-account.json"))


@pytest.fixture
def cloud_providers(service_account: str) -> dict[str, dict[str, Any]]:
    """One provider on each cloud (see `support.clouds`)."""
    return clouds(service_account)


# --- a real HTTP server on loopback ------------------------------------------------------

class _Handler(LoopbackProvider):
    server: _LoopbackServer

    def received(self, fmt: str, key: str) -> None:
        self.server.requests += 1


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


# --- a real Redis server (started by .ci/run, or here) ------------------------------------


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server on loopback (or FAILOVER_TEST_REDIS_URL)."""
    given = os.environ.get("FAILOVER_TEST_REDIS_URL")
    if given:
        yield given
        return
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server on PATH and FAILOVER_TEST_REDIS_URL unset "
                    "(.ci/run installs and starts one)")
    port = free_port()
    server = start_redis(port, tmp_path_factory.mktemp("redis"))
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait(5)


@pytest.fixture
def prefix() -> str:
    return f"failover-test-{uuid.uuid4().hex[:8]}"


