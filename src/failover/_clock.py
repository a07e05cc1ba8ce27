"""Monotonic time and sleeps, injectable so tests never wait for real time."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

__all__ = ["FakeClock", "MonotonicClock", "monotonic"]

monotonic = time.monotonic


class MonotonicClock:
    """The real clock: `time.monotonic` plus real sleeps."""

    __slots__ = ()

    def __call__(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)


@dataclass
class FakeClock:
    """A clock that moves only when told to; sleeping advances it at once.

    `router = Router(config, clock=FakeClock())` lets a test open a breaker, wait out
    `open_for` with `clock.advance(5)` and see the half-open probe, without sleeping.
    """

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds > 0:
            self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds > 0:
            self.now += seconds
        # Let other tasks run, as a real sleep would.
        await asyncio.sleep(0)
