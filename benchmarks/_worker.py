"""One contender, one scenario, one process: ``python -m benchmarks._worker '<spec json>'``.

The harness (`benchmarks.run`) starts a fresh process per contender and round so that
contenders never share an interpreter, a heap, imports or a connection pool. The worker
prints one JSON line (its result) on stdout; anything else goes to stderr.

A spec is ``{"scenario": ..., "contender": ..., "port": N, "tag": "...", "params":
{...}}``. Providers are tags on the one loopback server (see `benchmarks.server`); the
worker itself takes the primary down (a fault or a closed port) after warming up, so the
contender's clients, pools and breakers start warm, as in a real outage.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks._stats import percentile, summarize
from benchmarks.contenders import Contender, Setup, build
from benchmarks.server import ServerHandle

__all__ = ["main", "run_spec"]

Params = dict[str, Any]


def _tcp_attempt_fails() -> int | None:
    """Kernel count of TCP connects that failed (a refused connect is one).

    A refused connection never reaches any server, so this is the only outside witness
    of how often a client knocked on a closed port.
    """
    try:
        with open("/proc/net/snmp") as f:
            lines = [line.split() for line in f if line.startswith("Tcp:")]
        header, values = lines[0], lines[1]
        return int(values[header.index("AttemptFails")])
    except (OSError, IndexError, ValueError):
        return None


def _timed(fn: Callable[[], object], n: int, max_seconds: float) -> list[int]:
    out: list[int] = []
    perf = time.perf_counter_ns
    stop = perf() + int(max_seconds * 1e9)
    for _ in range(n):
        t0 = perf()
        fn()
        t1 = perf()
        out.append(t1 - t0)
        if t1 > stop:
            break
    return out


async def _atimed(fn: Callable[[], Awaitable[object]], n: int, max_seconds: float) -> list[int]:
    out: list[int] = []
    perf = time.perf_counter_ns
    stop = perf() + int(max_seconds * 1e9)
    for _ in range(n):
        t0 = perf()
        await fn()
        t1 = perf()
        out.append(t1 - t0)
        if t1 > stop:
            break
    return out


def _setup(handle: ServerHandle, tag: str, params: Params, primary_port: int | None = None
           ) -> Setup:  # fmt: skip
    setup = Setup(
        primary_url=handle.url(f"{tag}-p", primary_port),
        secondary_url=handle.url(f"{tag}-s"),
        timeout_s=float(params.get("timeout_s", 0.2)),
    )
    if "breaker" in params:
        setup.breaker = dict(params["breaker"])
    if params.get("hedge_ms") is not None:
        setup.hedge_ms = float(params["hedge_ms"])
    return setup


# --- scenario 1: healthy path -------------------------------------------------------------------


def healthy(name: str, handle: ServerHandle, tag: str, p: Params) -> dict[str, Any]:
    contender = build(name, _setup(handle, tag, p))
    n, warm, budget = int(p["calls"]), int(p["warmup"]), float(p.get("max_seconds", 60))
    for _ in range(warm):
        contender.call()
    out: dict[str, Any] = {"sync": summarize(_timed(contender.call, n, budget))}
    if p.get("stream_calls"):
        for _ in range(min(warm, 50)):
            contender.stream()
        out["stream"] = summarize(_timed(contender.stream, int(p["stream_calls"]), budget))
    contender.close()

    async def run_async() -> dict[str, dict[str, float]]:
        acontender = build(name, _setup(handle, tag + "a", p))
        timed: dict[str, dict[str, float]] = {}
        try:
            for _ in range(warm):
                await acontender.acall()
            timed["async"] = summarize(await _atimed(acontender.acall, n, budget))
            if p.get("stream_calls"):
                for _ in range(min(warm, 50)):
                    await acontender.astream()
                timed["astream"] = summarize(
                    await _atimed(acontender.astream, int(p["stream_calls"]), budget))
            return timed
        finally:
            await acontender.aclose()
            acontender.close()

    out.update(asyncio.run(run_async()))
    return out


# --- scenario 2: a fast failure (503 or refused) ------------------------------------------------


def fast_failure(name: str, handle: ServerHandle, tag: str, p: Params) -> dict[str, Any]:
    fault = str(p["fault"])
    port = handle.listen() if fault == "refused" else None
    contender = build(name, _setup(handle, tag, p, primary_port=port))
    warm = int(p["warmup"])
    for _ in range(warm):
        contender.call()
    is_sdk = hasattr(contender, "call_primary")
    if is_sdk:
        for _ in range(min(warm, 20)):
            contender.call_primary()  # type: ignore[attr-defined]
    ptag = f"{tag}-p"
    served_before = handle.count(ptag)
    attempts_before = contender.primary_attempts
    if fault == "refused":
        assert port is not None
        handle.unlisten(port)
    else:
        handle.set_fault(ptag, fault)
    kernel_before = _tcp_attempt_fails()

    latencies: list[int] = []
    starts: list[float] = []
    errors = 0
    perf = time.perf_counter_ns
    t_start = perf()
    stop = t_start + int(float(p["seconds"]) * 1e9)
    for _ in range(int(p["max_calls"])):
        t0 = perf()
        try:
            contender.call()
        except Exception:
            errors += 1
        t1 = perf()
        latencies.append(t1 - t0)
        starts.append((t0 - t_start) / 1e9)
        if t1 > stop:
            break
    elapsed = (perf() - t_start) / 1e9
    kernel_after = _tcp_attempt_fails()
    served = handle.count(ptag) - served_before

    first = [ns / 1000.0 for ns in latencies[:10]]
    steady_from = min(int(p.get("steady_from", 20)), max(len(latencies) - 1, 0))
    out: dict[str, Any] = {
        "fault": fault,
        "calls": len(latencies),
        "errors": errors,
        "seconds": elapsed,
        "first_calls_us": first,
        "all": summarize(latencies),
        "steady": summarize(latencies[steady_from:]),
        # The dead primary's load as its server saw it (a refused port sees nothing).
        "primary_requests_server": None if fault == "refused" else served,
        "primary_attempts_client": (
            None if contender.primary_attempts is None or attempts_before is None
            else contender.primary_attempts - attempts_before
        ),
        "refused_connects_kernel": (
            None if fault != "refused" or kernel_before is None or kernel_after is None
            else kernel_after - kernel_before
        ),
    }
    if is_sdk:
        # The failed attempt's own round trip: what any failover must pay at least once.
        out["failed_round_trip"] = summarize(
            _timed(contender.call_primary, int(p.get("rt_calls", 500)), 5.0)  # type: ignore[attr-defined]
        )
        out["primary_requests_server"] = None
        out["primary_attempts_client"] = None
        out["refused_connects_kernel"] = None
    contender.close()
    return out


# --- scenario 3: a hung primary ----------------------------------------------------------------


def _hang_summary(latencies: list[int], timeout_s: float, served: int, errors: int,
                  hedge_ms: float | None) -> dict[str, Any]:  # fmt: skip
    us = [ns / 1000.0 for ns in latencies]
    out: dict[str, Any] = {
        "calls": len(us),
        "errors": errors,
        "paid_timeout": sum(1 for v in us if v >= 0.8 * timeout_s * 1e6),
        "latencies_us": us,
        "p50": percentile(sorted(us), 50) if us else None,
        "max": max(us) if us else None,
        "primary_requests_server": served,
    }
    if hedge_ms is not None:
        # Slack for the backup's own round trip and scheduling after the hedge fires.
        out["over_hedge_delay"] = sum(1 for v in us if v > (hedge_ms + 20.0) * 1000.0)
    return out


def hang(name: str, handle: ServerHandle, tag: str, p: Params) -> dict[str, Any]:
    n, warm = int(p["calls"]), int(p["warmup"])
    timeout_s = float(p.get("timeout_s", 0.2))
    hedge_ms = p.get("hedge_ms") if name.endswith(":hedge") else None
    params = dict(p, hedge_ms=hedge_ms)
    out: dict[str, Any] = {"timeout_ms": timeout_s * 1000, "hedge_ms": hedge_ms}

    contender = build(name, _setup(handle, tag, params))
    for _ in range(warm):
        contender.call()
    handle.set_fault(f"{tag}-p", "hang")
    before = handle.count(f"{tag}-p")
    latencies, errors = _calls_sync(contender, n)
    out["sync"] = _hang_summary(latencies, timeout_s, handle.count(f"{tag}-p") - before,
                                errors, hedge_ms)  # fmt: skip
    contender.close()

    async def run_async() -> dict[str, Any]:
        atag = tag + "a"
        contender = build(name, _setup(handle, atag, params))
        try:
            for _ in range(warm):
                await contender.acall()
            handle.set_fault(f"{atag}-p", "hang")
            before = handle.count(f"{atag}-p")
            latencies: list[int] = []
            errors = 0
            for _ in range(n):
                t0 = time.perf_counter_ns()
                try:
                    await contender.acall()
                except Exception:
                    errors += 1
                latencies.append(time.perf_counter_ns() - t0)
            served = handle.count(f"{atag}-p") - before
            return _hang_summary(latencies, timeout_s, served, errors, hedge_ms)
        finally:
            await contender.aclose()
            contender.close()

    out["async"] = asyncio.run(run_async())
    return out


def _calls_sync(contender: Contender, n: int) -> tuple[list[int], int]:
    latencies: list[int] = []
    errors = 0
    for _ in range(n):
        t0 = time.perf_counter_ns()
        try:
            contender.call()
        except Exception:
            errors += 1
        latencies.append(time.perf_counter_ns() - t0)
    return latencies, errors


# --- scenario 4: 1,000 concurrent requests ------------------------------------------------------


def concurrency(name: str, handle: ServerHandle, tag: str, p: Params) -> dict[str, Any]:
    width, batches = int(p["concurrency"]), int(p["batches"])
    budget = float(p.get("max_seconds", 60))

    async def batch(contender: Contender) -> tuple[float, int]:
        t0 = time.perf_counter()
        results = await asyncio.gather(*(contender.acall() for _ in range(width)),
                                       return_exceptions=True)  # fmt: skip
        errors = sum(1 for r in results if isinstance(r, BaseException))
        return width / (time.perf_counter() - t0), errors

    async def run() -> dict[str, Any]:
        contender = build(name, _setup(handle, tag, p))
        try:
            # One full-width batch first: the pool opens its connections outside the timing.
            await batch(contender)
            out: dict[str, Any] = {"concurrency": width}
            for phase in ("healthy", "primary_down"):
                if phase == "primary_down":
                    handle.set_fault(f"{tag}-p", "503")
                before = handle.count(f"{tag}-p")
                stop = time.perf_counter() + budget
                rates, errors = [], 0
                for _ in range(batches):
                    rate, failed = await batch(contender)
                    rates.append(rate)
                    errors += failed
                    if time.perf_counter() > stop:
                        break
                steady = rates[1:] or rates
                out[phase] = {
                    "rps_batches": rates,
                    "rps_first": rates[0],
                    "rps_steady": sorted(steady)[len(steady) // 2],
                    "errors": errors,
                    "requests": width * len(rates),
                    "primary_requests_server": handle.count(f"{tag}-p") - before,
                }
            return out
        finally:
            await contender.aclose()
            contender.close()

    return asyncio.run(run())


SCENARIOS: dict[str, Callable[[str, ServerHandle, str, Params], dict[str, Any]]] = {
    "healthy": healthy,
    "fast_failure": fast_failure,
    "hang": hang,
    "concurrency": concurrency,
}


def run_spec(spec: dict[str, Any]) -> dict[str, Any]:
    scenario = str(spec["scenario"])
    if scenario == "micro":
        from benchmarks._micro import micro

        return micro(spec.get("params", {}), ServerHandle(int(spec["port"])))
    handle = ServerHandle(int(spec["port"]))
    return SCENARIOS[scenario](str(spec["contender"]), handle, str(spec["tag"]),
                               dict(spec.get("params", {})))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from benchmarks.server import _raise_fd_limit

    _raise_fd_limit()
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(args[0])
    try:
        result: dict[str, Any] = {"ok": True, "result": run_spec(spec)}
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
