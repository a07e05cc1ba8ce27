"""Reload a config file when it changes: a polling thread that only loads whole files."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ._errors import ConfigError

__all__ = ["FileWatcher"]

logger = logging.getLogger("failover")

_POLL_S = 0.25
#: How long a changed config file must stay unchanged before it is loaded.
_SETTLE_S = 1.0


class FileWatcher:
    """Call ``reload()`` once ``path`` has changed and then stayed the same for a while.

    An editor or a deploy tool that truncates the file and writes it in pieces would
    otherwise be read half-written (a valid YAML file with half the routes); waiting for
    ``_SETTLE_S`` without a change means only a whole file is loaded.
    """

    def __init__(self, path: Path, reload: Callable[[], None]) -> None:
        self.path = path
        self._reload = reload
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="failover-watch", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        seen = _signature(self.path)
        changed_at: float | None = None
        while not self._stop.wait(_POLL_S):
            now = _signature(self.path)
            if now != seen:
                seen, changed_at = now, time.monotonic()
                continue
            if changed_at is None or time.monotonic() - changed_at < _SETTLE_S:
                continue
            changed_at = None
            if now is not None:  # a file that is gone: the config in memory keeps serving
                self._load()

    def _load(self) -> None:
        try:
            self._reload()
        except ConfigError as exc:
            logger.error("config %s rejected, old config keeps serving: %s", self.path, exc)
        except Exception:
            logger.exception("reloading %s failed", self.path)


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size
