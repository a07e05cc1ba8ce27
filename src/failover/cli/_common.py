"""What several commands share: loading the config and describing providers and routes."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from failover import Config

    from .._config import ProviderConfig, RouteConfig

__all__ = [
    "add_config_argument",
    "config_from_env",
    "describe_fallback",
    "env_refs",
    "load",
    "non_negative_seconds",
    "plaintext_key",
    "positive_seconds",
    "record_path",
    "type_label",
    "writable_file",
]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")


def add_config_argument(parser: argparse.ArgumentParser, *, builtin: bool = False) -> None:
    """The CONFIG argument every command takes: a path, else ``$FAILOVER_CONFIG``
    (else, with ``builtin``, the built-in simulated config)."""
    fallback = "the built-in simulated config" if builtin else "none: an error"
    parser.add_argument("config", metavar="CONFIG", nargs="?", default=None,
                        help=f"failover.yaml / .toml / .json (default: $FAILOVER_CONFIG, "
                        f"then {fallback})")
    parser.set_defaults(config_builtin=builtin)


def config_from_env(args: argparse.Namespace) -> None:
    """Fill in CONFIG from ``$FAILOVER_CONFIG`` when it was not given; a `ConfigError`
    saying what to set when a command needs one and there is none."""
    if getattr(args, "config", "absent") is not None:
        return
    from .._config import CONFIG_ENV, config_path_from_env

    if getattr(args, "config_builtin", False) and not os.environ.get(CONFIG_ENV, "").strip():
        return
    args.config = config_path_from_env()


def load(path: str) -> Config:
    """The validated config; raises `ConfigError` (printed by ``main``) when it is not.

    The config's folder goes on ``sys.path`` first: a python fallback or ``on_replay``
    named in it lives in the user's project beside the file, wherever the CLI runs from.
    """
    import sys

    from failover import Config

    folder = str(Path(path).resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return Config.from_file(path)


def record_path(config_path: str | Path) -> Path:
    """Where drills are recorded for a config file: ``.failover/drills.json`` beside it."""
    return Path(config_path).resolve().parent / ".failover" / "drills.json"


def env_refs(provider: ProviderConfig) -> list[str]:
    """Names of the environment variables a provider's credentials read."""
    names: list[str] = []
    for _, raw in provider.secret_refs():
        names.extend(m.group(1) for m in _ENV_REF.finditer(raw))
    return names


def plaintext_key(provider: ProviderConfig) -> bool:
    """True when a credential is written in the file itself rather than read from
    ``${VAR}`` (an AWS access key id is no secret on its own, and is not counted)."""
    return any("${" not in raw for where, raw in provider.secret_refs()
               if where not in ("credentials.aws_access_key_id", "credentials.tenant_id",
                                "credentials.client_id"))


def describe_fallback(route: RouteConfig) -> str:
    parts = []
    if route.fallback.python:
        parts.append(f"python {route.fallback.python}")
    if route.fallback.defer:
        parts.append("defer")
    return ", ".join(parts) if parts else "none"


def positive_seconds(text: str) -> float:
    """An argparse type: a number of seconds above zero (``--timeout``)."""
    return _seconds(text, allow_zero=False)


def non_negative_seconds(text: str) -> float:
    """An argparse type: zero or more seconds (``--latency``, ``--interval``)."""
    return _seconds(text, allow_zero=True)


def _seconds(text: str, *, allow_zero: bool) -> float:
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        least = "0 or more" if allow_zero else "above 0"
        raise argparse.ArgumentTypeError(f"expected seconds {least}, got {text!r}")
    return value


def writable_file(text: str) -> str:
    """An argparse type: a file that can be written, checked before any work starts. A
    missing folder is created only below the working directory (``-o docs/plan.md``): a
    typo like ``/nonexistent/x.md`` is an error, not a new tree of folders."""
    import argparse
    import os

    path = Path(text).resolve()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory")
    folder = path.parent
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if existing != folder and not folder.is_relative_to(Path.cwd().resolve()):
        raise argparse.ArgumentTypeError(f"folder {folder} does not exist")
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise argparse.ArgumentTypeError(f"folder {existing} is not writable")
    return text


def type_label(provider: ProviderConfig) -> str:
    """``anthropic``, or ``anthropic on bedrock (us-east-1)`` for a cloud platform."""
    if provider.platform is None:
        return provider.type
    where = "/".join(v for v in (provider.project, provider.region) if v)
    return f"{provider.type} on {provider.platform}" + (f" ({where})" if where else "")
