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
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import ConfigError
from ._models import (
    ImagePart,
    JsonSchema,
    Message,
    Request,
    TextPart,
    ToolCall,
    ToolChoice,
    ToolSpec,
)

__all__ = ["DeferredRecord", "DeferredStore", "load_callable", "request_from_json",
           "request_to_json"]


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


def _part_to_json(part: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    return {
        "type": "image",
        "url": part.url,
        "data": part.data.hex() if part.data is not None else None,
        "media_type": part.media_type,
    }


def _part_from_json(raw: dict[str, Any]) -> TextPart | ImagePart:
    if raw["type"] == "text":
        return TextPart(raw["text"])
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
    )


# --- the store -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeferredRecord:
    ticket: str
    route: str
    created_at: float
    reason: str
    request: Request
    replays: int = 0


_SCHEMA = """
CREATE TABLE IF NOT EXISTS deferred (
    ticket     TEXT PRIMARY KEY,
    route      TEXT NOT NULL,
    created_at REAL NOT NULL,
    reason     TEXT NOT NULL,
    request    TEXT NOT NULL,
    replays    INTEGER NOT NULL DEFAULT 0
)
"""


class DeferredStore:
    """Deferred requests in a SQLite file; every write is committed before returning."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(_SCHEMA)
            yield conn
            conn.commit()
        finally:
            conn.close()

    def add(self, request: Request, reason: str) -> str:
        ticket = uuid.uuid4().hex
        with self._lock, self._connect() as conn:
            conn.execute(
                "INSERT INTO deferred (ticket, route, created_at, reason, request) "
                "VALUES (?, ?, ?, ?, ?)",
                (ticket, request.route, time.time(), reason[:2000], request_to_json(request)),
            )
        return ticket

    def list(self) -> list[DeferredRecord]:
        if not self.path.exists():
            return []
        with self._lock, self._connect() as conn:
            rows = conn.execute(
                "SELECT ticket, route, created_at, reason, request, replays FROM deferred "
                "ORDER BY created_at"
            ).fetchall()
        return [
            DeferredRecord(ticket=r[0], route=r[1], created_at=r[2], reason=r[3],
                           request=request_from_json(r[4]), replays=r[5])
            for r in rows
        ]

    def remove(self, ticket: str) -> None:
        with self._lock, self._connect() as conn:
            conn.execute("DELETE FROM deferred WHERE ticket = ?", (ticket,))

    def note_replay_failed(self, ticket: str, reason: str) -> None:
        with self._lock, self._connect() as conn:
            conn.execute(
                "UPDATE deferred SET replays = replays + 1, reason = ? WHERE ticket = ?",
                (reason[:2000], ticket),
            )
