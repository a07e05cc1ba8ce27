"""``failover deferred list|replay CONFIG``: the requests kept when every provider failed."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

from ._common import load
from ._output import Style, fmt_ms, table

if TYPE_CHECKING:
    import argparse

    from failover import Router
    from failover._fallback import DeferredRecord

__all__ = ["add_parser", "run_list", "run_replay"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "deferred",
        help="list or replay the requests kept for replay (fallback: defer)",
        description="Requests that no provider could serve on a route with "
        "`fallback: {defer: true}` are stored durably; list them, or replay them through "
        "the router (a request that succeeds is removed from the store).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    lst = actions.add_parser("list", help="list the deferred requests")
    lst.add_argument("config", metavar="CONFIG")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    lst.set_defaults(func=run_list)
    rep = actions.add_parser("replay", help="send the deferred requests again")
    rep.add_argument("config", metavar="CONFIG")
    rep.add_argument("--ticket", action="append", metavar="T",
                     help="replay only this ticket (repeatable)")
    rep.add_argument("--json", action="store_true", help="machine-readable output")
    rep.set_defaults(func=run_replay)


def _fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _entries(records: list[DeferredRecord]) -> list[dict[str, Any]]:
    now = time.time()
    return [
        {
            "ticket": r.ticket,
            "route": r.route,
            "age_s": max(now - r.created_at, 0.0),
            "reason": r.reason,
            "attempts": r.replays,
        }
        for r in records
    ]


def _summary(reason: str) -> str:
    """One line from the stored failure: each provider and why it failed."""
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    detail = "; ".join(line.split(" after ")[0] for line in lines[1:]) or (
        lines[0] if lines else "-")
    return detail if len(detail) <= 90 else detail[:89] + "…"


def _router(path: str) -> Router:
    from failover import Router
    from failover._config import NotifyConfig

    # Every problem is printed before the router touches anything. The notifier is left
    # out: listing or replaying must work on a machine without the webhook's ${VAR}.
    config = load(path)
    return Router(config.model_copy(update={"notify": NotifyConfig()}), path=path)


def run_list(args: argparse.Namespace) -> int:
    style = Style()
    router = _router(args.config)
    try:
        entries = _entries(list(router.list_deferred()))
    finally:
        router.close()
    if args.json:
        print(json.dumps({"config": args.config, "deferred": entries}, indent=2, default=str))
        return 0
    if not entries:
        print(f"{style.ok_mark} no deferred requests")
        return 0
    rows = [[e["ticket"], str(e["route"]), _fmt_age(e["age_s"]),
             _summary(str(e["reason"]))]
            for e in entries]
    print(table(["ticket", "route", "age", "reason"], rows, style=style))
    print()
    print(f"{len(entries)} deferred request(s); replay them with "
          f"`failover deferred replay {args.config}`")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from failover import Response

    style = Style()
    router = _router(args.config)
    try:
        known = {e["ticket"] for e in _entries(list(router.list_deferred()))}
        unknown = [t for t in args.ticket or () if t not in known]
        if unknown:
            print(f"error: no deferred request with ticket(s) {', '.join(unknown)}",
                  file=sys.stderr)
            return 1
        if not known:
            if args.json:
                print(json.dumps({"config": args.config, "replayed": []}, indent=2))
            else:
                print(f"{style.ok_mark} no deferred requests to replay")
            return 0
        outcomes = router.replay_deferred(tickets=args.ticket)
    finally:
        router.close()

    replayed: list[dict[str, Any]] = []
    for ticket, outcome in outcomes:
        if isinstance(outcome, Response):
            replayed.append({"ticket": ticket, "ok": True, "provider": outcome.provider,
                             "model": outcome.model, "latency_s": outcome.latency_s,
                             "error": None})
        else:
            message = _summary(str(outcome))
            replayed.append({"ticket": ticket, "ok": False, "provider": None, "model": None,
                             "latency_s": None, "error": message})
    failed = [r for r in replayed if not r["ok"]]
    if args.json:
        print(json.dumps({"config": args.config, "replayed": replayed}, indent=2))
        return 1 if failed else 0
    for r in replayed:
        if r["ok"]:
            print(f"  {style.ok_mark} {r['ticket']}: answered by {r['provider']} "
                  f"({r['model']}) in {fmt_ms(r['latency_s'])}; removed from the store")
        else:
            print(f"  {style.fail_mark} {r['ticket']}: {r['error']}; kept for a later replay")
    print()
    done = len(replayed) - len(failed)
    print(f"{done} of {len(replayed)} deferred request(s) replayed"
          + (f", {len(failed)} still deferred" if failed else ""))
    return 1 if failed else 0
