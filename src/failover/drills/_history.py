"""The drill history: one JSON line per drill, appended, read back by `failover plan`.

Appending a line (never rewriting the file) keeps every drill ever run, and a history
written by several machines or CI jobs at once stays readable: a torn last line is
skipped, never a reason to lose the rest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ._results import DrillReport

__all__ = ["append_history", "read_history"]


def append_history(path: str | Path, report: DrillReport, *, config_file: str) -> Path:
    """Add ``report`` (without its request timelines) as one line of ``path``."""
    entry = report.as_dict(timeline=False)
    entry["time"] = entry.pop("started")
    entry["config_file"] = config_file
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a", encoding="utf-8") as out:
        out.write(json.dumps(entry, separators=(",", ":")) + "\n")
    return target


def read_history(path: str | Path, *, config_file: str | None = None) -> list[dict[str, Any]]:
    """Every drill in ``path``, oldest first (only ``config_file``'s, if given; several
    configs may share a history). No file: no drills."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    drills = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash mid-write
        if isinstance(entry, dict) and (config_file is None
                                        or entry.get("config_file") == config_file):
            drills.append(entry)
    return drills
