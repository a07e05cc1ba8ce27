"""Turn raw per-round results into summaries, SPEC targets with pass/fail, and Markdown."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks import clouds, pools
from benchmarks._stats import median

__all__ = ["markdown", "summarize_all", "targets"]

Rounds = list[Any]


def _present(rounds: Rounds) -> list[dict[str, Any]]:
    return [r for r in rounds if r is not None]


def _get(obj: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return obj


def _med(rounds: Rounds, path: str) -> float | None:
    return median([_get(r, path) for r in _present(rounds)])


def _max(rounds: Rounds, path: str) -> float | None:
    values = [v for v in (_get(r, path) for r in _present(rounds)) if v is not None]
    return max(values) if values else None


def _paired(rounds: Rounds, base: Rounds, fn: Callable[[Any, Any], float | None]) -> float | None:
    """Median over rounds of ``fn(contender_round, base_round)``: ratios inside one round."""
    values = []
    for mine, theirs in zip(rounds, base, strict=False):
        if mine is not None and theirs is not None:
            values.append(fn(mine, theirs))
    return median(values)


def _ratio(path: str) -> Callable[[Any, Any], float | None]:
    def fn(mine: Any, theirs: Any) -> float | None:
        a, b = _get(mine, path), _get(theirs, path)
        return a / b if a is not None and b else None

    return fn


def _diff(path_a: str, path_b: str) -> Callable[[Any, Any], float | None]:
    def fn(mine: Any, theirs: Any) -> float | None:
        a, b = _get(mine, path_a), _get(theirs, path_b)
        return a - b if a is not None and b is not None else None

    return fn


# --- per scenario -----------------------------------------------------------------------------


def _healthy(raw: dict[str, Rounds]) -> dict[str, Any]:
    base = raw.get("sdk", [])
    out: dict[str, Any] = {}
    for name, rounds in raw.items():
        entry: dict[str, Any] = {"rounds": len(_present(rounds))}
        for mode in ("sync", "async", "stream", "astream"):
            if _get(next(iter(_present(rounds)), None), mode) is None:
                continue
            entry[mode] = {stat: _med(rounds, f"{mode}.{stat}") for stat in
                           ("p50", "mean", "p99", "n")}  # fmt: skip
            entry[mode]["ratio_p50"] = _paired(rounds, base, _ratio(f"{mode}.p50"))
            entry[mode]["ratio_mean"] = _paired(rounds, base, _ratio(f"{mode}.mean"))
        out[name] = entry
    return out


def _fast_failure(raw: dict[str, Rounds]) -> dict[str, Any]:
    base = raw.get("sdk", [])
    hand = raw.get("handwritten", [])
    out: dict[str, Any] = {}
    for name, rounds in raw.items():
        present = _present(rounds)
        firsts = [r["first_calls_us"] for r in present]
        width = min((len(f) for f in firsts), default=0)
        entry: dict[str, Any] = {
            "rounds": len(present),
            "first_calls_us": [median([f[i] for f in firsts]) for i in range(width)],
            "steady_p50": _med(rounds, "steady.p50"),
            "steady_mean": _med(rounds, "steady.mean"),
            "all_mean": _med(rounds, "all.mean"),
            "calls": _med(rounds, "calls"),
            "seconds": _med(rounds, "seconds"),
            "errors": sum(int(r.get("errors", 0)) for r in present),
            "primary_requests_server": _med(rounds, "primary_requests_server"),
            "primary_requests_server_max": _max(rounds, "primary_requests_server"),
            "primary_attempts_client": _med(rounds, "primary_attempts_client"),
            "primary_attempts_client_max": _max(rounds, "primary_attempts_client"),
            "refused_connects_kernel": _med(rounds, "refused_connects_kernel"),
            "steady_minus_handwritten_us": _paired(
                rounds, hand, _diff("steady.p50", "steady.p50")
            ),
            "steady_minus_sdk_us": _paired(rounds, base, _diff("steady.p50", "steady.p50")),
        }
        if name == "sdk":
            entry["failed_round_trip_p50"] = _med(rounds, "failed_round_trip.p50")
            entry["floor_us"] = median(
                [r["failed_round_trip"]["p50"] + r["steady"]["p50"] for r in present]
            )
        out[name] = entry
    return out


def _hang(raw: dict[str, Rounds]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, rounds in raw.items():
        entry: dict[str, Any] = {"rounds": len(_present(rounds))}
        for mode in ("sync", "async"):
            if not any(_get(r, mode) for r in _present(rounds)):
                continue
            entry[mode] = {
                "calls": _med(rounds, f"{mode}.calls"),
                "paid_timeout_max": _max(rounds, f"{mode}.paid_timeout"),
                "paid_timeout": _med(rounds, f"{mode}.paid_timeout"),
                "p50_us": _med(rounds, f"{mode}.p50"),
                "max_us": _max(rounds, f"{mode}.max"),
                "primary_requests_server": _max(rounds, f"{mode}.primary_requests_server"),
                "over_hedge_delay": _max(rounds, f"{mode}.over_hedge_delay"),
                "errors": _max(rounds, f"{mode}.errors"),
            }
        out[name] = entry
    return out


def _concurrency(raw: dict[str, Rounds]) -> dict[str, Any]:
    base = raw.get("sdk", [])
    out: dict[str, Any] = {}
    for name, rounds in raw.items():
        out[name] = {
            "rounds": len(_present(rounds)),
            "concurrency": _med(rounds, "concurrency"),
            "healthy_rps": _med(rounds, "healthy.rps_steady"),
            "down_rps_first": _med(rounds, "primary_down.rps_first"),
            "down_rps_steady": _med(rounds, "primary_down.rps_steady"),
            "healthy_ratio": _paired(rounds, base, _ratio("healthy.rps_steady")),
            "down_ratio": _paired(rounds, base, _ratio("primary_down.rps_steady")),
            "down_primary_requests": _med(rounds, "primary_down.primary_requests_server"),
            "down_requests": _med(rounds, "primary_down.requests"),
            "errors": sum(
                int(_get(r, "healthy.errors") or 0) + int(_get(r, "primary_down.errors") or 0)
                for r in _present(rounds)
            ),
        }
    return out


def _micro(rounds: Rounds) -> dict[str, Any]:
    out: dict[str, Any] = {"rounds": len(_present(rounds))}
    for where in ("in_memory", "loopback"):
        out[where] = {
            key: _med(rounds, f"{where}.{key}")
            for key in ("skip_open_breaker_us", "router_overhead_us", "router_ratio")
        }
        out[where]["per_call_us"] = {
            v: _med(rounds, f"{where}.per_call_us.{v}") for v in ("sdk", "direct", "skip")
        }
    out["decision_us"] = {
        k: _med(rounds, f"decision_us.{k}") for k in ("direct", "skip", "skip_minus_direct")
    }
    return out


def summarize_all(raw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, data in raw.items():
        if name == "healthy":
            out[name] = _healthy(data)
        elif name.startswith("fast_failure"):
            out[name] = _fast_failure(data)
        elif name == "hang":
            out[name] = _hang(data)
        elif name == "concurrency":
            out[name] = _concurrency(data)
        elif name == "micro":
            out[name] = _micro(data)
        elif name in ("cold_start", "first_failover", "pools", "clouds"):
            out[name] = data
    return out


# --- targets ------------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str = "", digits: int | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if digits is None:
        digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
    return f"{value:,.{digits}f}{unit}"


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"x{value:.3f}"


def _target(tid: str, text: str, measured: str, ok: bool | None) -> dict[str, Any]:
    return {"id": tid, "target": text, "measured_text": measured, "pass": ok}


def _all(values: Sequence[bool | None]) -> bool | None:
    if any(v is None for v in values) or not values:
        return None
    return all(values)


def _seconds(text: Any) -> float:
    value = str(text)
    if value.endswith("ms"):
        return float(value[:-2]) / 1000
    return float(value.rstrip("s"))


def targets(s: dict[str, Any], breaker: dict[str, Any]) -> list[dict[str, Any]]:
    """The SPEC's Performance targets, each with what was measured and pass/fail/n/a."""
    out = []
    fails_to_open = int(breaker["consecutive_failures"])
    open_for = _seconds(breaker["open_for"])

    h = _get(s, "healthy.failover")
    if h:
        sync, asyn = _get(h, "sync.ratio_p50"), _get(h, "async.ratio_p50")
        ok = None if sync is None or asyn is None else max(sync, asyn) <= 1.03
        out.append(_target(
            "healthy_overhead", "A healthy call costs at most 1.03x the bare SDK, sync and async",
            f"p50 sync {_x(sync)}, async {_x(asyn)} (mean sync {_x(_get(h, 'sync.ratio_mean'))}"
            f", async {_x(_get(h, 'async.ratio_mean'))})", ok,
        ))  # fmt: skip
        streams = [_get(h, f"{mode}.ratio_p50") for mode in ("stream", "astream")]
        out.append(_target(
            "healthy_stream", "A healthy stream costs at most 1.05x the bare SDK's stream, "
            "sync and async",
            f"p50 sync {_x(streams[0])}, async {_x(streams[1])}",
            _all([None if r is None else r <= 1.05 for r in streams]),
        ))  # fmt: skip

    m = s.get("micro")
    if m:
        skip = _get(m, "in_memory.skip_open_breaker_us")
        decision = _get(m, "decision_us.skip_minus_direct")
        out.append(_target(
            "open_breaker_skip", "Skipping a provider whose breaker is open costs < 10 µs",
            f"{_fmt(skip, ' µs')} per call (in memory, skip - direct); "
            f"{_fmt(decision, ' µs')} in the routing decision alone",
            None if skip is None else skip < 10,
        ))  # fmt: skip

    verdicts, parts = [], []
    for fault in ("503", "refused"):
        entry = _get(s, f"fast_failure_{fault}.failover:nobreaker")
        extra = None if entry is None else entry.get("steady_minus_handwritten_us")
        if entry is not None:
            verdicts.append(None if extra is None else extra < 100)
            parts.append(f"{fault}: +{_fmt(extra, ' µs')}")
    if parts:
        out.append(_target(
            "fast_failure", "Failover on a fast failure: the failed round trip + < 100 µs",
            "; ".join(parts) + " over the hand-written try/except (primary then backup, "
            "every call)", _all(verdicts),
        ))  # fmt: skip

    verdicts, parts = [], []
    for fault in ("503", "refused"):
        entry = _get(s, f"fast_failure_{fault}.failover")
        if entry is None:
            continue
        seen = (entry["primary_requests_server_max"] if fault == "503"
                else entry["primary_attempts_client_max"])  # fmt: skip
        bound = fails_to_open + math.ceil((entry["seconds"] or 0) / open_for)
        verdicts.append(None if seen is None else seen <= bound)
        parts.append(f"{fault}: {_fmt(seen, digits=0)} requests in {_fmt(entry['calls'], digits=0)}"
                     f" calls (bound {bound})")  # fmt: skip
    if parts:
        out.append(_target(
            "dead_primary_load",
            f"A dead primary costs only the calls that open its breaker "
            f"({fails_to_open}) and its probes (≤ 1 per open_for)",
            "; ".join(parts), _all(verdicts),
        ))  # fmt: skip

    hang = _get(s, "hang.failover")
    if hang:
        paid = [_get(hang, f"{mode}.paid_timeout_max") for mode in ("sync", "async")]
        ok = _all([None if p is None else p <= fails_to_open for p in paid])
        out.append(_target(
            "hang", "A hung primary: only the calls before its breaker opens pay the timeout",
            f"paid the timeout: sync {_fmt(paid[0], digits=0)}, async {_fmt(paid[1], digits=0)} "
            f"(of {_fmt(_get(hang, 'sync.calls'), digits=0)}; breaker opens after "
            f"{fails_to_open})", ok,
        ))  # fmt: skip
    hedge = _get(s, "hang.failover:hedge")
    if hedge:
        overs = [_get(hedge, f"{mode}.over_hedge_delay") for mode in ("sync", "async")]
        slowest = max((_get(hedge, f"{mode}.max_us") or 0) for mode in ("sync", "async"))
        out.append(_target(
            "hedge", "With hedging, no call pays more than the hedge delay",
            f"calls over the hedge delay + 20 ms: sync {_fmt(overs[0], digits=0)}, async "
            f"{_fmt(overs[1], digits=0)}; slowest {_fmt(slowest / 1000, ' ms')}; the hung "
            f"primary still got {_fmt(_get(hedge, 'async.primary_requests_server'), digits=0)}"
            f" of {_fmt(_get(hedge, 'async.calls'), digits=0)} async requests",
            _all([None if o is None else o == 0 for o in overs]),
        ))  # fmt: skip

    conc = _get(s, "concurrency.failover")
    if conc:
        ratio = conc.get("healthy_ratio")
        out.append(_target(
            "concurrency", "1,000 concurrent requests: ≥ 95% of the SDK's throughput",
            f"healthy {_x(ratio)} ({_fmt(conc.get('healthy_rps'), ' req/s')}); primary down "
            f"{_x(conc.get('down_ratio'))}", None if ratio is None else ratio >= 0.95,
        ))  # fmt: skip

    first = _get(s, "first_failover")
    if first and "first_us" in first:
        gaps = [first["first_us"] - first["steady_us"],
                first["first_after_reload_us"] - first["steady_after_reload_us"]]
        out.append(_target(
            "first_failover", "The first failover costs at most 2 ms more than a steady one",
            f"first {_fmt(first['first_us'], ' µs')} vs steady {_fmt(first['steady_us'], ' µs')}"
            f" (+{_fmt(gaps[0], ' µs')}); after a reload that brings a never-used provider: "
            f"+{_fmt(gaps[1], ' µs')}; traffic before the router is ready pays "
            f"{_fmt(first['at_once_us'] / 1000, ' ms')}",
            _all([gap <= 2000 for gap in gaps]),
        ))  # fmt: skip

    cold = _get(s, "cold_start")
    if cold and "import failover" in cold:
        entry = cold["import failover"]
        ms = entry.get("ms")
        loaded = [m for m in entry.get("modules_loaded", ())
                  if m in ("openai", "anthropic", "google.genai")]  # fmt: skip
        ok = None if ms is None else ms < 100 and not loaded
        out.append(_target(
            "import", "`import failover` < 100 ms, no SDK imported",
            f"{_fmt(ms, ' ms')} (SDKs loaded: {', '.join(loaded) or 'none'})", ok,
        ))  # fmt: skip
    if "pools" in s:
        out += pools.targets(s["pools"])
    if "clouds" in s:
        out += clouds.targets(s["clouds"])
    return out


# --- Markdown -----------------------------------------------------------------------------------


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(doc: dict[str, Any]) -> str:
    meta, s = doc["meta"], doc["scenarios"]
    mach = meta["machine"]
    verdict = {True: "✅ pass", False: "❌ fail", None: "n/a"}
    parts = [
        "# Benchmarks",
        "",
        f"Generated by `python -m benchmarks.run` ({meta['mode']} mode) on {meta['started']}; "
        "do not edit by hand. Raw figures: `benchmarks/results.json`.",
        "",
        "## Targets (SPEC, Performance)",
        "",
        _table(["target", "measured", "result"],
               [[t["target"], t["measured_text"], verdict[t["pass"]]]
                for t in doc.get("targets", [])]),
        "",
    ]  # fmt: skip
    if doc.get("errors"):
        parts += ["**Errors during the run**:", ""]
        parts += [f"- {e['scenario']} / {e['contender']} (round {e['round'] + 1}): {e['error']}"
                  for e in doc["errors"]]  # fmt: skip
        parts.append("")
    if meta.get("not_installed"):
        parts += [f"Not installed, so not run: {', '.join(meta['not_installed'])}.", ""]

    parts += _contenders_section()
    if "healthy" in s:
        parts += _healthy_md(s["healthy"], meta)
    for fault in ("503", "refused"):
        if f"fast_failure_{fault}" in s:
            parts += _fast_md(s[f"fast_failure_{fault}"], fault, meta)
    if "hang" in s:
        parts += _hang_md(s["hang"], meta)
    if "concurrency" in s:
        parts += _conc_md(s["concurrency"], meta)
    if "cold_start" in s:
        parts += _cold_md(s["cold_start"])
    if "micro" in s:
        parts += _micro_md(s["micro"])
    if "pools" in s:
        parts += pools.markdown_section(s["pools"])
    if "clouds" in s:
        parts += clouds.markdown_section(s["clouds"])
    cap = doc.get("server_capacity", {})
    parts += [
        "## The loopback server",
        "",
        "Raw asyncio (`asyncio.Protocol`, minimal HTTP/1.1 keep-alive parser), its own process "
        "on 127.0.0.1, ephemeral port. Measured with a raw httpx2 client:",
        "",
        f"- sequential: {_fmt(cap.get('sequential_rps'), ' req/s')} "
        f"({_fmt(cap.get('sequential_us_per_call'), ' µs')} per call, client included)",
        f"- {cap.get('concurrency')} concurrent: {_fmt(cap.get('concurrent_rps'), ' req/s')} "
        "(the httpx2 async pool is the limit here, not the server)",
        f"- server CPU per request: {_fmt(cap.get('server_cpu_us_per_request'), ' µs')}, i.e. "
        f"up to {_fmt(cap.get('server_max_rps_by_cpu'), ' req/s')} on one core: far from being "
        "the bottleneck of an SDK call (~800 µs of client CPU).",
        "",
        "## Method",
        "",
        "- Every contender runs in its own fresh process per scenario and round (no shared "
        "interpreter, imports, heap or pool); the order of contenders rotates each round.",
        "- Providers are paths on the loopback server; the worker warms its clients on a "
        "healthy primary, then takes the primary down (a 503/hang fault, or its port closed "
        "so that connecting is refused), as a real outage would.",
        "- Figures are medians over rounds. Every ratio or difference is taken between "
        "contenders of the same round, then the median of those is reported.",
        "- Timeouts: 200 ms per attempt in the hang scenario, 10 s elsewhere (so that a "
        "queue or a scheduling hiccup is never mistaken for an outage); the router's "
        "breaker opens after "
        "3 consecutive failures, `open_for` 1 s doubling to 4 s; `retry.attempts: 1` for "
        "every contender (SDK `max_retries=0`, LiteLLM `num_retries=0`, LangChain "
        "`max_retries=0`). LiteLLM: `allowed_fails=2`, `cooldown_time=1`.",
        "- The refused primary's load cannot be seen by any server: it is counted from the "
        "client side (the router's `Response.attempts`) and checked against the kernel's "
        "`Tcp AttemptFails` counter.",
        "- The machine is shared; its load average is recorded: "
        f"before {meta.get('load_before')}, after {meta.get('load_after')}.",
        "",
        "## Machine",
        "",
        f"- CPU: {mach['cpu']}, {mach['cores']} cores; {mach['os']}",
        f"- Python {mach['python']} ({mach['implementation']})",
        "- Packages: " + ", ".join(f"{k} {v}" for k, v in mach["versions"].items() if v),
        f"- Run time: {_fmt(meta.get('duration_s'), ' s')}",
        "",
    ]
    return "\n".join(parts)


def _contenders_section() -> list[str]:
    return [
        "## Contenders",
        "",
        "- **sdk**: the bare openai SDK (`max_retries=0`) calling the provider that answers: "
        "the floor.",
        "- **handwritten**: `try: primary except openai.APIError: backup` over two SDK "
        "clients; no memory of failures.",
        "- **failover**: `failover.Router`, providers of type `openai`; `failover:nobreaker` "
        "never opens its breaker (fails over on every call); `failover:hedge` hedges after "
        "20 ms.",
        "- **litellm**: LiteLLM `Router` with `fallbacks`; **langchain**: "
        "`ChatOpenAI(...).with_fallbacks([...])`.",
        "",
    ]


def _healthy_md(h: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    p = meta["params"].get("healthy", {})
    rows = []
    for name, e in h.items():
        row = [name]
        for mode in ("sync", "async"):
            m = e.get(mode, {})
            row += [_fmt(m.get("p50")), _fmt(m.get("mean")), _fmt(m.get("p99")),
                    _x(m.get("ratio_p50"))]  # fmt: skip
        for mode in ("stream", "astream"):
            row.append(_fmt(_get(e, f"{mode}.p50")))
            row.append(_x(_get(e, f"{mode}.ratio_p50")))
        rows.append(row)
    return [
        "## 1. Healthy path",
        "",
        f"{p.get('calls')} sequential calls per mode after {p.get('warmup')} warm-up calls, "
        f"median of {p.get('rounds')} rounds; µs per call; xSDK is the p50 ratio to the bare "
        "SDK in the same round.",
        "",
        _table(["contender", "sync p50", "sync mean", "sync p99", "sync xSDK", "async p50",
                "async mean", "async p99", "async xSDK", "stream p50", "stream xSDK",
                "astream p50", "astream xSDK"], rows),
        "",
    ]  # fmt: skip


def _fast_md(f: dict[str, Any], fault: str, meta: dict[str, Any]) -> list[str]:
    p = meta["params"].get("fast_failure", {})
    rows = []
    for name, e in f.items():
        first = ", ".join(_fmt(v, digits=0) for v in e["first_calls_us"][:6])
        if fault == "503":
            dead = _fmt(e.get("primary_requests_server"), digits=0)
        else:
            dead = (f"{_fmt(e.get('primary_attempts_client'), digits=0)} (kernel "
                    f"{_fmt(e.get('refused_connects_kernel'), digits=0)})")  # fmt: skip
        if name == "sdk":
            dead = "— (calls the backup)"
        rows.append([name, first, _fmt(e["steady_p50"]), _fmt(e["steady_mean"]),
                     _fmt(e.get("steady_minus_handwritten_us")), _fmt(e["calls"], digits=0),
                     dead, str(e["errors"])])  # fmt: skip
    sdk = f.get("sdk", {})
    what = "answers 503" if fault == "503" else "refuses connections (port closed)"
    return [
        f"## 2. Primary {what}",
        "",
        f"After warm-up the primary {what}; then calls run for {p.get('seconds')} s. "
        f"Median of {p.get('rounds')} rounds, µs. The floor is the bare SDK: a failed "
        f"round trip to the primary takes {_fmt(sdk.get('failed_round_trip_p50'), ' µs')}, a "
        f"call to the backup {_fmt(sdk.get('steady_p50'), ' µs')} (sum "
        f"{_fmt(sdk.get('floor_us'), ' µs')}).",
        "",
        _table(["contender", "first calls after the outage", "steady p50", "steady mean",
                "p50 - handwritten", "calls", "requests to the dead primary", "errors"],
               rows),
        "",
    ]  # fmt: skip


def _hang_md(h: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    p = meta["params"].get("hang", {})
    rows = []
    for name, e in h.items():
        for mode in ("sync", "async"):
            m = e.get(mode)
            if not m:
                continue
            rows.append([name, mode, _fmt(m["calls"], digits=0),
                         _fmt(m["paid_timeout_max"], digits=0),
                         _fmt((m["p50_us"] or 0) / 1000, digits=2),
                         _fmt((m["max_us"] or 0) / 1000, digits=1),
                         _fmt(m["primary_requests_server"], digits=0)])  # fmt: skip
    return [
        "## 3. Primary hangs",
        "",
        f"The primary accepts the request and never answers; 200 ms timeout per attempt; "
        f"{p.get('calls')} calls after warm-up; worst of {p.get('rounds')} rounds.",
        "",
        _table(["contender", "mode", "calls", "paid the timeout", "p50 ms", "max ms",
                "requests to the hung primary"], rows),
        "",
    ]  # fmt: skip


def _conc_md(c: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    p = meta["params"].get("concurrency", {})
    rows = [[name, _fmt(e["healthy_rps"]), _x(e["healthy_ratio"]), _fmt(e["down_rps_first"]),
             _fmt(e["down_rps_steady"]), _x(e["down_ratio"]),
             f"{_fmt(e['down_primary_requests'], digits=0)} / "
             f"{_fmt(e['down_requests'], digits=0)}", str(e["errors"])]
            for name, e in c.items()]  # fmt: skip
    return [
        "## 4. Concurrent requests (async)",
        "",
        f"Batches of {p.get('concurrency')} concurrent requests through one client/router "
        f"(`asyncio.gather`), {p.get('batches')} batches per phase after one warm-up batch; "
        f"requests per second, median of {p.get('rounds')} rounds. Then the primary answers "
        "503: the first batch meets a closed breaker (all of it is in flight before any "
        "failure comes back), the next ones a breaker that is open.",
        "",
        _table(["contender", "healthy req/s", "xSDK", "primary down: first batch",
                "steady", "xSDK", "requests to the dead primary / sent", "errors"], rows),
        "",
    ]  # fmt: skip


def _cold_md(c: dict[str, Any]) -> list[str]:
    rows = []
    for name, e in c.items():
        if "error" in e:
            rows.append([name, "error", str(e["error"]), "", ""])
            continue
        rows.append([name, _fmt(e["ms"], " ms"), _fmt(e["process_ms"], " ms"),
                     _fmt(e["rss_mb"], " MB"), ", ".join(e["modules_loaded"]) or "—"])  # fmt: skip
    return [
        "## 5. Cold start",
        "",
        "A fresh interpreter per sample (median; one unmeasured run first so .pyc files "
        "exist). *in-process* times the statements themselves; *process* is the whole "
        "`python -c` including interpreter start-up; peak RSS is `ru_maxrss`.",
        "",
        _table(["what", "in-process", "process", "peak RSS", "heavy modules loaded"], rows),
        "",
    ]


def _micro_md(m: dict[str, Any]) -> list[str]:
    rows = []
    for where in ("in_memory", "loopback"):
        e = m[where]
        per = e["per_call_us"]
        rows.append([where.replace("_", " "), _fmt(per["sdk"]), _fmt(per["direct"]),
                     _fmt(per["skip"]), _fmt(e["router_overhead_us"]),
                     _x(e["router_ratio"]), _fmt(e["skip_open_breaker_us"])])  # fmt: skip
    d = m.get("decision_us") or {}
    return [
        "## 6. Micro",
        "",
        "One process, variants interleaved in blocks, differences taken block by block "
        "(median). *sdk*: the SDK alone; *direct*: router with chain [backup]; *skip*: router "
        "with chain [primary, backup] and the primary forced open. In memory, every "
        "transport answers at once from memory, so only SDK and router work is left.",
        "",
        _table(["where", "sdk µs", "router direct µs", "router skip µs", "router overhead µs",
                "router xSDK", "skip open breaker µs"], rows),
        "",
        f"Routing decision alone (plan the request, take the first breaker permit): "
        f"{_fmt(d.get('direct'), ' µs')} with the primary healthy, "
        f"{_fmt(d.get('skip'), ' µs')} skipping a forced-open primary "
        f"(+{_fmt(d.get('skip_minus_direct'), ' µs')}).",
        "",
    ]
