"""The pytest plugin (registered through the ``pytest11`` entry point ``failover``).

- fixture ``fake_providers``: a `FakeProviders` installed for the test (sync or async:
  the seam is a context variable, set before the test's event loop copies it). At
  teardown the test fails if a provider got a request no behaviour covered.
- marker ``fake_providers``: faults for a whole test, class or module::

      @pytest.mark.fake_providers(openai="down", claude=failover.testing.answer("hi"))
      @pytest.mark.fake_providers({"http://localhost:11434/v1": "refused"})

  Values are behaviours (``failover.testing.fail(503)``...), HTTP error statuses
  (``503``, ``"429"``) or shorthands (``"down"``, ``"refused"``, ``"timeout"``...). A
  test with the marker gets the fixture even if it does not ask for it; the marker
  closest to the test wins for each provider.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._simulated import FakeProviders

__all__ = ["fake_providers"]

# The kit (httpx2, respx, pydantic) is imported when a test first uses it, not when
# pytest loads this plugin in every project that has failover installed.

_MARKER_HELP = (
    "fake_providers(**behaviours): simulate provider outages for the whole test, e.g. "
    "@pytest.mark.fake_providers(openai='down', claude=failover.testing.answer('hi')). "
    "Keys are provider names from the config (or base URLs in a dict given as the first "
    "argument); values are failover.testing behaviours, HTTP error statuses like 503 or "
    "'429', or shorthands: 'down', 'refused', 'timeout', 'reset', 'malformed', "
    "'cut_stream', 'stall', 'hang', 'rate_limit', 'overloaded', 'flaky', 'ok'..."
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _MARKER_HELP)


def _marker_behaviours(node: pytest.Item) -> dict[str, Any]:
    """Provider -> behaviour from every ``fake_providers`` marker, the closest winning."""
    if not list(node.iter_markers("fake_providers")):
        return {}
    from ._behaviours import behaviour_from

    chosen: dict[str, Any] = {}
    # iter_markers yields the closest first; apply farthest first so closer ones win.
    for marker in reversed(list(node.iter_markers("fake_providers"))):
        given: dict[str, Any] = {}
        for arg in marker.args:
            if not isinstance(arg, Mapping):
                raise ValueError(
                    f"@pytest.mark.fake_providers({arg!r}, ...): positional arguments must be "
                    "dicts of {provider name or base URL: behaviour}; name providers with "
                    "keywords, e.g. @pytest.mark.fake_providers(openai='down')."
                )
            given.update(arg)
        given.update(marker.kwargs)
        if not given:
            raise ValueError(
                "@pytest.mark.fake_providers() names no provider: say which provider does "
                "what, e.g. @pytest.mark.fake_providers(openai='down', claude='ok')."
            )
        for key, value in given.items():
            where = f"@pytest.mark.fake_providers({key}={value!r})"
            if not isinstance(key, str) or not key:
                raise ValueError(f"{where}: keys must be provider names or base URLs")
            chosen[key] = behaviour_from(value, where=where)
    return chosen


@pytest.fixture
def fake_providers(request: pytest.FixtureRequest) -> Iterator[FakeProviders]:
    """Simulated providers for this test: ``fake_providers["openai"].fail(503)``.

    Nothing leaves the test: routers built in it use the kit's `FakeClock` (delays and
    breaker open times take no real time) and a throwaway deferred store
    (``fake_providers.deferred``); webhook posts are captured (``.webhooks``); a request
    from any thread to anything the test did not fake fails the test.
    """
    try:
        from .._clock import FakeClock
        from ._simulated import FakeProviders, unexpected_message
    except ImportError as exc:
        pytest.fail(f"the fake_providers fixture needs the test kit: pip install "
                    f"'failover[testing]' ({exc})", pytrace=False)

    problem: str | None = None
    try:
        behaviours = _marker_behaviours(request.node)
    except (TypeError, ValueError) as exc:
        problem = str(exc)
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    fake = FakeProviders(clock=FakeClock())
    for key, behaviour in behaviours.items():
        fake[key].set(behaviour)
    with fake:
        yield fake
    if fake.unexpected:
        lines = list(dict.fromkeys(unexpected_message(r) for r in fake.unexpected))
        pytest.fail("\n".join(lines), pytrace=False)


@pytest.fixture(autouse=True)
def _fake_providers_marker(request: pytest.FixtureRequest) -> None:
    """Give marked tests the fixture even when they do not ask for it."""
    if request.node.get_closest_marker("fake_providers") is not None:
        request.getfixturevalue("fake_providers")
