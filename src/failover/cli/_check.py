"""``failover check CONFIG [--probe]``: validate the file; optionally probe every provider."""

from __future__ import annotations

import importlib.util
import json
from typing import TYPE_CHECKING

from failover import ConfigError
from failover._config import env_problems
from failover._secrets import mask_url

from ._common import (
    add_config_argument,
    describe_fallback,
    load,
    plaintext_key,
    positive_seconds,
    type_label,
)
from ._output import Style, fmt_duration, fmt_ms, table

if TYPE_CHECKING:
    import argparse

    from failover import Config

    from ._probe import ProbeResult

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "check",
        help="validate a config file (and probe each provider with --probe)",
        description="Validate CONFIG and print every problem with its path. With --probe, "
        "send one tiny request to each provider and report reachability, auth, the "
        "model that served and the latency.",
    )
    add_config_argument(p)
    p.add_argument("--probe", action="store_true", help="send one tiny request to each provider")
    p.add_argument("--provider", action="append", metavar="NAME",
                   help="probe only this provider (repeatable)")
    p.add_argument("--timeout", type=positive_seconds, default=20.0, metavar="SECONDS",
                   help="deadline of each probe (default 20)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def warnings_for(config: Config) -> list[str]:
    """Things that are valid but worth fixing before they bite."""
    out: list[str] = []
    for name, provider in config.providers.items():
        if plaintext_key(provider):
            out.append(f"providers.{name}: API key written in plain text; "
                       f"read it from the environment with ${{VAR}}")
    out.extend(f"{problem} here (that provider fails over like a revoked key until it is)"
               if problem.startswith("providers.") else f"{problem} here"
               for problem in env_problems(config))
    used = {p for route in config.routes.values() for p in route.providers}
    out.extend(f"providers.{name}: not used by any route" for name in config.providers
               if name not in used)
    return out


def errors_for(config: Config) -> list[str]:
    """What would stop the config from running as written: a python fallback or
    ``on_replay`` that cannot be imported, a deferred store that cannot be written."""
    from failover._fallback import DeferredStore, StoreError, load_callable

    out: list[str] = []
    for name, route in config.routes.items():
        for key in ("python", "on_replay"):
            ref = getattr(route.fallback, key)
            if ref:
                try:
                    load_callable(ref, f"routes.{name}.fallback.{key}")
                except ConfigError as exc:
                    out.extend(exc.problems)
    # Variables the router itself needs at start (a provider's key only fails over).
    out.extend(p for p in env_problems(config) if not p.startswith("providers."))
    needs = {"redis": config.state.backend == "redis",
             "opentelemetry": config.telemetry.opentelemetry is True}
    extras = {"redis": "redis", "opentelemetry": "opentelemetry-api"}
    for module, needed in needs.items():
        if needed and importlib.util.find_spec(module) is None:
            out.append(f"{'state.backend' if module == 'redis' else 'telemetry.opentelemetry'}:"
                       f" needs the {module} package (pip install {extras[module]})")
    if any(route.fallback.defer for route in config.routes.values()):
        try:
            DeferredStore(config.deferred_path(),
                          lock_timeout=config.deferred.lock_timeout).check()
        except StoreError as exc:
            out.append(f"deferred.path: {exc}; deferring requests would fail")
    return out


def summary(config: Config, path: str, style: Style) -> str:
    lines = [f"{style.ok_mark} {style.bold(path)} is valid: {len(config.providers)} providers, "
             f"{len(config.routes)} routes"]
    rows = []
    for name, route in config.routes.items():
        chain = f" {style.arrow} ".join(route.labels)
        deadline = fmt_duration(route.deadline) if route.deadline is not None else "none"
        rows.append([name, chain, describe_fallback(route), route.fallback.runbook or "-",
                     deadline])
    lines.append("")
    lines.append(table(["route", "chain", "fallback", "runbook", "deadline"], rows,
                       style=style, indent="  ", align="llllr"))
    rows = [
        [name, type_label(p), p.model or "-", mask_url(p.base_url) or "(default)"]
        for name, p in config.providers.items()
    ]
    lines.append("")
    lines.append(table(["provider", "type", "model", "base url"], rows, style=style, indent="  "))
    objectives = config.objectives
    webhook = config.notify.webhook
    lines.append("")
    lines.append(f"  objectives: RTO {fmt_duration(objectives.rto)}, RPO {objectives.rpo} "
                 f"lost request(s)")
    lines.append("  notify: " + (f"webhook on {', '.join(webhook.events)}" if webhook
                                 else "no webhook (events go to the 'failover' logger)"))
    return "\n".join(lines)


def probe_table(results: list[ProbeResult], style: Style) -> str:
    def yes_no(value: bool | None) -> str:
        if value is None:
            return style.dim("?")
        return style.green("yes") if value else style.red("no")

    rows = []
    for r in results:
        outcome = style.green("ok") if r.ok else style.red(
            f"{r.error_kind}" + (f" (HTTP {r.status})" if r.status else ""))
        rows.append([
            r.provider, r.type, r.model or "-", yes_no(r.reachable), yes_no(r.authenticated),
            r.served_model or "-", fmt_ms(r.latency_s), outcome,
        ])
    text = table(
        ["provider", "type", "model", "reachable", "auth", "served model", "latency", "result"],
        rows, style=style, align="llllllrl",
    )
    details = [f"  {r.provider}: {r.message}" for r in results if not r.ok and r.message]
    if details:
        text += "\n\n" + "\n".join(details)
    return text


def run(args: argparse.Namespace) -> int:
    style = Style()
    config = load(args.config)
    warnings = warnings_for(config)
    errors = errors_for(config)
    if errors:
        if args.json:
            print(json.dumps({"valid": False, "config": args.config, "errors": errors,
                              "warnings": warnings}, indent=2))
        else:
            print(style.red("error:") + f" {args.config} cannot run as written:")
            for e in errors:
                print(f"  {e}")
        return 1
    if not args.probe:
        if args.json:
            print(json.dumps({"valid": True, "config": args.config,
                              "providers": list(config.providers),
                              "routes": {n: r.labels for n, r in config.routes.items()},
                              "warnings": warnings}, indent=2))
            return 0
        print(summary(config, args.config, style))
        if warnings:
            print()
            print(style.yellow("warnings:"))
            for w in warnings:
                print(f"  {w}")
        return 0

    from ._probe import run_probes

    names = args.provider or list(config.providers)
    unknown = [n for n in names if n not in config.providers]
    if unknown:
        print(style.red("error:") + f" unknown provider(s): {', '.join(unknown)} "
              f"(known: {', '.join(config.providers)})")
        return 2
    if not args.json:
        print(f"probing {len(names)} provider(s) from {args.config} ...", flush=True)
    results, router = run_probes(config, providers=names, timeout=args.timeout)
    router.close()
    failed = [r for r in results if not r.ok]
    if args.json:
        print(json.dumps({"valid": True, "config": args.config, "ok": not failed,
                          "probes": [r.as_dict() for r in results], "warnings": warnings},
                         indent=2))
        return 1 if failed else 0
    print()
    print(probe_table(results, style))
    print()
    if failed:
        print(f"{style.fail_mark} {len(failed)} of {len(results)} provider(s) failed: "
              + ", ".join(f"{r.provider} ({r.error_kind})" for r in failed))
        return 1
    print(f"{style.ok_mark} all {len(results)} provider(s) answered")
    return 0
