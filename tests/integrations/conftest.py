"""What the integration tests share: a router over simulated providers, openai first."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import failover
from failover.testing import FakeClock, FakeProviders
from support import PROVIDERS


def make_router(clock: FakeClock, **route: Any) -> failover.Router:
    return failover.Router(failover.Config.from_mapping({
        "providers": PROVIDERS,
        "routes": {"default": {"chain": ["openai", "claude", "gemini"], **route}},
        "telemetry": {"opentelemetry": False},
    }), clock=clock)


@pytest.fixture
def router(clock: FakeClock) -> Iterator[failover.Router]:
    with make_router(clock) as r:
        yield r


def all_down(fake: FakeProviders) -> None:
    """Every provider of the route answers 503."""
    for name in PROVIDERS:
        fake[name].fail(503)
