"""Pools and limits: ``python -m benchmarks.pools`` (also run by ``benchmarks.run``).

Three measures, on the loopback server (`benchmarks.server`):

- **Rate limits across a fleet.** Two deployments each answer ``rpm`` requests a minute,
  then 429 (no Retry-After, no headers: what a quota often sends). Four worker processes
  offer more than both can take. The contenders know the same limits: failover through
  ``limits: {rpm}`` in a ``headroom`` pool with ``state: {backend: redis}``; LiteLLM's
  Router with ``routing_strategy: usage-based-routing-v2``, the same ``rpm`` per
  deployment, on the same Redis. Measured: the share of requests that met a 429 (the
  server counts them), and the share answered.
- **Weighted split.** A ``weighted`` pool of two members, weights 3 and 1: the share of
  requests each served.
- **One slow member.** Three members, one answering after ``slow_ms``; concurrent async
  requests; p50/p99 for ``round_robin``, ``least_busy`` and ``least_latency``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._stats import percentile
from benchmarks.contenders import MESSAGES, MODEL
from benchmarks.server import ServerHandle

__all__ = ["MODES", "markdown_section", "run_pools", "targets"]

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 4

MODES: dict[str, dict[str, Any]] = {
    "full": {"rpm": 240, "calls": 150, "interval_ms": 20, "weighted_calls": 10000,
             "slow_calls": 3000, "slow_ms": 100, "concurrency": 4},
    "quick": {"rpm": 120, "calls": 75, "interval_ms": 20, "weighted_calls": 10000,
              "slow_calls": 1500, "slow_ms": 100, "concurrency": 4},
    "tiny": {"rpm": 10, "calls": 8, "interval_ms": 5, "weighted_calls": 40,
             "slow_calls": 30, "slow_ms": 20, "concurrency": 4},
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    env.setdefault("LITELLM_LOG", "ERROR")
    return env


def _part(spec: dict[str, Any], timeout: float = 300.0) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "benchmarks.pools", "--part", json.dumps(spec)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env=_env())


def _result(proc: subprocess.Popen[str], timeout: float = 300.0) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = " | ".join(err.strip().splitlines()[-3:])
        return {"ok": False, "error": f"exited {proc.returncode}: {tail}"[:600]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# --- Redis --------------------------------------------------------------------------------


@contextmanager
def _redis() -> Any:
    """A private redis-server, or $FAILOVER_TEST_REDIS_URL; None when there is neither."""
    given = os.environ.get("FAILOVER_TEST_REDIS_URL")
    if given:
        yield given
        return
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--dir", folder],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            import redis

            client = redis.Redis(port=port)
            for _ in range(500):
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.02)
            client.close()
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            server.terminate()
            server.wait(5)


# --- the parts (each in its own process) ----------------------------------------------------


def _failover_fleet_router(spec: dict[str, Any]) -> Any:
    import failover

    providers = {
        name: {"type": "openai", "model": MODEL, "api_key": "sk-bench-0123456789",
               "base_url": url, "limits": {"rpm": spec["rpm"]},
               "retry": {"attempts": 1}}
        for name, url in spec["urls"].items()
    }
    return failover.Router(failover.Config.from_mapping({
        "providers": providers,
        "routes": {"default": {"chain": [{"pool": list(providers), "strategy": "headroom"}]}},
        "state": {"backend": "redis", "url": spec["redis"], "prefix": spec["prefix"]},
    }))


def _litellm_fleet_router(spec: dict[str, Any]) -> Any:
    from urllib.parse import urlsplit

    import litellm
    from litellm.router import Router

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    redis = urlsplit(spec["redis"])
    return Router(
        model_list=[{"model_name": "pool",
                     "litellm_params": {"model": f"openai/{MODEL}", "api_base": url,
                                        "api_key": "sk-bench", "rpm": spec["rpm"],
                                        "max_retries": 0}}
                    for url in spec["urls"].values()],
        routing_strategy="usage-based-routing-v2",
        redis_host=redis.hostname, redis_port=redis.port,
        num_retries=0, timeout=10,
    )


def fleet_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One of the fleet's workers: wait for the common start, then send paced calls."""
    contender = spec["contender"]
    if contender == "failover":
        router = _failover_fleet_router(spec)
        router.warm_up()

        def call() -> None:
            router.complete("ping")
    else:
        router = _litellm_fleet_router(spec)

        def call() -> None:
            router.completion(model="pool", messages=MESSAGES)
    time.sleep(max(0.0, spec["start"] - time.time()))
    outcomes: dict[str, int] = {}
    interval = spec["interval_ms"] / 1000.0
    for _ in range(spec["calls"]):
        began = time.perf_counter()
        try:
            call()
            outcome = "ok"
        except Exception as exc:  # every contender's own error types
            outcome = type(exc).__name__
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        time.sleep(max(0.0, interval - (time.perf_counter() - began)))
    if contender == "failover":
        router.close()
    return {"ok": True, "outcomes": outcomes}


def weighted_part(spec: dict[str, Any]) -> dict[str, Any]:
    import failover

    providers = {name: {"type": "openai", "model": MODEL, "api_key": "sk-bench-0123456789",
                        "base_url": url} for name, url in spec["urls"].items()}
    weights = spec["weights"]
    config = failover.Config.from_mapping({
        "providers": providers,
        "routes": {"default": {"chain": [{"pool": [
            {"provider": n, "weight": w} for n, w in zip(providers, weights, strict=True)],
            "strategy": "weighted"}]}},
    })
    served: dict[str, int] = dict.fromkeys(providers, 0)
    with failover.Router(config) as router:
        for _ in range(spec["calls"]):
            served[router.complete("ping").provider] += 1
    return {"ok": True, "served": served}


def slow_part(spec: dict[str, Any]) -> dict[str, Any]:
    import failover

    providers = {name: {"type": "openai", "model": MODEL, "api_key": "sk-bench-0123456789",
                        "base_url": url} for name, url in spec["urls"].items()}
    config = failover.Config.from_mapping({
        "providers": providers,
        "routes": {"default": {"chain": [{"pool": list(providers),
                                          "strategy": spec["strategy"]}]}},
    })

    async def run() -> dict[str, Any]:
        latencies: list[float] = []
        served: dict[str, int] = dict.fromkeys(providers, 0)
        queue = iter(range(spec["calls"]))
        with failover.Router(config) as router:
            for _ in range(20):  # warm every pool and SDK client
                await router.acomplete("ping")

            async def one_by_one() -> None:
                for _ in queue:
                    began = time.perf_counter()
                    reply = await router.acomplete("ping")
                    latencies.append((time.perf_counter() - began) * 1e3)
                    served[reply.provider] += 1

            await asyncio.gather(*(one_by_one() for _ in range(spec["concurrency"])))
        return {"ok": True, "p50_ms": percentile(sorted(latencies), 50),
                "p99_ms": percentile(sorted(latencies), 99), "served": served}

    return asyncio.run(run())


PARTS = {"fleet": fleet_worker, "weighted": weighted_part, "slow": slow_part}


# --- the whole run ----------------------------------------------------------------------------


def _fleet(handle: ServerHandle, redis_url: str, contender: str,
           p: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    run = uuid.uuid4().hex[:6]
    tags = {f"dep{i}": f"rpm-{contender}-{run}-{i}" for i in (1, 2)}
    for tag in tags.values():
        handle.set_fault(tag, "rpm", rpm=p["rpm"])
    spec = {"contender": contender, "rpm": p["rpm"], "calls": p["calls"],
            "interval_ms": p["interval_ms"], "redis": redis_url, "prefix": f"bench-{run}",
            "urls": {name: handle.url(tag) for name, tag in tags.items()},
            "start": time.time() + (12.0 if contender == "litellm" else 6.0)}
    procs = [_part(dict(spec, part="fleet")) for _ in range(WORKERS)]
    results = [_result(proc) for proc in procs]
    if not all(r.get("ok") for r in results):
        return {"ok": False, "error": next(r["error"] for r in results if not r.get("ok"))}
    stats = handle.stats()
    refused = sum(int(stats["refused"].get(tag, 0)) for tag in tags.values())
    answered = sum(int(stats["counts"].get(tag, 0)) for tag in tags.values()) - refused
    outcomes: dict[str, int] = {}
    for r in results:
        for k, v in r["outcomes"].items():
            outcomes[k] = outcomes.get(k, 0) + v
    total = WORKERS * p["calls"]
    return {"ok": True, "requests": total, "met_429": refused, "met_429_share": refused / total,
            "answered": answered, "answered_share": outcomes.get("ok", 0) / total,
            "capacity": 2 * p["rpm"], "outcomes": outcomes}


def run_pools(handle: ServerHandle, mode: str, contenders: list[str]) -> dict[str, Any]:
    p = MODES[mode]
    doc: dict[str, Any] = {"params": p, "fleet": {}}
    with _redis() as redis_url:
        for contender in contenders:
            if redis_url is None:
                doc["fleet"][contender] = {"ok": False, "error": "no redis-server on PATH"}
                continue
            doc["fleet"][contender] = _fleet(handle, redis_url, contender, p)
            print(f"[pools fleet] {contender}: {json.dumps(doc['fleet'][contender])}",
                  file=sys.stderr, flush=True)
    run = uuid.uuid4().hex[:6]
    urls = {f"w{i}": handle.url(f"weighted-{run}-{i}") for i in (1, 2)}
    doc["weighted"] = dict(_result(_part({"part": "weighted", "urls": urls, "weights": [3, 1],
                                          "calls": p["weighted_calls"]})), weights=[3, 1])
    doc["slow"] = {}
    for strategy in ("round_robin", "least_busy", "least_latency"):
        tags = {f"m{i}": f"slow-{strategy}-{run}-{i}" for i in (1, 2, 3)}
        handle.set_fault(tags["m1"], "slow", delay_ms=p["slow_ms"])
        doc["slow"][strategy] = _result(_part({
            "part": "slow", "strategy": strategy, "calls": p["slow_calls"],
            "concurrency": p["concurrency"],
            "urls": {name: handle.url(tag) for name, tag in tags.items()}}))
        print(f"[pools slow] {strategy}: {json.dumps(doc['slow'][strategy])}", file=sys.stderr,
              flush=True)
    return doc


# --- the report -------------------------------------------------------------------------------


def _pct(value: Any) -> str:
    return "n/a" if not isinstance(value, (int, float)) else f"{100 * value:.2f}%"


def _weighted_error(doc: dict[str, Any]) -> float | None:
    w = doc.get("weighted") or {}
    served, weights = w.get("served"), w.get("weights")
    if not served or not weights:
        return None
    total = sum(served.values())
    shares = [n / total for n in served.values()]
    expected = [x / sum(weights) for x in weights]
    return max(abs(a - b) / b for a, b in zip(shares, expected, strict=True))


def targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """This round's targets (issue 13) as rows of the report's targets table."""
    out = []
    fleet = doc.get("fleet", {})
    mine, theirs = fleet.get("failover") or {}, fleet.get("litellm") or {}
    if mine.get("ok"):
        share = mine["met_429_share"]
        out.append({"id": "pool_429", "target": f"{WORKERS} workers, two RPM-limited "
                    "deployments: at most 1% of requests meet a 429",
                    "measured_text": f"failover {_pct(share)} ({mine['met_429']} of "
                    f"{mine['requests']}); LiteLLM usage-based-routing-v2 "
                    f"{_pct(theirs.get('met_429_share'))}; answered: failover "
                    f"{_pct(mine['answered_share'])}, LiteLLM "
                    f"{_pct(theirs.get('answered_share'))} (capacity "
                    f"{_pct(mine['capacity'] / mine['requests'])})",
                    "pass": share <= 0.01})
    error = _weighted_error(doc)
    if error is not None:
        w = doc["weighted"]
        out.append({"id": "weighted", "target": "`weighted` splits requests within ±3% of "
                    "the weights", "measured_text": f"{sum(w['served'].values()):,} requests, "
                    f"weights 3:1 -> {w['served']}; largest deviation {100 * error:.2f}%",
                    "pass": error <= 0.03})
    return out


def markdown_section(doc: dict[str, Any]) -> list[str]:
    p = doc["params"]
    lines = ["## Pools and limits", "",
             f"Fleet: {WORKERS} worker processes, each {p['calls']} calls {p['interval_ms']} ms "
             f"apart, against two deployments of {p['rpm']} requests a minute each (then 429, "
             "no Retry-After, no headers); both contenders are told the limits and share "
             "their counts through the same Redis.", "",
             "| contender | requests | met a 429 | answered | errors |", "|---|---|---|---|---|"]
    for name, r in doc.get("fleet", {}).items():
        if not r.get("ok"):
            lines.append(f"| {name} | n/a | n/a | n/a | {r.get('error')} |")
            continue
        errors = ", ".join(f"{k} {v}" for k, v in r["outcomes"].items() if k != "ok")
        lines.append(f"| {name} | {r['requests']} | {r['met_429']} ({_pct(r['met_429_share'])})"
                     f" | {_pct(r['answered_share'])} | {errors or 'none'} |")
    lines += ["", f"One slow member (of 3, answering after {p['slow_ms']} ms), "
              f"{p['slow_calls']} async calls, {p['concurrency']} at a time:", "",
              "| strategy | p50 ms | p99 ms | served (slow member first) |", "|---|---|---|---|"]
    for strategy, r in doc.get("slow", {}).items():
        if r.get("ok"):
            lines.append(f"| {strategy} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                         f"{', '.join(str(v) for v in r['served'].values())} |")
    lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--part"]:
        spec = json.loads(args[1])
        print(json.dumps(PARTS[spec["part"]](spec)), flush=True)
        return 0
    mode = "tiny" if "--tiny" in args else "quick" if "--quick" in args else "full"
    with ServerHandle.start() as handle:
        doc = run_pools(handle, mode, ["failover", "litellm"])
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
