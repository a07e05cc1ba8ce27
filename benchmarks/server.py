"""A loopback fake provider speaking OpenAI Chat Completions, fast enough not to matter.

Raw asyncio (a `Protocol` with a minimal HTTP/1.1 keep-alive parser), one process, bound
to 127.0.0.1 on an ephemeral port. Every provider the benchmark needs is a *tag* in the
path: ``http://127.0.0.1:PORT/<tag>/v1`` is an OpenAI-style ``base_url``, and
``POST /<tag>/v1/chat/completions`` answers with JSON or, when the body asks for
``"stream": true``, with SSE chunks ending in ``data: [DONE]``.

Faults are set per tag at run time through the control plane, so a benchmark can warm a
client on a healthy primary and then take it down, as a real outage would:

- ``POST /_fault {"tag": t, "fault": "ok|503|500|429|hang|slow|reset", "delay_ms": n,
  "retry_after": s}``; ``hang`` never answers, ``slow`` answers after ``delay_ms``,
  ``reset`` drops the connection.
- ``POST /_listen`` opens one more listening port (same handler); ``POST /_unlisten
  {"port": p}`` closes it and every connection on it, and keeps the port bound without
  listening so connecting is *refused* (and no other process can take the port).
- ``GET /_stats``: requests per tag, total requests, the server's CPU seconds.
- ``POST /_reset``: zero the counters and clear the faults.

Run it as ``python -m benchmarks.server``: it prints ``{"port": N}`` on its first line
and serves until stdin closes or it is terminated. ``python -m benchmarks.server
--capacity`` measures its own capacity with a raw httpx2 client and prints it.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FakeProviderServer", "ServerHandle", "measure_capacity", "serve"]

_MODEL = "bench-model"
_COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": _MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "pong"},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    },
    separators=(",", ":"),
).encode()


def _sse_body() -> bytes:
    def chunk(delta: dict[str, Any], finish: str | None, usage: Any = None) -> bytes:
        choices = [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]
        body: dict[str, Any] = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": _MODEL,
            "choices": choices,
        }
        if usage:
            body["usage"] = usage
        return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"

    return b"".join(
        [
            chunk({"role": "assistant", "content": ""}, None),
            chunk({"content": "po"}, None),
            chunk({"content": "ng"}, None),
            chunk({}, "stop"),
            chunk({}, None, {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}),
            b"data: [DONE]\n\n",
        ]
    )


_SSE = _sse_body()

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error", 503: "Service Unavailable"}  # fmt: skip


def _response(status: int, body: bytes, ctype: str = "application/json",
              extra: str = "") -> bytes:  # fmt: skip
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
        f"content-type: {ctype}\r\ncontent-length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode("latin-1") + body


def _error_body(status: int, message: str, kind: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "code": None}}).encode()


_OK_JSON = _response(200, _COMPLETION)
_OK_SSE = _response(200, _SSE, "text/event-stream")
_R503 = _response(503, _error_body(503, "the engine is overloaded", "server_error"))
_R500 = _response(500, _error_body(500, "internal error", "server_error"))
_R404 = _response(404, _error_body(404, "no such path", "invalid_request_error"))
_R429_QUOTA = _response(429, _error_body(429, "Rate limit reached for requests", "requests"))


def _spend(fault: _Fault) -> str:
    """One request against an ``rpm`` fault's minute: "ok", or "429" once spent."""
    now = time.monotonic()
    if not fault.window_start or now - fault.window_start >= 60.0:
        fault.window_start, fault.window_used = now, 0
    if fault.window_used >= fault.rpm:
        fault.refused += 1
        return "429"
    fault.window_used += 1
    return "ok"


@dataclass
class _Fault:
    kind: str = "ok"
    delay_s: float = 0.0
    retry_after: float = 1.0
    #: ``rpm``: requests answered per minute (fixed windows from the first request),
    #: then 429s without Retry-After or rate-limit headers, as a quota often answers.
    rpm: int = 0
    window_start: float = 0.0
    window_used: int = 0
    refused: int = 0


@dataclass
class _State:
    counts: dict[str, int] = field(default_factory=dict)
    faults: dict[str, _Fault] = field(default_factory=dict)
    requests: int = 0
    listeners: dict[int, asyncio.AbstractServer] = field(default_factory=dict)
    connections: dict[int, set[_Connection]] = field(default_factory=dict)
    placeholders: list[socket.socket] = field(default_factory=list)


class _Connection(asyncio.Protocol):
    """One client connection: parse requests one at a time, answer in order."""

    def __init__(self, server: FakeProviderServer, port: int) -> None:
        self.server = server
        self.port = port
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        # While an answer is delayed (slow) or never comes (hang), nothing else is parsed:
        # HTTP/1.1 answers must keep request order.
        self.blocked = False
        self.pending: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.state.connections.setdefault(self.port, set()).add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.pending is not None:
            self.pending.cancel()
        self.server.state.connections.get(self.port, set()).discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._drain()

    def _drain(self) -> None:
        while not self.blocked and self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1")
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) < 2:
                self.transport.close()
                return
            method, path = parts[0], parts[1]
            length = 0
            close = False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                lname = name.strip().lower()
                if lname == "content-length":
                    length = int(value.strip())
                elif lname == "connection" and value.strip().lower() == "close":
                    close = True
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self._answer(method, path, body)
            if close and self.transport is not None and not self.blocked:
                self.transport.close()

    def _write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def _answer(self, method: str, path: str, body: bytes) -> None:
        if path.startswith("/_"):
            self._write(self.server.control(method, path, body))
            return
        tag, _, rest = path[1:].partition("/")
        if not rest.endswith("chat/completions"):
            self._write(_R404)
            return
        state = self.server.state
        state.requests += 1
        state.counts[tag] = state.counts.get(tag, 0) + 1
        fault = state.faults.get(tag)
        kind = "ok" if fault is None else fault.kind
        if kind == "rpm":
            assert fault is not None
            kind = _spend(fault)
            if kind == "429":
                self._write(_R429_QUOTA)
                return
        if kind == "ok":
            stream = b'"stream":true' in body or b'"stream": true' in body
            self._write(_OK_SSE if stream else _OK_JSON)
        elif kind == "503":
            self._write(_R503)
        elif kind == "500":
            self._write(_R500)
        elif kind == "429":
            assert fault is not None
            self._write(
                _response(429, _error_body(429, "rate limited", "rate_limit_error"),
                          extra=f"retry-after: {fault.retry_after:g}\r\n")
            )  # fmt: skip
        elif kind == "hang":
            self.blocked = True
        elif kind == "reset":
            assert self.transport is not None
            self.transport.abort()
        elif kind == "slow":
            assert fault is not None
            stream = b'"stream":true' in body or b'"stream": true' in body
            self.blocked = True
            loop = asyncio.get_running_loop()
            self.pending = loop.call_later(fault.delay_s, self._release,
                                           _OK_SSE if stream else _OK_JSON)  # fmt: skip
        else:
            self._write(_R404)

    def _release(self, data: bytes) -> None:
        self.pending = None
        self.blocked = False
        self._write(data)
        self._drain()


class FakeProviderServer:
    """The server's state and control plane; `serve` runs it on an event loop."""

    def __init__(self) -> None:
        self.state = _State()

    async def listen(self, port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        holder: dict[str, int] = {}

        def factory() -> _Connection:
            return _Connection(self, holder["port"])

        server = await loop.create_server(
            factory, "127.0.0.1", port, backlog=4096, reuse_address=True
        )
        bound = server.sockets[0].getsockname()[1]
        holder["port"] = bound
        self.state.listeners[bound] = server
        return int(bound)

    def unlisten(self, port: int) -> None:
        server = self.state.listeners.pop(port, None)
        if server is None:
            return
        server.close()
        for conn in list(self.state.connections.get(port, ())):
            if conn.transport is not None:
                conn.transport.abort()
        # A bound socket that never listens: connecting is refused, and the port stays ours.
        placeholder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            placeholder.bind(("127.0.0.1", port))
        except OSError:
            placeholder.close()
        else:
            self.state.placeholders.append(placeholder)

    def control(self, method: str, path: str, body: bytes) -> bytes:
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return _response(400, b'{"error":"bad json"}')
        state = self.state
        if path == "/_stats":
            out: dict[str, Any] = {
                "counts": dict(state.counts),
                "refused": {t: f.refused for t, f in state.faults.items() if f.kind == "rpm"},
                "requests": state.requests,
                "cpu_s": time.process_time(),
                "connections": sum(len(c) for c in state.connections.values()),
            }
        elif path == "/_fault":
            kind = str(data.get("fault", "ok"))
            state.faults[str(data["tag"])] = _Fault(
                kind, float(data.get("delay_ms", 0)) / 1000.0, float(data.get("retry_after", 1)),
                rpm=int(data.get("rpm", 0)),
            )
            out = {"ok": True}
        elif path == "/_reset":
            state.counts.clear()
            state.faults.clear()
            state.requests = 0
            out = {"ok": True}
        elif path == "/_listen":
            # Scheduled: the control plane answers synchronously; the port is returned
            # only once bound, so bind on a socket we create here.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            sock.listen(4096)
            asyncio.get_running_loop().create_task(self._serve_socket(sock, port))
            out = {"port": port}
        elif path == "/_unlisten":
            self.unlisten(int(data["port"]))
            out = {"ok": True}
        else:
            return _R404
        return _response(200, json.dumps(out).encode())

    async def _serve_socket(self, sock: socket.socket, port: int) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Connection(self, port), sock=sock)
        self.state.listeners[port] = server


def _raise_fd_limit() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(port: int = 0) -> None:
    """Serve until stdin closes or SIGTERM; print ``{"port": N}`` first."""
    _raise_fd_limit()
    server = FakeProviderServer()
    bound = await server.listen(port)
    print(json.dumps({"port": bound, "pid": os.getpid()}), flush=True)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def done(*_: Any) -> None:
        if not stop.done():
            stop.set_result(None)

    loop.add_signal_handler(signal.SIGTERM, done)
    loop.add_signal_handler(signal.SIGINT, done)
    with contextlib.suppress(Exception):
        loop.add_reader(sys.stdin.fileno(), lambda: done() if not sys.stdin.read(1) else None)
    await stop


# --- the handle the harness and the workers use -----------------------------------------


class ServerHandle:
    """Talks to a running server: URLs, faults, counters, extra ports."""

    def __init__(self, port: int, process: subprocess.Popen[bytes] | None = None) -> None:
        self.port = port
        self.process = process

    def url(self, tag: str, port: int | None = None) -> str:
        return f"http://127.0.0.1:{port or self.port}/{tag}/v1"

    def _call(self, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            body = json.dumps(payload or {}).encode()
            conn.request("POST", path, body=body, headers={"content-type": "application/json"})
            reply = conn.getresponse()
            data: dict[str, Any] = json.loads(reply.read())
            return data
        finally:
            conn.close()

    def set_fault(self, tag: str, fault: str, *, delay_ms: float = 0,
                  retry_after: float = 1, rpm: int = 0) -> None:  # fmt: skip
        self._call("/_fault", {"tag": tag, "fault": fault, "delay_ms": delay_ms,
                               "retry_after": retry_after, "rpm": rpm})  # fmt: skip

    def stats(self) -> dict[str, Any]:
        return self._call("/_stats")

    def count(self, tag: str) -> int:
        return int(self.stats()["counts"].get(tag, 0))

    def reset(self) -> None:
        self._call("/_reset")

    def listen(self) -> int:
        return int(self._call("/_listen")["port"])

    def unlisten(self, port: int) -> None:
        self._call("/_unlisten", {"port": port})

    @classmethod
    @contextlib.contextmanager
    def start(cls) -> Iterator[ServerHandle]:
        """Run the server in its own process for the duration of the block."""
        process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            if not line:
                raise RuntimeError("the benchmark server did not start")
            yield cls(int(json.loads(line)["port"]), process)
        finally:
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.terminate()
                process.wait(timeout=5)


def measure_capacity(handle: ServerHandle, *, sequential: int = 2000, concurrent: int = 5000,
                     concurrency: int = 64) -> dict[str, float]:  # fmt: skip
    """The server's capacity seen from a raw httpx2 client (no SDK), and its CPU cost.

    The client is the heavier side of the loopback, so the server CPU per request is the
    figure that says how far the server is from being the bottleneck.
    """
    import httpx2

    url = handle.url("capacity") + "/chat/completions"
    payload = {"model": _MODEL, "messages": [{"role": "user", "content": "ping"}]}
    before = handle.stats()
    with httpx2.Client() as client:
        client.post(url, json=payload)
        t0 = time.perf_counter()
        for _ in range(sequential):
            client.post(url, json=payload).raise_for_status()
        seq_s = time.perf_counter() - t0

    async def burst() -> float:
        limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx2.AsyncClient(limits=limits) as client:
            sem = asyncio.Semaphore(concurrency)

            async def one() -> None:
                async with sem:
                    (await client.post(url, json=payload)).raise_for_status()

            await asyncio.gather(*(one() for _ in range(concurrency)))
            t0 = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(concurrent)))
            return time.perf_counter() - t0

    conc_s = asyncio.run(burst())
    after = handle.stats()
    served = after["requests"] - before["requests"]
    cpu_us = (after["cpu_s"] - before["cpu_s"]) / max(served, 1) * 1e6
    return {
        "sequential_rps": sequential / seq_s,
        "sequential_us_per_call": seq_s / sequential * 1e6,
        "concurrent_rps": concurrent / conc_s,
        "concurrency": concurrency,
        "server_cpu_us_per_request": cpu_us,
        "server_max_rps_by_cpu": 1e6 / cpu_us if cpu_us > 0 else float("inf"),
    }


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--capacity", action="store_true",
        help="start a server, measure it with a raw httpx2 client, print the figures",
    )
    args = parser.parse_args(argv)
    if args.capacity:
        with ServerHandle.start() as handle:
            print(json.dumps(measure_capacity(handle), indent=2))
        return
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
