"""What is publicly known about common models, for when the config does not say.

Only the context window, by model-name prefix (longest prefix wins). A wrong or missing
entry costs little: config `capabilities.context_window` overrides it, and an unknown
window never skips a provider.
"""

from __future__ import annotations

__all__ = ["known_context_window"]

_WINDOWS: dict[str, int] = {
    "gpt-3.5-turbo": 16_385,
    "gpt-4o": 128_000,
    "gpt-4-turbo": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-5": 400_000,
    "o1": 200_000,
    "o3": 200_000,
    "o4-mini": 200_000,
    "claude-": 200_000,
    "gemini-1.5-flash": 1_048_576,
    "gemini-1.5-pro": 2_097_152,
    "gemini-2.0": 1_048_576,
    "gemini-2.5": 1_048_576,
    "gemini-3": 1_048_576,
}
_BY_LENGTH = sorted(_WINDOWS, key=len, reverse=True)


def known_context_window(model: str) -> int | None:
    name = model.lower().rsplit("/", 1)[-1]
    for prefix in _BY_LENGTH:
        if name.startswith(prefix):
            return _WINDOWS[prefix]
    return None
