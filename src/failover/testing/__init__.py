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
`failover.testing.plugin`. Names load on first use, so the plugin adds nothing to
pytest's start-up in projects that never use it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
        quota,
        rate_limit,
        refuse,
        reset,
        sequence,
        slow,
        stall,
        timeout,
    )
    from ._bridge import PROVIDER_HEADER, RespxTransport
    from ._conformance import wire_problems
    from ._simulated import FakeProviders, RecordedRequest, SimulatedIdentity, SimulatedProvider

__all__ = [
    "PROVIDER_HEADER",
    "Behaviour",
    "FakeClock",
    "FakeProviders",
    "RecordedRequest",
    "RespxTransport",
    "SimulatedIdentity",
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
    "quota",
    "rate_limit",
    "refuse",
    "reset",
    "sequence",
    "slow",
    "stall",
    "timeout",
    "wire_problems",
]

_HOME = {
    "FakeClock": ".._clock",
    "PROVIDER_HEADER": "._bridge",
    "RespxTransport": "._bridge",
    "FakeProviders": "._simulated",
    "RecordedRequest": "._simulated",
    "SimulatedIdentity": "._simulated",
    "SimulatedProvider": "._simulated",
    "wire_problems": "._conformance",
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'failover.testing' has no attribute {name!r}")
    # Not cached in globals(): pytester drops and re-imports submodules between inner
    # runs, and a cached name would then be a class from a module no longer in use.
    module = importlib.import_module(_HOME.get(name, "._behaviours"), __name__)
    return getattr(module, name)


def __dir__() -> list[str]:
    return sorted(__all__)
