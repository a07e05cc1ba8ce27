"""``failover health CONFIG``: probe each provider, then show the router's health table."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ._common import add_config_argument, load, positive_seconds
from ._output import Style, fmt_ms, table

if TYPE_CHECKING:
    import argparse

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "health",
        help="probe each provider and show breaker state, success rate and latency",
        description="Send one tiny request to each provider of CONFIG, then print the "
        "router's health table (breaker state, success rate, latency). Exits 1 if a "
        "provider is unhealthy.",
    )
    add_config_argument(p)
    p.add_argument("--timeout", type=positive_seconds, default=20.0, metavar="SECONDS",
                   help="deadline of each probe (default 20)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def run(args: argparse.Namespace) -> int:
    from ._probe import run_probes

    style = Style()
    config = load(args.config)
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
                "last_error": getattr(h, "last_error", None),
                "probe": by_name[name].as_dict(),
            }
        print(json.dumps(out, indent=2))
        return 1 if unhealthy else 0

    rows = []
    for name in config.providers:
        h = health.get(name)
        probe = by_name[name]
        state = str(getattr(h, "state", "?"))
        coloured = (style.green(state) if state in ("closed", "forced_closed")
                    else style.yellow(state) if state == "half_open" else style.red(state))
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
    return 0
