"""``python -m failover`` in a real process, as a user (or CI) runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import ConfigWriter


def failover(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR",)}
    return subprocess.run(
        [sys.executable, "-m", "failover", *argv],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def test_builtin_drill_in_real_time(tmp_path: Path) -> None:
    """The README's main job: `failover drill`, no config, no key, no network."""
    proc = failover("drill", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["passed"] is True
    assert report["simulated_time"] is False
    scenarios = {s["scenario"]: s for s in report["scenarios"]}
    outage = scenarios["outage_503"]
    # Real time: the first request after the fault already fails over at once.
    assert outage["recover_s"] < 0.05 and outage["impact"]["paid_timeout"] == 0
    assert outage["lost"] == 0
    assert outage["served_by"] == {"gemini": 20}
    hang = scenarios["outage_hang"]
    assert hang["recover_s"] >= 3 * 0.2  # three pay the built-in 200 ms timeout
    assert hang["detect_s"] <= hang["recover_s"]
    assert scenarios["recovery"]["failback_s"] is not None
    assert report["duration_s"] < 30
    assert not (tmp_path / ".failover").exists()  # the built-in drill records nothing


def test_broken_config_exits_1_with_every_path(write_config: ConfigWriter,
                                               tmp_path: Path) -> None:
    path = write_config(
        "providers:\n  a: {type: openai}\nroutes:\n  default: {chain: [a, b], deadline: soon}\n"
    )
    proc = failover("check", str(path), cwd=tmp_path)
    assert proc.returncode == 1
    assert "providers.a: a model is required for type 'openai'" in proc.stderr
    assert "routes.default.deadline: expected a duration" in proc.stderr
    assert "routes.default.chain[1]: unknown provider 'b'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_probe_of_simulated_providers(write_config: ConfigWriter, tmp_path: Path) -> None:
    path = write_config({
        "providers": {
            "good": {"type": "fake", "model": "sim-1"},
            "revoked": {"type": "fake", "fake": {"fault": {"status": 401}}},
            "drifted": {"type": "fake", "fake": {"fault": {"kind": "malformed"}}},
        },
        "routes": {"default": {"chain": ["good", "revoked", "drifted"]}},
    })
    proc = failover("check", str(path), "--probe", "--json", cwd=tmp_path)
    assert proc.returncode == 1
    probes = {p["provider"]: p for p in json.loads(proc.stdout)["probes"]}
    assert probes["good"]["ok"] is True
    assert probes["good"]["served_model"] == "sim-1"
    assert probes["revoked"]["error_kind"] == "AuthenticationFailed"
    assert probes["drifted"]["error_kind"] == "InvalidResponse"


def test_help_lists_every_command(tmp_path: Path) -> None:
    proc = failover("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for command in ("check", "drill", "plan", "health", "deferred"):
        assert command in proc.stdout
