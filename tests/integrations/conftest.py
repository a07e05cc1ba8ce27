"""What the integration tests share: a router over simulated providers, openai first."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import failover
from failover.testing import FakeClock

PROVIDERS = {
    "openai": {"type": "openai", "model": "gpt-4o-mini", "api_key": "sk-test-openai-0123456789"},
    "claude": {"type": "anthropic", "model": "claude-haiku-4-5",
               "api_key": "sk-ant-test-0123456789"},
    "gemini": {"type": "gemini", "model": "gemini-2.5-flash", "api_key": "AIzaTest0123456789abc"},
}


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
