"""Structured output: the answer to a ``response_format`` request, parsed and validated.

Every answer to a schema request passes `parse_answer` before anyone sees it, whoever
gave it (any adapter, a stream's last chunk, the manual fallback), so ``reply.parsed``
means the same thing on every path. A pydantic model validates with pydantic itself; a
plain JSON schema with `schema_errors`, which checks the subset that providers' strict
structured-output modes accept (``type``, ``properties``, ``required``,
``additionalProperties``, ``items``, ``enum``, ``const``, ``anyOf``/``oneOf``, ``$ref``
into ``$defs``, length and range bounds). Keywords outside that subset are ignored,
never guessed at.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from ._errors import InvalidResponse
from ._models import JsonSchema, Response

__all__ = ["parse_answer", "parse_text", "schema_errors"]

_TYPES: dict[str, Any] = {
    "object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
}


def parse_answer(fmt: JsonSchema | None, response: Response, *, prefill: str | None = None
                 ) -> Response:
    """``response`` with ``parsed`` set; `InvalidResponse` (on that attempt, code
    ``output_schema``) if the answer is not JSON or does not match the schema. An answer
    that is all tool calls has nothing to parse. ``prefill`` is the text a continued
    stream's answer follows (the whole answer is both)."""
    if fmt is None or (response.tool_calls and not response.text.strip()):
        return response
    text = (prefill or "") + response.text
    response.parsed = parse_text(fmt, text, provider=response.provider or None)
    return response


def parse_text(fmt: JsonSchema, text: str, *, provider: str | None = None) -> Any:
    """The parsed value of ``text`` under ``fmt`` (a pydantic instance when ``fmt``
    carries a model), or `InvalidResponse` saying what does not match."""
    model = fmt.model
    try:
        if model is not None:
            return model.model_validate_json(_json_part(text))
        value = json.loads(_json_part(text))
    except ValueError as exc:  # pydantic's ValidationError is a ValueError too
        raise _mismatch(fmt, _summary(exc), provider) from None
    problems = schema_errors(fmt.schema or {"type": "object"}, value)
    if problems:
        raise _mismatch(fmt, "; ".join(problems[:3]), provider)
    return value


def _json_part(text: str) -> str:
    """The JSON in an answer, without the Markdown fence some models wrap it in."""
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0]
    return body


def _summary(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:3])[:300]


def _mismatch(fmt: JsonSchema, why: str, provider: str | None) -> InvalidResponse:
    return InvalidResponse(f"answer does not match response_format {fmt.name!r}: {why}",
                           provider=provider, code="output_schema")


def schema_errors(schema: Mapping[str, Any], value: Any, *, at: str = "$",
                  root: Mapping[str, Any] | None = None) -> list[str]:
    """What in ``value`` breaks ``schema`` (empty: it matches), each with its JSON path."""
    root = schema if root is None else root
    if "$ref" in schema:
        return schema_errors(_resolve(root, schema["$ref"]), value, at=at, root=root)
    problems = _choice_errors(schema, value, at, root)
    if problems is not None:
        return problems
    kind = schema.get("type")
    if kind is not None and not _is_type(value, kind):
        return [f"{at}: expected {kind}, got {_type_name(value)}"]
    if isinstance(value, dict):
        return _object_errors(schema, value, at, root)
    if isinstance(value, list):
        return _array_errors(schema, value, at, root)
    if isinstance(value, str):
        return _bound_errors(schema, len(value), at, "minLength", "maxLength", "characters")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _bound_errors(schema, value, at, "minimum", "maximum", "")
    return []


def _choice_errors(schema: Mapping[str, Any], value: Any, at: str,
                   root: Mapping[str, Any]) -> list[str] | None:
    """The verdict of ``anyOf``/``oneOf``/``enum``/``const``; None if there are none."""
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = schema[key]
            if any(not schema_errors(s, value, at=at, root=root) for s in options):
                return []
            return [f"{at}: matches none of {len(options)} {key} options"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{at}: {value!r} is not one of {list(schema['enum'])!r}"]
    if "const" in schema and value != schema["const"]:
        return [f"{at}: expected {schema['const']!r}"]
    return None


def _array_errors(schema: Mapping[str, Any], value: list[Any], at: str,
                  root: Mapping[str, Any]) -> list[str]:
    problems = _bound_errors(schema, len(value), at, "minItems", "maxItems", "items")
    items = schema.get("items")
    if isinstance(items, Mapping):
        for i, item in enumerate(value):
            problems += schema_errors(items, item, at=f"{at}[{i}]", root=root)
    return problems


def _object_errors(schema: Mapping[str, Any], value: dict[str, Any], at: str,
                   root: Mapping[str, Any]) -> list[str]:
    properties: Mapping[str, Any] = schema.get("properties", {})
    problems = [f"{at}: missing required {name!r}"
                for name in schema.get("required", ()) if name not in value]
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in properties:
            problems += schema_errors(properties[name], item, at=f"{at}.{name}", root=root)
        elif extra is False:
            problems.append(f"{at}: unexpected property {name!r}")
        elif isinstance(extra, Mapping):
            problems += schema_errors(extra, item, at=f"{at}.{name}", root=root)
    return problems


def _bound_errors(schema: Mapping[str, Any], size: float, at: str, low: str, high: str,
                  unit: str) -> list[str]:
    unit = f" {unit}" if unit else ""
    if low in schema and size < schema[low]:
        return [f"{at}: {size:g}{unit}, below {low} {schema[low]}"]
    if high in schema and size > schema[high]:
        return [f"{at}: {size:g}{unit}, above {high} {schema[high]}"]
    return []


def _is_type(value: Any, kind: Any) -> bool:
    if isinstance(kind, list):
        return any(_is_type(value, k) for k in kind)
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and math.isfinite(value) and value.is_integer())
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    expected = _TYPES.get(kind)
    return expected is None or isinstance(value, expected)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean",
            int: "integer", float: "number"}.get(type(value), type(value).__name__)


def _resolve(root: Mapping[str, Any], ref: str) -> Mapping[str, Any]:
    node: Any = root
    for part in ref.lstrip("#/").split("/") if ref.startswith("#") else ():
        node = node.get(part, {}) if isinstance(node, Mapping) else {}
    return node if isinstance(node, Mapping) else {}
