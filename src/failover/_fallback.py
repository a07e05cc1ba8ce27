"""The last line of defence: manual fallback callables and the deferred-request store.

When every provider of a route has failed, the route's ``fallback`` runs: a Python
callable (``module:function``, sync or async) that gets the `Request` and the error and
returns text or a `Response`; or ``defer: true``, which writes the request to a SQLite
file and raises `Deferred` with its ticket. Nothing is silently dropped: the row is
committed before `Deferred` is raised, and survives the process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ._errors import ConfigError
from ._models import (
    ContentPart,
    ImagePart,
    JsonSchema,
    Message,
    ReasoningPart,
    Request,
    Response,
    TextPart,
    ToolCall,
    ToolChoice,
    ToolSpec,
)
from ._secrets import scrub

__all__ = ["DeferredAnswer", "DeferredRecord", "DeferredState", "DeferredStore",
           "PeriodicBackup", "StoreError", "load_callable", "request_from_json",
           "request_to_json"]

logger = logging.getLogger("failover")


def load_callable(ref: str, where: str) -> Callable[..., Any]:
    """Import ``module:function``; a failure is a ConfigError naming the config path."""
    module_name, _, attr = ref.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(f"{where}: cannot import module {module_name!r}: {exc}") from None
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(f"{where}: module {module_name!r} has no {attr!r}") from None
    if not callable(target):
        raise ConfigError(f"{where}: {ref!r} is not callable")
    return target  # type: ignore[no-any-return]


# --- request (de)serialisation ----------------------------------------------------------


def _part_to_json(part: ContentPart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ReasoningPart):
        return dataclasses.asdict(part)
    return {
        "type": "image",
        "url": part.url,
        "data": part.data.hex() if part.data is not None else None,
        "media_type": part.media_type,
    }


def _part_from_json(raw: dict[str, Any]) -> ContentPart:
    if raw["type"] == "text":
        return TextPart(raw["text"])
    if raw["type"] == "reasoning":
        return ReasoningPart(**raw)
    data = raw.get("data")
    return ImagePart(url=raw.get("url"), data=bytes.fromhex(data) if data else None,
                     media_type=raw.get("media_type", "image/png"))


def request_to_json(request: Request) -> str:
    messages = []
    for m in request.messages:
        content: Any = m.content if isinstance(m.content, str) else [
            _part_to_json(p) for p in m.content
        ]
        messages.append({
            "role": m.role,
            "content": content,
            "tool_calls": [dataclasses.asdict(c) for c in m.tool_calls],
            "tool_call_id": m.tool_call_id,
            "name": m.name,
        })
    doc = {
        "messages": messages,
        "system": request.system,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop": list(request.stop),
        "tools": [
            {"name": t.name, "description": t.description, "parameters": dict(t.parameters)}
            for t in request.tools
        ],
        "tool_choice": dataclasses.asdict(request.tool_choice) if request.tool_choice else None,
        "response_format": (
            {"name": request.response_format.name,
             "schema": request.response_format.schema,
             "strict": request.response_format.strict}
            if request.response_format else None
        ),
        "metadata": dict(request.metadata),
        "route": request.route,
        "reasoning": request.reasoning,
        "options": dict(request.options),
    }
    return json.dumps(doc, separators=(",", ":"))


def request_from_json(text: str) -> Request:
    doc = json.loads(text)
    messages = tuple(
        Message(
            role=m["role"],
            content=m["content"] if isinstance(m["content"], str)
            else tuple(_part_from_json(p) for p in m["content"]),
            tool_calls=tuple(ToolCall(**c) for c in m.get("tool_calls", ())),
            tool_call_id=m.get("tool_call_id"),
            name=m.get("name"),
        )
        for m in doc["messages"]
    )
    fmt = doc.get("response_format")
    choice = doc.get("tool_choice")
    return Request(
        messages=messages,
        system=doc.get("system"),
        max_tokens=doc.get("max_tokens"),
        temperature=doc.get("temperature"),
        top_p=doc.get("top_p"),
        stop=tuple(doc.get("stop", ())),
        tools=tuple(ToolSpec(**t) for t in doc.get("tools", ())),
        tool_choice=ToolChoice(**choice) if choice else None,
        response_format=JsonSchema(**fmt) if fmt else None,
        metadata=doc.get("metadata", {}),
        route=doc.get("route", "default"),
        reasoning=doc.get("reasoning"),
        options=doc.get("options", {}),
    )


# --- the store -------------------------------------------------------------------------


class StoreError(Exception):
    """The deferred store cannot be opened, read or written; the message says why."""


@dataclass(frozen=True, slots=True)
class DeferredAnswer:
    """What a replay of a deferred request got back, kept for the people who wait on it."""

    text: str
    provider: str
    model: str
    finish_reason: str
    input_tokens: int
    output_tokens: int
    tool_calls: tuple[dict[str, Any], ...]
    answered_at: float

    @classmethod
    def of(cls, response: Response, when: float) -> DeferredAnswer:
        return cls(text=response.text, provider=response.provider, model=response.model,
                   finish_reason=response.finish_reason,
                   input_tokens=response.usage.input_tokens,
                   output_tokens=response.usage.output_tokens,
                   tool_calls=tuple(dataclasses.asdict(c) for c in response.tool_calls),
                   answered_at=when)


#: A row is ``pending`` until a replayer claims it (``replaying``, under a lease that
#: expires if the replayer dies), then ``answered`` (kept for ``keep_answers``) or back
#: to ``pending`` after a failed replay.
DeferredState = Literal["pending", "replaying", "answered"]


@dataclass(frozen=True, slots=True)
class DeferredRecord:
    ticket: str
    route: str
    created_at: float
    reason: str
    request: Request
    replays: int = 0
    state: DeferredState = "pending"
    answer: DeferredAnswer | None = None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS deferred (
    ticket        TEXT PRIMARY KEY,
    route         TEXT NOT NULL,
    created_at    REAL NOT NULL,
    reason        TEXT NOT NULL,
    request       TEXT NOT NULL,
    replays       INTEGER NOT NULL DEFAULT 0,
    state         TEXT NOT NULL DEFAULT 'pending',
    claimed_by    TEXT,
    claimed_until REAL,
    answer        TEXT,
    answered_at   REAL
)
"""
#: Columns added since the first version, for stores written by it.
_ADDED_COLUMNS = {
    "state": "TEXT NOT NULL DEFAULT 'pending'", "claimed_by": "TEXT",
    "claimed_until": "REAL", "answer": "TEXT", "answered_at": "REAL",
}
_COLUMNS = "ticket, route, created_at, reason, request, replays, state, answer"
_ALL = ("ticket, route, created_at, reason, request, replays, state, claimed_by, "
        "claimed_until, answer, answered_at")


class DeferredStore:
    """Deferred requests in a SQLite file (owner-only), every write committed before it
    returns. Every failure is a `StoreError` with a sentence, never a raw sqlite error."""

    def __init__(
        self, path: str | Path, *, lock_timeout: float = 5.0,
        keep_answers: float = 7 * 86400.0, replay_lease: float = 300.0,
        mirror: str | Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        self.keep_answers = keep_answers
        self.replay_lease = replay_lease
        #: A second store every deferral is also written to before `add` returns
        #: (``deferred.backup.every: 0``): losing one file loses nothing.
        self.mirror = None if mirror is None else DeferredStore(
            mirror, lock_timeout=lock_timeout, keep_answers=keep_answers,
            replay_lease=replay_lease)
        self._lock = threading.Lock()
        self._ready = False

    def _create(self) -> None:
        if not self.path.parent.exists():
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Created owner-only before SQLite opens it: it holds whole prompts. SQLite gives
        # its -wal and -shm files the same permissions.
        os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        if self.path.stat().st_mode & 0o077:
            self.path.chmod(0o600)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if self._ready and not self.path.exists():
            self._ready = False  # the file was deleted under us: start a new one
        try:
            if not self._ready:
                self._create()
            conn = sqlite3.connect(self.path, timeout=self.lock_timeout,
                                   isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(self._why(exc)) from None
        try:
            if not self._ready:
                self._prepare(conn)
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except (OSError, sqlite3.Error) as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise StoreError(self._why(exc)) from None
        finally:
            conn.close()

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(_SCHEMA)
        have = {row[1] for row in conn.execute("PRAGMA table_info(deferred)")}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in have:
                conn.execute(f"ALTER TABLE deferred ADD COLUMN {column} {kind}")
        self._ready = True

    def _why(self, exc: BaseException) -> str:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            detail = f"locked by another process for more than {self.lock_timeout:g}s"
        elif isinstance(exc, OSError):
            detail = exc.strerror or type(exc).__name__
        else:
            detail = str(exc) or type(exc).__name__
        return f"deferred store {self.path}: {detail}"

    def check(self) -> None:
        """Open (creating it if needed) and write the store now; `StoreError` if not."""
        with self._lock, self._connect() as conn:
            conn.execute("DELETE FROM deferred WHERE 0")

    def add(self, request: Request, reason: str) -> str:
        row = (uuid.uuid4().hex, request.route, time.time(), scrub(reason)[:2000],
               request_to_json(request))
        self._insert(row)
        if self.mirror is not None:
            self.mirror._insert(row)
        return row[0]

    def _insert(self, row: tuple[str, str, float, str, str]) -> None:
        with self._lock, self._connect() as conn:
            conn.execute("INSERT INTO deferred (ticket, route, created_at, reason, request) "
                         "VALUES (?, ?, ?, ?, ?)", row)

    def backup(self, to: str | Path) -> int:
        """A consistent copy of the store at ``to`` (owner-only; SQLite's online backup,
        safe while others write); the number of requests it holds."""
        self.check()  # a store never written is backed up as an empty one
        final = Path(to)
        # Written beside the target, then renamed over it: a reader (or a restore) never
        # sees half a backup, and a failed one leaves the last good one in place.
        target = DeferredStore(final.with_name(final.name + ".partial"),
                               lock_timeout=self.lock_timeout)
        target.path.unlink(missing_ok=True)
        target.check()
        with self._lock, self._plain() as source, target._plain() as copy:
            source.backup(copy)
            count = int(copy.execute("SELECT count(*) FROM deferred").fetchone()[0])
        try:
            os.replace(target.path, final)
        except OSError as exc:
            raise StoreError(f"deferred store backup {final}: {exc.strerror}") from None
        return count

    def restore(self, source: str | Path) -> int:
        """Put back every request of the backup at ``source`` that the store lacks (a
        row already here wins: it is as new or newer); the number put back."""
        origin = Path(source)
        if not origin.is_file():
            raise StoreError(f"deferred store backup {origin}: no such file")
        self.check()
        with self._lock, self._plain() as conn:
            conn.execute("ATTACH DATABASE ? AS backup", (str(origin),))
            conn.execute("BEGIN IMMEDIATE")
            added = conn.execute(
                f"INSERT OR IGNORE INTO deferred ({_ALL}) SELECT {_ALL} FROM backup.deferred"
            ).rowcount
            conn.execute("COMMIT")
            conn.execute("DETACH DATABASE backup")
        return int(added)

    @contextlib.contextmanager
    def _plain(self) -> Iterator[sqlite3.Connection]:
        """A connection outside any transaction (backup and ATTACH need one)."""
        try:
            conn = sqlite3.connect(self.path, timeout=self.lock_timeout,
                                   isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(self._why(exc)) from None
        try:
            yield conn
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(self._why(exc)) from None
        finally:
            conn.close()

    def list(self, state: DeferredState | None = None) -> list[DeferredRecord]:
        """Every row, oldest first (only ``state``'s, if given). No file: no rows."""
        if not self.path.exists():
            return []
        where, args = ("WHERE state = ?", (state,)) if state else ("", ())
        with self._lock, self._connect() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM deferred {where} ORDER BY created_at", args
            ).fetchall()
        return [_record(row) for row in rows]

    def get(self, ticket: str) -> DeferredRecord | None:
        if not self.path.exists():
            return None
        with self._lock, self._connect() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM deferred WHERE ticket = ?",
                               (ticket,)).fetchone()
        return _record(row) if row else None

    def claim(self, ticket: str, owner: str) -> DeferredRecord | None:
        """Take ``ticket`` for replay, atomically; None if another replayer has it (or it
        is answered). A claim whose replayer died is free again after ``replay_lease``."""
        now = time.time()
        with self._lock, self._connect() as conn:
            taken = conn.execute(
                "UPDATE deferred SET state = 'replaying', claimed_by = ?, claimed_until = ? "
                "WHERE ticket = ? AND (state = 'pending' OR "
                "(state = 'replaying' AND claimed_until < ?))",
                (owner, now + self.replay_lease, ticket, now),
            ).rowcount
            row = conn.execute(f"SELECT {_COLUMNS} FROM deferred WHERE ticket = ?",
                               (ticket,)).fetchone() if taken else None
        return _record(row) if row else None

    def answered(self, ticket: str, answer: DeferredAnswer) -> None:
        with self._lock, self._connect() as conn:
            conn.execute(
                "UPDATE deferred SET state = 'answered', answer = ?, answered_at = ?, "
                "claimed_by = NULL, claimed_until = NULL WHERE ticket = ?",
                (json.dumps(dataclasses.asdict(answer)), answer.answered_at, ticket),
            )
            conn.execute("DELETE FROM deferred WHERE state = 'answered' AND answered_at < ?",
                         (answer.answered_at - self.keep_answers,))

    def release(self, ticket: str, reason: str) -> None:
        """A replay that failed: the row is pending again, for a later replay."""
        with self._lock, self._connect() as conn:
            conn.execute(
                "UPDATE deferred SET state = 'pending', replays = replays + 1, reason = ?, "
                "claimed_by = NULL, claimed_until = NULL WHERE ticket = ?",
                (scrub(reason)[:2000], ticket),
            )

    def remove(self, ticket: str) -> None:
        with self._lock, self._connect() as conn:
            conn.execute("DELETE FROM deferred WHERE ticket = ?", (ticket,))


def _record(row: tuple[Any, ...]) -> DeferredRecord:
    answer = json.loads(row[7]) if row[7] else None
    return DeferredRecord(
        ticket=row[0], route=row[1], created_at=row[2], reason=row[3],
        request=request_from_json(row[4]), replays=row[5], state=row[6],
        answer=DeferredAnswer(**{**answer, "tool_calls": tuple(answer["tool_calls"])})
        if answer else None,
    )


class PeriodicBackup:
    """A daemon thread that calls ``backup()`` every ``every()`` seconds (read each
    time, so a reload changes it) until stopped or ``every()`` is None. A failed backup
    is logged and tried again next time: it never touches a request."""

    def __init__(self, backup: Callable[[], object], every: Callable[[], float | None]) -> None:
        self._backup = backup
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="failover-backup",
                                        daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while True:
            every = self._every()
            if not every or self._stop.wait(every):
                return
            try:
                self._backup()
            except StoreError as exc:
                logger.error("deferred store backup failed (tried again in %gs): %s",
                             every, exc)
