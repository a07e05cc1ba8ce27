"""The deferred store keeps its promise with real processes and real files: nothing that
was given a ticket is lost, replay sends each request once, a store that cannot take a
request says so with a typed error, and the file is the owner's alone."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

import failover
from failover.testing import FakeClock, FakeProviders
from support import eventually

if TYPE_CHECKING:
    from conftest import Loopback

SRC = str(Path(failover.__file__).resolve().parents[1])


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeProviders]:
    # These tests are about the real store: the kit must not swap in a throwaway one.
    with FakeProviders(clock=clock, real_store=True) as kit:
        yield kit


def write(tmp_path: Path, store: str | Path, *, providers: dict[str, Any] | None = None,
          **deferred: Any) -> Path:
    """A config with one provider and a ``defer: true`` route, as a file in tmp_path."""
    path = tmp_path / "failover.yaml"
    path.write_text(yaml.safe_dump({
        "providers": providers or {"openai": {"type": "openai", "model": "gpt-4o-mini",
                                              "api_key": "sk-test-openai-0123456789"}},
        "routes": {"batch": {"chain": ["openai"], "fallback": {"defer": True}}},
        "deferred": {"path": str(store), **deferred},
    }))
    return path


def run_python(code: str, **kwargs: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env,
                            text=True, **kwargs)


async def ask(router: failover.Router, mode: str) -> Any:
    if mode == "sync":
        return router.complete("keep me", route="batch")
    return await router.acomplete("keep me", route="batch")


# --- where it is and who can read it ------------------------------------------------------


def test_the_store_is_beside_the_config_and_owner_only(
    tmp_path: Path, fake: FakeProviders, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    config = write(project, ".failover/deferred.sqlite")
    monkeypatch.chdir(tmp_path)  # run from elsewhere: the store is still beside the config
    fake["openai"].fail(503)
    with failover.Router.from_file(config) as router, pytest.raises(failover.Deferred):
        router.complete("keep me", route="batch")
    store = project / ".failover" / "deferred.sqlite"
    assert store.exists() and not (tmp_path / ".failover").exists()
    for path in [store, *store.parent.glob("deferred.sqlite-*")]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(store.parent.stat().st_mode) == 0o700

    monkeypatch.chdir("/")
    listed = subprocess.run([sys.executable, "-m", "failover", "deferred", "list",
                             str(config), "--json"], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": SRC}, check=True)
    assert len(json.loads(listed.stdout)["deferred"]) == 1


# --- a store that cannot take the request --------------------------------------------------


def _not_a_directory(tmp_path: Path) -> Path:
    (tmp_path / "a-file").write_text("x")
    return tmp_path / "a-file" / "deferred.sqlite"


def _corrupt(tmp_path: Path) -> Path:
    path = tmp_path / "deferred.sqlite"
    path.write_bytes(b"this is not a database, just bytes " * 200)
    return path


def _a_directory(tmp_path: Path) -> Path:
    (tmp_path / "deferred.sqlite").mkdir()
    return tmp_path / "deferred.sqlite"


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("broken", [_not_a_directory, _corrupt, _a_directory],
                         ids=["not-a-directory", "corrupt", "a-directory"])
async def test_a_store_that_cannot_be_written_raises_defer_failed_with_the_attempts(
    tmp_path: Path, clock: FakeClock, fake: FakeProviders, broken: Any, mode: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = failover.Config.from_file(write(tmp_path, broken(tmp_path)))
    fake["openai"].fail(503)
    events: list[failover.Event] = []
    with caplog.at_level("ERROR", logger="failover"):
        router = failover.Router(config, clock=clock)  # found at start: logged
    assert "requests that need deferring will raise DeferFailed" in caplog.text
    router.subscribe(events.append)
    with pytest.raises(failover.DeferFailed) as caught:
        await ask(router, mode)
    router.close()
    error = caught.value
    assert [a.error_kind for a in error.attempts] == ["Overloaded"]
    assert "was not stored" in str(error) and "deferred store" in error.reason
    assert isinstance(error.__cause__, failover.AllProvidersFailed)
    assert [e.type for e in events][-2:] == ["all_providers_failed", "defer_failed"]


def test_a_full_disk_raises_defer_failed(tmp_path: Path) -> None:
    # A file-size limit stands in for a full disk: SQLite cannot grow the store.
    config = write(tmp_path, tmp_path / "deferred.sqlite",
                   providers={"openai": {"type": "fake", "fake": {"fault": {"status": 503}}}})
    child = run_python(f"""
        import resource, signal, failover
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        router = failover.Router.from_file({str(config)!r})
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
        try:
            router.complete("keep me", route="batch")
        except failover.DeferFailed as err:
            print("DeferFailed", err.reason)
    """, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = child.communicate(timeout=60)
    assert out.startswith("DeferFailed deferred store"), (out, err)


async def test_a_store_locked_by_another_process_never_blocks_the_event_loop(
    tmp_path: Path, clock: FakeClock, fake: FakeProviders
) -> None:
    store = tmp_path / "deferred.sqlite"
    config = failover.Config.from_file(write(tmp_path, store, lock_timeout="500ms"))
    failover._fallback.DeferredStore(store).check()
    holder = run_python(f"""
        import sqlite3, sys, time
        conn = sqlite3.connect({str(store)!r}, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        print("locked", flush=True)
        time.sleep(12)
    """, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        fake["openai"].fail(503)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.02)
                ticks += 1

        router = failover.Router(config, clock=clock)  # its start-up check waits too
        task = asyncio.create_task(ticker())
        started = time.monotonic()
        with router, pytest.raises(failover.DeferFailed, match="locked by another process"):
            await router.acomplete("keep me", route="batch")
        waited = time.monotonic() - started
        task.cancel()
    finally:
        holder.kill()
        holder.wait()
    assert 0.4 < waited < 5
    assert ticks >= waited / 0.02 * 0.5  # the loop kept running while the store waited


# --- nothing that got a ticket is lost -----------------------------------------------------


def test_kill_9_while_deferring_loses_no_ticket(tmp_path: Path) -> None:
    store = tmp_path / "deferred.sqlite"
    config = write(tmp_path, store,
                   providers={"openai": {"type": "fake", "fake": {"fault": {"status": 503}}}})
    child = run_python(f"""
        import failover
        router = failover.Router.from_file({str(config)!r})
        while True:
            try:
                router.complete("keep me", route="batch")
            except failover.Deferred as deferred:
                print(deferred.ticket, flush=True)
    """, stdout=subprocess.PIPE)
    assert child.stdout is not None
    tickets = []
    while len(tickets) < 40:
        tickets.append(child.stdout.readline().strip())
    child.send_signal(signal.SIGKILL)
    rest, _ = child.communicate()
    tickets += [t for t in rest.split() if t]
    conn = sqlite3.connect(store)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    stored = {row[0] for row in conn.execute("SELECT ticket FROM deferred")}
    assert set(tickets) <= stored


# --- replay ---------------------------------------------------------------------------------


def test_two_concurrent_replayers_deliver_each_request_exactly_once(
    tmp_path: Path, loopback: Loopback
) -> None:
    store = tmp_path / "deferred.sqlite"
    config = write(tmp_path, store, providers={"openai": loopback.providers()["openai"]})
    kept = failover._fallback.DeferredStore(store)
    for i in range(200):
        kept.add(failover._models.build_request(f"request {i}", route="batch"), "all down")
    env = {**os.environ, "PYTHONPATH": SRC}
    replayers = [subprocess.Popen([sys.executable, "-m", "failover", "deferred", "replay",
                                   str(config), "--json"], stdout=subprocess.PIPE, text=True,
                                  env=env) for _ in range(2)]
    outputs = [json.loads(p.communicate(timeout=120)[0]) for p in replayers]
    sent = [r["ticket"] for out in outputs for r in out["replayed"]]
    assert loopback.requests == 200
    assert len(sent) == len(set(sent)) == 200
    assert all(r["ok"] and r["text"] == "hi from loopback"
               for out in outputs for r in out["replayed"])
    assert {r.state for r in kept.list()} == {"answered"}


def test_replay_keeps_the_answer_shows_it_and_calls_on_replay(
    tmp_path: Path, fake: FakeProviders, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "myapp_hooks.py").write_text(textwrap.dedent("""
        import json, pathlib
        def answered(record, response):
            pathlib.Path(__file__).with_name("told.json").write_text(
                json.dumps({"ticket": record.ticket, "text": response.text}))
    """))
    config_path = write(tmp_path, tmp_path / "deferred.sqlite")
    data = yaml.safe_load(config_path.read_text())
    data["routes"]["batch"]["fallback"]["on_replay"] = "myapp_hooks:answered"
    config_path.write_text(yaml.safe_dump(data))
    monkeypatch.chdir("/")  # the CLI finds myapp_hooks beside the config
    from failover.cli import main

    fake["openai"].fail(503)
    monkeypatch.syspath_prepend(str(tmp_path))
    with failover.Router.from_file(config_path) as router, \
            pytest.raises(failover.Deferred) as deferred:
        router.complete("what is the status?", route="batch")
    ticket = deferred.value.ticket
    fake["openai"].answer("all systems go")
    assert main(["deferred", "replay", str(config_path)]) == 0
    assert json.loads((tmp_path / "told.json").read_text()) == {
        "ticket": ticket, "text": "all systems go"}
    with failover.Router.from_file(config_path) as router:
        record = router.deferred(ticket)
    assert record is not None and record.state == "answered"
    assert record.answer is not None and record.answer.text == "all systems go"
    assert record.answer.provider == "openai" and record.answer.output_tokens > 0


def test_show_and_list_json_print_the_answer(
    tmp_path: Path, fake: FakeProviders, capsys: pytest.CaptureFixture[str]
) -> None:
    from failover.cli import main

    config_path = write(tmp_path, tmp_path / "deferred.sqlite")
    fake["openai"].fail(503)
    with failover.Router.from_file(config_path) as router, \
            pytest.raises(failover.Deferred) as deferred:
        router.complete("what is the status?", route="batch")
    fake["openai"].answer("all systems go")
    assert main(["deferred", "replay", str(config_path)]) == 0
    capsys.readouterr()
    assert main(["deferred", "show", deferred.value.ticket, str(config_path)]) == 0
    shown = capsys.readouterr().out
    assert "state    answered" in shown and "all systems go" in shown
    assert main(["deferred", "list", str(config_path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["deferred"] == []
    assert listed["answered"][0]["answer"]["text"] == "all systems go"


def test_answered_rows_are_pruned_after_keep_answers(tmp_path: Path) -> None:
    store = failover._fallback.DeferredStore(tmp_path / "d.sqlite", keep_answers=60)
    old, new = (store.add(failover._models.build_request(p), "down") for p in ("old", "new"))
    response = failover.Response(text="ok", finish_reason="stop", provider="p", model="m")
    answer = failover._fallback.DeferredAnswer.of
    assert store.claim(old, "me") is not None
    store.answered(old, answer(response, time.time() - 120))
    assert store.claim(new, "me") is not None
    store.answered(new, answer(response, time.time()))
    assert [r.ticket for r in store.list()] == [new]


def test_a_claim_whose_replayer_died_is_free_again_after_its_lease(tmp_path: Path) -> None:
    store = failover._fallback.DeferredStore(tmp_path / "d.sqlite", replay_lease=0.2)
    ticket = store.add(failover._models.build_request("x"), "down")
    assert store.claim(ticket, "first") is not None
    assert store.claim(ticket, "second") is None          # held
    time.sleep(0.3)                                        # the lease runs out (real time)
    assert store.claim(ticket, "second") is not None


# --- backups: for when the store's file is lost ----------------------------------------------


def _request(text: str) -> failover.Request:
    from failover._models import build_request

    return build_request(text)


def test_a_backup_restores_what_a_deleted_store_lost(tmp_path: Path) -> None:
    from failover._fallback import DeferredStore

    store = DeferredStore(tmp_path / "deferred.sqlite")
    kept = [store.add(_request(f"question {i}"), "all down") for i in range(3)]
    assert store.backup(tmp_path / "backup.sqlite") == 3
    after = store.add(_request("after the backup"), "all down")
    (tmp_path / "deferred.sqlite").unlink()
    # The store starts a new file on its own; the restore puts back what the backup had.
    fresh = store.add(_request("after the loss"), "all down")
    assert store.restore(tmp_path / "backup.sqlite") == 3
    tickets = {r.ticket for r in store.list()}
    assert tickets == {*kept, fresh}
    assert after not in tickets  # deferred after the last backup: the store's real RPO
    assert oct((tmp_path / "backup.sqlite").stat().st_mode & 0o777) == "0o600"
    # Restoring again adds nothing: a row already there wins.
    assert store.restore(tmp_path / "backup.sqlite") == 0


def test_a_mirrored_store_loses_nothing_with_its_file(tmp_path: Path) -> None:
    from failover._fallback import DeferredStore

    store = DeferredStore(tmp_path / "deferred.sqlite", mirror=tmp_path / "mirror.sqlite")
    tickets = {store.add(_request(f"q{i}"), "down") for i in range(4)}
    (tmp_path / "deferred.sqlite").unlink()
    assert store.restore(tmp_path / "mirror.sqlite") == 4
    assert {r.ticket for r in store.list()} == tickets


def test_restore_from_a_missing_backup_is_a_store_error(tmp_path: Path) -> None:
    from failover._fallback import DeferredStore, StoreError

    with pytest.raises(StoreError, match="no such file"):
        DeferredStore(tmp_path / "d.sqlite").restore(tmp_path / "none.sqlite")


def test_the_router_backs_up_on_its_schedule(tmp_path: Path, fake: FakeProviders) -> None:
    config = failover.Config.from_mapping({
        "providers": {"a": {"type": "openai", "model": "m", "api_key": "sk-a-0123456789"}},
        "routes": {"default": {"chain": ["a"], "fallback": {"defer": True}}},
        "deferred": {"path": str(tmp_path / "d.sqlite"),
                     "backup": {"path": str(tmp_path / "b.sqlite"), "every": "50ms"}},
    })
    fake["a"].fail(503)
    with failover.Router(config) as router:
        with pytest.raises(failover.Deferred):
            router.complete("keep me")
        from failover._fallback import DeferredStore

        def backed_up() -> list[str]:
            return [r.request.messages[0].text
                    for r in DeferredStore(tmp_path / "b.sqlite").list()]

        # The backup thread runs on real time: wait (bounded) for the copy that holds it.
        eventually(lambda: backed_up() == ["keep me"], "the scheduled backup")
        assert not (tmp_path / "b.sqlite.partial").exists()
    with failover.Router(config) as router:
        assert router.backup_deferred(tmp_path / "manual.sqlite") == 1
    bare = failover.Config.from_mapping({"providers": {"a": {"type": "fake", "model": "s"}},
                                         "routes": {"default": {"chain": ["a"]}}})
    with failover.Router(bare) as router, pytest.raises(failover.BadRequest,
                                                         match="give a path"):
        router.restore_deferred()
