"""What each API refuses in a conversation: the rules a request must keep to be valid.

`wire_problems` reads a request body as the provider that received it would, and lists
what that provider answers with a 400 (or, worse, silently misreads): turns out of
order, tool results that answer no call, tool-call ids it does not take, reasoning it
did not sign. A simulated provider accepts only its own signatures back (see
`_wire.simulated_signature`), as the real ones do. With ``FakeProviders(strict=True)``
a request with a problem is refused with a 400 in the provider's format, naming it.

The rules are those the providers document and enforce (Chat Completions, Anthropic
Messages, Gemini ``generateContent``); they are not exhaustive, and they are checked
by the tests of this library against what its adapters send.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from typing import Any

from ..providers._wire import WireFormat, simulated_signature

__all__ = ["wire_problems"]

_OPENAI_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_OPENAI_PARTS = frozenset({"text", "image_url", "input_audio", "file"})
_ANTHROPIC_BLOCKS = frozenset({"text", "image", "document", "tool_use", "tool_result",
                               "thinking", "redacted_thinking"})
_ANTHROPIC_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_GEMINI_DATA = ("text", "functionCall", "functionResponse", "inlineData", "fileData")
#: What Gemini accepts in place of a lost thought signature.
_GEMINI_PLACEHOLDERS = frozenset({b"skip_thought_signature_validator",
                                  b"context_engineering_is_the_way_to_go"})


def wire_problems(fmt: WireFormat | None, body: Any, model: str | None = None) -> list[str]:
    """Each rule of ``fmt``'s API that ``body`` breaks (empty: a valid request)."""
    if not isinstance(body, dict):
        return ["the body is not a JSON object"]
    if fmt == "openai":
        return list(_openai(body))
    if fmt == "anthropic":
        return list(_anthropic(body))
    if fmt == "gemini":
        return list(_gemini(body, model or ""))
    return []


# --- Chat Completions -------------------------------------------------------------------


def _openai(body: dict[str, Any]) -> Iterator[str]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        yield "messages: a non-empty list is required"
        return
    open_calls: set[str] = set()
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = message.get("role")
        if role not in _OPENAI_ROLES:
            yield f"{where}.role: {role!r} is not a role"
        if role != "tool" and open_calls:
            yield f"{where}: tool calls {sorted(open_calls)} have no tool message before it"
            open_calls.clear()
        yield from _openai_message(message, where, open_calls)
    # A conversation may end on an assistant's tool calls only if nothing follows.


def _openai_message(message: dict[str, Any], where: str, open_calls: set[str]) -> Iterator[str]:
    for key in ("thinking", "reasoning", "reasoning_content", "thought_signature"):
        if key in message:
            yield f"{where}.{key}: Chat Completions takes no reasoning input"
    content = message.get("content")
    if isinstance(content, list):
        for j, part in enumerate(content):
            if part.get("type") not in _OPENAI_PARTS:
                yield f"{where}.content[{j}].type: {part.get('type')!r} is not a content part"
    if message.get("role") == "tool":
        call_id = message.get("tool_call_id")
        if call_id not in open_calls:
            yield f"{where}.tool_call_id: {call_id!r} answers no tool call of the turn before"
        open_calls.discard(call_id)
    for j, call in enumerate(message.get("tool_calls") or ()):
        call_id = str(call.get("id", ""))
        if not call_id or len(call_id) > 40:
            yield f"{where}.tool_calls[{j}].id: {call_id!r} is not 1 to 40 characters"
        arguments = call.get("function", {}).get("arguments")
        if not isinstance(arguments, str):
            yield f"{where}.tool_calls[{j}].function.arguments: must be a JSON string"
        open_calls.add(call_id)


# --- Anthropic Messages -----------------------------------------------------------------


def _anthropic(body: dict[str, Any]) -> Iterator[str]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        yield "messages: a non-empty list is required"
        return
    if messages[0].get("role") != "user":
        yield "messages[0].role: the first turn must be the user's"
    seen_ids: set[str] = set()
    asked: set[str] = set()
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = message.get("role")
        if i and role == messages[i - 1].get("role"):
            yield f"{where}.role: turns must alternate (two {role} turns in a row)"
        blocks = _blocks(message.get("content"))
        if role == "assistant":
            yield from _anthropic_assistant(blocks, where, seen_ids)
            asked = {str(b.get("id")) for b in blocks if b.get("type") == "tool_use"}
        else:
            yield from _anthropic_user(blocks, where, asked)
            asked = set()
    yield from _anthropic_thinking_rules(body, messages)


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or () if isinstance(b, dict)]


def _anthropic_assistant(blocks: list[dict[str, Any]], where: str,
                         seen_ids: set[str]) -> Iterator[str]:
    others = False
    for j, block in enumerate(blocks):
        here = f"{where}.content[{j}]"
        kind = block.get("type")
        if kind not in _ANTHROPIC_BLOCKS:
            yield f"{here}.type: {kind!r} is not a content block"
        if kind == "text" and not block.get("text"):
            yield f"{here}: text blocks must be non-empty"
        if kind in ("thinking", "redacted_thinking"):
            if others:
                yield f"{here}: thinking must come before the turn's text and tool calls"
            if kind == "thinking" and block.get("signature") != simulated_signature(
                    "anthropic", str(block.get("thinking", ""))):
                yield f"{here}.signature: not a signature this provider gave"
        else:
            others = True
        if kind == "tool_use":
            call_id = str(block.get("id", ""))
            if not _ANTHROPIC_ID.fullmatch(call_id):
                yield f"{here}.id: {call_id!r} does not match ^[a-zA-Z0-9_-]+$"
            if call_id in seen_ids:
                yield f"{here}.id: {call_id!r} is not unique"
            seen_ids.add(call_id)


def _anthropic_user(blocks: list[dict[str, Any]], where: str, asked: set[str]) -> Iterator[str]:
    answered = set()
    for j, block in enumerate(blocks):
        kind = block.get("type")
        if kind not in _ANTHROPIC_BLOCKS - {"tool_use", "thinking", "redacted_thinking"}:
            yield f"{where}.content[{j}].type: {kind!r} does not belong in a user turn"
        if kind == "tool_result":
            call_id = block.get("tool_use_id")
            if call_id not in asked:
                yield (f"{where}.content[{j}].tool_use_id: {call_id!r} answers no tool_use "
                       "of the turn before")
            answered.add(call_id)
    for call_id in sorted(asked - answered):
        yield f"{where}: tool_use {call_id!r} of the turn before has no tool_result"


def _anthropic_thinking_rules(body: dict[str, Any], messages: list[Any]) -> Iterator[str]:
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return
    if "temperature" in body and body["temperature"] != 1:
        yield "temperature: not accepted with thinking enabled"
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or budget < 1024 or budget >= body.get("max_tokens", 0):
        yield "thinking.budget_tokens: at least 1024 and below max_tokens"
    last = next((m for m in reversed(messages) if m.get("role") == "assistant"), None)
    blocks = _blocks(last.get("content")) if last else []
    if any(b.get("type") == "tool_use" for b in blocks) and blocks[0].get("type") not in (
            "thinking", "redacted_thinking"):
        yield ("messages: with thinking enabled, the last assistant turn with tool_use must "
               "start with a thinking block")


# --- Gemini generateContent ---------------------------------------------------------------


def _gemini(body: dict[str, Any], model: str) -> Iterator[str]:
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        yield "contents: a non-empty list is required"
        return
    called: list[str] = []
    for i, content in enumerate(contents):
        where = f"contents[{i}]"
        role = content.get("role")
        if role not in ("user", "model"):
            yield f"{where}.role: {role!r} is not user or model"
        parts = content.get("parts") or []
        for j, part in enumerate(parts):
            yield from _gemini_part(part, f"{where}.parts[{j}]", role, model)
        responses = [p["functionResponse"].get("name") for p in parts if "functionResponse" in p]
        if called and sorted(responses) != sorted(called):
            yield f"{where}: function responses {responses} do not answer the calls {called}"
        called = [p["functionCall"].get("name") for p in parts if "functionCall" in p]
    for key in ("messages", "tool_call_id"):
        if key in body:
            yield f"{key}: not a field of generateContent"


def _gemini_part(part: dict[str, Any], where: str, role: Any, model: str) -> Iterator[str]:
    data = [k for k in _GEMINI_DATA if k in part]
    if len(data) != 1:
        yield f"{where}: a part holds exactly one of {', '.join(_GEMINI_DATA)} (has {data})"
    signature = part.get("thoughtSignature")
    if signature is not None:
        raw = _decoded(str(signature))
        if raw not in _GEMINI_PLACEHOLDERS and not raw.startswith(b"sim-gemini-"):
            yield f"{where}.thoughtSignature: not a signature this provider gave"
    if ("functionCall" in part and role == "model" and signature is None
            and model.rsplit("/", 1)[-1].startswith("gemini-3")):
        yield f"{where}: a function call of Gemini 3 needs its thought signature"
    if part.get("thought") and role != "model":
        yield f"{where}.thought: only model turns hold thoughts"


def _decoded(signature: str) -> bytes:
    """A signature's bytes (JSON carries bytes as base64, standard or URL-safe)."""
    padded = signature + "=" * (-len(signature) % 4)
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            return decode(padded)
        except (binascii.Error, ValueError):
            continue
    return b""

