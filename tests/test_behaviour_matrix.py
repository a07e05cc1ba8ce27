"""Every fault the test kit can make x every entry point: the same decisions.

Each row sets up a fault on the primary (or on every provider), then sends one request
through `complete`, `acomplete`, `stream` and `astream` (and, where a route hedges,
hedged `complete` and `acomplete`). What each entry point did is reduced to a trace
(the outcome, every attempt with its error kind, the requests each provider received,
the retry budget left, each breaker's state, the events in order) and the traces must
be equal. Each row also pins the primary's error kind, so all entry points cannot be
equally wrong.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import failover
from failover.testing import FakeClock, FakeProviders

NAMES = ("openai", "claude", "gemini")
PROVIDERS = {
    "openai": {"type": "openai", "model": "gpt-4o-mini", "api_key": "sk-test-openai-0123456789"},
    "claude": {"type": "anthropic", "model": "claude-haiku-4-5",
               "api_key": "sk-ant-test-0123456789"},
    "gemini": {"type": "gemini", "model": "gemini-2.5-flash", "api_key": "AIzaTest0123456789abc"},
}

Run = Callable[[failover.Router], Any]


def _stream(router: failover.Router) -> failover.Response:
    return _completed(list(router.stream("hi")))


def _astream(router: failover.Router) -> failover.Response:
    async def collect() -> list[Any]:
        return [event async for event in router.astream("hi")]

    return _completed(asyncio.run(collect()))


def _completed(events: list[Any]) -> failover.Response:
    final = events[-1]
    assert isinstance(final, failover.Completed), events
    return final.response


ENTRY_POINTS: dict[str, Run] = {
    "complete": lambda router: router.complete("hi"),
    "acomplete": lambda router: asyncio.run(router.acomplete("hi")),
    "stream": _stream,
    "astream": _astream,
}
COMPLETIONS = ("complete", "acomplete")
STREAMS = ("stream", "astream")

Fault = Callable[[FakeProviders], None]


def primary(setup: Callable[[Any], Any]) -> Fault:
    def fault(fake: FakeProviders) -> None:
        setup(fake["openai"])
        fake["claude"].answer("from claude")
        fake["gemini"].answer("from gemini")
    return fault


def everyone(setup: Callable[[Any], Any]) -> Fault:
    def fault(fake: FakeProviders) -> None:
        for name in NAMES:
            setup(fake[name])
    return fault


#: (row id, the fault, the primary's error kind, the entry points it applies to, route)
ROWS: list[tuple[str, Fault, str, tuple[str, ...], dict[str, Any]]] = [
    *[(f"http-{status}", primary(lambda p, s=status: p.fail(s)), kind,
       tuple(ENTRY_POINTS), {}) for status, kind in [
        (400, "BadRequest"), (401, "AuthenticationFailed"), (403, "PermissionDenied"),
        (404, "ModelNotFound"), (408, "Timeout"), (409, "ServerError"),
        (422, "BadRequest"), (500, "ServerError"), (502, "ServerError"),
        (503, "Overloaded"), (504, "ServerError"), (529, "Overloaded"),
    ]],
    ("429-retry-after", primary(lambda p: p.rate_limit(retry_after=1)), "RateLimited",
     tuple(ENTRY_POINTS), {}),
    ("429-long-retry-after", primary(lambda p: p.rate_limit(retry_after=600)), "RateLimited",
     tuple(ENTRY_POINTS), {}),
    ("429-no-retry-after", primary(lambda p: p.fail(429)), "RateLimited",
     tuple(ENTRY_POINTS), {}),
    ("refused", primary(lambda p: p.refuse()), "ConnectionFailed", tuple(ENTRY_POINTS), {}),
    ("reset", primary(lambda p: p.reset()), "ConnectionFailed", tuple(ENTRY_POINTS), {}),
    ("timeout", primary(lambda p: p.timeout()), "Timeout", tuple(ENTRY_POINTS), {}),
    ("hang", primary(lambda p: p.hang()), "Timeout", tuple(ENTRY_POINTS), {}),
    ("malformed-body", primary(lambda p: p.malformed()), "InvalidResponse",
     tuple(ENTRY_POINTS), {}),
    ("context-window", primary(lambda p: p.context_window()), "ContextWindowExceeded",
     tuple(ENTRY_POINTS), {}),
    ("content-filter", primary(lambda p: p.content_filter()), "ContentFiltered",
     tuple(ENTRY_POINTS), {}),
    ("cut-stream", primary(lambda p: p.cut_stream(after=2)), "StreamInterrupted", STREAMS, {}),
    ("stalled-stream", primary(lambda p: p.stall(after=2)), "StreamInterrupted", STREAMS, {}),
    ("malformed-chunk", primary(lambda p: p.malformed(after=2)), "InvalidResponse",
     STREAMS, {}),
    ("cut-stream-raise", primary(lambda p: p.cut_stream(after=2)), "StreamInterrupted",
     STREAMS, {"stream_interrupt": "raise"}),
    ("all-down-fallback", everyone(lambda p: p.fail(503)), "Overloaded",
     tuple(ENTRY_POINTS), {"fallback": {"python": "matrix_fallbacks:manual"}}),
    ("all-down-defer", everyone(lambda p: p.fail(503)), "Overloaded",
     tuple(ENTRY_POINTS), {"fallback": {"defer": True}}),
    ("all-down-raise", everyone(lambda p: p.refuse()), "ConnectionFailed",
     tuple(ENTRY_POINTS), {}),
]


@pytest.fixture(autouse=True)
def fallbacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "matrix_fallbacks.py").write_text(textwrap.dedent("""
        def manual(request, error):
            return "the manual procedure"
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("matrix_fallbacks", None)


def config(route: dict[str, Any], tmp_path: Path) -> failover.Config:
    return failover.Config.from_mapping({
        "providers": PROVIDERS,
        "routes": {"default": {"chain": list(NAMES), "deadline": "30s", **route}},
        # One bound for a whole answer and a stream's first token: a hung provider
        # costs every entry point the same 10 s.
        "defaults": {"timeouts": {"request": "10s", "first_token": "10s", "stall": "10s"}},
        "deferred": {"path": str(tmp_path / "deferred.db")},
    })


def trace(fault: Fault, route: dict[str, Any], run: Run, tmp_path: Path) -> dict[str, Any]:
    """One request through ``run`` on a fresh router and kit: what it did."""
    clock = FakeClock()
    with FakeProviders(clock=clock) as fake, \
            failover.Router(config(route, tmp_path), clock=clock) as router:
        fault(fake)
        events: list[tuple[str, str | None]] = []
        router.subscribe(lambda event: events.append((event.type, event.provider)))
        try:
            response = run(router)
            outcome, attempts = f"answer from {response.provider}", response.attempts
        except failover.FailoverError as err:
            outcome, attempts = type(err).__name__, err.attempts
        health = router.health()
        return {
            "outcome": outcome,
            "attempts": [(a.provider, a.outcome, a.error_kind) for a in attempts],
            "requests": {name: fake[name].calls for name in NAMES},
            "breakers": {name: health[name].state for name in NAMES},
            "events": events,
            "deferred": len(router.list_deferred()),
            "budget": retries_left(router),
        }


def retries_left(router: failover.Router) -> dict[str, int]:
    # The retry budget is internal state; reading it here is the one private access.
    return {name: provider.budget.available()
            for name, provider in router._state.providers.items()}


@pytest.mark.parametrize(("fault", "kind", "entry_points", "route"),
                         [pytest.param(f, k, e, r, id=i) for i, f, k, e, r in ROWS])
def test_every_entry_point_makes_the_same_decisions(
    tmp_path: Path, fault: Fault, kind: str, entry_points: tuple[str, ...],
    route: dict[str, Any],
) -> None:
    traces = {name: trace(fault, route, ENTRY_POINTS[name], tmp_path / name)
              for name in entry_points}
    first = traces[entry_points[0]]
    assert first["attempts"][0][2] == kind, first
    for name, seen in traces.items():
        assert seen == first, f"{name} differs from {entry_points[0]}"


HEDGED_ROWS = [row for row in ROWS if row[3] == tuple(ENTRY_POINTS)]


@pytest.mark.parametrize(("fault", "kind", "route"),
                         [pytest.param(f, k, r, id=i) for i, f, k, _, r in HEDGED_ROWS])
def test_hedged_sync_and_async_make_the_same_decisions(
    tmp_path: Path, fault: Fault, kind: str, route: dict[str, Any]
) -> None:
    # A hedge that never fires in time (every fault here is instant): the hedged path's
    # own decisions (the next provider is the retry), sync on threads and async as tasks.
    hedged = {**route, "hedge": {"after": "60s", "max_ratio": 1.0}}
    traces = {name: trace(fault, hedged, ENTRY_POINTS[name], tmp_path / name)
              for name in COMPLETIONS}
    assert traces["complete"]["attempts"][0][2] == kind
    assert traces["acomplete"] == traces["complete"]
    # Never twice on the same provider.
    tried = [provider for provider, outcome, _ in traces["complete"]["attempts"]]
    assert len(tried) == len(set(tried))


def _primary_down_held_closed(fake: FakeProviders) -> None:
    fake["openai"].fail(500)
    fake["claude"].answer("from claude")


@pytest.mark.parametrize("entry_point", list(ENTRY_POINTS))
def test_the_retry_budget_counts_every_request_whatever_its_entry_point(
    tmp_path: Path, entry_point: str
) -> None:
    # 100 requests against a primary that always answers 500, its breaker held closed:
    # the budget allows retries for 20% of requests (0.2 x 100), on every entry point.
    clock = FakeClock()
    run = ENTRY_POINTS[entry_point]
    with FakeProviders(clock=clock) as fake, \
            failover.Router(config({}, tmp_path), clock=clock) as router:
        _primary_down_held_closed(fake)
        router.force_closed("openai")
        for _ in range(100):
            assert run(router).provider == "claude"
        assert fake["openai"].calls == 100 + 20


def test_the_matrix_covers_every_fault_the_kit_can_make() -> None:
    from failover.testing import _behaviours

    made = {"fail", "rate_limit", "refuse", "reset", "timeout", "hang", "malformed",
            "context_window", "content_filter", "cut_stream", "stall"}
    faults = set(_behaviours.__all__) - {
        "LONG_TEXT", "SHORTHANDS", "FinishReason", "Behaviour", "Call", "Reply", "answer",
        "behaviour_from",
        # Compositions of the faults above, over time (a quota: answers, then 429s):
        "sequence", "slow", "flaky", "down", "quota"}
    assert faults <= made, f"faults not in the matrix: {sorted(faults - made)}"

