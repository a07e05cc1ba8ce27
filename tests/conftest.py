"""Fixtures shared by the whole suite: the injected clock and the simulated providers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from failover.testing import FakeClock, FakeProviders


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeProviders]:
    with FakeProviders(clock=clock) as kit:
        yield kit
