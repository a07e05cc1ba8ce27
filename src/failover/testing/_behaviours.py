"""What a simulated provider does with a request: answer, fail, hang, drop the connection.

A `Behaviour` turns one incoming request (a `Call`: its wire format, whether it streams,
its index, the time on the kit's clock) into a `Reply`: a status, headers and body in
that provider's own wire format, maybe streamed in chunks, maybe cut by a transport
error, maybe after a delay. `FakeProviders` carries the reply out through respx, sync or
async. The module-level factories (`answer`, `fail`, `sequence`, ...) build behaviours;
`SimulatedProvider` has a method of the same name for each.
"""

from __future__ import annotations

import copy
import json
import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from ..providers import _cloud_wire, _wire
from ..providers._wire import WireFormat, WireRequest

__all__ = [
    "LONG_TEXT",
    "SHORTHANDS",
    "Behaviour",
    "Call",
    "FinishReason",
    "Reply",
    "answer",
    "behaviour_from",
    "content_filter",
    "context_window",
    "cut_stream",
    "down",
    "fail",
    "flaky",
    "hang",
    "malformed",
    "quota",
    "rate_limit",
    "refuse",
    "reset",
    "sequence",
    "slow",
    "stall",
    "timeout",
]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]

#: Used when a request's own read timeout is unknown and `hang()` was given no time.
_DEFAULT_HANG_S = 30.0


@dataclass(frozen=True, slots=True)
class Call:
    """One request as a behaviour sees it."""

    wire: WireRequest
    #: 0 for the first request this behaviour handles.
    index: int
    #: The kit's clock when the request arrived.
    now: float
    #: The client's read timeout for this request, when it set one.
    read_timeout: float | None = None
    #: Which credential sent it: a digest of its key header (never the key), "" if none.
    credential: str = ""

    @property
    def format(self) -> WireFormat:
        # Endpoints the kit does not know (``/embeddings``, ``/responses``) get the
        # OpenAI shape: every OpenAI-compatible server uses it.
        return self.wire.format or "openai"

    @property
    def model(self) -> str:
        return self.wire.model or "simulated-model"


@dataclass(slots=True)
class Reply:
    """How to answer one request. ``raise_`` means no response at all."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    chunks: tuple[bytes, ...] = ()
    #: Raised by the body after ``chunks`` were read (a cut or stalled stream).
    body_error: Exception | None = None
    #: Raised instead of any response (refused, timed out, reset).
    raise_: Exception | None = None
    #: Waited (on the kit's clock, or really) before the reply goes out.
    delay: float = 0.0


class Behaviour:
    """Base of behaviours. Subclasses implement `reply`; state lives on the instance."""

    def reply(self, call: Call) -> Reply:
        raise NotImplementedError

    def fresh(self) -> Behaviour:
        """A copy with its own state, so one behaviour object can be given to many
        providers (a marker, a module constant) without them sharing counters."""
        return copy.deepcopy(self)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__.lower()}({fields})"


# --- clouds ---------------------------------------------------------------------------


def for_platform(reply: Reply, wire: WireRequest) -> Reply:
    """The reply as the cloud that serves the format sends it (framing, error shapes)."""
    if wire.platform is None or reply.raise_ is not None:
        return reply
    if reply.status >= 400:
        return _cloud_error(reply, wire)
    if wire.platform == "bedrock" and reply.headers.get("content-type", "").startswith(
            "text/event-stream"):
        reply.headers["content-type"] = _cloud_wire.EVENT_STREAM_CONTENT_TYPE
        reply.chunks = tuple(_cloud_wire.bedrock_frames(chunk) for chunk in reply.chunks)
    return reply


def _cloud_error(reply: Reply, wire: WireRequest) -> Reply:
    try:
        body = json.loads(b"".join(reply.chunks))
    except ValueError:
        return reply
    error = body.get("error") if isinstance(body, dict) else None
    message = str(error.get("message", "")) if isinstance(error, dict) else ""
    if wire.platform == "azure":
        seconds = reply.headers.get("retry-after")
        if seconds is not None:
            # Azure says it in milliseconds too; the whole seconds are rounded up.
            reply.headers["retry-after-ms"] = str(round(float(seconds) * 1000))
            reply.headers["retry-after"] = str(math.ceil(float(seconds)))
        return reply
    if wire.platform == "bedrock":
        status, headers, cloud_body = _cloud_wire.bedrock_error(reply.status, message)
        return Reply(status=status, headers={**reply.headers, **headers},
                     chunks=(json.dumps(cloud_body).encode(),), delay=reply.delay)
    if wire.format == "anthropic" and reply.status != 529:
        # Vertex AI answers in Google's shape (an overload it passes on from Anthropic).
        body = _cloud_wire.google_error_body(reply.status, message)
        return Reply(status=reply.status, headers=reply.headers,
                     chunks=(json.dumps(body).encode(),), delay=reply.delay)
    return reply


# --- helpers ----------------------------------------------------------------------------


def _json_reply(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(
        status=status,
        headers={"content-type": _wire.JSON_CONTENT_TYPE, **(headers or {})},
        chunks=(json.dumps(body).encode(),),
    )


def _stream_reply(events: Iterable[bytes]) -> Reply:
    return Reply(status=200, headers={"content-type": _wire.SSE_CONTENT_TYPE},
                 chunks=tuple(events))


def _events_through(events: list[_wire.SseEvent], content_chunks: int) -> list[bytes]:
    """The events up to and including the ``content_chunks``-th one that carries content
    (framing like ``message_start`` or OpenAI's role chunk goes out first, as it would)."""
    out: list[bytes] = []
    seen = 0
    for event in events:
        if event.content:
            if seen == content_chunks:
                break
            seen += 1
        out.append(event.data)
    return out


def _retry_after_header(retry_after: float | None) -> dict[str, str]:
    if retry_after is None:
        return {}
    return {"retry-after": f"{retry_after:g}"}


# --- answers ----------------------------------------------------------------------------


class Answer(Behaviour):
    def __init__(
        self,
        text: str = _wire.DEFAULT_TEXT,
        tool_calls: Iterable[Any] | None = None,
        finish_reason: FinishReason | None = None,
        chunk_size: int | None = None,
        stream: bool | None = None,
        reasoning: str | None = None,
    ) -> None:
        self.text = text
        self.tool_calls = _wire.tool_calls_from(tool_calls)
        self.finish_reason = finish_reason
        self.chunk_size = chunk_size
        self.stream = stream
        self.reasoning = reasoning

    def events(self, call: Call) -> list[_wire.SseEvent]:
        return _wire.stream_events(
            call.format, text=self.text, model=call.model, tool_calls=self.tool_calls,
            input_tokens=call.wire.input_tokens, finish=self.finish_reason,
            chunk_size=self.chunk_size, include_usage=call.wire.include_usage,
            reasoning=self.reasoning,
        )  # fmt: skip

    def body(self, call: Call) -> dict[str, Any]:
        return _wire.completion_body(
            call.format, text=self.text, model=call.model, tool_calls=self.tool_calls,
            input_tokens=call.wire.input_tokens, finish=self.finish_reason,
            reasoning=self.reasoning,
        )  # fmt: skip

    def reply(self, call: Call) -> Reply:
        streams = call.wire.stream if self.stream is None else self.stream
        if streams:
            return _stream_reply(e.data for e in self.events(call))
        return _json_reply(200, self.body(call))


def answer(
    text: str = _wire.DEFAULT_TEXT,
    tool_calls: Iterable[Any] | None = None,
    *,
    finish_reason: FinishReason | None = None,
    chunk_size: int | None = None,
    stream: bool | None = None,
    reasoning: str | None = None,
) -> Behaviour:
    """Answer ``text`` (and ``tool_calls``: `failover.ToolCall` or ``{"name", "arguments"}``),
    streamed word by word (or ``chunk_size`` characters) when the request streams.

    ``stream=False`` answers with one whole JSON body even when the request asked for a
    stream, as some gateways and compatible servers do (LiteLLM's proxy on its Anthropic
    endpoint); ``stream=True`` always streams. ``reasoning``: the model thinks first,
    as the provider shows it (a signed thinking block, a thought with its signature)."""
    return Answer(text, tool_calls, finish_reason, chunk_size, stream, reasoning)


class ContentFilter(Behaviour):
    def __init__(self, on: Literal["answer", "prompt"] = "answer") -> None:
        if on not in ("answer", "prompt"):
            raise ValueError(f"content_filter(on) is 'answer' or 'prompt', got {on!r}")
        self.on = on

    def reply(self, call: Call) -> Reply:
        tokens = call.wire.input_tokens
        if self.on == "prompt" and call.format == "openai":
            # OpenAI and Azure refuse a filtered prompt with a 400 (Azure's with the
            # filter's verdict); the others block a prompt with a 200, as below.
            body = (_cloud_wire.azure_content_filter_body() if call.wire.platform == "azure"
                    else _wire.error_body("openai", 400, "The prompt was filtered by the "
                                          "content policy (simulated).", code="content_filter"))
            return _json_reply(400, body)
        if call.wire.stream:
            events = _wire.refusal_events(call.format, model=call.model, input_tokens=tokens)
            return _stream_reply(e.data for e in events)
        return _json_reply(200, _wire.refusal_body(call.format, model=call.model,
                                                   input_tokens=tokens))


def content_filter(on: Literal["answer", "prompt"] = "answer") -> Behaviour:
    """A 200 that is a refusal or safety block (OpenAI ``finish_reason: content_filter``,
    Anthropic ``stop_reason: refusal``, Gemini ``blockReason: SAFETY``); ``on="prompt"``:
    the prompt itself is filtered (OpenAI and Azure answer that with a 400 whose code is
    ``content_filter``)."""
    return ContentFilter(on)


# --- HTTP errors ------------------------------------------------------------------------


class Fail(Behaviour):
    def __init__(self, status: int, retry_after: float | None = None,
                 message: str | None = None) -> None:
        if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status < 600:
            raise ValueError(f"fail(status) needs an HTTP error status (400-599), got {status!r}")
        self.status = status
        self.retry_after = retry_after
        self.message = message

    def reply(self, call: Call) -> Reply:
        body = _wire.error_body(call.format, self.status, self.message,
                                retry_after=self.retry_after)
        return _json_reply(self.status, body, _retry_after_header(self.retry_after))


def fail(status: int, retry_after: float | None = None, *, message: str | None = None) -> Behaviour:
    """Answer with an HTTP error in the provider's format: 429 (with ``Retry-After`` when
    ``retry_after`` is given; Gemini also gets it as ``RetryInfo``), 500, 503, 529, 401..."""
    return Fail(status, retry_after, message)


def rate_limit(retry_after: float | None = 1.0) -> Behaviour:
    """A 429 with ``Retry-After: <retry_after>`` (None: no header)."""
    return Fail(429, retry_after)


class ContextWindow(Behaviour):
    def reply(self, call: Call) -> Reply:
        status, body = _wire.context_window_error(call.format)
        return _json_reply(status, body)


def context_window() -> Behaviour:
    """The 400 each provider sends when the prompt does not fit the model's window."""
    return ContextWindow()


# --- transport faults -------------------------------------------------------------------


class Raise(Behaviour):
    def __init__(self, kind: Literal["timeout", "refuse", "reset"]) -> None:
        self.kind = kind

    def reply(self, call: Call) -> Reply:
        return Reply(raise_=_transport_error(self.kind))

    def __repr__(self) -> str:
        return f"{self.kind}()"


def _transport_error(kind: str) -> Exception:
    if kind == "timeout":
        return httpx.ReadTimeout("simulated: the provider did not answer in time")
    if kind == "refuse":
        return httpx.ConnectError("simulated: [Errno 111] Connection refused")
    if kind == "stall":
        return httpx.ReadTimeout("simulated: the stream stalled")
    return httpx.ReadError("simulated: [Errno 104] Connection reset by peer")


def timeout() -> Behaviour:
    """A read timeout at once (no real waiting): the adapters report `Timeout`."""
    return Raise("timeout")


def refuse() -> Behaviour:
    """Connection refused: `ConnectionFailed`."""
    return Raise("refuse")


def reset() -> Behaviour:
    """Connection reset by peer before any answer: `ConnectionFailed`."""
    return Raise("reset")


class Hang(Behaviour):
    def __init__(self, seconds: float | None = None) -> None:
        self.seconds = seconds

    def reply(self, call: Call) -> Reply:
        limits = [s for s in (self.seconds, call.read_timeout) if s is not None]
        wait = min(limits) if limits else _DEFAULT_HANG_S
        return Reply(raise_=httpx.ReadTimeout("simulated: the provider hung"), delay=wait)


def hang(seconds: float | None = None) -> Behaviour:
    """Say nothing until the client's read timeout (or ``seconds``, if shorter), then
    time out. The wait is real, unless the kit was given a clock to advance; for drills."""
    return Hang(seconds)


class Broken(Behaviour):
    """An answer whose body breaks after ``after`` content chunks."""

    def __init__(self, kind: Literal["cut", "stall", "malformed"], after: int, text: str) -> None:
        if after < 0:
            raise ValueError(f"after must be 0 or more, got {after}")
        self.kind = kind
        self.after = after
        self.text = text

    def reply(self, call: Call) -> Reply:
        source = Answer(self.text)
        if call.wire.stream:
            events = _events_through(source.events(call), self.after)
            if self.kind == "malformed":
                return _stream_reply([*events, _wire.malformed_event(call.format)])
            reply = _stream_reply(events)
        else:
            if self.kind == "malformed":
                return Reply(status=200, headers={"content-type": _wire.JSON_CONTENT_TYPE},
                             chunks=(_wire.MALFORMED_BODY,))
            whole = json.dumps(source.body(call)).encode()
            reply = Reply(status=200, headers={"content-type": _wire.JSON_CONTENT_TYPE},
                          chunks=(whole[: len(whole) // 2],))
        reply.body_error = _transport_error("reset" if self.kind == "cut" else "stall")
        return reply

    def __repr__(self) -> str:
        name = {"cut": "cut_stream", "stall": "stall", "malformed": "malformed"}[self.kind]
        return f"{name}(after={self.after})"


LONG_TEXT = "This answer is long enough to be streamed in many chunks, and then broken off."


def cut_stream(after: int = 1, *, text: str = LONG_TEXT) -> Behaviour:
    """Stream ``after`` content chunks, then drop the connection (a read error).
    A request that does not stream gets half its body, then the same error."""
    return Broken("cut", after, text)


def stall(after: int = 1, *, text: str = LONG_TEXT) -> Behaviour:
    """Stream ``after`` content chunks, then go silent (a read timeout, raised at once)."""
    return Broken("stall", after, text)


def malformed(after: int = 0, *, text: str = LONG_TEXT) -> Behaviour:
    """A 200 whose body does not parse; when streaming, ``after`` good chunks and then a
    chunk that does not parse. The adapters report `InvalidResponse` (or, after text went
    out, an interrupted stream)."""
    return Broken("malformed", after, text)


# --- timing and patterns ----------------------------------------------------------------


class Slow(Behaviour):
    def __init__(self, seconds: float, then: Behaviour) -> None:
        self.seconds = seconds
        self.then = then

    def reply(self, call: Call) -> Reply:
        if call.read_timeout is not None and self.seconds > call.read_timeout:
            # A real socket gives up at the client's read timeout; so does the simulation.
            return Reply(raise_=httpx.ReadTimeout("simulated: answer slower than the "
                                                  "read timeout"), delay=call.read_timeout)
        reply = self.then.reply(call)
        reply.delay += self.seconds
        return reply


def slow(seconds: float, text: str = _wire.DEFAULT_TEXT, *,
         then: Behaviour | None = None) -> Behaviour:
    """Answer ``text`` (or do ``then``) after ``seconds``: on the kit's clock when it has
    one (a `FakeClock` is advanced, nothing waits), else really."""
    return Slow(seconds, then if then is not None else Answer(text))


class Flaky(Behaviour):
    def __init__(self, rate: float, seed: int, fault: Behaviour, then: Behaviour) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"flaky(rate) is a fraction between 0 and 1, got {rate!r}")
        self.rate = rate
        self.seed = seed
        self.fault = fault
        self.then = then
        self._random = random.Random(seed)

    def reply(self, call: Call) -> Reply:
        if self._random.random() < self.rate:
            return self.fault.reply(call)
        return self.then.reply(call)


def flaky(rate: float = 0.5, seed: int = 0, *, status: int = 503,
          fault: Behaviour | None = None, text: str = _wire.DEFAULT_TEXT) -> Behaviour:
    """Fail with ``status`` (or ``fault``) on a seeded random share ``rate`` of requests;
    answer ``text`` otherwise. The same seed gives the same pattern every run."""
    return Flaky(rate, seed, fault if fault is not None else Fail(status), Answer(text))


class Down(Behaviour):
    def __init__(self, after: int, requests: int | None, for_seconds: float | None,
                 fault: Behaviour, then: Behaviour) -> None:  # fmt: skip
        if requests is not None and for_seconds is not None:
            raise ValueError("down(): give requests= or for_seconds=, not both")
        self.after = after
        self.requests = requests
        self.for_seconds = for_seconds
        self.fault = fault
        self.then = then
        self._seen = 0
        self._failed = 0
        self._since: float | None = None

    def reply(self, call: Call) -> Reply:
        self._seen += 1
        if self._seen <= self.after:
            return self.then.reply(call)
        if self.for_seconds is not None:
            if self._since is None:
                self._since = call.now
            down = call.now - self._since < self.for_seconds
        elif self.requests is not None:
            down = self._failed < self.requests
        else:
            down = True
        if down:
            self._failed += 1
            return self.fault.reply(call)
        return self.then.reply(call)


def down(
    after: int = 0,
    requests: int | None = None,
    *,
    for_seconds: float | None = None,
    status: int = 503,
    fault: Behaviour | None = None,
    text: str = _wire.DEFAULT_TEXT,
) -> Behaviour:
    """An outage: answer ``after`` requests, then fail (``status``, or ``fault`` such as
    `refuse()`) for ``requests`` requests or for ``for_seconds`` on the kit's clock
    (counted from the first failed request), then answer again. With neither, it stays
    down."""
    if after < 0 or (requests is not None and requests < 0):
        raise ValueError("down(): after and requests must be 0 or more")
    return Down(after, requests, for_seconds, fault if fault is not None else Fail(status),
                Answer(text))


class Sequence(Behaviour):
    def __init__(self, steps: tuple[Behaviour, ...]) -> None:
        if not steps:
            raise ValueError("sequence() needs at least one behaviour")
        for i, step in enumerate(steps):
            if not isinstance(step, Behaviour):
                raise TypeError(
                    f"sequence() step {i} is {step!r}, not a behaviour: build steps with "
                    "failover.testing.answer(...), fail(503), refuse(), ..."
                )
        self.steps = steps
        self._next = 0

    def reply(self, call: Call) -> Reply:
        step = self.steps[min(self._next, len(self.steps) - 1)]
        self._next += 1
        return step.reply(call)

    def __repr__(self) -> str:
        return f"sequence({', '.join(map(repr, self.steps))})"


def sequence(*steps: Behaviour) -> Behaviour:
    """One behaviour per request in order; after the last, the last one repeats.
    ``sequence(fail(503), fail(503), answer("ok"))``."""
    return Sequence(tuple(s.fresh() if isinstance(s, Behaviour) else s for s in steps))


# --- quotas -----------------------------------------------------------------------------


class Quota(Behaviour):
    """Requests and tokens per ``window`` seconds, per key, with the provider's headers."""

    def __init__(self, rpm: int | None, tpm: int | None, window: float, per_key: bool,
                 retry_after: bool, then: Behaviour) -> None:  # fmt: skip
        if rpm is None and tpm is None:
            raise ValueError("quota() needs rpm=, tpm= or both")
        if window <= 0:
            raise ValueError(f"quota(window) must be positive, got {window!r}")
        self.rpm = rpm
        self.tpm = tpm
        self.window = window
        self.per_key = per_key
        self.retry_after = retry_after
        self.then = then
        #: Credential -> (window index, requests, tokens) of its current window.
        self._used: dict[str, tuple[int, int, int]] = {}
        #: Requests refused with a 429.
        self.refused = 0

    def reply(self, call: Call) -> Reply:
        who = call.credential if self.per_key else ""
        index = int(call.now // self.window)
        window, requests, tokens = self._used.get(who, (index, 0, 0))
        if window != index:
            requests, tokens = 0, 0
        cost = call.wire.input_tokens + _max_tokens(call.wire)
        reset = (index + 1) * self.window - call.now
        over = (self.rpm is not None and requests + 1 > self.rpm) or (
            self.tpm is not None and tokens + cost > self.tpm)
        if over:
            self.refused += 1
            self._used[who] = (index, requests, tokens)
            reply = Fail(429, reset if self.retry_after else None,
                         message="Rate limit reached (simulated quota)").reply(call)
        else:
            requests, tokens = requests + 1, tokens + cost
            self._used[who] = (index, requests, tokens)
            reply = self.then.reply(call)
        reply.headers.update(self._headers(call.format, requests, tokens, reset))
        return reply

    def _headers(self, fmt: WireFormat, requests: int, tokens: int,
                 reset: float) -> dict[str, str]:  # fmt: skip
        """The rate-limit headers in the provider's own style (Gemini sends none)."""
        out: dict[str, str] = {}
        for kind, limit, used in (("requests", self.rpm, requests), ("tokens", self.tpm, tokens)):
            if limit is None:
                continue
            left = str(max(0, limit - used))
            if fmt == "openai":
                out |= {f"x-ratelimit-limit-{kind}": str(limit),
                        f"x-ratelimit-remaining-{kind}": left,
                        f"x-ratelimit-reset-{kind}": f"{reset:.3f}s"}
            elif fmt == "anthropic":
                import datetime

                at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
                    seconds=reset)
                out |= {f"anthropic-ratelimit-{kind}-limit": str(limit),
                        f"anthropic-ratelimit-{kind}-remaining": left,
                        f"anthropic-ratelimit-{kind}-reset": at.isoformat()}
        return out


def _max_tokens(wire: WireRequest) -> int:
    body = wire.body if isinstance(wire.body, dict) else {}
    value = body.get("max_tokens", body.get("max_completion_tokens"))
    if value is None:
        value = (body.get("generationConfig") or {}).get("maxOutputTokens")
    return value if isinstance(value, int) else 0


def quota(rpm: int | None = None, tpm: int | None = None, *, window: float = 60.0,
          per_key: bool = True, retry_after: bool = False,
          then: Behaviour | None = None) -> Behaviour:
    """Enforce ``rpm`` requests and ``tpm`` tokens (the request's estimate plus its
    ``max_tokens``) per ``window`` seconds of the kit's clock, for each key (or, with
    ``per_key=False``, for the provider), answering with ``then`` (an answer by default)
    and a 429 once spent. Every reply carries the provider's rate-limit headers
    (OpenAI's ``x-ratelimit-*``, Anthropic's ``anthropic-ratelimit-*``); a 429 carries
    Retry-After only with ``retry_after=True``, as real quotas often do not."""
    return Quota(rpm, tpm, window, per_key, retry_after,
                 then if then is not None else Answer(_wire.DEFAULT_TEXT))


# --- shorthands (the marker) ------------------------------------------------------------

SHORTHANDS: dict[str, Any] = {
    "ok": answer,
    "up": answer,
    "answer": answer,
    "down": lambda: fail(503),
    "overloaded": lambda: fail(529),
    "rate_limit": rate_limit,
    "rate_limited": rate_limit,
    "refused": refuse,
    "refuse": refuse,
    "reset": reset,
    "timeout": timeout,
    "hang": hang,
    "malformed": malformed,
    "cut_stream": cut_stream,
    "cut": cut_stream,
    "stall": stall,
    "flaky": flaky,
    "context_window": context_window,
    "content_filter": content_filter,
}


def behaviour_from(value: Any, *, where: str = "") -> Behaviour:
    """A behaviour, an HTTP status (``503``, ``"503"``) or a shorthand (``"down"``)."""
    if isinstance(value, Behaviour):
        return value.fresh()
    status = value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(value, str) and value.strip().isdigit():
        status = int(value)
    if status is not None and 400 <= status < 600:
        return fail(status)
    if isinstance(value, str):
        key = value.strip().lower()
        if key in SHORTHANDS:
            built: Behaviour = SHORTHANDS[key]()
            return built
    prefix = f"{where}: " if where else ""
    names = ", ".join(repr(k) for k in sorted(SHORTHANDS))
    raise ValueError(
        f"{prefix}{value!r} is not a behaviour. Use an HTTP error status (503, '429'), "
        f"a shorthand ({names}), or a behaviour such as failover.testing.fail(503), "
        "failover.testing.answer('hi'), failover.testing.sequence(...)."
    )
