"""Running the CLI in-process as a user would: arguments in, exit code and output out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from failover.cli import main


@dataclass
class Run:
    code: int
    out: str
    err: str


CliRunner = Callable[..., Run]
ConfigWriter = Callable[..., Path]


@pytest.fixture(autouse=True)
def _plain_terminal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Output is checked as plain text; relative paths (the deferred store) land in tmp.
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> CliRunner:
    def run(*argv: str) -> Run:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


@pytest.fixture
def write_config(tmp_path: Path) -> ConfigWriter:
    def write(data: dict[str, Any] | str, name: str = "failover.yaml") -> Path:
        path = tmp_path / name
        text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    return write
