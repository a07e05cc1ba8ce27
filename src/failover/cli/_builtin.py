"""The config ``failover drill`` runs with no CONFIG: three simulated providers.

The providers are of the real types (OpenAI, Gemini, and the simulated ``fake``),
so each drill request runs through the real adapters and SDKs; but their base URLs
are under ``.invalid`` and their keys are dummies, and the drill puts `FakeProviders`
in front of every request: no network, no key. Timeouts and breaker times are short so
the whole drill (hang and recovery scenarios included) takes a few seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from failover import Config

__all__ = ["BUILTIN_CONFIG", "BUILTIN_LATENCY", "builtin_config"]

BUILTIN_CONFIG: dict[str, Any] = {
    "providers": {
        "openai": {
            "type": "openai",
            "model": "gpt-4o-mini",
            "base_url": "https://openai.drill.invalid/v1",
            "api_key": "drill-dummy-key",
        },
        "gemini": {
            "type": "gemini",
            "model": "gemini-2.5-flash",
            "base_url": "https://gemini.drill.invalid",
            "api_key": "drill-dummy-key",
        },
        "local": {"type": "fake", "model": "llama3.1-sim"},
    },
    "routes": {
        "default": {
            "chain": ["openai", "gemini", "local"],
            "deadline": "2s",
            "fallback": {"defer": True, "runbook": "docs/runbooks/default.md"},
        },
    },
    "defaults": {
        "breaker": {
            "window": "10s",
            "min_calls": 5,
            "failure_rate": 0.5,
            "consecutive_failures": 3,
            "open_for": "250ms",
            "max_open_for": "1s",
        },
        "retry": {"attempts": 2, "backoff": "20ms", "max_backoff": "100ms",
                  "max_retry_after": "100ms"},
        "timeouts": {"connect": "200ms", "request": "200ms", "first_token": "200ms",
                     "stall": "200ms"},
    },
    # Each deferral is written to the backup too (every: 0): losing the store loses
    # nothing, which the data-loss scenario checks.
    "deferred": {"backup": {"path": ".failover/deferred-backup.sqlite", "every": 0}},
    "objectives": {"rto": "1s", "rpo": 0},
}

#: Simulated latency of a healthy answer, per provider of the built-in config.
BUILTIN_LATENCY = {"openai": 0.006, "gemini": 0.008, "local": 0.003}


def builtin_config() -> Config:
    from failover import Config

    return Config.from_mapping(BUILTIN_CONFIG, source="(built-in)")
