"""``failover deferred list|replay``: the requests a defer route kept when all failed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import failover
from failover.testing import FakeProviders

from .conftest import CliRunner, ConfigWriter


@pytest.fixture
def config_path(write_config: ConfigWriter, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-0123456789")
    return str(write_config({
        "providers": {
            "openai": {"type": "openai", "model": "gpt-4o-mini", "api_key": "${OPENAI_API_KEY}"},
        },
        "routes": {"batch": {"chain": ["openai"], "fallback": {"defer": True}}},
        "deferred": {"path": str(tmp_path / "store" / "deferred.sqlite")},
    }))


def defer(config_path: str, *prompts: str) -> list[str]:
    tickets = []
    with FakeProviders(real_store=True) as fake, \
            failover.Router.from_file(config_path) as router:
        fake["openai"].fail(503)
        for prompt in prompts:
            with pytest.raises(failover.Deferred) as info:
                router.complete(prompt, route="batch")
            tickets.append(info.value.ticket)
    return tickets


def test_list_shows_ticket_route_age_and_reason(cli: CliRunner, config_path: str) -> None:
    assert "no deferred requests" in cli("deferred", "list", config_path).out
    first, second = defer(config_path, "summarise A", "summarise B")
    run = cli("deferred", "list", config_path)
    assert run.code == 0
    lines = run.out.splitlines()
    assert lines[0].split() == ["ticket", "route", "age", "reason"]
    assert lines[2].startswith(f"{first}  batch")
    assert lines[3].startswith(f"{second}  batch")
    assert "openai (gpt-4o-mini): Overloaded HTTP 503" in lines[2]
    assert "2 deferred request(s)" in run.out

    data = json.loads(cli("deferred", "list", config_path, "--json").out)
    assert [d["ticket"] for d in data["deferred"]] == [first, second]
    assert data["deferred"][0]["route"] == "batch"
    assert data["deferred"][0]["age_s"] >= 0


def test_replay_sends_them_again_and_removes_the_answered(
    cli: CliRunner, config_path: str
) -> None:
    first, second = defer(config_path, "summarise A", "summarise B")
    with FakeProviders(real_store=True) as fake:
        fake["openai"].answer("done")
        run = cli("deferred", "replay", config_path, "--ticket", second)
    assert run.code == 0
    assert f"{second}: answered by openai (gpt-4o-mini)" in run.out
    assert "done" in run.out  # the answer itself, not thrown away
    assert fake["openai"].calls == 1
    assert fake["openai"].last_request.messages[-1]["content"] == "summarise B"
    assert "1 of 1 deferred request(s) replayed" in run.out
    remaining = json.loads(cli("deferred", "list", config_path, "--json").out)["deferred"]
    assert [d["ticket"] for d in remaining] == [first]


def test_replay_that_fails_keeps_the_request_and_exits_1(
    cli: CliRunner, config_path: str
) -> None:
    [ticket] = defer(config_path, "summarise A")
    with FakeProviders(real_store=True) as fake:
        fake["openai"].fail(500)
        run = cli("deferred", "replay", config_path, "--json")
    assert run.code == 1
    [replayed] = json.loads(run.out)["replayed"]
    assert replayed["ticket"] == ticket
    assert replayed["ok"] is False
    assert "ServerError HTTP 500" in replayed["error"]
    still = json.loads(cli("deferred", "list", config_path, "--json").out)["deferred"]
    assert [d["ticket"] for d in still] == [ticket]


def test_replay_of_an_unknown_ticket_and_of_an_empty_store(
    cli: CliRunner, config_path: str
) -> None:
    run = cli("deferred", "replay", config_path)
    assert run.code == 0
    assert "no deferred requests to replay" in run.out
    defer(config_path, "x")
    run = cli("deferred", "replay", config_path, "--ticket", "nope")
    assert run.code == 1
    assert "no deferred request with ticket(s) nope" in run.err


def test_backup_then_restore_after_the_store_is_lost(
    cli: CliRunner, config_path: str, tmp_path: Path
) -> None:
    tickets = defer(config_path, "first", "second")
    backup = tmp_path / "offsite" / "deferred-backup.sqlite"
    run = cli("deferred", "backup", config_path, "--to", str(backup), "--json")
    assert run.code == 0, run.err
    assert json.loads(run.out)["backed_up"] == 2
    (tmp_path / "store" / "deferred.sqlite").unlink()
    assert "no deferred requests" in cli("deferred", "list", config_path).out
    run = cli("deferred", "restore", config_path, "--from", str(backup))
    assert run.code == 0 and "2 request(s) put back" in run.out
    listed = json.loads(cli("deferred", "list", config_path, "--json").out)
    assert sorted(e["ticket"] for e in listed["deferred"]) == sorted(tickets)


def test_backup_without_a_path_says_what_to_set(cli: CliRunner, config_path: str) -> None:
    run = cli("deferred", "backup", config_path)
    assert run.code == 2
    assert "give --to PATH, or set deferred.backup.path" in run.err
    assert cli("deferred", "restore", config_path).code == 2
    run = cli("deferred", "restore", config_path, "--from", "/nonexistent/backup.sqlite")
    assert run.code == 1 and "no such file" in run.err
