"""A request cancelled at any await point gives back what it holds: a half-open
provider is probed again at once, not after the probe's lease runs out."""

from __future__ import annotations

import asyncio
import importlib
import json
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import failover
from failover.testing import FakeClock, FakeProviders


class TickingClock:
    """Every reading is 10 ms later than the last; the backoff sleep never ends by
    itself (it waits to be cancelled)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeping = asyncio.Event()

    def __call__(self) -> float:
        self.now += 0.01
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleeping.set()
        await asyncio.Event().wait()


async def test_cancelled_in_the_retry_backoff_after_taking_the_probe_permit() -> None:
    clock = TickingClock()
    config = failover.Config.from_mapping({
        "providers": {"openai": {"type": "openai", "model": "gpt-4o-mini",
                                 "api_key": "sk-test-0123456789"}},
        "routes": {"default": {"chain": ["openai"]}},
        # One failure opens the breaker for 5 ms; the clock's next readings pass that,
        # so the retry's permit is the half-open probe.
        "defaults": {"breaker": {"consecutive_failures": 1, "open_for": "5ms",
                                 "max_open_for": "5ms", "probe_lease": "60s"},
                     "retry": {"attempts": 2, "budget": 1.0}},
    })
    with FakeProviders() as fake:
        fake["openai"].fail(500)                     # retryable: a backoff follows
        router = failover.Router(config, clock=clock)
        task = asyncio.create_task(router.acomplete("hi", deadline=600))
        await asyncio.wait_for(clock.sleeping.wait(), 5)
        breaker: Any = router._state.providers["openai"].breaker
        assert breaker.state == "half_open"           # the sleeping retry holds the probe
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        permit = breaker.allow()                      # at once, not after the lease
        assert permit is not None and permit.probe
        breaker.release(permit)
        router.close()


# --- every other await point, against a real server that holds the connection ----------


class HoldingServer:
    """Accepts connections and reads requests, never answers; counts the requests."""

    #: Sent before holding, when set: the head of a stream and its first text.
    opening = b""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests = 0
        self._arrived = threading.Condition()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self._open.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        try:
            while data := conn.recv(65536):
                if b"\r\n\r\n" in data:
                    with self._arrived:
                        self.requests += 1
                        self._arrived.notify_all()
                    if self.opening:
                        conn.sendall(self.opening)
        except OSError:
            pass

    def wait_for(self, requests: int) -> None:
        with self._arrived:
            assert self._arrived.wait_for(lambda: self.requests >= requests, timeout=10)

    def close(self) -> None:
        self.listener.close()
        for conn in self._open:
            conn.close()


@pytest.fixture
def holding() -> Iterator[HoldingServer]:
    server = HoldingServer()
    yield server
    server.close()


def half_open_router(port: int, clock: FakeClock, **route: Any) -> failover.Router:
    """``primary`` (the holding server) behind a breaker that one timeout opens for 5 s,
    with one probe at a time; ``backup`` is a second holding provider. Route ``manual``
    is the same chain with a fallback that waits until it is cancelled."""
    provider = {"type": "openai", "model": "m", "api_key": "sk-test-0123456789",
                "base_url": f"http://127.0.0.1:{port}/v1"}
    chain = ["primary", "backup"]
    return failover.Router(failover.Config.from_mapping({
        "providers": {"primary": provider, "backup": provider},
        "routes": {"default": {"chain": chain, **route},
                   "manual": {"chain": chain,
                              "fallback": {"python": "cancel_fallbacks:waits_forever"}}},
        "defaults": {"breaker": {"consecutive_failures": 1, "open_for": "5s",
                                 "max_open_for": "5s", "half_open_probes": 1,
                                 "probe_lease": "60s"}},
    }), clock=clock)


async def probe_again(router: failover.Router, holding: HoldingServer, clock: FakeClock) -> None:
    """Open the primary's breaker with a timed-out request, let it turn half-open."""
    with pytest.raises(failover.AllProvidersFailed):
        await router.acomplete("hi", timeout=0.05)
    assert router.health()["primary"].state == "open"
    clock.advance(5)
    assert router.health()["primary"].state == "half_open"


async def cancel_when_sent(task: asyncio.Task[Any], holding: HoldingServer, wanted: int) -> None:
    """Cancel ``task`` once the server holds ``wanted`` requests in all."""
    await asyncio.to_thread(holding.wait_for, wanted)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def assert_probed_at_once(router: failover.Router, holding: HoldingServer) -> None:
    # The next request's probe reaches the primary now, not after the 60 s lease.
    seen = holding.requests
    with pytest.raises(failover.AllProvidersFailed) as info:
        await router.acomplete("hi", timeout=0.05)
    assert holding.requests > seen
    assert info.value.attempts[0].provider == "primary"


@pytest.mark.parametrize("where", ["acomplete", "astream", "hedge"])
async def test_cancelled_inside_an_attempt_gives_the_probe_back(
    holding: HoldingServer, where: str
) -> None:
    clock = FakeClock()
    route = {"hedge": {"after": "50ms", "max_ratio": 1.0}} if where == "hedge" else {}
    with half_open_router(holding.port, clock, **route) as router:
        await probe_again(router, holding, clock)
        seen = holding.requests
        if where == "astream":
            async def read() -> None:
                async for _ in router.astream("hi"):
                    pass
            task: asyncio.Task[Any] = asyncio.create_task(read())
        else:
            task = asyncio.create_task(router.acomplete("hi"))
        # A hedged request is cancelled while both the probe and the hedge are in flight.
        await cancel_when_sent(task, holding, seen + (2 if where == "hedge" else 1))
        await assert_probed_at_once(router, holding)


async def test_a_caller_that_stops_reading_a_stream_gives_the_probe_back(
    holding: HoldingServer,
) -> None:
    clock = FakeClock()
    with half_open_router(holding.port, clock) as router:
        await probe_again(router, holding, clock)
        delta = json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1,
                            "model": "m", "choices": [{"index": 0,
                                                       "delta": {"content": "Hel"}}]})
        holding.opening = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                           b"transfer-encoding: chunked\r\n\r\n"
                           + _chunked(f"data: {delta}\n\n".encode()))
        stream = router.astream("hi")
        first = await stream.__anext__()
        assert first.type == "text" and first.text == "Hel"
        await stream.aclose()  # the caller has seen enough
        holding.opening = b""
        await assert_probed_at_once(router, holding)


def _chunked(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@pytest.fixture(autouse=True)
def fallbacks(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The ``manual`` route's fallback, importable by every router of this module."""
    (tmp_path / "cancel_fallbacks.py").write_text(
        "import asyncio\n"
        "started = asyncio.Event()\n"
        "async def waits_forever(request, failure):\n"
        "    started.set()\n"
        "    await asyncio.Event().wait()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("cancel_fallbacks", None)
    return importlib.import_module("cancel_fallbacks")


async def test_cancelled_in_the_fallback_holds_nothing(
    holding: HoldingServer, fallbacks: Any
) -> None:
    clock = FakeClock()
    with half_open_router(holding.port, clock) as router:
        await probe_again(router, holding, clock)
        task = asyncio.create_task(router.acomplete("hi", route="manual", timeout=0.05))
        await asyncio.wait_for(fallbacks.started.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        clock.advance(5)  # the probe in the fallback's request failed: open again
        await assert_probed_at_once(router, holding)
