"""Switching providers is a config change, even while requests run."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

import failover
from failover.testing import FakeClock, FakeProviders

if TYPE_CHECKING:
    from conftest import Loopback

CONFIG = """
providers:
  openai: {{type: openai, model: gpt-4o-mini, api_key: none, base_url: "http://openai.test/v1"}}
  claude: {{type: anthropic, model: claude-haiku-4-5, api_key: none,
            base_url: "http://claude.test"}}
routes:
  default: {{chain: [{chain}]}}
{extra}
"""


def write(path: Path, chain: str, extra: str = "") -> None:
    path.write_text(CONFIG.format(chain=chain, extra=extra))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    p = tmp_path / "failover.yaml"
    write(p, "openai, claude")
    return p


def test_reordering_the_chain_switches_providers(path: Path) -> None:
    with FakeProviders(clock=FakeClock()) as fake:
        fake["openai"].answer("openai")
        fake["claude"].answer("claude")
        with failover.Router.from_file(path, clock=FakeClock()) as router:
            events: list[failover.Event] = []
            router.subscribe(events.append)
            assert router.complete("hi").provider == "openai"
            write(path, "claude, openai")
            router.reload()
            assert router.complete("hi").provider == "claude"
    assert [e.type for e in events] == ["config_reloaded"]


def test_unchanged_providers_keep_their_health(path: Path) -> None:
    clock = FakeClock()
    with FakeProviders(clock=clock) as fake:
        fake["openai"].fail(503)
        fake["claude"].answer("claude")
        with failover.Router.from_file(path, clock=clock) as router:
            for _ in range(3):
                router.complete("hi")
            assert router.health()["openai"].state == "open"
            calls = router.health()["claude"].calls
            # A change to claude's settings only: openai's breaker stays open.
            path.write_text(path.read_text().replace("claude-haiku-4-5", "claude-opus-4-7"))
            router.reload()
            assert router.health()["openai"].state == "open"
            assert router.health()["claude"].calls == 0 < calls
            assert router.complete("hi").provider == "claude"
            assert fake["openai"].calls == 3
            assert fake["claude"].last_request.json["model"] == "claude-opus-4-7"


def test_a_bad_file_is_rejected_whole_and_the_old_config_keeps_serving(path: Path) -> None:
    with FakeProviders(clock=FakeClock()) as fake:
        fake["openai"].answer("openai")
        with failover.Router.from_file(path, clock=FakeClock()) as router:
            rejected: list[failover.Event] = []
            router.subscribe(lambda e: rejected.append(e) if e.type == "config_rejected" else None)
            write(path, "openai, gemni")
            with pytest.raises(failover.ConfigError, match=r"routes\.default\.chain\[1\]: "
                                                           r"unknown provider 'gemni'"):
                router.reload()
            assert router.complete("hi").provider == "openai"
            assert len(rejected) == 1 and "gemni" in rejected[0].detail
            path.write_text("providers: [")
            with pytest.raises(failover.ConfigError, match="cannot parse YAML"):
                router.reload()
            assert router.complete("hi").provider == "openai"


def test_reload_with_a_config_object(path: Path) -> None:
    with FakeProviders() as fake:
        fake["claude"].answer("claude")
        router = failover.Router.from_file(path)
        new = failover.Config.from_mapping({
            "providers": {"claude": {"type": "anthropic", "model": "claude-haiku-4-5",
                                     "api_key": "none", "base_url": "http://claude.test"}},
            "routes": {"default": {"chain": ["claude"]}},
        })
        router.reload(new)
        assert router.complete("hi").provider == "claude"
        assert list(router.health()) == ["claude"]
        router.close()


async def test_reload_under_concurrent_requests_loses_none(path: Path) -> None:
    with FakeProviders() as fake:
        fake["openai"].answer("openai")
        fake["claude"].answer("claude")
        async with failover.Router.from_file(path) as router:
            async def one(i: int) -> str:
                await asyncio.sleep(0)
                return (await router.acomplete(f"request {i}")).provider

            tasks = [asyncio.create_task(one(i)) for i in range(300)]
            for flip in range(10):
                await asyncio.sleep(0)
                write(path, "claude, openai" if flip % 2 == 0 else "openai, claude")
                router.reload()
            served = await asyncio.gather(*tasks)
    assert len(served) == 300
    assert set(served) <= {"openai", "claude"}
    assert fake["openai"].calls + fake["claude"].calls == 300


def test_reload_from_another_thread_while_threads_serve(path: Path) -> None:
    with FakeProviders() as fake:
        fake["openai"].answer("openai")
        fake["claude"].answer("claude")
        router = failover.Router.from_file(path)
        results: list[str] = []
        errors: list[BaseException] = []
        import contextvars

        def worker() -> None:
            try:
                for _ in range(40):
                    results.append(router.complete("hi").provider)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=contextvars.copy_context().run, args=(worker,))
                   for _ in range(4)]
        for t in threads:
            t.start()
        for flip in range(20):
            write(path, "claude, openai" if flip % 2 == 0 else "openai, claude")
            router.reload()
        for t in threads:
            t.join()
        router.close()
    assert errors == [] and len(results) == 160


def test_watch_reloads_when_the_file_changes(path: Path) -> None:
    write(path, "openai, claude", extra="watch: true")
    with FakeProviders() as fake:
        fake["openai"].answer("openai")
        fake["claude"].answer("claude")
        with failover.Router.from_file(path) as router:
            reloaded = threading.Event()
            rejected = threading.Event()
            router.subscribe(lambda e: reloaded.set() if e.type == "config_reloaded" else None)
            router.subscribe(lambda e: rejected.set() if e.type == "config_rejected" else None)
            assert router.complete("hi").provider == "openai"
            write(path, "claude, openai", extra="watch: true")
            assert reloaded.wait(10), "the watcher did not pick up the change"
            assert router.complete("hi").provider == "claude"
            path.write_text("providers: [")
            assert rejected.wait(10), "a bad file was not reported"
            assert router.complete("hi").provider == "claude"


# --- no leaks, no half-files -----------------------------------------------------------------


def open_fds() -> int:
    gc.collect()  # what other tests left for the collector is not this router's
    return len(os.listdir("/proc/self/fd"))


def fds_settle_at_most(limit: int) -> bool:
    """The loopback server runs in this process: its side of a closed connection is
    closed by its handler thread a moment later. Give it that moment (not a timer of
    the library's)."""
    deadline = time.monotonic() + 3.0
    while open_fds() > limit:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def loopback_config(loopback: Loopback, timeout: str) -> failover.Config:
    providers = loopback.providers()
    providers["openai"]["timeout"] = timeout  # a changed setting: a new provider
    return failover.Config.from_mapping({
        "providers": providers, "routes": {"default": {"chain": ["openai", "claude"]}},
    })


def test_200_reloads_that_change_a_provider_leak_no_connections(loopback: Loopback) -> None:
    router = failover.Router(loopback_config(loopback, "30s"))
    router.complete("hi")
    asyncio.run(router.acomplete("hi"))
    baseline = open_fds()
    for i in range(200):
        router.reload(loopback_config(loopback, f"{31 + i}s"))
        assert router.complete("hi").provider == "openai"
    assert fds_settle_at_most(baseline + 4), open_fds()
    router.close()
    assert fds_settle_at_most(baseline - 1), open_fds()  # the live pools are gone too


def test_close_closes_async_pools_as_well(loopback: Loopback) -> None:
    before = open_fds()
    router = failover.Router(loopback_config(loopback, "30s"))

    async def many() -> None:
        await asyncio.gather(*(router.acomplete("hi") for _ in range(20)))

    asyncio.run(many())
    assert open_fds() > before
    router.close()
    assert fds_settle_at_most(before + 1), open_fds()


def test_a_provider_in_use_is_closed_only_after_its_request(
    clock: FakeClock, fake: FakeProviders
) -> None:
    fake["openai"].answer("first")
    config = failover.Config.from_mapping({
        "providers": {"openai": {"type": "openai", "model": "gpt-4o-mini",
                                 "api_key": "sk-test-0123456789"}},
        "routes": {"default": {"chain": ["openai"]}},
    })
    router = failover.Router(config, clock=clock)
    events = router.stream("hi")
    first = next(iter(events))  # a request is in flight on the old provider
    old = router._state.providers["openai"]
    router.reload(failover.Config.from_mapping({
        **config.model_dump(mode="json"),
        "providers": {"openai": {"type": "openai", "model": "gpt-4o",
                                 "api_key": "sk-test-0123456789"}},
    }))
    assert old.adapter._sync_clients != {}  # not closed under the request
    rest = list(events)
    assert first.type == "text" and rest[-1].type == "completed"
    assert old.adapter._sync_clients == {}  # closed once its request finished
    router.close()


def test_a_watched_file_written_slowly_is_never_loaded_half_written(tmp_path: Path) -> None:
    path = tmp_path / "failover.yaml"

    def config(prefix: str) -> str:
        routes = {f"{prefix}{i}": {"chain": ["openai"]} for i in range(13)}
        return yaml.safe_dump({
            "providers": {"openai": {"type": "openai", "model": "gpt-4o-mini",
                                     "api_key": "none", "base_url": "http://openai.test/v1"}},
            "routes": {"default": {"chain": ["openai"]}, **routes},
            "watch": True,
        })

    whole = config("later")
    path.write_text(config("first"))
    loaded: list[int] = []
    with failover.Router.from_file(path) as router:
        router.subscribe(lambda e: loaded.append(len(router.config.routes))
                         if e.type == "config_reloaded" else None)
        for _ in range(2):
            with path.open("w") as out:  # truncated, then written a few lines at a time
                for line in whole.splitlines(keepends=True):
                    out.write(line)
                    out.flush()
                    time.sleep(0.03)
            time.sleep(1.8)
    assert loaded and set(loaded) == {14}


def test_watch_turned_on_and_off_by_a_reload(path: Path) -> None:
    with failover.Router.from_file(path) as router:
        assert router._watcher is None
        write(path, "openai, claude", extra="watch: true")
        router.reload()
        assert router._watcher is not None and router._watcher.is_alive()
        write(path, "openai, claude", extra="watch: false")
        router.reload()
        router._watcher.join(2)
        assert not router._watcher.is_alive()


# --- keys rotated without a restart ---------------------------------------------------------

ROTATING = """
providers:
  openai: {{type: openai, model: gpt-4o-mini, {key}}}
  claude: {{type: anthropic, model: claude-haiku-4-5, api_key: sk-ant-backup-0123456789}}
routes:
  default: {{chain: [openai, claude]}}
"""


def key_sent(fake: FakeProviders) -> str:
    return fake["openai"].last_request.headers["authorization"].removeprefix("Bearer ")


def test_a_key_rotated_in_the_environment_is_picked_up_by_a_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeProviders, clock: FakeClock
) -> None:
    """The file is the same before and after (``${OPENAI_API_KEY}``); the value is not.
    The revoked key's long-open breaker must not outlive the key."""
    path = tmp_path / "failover.yaml"
    path.write_text(ROTATING.format(key='api_key: "${OPENAI_API_KEY}"'))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-revoked-0123456789")
    fake["openai"].fail(401)
    fake["claude"].answer("backup")
    with failover.Router.from_file(path, clock=clock) as router:
        assert router.complete("hi").provider == "claude"
        assert router.health()["openai"].state == "open"  # long open: a revoked key
        assert key_sent(fake) == "sk-revoked-0123456789"
        monkeypatch.setenv("OPENAI_API_KEY", "sk-rotated-0123456789")
        fake["openai"].answer("primary again")
        router.reload()
        assert router.health()["openai"].state == "closed"
        assert router.complete("hi").provider == "openai"
        assert key_sent(fake) == "sk-rotated-0123456789"
        # Nothing changed since: the next reload keeps the provider and its health.
        router.reload()
        assert router.health()["openai"].calls == 1


def test_api_key_file_is_read_beside_the_config_and_again_by_each_reload(
    tmp_path: Path, fake: FakeProviders, clock: FakeClock
) -> None:
    (tmp_path / "secrets").mkdir()
    key_file = tmp_path / "secrets" / "openai.key"
    key_file.write_text("sk-file-one-0123456789\n")
    path = tmp_path / "failover.yaml"
    path.write_text(ROTATING.format(key="api_key_file: secrets/openai.key"))
    fake["openai"].answer("ok")
    with failover.Router.from_file(path, clock=clock) as router:
        router.complete("hi")
        assert key_sent(fake) == "sk-file-one-0123456789"
        key_file.write_text("sk-file-two-0123456789\n")
        router.reload()
        router.complete("hi")
        assert key_sent(fake) == "sk-file-two-0123456789"


def test_an_unreadable_key_file_fails_that_provider_only_and_names_the_file(
    tmp_path: Path, fake: FakeProviders, clock: FakeClock
) -> None:
    path = tmp_path / "failover.yaml"
    path.write_text(ROTATING.format(key="api_key_file: missing.key"))
    fake["claude"].answer("backup")
    with failover.Router.from_file(path, clock=clock) as router:
        reply = router.complete("hi")
    assert reply.provider == "claude"
    assert reply.attempts[0].error_kind == "AuthenticationFailed"
    assert "providers.openai.api_key_file: cannot read" in reply.attempts[0].detail
    assert "missing.key" in reply.attempts[0].detail
    assert fake["openai"].calls == 0


def test_api_key_file_and_api_key_together_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(failover.ConfigError, match="api_key_file, or api_key"):
        failover.Config.from_mapping({
            "providers": {"a": {"type": "openai", "model": "m", "api_key": "x",
                                "api_key_file": "k"}},
            "routes": {"default": {"chain": ["a"]}}})
