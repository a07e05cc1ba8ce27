"""The unified data model: what goes into a provider and what comes back.

Everything here is a plain dataclass with no I/O, so adapters, the router and tests
share one vocabulary whatever the provider's wire format.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, TypedDict, cast, get_args

from ._errors import BadRequest
from ._types import REASONING_EFFORTS, FinishReason, Reasoning, Role

__all__ = [
    "Attempt",
    "Completed",
    "CompletionParams",
    "ContentPart",
    "ImagePart",
    "JsonSchema",
    "Message",
    "ReasoningPart",
    "Request",
    "Response",
    "Restart",
    "StreamEvent",
    "TextDelta",
    "TextPart",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "ToolSpec",
    "Usage",
    "build_request",
    "check_params",
    "check_seconds",
    "events_of",
    "normalize_messages",
]

_ROLES = frozenset(get_args(Role))


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str
    type: Literal["text"] = "text"


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image given by URL (``https://`` or ``data:``) or by raw bytes."""

    url: str | None = None
    data: bytes | None = None
    media_type: str = "image/png"
    type: Literal["image"] = "image"


@dataclass(frozen=True, slots=True)
class ReasoningPart:
    """A model's reasoning in an assistant turn, kept so the next turn can send it back.

    ``signature`` is the provider's proof that the reasoning is its own (Anthropic's
    thinking signature, Gemini's thought signature); ``redacted`` holds Anthropic's
    encrypted ``redacted_thinking`` data. ``origin`` names the family that made it
    (``anthropic``: the Claude API, Bedrock and Vertex AI; ``gemini``: the Developer API
    and Vertex AI): only that family accepts it back, every other adapter leaves it out
    (with a debug log), since a foreign signature is refused.
    """

    text: str = ""
    signature: str | None = None
    redacted: str | None = None
    origin: str | None = None
    type: Literal["reasoning"] = "reasoning"


ContentPart = TextPart | ImagePart | ReasoningPart


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]
    #: Gemini's thought signature for this call, sent back with it to Gemini only.
    signature: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str | tuple[ContentPart, ...] = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise ValueError(f"Message.role: expected one of {sorted(_ROLES)}, "
                             f"got {self.role!r}")
        if not isinstance(self.content, (str, tuple)):
            raise TypeError(f"Message.content: expected a str or a tuple of parts, got "
                            f"{type(self.content).__name__}")

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def has_images(self) -> bool:
        return not isinstance(self.content, str) and any(
            isinstance(p, ImagePart) for p in self.content
        )

    @property
    def reasoning(self) -> tuple[ReasoningPart, ...]:
        if isinstance(self.content, str):
            return ()
        return tuple(p for p in self.content if isinstance(p, ReasoningPart))


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """``auto``, ``none``, ``required`` (any tool), or ``tool`` with a name."""

    mode: Literal["auto", "none", "required", "tool"]
    name: str | None = None


@dataclass(frozen=True, slots=True)
class JsonSchema:
    """Structured output. ``schema=None`` asks for any JSON object (JSON mode).

    ``model`` is the pydantic model the schema came from, if any: answers are validated
    by it and ``Response.parsed`` is an instance of it."""

    name: str = "response"
    schema: Mapping[str, Any] | None = None
    strict: bool = True
    model: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Request:
    """One provider-neutral completion request, as adapters and fallbacks see it."""

    messages: tuple[Message, ...]
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice | None = None
    response_format: JsonSchema | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    route: str = "default"
    #: Assistant text the answer must continue (stream ``continue`` recovery).
    prefill: str | None = None
    #: How hard the model should think, mapped to each provider's own knob
    #: (`REASONING_EFFORTS`); None: the provider's default.
    reasoning: Reasoning | None = None
    #: Provider options for this call (over the config's ``options``): each adapter
    #: sends those its API takes; a key naming a provider type (``openai``, ``azure``,
    #: ``anthropic``, ``gemini``) holds options for that type only.
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def needs_images(self) -> bool:
        return any(m.has_images for m in self.messages)

    def estimated_input_tokens(self) -> int:
        """A cheap upper-ish estimate (4 characters a token) for context-window checks."""
        chars = len(self.system or "") + sum(len(m.text) for m in self.messages)
        return chars // 4 + 1


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try on one provider: what a request cost, kept whether it worked or not."""

    provider: str
    model: str
    outcome: Literal["ok", "error", "cancelled"]
    error_kind: str | None = None
    http_status: int | None = None
    latency_s: float = 0.0
    detail: str = ""
    #: When the attempt began, in seconds after the request began (hedges overlap).
    started_s: float = field(default=0.0, compare=False)
    #: A stream's time to its first delta, from the attempt's start; None otherwise.
    first_token_s: float | None = field(default=None, compare=False)


@dataclass(slots=True)
class Response:
    """The answer. ``provider`` and ``model`` name what really served it."""

    text: str
    finish_reason: FinishReason
    usage: Usage = field(default_factory=Usage)
    provider: str = ""
    model: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    latency_s: float = 0.0
    attempts: list[Attempt] = field(default_factory=list)
    raw: Any = field(default=None, repr=False, compare=False)
    #: The validated answer to a ``response_format`` request: a pydantic instance when
    #: the format was a model, else the parsed JSON; None without a format.
    parsed: Any = field(default=None, compare=False)
    #: The model's reasoning (thinking blocks, thought summaries and signatures).
    reasoning: tuple[ReasoningPart, ...] = ()

    @property
    def message(self) -> Message:
        """This answer as the assistant turn to append to the conversation, with its
        reasoning and signatures, so the next turn can go to any provider."""
        parts: tuple[ContentPart, ...] = (*self.reasoning,
                                          *((TextPart(self.text),) if self.text else ()))
        content: str | tuple[ContentPart, ...] = parts if self.reasoning else self.text
        return Message("assistant", content, tool_calls=self.tool_calls)


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str
    type: Literal["text"] = "text"


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a tool call; ``arguments`` is a JSON fragment, keyed by ``index``."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    type: Literal["tool_call"] = "tool_call"


@dataclass(frozen=True, slots=True)
class Restart:
    """Drop what was shown so far: the answer starts again on ``provider``."""

    provider: str
    reason: str
    type: Literal["restart"] = "restart"


@dataclass(frozen=True, slots=True)
class Completed:
    response: Response
    type: Literal["completed"] = "completed"


StreamEvent = TextDelta | ToolCallDelta | Restart | Completed


def events_of(response: Response) -> Iterator[StreamEvent]:
    """A whole answer as the events a stream of it gives: its text as one delta, each
    tool call whole, then `Completed`."""
    if response.text:
        yield TextDelta(response.text)
    for index, call in enumerate(response.tool_calls):
        yield ToolCallDelta(index=index, id=call.id, name=call.name,
                            arguments=json.dumps(call.arguments))
    yield Completed(response)


# --- input normalisation --------------------------------------------------------------

MessagesInput = str | Sequence[Message | Mapping[str, Any]]


def _content_from_dict(raw: Any, where: str) -> str | tuple[ContentPart, ...]:
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, Sequence):
        raise BadRequest(f"{where}.content: expected a string or a list of parts")
    return tuple(_part_from_dict(part, f"{where}.content[{i}]") for i, part in enumerate(raw))


def _part_from_dict(part: Any, where: str) -> ContentPart:
    if isinstance(part, (TextPart, ImagePart, ReasoningPart)):
        return part
    if not isinstance(part, Mapping):
        raise BadRequest(f"{where}: expected a dict part")
    kind = part.get("type")
    if kind == "text":
        return TextPart(str(part.get("text", "")))
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        if not isinstance(url, str):
            raise BadRequest(f"{where}.image_url: expected a url")
        return ImagePart(url=url, media_type=_media_type_of(url))
    if kind in ("reasoning", "thinking", "redacted_thinking"):
        return _reasoning_from_dict(part, kind)
    if kind == "image":
        data = part.get("data")
        return ImagePart(
            url=part.get("url"),
            data=data if isinstance(data, bytes) else None,
            media_type=str(part.get("media_type", "image/png")),
        )
    raise BadRequest(f"{where}: unknown part type {kind!r}")


def _reasoning_from_dict(part: Mapping[str, Any], kind: str) -> ReasoningPart:
    """``{"type": "reasoning", ...}``, or Anthropic's own ``thinking`` and
    ``redacted_thinking`` blocks as an application kept them."""
    if kind == "reasoning":
        return ReasoningPart(text=str(part.get("text", "")), signature=part.get("signature"),
                             redacted=part.get("redacted"), origin=part.get("origin"))
    if kind == "thinking":
        return ReasoningPart(text=str(part.get("thinking", "")),
                             signature=part.get("signature"), origin="anthropic")
    return ReasoningPart(redacted=str(part.get("data", "")), origin="anthropic")


def _media_type_of(url: str) -> str:
    if url.startswith("data:") and ";" in url:
        return url[5 : url.index(";")]
    lower = url.lower()
    for ext, media in ((".jpg", "image/jpeg"), (".jpeg", "image/jpeg"), (".gif", "image/gif"),
                       (".webp", "image/webp")):
        if lower.endswith(ext):
            return media
    return "image/png"


def _tool_calls_from_dict(raw: Any, where: str) -> tuple[ToolCall, ...]:
    if not raw:
        return ()
    calls: list[ToolCall] = []
    for i, item in enumerate(raw):
        if isinstance(item, ToolCall):
            calls.append(item)
            continue
        here = f"{where}.tool_calls[{i}]"
        fn = item.get("function", item) if isinstance(item, Mapping) else None
        if not isinstance(fn, Mapping):
            raise TypeError(f"{here}: expected a ToolCall or a dict, got {type(item).__name__}")
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise BadRequest(f"{here}.name: a tool call needs the name of its tool")
        args = fn.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args) if args else {}
            except ValueError:
                raise BadRequest(f"{here}.arguments: not valid JSON") from None
        if not isinstance(args, Mapping):
            raise BadRequest(f"{here}.arguments: expected a JSON object")
        signature = item.get("signature") if isinstance(item, Mapping) else None
        calls.append(ToolCall(id=str(item.get("id", f"call_{i}")), name=name,
                              arguments=dict(args), signature=signature))
    return tuple(calls)


def normalize_messages(
    messages: MessagesInput, system: str | None = None
) -> tuple[tuple[Message, ...], str | None]:
    """Accept a str, `Message` objects or OpenAI-style dicts; pull system text out.

    System messages inside the list are joined (in order, after ``system=``) so every
    provider sees one system prompt, which is all Anthropic and Gemini accept.
    """
    if system is not None and not isinstance(system, str):
        raise TypeError(f"system: expected a str, got {type(system).__name__}")
    if isinstance(messages, str):
        if not messages:
            raise BadRequest("messages: the prompt is empty")
        return (Message("user", messages),), system
    if isinstance(messages, Message):
        messages = [messages]
    if not isinstance(messages, Sequence):
        raise TypeError("messages: expected a str, a Message or a list of messages (Message "
                        f"or {{'role': ..., 'content': ...}} dicts), got "
                        f"{type(messages).__name__}")
    out: list[Message] = []
    systems: list[str] = [system] if system else []
    for i, item in enumerate(messages):
        msg = _message_from(item, f"messages[{i}]")
        if msg.role == "system":
            systems.append(msg.text)
        else:
            out.append(msg)
    if not out:
        raise BadRequest("messages: at least one non-system message is required")
    return tuple(out), ("\n\n".join(systems) if systems else None)


def _message_from(item: Any, where: str) -> Message:
    if isinstance(item, Message):
        return item
    if not isinstance(item, Mapping):
        raise BadRequest(f"{where}: expected a Message or a dict, got {type(item).__name__}")
    role = item.get("role")
    if role not in _ROLES:
        raise BadRequest(f"{where}.role: expected one of {sorted(_ROLES)}, got {role!r}")
    if role == "tool" and not item.get("tool_call_id"):
        raise BadRequest(f"{where}.tool_call_id: a tool result needs the id of the call it "
                         "answers")
    return Message(
        role=cast("Role", role),
        content=_content_from_dict(item.get("content"), where),
        tool_calls=_tool_calls_from_dict(item.get("tool_calls"), where),
        tool_call_id=item.get("tool_call_id"),
        name=item.get("name"),
    )


def _tool_spec(raw: Any, i: int) -> ToolSpec:
    if isinstance(raw, ToolSpec):
        return raw
    if not isinstance(raw, Mapping):
        raise BadRequest(f"tools[{i}]: expected a dict or ToolSpec")
    fn = raw.get("function", raw) if raw.get("type", "function") == "function" else raw
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"tools[{i}].name: required")
    params = fn.get("parameters") or fn.get("input_schema") or {"type": "object", "properties": {}}
    return ToolSpec(name=name, description=str(fn.get("description", "")), parameters=params)


def _tool_choice(raw: Any) -> ToolChoice | None:
    if raw is None or isinstance(raw, ToolChoice):
        return raw
    if raw in ("auto", "none", "required"):
        return ToolChoice(raw)
    if raw == "any":
        return ToolChoice("required")
    if isinstance(raw, Mapping):
        fn = raw.get("function", raw)
        if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
            return ToolChoice("tool", fn["name"])
    raise BadRequest(f"tool_choice: expected 'auto', 'none', 'required' or a tool, got {raw!r}")


def _response_format(raw: Any) -> JsonSchema | None:
    if raw is None or isinstance(raw, JsonSchema):
        return raw
    if isinstance(raw, type) and hasattr(raw, "model_json_schema"):
        return JsonSchema(name=raw.__name__, schema=raw.model_json_schema(), model=raw)
    if isinstance(raw, Mapping):
        kind = raw.get("type")
        if kind == "json_object":
            return JsonSchema(schema=None, strict=False)
        if kind == "json_schema":
            spec = raw.get("json_schema", {})
            return JsonSchema(
                name=str(spec.get("name", "response")),
                schema=spec.get("schema"),
                strict=bool(spec.get("strict", True)),
            )
        if "properties" in raw or kind == "object":
            return JsonSchema(schema=raw)
    raise BadRequest(
        "response_format: expected {'type': 'json_schema', 'json_schema': {...}}, "
        "{'type': 'json_object'}, a JSON schema or a pydantic model"
    )


def build_request(
    messages: MessagesInput,
    *,
    route: str = "default",
    system: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    stop: str | Iterable[str] | None = None,
    tools: Sequence[Any] | None = None,
    tool_choice: Any = None,
    response_format: Any = None,
    metadata: Mapping[str, str] | None = None,
    reasoning: Reasoning | None = None,
    options: Mapping[str, Any] | None = None,
) -> Request:
    """The unified request, every parameter checked first: a caller's mistake raises
    `TypeError` or `ValueError` (`BadRequest`) naming it, before anything is sent, so it
    never counts against a provider."""
    msgs, sys_text = normalize_messages(messages, system)
    if max_tokens is not None and (type(max_tokens) is not int or max_tokens <= 0):
        raise BadRequest(f"max_tokens: expected a positive int, got {max_tokens!r}")
    # Built on every call: the common no-tools, no-format case skips the normalisers.
    return Request(
        messages=msgs,
        system=sys_text,
        max_tokens=max_tokens,
        temperature=None if temperature is None else _number("temperature", temperature, 2.0),
        top_p=None if top_p is None else _number("top_p", top_p, 1.0),
        stop=() if stop is None else _stop(stop),
        tools=_tools(tools) if tools is not None else (),
        tool_choice=None if tool_choice is None else _tool_choice(tool_choice),
        response_format=None if response_format is None else _json_safe(
            "response_format", _response_format(response_format)),
        metadata=_NO_METADATA if metadata is None else _metadata(metadata),
        route=route,
        reasoning=None if reasoning is None else _reasoning(reasoning),
        options=_NO_METADATA if options is None else _options(options),
    )


def _reasoning(value: Any) -> Reasoning:
    if value not in REASONING_EFFORTS:
        raise BadRequest(f"reasoning: expected one of {', '.join(map(repr, REASONING_EFFORTS))}"
                         f", got {value!r}")
    return cast("Reasoning", value)


def _options(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise TypeError(f"options: expected a mapping of option names to values, got "
                        f"{type(value).__name__}")
    return dict(_json_safe("options", value)) if value else _NO_METADATA


def _number(name: str, value: Any, most: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a number from 0 to {most:g}, got {value!r}")
    if not 0.0 <= value <= most:  # NaN fails this too
        raise BadRequest(f"{name}: expected a number from 0 to {most:g}, got {value!r}")
    return float(value)


def _stop(stop: Any) -> tuple[str, ...]:
    if isinstance(stop, str):
        return (stop,) if stop else ()
    if not isinstance(stop, Sequence) or not all(isinstance(s, str) for s in stop):
        raise TypeError(f"stop: expected a str or a list of str, got {stop!r}")
    return tuple(stop)


def _tools(tools: Any) -> tuple[ToolSpec, ...]:
    if not isinstance(tools, Sequence) or isinstance(tools, (str, bytes)):
        raise TypeError(f"tools: expected a list of tools, got {type(tools).__name__}")
    specs = tuple(_tool_spec(t, i) for i, t in enumerate(tools))
    for i, spec in enumerate(specs):
        _json_safe(f"tools[{i}].parameters", spec.parameters)
    return specs


def _json_safe(name: str, value: Any) -> Any:
    """``value`` unchanged if it can be sent as JSON (no NaN, no sets, no objects)."""
    try:
        json.dumps(value if not isinstance(value, JsonSchema) else value.schema,
                   allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"{name}: not JSON-serialisable ({exc})") from None
    return value


def _metadata(metadata: Any) -> Mapping[str, str]:
    if not isinstance(metadata, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise TypeError(f"metadata: expected a mapping of str to str, got {metadata!r}")
    return dict(metadata) if metadata else _NO_METADATA


_NO_METADATA: Mapping[str, str] = MappingProxyType({})

class CompletionParams(TypedDict, total=False):
    """The keyword parameters of a completion, for type checkers (``**params``)."""

    max_tokens: int
    temperature: float
    top_p: float
    stop: str | Sequence[str]
    tools: Sequence[Any]
    tool_choice: Any
    response_format: Any
    metadata: Mapping[str, str]
    reasoning: Reasoning
    options: Mapping[str, Any]


#: The keyword parameters of a completion (besides ``messages`` and ``route``): the
#: names of `CompletionParams`, plus ``system``.
REQUEST_PARAMS = frozenset(CompletionParams.__annotations__) | {"system"}


def check_params(names: Iterable[str], where: str) -> None:
    """A keyword the API does not know is the caller's typo: name it and what is known."""
    unknown = [n for n in names if n not in REQUEST_PARAMS]
    if unknown:
        import difflib

        hints = [f"{n!r}" + (f" (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(
            n, REQUEST_PARAMS, n=1)) else "") for n in unknown]
        known = ", ".join(sorted(REQUEST_PARAMS | {"timeout", "deadline"}))
        raise TypeError(f"{where}() got unexpected keyword argument(s) {', '.join(hints)}; "
                        f"accepted: {known}")


def check_seconds(name: str, value: Any) -> float | None:
    """``timeout`` / ``deadline``: None, or a finite number of seconds above zero."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a number of seconds, got {value!r}")
    if not 0.0 < value <= MAX_SECONDS:  # NaN fails this too
        raise BadRequest(f"{name}: expected seconds above 0 and at most {MAX_SECONDS:g} "
                         f"(a day), got {value!r}")
    return float(value)


MAX_SECONDS = 86400.0
