"""``failover deferred list|show|replay CONFIG``: the requests kept when every provider
failed, and the answers their replays got."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import add_config_argument, load
from ._output import Style, fmt_ms, table

if TYPE_CHECKING:
    import argparse

    from failover import Router
    from failover._fallback import DeferredRecord

__all__ = ["add_parser", "run_copy", "run_list", "run_replay", "run_show"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "deferred",
        help="list, replay, back up or restore the requests kept for replay",
        description="Requests that no provider could serve on a route with "
        "`fallback: {defer: true}` are stored durably; list them, or replay them through "
        "the router, each exactly once (a replayed request keeps its answer for "
        "`deferred.keep_answers`: see `deferred show TICKET`).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    lst = actions.add_parser("list", help="list the deferred requests")
    add_config_argument(lst)
    lst.add_argument("--json", action="store_true",
                     help="machine-readable output (answered requests included)")
    lst.set_defaults(func=run_list)
    show = actions.add_parser("show", help="one deferred request, with its answer if replayed")
    show.add_argument("ticket", metavar="TICKET")
    add_config_argument(show)
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=run_show)
    rep = actions.add_parser("replay", help="send the deferred requests again")
    add_config_argument(rep)
    rep.add_argument("--ticket", action="append", metavar="T",
                     help="replay only this ticket (repeatable)")
    rep.add_argument("--json", action="store_true", help="machine-readable output")
    rep.set_defaults(func=run_replay)
    for action, flag, help_text in _COPIES:
        copy = actions.add_parser(action, help=help_text)
        add_config_argument(copy)
        copy.add_argument(flag, dest="path", metavar="PATH", help="default: deferred.backup.path")
        copy.add_argument("--json", action="store_true", help="machine-readable output")
        copy.set_defaults(func=run_copy, copy=action, flag=flag)


#: ``failover deferred backup | restore``: the action, its path flag, its help.
_COPIES = (("backup", "--to", "copy the store to its backup (or --to PATH)"),
           ("restore", "--from", "put back what the store lacks from a backup"))


def _fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _entry(record: DeferredRecord) -> dict[str, Any]:
    return {
        "ticket": record.ticket,
        "route": record.route,
        "state": record.state,
        "age_s": max(time.time() - record.created_at, 0.0),
        "reason": record.reason,
        "attempts": record.replays,
        "answer": dataclasses.asdict(record.answer) if record.answer else None,
    }


def _entries(records: list[DeferredRecord]) -> list[dict[str, Any]]:
    """The requests still waiting for an answer (pending, or claimed by a replayer)."""
    return [_entry(r) for r in records if r.state != "answered"]


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
        records = list(router.list_deferred())
    finally:
        router.close()
    entries = _entries(records)
    if args.json:
        answered = [_entry(r) for r in records if r.state == "answered"]
        print(json.dumps({"config": args.config, "store": str(router.config.deferred_path()),
                          "deferred": entries, "answered": answered}, indent=2, default=str))
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


def run_show(args: argparse.Namespace) -> int:
    router = _router(args.config)
    try:
        record = router.deferred(args.ticket)
    finally:
        router.close()
    if record is None:
        print(f"error: no deferred request with ticket {args.ticket} in "
              f"{router.config.deferred_path()}", file=sys.stderr)
        return 1
    entry = _entry(record)
    if args.json:
        entry["messages"] = [{"role": m.role, "content": m.text} for m in record.request.messages]
        print(json.dumps(entry, indent=2, default=str))
        return 0
    print(f"ticket   {record.ticket}")
    print(f"route    {record.route}")
    print(f"state    {record.state} (replayed {record.replays} time(s) before)")
    print(f"deferred {_fmt_age(entry['age_s'])} ago: {_summary(record.reason)}")
    prompt = record.request.messages[-1].text if record.request.messages else ""
    print(f"prompt   {prompt[:200]}")
    answer = record.answer
    if answer is not None:
        print(f"answered by {answer.provider} ({answer.model}), "
              f"{_fmt_age(time.time() - answer.answered_at)} ago, "
              f"{answer.input_tokens} + {answer.output_tokens} tokens:")
        print(answer.text)
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
                             "text": outcome.text, "error": None})
        else:
            message = _summary(str(outcome))
            replayed.append({"ticket": ticket, "ok": False, "provider": None, "model": None,
                             "latency_s": None, "text": None, "error": message})
    failed = [r for r in replayed if not r["ok"]]
    if args.json:
        print(json.dumps({"config": args.config, "replayed": replayed}, indent=2))
        return 1 if failed else 0
    for r in replayed:
        if r["ok"]:
            text = " ".join(str(r["text"]).split())
            print(f"  {style.ok_mark} {r['ticket']}: answered by {r['provider']} "
                  f"({r['model']}) in {fmt_ms(r['latency_s'])}; the answer is kept "
                  f"(`failover deferred show {r['ticket']} {args.config}`):")
            print(f"      {text[:200]}{'…' if len(text) > 200 else ''}")
        else:
            print(f"  {style.fail_mark} {r['ticket']}: {r['error']}; kept for a later replay")
    print()
    done = len(replayed) - len(failed)
    print(f"{done} of {len(replayed)} deferred request(s) replayed"
          + (f", {len(failed)} still deferred" if failed else ""))
    return 1 if failed else 0


def run_copy(args: argparse.Namespace) -> int:
    """``backup``: copy the store; ``restore``: put back what it lacks from a copy."""
    config = load(args.config)
    other = Path(args.path) if args.path else config.backup_path()
    if other is None:
        print(f"error: give {args.flag} PATH, or set deferred.backup.path", file=sys.stderr)
        return 2
    router = _router(args.config)
    try:
        copy = router.restore_deferred if args.copy == "restore" else router.backup_deferred
        count = copy(other)
    finally:
        router.close()
    store = router.config.deferred_path()
    if args.json:
        key = "restored" if args.copy == "restore" else "backed_up"
        print(json.dumps({"config": args.config, "store": str(store), "backup": str(other),
                          key: count}, indent=2))
    elif args.copy == "restore":
        print(f"{Style().ok_mark} {count} request(s) put back into {store} from {other}")
    else:
        print(f"{Style().ok_mark} {store} copied to {other}: {count} request(s)")
    return 0
