"""``failover drill [CONFIG]``: simulate each disaster, time the recovery, count the loss.

The engine is `failover.drills` (scenarios, measures, results as data); this module
parses the arguments, shows progress and renders the table, and records the drill for
``failover plan``. The measures are defined in docs/drills.md: *detect* is the first
alerting event, *recover* the start of the first run of K requests served normally,
*impact* the timeouts users paid, and the outcomes are served, degraded (manual
fallback), deferred (read back from the store), failed (a typed error) and lost.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from failover.drills import (
    DEFAULT_LATENCY,
    DEFAULT_RECOVERY_RUN,
    SCENARIOS,
    append_history,
    run_drill,
    run_live,
)

from ._common import add_config_argument, load, non_negative_seconds, writable_file
from ._output import Style, fmt_duration, table

if TYPE_CHECKING:
    import argparse

    from failover import Config
    from failover.drills import DrillReport, ScenarioResult

__all__ = ["add_parser", "report_table", "run", "write_record"]

# -- the record read by `failover plan` --------------------------------------------------


def write_record(config: Config, config_path: str, report: DrillReport) -> Path:
    """Append the drill to the config's history (``drills.history``), for the plan."""
    return append_history(config.history_path(), report, config_file=Path(config_path).name)


# -- the command -------------------------------------------------------------------------


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = ", ".join(s.key for s in SCENARIOS)
    p = sub.add_parser(
        "drill",
        help="run the disaster scenarios and time the recovery",
        description="Simulate each disaster scenario on every route with faults injected in "
        "front of the real adapters, and report time to detect, time to recover, the "
        "timeouts users paid, requests served/degraded/deferred/failed/lost and whether "
        "the config's objectives (RTO, RPO) are met. "
        "With no CONFIG it runs on built-in simulated providers. Exits 1 if an objective "
        "is missed.",
    )
    add_config_argument(p, builtin=True)
    p.add_argument("--requests", type=int, default=20, metavar="N",
                   help="requests per scenario after the fault starts (default 20)")
    p.add_argument("--route", action="append", metavar="NAME", help="drill only this route")
    p.add_argument("--scenario", action="append", metavar="KEY",
                   help=f"run only this scenario (repeatable): {keys}")
    p.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    p.add_argument("--chart", metavar="FILE.png", type=writable_file,
                   help="draw latency and serving provider over time per scenario")
    p.add_argument("--simulated-time", action="store_true",
                   help="run on a simulated clock: long timeouts and breaker times cost nothing")
    p.add_argument("--latency", type=non_negative_seconds, default=DEFAULT_LATENCY,
                   metavar="SECONDS",
                   help="simulated latency of a healthy answer (default 0.01)")
    p.add_argument("--interval", type=non_negative_seconds, default=0.0, metavar="SECONDS",
                   help="pause between requests (default 0)")
    p.add_argument("--recovery-run", type=int, default=DEFAULT_RECOVERY_RUN, metavar="K",
                   help="recovered = the first run of K requests served normally "
                   f"(default {DEFAULT_RECOVERY_RUN})")
    p.add_argument("--live", action="store_true",
                   help="a game day: the real providers and keys, the faults staged on the "
                   "client side (the primary made to look down by the library itself)")
    p.add_argument("--budget", type=int, metavar="N",
                   help="with --live: at most N real requests in all (required)")
    p.add_argument("--yes", action="store_true", help="with --live: do not ask to confirm")
    p.add_argument("--no-record", action="store_true",
                   help="do not append the drill to the history (drills.history)")
    p.set_defaults(func=run)


class _ProgressLine:
    """One updating line on a terminal; one line per finished scenario elsewhere."""

    def __init__(self, style: Style, enabled: bool) -> None:
        self.style = style
        self.enabled = enabled
        self.stream = style.stream

    def update(self, done: int, total: int, route: str, title: str, i: int, n: int) -> None:
        if not self.enabled or not self.style.tty:
            return
        bar_width = 20
        filled = int(bar_width * (done + i / max(n, 1)) / max(total, 1))
        bar = ("█" if self.style.unicode else "#") * filled
        bar += ("░" if self.style.unicode else ".") * (bar_width - filled)
        line = f"\r  {bar} {done + 1}/{total} {route}: {title} ({i}/{n})"
        self.stream.write(line.ljust(78)[:100])
        self.stream.flush()

    def finished(self, result: ScenarioResult) -> None:
        if not self.enabled:
            return
        mark = self.style.ok_mark if result.met else self.style.fail_mark
        recover = fmt_duration(result.recover_s) if result.recover_s is not None else "never"
        line = (f"  {mark} {result.route}: {result.scenario.title:<25} "
                f"recover {recover:>8}, lost {result.lost}")
        if self.style.tty:
            self.stream.write("\r" + line.ljust(78) + "\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def report_table(report: DrillReport, style: Style) -> str:
    rows = []
    multi_route = len({r.route for r in report.results}) > 1
    for r in report.results:
        row = [r.scenario.title, fmt_duration(r.detect_s), fmt_duration(r.notified_s),
               _recovered(r, style),
               _paid(r), str(r.sent), *_outcome_cells(r, style), _served_by(r),
               _verdict(r.rto_met if r.failback_met is not False else False, style),
               _verdict(r.rpo_met, style)]
        if multi_route:
            row.insert(0, r.route)
        rows.append(row)
    headers = ["scenario", "detect", "notified", "recover", "paid timeout", "sent", "served",
               "degraded", "deferred", "failed", "lost", "served by", "RTO", "RPO"]
    align = "lrrrrrrrrrrlll"
    if multi_route:
        headers.insert(0, "route")
        align = "l" + align
    return table(headers, rows, style=style, align=align, indent="  ")


def _verdict(ok: bool | None, style: Style) -> str:
    if ok is None:
        return style.dim("n/a")
    return style.ok_mark if ok else style.fail_mark


def _recovered(r: ScenarioResult, style: Style) -> str:
    text = fmt_duration(r.recover_s) if r.recover_s is not None else style.red("never")
    if r.scenario.midway:
        back = fmt_duration(r.failback_s) if r.failback_s is not None else style.red("never")
        text += style.dim(f" (back {back})")
    return text


def _paid(r: ScenarioResult) -> str:
    paid = r.impact
    if not paid.paid_timeout:
        return "0"
    return f"{paid.paid_timeout} (p99 {fmt_duration(paid.p99_s)})"


def _outcome_cells(r: ScenarioResult, style: Style) -> list[str]:
    counts = r.outcomes
    cells = [str(counts[k]) for k in ("served", "degraded", "deferred", "failed")]
    return [*cells, style.red(str(r.lost)) if r.lost else "0"]


def _live_allowed(args: argparse.Namespace, config: Config, builtin: bool) -> bool:
    """A game day sends real requests: only on a config of real providers, with a
    budget, and with the operator's yes (``--yes``, or typed at the prompt)."""
    from failover.drills import LIVE_FAULTS
    from failover.drills._live import describe

    args.live_declined = False
    problem = ("--live needs a CONFIG of real providers" if builtin else
               "--live runs in real time: drop --simulated-time" if args.simulated_time else
               "--live needs --budget N (at most N real requests)"
               if args.budget is None or args.budget < 1 else None)
    staged = [k for k in args.scenario or () if k not in LIVE_FAULTS]
    if problem is None and staged:
        problem = (f"--live cannot stage {', '.join(staged)} on the client side; it can: "
                   f"{', '.join(LIVE_FAULTS)}")
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return False
    if args.yes:
        return True
    print(f"failover drill --live will send up to {args.budget} real request(s):",
          file=sys.stderr)
    for line in describe(config, args.route):
        print(f"  {line}", file=sys.stderr)
    print("Continue? [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline().strip().lower()
    if answer in ("y", "yes"):
        return True
    print("not confirmed: nothing was sent", file=sys.stderr)
    args.live_declined = True
    return False


def _store_loss_line(loss: dict[str, Any]) -> str:
    """What the data-loss drill found: the store's real RPO."""
    since = loss["since_last_backup_s"]
    when = ("no backup to restore from" if since is None else
            "every deferral mirrored to the backup" if loss["backup"] == "mirror" else
            f"last backup {fmt_duration(since)} before ({loss['backup']})")
    return (f"data loss: the store was deleted at {fmt_duration(loss['deleted_at_s'])}; "
            f"{when}; {loss['restored']} request(s) put back, {loss['lost']} lost")


def _served_by(r: ScenarioResult) -> str:
    return ", ".join(f"{name} {count}" for name, count in r.served_by().items()) or "-"


def _latencies_for_builtin() -> dict[str, float]:
    from ._builtin import BUILTIN_LATENCY

    return dict(BUILTIN_LATENCY)


def run(args: argparse.Namespace) -> int:
    style = Style()
    err_style = Style(sys.stderr)
    if importlib.util.find_spec("respx") is None:
        print("error: failover drill injects its faults with the test kit: "
              "pip install 'failover[testing]'", file=sys.stderr)
        return 2
    if args.requests < 2:
        print("error: --requests must be at least 2", file=sys.stderr)
        return 2
    if not 1 <= args.recovery_run <= args.requests:
        print("error: --recovery-run must be from 1 to --requests", file=sys.stderr)
        return 2
    if args.config:
        config = load(args.config)
        label = args.config
        builtin = False
        latencies = None
        # A Python fallback may also live in the project the drill is run from (`load`
        # put the config's own folder first).
        if str(Path.cwd()) not in sys.path:
            sys.path.insert(1, str(Path.cwd()))
    else:
        from ._builtin import builtin_config

        config = builtin_config()
        label = "(built-in simulated providers)"
        builtin = True
        latencies = _latencies_for_builtin()

    unknown_routes = [r for r in args.route or () if r not in config.routes]
    known_keys = {s.key for s in SCENARIOS}
    unknown_scenarios = [s for s in args.scenario or () if s not in known_keys]
    if unknown_routes or unknown_scenarios:
        for r in unknown_routes:
            print(f"error: unknown route {r!r} (known: {', '.join(config.routes)})",
                  file=sys.stderr)
        for s in unknown_scenarios:
            print(f"error: unknown scenario {s!r} (known: {', '.join(sorted(known_keys))})",
                  file=sys.stderr)
        return 2

    if args.live and not _live_allowed(args, config, builtin):
        return 2 if not args.live_declined else 1

    if args.chart:
        from ._chart import chart_available

        if not chart_available():
            print("error: --chart needs matplotlib: pip install 'failover[chart]'",
                  file=sys.stderr)
            return 2

    obj = config.objectives
    head_stream = sys.stderr if args.json else sys.stdout
    head_style = err_style if args.json else style
    chains = "; ".join(f"{name}: {f' {style.arrow} '.join(r.labels)}"
                       for name, r in config.routes.items()
                       if args.route is None or name in args.route)
    print(head_style.bold(f"failover drill: {label}"), file=head_stream)
    print(f"  routes {chains}", file=head_stream)
    print(f"  objectives: RTO {fmt_duration(obj.rto)}, RPO {obj.rpo} lost; "
          f"{args.requests} requests per scenario"
          + (", simulated time" if args.simulated_time else ""), file=head_stream)
    print(file=head_stream, flush=True)

    progress = _ProgressLine(err_style, enabled=True)
    report = run_live(
        config, budget=args.budget, config_label=label, requests=args.requests,
        routes=args.route, scenarios=args.scenario, recovery_run=args.recovery_run,
        progress=progress.update, on_result=progress.finished,
    ) if args.live else run_drill(
        config,
        config_label=label,
        builtin=builtin,
        requests=args.requests,
        routes=args.route,
        scenarios=args.scenario,
        simulated_time=args.simulated_time,
        latency=args.latency,
        latencies=latencies,
        interval=args.interval,
        recovery_run=args.recovery_run,
        progress=progress.update,
        on_result=progress.finished,
    )

    if args.chart:
        from ._chart import draw_chart

        Path(args.chart).parent.mkdir(parents=True, exist_ok=True)  # checked: below cwd
        draw_chart(report, args.chart)
    if args.config and not args.no_record:
        with contextlib.suppress(OSError):
            write_record(config, args.config, report)

    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print()
        print(report_table(report, style))
        for r in report.results:
            if r.store_loss is not None:
                print("  " + _store_loss_line(r.store_loss))
        if report.live is not None:
            print(f"  live: {report.live['sent']} real request(s) sent, budget "
                  f"{report.live['budget']}")
        print()
        failing = [r for r in report.results if not r.met]
        seconds = f"{report.duration_s:.1f} s" + (" (simulated time)" if args.simulated_time
                                                  else "")
        if failing:
            print(f"{style.fail_mark} {len(failing)} of {len(report.results)} scenario(s) "
                  f"missed the objectives (RTO {fmt_duration(obj.rto)}, RPO {obj.rpo}):")
            for r in failing:
                print(f"    {r.route}/{r.scenario.key} ({r.scenario.title}): "
                      + "; ".join(r.problems(fmt_duration)))
        else:
            print(f"{style.ok_mark} all {len(report.results)} scenarios met the objectives "
                  f"(RTO {fmt_duration(obj.rto)}, RPO {obj.rpo}) in {seconds}")
        if args.chart:
            print(f"  chart: {args.chart}")
    if not report.passed:
        names = ", ".join(f"{r.route}/{r.scenario.key}" for r in report.results if not r.met)
        if args.json:
            print(f"drill failed: {names}", file=sys.stderr)
        return 1
    return 0
