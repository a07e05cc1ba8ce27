"""A plain ``pip install failover`` carries no test tooling, and still works: the
library, a ``type: fake`` router, and pytest in a project that never uses the kit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import failover

ROOT = Path(failover.__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def plain_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("plain") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", str(ROOT), "pytest"],
                   check=True, capture_output=True)
    return venv / "bin" / "python"


def run(python: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_no_test_tooling_is_installed(plain_venv: Path) -> None:
    found = run(plain_venv, "-c", "import importlib.util as u;"
                "print([m for m in ('respx', 'httpx') if u.find_spec(m)])")
    assert found.stdout.strip() == "[]", found.stderr


def test_the_library_and_a_simulated_provider_work(plain_venv: Path) -> None:
    answered = run(plain_venv, "-c", "import failover\n"
                   "config = failover.Config.from_mapping({'providers': {'sim': "
                   "{'type': 'fake', 'fake': {'text': 'simulated'}}}, "
                   "'routes': {'default': {'chain': ['sim']}}})\n"
                   "print(failover.Router(config).complete('hi').text)")
    assert answered.stdout.strip() == "simulated", answered.stderr


def test_pytest_in_an_unrelated_project(plain_venv: Path, tmp_path: Path) -> None:
    (tmp_path / "test_theirs.py").write_text("def test_nothing_to_do_with_llms():\n"
                                             "    assert 1 + 1 == 2\n")
    (tmp_path / "test_kit.py").write_text("def test_uses_the_kit(fake_providers):\n"
                                          "    pass\n")
    collected = run(plain_venv, "-m", "pytest", "--co", "-q", "test_theirs.py", cwd=tmp_path)
    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert "test_nothing_to_do_with_llms" in collected.stdout
    used = run(plain_venv, "-m", "pytest", "-q", "test_kit.py", cwd=tmp_path)
    assert used.returncode == 1
    assert "pip install 'failover[testing]'" in used.stdout
    assert "Traceback" not in used.stdout
