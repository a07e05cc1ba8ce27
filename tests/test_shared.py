"""Shared breaker state in a real Redis server: one worker sees a provider die, all skip it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import failover
from failover.testing import FakeClock, FakeProviders
from support import eventually, free_port, start_redis

PROVIDERS = {
    "openai": {"type": "openai", "model": "gpt-4o-mini", "api_key": "sk-test-0123456789"},
    "claude": {"type": "anthropic", "model": "claude-haiku-4-5", "api_key": "sk-ant-0123456789"},
}


def shared_config(redis_url: str, prefix: str) -> failover.Config:
    return failover.Config.from_mapping({
        "providers": PROVIDERS,
        "routes": {"default": {"chain": ["openai", "claude"]}},
        "state": {"backend": "redis", "url": redis_url, "prefix": prefix},
        "telemetry": {"opentelemetry": False},
    })


def test_one_worker_sees_the_outage_every_worker_skips_the_provider(
    redis_url: str, prefix: str
) -> None:
    clock = FakeClock()
    with FakeProviders(clock=clock) as fake:
        fake["openai"].fail(503)
        fake["claude"].answer("claude")
        worker_a = failover.Router(shared_config(redis_url, prefix), clock=clock)
        worker_b = failover.Router(shared_config(redis_url, prefix), clock=clock)
        try:
            for _ in range(3):
                assert worker_a.complete("hi").provider == "claude"
            assert fake["openai"].calls == 3
            eventually(lambda: worker_b.health()["openai"].state == "open",
                       "worker B to adopt the open breaker")
            for _ in range(10):
                assert worker_b.complete("hi").provider == "claude"
            assert fake["openai"].calls == 3           # B never paid for the dead primary

            # The primary recovers: A's probe closes it, and B gets it back too.
            fake["openai"].answer("openai is back")
            clock.advance(5)
            assert worker_a.complete("hi").provider == "openai"
            eventually(lambda: worker_b.health()["openai"].state == "closed",
                       "worker B to adopt the closed breaker")
            assert worker_b.complete("hi").provider == "openai"
        finally:
            worker_a.close()
            worker_b.close()


def test_operator_overrides_reach_every_worker_and_late_starters(
    redis_url: str, prefix: str
) -> None:
    worker_a = failover.Router(shared_config(redis_url, prefix))
    worker_b = failover.Router(shared_config(redis_url, prefix))
    try:
        worker_a.force_open("openai")
        eventually(lambda: worker_b.health()["openai"].state == "forced_open",
                   "worker B to adopt the forced state")
        late = failover.Router(shared_config(redis_url, prefix))
        try:
            assert late.health()["openai"].state == "forced_open"
        finally:
            late.close()
        worker_b.reset("openai")
        eventually(lambda: worker_a.health()["openai"].state == "closed",
                   "worker A to adopt the reset")
    finally:
        worker_a.close()
        worker_b.close()


WORKER = """
import json, sys
import failover
from failover.testing import FakeProviders

config = failover.Config.from_mapping(json.loads(sys.argv[1]))
with FakeProviders() as fake:
    fake["openai"].fail(401)
    fake["claude"].answer("claude")
    router = failover.Router(config)
    print(router.complete("hi").provider)
    router.close()    # flushes what is waiting to be published
"""


def test_another_process_opening_a_breaker_is_seen_here(redis_url: str, prefix: str) -> None:
    config = shared_config(redis_url, prefix)
    here = failover.Router(config)
    try:
        out = subprocess.run(
            [sys.executable, "-c", WORKER, json.dumps(config.model_dump(mode="json"))],
            check=True, capture_output=True, text=True, timeout=60)
        assert out.stdout.strip() == "claude"
        eventually(lambda: here.health()["openai"].state == "open",
                   "the other process's breaker (a revoked key opens it at once)")
        open_for = here.health()["openai"].open_for_s
        assert open_for is not None and 5 < open_for <= 10    # long open: max_open_for
    finally:
        here.close()


def test_redis_being_down_never_touches_a_request(prefix: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with FakeProviders() as fake:
        fake["openai"].fail(503)
        fake["claude"].answer("claude")
        router = failover.Router(shared_config(dead, prefix), clock=FakeClock())
        try:
            for _ in range(5):
                assert router.complete("hi").provider == "claude"
            assert fake["openai"].calls == 3 and router.health()["openai"].state == "open"
        finally:
            router.close()
    assert "cannot" in caplog.text or "lost Redis" in caplog.text


def test_the_url_may_come_from_the_environment(redis_url: str, prefix: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAILOVER_REDIS_URL_X", redis_url)
    router = failover.Router(shared_config("${FAILOVER_REDIS_URL_X}", prefix))
    router.close()
    monkeypatch.delenv("FAILOVER_REDIS_URL_X")
    with pytest.raises(failover.ConfigError, match=r"state\.url: environment variable "
                                                   r"FAILOVER_REDIS_URL_X is not set"):
        failover.Router(shared_config("${FAILOVER_REDIS_URL_X}", prefix))


def test_secrets_never_reach_redis(redis_url: str, prefix: str, tmp_path: Path) -> None:
    import redis

    router = failover.Router(shared_config(redis_url, prefix))
    router.force_open("openai")
    router.close()
    client = redis.Redis.from_url(redis_url)
    stored: Any = client.get(f"{prefix}:breaker:openai")
    client.close()
    assert stored is not None and b"forced_open" in stored
    assert b"sk-test" not in stored


# --- a Redis that goes away, and peers that cannot be trusted ---------------------------


class RedisLater:
    """A Redis server that is down until `start` is called: ``url`` works either way."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._workdir = workdir
        self._server: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._server = start_redis(self.port, self._workdir)

    def stop(self) -> None:
        if self._server is not None:
            self._server.terminate()
            self._server.wait(5)


@pytest.fixture
def redis_later(tmp_path: Path) -> Iterator[RedisLater]:
    later = RedisLater(tmp_path)
    yield later
    later.stop()


def test_a_breaker_opened_while_redis_was_down_reaches_the_others_when_it_returns(
    redis_later: RedisLater, prefix: str
) -> None:
    clock = FakeClock()
    config = shared_config(redis_later.url, prefix)
    with FakeProviders(clock=clock) as fake, failover.Router(config, clock=clock) as worker_a:
        fake["openai"].fail(503)
        fake["claude"].answer("claude")
        for _ in range(3):                  # Redis is down: the publish fails
            worker_a.complete("hi")
        assert worker_a.health()["openai"].state == "open"
        redis_later.start()
        with failover.Router(config, clock=clock) as worker_b:
            eventually(lambda: worker_b.health()["openai"].state == "open",
                       "the state made during the outage to reach worker B", timeout=20)


def test_a_worker_that_lost_touch_never_overwrites_what_changed_meanwhile(
    redis_later: RedisLater, prefix: str
) -> None:
    """Worker A starts while Redis is down; Redis comes back; an operator force-opens a
    provider through worker B. When A gets back in touch it must take B's state, not
    republish its own stale "closed" over it (it has no transition of its own to tell)."""
    config = shared_config(redis_later.url, prefix)
    with failover.Router(config) as worker_a:          # Redis is down: out of touch
        time.sleep(1.0)  # let A's subscriber fail and back off (0.5 s, then 1 s, 2 s ...)
        redis_later.start()
        with failover.Router(config) as worker_b:
            worker_b.force_open("openai")
            eventually(lambda: worker_a.health()["openai"].state == "forced_open",
                       "worker A to take the operator's change when back in touch",
                       timeout=20)
            time.sleep(0.5)  # anything A would (wrongly) republish has reached B by now
            assert worker_b.health()["openai"].state == "forced_open"


def test_an_absurd_snapshot_is_clamped_or_refused(redis_url: str, prefix: str) -> None:
    import redis

    router = failover.Router(shared_config(redis_url, prefix))
    client = redis.Redis.from_url(redis_url)
    try:
        def send(**fields: Any) -> None:
            client.publish(f"{prefix}:breakers", json.dumps({
                "origin": "a-hostile-peer", "provider": "openai", "published_at": time.time(),
                **fields}))

        send(state="open", open_for_left=1e300, open_for=1e300, consecutive_failures=3)
        eventually(lambda: router.health()["openai"].state == "open", "the snapshot")
        breaker = router._state.providers["openai"].breaker
        limit = router.config.defaults.breaker.max_open_for
        assert breaker.open_until is not None
        assert breaker.open_until <= time.monotonic() + limit + 1
        send(state="closed", open_for_left=None, open_for=-50, consecutive_failures=0)
        time.sleep(0.3)  # a refused message leaves no trace to wait for
        assert router.health()["openai"].state == "open"
        # A peer whose clock runs an hour ahead cannot stretch the period either.
        send(state="open", open_for_left=2.0, open_for=5.0, consecutive_failures=3,
             published_at=time.time() + 3600)
        eventually(lambda: breaker.open_until is not None
                   and breaker.open_until <= time.monotonic() + 2.5, "the skewed snapshot")
    finally:
        client.close()
        router.close()


def test_a_down_redis_logs_a_bounded_number_of_lines(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"   # nothing listens there
    with caplog.at_level("ERROR", logger="failover.shared"):
        router = failover.Router(shared_config(url, prefix))
        router.force_open("openai")                  # a publish that fails too
        time.sleep(3.0)
        router.close()
    lines = [r for r in caplog.records if r.name == "failover.shared"]
    assert 1 <= len(lines) <= 3, [r.getMessage() for r in lines]
