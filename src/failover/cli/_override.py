"""``failover force-open | force-closed | reset PROVIDER [CONFIG]``: an operator's
override, on every worker at once.

The breakers live in each worker's memory; what every worker shares is Redis
(``state: {backend: redis}``). The command joins the shared state as one more worker,
makes the change, and every running worker adopts it within milliseconds and emits the
event (``breaker_opened`` / ``breaker_closed``, reason ``forced`` or ``reset``). Without
shared state there is nothing a separate process can reach, and the command says so.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from ._common import add_config_argument, load
from ._output import Style

if TYPE_CHECKING:
    import argparse

__all__ = ["add_parsers", "run"]

_ACTIONS = {
    "force-open": ("force_open", "skip PROVIDER on every worker until reset"),
    "force-closed": ("force_closed", "always try PROVIDER on every worker, whatever its "
                     "breaker says"),
    "reset": ("reset", "back to closed with counters cleared, on every worker"),
}


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for command, (_method, help_text) in _ACTIONS.items():
        p = sub.add_parser(command, help=help_text, description=help_text + ", through "
                           "the shared state (state.backend: redis).")
        p.add_argument("provider", metavar="PROVIDER")
        add_config_argument(p)
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(func=run, override=command)


def no_shared_state(command: str) -> str:
    """Why ``failover COMMAND`` cannot see or change the running workers' breakers."""
    return (f"failover {command} reaches the running workers only through their shared "
            "state, and this config has none (state.backend: memory): each worker's "
            "breakers live in its own memory, which another process cannot reach. Set "
            "`state: {backend: redis, url: ...}`, or act from inside the application "
            "(router.force_open(), router.health())")


def run(args: argparse.Namespace) -> int:
    from failover import Router

    config = load(args.config)
    if config.state.backend != "redis":
        print(f"error: {no_shared_state(args.override)}", file=sys.stderr)
        return 2
    if args.provider not in config.providers:
        print(f"error: unknown provider {args.provider!r}; configured: "
              f"{', '.join(config.providers)}", file=sys.stderr)
        return 2
    method = _ACTIONS[args.override][0]
    with Router(config) as router:  # closing it delivers the change before it returns
        getattr(router, method)(args.provider)
        state = router.health()[args.provider].state
    if args.json:
        print(json.dumps({"provider": args.provider, "action": args.override,
                          "state": state, "prefix": config.state.prefix}))
    else:
        print(f"{Style().ok_mark} {args.provider}: {state} on every worker sharing "
              f"prefix {config.state.prefix!r}")
    return 0
