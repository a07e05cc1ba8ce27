"""``failover plan CONFIG``: the disaster-recovery plan as Markdown.

Per route: the chain, the manual fallback, the runbook, the objectives and deadline, the
maturity level reached and the gaps that keep it from the next one. Levels (SPEC):

1. a documented manual fallback for the route (a runbook, a Python fallback or defer);
2. level 1 plus automated failover to at least one backup provider;
3. level 2 plus detection and notification (``notify.webhook``).

Drills are read from the config's drill history (``drills.history``, appended by
``failover drill CONFIG``): a plan that was never tested is a hope, so each route lists
its gaps: scenarios never drilled or overdue (``objectives.drill_every``), a runbook
unreviewed (``objectives.review_every``, its front matter's ``last_reviewed``) or with
fewer than two ``owners``, no manual fallback.
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
    type_label,
    writable_file,
)
from ._output import fmt_duration

if TYPE_CHECKING:
    import argparse

    from failover import Config

__all__ = ["RouteAssessment", "add_parser", "assess", "build_plan", "front_matter",
           "load_drills", "plan_gaps", "run"]

LEVELS = {
    0: "no documented manual fallback",
    1: "documented manual fallback",
    2: "automated failover to a backup provider",
    3: "automated detection, failover and notification",
}
#: Events that tell people a route is in trouble; a webhook without them stays silent.
ALERT_EVENTS = ("breaker_opened", "all_providers_failed", "deferred")


@dataclass
class RouteAssessment:
    route: str
    level: int
    #: Per level not reached: what is missing for it (empty at level 3).
    blocking: dict[int, list[str]] = field(default_factory=dict)
    #: Gaps that do not change the level but weaken the plan.
    advisory: list[str] = field(default_factory=list)
    #: What keeps the plan from being tested and owned (`plan_gaps`).
    gaps: list[str] = field(default_factory=list)


def load_drills(config_path: str | Path, config: Config | None = None
                ) -> list[dict[str, Any]]:
    """Recorded drills of this config file, oldest first: its history
    (``drills.history``), after those of the ``.failover/drills.json`` that versions
    before the history wrote. An unreadable record counts as none."""
    from failover.drills import read_history

    name = Path(config_path).name
    history = read_history(config.history_path(), config_file=name) if config else []
    return _legacy_drills(config_path, name) + history


def _legacy_drills(config_path: str | Path, name: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(record_path(config_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    drills = data.get("drills") if isinstance(data, dict) else None
    if not isinstance(drills, list):
        return []
    return [d for d in drills if isinstance(d, dict) and d.get("config_file") == name]


def _last_drills(drills: list[dict[str, Any]], route: str) -> dict[str, tuple[str, bool]]:
    """Per scenario key: the time of the last drill that ran it on ``route``, and
    whether it met its objectives then."""
    last: dict[str, tuple[str, bool]] = {}
    for drill in drills:
        for row in drill.get("scenarios", []):
            if row.get("route") == route and row.get("scenario"):
                last[row["scenario"]] = (str(drill.get("time", "")), bool(row.get("met")))
    return last


def front_matter(path: Path) -> dict[str, Any] | None:
    """A Markdown runbook's YAML front matter (``owners``, ``last_reviewed``...): the
    block between a first line ``---`` and the next; None if it has none."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"), None)
    if end is None:
        return None
    try:
        data = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _days(seconds: float) -> int:
    return round(seconds / 86400)


def plan_gaps(config: Config, route_name: str, drills: list[dict[str, Any]],
              base: Path | None, now: datetime.datetime) -> list[str]:
    """What keeps the route's plan from being a tested, owned procedure: no manual
    fallback, scenarios never drilled or overdue, a runbook unreviewed or with fewer
    than two owners."""
    route = config.routes[route_name]
    fb = route.fallback
    gaps = []
    if not (fb.runbook or fb.python or fb.defer):
        gaps.append("no manual fallback: when every provider is down the request fails")
    gaps += _drill_gaps(config, route_name, drills, now)
    if fb.runbook and base is not None and not _runbook_missing(fb.runbook, base):
        gaps += _runbook_gaps(fb.runbook, front_matter(base / fb.runbook), config, now)
    return gaps


def _drill_gaps(config: Config, route: str, drills: list[dict[str, Any]],
                now: datetime.datetime) -> list[str]:
    from failover.drills import SCENARIOS

    every = config.objectives.drill_every
    last = _last_drills(drills, route)
    never = [s.key for s in SCENARIOS if s.key not in last]
    overdue = []
    for key, (time, _met) in last.items():
        when = _parse_time(time)
        if when is not None and (now - when).total_seconds() > every:
            overdue.append(f"`{key}` ({(now - when).days} days)")
    gaps = []
    if never:
        gaps.append("never drilled: " + ", ".join(f"`{k}`" for k in never))
    if overdue:
        gaps.append(f"drill overdue (every {_days(every)} days): " + ", ".join(overdue))
    failing = [key for key, (_time, met) in last.items() if not met]
    if failing:
        gaps.append("failed its last drill: " + ", ".join(f"`{k}`" for k in failing))
    return gaps


def _runbook_gaps(runbook: str, front: dict[str, Any] | None, config: Config,
                  now: datetime.datetime) -> list[str]:
    front = front or {}
    owners = front.get("owners") or []
    owners = [owners] if isinstance(owners, str) else list(owners)
    gaps = []
    if len(owners) < 2:
        gaps.append(f"runbook `{runbook}` has {len(owners)} owner(s): name at least two "
                    "(`owners:` in its front matter), so someone on call knows it")
    reviewed = _parse_time(str(front["last_reviewed"])) if "last_reviewed" in front else None
    every = config.objectives.review_every
    if reviewed is None:
        gaps.append(f"runbook `{runbook}` has no `last_reviewed` date in its front matter")
    elif (now - reviewed).total_seconds() > every:
        gaps.append(f"runbook `{runbook}` last reviewed {(now - reviewed).days} days ago "
                    f"(review every {_days(every)} days)")
    return gaps


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
    usable = [p for p in route.providers if config.providers[p].force != "open"]
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
        forced = [p for p in route.providers if p not in usable]
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
    for name in route.providers:
        provider = config.providers[name]
        if plaintext_key(provider):
            out.advisory.append(f"provider `{name}` has its API key in plain text in the "
                                f"file: use `${{VAR}}`")
    if has_backup:
        vendors = {(config.providers[p].type, config.providers[p].base_url) for p in usable}
        if len(vendors) == 1:
            out.advisory.append("every provider in the chain is the same vendor and endpoint: "
                                "one outage takes them all down")

    out.gaps = plan_gaps(config, route_name, drills or [], base,
                         now or datetime.datetime.now(datetime.timezone.utc))
    return out


def _scenarios() -> Any:
    from failover.drills import SCENARIOS

    return SCENARIOS


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
    if not provider.secret_refs():
        return {"bedrock": "AWS standard chain", "vertex": "application default "
                "credentials"}.get(provider.cloud or "", "none") + (
            f" (profile {provider.credentials.aws_profile})"
            if provider.credentials and provider.credentials.aws_profile else "")
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
        add(f"| `{name}` | {a.level} of 3 | {' → '.join(route.labels)} | "
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
        for i, pname in enumerate(route.providers, 1):
            p = config.providers[pname]
            forced = f" (forced {p.force})" if p.force else ""
            add(f"| {i} | `{pname}`{forced} | {type_label(p)} | {_md(p.model or '-')} | "
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
        drilled = _last_drills(drills, name)
        add("")
        add("| Scenario | Last drilled | Result |")
        add("|---|---|---|")
        for scenario in _scenarios():
            time, met = drilled.get(scenario.key, ("", False))
            add(f"| {scenario.title} | {time[:10] or '**never**'} | "
                f"{('met' if met else '**missed**') if time else '-'} |")
        if a.gaps:
            add("")
            add("Gaps:")
            add("")
            out.extend(f"- {g}" for g in a.gaps)
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
            f"({len(drills)} drill(s) in `{config.drills.history}`).")
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
    drills = load_drills(args.config, config)
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
