"""``failover health CONFIG``: probe each provider, then show the router's health table."""

from __future__ import annotations

import datetime
import json
from typing import TYPE_CHECKING, Any

from ._common import add_config_argument, load, positive_seconds
from ._output import Style, fmt_duration, fmt_ms, table
from ._override import no_shared_state

if TYPE_CHECKING:
    import argparse

    from failover import Config

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "health",
        help="probe each provider and show breaker state, success rate and latency",
        description="With shared state (state.backend: redis): the breakers the running "
        "workers share (state, open until), no request sent (--probe adds one each). "
        "Without: send one tiny request to each provider of CONFIG, then print this "
        "process's health table. Exits 1 if a provider is unhealthy.",
    )
    add_config_argument(p)
    p.add_argument("--timeout", type=positive_seconds, default=20.0, metavar="SECONDS",
                   help="deadline of each probe (default 20)")
    p.add_argument("--probe", action="store_true",
                   help="with shared state: also probe each provider from here")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _until(seconds_left: float | None) -> tuple[str | None, str]:
    """An open period's end as people read it: the wall-clock time, and "in 12 s"."""
    if seconds_left is None:
        return None, "-"
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
        seconds=seconds_left)
    return (when.isoformat(timespec="seconds"),
            f"{when.strftime('%H:%M:%S')} UTC (in {fmt_duration(seconds_left)})")


def run_fleet(args: argparse.Namespace, config: Config) -> int:
    """The breakers every worker shares, read from Redis by joining as a silent worker."""
    from failover import Router

    style = Style()
    with Router(config) as router:
        health = router.health()
    down = [n for n, h in health.items() if h.state in ("open", "forced_open")]
    if args.json:
        print(json.dumps({"config": args.config, "shared": True, "ok": not down,
                          "providers": {n: {"state": h.state,
                                            "open_until": _until(h.open_for_s)[0],
                                            "open_for_s": h.open_for_s,
                                            "consecutive_failures": h.consecutive_failures}
                                        for n, h in health.items()}}, indent=2))
        return 1 if down else 0
    rows = [[name, config.providers[name].type, _coloured(h.state, style),
             _until(h.open_for_s)[1], str(h.consecutive_failures)]
            for name, h in health.items()]
    print(f"shared breakers (prefix {config.state.prefix!r}): what every worker sees")
    print(table(["provider", "type", "state", "open until", "failures in a row"], rows,
                style=style, align="lllll"))
    print()
    if down:
        print(f"{style.fail_mark} {len(down)} provider(s) skipped by every worker: "
              f"{', '.join(down)}")
        return 1
    print(f"{style.ok_mark} no provider is skipped")
    return 0


def _coloured(state: str, style: Style) -> str:
    return (style.green(state) if state in ("closed", "forced_closed")
            else style.yellow(state) if state == "half_open" else style.red(state))


def run(args: argparse.Namespace) -> int:
    from ._probe import run_probes

    style = Style()
    config = load(args.config)
    if config.state.backend == "redis" and not args.probe:
        return run_fleet(args, config)
    results, router = run_probes(config, timeout=args.timeout)
    try:
        health = router.health()
    finally:
        router.close()
    by_name = {r.provider: r for r in results}
    unhealthy = [r.provider for r in results if not r.ok]

    if args.json:
        out: dict[str, Any] = {"config": args.config, "ok": not unhealthy, "providers": {}}
        for name in config.providers:
            h = health.get(name)
            out["providers"][name] = {
                "state": getattr(h, "state", None),
                "success_rate": getattr(h, "success_rate", None),
                "latency_p50_s": getattr(h, "latency_p50_s", None),
                "latency_p95_s": getattr(h, "latency_p95_s", None),
                "consecutive_failures": getattr(h, "consecutive_failures", None),
                "open_until": _until(getattr(h, "open_for_s", None))[0],
                "last_error": getattr(h, "last_error", None),
                "probe": by_name[name].as_dict(),
            }
        print(json.dumps(out, indent=2))
        return 1 if unhealthy else 0

    rows = []
    for name in config.providers:
        h = health.get(name)
        probe = by_name[name]
        coloured = _coloured(str(getattr(h, "state", "?")), style)
        probe_cell = style.green("ok") if probe.ok else style.red(probe.error_kind or "failed")
        rows.append([
            name, config.providers[name].type, coloured,
            _pct(getattr(h, "success_rate", None)),
            fmt_ms(getattr(h, "latency_p50_s", None)),
            fmt_ms(getattr(h, "latency_p95_s", None)),
            str(getattr(h, "consecutive_failures", "-")),
            probe_cell,
        ])
    print(table(["provider", "type", "state", "success", "p50", "p95", "failures in a row",
                 "probe"], rows, style=style, align="lllrrrrl"))
    details = [f"  {r.provider}: {r.error_kind}"
               + (f" (HTTP {r.status})" if r.status else "") + (f": {r.message}" if r.message
                                                                else "")
               for r in results if not r.ok]
    print()
    if unhealthy:
        print("\n".join(details))
        print()
        print(f"{style.fail_mark} {len(unhealthy)} of {len(results)} provider(s) unhealthy: "
              f"{', '.join(unhealthy)}")
        return 1
    print(f"{style.ok_mark} all {len(results)} provider(s) healthy")
    if config.state.backend != "redis":
        print(style.dim(f"  (this process's breakers; {no_shared_state('health')})"))
    return 0
