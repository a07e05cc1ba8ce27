"""What a conversation carries from one provider to the next, and the per-call options.

The rules every adapter applies when it translates history it did not write itself
(docs/clouds.md lists them hop by hop):

- Reasoning goes back only to the family that wrote it (`ReasoningPart.origin`): a
  signature is proof of origin, and every other provider refuses a foreign one. Left
  out, it is logged at debug level (logger ``failover.providers``) with the reason.
- Tool-call ids are mapped, not dropped: an id the provider would refuse (too long,
  characters outside its alphabet) becomes a stable digest of itself, the same for the
  call and for its result, so results still match their calls.
- Options: the config's ``options``, then the call's (flat, or under a provider type's
  name for that type only); an option the provider's API does not take is left out
  with a debug log, never sent and never a crash.
- ``reasoning`` (none .. high) maps to each provider's own knob; a provider whose
  ``capabilities.reasoning`` is false gets none (debug log).
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from .._models import ReasoningPart, Request

__all__ = [
    "THINKING_BUDGET",
    "TYPE_SCOPES",
    "carried_reasoning",
    "dropped",
    "mapped_id",
    "new_call_id",
    "provider_options",
]

logger = logging.getLogger("failover.providers")

#: Thinking tokens for each unified effort, where a provider counts them (Anthropic's
#: ``budget_tokens``, Gemini's ``thinking_budget``). ``none`` turns thinking off.
THINKING_BUDGET: dict[str, int] = {"none": 0, "minimal": 1024, "low": 2048, "medium": 8192,
                                   "high": 24576}

#: Keys of ``options`` that scope the options inside them to one provider type.
TYPE_SCOPES = frozenset({"openai", "azure", "anthropic", "gemini"})


def dropped(provider: str, what: str, why: str) -> None:
    logger.debug("%s: left out %s: %s", provider, what, why)


def new_call_id() -> str:
    """An id for a tool call whose provider gave none (Gemini): unique across turns, so
    a provider that wants unique ids (Anthropic) still gets them after a failover."""
    return f"call_{uuid.uuid4().hex[:24]}"


def mapped_id(call_id: str, *, allowed: re.Pattern[str], prefix: str) -> str:
    """``call_id`` if ``allowed`` matches it whole, else a stable digest of it that does."""
    if allowed.fullmatch(call_id):
        return call_id
    return prefix + hashlib.sha256(call_id.encode()).hexdigest()[:24]


def carried_reasoning(parts: Iterable[ReasoningPart], family: str,
                      provider: str) -> list[ReasoningPart]:
    """The parts ``family`` accepts back: its own, signed (or redacted) ones."""
    kept = []
    for part in parts:
        if part.origin != family:
            dropped(provider, "a reasoning block", f"written by {part.origin or 'unknown'}, "
                    f"and {family} refuses reasoning it did not sign")
        elif part.signature is None and part.redacted is None:
            dropped(provider, "a reasoning block", "it has no signature")
        else:
            kept.append(part)
    return kept


def provider_options(request: Request, configured: Mapping[str, Any], provider_type: str,
                     known: Iterable[str], provider: str) -> dict[str, Any]:
    """The options this provider's API takes, the call's over the config's."""
    if not configured and not request.options:
        return {}  # the common case: nothing to merge on the per-request path
    merged: dict[str, Any] = {}
    for source in (configured, request.options):
        for name, value in source.items():
            if name in TYPE_SCOPES:
                if name == provider_type and isinstance(value, Mapping):
                    merged.update(value)
                continue
            merged[name] = value
    accepted = frozenset(known)
    for name in [n for n in merged if n not in accepted]:
        dropped(provider, f"option {name!r}", f"{provider_type} does not take it")
        del merged[name]
    return merged
