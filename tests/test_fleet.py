"""Quotas shared by the fleet through a real Redis: worker processes together respect
one deployment's RPM, and a worker that loses Redis counts on its own at once, and says
so."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

import failover
from failover.testing import FakeClock, FakeProviders, answer, fail, sequence
from support import LoopbackProvider, eventually, free_port

RPM = 20


class LimitedDeployment(LoopbackProvider):
    """Two deployments on one loopback server: ``/limited`` enforces RPM with 429s."""

    counts: ClassVar[dict[str, int]] = {}
    lock = threading.Lock()

    def do_POST(self) -> None:
        where = self.path.split("/")[1]
        with self.lock:
            seen = self.counts[where] = self.counts.get(where, 0) + 1
        if where == "limited" and seen > RPM:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            body = json.dumps({"error": {"message": "Rate limit reached", "type": "requests",
                                         "code": "rate_limit_exceeded"}}).encode()
            self.send_response(429)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            with self.lock:
                self.counts["429"] = self.counts.get("429", 0) + 1
            return
        super().do_POST()


def fleet_config(port: int, redis_url: str, prefix: str) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    return {
        "providers": {
            "limited": {"type": "openai", "model": "gpt-x", "api_key": "sk-fleet-0123456789",
                        "base_url": f"{base}/limited/v1", "limits": {"rpm": RPM}},
            "backup": {"type": "openai", "model": "gpt-x", "api_key": "sk-fleet-b-0123456789",
                       "base_url": f"{base}/backup/v1"},
        },
        "routes": {"default": {"chain": ["limited", "backup"]}},
        "state": {"backend": "redis", "url": redis_url, "prefix": prefix},
    }


WORKER = """
import json, sys, time
import failover
config, start = json.loads(sys.argv[1]), float(sys.argv[2])
with failover.Router(failover.Config.from_mapping(config)) as router:
    router.warm_up()
    time.sleep(max(0.0, start - time.time()))
    served = []
    for _ in range(30):
        served.append(router.complete("hi").provider)
        time.sleep(0.02)
print(json.dumps(served))
"""


def test_two_worker_processes_share_one_rpm_limit(serve: Any, redis_url: str,
                                                  prefix: str) -> None:
    LimitedDeployment.counts = {}
    port = serve(LimitedDeployment)
    config = json.dumps(fleet_config(port, redis_url, prefix))
    start = time.time() + 4.0
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, config, repr(start)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        results.append(json.loads(out))
    served = [p for result in results for p in result]
    assert len(served) == 60  # every request answered
    # Each worker alone would send its own 20: together they send one limit's worth,
    # never more (so never meet the 429); a permit or two one worker held when the other
    # ran dry may go unspent.
    assert RPM - 3 <= LimitedDeployment.counts.get("limited", 0) <= RPM
    assert LimitedDeployment.counts.get("429", 0) == 0
    assert all(result.count("limited") >= 3 for result in results)  # both had a share


def test_a_worker_that_loses_redis_counts_on_its_own_and_says_so(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    config = failover.Config.from_mapping({
        "providers": {"limited": {"type": "openai", "model": "gpt-4o-mini",
                                  "api_key": "sk-fleet-0123456789", "limits": {"rpm": 3}},
                      "backup": {"type": "anthropic", "model": "claude-haiku-4-5",
                                 "api_key": "sk-ant-fleet-0123456789"}},
        "routes": {"default": {"chain": ["limited", "backup"]}},
        "state": {"backend": "redis", "url": dead, "prefix": prefix},
    })
    with FakeProviders() as fake:
        fake["limited"].answer("limited")
        fake["backup"].answer("backup")
        with caplog.at_level("ERROR", logger="failover"), \
                failover.Router(config, clock=FakeClock()) as router:
            router.warm_up()
            began = time.monotonic()
            served = [router.complete("hi").provider for _ in range(5)]
            took = time.monotonic() - began
    assert served == ["limited"] * 3 + ["backup"] * 2
    assert took < 0.5  # no request waited on the dead Redis
    (lost,) = [r.failover_event for r in caplog.records  # type: ignore[attr-defined]
               if getattr(r, "event", None) == "shared_state_lost"]
    assert "counts rate limits and in-flight requests on its own" in lost.detail


@contextlib.contextmanager
def two_workers(redis_url: str, prefix: str, **route: Any
                ) -> Iterator[tuple[FakeProviders, failover.Router, failover.Router]]:
    """Two routers of one config sharing state through Redis, a pool of two providers
    (the first with two keys) answering through the test kit."""
    config = failover.Config.from_mapping({
        "providers": {
            "east": {"type": "openai", "model": "gpt-4o-mini",
                     "api_keys": ["sk-fleet-key-a-0123456789", "sk-fleet-key-b-0123456789"]},
            "west": {"type": "openai", "model": "gpt-4o-mini", "api_key": "sk-west-0123456789",
                     "base_url": "https://west.example/v1"},
        },
        "routes": {"default": {"chain": [{"pool": ["east", "west"], **route}]}},
        "state": {"backend": "redis", "url": redis_url, "prefix": prefix},
    })
    clock = FakeClock()
    with FakeProviders(clock=clock) as fake, failover.Router(config, clock=clock) as a, \
            failover.Router(config, clock=clock) as b:
        fake["east"].answer("east")
        fake["west"].answer("west")
        yield fake, a, b


def test_a_key_retired_by_one_worker_is_retired_in_every_worker(redis_url: str,
                                                              prefix: str) -> None:
    with two_workers(redis_url, prefix) as (fake, worker_a, worker_b):
        fake["east"].set(sequence(fail(401), answer("east")))
        assert worker_a.complete("hi").provider == "east"
        revoked = fake["east"].requests[0].headers["authorization"]
        eventually(lambda: len(worker_b.health()["east"].keys_retired) == 1,
                   "worker B to adopt the retirement")
        before = len(fake["east"].requests)
        for _ in range(4):
            assert worker_b.complete("hi").provider == "east"
        sent = [r.headers["authorization"] for r in fake["east"].requests[before:]]
    assert sent and revoked not in sent


def test_least_busy_counts_the_other_workers_requests_in_flight(redis_url: str,
                                                              prefix: str) -> None:
    with two_workers(redis_url, prefix, strategy="least_busy") as (fake, worker_a, worker_b):
        # Worker A holds a stream open (begun, not read to its end) on one member.
        stream = iter(worker_a.stream("hi"))
        next(stream)
        (busy,) = {r.provider for r in fake.requests}
        other = "west" if busy == "east" else "east"
        eventually(lambda: worker_b.health()[busy].in_flight == 1,
                   "worker B to see A's request in flight")
        assert [worker_b.complete("hi").provider for _ in range(4)] == [other] * 4
        for _ in stream:
            pass
        eventually(lambda: worker_b.health()[busy].in_flight == 0, "worker B to see it ended")


def test_every_limited_provider_and_key_of_a_worker_gets_its_lease(redis_url: str,
                                                                  prefix: str) -> None:
    config = failover.Config.from_mapping({
        "providers": {
            "east": {"type": "openai", "model": "gpt-4o-mini", "limits": {"rpm": 2, "per": "key"},
                     "api_keys": ["sk-fleet-key-a-0123456789", "sk-fleet-key-b-0123456789"]},
            "west": {"type": "openai", "model": "gpt-4o-mini", "api_key": "sk-west-0123456789",
                     "base_url": "https://west.example/v1", "limits": {"rpm": 3}},
        },
        "routes": {"default": {"chain": [{"pool": ["east", "west"]}]}},
        "state": {"backend": "redis", "url": redis_url, "prefix": prefix},
    })
    with FakeProviders() as fake, failover.Router(config) as worker_a, \
            failover.Router(config) as worker_b:
        fake["east"].answer("east")
        fake["west"].answer("west")
        served, skipped = [], []
        for _ in range(5):
            for worker in (worker_a, worker_b):
                try:
                    served.append(worker.complete("hi").provider)
                except failover.AllProvidersFailed as exc:
                    skipped.append(exc.skipped)
                    served.append("none")
                time.sleep(0.06)  # a lease top-up
    # Two keys of 2 a minute, then 3 a minute: the fleet's, whichever worker asks. A
    # permit one worker holds is not the other's: at the very edge of a limit this small
    # one may go unspent, never one too many.
    assert served.count("east") == 4 and 2 <= served.count("west") <= 3
    assert all("no rate-limit headroom" in why for each in skipped for why in each.values())


def test_a_burst_after_a_quiet_spell_fits_the_lease(redis_url: str, prefix: str) -> None:
    """A worker holds a share of what the minute has left, not only of its recent
    traffic: a burst is not pushed off a provider far from its limit."""
    config = failover.Config.from_mapping({
        "providers": {"east": {"type": "openai", "model": "gpt-4o-mini",
                               "api_key": "sk-east-0123456789", "limits": {"rpm": 1000}},
                      "west": {"type": "openai", "model": "gpt-4o-mini",
                               "api_key": "sk-west-0123456789",
                               "base_url": "https://west.example/v1"}},
        "routes": {"default": {"chain": ["east", "west"]}},
        "state": {"backend": "redis", "url": redis_url, "prefix": prefix},
    })
    with FakeProviders() as fake, failover.Router(config) as router:
        fake["east"].answer("east")
        fake["west"].answer("west")
        served = [router.complete("hi").provider for _ in range(30)]
    assert served == ["east"] * 30
