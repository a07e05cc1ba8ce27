"""Run the benchmark suite: ``python -m benchmarks.run`` (or ``python benchmarks/run.py``).

Starts the loopback fake provider (`benchmarks.server`) in its own process, measures its
capacity, then runs each scenario for each contender, each in a fresh process, round
after round with the contenders' order rotated, and writes ``benchmarks/results.json``
and ``docs/benchmarks.md`` (targets from the SPEC with pass/fail, tables, method,
machine). Figures are medians over rounds; every ratio is taken between contenders of
the same round, then the median of those ratios is reported.

Modes: default (full, ~10 min), ``--quick`` (~3 min), ``--tiny`` (seconds; no figure
means anything, used by the smoke test so the suite cannot rot).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._stats import median
from benchmarks.clouds import MODES as CLOUD_MODES
from benchmarks.clouds import run_clouds
from benchmarks.contenders import CONTENDERS, Setup, available, failover_config
from benchmarks.pools import MODES as POOL_MODES
from benchmarks.pools import run_pools
from benchmarks.server import ServerHandle, measure_capacity

__all__ = ["MODES", "SCENARIOS", "main", "run_suite"]

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("healthy", "fast_failure", "hang", "concurrency", "cold_start", "first_failover",
             "micro", "pools", "clouds")
BREAKER = {"consecutive_failures": 3, "open_for": "1s", "max_open_for": "4s"}

MODES: dict[str, dict[str, dict[str, Any]]] = {
    "full": {
        "healthy": {"rounds": 5, "calls": 2000, "warmup": 200, "stream_calls": 300},
        "fast_failure": {"rounds": 3, "warmup": 100, "seconds": 3.0, "max_calls": 20000,
                         "steady_from": 20, "rt_calls": 1000},
        "hang": {"rounds": 3, "calls": 20, "warmup": 20, "hedge_ms": 20},
        "concurrency": {"rounds": 3, "concurrency": 1000, "batches": 4},
        "cold_start": {"samples": 7},
        "first_failover": {"samples": 7, "steady": 50},
        "micro": {"rounds": 3, "blocks": 20, "per_block": 300, "decisions": 20000},
    },
    "quick": {
        "healthy": {"rounds": 3, "calls": 1000, "warmup": 100, "stream_calls": 100},
        "fast_failure": {"rounds": 2, "warmup": 50, "seconds": 1.5, "max_calls": 10000,
                         "steady_from": 20, "rt_calls": 300},
        "hang": {"rounds": 2, "calls": 12, "warmup": 10, "hedge_ms": 20},
        "concurrency": {"rounds": 2, "concurrency": 1000, "batches": 3},
        "cold_start": {"samples": 3},
        "first_failover": {"samples": 3, "steady": 30},
        "micro": {"rounds": 2, "blocks": 10, "per_block": 200, "decisions": 10000},
    },
    "tiny": {
        "healthy": {"rounds": 1, "calls": 20, "warmup": 5, "stream_calls": 5},
        "fast_failure": {"rounds": 1, "warmup": 5, "seconds": 0.2, "max_calls": 300,
                         "steady_from": 5, "rt_calls": 10},
        "hang": {"rounds": 1, "calls": 5, "warmup": 3, "hedge_ms": 20},
        "concurrency": {"rounds": 1, "concurrency": 50, "batches": 2},
        "cold_start": {"samples": 1},
        "first_failover": {"samples": 1, "steady": 5},
        "micro": {"rounds": 1, "blocks": 2, "per_block": 20, "decisions": 200},
    },
}
for _mode_name, _mode in MODES.items():
    _mode["pools"] = POOL_MODES[_mode_name]
    _mode["clouds"] = CLOUD_MODES[_mode_name]
    for _name in ("healthy", "fast_failure", "hang", "concurrency"):
        # Only the hang scenario is about timeouts; elsewhere a short one would turn a
        # scheduling hiccup (or the queue of a 1,000-wide batch) into a spurious failure.
        _mode[_name].setdefault("timeout_s", 0.2 if _name == "hang" else 10.0)
        _mode[_name].setdefault("breaker", BREAKER)

TINY_CONTENDERS = ("sdk", "handwritten", "failover")

#: contender variants run in a scenario besides the plain contenders.
VARIANTS = {
    "fast_failure": ["failover:nobreaker"],
    "hang": ["failover:hedge"],
}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    # LiteLLM fetches a price map from the network at import unless told otherwise.
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    return env


def _worker(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks._worker", json.dumps(spec)],
            capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"worker timed out after {timeout:g}s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = proc.stderr.strip().splitlines()[-3:]
        return {"ok": False, "error": f"worker exited {proc.returncode}: {' | '.join(tail)}"}
    out: dict[str, Any] = json.loads(lines[-1])
    out["wall_s"] = time.perf_counter() - t0
    if not out.get("ok"):
        tail = proc.stderr.strip().splitlines()[-3:]
        out["error"] = f"{out.get('error')} [{' | '.join(tail)}]"[:800]
    return out


# --- the machine ----------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str | None] = {}
    from importlib import metadata

    for dist in ("failover", "openai", "httpx2", "httpx", "pydantic", "litellm",
                 "langchain-openai", "langchain-core"):  # fmt: skip
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": f"{platform.system()} {platform.release()}",
        "versions": versions,
    }


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


# --- cold start -------------------------------------------------------------------------------

_PROBE = """
import json, resource, sys, time
t0 = time.perf_counter()
{body}
t1 = time.perf_counter()
print(json.dumps({{"ms": (t1 - t0) * 1000,
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "sdks_loaded": [m for m in ("openai", "anthropic", "google.genai", "httpx2", "pydantic",
                                "litellm", "langchain_openai") if m in sys.modules]}}))
"""


def _cold_cases(handle: ServerHandle, contenders: list[str]) -> dict[str, str]:
    setup = Setup(handle.url("cold-p"), handle.url("cold-s"))
    config = json.dumps(failover_config(setup))
    cases = {
        "python (interpreter only)": "pass",
        "import failover": "import failover",
        "failover: import + Router(config)": (
            f"import failover\nr = failover.Router(failover.Config.from_mapping({config}))"
        ),
        "failover: + first call (loads openai)": (
            f"import failover\nr = failover.Router(failover.Config.from_mapping({config}))\n"
            "r.complete('ping')"
        ),
        "openai: import + OpenAI()": (
            "import openai\n"
            f"c = openai.OpenAI(base_url={setup.secondary_url!r}, api_key='none', max_retries=0)"
        ),
    }
    if "litellm" in contenders:
        cases["litellm: import + Router"] = (
            "import litellm\nr = litellm.Router(model_list=[{'model_name': 'p', "
            "'litellm_params': {'model': 'openai/m', 'api_base': 'http://127.0.0.1:9/v1', "
            "'api_key': 'none'}}])"
        )
    if "langchain" in contenders:
        cases["langchain: import + with_fallbacks"] = (
            "from langchain_openai import ChatOpenAI\n"
            "m = ChatOpenAI(model='m', base_url='http://127.0.0.1:9/v1', api_key='none')\n"
            "c = m.with_fallbacks([ChatOpenAI(model='m', base_url='http://127.0.0.1:9/v1', "
            "api_key='none')])"
        )
    return cases


def cold_start(handle: ServerHandle, contenders: list[str], samples: int,
               warm_run: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, body in _cold_cases(handle, contenders).items():
        runs: list[dict[str, Any]] = []
        # One unmeasured run first: it writes the .pyc files a deployed app would have.
        first = 0 if warm_run else 1
        for i in range(first, samples + 1):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", _PROBE.format(body=body)],
                                  capture_output=True, text=True, cwd=ROOT, env=_env(),
                                  timeout=120)  # fmt: skip
            wall = (time.perf_counter() - t0) * 1000
            if proc.returncode != 0 or not proc.stdout.strip():
                out[name] = {"error": proc.stderr.strip().splitlines()[-1:]}
                break
            if i:
                runs.append(dict(json.loads(proc.stdout.strip().splitlines()[-1]),
                                 process_ms=wall))  # fmt: skip
        else:
            out[name] = {
                "samples": len(runs),
                "ms": median([r["ms"] for r in runs]),
                "process_ms": median([r["process_ms"] for r in runs]),
                "rss_mb": median([r["rss_mb"] for r in runs]),
                "modules_loaded": runs[-1]["sdks_loaded"],
            }
        _log(f"[cold_start] {name}: {out[name]}")
    return out


# --- the first failover -----------------------------------------------------------------------

_FIRST = """
import json, socket, time
import failover

def refused_url():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    return f"http://127.0.0.1:{{port}}/v1"

config = {config}
config["providers"]["primary"]["base_url"] = refused_url()

def timed(router):
    t0 = time.perf_counter_ns()
    reply = router.complete("ping")
    assert reply.provider != "primary", reply
    return (time.perf_counter_ns() - t0) / 1000

def steady(router):
    return sorted(timed(router) for _ in range({steady}))[{steady} // 2]

out = {{}}
router = failover.Router(failover.Config.from_mapping(config))
out["at_once_us"] = timed(router)            # traffic before the router is ready
router.close()
router = failover.Router(failover.Config.from_mapping(config))
time.sleep(1.0)                              # a service starting up: built, not warmed
out["first_us"] = timed(router)
out["steady_us"] = steady(router)
third = dict(config["providers"]["secondary"])
third["base_url"] = third["base_url"].replace("/ff-s/", "/ff-t/")
config["providers"]["third"] = third
config["routes"]["default"]["chain"] = ["primary", "third"]
router.reload(failover.Config.from_mapping(config))
time.sleep(1.0)
out["first_after_reload_us"] = timed(router)
out["steady_after_reload_us"] = steady(router)
router.close()
print(json.dumps(out))
"""


def first_failover(handle: ServerHandle, samples: int, steady: int) -> dict[str, Any]:
    """The first failover of a fresh router (and after a reload that brings a provider
    never used before) against the steady one: the primary refuses connections and its
    breaker never opens, so every call fails over."""
    setup = Setup("http://127.0.0.1:9/v1", handle.url("ff-s"), timeout_s=2.0,
                  variant="nobreaker")
    script = _FIRST.format(config=json.dumps(failover_config(setup)), steady=steady)
    runs = []
    for _ in range(samples):
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              cwd=ROOT, env=_env(), timeout=120)  # fmt: skip
        if proc.returncode != 0:
            return {"error": proc.stderr.strip().splitlines()[-1:]}
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    out = {key: median([r[key] for r in runs]) for key in runs[0]}
    out["samples"] = len(runs)
    _log(f"[first_failover] {out}")
    return out


# --- orchestration --------------------------------------------------------------------------


def _contenders_for(scenario: str, selected: list[str]) -> list[str]:
    names = [c for c in selected if c in CONTENDERS]
    if "failover" in names:
        names += VARIANTS.get(scenario, [])
    return names


def _run_rounds(handle: ServerHandle, scenario: str, params: dict[str, Any],
                contenders: list[str], timeout: float, errors: list[dict[str, Any]],
                spec_params: dict[str, Any] | None = None, jobs: int = 1,
                ) -> dict[str, list[Any]]:  # fmt: skip
    """Each contender once per round, order rotated; ``jobs > 1`` only for --tiny."""
    rounds = int(params["rounds"])
    label = scenario + (f"_{spec_params['fault']}" if spec_params and "fault" in spec_params
                        else "")  # fmt: skip
    runs: list[tuple[int, str, dict[str, Any]]] = []
    for r in range(rounds):
        order = contenders[r % len(contenders):] + contenders[: r % len(contenders)]
        for contender in order:
            tag = f"{label}-{contender.replace(':', '_')}-r{r}"
            spec = {"scenario": scenario, "contender": contender, "port": handle.port,
                    "tag": tag, "params": dict(params, **(spec_params or {}))}  # fmt: skip
            runs.append((r, contender, spec))

    def one(run: tuple[int, str, dict[str, Any]]) -> dict[str, Any]:
        r, contender, spec = run
        out = _worker(spec, timeout)
        status = f"{out['wall_s']:.1f}s" if out.get("ok") else f"ERROR {out.get('error')}"
        _log(f"[{label} {r + 1}/{rounds}] {contender}: {status}")
        return out

    if jobs > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(jobs) as pool:
            outs = list(pool.map(one, runs))
    else:
        outs = [one(run) for run in runs]
    results: dict[str, list[Any]] = {c: [None] * rounds for c in contenders}
    for (r, contender, _), out in zip(runs, outs, strict=True):
        if out.get("ok"):
            results[contender][r] = out["result"]
        else:
            errors.append({"scenario": label, "contender": contender, "round": r,
                           "error": out.get("error")})  # fmt: skip
    return results


def run_suite(mode: str = "full", contenders: list[str] | None = None,
              scenarios: list[str] | None = None, jobs: int = 1) -> dict[str, Any]:  # fmt: skip
    """Run the selected scenarios; return the results document (also what is written)."""
    plan = MODES[mode]
    wanted = contenders or list(TINY_CONTENDERS if mode == "tiny" else CONTENDERS)
    chosen = [c for c in wanted if available(c)]
    missing = [c for c in wanted if not available(c)]
    scenarios = scenarios or list(SCENARIOS)
    timeout = 120.0 if mode == "tiny" else 900.0
    started = time.time()
    doc: dict[str, Any] = {
        "meta": {
            "mode": mode,
            "started": _dt.datetime.fromtimestamp(started, _dt.timezone.utc).isoformat(),
            "contenders": chosen,
            "not_installed": missing,
            "scenarios": scenarios,
            "params": {s: plan[s] for s in scenarios},
            "machine": machine_info(),
            "load_before": _load(),
        },
        "errors": [],
        "scenarios": {},
    }
    errors: list[dict[str, Any]] = doc["errors"]
    with ServerHandle.start() as handle:
        small = mode == "tiny"
        doc["server_capacity"] = measure_capacity(
            handle, sequential=100 if small else 2000, concurrent=200 if small else 5000
        )
        _log(f"[server] capacity: {json.dumps(doc['server_capacity'])}")
        raw: dict[str, Any] = {}
        for scenario in scenarios:
            params = plan[scenario]
            if scenario == "cold_start":
                raw["cold_start"] = cold_start(handle, chosen, int(params["samples"]),
                                               warm_run=mode != "tiny")
            elif scenario == "first_failover":
                if "failover" in chosen:
                    raw["first_failover"] = first_failover(handle, int(params["samples"]),
                                                           int(params["steady"]))
            elif scenario == "micro":
                if "failover" in chosen:
                    raw["micro"] = _run_rounds(handle, "micro", params, ["micro"], timeout,
                                               errors, jobs=jobs)["micro"]  # fmt: skip
            elif scenario == "clouds":
                if "failover" in chosen:
                    raw["clouds"] = run_clouds(mode)
            elif scenario == "pools":
                if "failover" in chosen:
                    raw["pools"] = run_pools(handle, mode, [c for c in ("failover", "litellm")
                                                            if c in chosen])
            elif scenario == "fast_failure":
                for fault in ("503", "refused"):
                    raw[f"fast_failure_{fault}"] = _run_rounds(
                        handle, scenario, params, _contenders_for(scenario, chosen), timeout,
                        errors, {"fault": fault}, jobs=jobs,
                    )
            else:
                raw[scenario] = _run_rounds(handle, scenario, params,
                                            _contenders_for(scenario, chosen), timeout, errors,
                                            jobs=jobs)  # fmt: skip
    doc["raw"] = raw
    from benchmarks._report import summarize_all, targets

    doc["scenarios"] = summarize_all(raw)
    doc["targets"] = targets(doc["scenarios"], BREAKER)
    doc["meta"]["load_after"] = _load()
    doc["meta"]["duration_s"] = time.time() - started
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="failover benchmarks against a loopback OpenAI-compatible server",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer rounds and calls (~3 min)")
    size.add_argument("--tiny", action="store_true", help="seconds; for the smoke test")
    parser.add_argument("--contenders", default="",
                        help=f"comma list of {', '.join(CONTENDERS)} (default: all installed; "
                        f"--tiny: {', '.join(TINY_CONTENDERS)})")  # fmt: skip
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma list of {', '.join(SCENARIOS)}")  # fmt: skip
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results.json")
    parser.add_argument("--markdown", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes at once (only sensible with --tiny)")
    parser.add_argument("--no-write", action="store_true", help="print the JSON only")
    args = parser.parse_args(argv)

    contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [c for c in contenders if c not in CONTENDERS] + [
        s for s in scenarios if s not in SCENARIOS
    ]
    if unknown:
        parser.error(f"unknown contender or scenario: {', '.join(unknown)}")
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    doc = run_suite(mode, contenders or None, scenarios, jobs=max(args.jobs, 1))

    from benchmarks._report import markdown

    text = json.dumps(doc, indent=1, default=str)
    if args.no_write:
        print(text)
    else:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(text + "\n")
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(doc))
        _log(f"wrote {args.results} and {args.markdown}")
    for target in doc["targets"]:
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[target["pass"]]
        _log(f"{verdict:4}  {target['target']}: {target['measured_text']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
