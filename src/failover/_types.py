"""Aliases and protocols shared by every layer. Standard library only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal, Protocol, get_args

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]
BreakerState = Literal["closed", "open", "half_open", "forced_open", "forced_closed"]
ProviderType = Literal["openai", "azure", "anthropic", "gemini", "fake"]
Action = Literal["retry", "failover", "raise"]
StreamInterruptPolicy = Literal["restart", "continue", "raise"]
#: How a pool of equivalent providers orders its members for one request.
Strategy = Literal["priority", "round_robin", "weighted", "least_busy", "least_latency",
                   "headroom"]


class Clock(Protocol):
    """A monotonic clock in seconds. Tests inject a fake one."""

    def __call__(self) -> float: ...


Sleep = Callable[[float], None]
AsyncSleep = Callable[[float], Awaitable[None]]

#: The unified ``reasoning`` option: how hard a model thinks, on every provider's scale.
Reasoning = Literal["none", "minimal", "low", "medium", "high"]
REASONING_EFFORTS: tuple[str, ...] = get_args(Reasoning)
