"""A request cancelled at any await point gives back what it holds: a half-open
provider is probed again at once, not after the probe's lease runs out."""

from __future__ import annotations

import asyncio
from typing import Any

import failover
from failover.testing import FakeProviders


class TickingClock:
    """Every reading is 10 ms later than the last; the backoff sleep never ends by
    itself (it waits to be cancelled)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeping = asyncio.Event()

    def __call__(self) -> float:
        self.now += 0.01
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleeping.set()
        await asyncio.Event().wait()


async def test_cancelled_in_the_retry_backoff_after_taking_the_probe_permit() -> None:
    clock = TickingClock()
    config = failover.Config.from_mapping({
        "providers": {"openai": {"type": "openai", "model": "gpt-4o-mini",
                                 "api_key": "sk-test-0123456789"}},
        "routes": {"default": {"chain": ["openai"]}},
        # One failure opens the breaker for 5 ms; the clock's next readings pass that,
        # so the retry's permit is the half-open probe.
        "defaults": {"breaker": {"consecutive_failures": 1, "open_for": "5ms",
                                 "max_open_for": "5ms", "probe_lease": "60s"},
                     "retry": {"attempts": 2, "budget": 1.0}},
    })
    with FakeProviders() as fake:
        fake["openai"].fail(500)                     # retryable: a backoff follows
        router = failover.Router(config, clock=clock)
        task = asyncio.create_task(router.acomplete("hi", deadline=600))
        await asyncio.wait_for(clock.sleeping.wait(), 5)
        breaker: Any = router._state.providers["openai"].breaker
        assert breaker.state == "half_open"           # the sleeping retry holds the probe
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        permit = breaker.allow()                      # at once, not after the lease
        assert permit is not None and permit.probe
        breaker.release(permit)
        router.close()
