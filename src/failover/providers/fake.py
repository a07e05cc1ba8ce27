"""``type: fake``: a simulated provider, for drills, demos and tests. No key, no network.

It is the OpenAI adapter with the network swapped for an in-process simulator of the
Chat Completions wire format, so the real SDK and the real adapter code run on every
request. What it answers, how fast, and how it fails come from the provider's ``fake:``
settings (`FakeConfig`): ``text``, ``latency`` (really waited), ``chunk_size`` (of
stream pieces), ``fail_rate``/``fail_status``/``seed`` (seeded random failures), and a
``fault`` (a status, a timeout, a refusal, a reset, a malformed body, a cut stream).

The test kit's transport override takes precedence over the simulator, so drills and
tests can inject any fault into a fake provider by its name; one given no behaviour
there still answers from its settings (found through the ``x-failover-simulator``
header each fake provider sends).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import threading
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx2
from pydantic import SecretStr

from .._config import FakeConfig
from . import _wire
from ._wire import ChunkedBody
from .openai import OpenAIAdapter

if TYPE_CHECKING:
    from .._config import FakeFault, ProviderConfig, TimeoutsConfig

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "SIMULATOR_HEADER",
    "FakeAdapter",
    "FakeSimulator",
    "simulator_for",
]

DEFAULT_BASE_URL = "http://fake.failover.invalid/v1"
DEFAULT_MODEL = "fake-model"
SIMULATOR_HEADER = "x-failover-simulator"

_ids = itertools.count(1)
_simulators: weakref.WeakValueDictionary[str, FakeSimulator] = weakref.WeakValueDictionary()


def simulator_for(headers: Mapping[str, str]) -> FakeSimulator | None:
    """The simulator of the fake provider that sent a request with these headers."""
    key = headers.get(SIMULATOR_HEADER)
    return _simulators.get(key) if key else None


class FakeAdapter(OpenAIAdapter):
    """``type: fake``: OpenAI's wire format, answered in process from ``config.fake``."""

    def __init__(self, name: str, config: ProviderConfig, timeouts: TimeoutsConfig) -> None:
        # A header value is ASCII: a provider may be named in any script.
        self._simulator_id = f"{quote(name)}#{next(_ids)}"
        updates: dict[str, Any] = {
            "headers": {**config.headers, SIMULATOR_HEADER: self._simulator_id},
        }
        if not config.model:
            updates["model"] = DEFAULT_MODEL
        if config.base_url is None:
            updates["base_url"] = DEFAULT_BASE_URL
        if config.api_key is None and not config.api_keys:
            updates["api_key"] = SecretStr("fake")
        super().__init__(name, config.model_copy(update=updates), timeouts)

    def _simulator(self) -> FakeSimulator:
        simulator = FakeSimulator(self.config.fake or FakeConfig())
        _simulators[self._simulator_id] = simulator
        return simulator


class _Body(ChunkedBody, httpx2.SyncByteStream, httpx2.AsyncByteStream):
    pass


class FakeSimulator:
    """Answers Chat Completions requests from `FakeConfig`, in process.

    Each request draws twice from one ``random.Random(seed)`` (fault, then failure), so a
    given seed fails the same requests in every run.
    """

    def __init__(self, settings: FakeConfig) -> None:
        self.settings = settings
        self.requests = 0
        self._random = random.Random(settings.seed)
        self._lock = threading.Lock()

    def handle_request(self, request: httpx2.Request, provider: str) -> httpx2.Response:
        plan = self._plan(request)
        if self.settings.latency:
            time.sleep(self.settings.latency)
        return self._respond(request, plan)

    async def handle_async_request(
        self, request: httpx2.Request, provider: str
    ) -> httpx2.Response:
        plan = self._plan(request)
        if self.settings.latency:
            await asyncio.sleep(self.settings.latency)
        return self._respond(request, plan)

    def _plan(self, request: httpx2.Request) -> tuple[_wire.WireRequest, FakeFault | None, bool]:
        wire = _wire.read_request(str(request.url), request.read())
        with self._lock:
            self.requests += 1
            fault_roll, fail_roll = self._random.random(), self._random.random()
        fault = self.settings.fault
        active = fault if fault is not None and fault_roll < fault.rate else None
        failing = active is None and fail_roll < self.settings.fail_rate
        return wire, active, failing

    def _respond(
        self, request: httpx2.Request, plan: tuple[_wire.WireRequest, FakeFault | None, bool]
    ) -> httpx2.Response:
        wire, fault, failing = plan
        if fault is not None:
            return self._fault(request, wire, fault)
        if failing:
            return self._error(request, self.settings.fail_status, None)
        return self._answer(request, wire)

    def _answer(self, request: httpx2.Request, wire: _wire.WireRequest,
                *, cut: bool = False) -> httpx2.Response:  # fmt: skip
        settings, model = self.settings, wire.model or DEFAULT_MODEL
        if wire.stream:
            events = [e.data for e in _wire.stream_events(
                "openai", text=settings.text, model=model, input_tokens=wire.input_tokens,
                chunk_size=settings.chunk_size, include_usage=wire.include_usage,
            )]  # fmt: skip
            error = None
            if cut:
                events, error = events[: max(2, len(events) // 2)], httpx2.ReadError(
                    "simulated: connection reset mid-stream")
            return httpx2.Response(200, headers={"content-type": _wire.SSE_CONTENT_TYPE},
                                   stream=_Body(events, error), request=request)
        body = json.dumps(_wire.completion_body(
            "openai", text=settings.text, model=model, input_tokens=wire.input_tokens,
        )).encode()  # fmt: skip
        if cut:
            return httpx2.Response(
                200, headers={"content-type": _wire.JSON_CONTENT_TYPE},
                stream=_Body([body[: len(body) // 2]],
                             httpx2.ReadError("simulated: connection reset")),
                request=request,
            )  # fmt: skip
        return httpx2.Response(200, headers={"content-type": _wire.JSON_CONTENT_TYPE},
                               content=body, request=request)

    def _error(self, request: httpx2.Request, status: int,
               retry_after: float | None) -> httpx2.Response:  # fmt: skip
        headers = {"content-type": _wire.JSON_CONTENT_TYPE}
        if retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        body = _wire.error_body("openai", status, retry_after=retry_after)
        return httpx2.Response(status, headers=headers, content=json.dumps(body).encode(),
                               request=request)

    def _fault(self, request: httpx2.Request, wire: _wire.WireRequest,
               fault: FakeFault) -> httpx2.Response:  # fmt: skip
        if fault.kind == "timeout":
            raise httpx2.ReadTimeout("simulated: the provider did not answer in time",
                                     request=request)
        if fault.kind == "refused":
            raise httpx2.ConnectError("simulated: [Errno 111] Connection refused",
                                      request=request)
        if fault.kind == "reset":
            raise httpx2.ReadError("simulated: [Errno 104] Connection reset by peer",
                                   request=request)
        if fault.kind == "malformed":
            if wire.stream:
                good = _wire.stream_events(
                    "openai", text=self.settings.text, model=wire.model or DEFAULT_MODEL,
                    chunk_size=self.settings.chunk_size,
                )[:2]  # fmt: skip
                events = [*(e.data for e in good), _wire.malformed_event("openai")]
                return httpx2.Response(200, headers={"content-type": _wire.SSE_CONTENT_TYPE},
                                       stream=_Body(events), request=request)
            return httpx2.Response(200, headers={"content-type": _wire.JSON_CONTENT_TYPE},
                                   content=_wire.MALFORMED_BODY, request=request)
        if fault.kind == "cut_stream":
            return self._answer(request, wire, cut=True)
        return self._error(request, fault.status or self.settings.fail_status, fault.retry_after)
