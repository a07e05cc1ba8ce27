from __future__ import annotations

import pytest

from failover.providers._known import known_context_window


@pytest.mark.parametrize(("model", "window"), [
    ("gpt-4o-mini", 128_000), ("gpt-4o", 128_000), ("gpt-4.1-mini", 1_047_576),
    ("claude-haiku-4-5", 200_000), ("gemini-2.5-flash", 1_048_576),
    ("gemini-1.5-pro-002", 2_097_152), ("models/gemini-2.0-flash", 1_048_576),
    ("GPT-3.5-Turbo", 16_385), ("llama3.1", None), ("", None),
])
def test_known_windows(model: str, window: int | None) -> None:
    assert known_context_window(model) == window
