"""Simulated providers and faults at the HTTP layer, for tests and drills."""

from __future__ import annotations

from .._clock import FakeClock
from ._bridge import PROVIDER_HEADER, RespxTransport

__all__ = ["PROVIDER_HEADER", "FakeClock", "RespxTransport"]
