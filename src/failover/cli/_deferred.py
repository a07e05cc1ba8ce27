"""``failover deferred list|replay CONFIG``: the requests kept when every provider failed."""

from __future__ import annotations

import datetime
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from ._common import load
from ._output import Style, fmt_ms, table

if TYPE_CHECKING:
    import argparse

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


def _field(item: Any, *names: str) -> Any:
    for name in names:
        if isinstance(item, dict) and name in item:
            return item[name]
        if hasattr(item, name):
            return getattr(item, name)
    return None


def _age(created: Any) -> float | None:
    if isinstance(created, (int, float)):
        return max(time.time() - float(created), 0.0)
    if isinstance(created, datetime.datetime):
        now = datetime.datetime.now(created.tzinfo or None)
        return max((now - created).total_seconds(), 0.0)
    return None


def _fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _entries(items: list[Any]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        created = _field(item, "created_at", "created", "time")
        out.append({
            "ticket": str(_field(item, "ticket")),
            "route": _field(item, "route"),
            "age_s": _age(created),
            "reason": _field(item, "reason", "error") or "",
            "attempts": _field(item, "attempts_made", "replays", "tries"),
        })
    return out


def _router(path: str) -> Any:
    from failover import Router

    load(path)  # every problem printed before the router touches anything
    return Router.from_file(path)


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
             str(e["reason"]).splitlines()[0].rstrip(":")[:70] if e["reason"] else "-"]
            for e in entries]
    print(table(["ticket", "route", "age", "reason"], rows, style=style))
    print()
    print(f"{len(entries)} deferred request(s); replay them with "
          f"`failover deferred replay {args.config}`")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from failover import FailoverError, Response

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

    replayed = []
    for ticket, outcome in outcomes:
        if isinstance(outcome, Response):
            replayed.append({"ticket": ticket, "ok": True, "provider": outcome.provider,
                             "model": outcome.model, "latency_s": outcome.latency_s,
                             "error": None})
        else:
            message = str(outcome).splitlines()[0] if isinstance(outcome, FailoverError) \
                else repr(outcome)
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
