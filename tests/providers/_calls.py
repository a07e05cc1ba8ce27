"""Driving one adapter the four ways (complete, acomplete, stream, astream) for the cloud
adapter tests, and checking what every failure must be: one kind, no secret."""

from __future__ import annotations

from typing import Any

import pytest

from failover import Completed, ProviderError, Request, Response, StreamEvent, TextDelta
from failover._config import ProviderConfig, TimeoutsConfig
from failover.providers import build_adapter
from failover.providers._base import ProviderAdapter
from support import CLOUD_SECRETS

MODES = ["sync", "async"]


def build(name: str, config: dict[str, Any]) -> ProviderAdapter:
    return build_adapter(name, ProviderConfig.model_validate(config), TimeoutsConfig())


async def complete(adapter: ProviderAdapter, request: Request, mode: str) -> Response:
    if mode == "sync":
        return adapter.complete(request)
    return await adapter.acomplete(request)


async def stream(adapter: ProviderAdapter, request: Request, mode: str) -> tuple[str, Response]:
    """The streamed text and the final answer (the text must be the answer's)."""
    if mode == "sync":
        events: list[StreamEvent] = list(adapter.stream(request))
    else:
        events = [event async for event in adapter.astream(request)]
    assert isinstance(events[-1], Completed)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == events[-1].response.text
    return text, events[-1].response


async def failure(adapter: ProviderAdapter, request: Request, mode: str, *,
                  streaming: bool = False) -> ProviderError:
    run = stream if streaming else complete
    with pytest.raises(ProviderError) as info:
        await run(adapter, request, mode)
    err = info.value
    assert err.provider == adapter.name
    assert_no_secret(str(err), repr(err), err.message)
    return err


def assert_no_secret(*texts: str, also: tuple[str, ...] = ()) -> None:
    for text in texts:
        for value in (*CLOUD_SECRETS, *also):
            assert value not in text, f"a credential is in the output: {text[:200]!r}"
