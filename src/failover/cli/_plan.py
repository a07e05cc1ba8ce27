"""``failover plan CONFIG``: the disaster-recovery plan as Markdown.

Per route: the chain, the manual fallback, the runbook, the objectives and deadline, the
maturity level reached and the gaps that keep it from the next one. Levels (SPEC):

1. a documented manual fallback for the route (a runbook, a Python fallback or defer);
2. level 1 plus automated failover to at least one backup provider;
3. level 2 plus detection and notification (``notify.webhook``).

Drills are read from ``.failover/drills.json`` beside the config (written by
``failover drill CONFIG``): a plan that was never tested is a hope, so an undrilled or
failing route says so.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from failover._secrets import mask_url

from ._common import (
    add_config_argument,
    describe_fallback,
    env_refs,
    load,
    plaintext_key,
    record_path,
    writable_file,
)
from ._output import fmt_duration

if TYPE_CHECKING:
    import argparse

    from failover import Config

__all__ = ["RouteAssessment", "add_parser", "assess", "build_plan", "load_drills", "run"]

LEVELS = {
    0: "no documented manual fallback",
    1: "documented manual fallback",
    2: "automated failover to a backup provider",
    3: "automated detection, failover and notification",
}
#: Events that tell people a route is in trouble; a webhook without them stays silent.
ALERT_EVENTS = ("breaker_opened", "all_providers_failed", "deferred")
STALE_DRILL_DAYS = 90


@dataclass
class RouteAssessment:
    route: str
    level: int
    #: Per level not reached: what is missing for it (empty at level 3).
    blocking: dict[int, list[str]] = field(default_factory=dict)
    #: Gaps that do not change the level but weaken the plan.
    advisory: list[str] = field(default_factory=list)


def load_drills(config_path: str | Path) -> list[dict[str, Any]]:
    """Recorded drills, oldest first; an unreadable record counts as none."""
    path = record_path(config_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    drills = data.get("drills") if isinstance(data, dict) else None
    if not isinstance(drills, list):
        return []
    # Several configs may live in one directory and share the record file.
    name = Path(config_path).name
    return [d for d in drills if isinstance(d, dict) and d.get("config_file") == name]


def _route_drill(drills: list[dict[str, Any]], route: str) -> tuple[dict[str, Any] | None,
                                                                  list[dict[str, Any]]]:
    """The last drill that exercised ``route`` and that route's scenario results in it."""
    for drill in reversed(drills):
        rows = [s for s in drill.get("scenarios", []) if s.get("route") == route]
        if rows:
            return drill, rows
    return None, []


def _runbook_missing(runbook: str, base: Path) -> bool:
    if "://" in runbook:
        return False
    return not (base / runbook).exists()


def _unimportable(ref: str | None, where: str) -> str | None:
    """Why ``ref`` cannot be imported, or None (a fallback that cannot run is no fallback)."""
    if not ref:
        return None
    from failover import ConfigError
    from failover._fallback import load_callable

    try:
        load_callable(ref, where)
    except ConfigError as exc:
        return "; ".join(exc.problems)
    return None


def assess(
    config: Config, route_name: str, *, drills: list[dict[str, Any]] | None = None,
    base: Path | None = None, now: datetime.datetime | None = None,
) -> RouteAssessment:
    route = config.routes[route_name]
    fb = route.fallback
    webhook = config.notify.webhook
    out = RouteAssessment(route_name, 0)

    broken = _unimportable(fb.python, f"routes.{route_name}.fallback.python")
    has_fallback = bool(fb.runbook or (fb.python and not broken) or fb.defer)
    usable = [p for p in route.chain if config.providers[p].force != "open"]
    has_backup = len(usable) >= 2
    alerts = [e for e in (webhook.events if webhook else []) if e in ALERT_EVENTS]

    gaps: dict[int, list[str]] = {1: [], 2: [], 3: []}
    if broken:
        # The only manual fallback, broken: no level 1. Beside a runbook or defer: fix it.
        (out.advisory if has_fallback else gaps[1]).append(
            f"the python fallback cannot run: {broken}")
    if not has_fallback:
        gaps[1].append("no manual fallback: add `fallback.runbook` (the documented "
                       "procedure), `fallback.python` or `fallback.defer: true`")
    if not has_backup:
        forced = [p for p in route.chain if p not in usable]
        why = f" ({', '.join(forced)} forced open)" if forced else ""
        only = f"only `{usable[0]}`" if usable else "no usable provider"
        gaps[2].append(f"no backup provider: the chain has {only}{why}; add a second "
                       f"provider to `routes.{route_name}.chain`")
    if webhook is None:
        gaps[3].append("no notification: set `notify.webhook` so people learn of an "
                       "outage from the tool, not from users")
    elif not alerts:
        gaps[3].append("the webhook sends none of " + ", ".join(f"`{e}`" for e in ALERT_EVENTS))
    for level in (1, 2, 3):
        if gaps[level]:
            break
        out.level = level
    out.blocking = {level: g for level, g in gaps.items() if g and level > out.level}

    if not fb.runbook:
        out.advisory.append("no runbook: `fallback.runbook` should point to the manual "
                            "procedure, quoted in alerts and in this plan")
    elif base is not None and _runbook_missing(fb.runbook, base):
        out.advisory.append(f"runbook `{fb.runbook}` not found next to the config")
    if not fb.python and not fb.defer:
        out.advisory.append("requests are lost when every provider is down: add "
                            "`fallback.defer: true` (kept for replay) or `fallback.python`")
    for name in route.chain:
        provider = config.providers[name]
        if plaintext_key(provider):
            out.advisory.append(f"provider `{name}` has its API key in plain text in the "
                                f"file: use `${{VAR}}`")
    if has_backup:
        vendors = {(config.providers[p].type, config.providers[p].base_url) for p in usable}
        if len(vendors) == 1:
            out.advisory.append("every provider in the chain is the same vendor and endpoint: "
                                "one outage takes them all down")

    drill, rows = _route_drill(drills or [], route_name)
    if drill is None:
        out.advisory.append(f"never drilled: run `failover drill CONFIG` to time the "
                            f"recovery of `{route_name}`")
    else:
        failing = [r.get("scenario", "?") for r in rows if not r.get("met", False)]
        if failing:
            out.advisory.append("the last drill missed its objectives in: "
                                + ", ".join(f"`{s}`" for s in failing))
        when = _parse_time(drill.get("time"))
        if when is not None:
            now = now or datetime.datetime.now(datetime.timezone.utc)
            age = (now - when).days
            if age > STALE_DRILL_DAYS:
                out.advisory.append(f"the last drill is {age} days old")
    return out


def _parse_time(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _key_source(config: Config, name: str) -> str:
    provider = config.providers[name]
    if not provider.key_refs():
        return "none"
    if plaintext_key(provider):
        return "**plain text in the file**"
    return ", ".join(f"`${{{v}}}`" for v in env_refs(provider)) or "environment"


def _drill_cell(drills: list[dict[str, Any]], route: str) -> str:
    drill, rows = _route_drill(drills, route)
    if drill is None:
        return "never"
    day = str(drill.get("time", "?"))[:10]
    verdict = "passed" if all(r.get("met") for r in rows) else "**failed**"
    return f"{day} {verdict}"


def build_plan(
    config: Config, config_path: str, *, drills: list[dict[str, Any]] | None = None,
    now: datetime.datetime | None = None,
) -> str:
    from failover import __version__

    drills = drills or []
    now = now or datetime.datetime.now(datetime.timezone.utc)
    base = Path(config_path).resolve().parent
    assessments = {name: assess(config, name, drills=drills, base=base, now=now)
                   for name in config.routes}
    obj = config.objectives
    webhook = config.notify.webhook
    out: list[str] = []
    add = out.append

    add("# Disaster-recovery plan")
    add("")
    add(f"Config `{config_path}`, generated {now.strftime('%Y-%m-%d %H:%M UTC')} by "
        f"failover {__version__}.")
    add("")
    add("## Summary")
    add("")
    add("| Route | Level | Chain (priority order) | Manual fallback | Runbook | Last drill |")
    add("|---|---|---|---|---|---|")
    for name, route in config.routes.items():
        a = assessments[name]
        add(f"| `{name}` | {a.level} of 3 | {' → '.join(route.chain)} | "
            f"{_md(describe_fallback(route))} | {_md(route.fallback.runbook or 'none')} | "
            f"{_drill_cell(drills, name)} |")
    add("")
    add(f"- **Objectives**: recovery time (RTO) {fmt_duration(obj.rto)}; recovery point "
        f"(RPO) {obj.rpo} lost request(s).")
    if webhook is not None:
        add(f"- **Notification**: webhook ({webhook.format}) on "
            + ", ".join(f"`{e}`" for e in webhook.events)
            + f"; the same alert at most once per {fmt_duration(webhook.min_interval)}.")
    else:
        add("- **Notification**: none configured; events go to the `failover` logger only.")
    add(f"- **Deferred requests** are stored in `{config.deferred.path}`; list them with "
        f"`failover deferred list {config_path}` and replay them with "
        f"`failover deferred replay {config_path}`.")
    add("")
    add("Maturity levels: " + "; ".join(f"**{n}**: {d}" for n, d in LEVELS.items() if n) + ".")

    for name, route in config.routes.items():
        a = assessments[name]
        add("")
        add(f"## Route `{name}`: level {a.level} of 3")
        add("")
        add(f"*{LEVELS[a.level].capitalize()}.*")
        add("")
        add("| # | Provider | Type | Model | Endpoint | Key | Timeout |")
        add("|---|---|---|---|---|---|---|")
        for i, pname in enumerate(route.chain, 1):
            p = config.providers[pname]
            forced = f" (forced {p.force})" if p.force else ""
            add(f"| {i} | `{pname}`{forced} | {p.type} | {_md(p.model or '-')} | "
                f"{_md(mask_url(p.base_url) or 'default')} | {_key_source(config, pname)} | "
                f"{fmt_duration(config.timeouts_for(pname).request)} |")
        add("")
        fb = route.fallback
        deadline = fmt_duration(route.deadline) if route.deadline is not None else "none"
        add(f"- Deadline: {deadline} per request; stream interruptions: "
            f"{route.stream_interrupt}.")
        add("- When every provider fails: "
            + (f"the Python fallback `{fb.python}` answers" if fb.python else "")
            + (" and " if fb.python and fb.defer else "")
            + ("the request is stored for replay (`Deferred` with a ticket)" if fb.defer else "")
            + ("" if fb.python or fb.defer else "**the request fails and is lost**")
            + ".")
        add(f"- Runbook: {f'[{fb.runbook}]({fb.runbook})' if fb.runbook else '**none**'}.")
        if route.hedge is not None:
            add(f"- Hedging: after {route.hedge.after if isinstance(route.hedge.after, str) else fmt_duration(route.hedge.after)}.")  # noqa: E501
        for level, gaps in a.blocking.items():
            add("")
            add(f"To reach level {level}:")
            add("")
            out.extend(f"- {g}" for g in gaps)
        if a.advisory:
            add("")
            add("Other gaps:")
            add("")
            out.extend(f"- {g}" for g in a.advisory)

    add("")
    add("## When every provider is down")
    add("")
    add(f"1. `failover health {config_path}`: which providers fail and how (error kind, "
        "breaker state).")
    add("2. Follow the route's runbook above; routes with a Python fallback keep answering, "
        "routes with defer keep every request.")
    add(f"3. After recovery: `failover deferred replay {config_path}` sends the kept requests.")
    add(f"4. Afterwards: `failover drill {config_path}` to check the plan still holds.")

    add("")
    add("## Drills")
    add("")
    if not drills:
        add(f"Never drilled. Run `failover drill {config_path}`: it simulates each disaster "
            "scenario, times the recovery and records the result for this plan.")
    else:
        last = drills[-1]
        verdict = "passed" if last.get("passed") else "**failed**"
        clock = ", simulated time" if last.get("simulated_time") else ""
        add(f"Last drill {last.get('time', '?')}{clock}: {verdict} "
            f"({len(drills)} drill(s) recorded in `.failover/drills.json`).")
        add("")
        add("| Route | Scenario | Detect | Recover | Sent | Deferred | Failed | Lost | Met |")
        add("|---|---|---|---|---|---|---|---|---|")
        for s in last.get("scenarios", []):
            # Drills recorded before the measures were defined call recovery ``rto_s``.
            recover = s.get("recover_s", s.get("rto_s"))
            add(f"| `{s.get('route')}` | {s.get('title', s.get('scenario'))} | "
                f"{fmt_duration(s.get('detect_s'))} | "
                f"{fmt_duration(recover) if recover is not None else 'never'} | "
                f"{s.get('sent', '-')} | {s.get('deferred', '-')} | {s.get('failed', '-')} | "
                f"{s.get('lost', '-')} | {'yes' if s.get('met') else '**no**'} |")
    return "\n".join(out) + "\n"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "plan",
        help="write the disaster-recovery plan (Markdown)",
        description="Write the DR plan for CONFIG as Markdown: each route's chain, fallback, "
        "runbook, objectives, the maturity level reached and the gaps.",
    )
    add_config_argument(p)
    p.add_argument("-o", "--output", metavar="FILE", type=writable_file,
                   help="write to FILE instead of stdout")
    p.add_argument("--min-level", type=int, choices=(1, 2, 3), metavar="N",
                   help="exit 1 if any route is below level N (for CI)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load(args.config)
    drills = load_drills(args.config)
    text = build_plan(config, args.config, drills=drills)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)  # below cwd only
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        print(text, end="")
    if args.min_level is not None:
        low = [n for n in config.routes
               if assess(config, n, drills=drills).level < args.min_level]
        if low:
            import sys

            print(f"route(s) below level {args.min_level}: {', '.join(low)}", file=sys.stderr)
            return 1
    return 0
