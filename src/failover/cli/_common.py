"""What several commands share: loading the config and describing providers and routes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from failover import Config

    from .._config import ProviderConfig, RouteConfig

__all__ = [
    "describe_fallback",
    "env_refs",
    "load",
    "plaintext_key",
    "record_path",
]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")


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
    """Names of the environment variables a provider's keys read."""
    names: list[str] = []
    for ref in provider.key_refs():
        names.extend(m.group(1) for m in _ENV_REF.finditer(ref.get_secret_value()))
    return names


def plaintext_key(provider: ProviderConfig) -> bool:
    """True when a key is written in the file itself rather than read from ``${VAR}``."""
    return any("${" not in ref.get_secret_value() for ref in provider.key_refs())


def describe_fallback(route: RouteConfig) -> str:
    parts = []
    if route.fallback.python:
        parts.append(f"python {route.fallback.python}")
    if route.fallback.defer:
        parts.append("defer")
    return ", ".join(parts) if parts else "none"
