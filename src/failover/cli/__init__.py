"""The ``failover`` command line: check, drill, plan, health, deferred, and the
operator's overrides (force-open, force-closed, reset).

``main(argv)`` returns the exit code instead of exiting, so tests (and other tools) can
run it in-process. A broken config prints every problem with its path and exits 1;
nothing a user can cause ends in a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from failover import __version__

    from . import _check, _deferred, _drill, _health, _override, _plan

    parser = argparse.ArgumentParser(
        prog="failover",
        description="Disaster recovery for LLM calls: validate configs, probe providers, "
        "run disaster drills and write the DR plan.",
    )
    parser.add_argument("--version", action="version", version=f"failover {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _check.add_parser(sub)
    _drill.add_parser(sub)
    _plan.add_parser(sub)
    _health.add_parser(sub)
    _deferred.add_parser(sub)
    _override.add_parsers(sub)
    return parser


def _as_json(args: argparse.Namespace, errors: list[str]) -> bool:
    """With ``--json`` an error is JSON too (on stdout, for the program reading it)."""
    if not getattr(args, "json", False):
        return False
    import json

    print(json.dumps({"ok": False, "valid": False, "config": getattr(args, "config", None),
                      "errors": errors}, indent=2))
    return True


def _print_config_error(err: BaseException) -> None:
    from failover import ConfigError

    from ._output import Style

    style = Style(sys.stderr)
    assert isinstance(err, ConfigError)
    if err.problems == ["file not found"] and err.source:
        print(f"{style.red('error:')} config file not found: {err.source}", file=sys.stderr)
        return
    where = f" {err.source}" if err.source else ""
    noun = "problem" if len(err.problems) == 1 else "problems"
    print(f"{style.red('error:')} invalid config{where} ({len(err.problems)} {noun}):",
          file=sys.stderr)
    for problem in err.problems:
        print(f"  {problem}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    from failover import ConfigError
    from failover._fallback import StoreError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, usage errors
        return exit_.code if isinstance(exit_.code, int) else 0 if exit_.code is None else 2
    from ._common import config_from_env

    try:
        config_from_env(args)
    except ConfigError as err:  # no CONFIG given, none in the environment: a usage error
        print(f"failover {args.command}: error: CONFIG is required: {err.problems[0]}",
              file=sys.stderr)
        return 2
    try:
        code: int = args.func(args)
    except ConfigError as err:
        if not _as_json(args, err.problems):
            _print_config_error(err)
        return 1
    except StoreError as err:  # the deferred store cannot be read or written
        if not _as_json(args, [str(err)]):
            print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # a file the user pointed at: one line, not a traceback
        where = f" {err.filename}:" if err.filename else ""
        message = f"{where} {err.strerror or err}".strip()
        if not _as_json(args, [message]):
            print(f"error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `failover plan x | head`
        return 0
    sys.stdout.flush()
    return code
