"""Nothing a user can type or point the CLI at ends in a traceback: bad paths, negative
numbers, unreadable or broken files each give exit 1 or 2 and one clear line; with
``--json`` the answer is JSON even then."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import CliRunner, ConfigWriter

VALID = {
    "providers": {"sim": {"type": "fake"}},
    "routes": {"default": {"chain": ["sim"]}},
}


@pytest.fixture
def good(write_config: ConfigWriter) -> str:
    return str(write_config(VALID))


def bad_calls(good: str, tmp: Path) -> list[list[str]]:
    not_utf8 = tmp / "latin1.yaml"
    not_utf8.write_bytes(b"providers: {}\nroutes: \xff\n")
    folder = tmp / "a-folder.yaml"
    folder.mkdir()
    return [
        ["check", str(tmp / "missing.yaml")],
        ["check", str(not_utf8)],
        ["check", str(folder)],
        ["check", good, "--probe", "--timeout", "-1"],
        ["check", good, "--probe", "--timeout", "nan"],
        ["health", good, "--timeout", "-1"],
        ["plan", good, "-o", "/nonexistent/dir/plan.md"],
        ["plan", good, "-o", str(folder)],
        ["drill", good, "--chart", "/nonexistent/dir/x.png"],
        ["drill", good, "--latency", "-1"],
        ["drill", good, "--interval", "-0.5"],
        ["drill", good, "--requests", "1"],
        ["deferred", "list", str(not_utf8)],
        ["deferred", "show", "nope", good],
        ["deferred", "replay", str(tmp / "missing.yaml")],
    ]


def test_bad_input_gives_one_clear_line_and_no_traceback(
    cli: CliRunner, good: str, tmp_path: Path
) -> None:
    for argv in bad_calls(good, tmp_path):
        run = cli(*argv)
        shown = run.out + run.err
        assert run.code in (1, 2), (argv, run)
        assert "Traceback" not in shown, (argv, shown)
        assert "error" in run.err.lower(), (argv, run.err)
    assert not Path("/nonexistent").exists()


def test_json_is_json_even_when_the_file_is_broken(cli: CliRunner, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("providers: {p: {type: openai, model: m, timout: 5s}}\nroutes: {}\n")
    run = cli("check", str(broken), "--json")
    assert run.code == 1
    data = json.loads(run.out)
    assert data["valid"] is False
    assert any("did you mean 'timeout'" in e for e in data["errors"])


def test_check_fails_when_the_router_could_not_run(
    cli: CliRunner, write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_SUCH_HOOK_URL", raising=False)
    data = {**VALID,
            "notify": {"webhook": {"url": "${NO_SUCH_HOOK_URL}"}},
            "routes": {"default": {"chain": ["sim"],
                                   "fallback": {"python": "no_such_module:answer"}}}}
    run = cli("check", str(write_config(data)))
    assert run.code == 1
    assert "notify.webhook.url: environment variable NO_SUCH_HOOK_URL is not set" in run.out
    assert "routes.default.fallback.python: cannot import module 'no_such_module'" in run.out


def test_an_unclosed_variable_is_refused(cli: CliRunner, write_config: ConfigWriter) -> None:
    data = {"providers": {"claude": {"type": "anthropic", "model": "claude-haiku-4-5",
                                     "api_key": "${ANTHROPIC_API_KEY"}},
            "routes": {"default": {"chain": ["claude"]}}}
    run = cli("check", str(write_config(data)))
    assert run.code == 1
    assert "providers.claude.api_key: '${' without a closing '}'" in run.err


@pytest.mark.parametrize("action", [["list"], ["list", "--json"], ["replay"]])
def test_a_corrupt_deferred_store_is_one_line_not_a_traceback(
    cli: CliRunner, write_config: ConfigWriter, tmp_path: Path, action: list[str]
) -> None:
    store = tmp_path / "deferred.sqlite"
    store.write_bytes(b"not a database " * 100)
    data = {**VALID, "routes": {"default": {"chain": ["sim"], "fallback": {"defer": True}}},
            "deferred": {"path": str(store)}}
    run = cli("deferred", action[0], str(write_config(data)), *action[1:])
    assert run.code == 1
    shown = run.out + run.err
    assert "Traceback" not in shown
    assert f"deferred store {store}" in shown
    if "--json" in action:
        assert json.loads(run.out)["errors"]
