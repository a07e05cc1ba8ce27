"""The fleet from the CLI, with a real Redis: ``failover force-open`` in one process opens
the breaker in two running worker processes (each emits the event), and ``failover
health`` shows what they share; without shared state both say what cannot be reached."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import eventually

from .conftest import CliRunner, ConfigWriter

WORKER = r"""
import sys, time, failover
router = failover.Router.from_file(sys.argv[1])
router.subscribe(lambda e: print("event", e.type, e.provider, e.data.get("reason"),
                                 flush=True))
print("ready", flush=True)
seen = None
while True:  # until the test kills it
    state = router.health()["openai"].state
    if state != seen:
        print("state", state, flush=True)
        seen = state
    time.sleep(0.01)
"""


class Worker:
    """An application process sharing breakers through Redis; its stdout, line by line."""

    def __init__(self, config: Path) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, str(config)],
                                     stdout=subprocess.PIPE, stdin=subprocess.PIPE,
                                     text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def saw(self, line: str) -> bool:
        return line in self.lines

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def fleet_config(redis: str | None, prefix: str) -> dict[str, Any]:
    return {
        "providers": {
            "openai": {"type": "openai", "model": "gpt-4o-mini", "api_key": "sk-fleet-0123456789"},
            "claude": {"type": "anthropic", "model": "claude-haiku-4-5",
                       "api_key": "sk-ant-fleet-0123456789"},
        },
        "routes": {"default": {"chain": ["openai", "claude"]}},
        "telemetry": {"opentelemetry": False},
        "state": {"backend": "redis", "url": redis, "prefix": prefix} if redis
        else {"backend": "memory"},
    }


@pytest.fixture
def workers(write_config: ConfigWriter, redis_url: str, prefix: str) -> Iterator[
        tuple[Path, list[Worker]]]:
    path = write_config(fleet_config(redis_url, prefix))
    started = [Worker(path), Worker(path)]
    try:
        for worker in started:
            eventually(lambda w=worker: w.saw("state closed"), "a worker to start", 30)
        yield path, started
    finally:
        for worker in started:
            worker.stop()


def test_force_open_reaches_every_running_worker_and_health_shows_it(
    cli: CliRunner, workers: tuple[Path, list[Worker]],
) -> None:
    path, running = workers
    run = cli("force-open", "openai", str(path))
    assert run.code == 0, run.err
    assert "openai: forced_open on every worker" in run.out
    for worker in running:
        eventually(lambda w=worker: w.saw("state forced_open"),
                   f"the worker's breaker (it said {worker.lines})", 15)
        eventually(lambda w=worker: w.saw("event breaker_opened openai forced "
                                          "(through the shared state)"), "the worker's event",
                   15)
    health = cli("health", str(path), "--json")
    assert health.code == 1  # a provider every worker skips
    shared = json.loads(health.out)
    assert shared["shared"] is True
    assert shared["providers"]["openai"]["state"] == "forced_open"
    assert shared["providers"]["claude"]["state"] == "closed"
    assert "forced_open" in cli("health", str(path)).out
    assert cli("reset", "openai", str(path)).code == 0
    for worker in running:
        eventually(lambda w=worker: w.saw(
            "event breaker_closed openai reset (through the shared state)"),
            f"the reset (the worker said {worker.lines})", 15)
        eventually(lambda w=worker: w.lines[-1] == "state closed", "the closed breaker", 15)


def test_an_open_breaker_shows_when_it_ends_in_wall_clock_time(
    cli: CliRunner, write_config: ConfigWriter, redis_url: str, prefix: str,
) -> None:
    import failover
    from failover.testing import FakeProviders

    path = write_config(fleet_config(redis_url, prefix))
    with FakeProviders() as fake, failover.Router.from_file(path) as worker:
        fake["openai"].fail(503)
        fake["claude"].answer("backup")
        for _ in range(3):  # three 503s in a row open the breaker, for every worker
            worker.complete("hi")
    out = cli("health", str(path)).out
    assert " UTC (in " in out and "open" in out
    until = json.loads(cli("health", str(path), "--json").out)["providers"]["openai"]
    assert until["state"] == "open" and until["open_until"].endswith("+00:00")


@pytest.mark.parametrize("command", ["force-open", "force-closed", "reset"])
def test_without_shared_state_an_override_says_it_cannot_reach_the_workers(
    cli: CliRunner, write_config: ConfigWriter, command: str,
) -> None:
    path = write_config(fleet_config(None, "unused"))
    run = cli(command, "openai", str(path))
    assert run.code == 2
    assert f"failover {command} reaches the running workers only through their shared " \
           "state" in run.err
    assert "state: {backend: redis" in run.err


def test_an_unknown_provider_is_named(cli: CliRunner, write_config: ConfigWriter,
                                      redis_url: str, prefix: str) -> None:
    path = write_config(fleet_config(redis_url, prefix))
    run = cli("force-open", "opnai", str(path))
    assert run.code == 2 and "unknown provider 'opnai'; configured: openai, claude" in run.err
