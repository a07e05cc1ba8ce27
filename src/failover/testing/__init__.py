"""Simulated providers and faults at the HTTP layer, for tests and drills.

``FakeProviders`` answers every provider request made inside ``with fake:`` in that
provider's own wire format, so the real adapters and SDKs run end to end::

    from failover.testing import FakeProviders, fail, answer, sequence

    with FakeProviders() as fake:
        fake["openai"].fail(503)
        fake["claude"].sequence(fail(529), answer("hello"))
        ...  # router calls here
    assert fake["openai"].calls == 1

Under pytest the same object is the ``fake_providers`` fixture (and marker) of
`failover.testing.plugin`.
"""

from __future__ import annotations

from .._clock import FakeClock
from ._behaviours import (
    Behaviour,
    answer,
    content_filter,
    context_window,
    cut_stream,
    down,
    fail,
    flaky,
    hang,
    malformed,
    rate_limit,
    refuse,
    reset,
    sequence,
    slow,
    stall,
    timeout,
)
from ._bridge import PROVIDER_HEADER, RespxTransport
from ._simulated import FakeProviders, RecordedRequest, SimulatedProvider

__all__ = [
    "PROVIDER_HEADER",
    "Behaviour",
    "FakeClock",
    "FakeProviders",
    "RecordedRequest",
    "RespxTransport",
    "SimulatedProvider",
    "answer",
    "content_filter",
    "context_window",
    "cut_stream",
    "down",
    "fail",
    "flaky",
    "hang",
    "malformed",
    "rate_limit",
    "refuse",
    "reset",
    "sequence",
    "slow",
    "stall",
    "timeout",
]
