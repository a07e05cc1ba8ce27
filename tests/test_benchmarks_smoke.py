"""The benchmark suite runs end to end in its tiny mode, so it cannot rot.

No timing is asserted (the figures of a tiny run mean nothing); the structure and the
counts are: every scenario is there for every contender, each did the number of calls it
was asked for, and the dead primary received only the requests that open its breaker.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONTENDERS = ["sdk", "handwritten", "failover"]


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench")
    results, md = out / "results.json", out / "benchmarks.md"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--tiny", "--jobs", "3",
         "--contenders", ",".join(CONTENDERS), "--results", str(results),
         "--markdown", str(md)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(results.read_text()), md.read_text()


def test_every_scenario_ran_without_errors(suite: tuple[dict[str, Any], str]) -> None:
    doc, _ = suite
    assert doc["errors"] == []
    assert set(doc["scenarios"]) == {
        "healthy", "fast_failure_503", "fast_failure_refused", "hang", "concurrency",
        "cold_start", "first_failover", "micro", "pools", "clouds",
    }  # fmt: skip
    assert doc["meta"]["contenders"] == CONTENDERS
    assert doc["server_capacity"]["server_cpu_us_per_request"] > 0


def test_healthy_counts(suite: tuple[dict[str, Any], str]) -> None:
    doc, _ = suite
    params = doc["meta"]["params"]["healthy"]
    healthy = doc["scenarios"]["healthy"]
    assert set(healthy) == set(CONTENDERS)
    for entry in healthy.values():
        assert entry["sync"]["n"] == params["calls"]
        assert entry["async"]["n"] == params["calls"]
        assert entry["stream"]["n"] == params["stream_calls"]
        assert entry["astream"]["n"] == params["stream_calls"]
    assert healthy["sdk"]["sync"]["ratio_p50"] == 1.0


def test_the_first_failover_is_measured_against_the_steady_one(
    suite: tuple[dict[str, Any], str]
) -> None:
    doc, md = suite
    first = doc["scenarios"]["first_failover"]
    assert first["samples"] == doc["meta"]["params"]["first_failover"]["samples"]
    for key in ("at_once_us", "first_us", "steady_us", "first_after_reload_us",
                "steady_after_reload_us"):
        assert first[key] > 0
    assert "The first failover costs at most 2 ms more than a steady one" in md


@pytest.mark.parametrize("fault", ["503", "refused"])
def test_dead_primary_gets_only_the_requests_that_open_its_breaker(
    suite: tuple[dict[str, Any], str], fault: str
) -> None:
    doc, _ = suite
    scenario = doc["scenarios"][f"fast_failure_{fault}"]
    assert set(scenario) == {*CONTENDERS, "failover:nobreaker"}
    for entry in scenario.values():
        assert entry["errors"] == 0
        assert entry["calls"] >= 1
    breaker = doc["raw"][f"fast_failure_{fault}"]["failover"][0]
    opens_after = 3  # benchmarks.run.BREAKER: consecutive_failures
    # No probe can come sooner than open_for (1 s) after the breaker opened.
    bound = opens_after + math.ceil(breaker["seconds"] / 1.0)
    router = scenario["failover"]
    assert router["primary_attempts_client"] <= bound
    if fault == "503":
        # The server saw no more than the router's own attempts: no hidden SDK retries.
        assert router["primary_requests_server"] <= router["primary_attempts_client"]
        # The hand-written failover knocks on the dead primary at every call.
        hand = scenario["handwritten"]
        assert hand["primary_requests_server"] == hand["calls"]
    # Without a breaker the router, like the hand-written code, tries the primary each call.
    nobreaker = scenario["failover:nobreaker"]
    assert nobreaker["primary_attempts_client"] == nobreaker["calls"]
    assert scenario["sdk"]["failed_round_trip_p50"] > 0


def test_hang_counts(suite: tuple[dict[str, Any], str]) -> None:
    doc, _ = suite
    calls = doc["meta"]["params"]["hang"]["calls"]
    hang = doc["scenarios"]["hang"]
    assert set(hang) == {*CONTENDERS, "failover:hedge"}
    assert hang["handwritten"]["sync"]["paid_timeout"] == calls  # no memory: every call pays
    for mode in ("sync", "async"):
        assert hang["failover"][mode]["calls"] == calls
        assert hang["failover"][mode]["paid_timeout_max"] <= 3
        assert hang["sdk"][mode]["primary_requests_server"] == 0
    for mode in ("sync", "async"):
        assert hang["failover:hedge"][mode]["calls"] == calls


def test_concurrency_counts(suite: tuple[dict[str, Any], str]) -> None:
    doc, _ = suite
    params = doc["meta"]["params"]["concurrency"]
    conc = doc["scenarios"]["concurrency"]
    assert set(conc) == set(CONTENDERS)
    for entry in conc.values():
        assert entry["errors"] == 0
        assert entry["down_requests"] == params["concurrency"] * params["batches"]
    # The first down batch is all in flight before any 503 returns; later ones skip it.
    assert conc["failover"]["down_primary_requests"] < conc["handwritten"]["down_requests"]
    assert conc["handwritten"]["down_primary_requests"] == conc["handwritten"]["down_requests"]


def test_cold_start_and_micro(suite: tuple[dict[str, Any], str]) -> None:
    doc, _ = suite
    cold = doc["scenarios"]["cold_start"]
    assert "error" not in cold["import failover"]
    assert "openai" not in cold["import failover"]["modules_loaded"]
    assert "openai" in cold["failover: + first call (loads openai)"]["modules_loaded"]
    micro = doc["scenarios"]["micro"]
    for where in ("in_memory", "loopback"):
        assert set(micro[where]["per_call_us"]) == {"sdk", "direct", "skip"}
        assert micro[where]["skip_open_breaker_us"] is not None


def test_markdown_has_targets_and_every_section(suite: tuple[dict[str, Any], str]) -> None:
    doc, md = suite
    assert "## Targets (SPEC, Performance)" in md
    for heading in ("## 1. Healthy path", "## 2. Primary answers 503",
                    "## 2. Primary refuses connections", "## 3. Primary hangs",
                    "## 4. Concurrent requests", "## 5. Cold start", "## 6. Micro",
                    "## Method", "## Machine"):  # fmt: skip
        assert heading in md
    ids = {t["id"] for t in doc["targets"]}
    assert {"healthy_overhead", "open_breaker_skip", "fast_failure", "dead_primary_load",
            "hang", "hedge", "concurrency", "import"} <= ids  # fmt: skip


def test_pools_counts(suite: tuple[dict[str, Any], str]) -> None:
    doc, md = suite
    pools = doc["scenarios"]["pools"]
    params = pools["params"]
    fleet = pools["fleet"]["failover"]
    assert fleet["ok"], fleet
    assert fleet["requests"] == 4 * params["calls"] == sum(fleet["outcomes"].values())
    assert fleet["answered"] <= fleet["capacity"]
    assert sum(pools["weighted"]["served"].values()) == params["weighted_calls"]
    for strategy in ("round_robin", "least_busy", "least_latency"):
        slow = pools["slow"][strategy]
        assert slow["ok"] and sum(slow["served"].values()) == params["slow_calls"]
    assert "## Pools and limits" in md
    assert {t["id"] for t in doc["targets"]} >= {"pool_429", "weighted"}


def test_clouds_counts(suite: tuple[dict[str, Any], str]) -> None:
    doc, md = suite
    clouds = doc["scenarios"]["clouds"]
    assert set(clouds["platforms"]) == {"azure", "bedrock", "vertex-claude", "vertex-gemini"}
    for row in [*clouds["platforms"].values(), clouds["conversation"]]:
        assert row["sdk_us"] > 0 and row["router_us"] > 0
    assert "## Clouds" in md
