"""When every provider is down: the manual fallback runs, or the request is kept durably."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import failover
from failover.testing import FakeClock, FakeProviders

PROVIDERS = {
    "openai": {"type": "openai", "model": "gpt-4o-mini", "api_key": "sk-test-0123456789"},
    "claude": {"type": "anthropic", "model": "claude-haiku-4-5", "api_key": "sk-ant-0123456789"},
}


def config(tmp_path: Path, fallback: dict[str, Any]) -> failover.Config:
    return failover.Config.from_mapping({
        "providers": PROVIDERS,
        "routes": {"default": {"chain": ["openai", "claude"], "fallback": fallback}},
        "deferred": {"path": str(tmp_path / "deferred.sqlite")},
    })


@pytest.fixture
def fallbacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "app_fallbacks.py").write_text(textwrap.dedent("""
        import failover

        seen = []

        def by_rules(request, error):
            seen.append((request, error))
            return "manual answer for: " + request.messages[-1].text

        async def by_rules_async(request, error):
            seen.append((request, error))
            return failover.Response(text="async manual", finish_reason="stop",
                                     provider="rules", model="v1")

        def broken(request, error):
            raise RuntimeError("the fallback is down too")

        not_callable = 42
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("app_fallbacks", None)
    return "app_fallbacks"


def test_python_fallback_answers_with_every_attempt(
    tmp_path: Path, fallbacks: str
) -> None:
    with FakeProviders(clock=FakeClock()) as fake:
        fake["openai"].fail(503)
        fake["claude"].refuse()
        with failover.Router(config(tmp_path, {"python": f"{fallbacks}:by_rules",
                                               "runbook": "docs/runbook.md"}),
                             clock=FakeClock()) as router:
            events: list[failover.Event] = []
            router.subscribe(events.append)
            reply = router.complete("summarise X")
    assert reply.text == "manual answer for: summarise X"
    assert reply.provider == "fallback"
    assert [a.provider for a in reply.attempts] == ["openai", "claude", "claude"]
    module = sys.modules[fallbacks]
    request, error = module.seen[-1]
    assert isinstance(request, failover.Request) and request.route == "default"
    assert isinstance(error, failover.AllProvidersFailed)
    failed = [e for e in events if e.type == "all_providers_failed"]
    assert len(failed) == 1 and failed[0].runbook == "docs/runbook.md"


async def test_async_fallback_returning_a_response(tmp_path: Path, fallbacks: str) -> None:
    with FakeProviders() as fake:
        fake["openai"].fail(503)
        fake["claude"].fail(529)
        async with failover.Router(config(tmp_path, {"python": f"{fallbacks}:by_rules_async"}),
                                   clock=FakeClock()) as router:
            reply = await router.acomplete("hi")
    assert (reply.text, reply.provider, reply.model) == ("async manual", "rules", "v1")
    assert len(reply.attempts) == 2


def test_unimportable_fallback_is_a_config_error(tmp_path: Path, fallbacks: str) -> None:
    with pytest.raises(failover.ConfigError) as info:
        failover.Router(config(tmp_path, {"python": "no_such_module_xyz:f"}))
    assert "routes.default.fallback.python: cannot import module 'no_such_module_xyz'" in str(
        info.value)
    with pytest.raises(failover.ConfigError, match="has no 'missing'"):
        failover.Router(config(tmp_path, {"python": f"{fallbacks}:missing"}))
    with pytest.raises(failover.ConfigError, match="is not callable"):
        failover.Router(config(tmp_path, {"python": f"{fallbacks}:not_callable"}))


def test_a_failing_fallback_is_caught_by_defer(tmp_path: Path, fallbacks: str) -> None:
    with FakeProviders() as fake:
        fake["openai"].fail(503)
        fake["claude"].fail(503)
        with failover.Router(config(tmp_path, {"python": f"{fallbacks}:broken",
                                               "defer": True})) as router:
            with pytest.raises(failover.Deferred) as info:
                router.complete("keep me")
            assert [r.ticket for r in router.list_deferred()] == [info.value.ticket]
    assert isinstance(info.value.__cause__, failover.AllProvidersFailed)


def test_a_failing_fallback_without_defer_raises_all_providers_failed(
    tmp_path: Path, fallbacks: str
) -> None:
    with FakeProviders() as fake:
        fake["openai"].fail(503)
        fake["claude"].fail(503)
        with failover.Router(config(tmp_path, {"python": f"{fallbacks}:broken"})) as router, \
                pytest.raises(failover.AllProvidersFailed) as info:
            router.complete("hi")
    assert isinstance(info.value.__cause__, RuntimeError)


SCRIPT = """
import json, sys
import failover
from failover.testing import FakeProviders

config = failover.Config.from_mapping(json.loads(sys.argv[1]))
with FakeProviders(real_store=True) as fake:
    fake["openai"].fail(503)
    fake["claude"].fail(529)
    router = failover.Router(config)
    try:
        router.complete([{"role": "user", "content": "do not lose me"}], system="be kind",
                        max_tokens=50, metadata={"user": "42"})
    except failover.Deferred as deferred:
        print(deferred.ticket)
"""


def test_deferred_request_survives_a_process_restart_and_replays(tmp_path: Path) -> None:
    data = {
        "providers": PROVIDERS,
        "routes": {"default": {"chain": ["openai", "claude"], "fallback": {"defer": True}}},
        "deferred": {"path": str(tmp_path / "store" / "deferred.sqlite")},
    }
    out = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(data)], check=True,
                         capture_output=True, text=True)
    ticket = out.stdout.strip()
    assert len(ticket) == 32, out.stderr
    # The row is in the file, committed, whatever this process does next.
    with sqlite3.connect(tmp_path / "store" / "deferred.sqlite") as db:
        rows = db.execute("SELECT ticket, route FROM deferred").fetchall()
    assert rows == [(ticket, "default")]

    router = failover.Router(failover.Config.from_mapping(data), clock=FakeClock())
    [record] = router.list_deferred()
    assert record.ticket == ticket and record.route == "default"
    assert record.request.messages[-1].text == "do not lose me"
    assert (record.request.system, record.request.max_tokens) == ("be kind", 50)
    assert dict(record.request.metadata) == {"user": "42"}
    assert "Overloaded" in record.reason or "all providers failed" in record.reason

    with FakeProviders() as fake:
        fake["openai"].fail(503)
        fake["claude"].fail(503)
        [(t, result)] = router.replay_deferred()
        assert t == ticket and isinstance(result, failover.AllProvidersFailed)
        assert [r.replays for r in router.list_deferred()] == [1]   # kept after a failure

        fake["openai"].answer("finally answered")
        router.reset("openai")
        [(t, result)] = router.replay_deferred()
        assert isinstance(result, failover.Response) and result.text == "finally answered"
        assert fake["openai"].last_request.json["messages"][0] == {
            "role": "system", "content": "be kind"}
    assert router.list_deferred("pending") == []
    [kept] = router.list_deferred("answered")   # the answer is kept for whoever waits on it
    assert kept.ticket == ticket and kept.answer is not None
    assert kept.answer.text == "finally answered" and kept.answer.provider == "openai"
    router.close()
