"""Terminal output: colours when a person is watching, plain text when a pipe is."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from typing import TextIO

__all__ = ["Style", "fmt_duration", "fmt_ms", "table", "visible_len"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def visible_len(text: str) -> int:
    return len(_ANSI.sub("", text))


class Style:
    """ANSI styling for one stream; a no-op when the stream is not a terminal.

    ``NO_COLOR`` turns colours off and ``FORCE_COLOR`` on, as most tools agree.
    Symbols fall back to ASCII when the stream's encoding cannot show them.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        stream = stream if stream is not None else sys.stdout
        self.stream = stream
        isatty = getattr(stream, "isatty", lambda: False)()
        if os.environ.get("NO_COLOR"):
            self.color = False
        elif os.environ.get("FORCE_COLOR"):
            self.color = True
        else:
            self.color = bool(isatty) and os.environ.get("TERM") != "dumb"
        self.tty = bool(isatty)
        encoding = getattr(stream, "encoding", None) or "ascii"
        try:
            "✓✗→…─".encode(encoding)
            self.unicode = True
        except (UnicodeEncodeError, LookupError):
            self.unicode = False

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def red(self, text: str) -> str:
        return self._wrap("31", text)

    def green(self, text: str) -> str:
        return self._wrap("32", text)

    def yellow(self, text: str) -> str:
        return self._wrap("33", text)

    def cyan(self, text: str) -> str:
        return self._wrap("36", text)

    @property
    def ok_mark(self) -> str:
        return self.green("✓" if self.unicode else "OK")

    @property
    def fail_mark(self) -> str:
        return self.red("✗" if self.unicode else "FAIL")

    @property
    def arrow(self) -> str:
        return "→" if self.unicode else "->"

    @property
    def rule_char(self) -> str:
        return "─" if self.unicode else "-"


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    style: Style,
    align: str = "",
    indent: str = "",
) -> str:
    """A plain aligned table. ``align`` has one letter per column: ``l`` or ``r``."""
    widths = [visible_len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], visible_len(cell))

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            pad = " " * (widths[i] - visible_len(cell))
            right = i < len(align) and align[i] == "r"
            out.append(pad + cell if right else cell + pad)
        return (indent + "  ".join(out)).rstrip()

    head = line([style.bold(h) for h in headers])
    rule = indent + "  ".join(style.rule_char * w for w in widths)
    return "\n".join([head, style.dim(rule), *(line(r) for r in rows)])


def fmt_ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1000
    if ms < 9.95:
        return f"{ms:.1f} ms"
    return f"{ms:.0f} ms"


def fmt_duration(seconds: float | None) -> str:
    """Short human duration: ``12 ms``, ``1.25 s``, ``2 m 5 s``."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return fmt_ms(seconds)
    if seconds < 60:
        return f"{seconds:.2f}".rstrip("0").rstrip(".") + " s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} m {secs} s" if secs else f"{minutes} m"
