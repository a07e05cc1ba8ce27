"""Every way a request can end without a plain answer.

Callers never see an SDK exception: each adapter maps what its SDK raised to exactly
one kind below, so ``except failover.Overloaded`` means the same for every provider.

    FailoverError
    ├── ConfigError                 the config file is wrong (every problem, with its path)
    ├── ProviderError               one provider failed one attempt
    │   ├── RateLimited             429 / RESOURCE_EXHAUSTED          (retry_after)
    │   ├── Overloaded              503, 529 overloaded_error
    │   ├── ServerError             other 5xx
    │   ├── Timeout                 connect / read / first-token timeout
    │   ├── ConnectionFailed        refused, reset, DNS
    │   ├── AuthenticationFailed    401, Gemini API_KEY_INVALID
    │   ├── PermissionDenied        403
    │   ├── ModelNotFound           404
    │   ├── InvalidResponse         the answer does not parse (schema drift)
    │   ├── StreamInterrupted       a stream broke after it started   (partial_text)
    │   ├── ContextWindowExceeded   the prompt is too long for this model
    │   ├── ContentFiltered         a policy refusal or safety block
    │   └── BadRequest              any other 400/422: the request itself is wrong
    ├── AllProvidersFailed          every provider of the route failed  (attempts)
    ├── DeadlineExceeded            the request's deadline ran out       (attempts)
    ├── Deferred                    kept durably for replay              (ticket)
    └── DeferFailed                 the store refused it: NOT kept       (attempts)

Messages never contain a secret: adapters build them from status, code and the
provider's error text, and every message passes `failover._secrets.scrub`: each secret
the config holds is masked by value, and anything else shaped like a key too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from ._secrets import scrub

if TYPE_CHECKING:
    from ._models import Attempt
    from ._types import Action

__all__ = [
    "AllProvidersFailed",
    "AuthenticationFailed",
    "BadRequest",
    "ConfigError",
    "ConnectionFailed",
    "ContentFiltered",
    "ContextWindowExceeded",
    "DeadlineExceeded",
    "DeferFailed",
    "Deferred",
    "FailoverError",
    "InvalidResponse",
    "ModelNotFound",
    "Overloaded",
    "PermissionDenied",
    "ProviderError",
    "RateLimited",
    "ServerError",
    "StreamInterrupted",
    "Timeout",
]

class FailoverError(Exception):
    """Base of every error this library raises."""


class ConfigError(FailoverError, ValueError):
    """The configuration is invalid. ``problems`` holds one ``path: message`` per fault."""

    def __init__(self, problems: Sequence[str] | str, *, source: str | None = None) -> None:
        # A problem may quote the offending value, which may be a key (``timeout: sk-...``).
        raw = [problems] if isinstance(problems, str) else list(problems)
        self.problems = [scrub(p) for p in raw]
        self.source = source
        head = f"invalid config {source}" if source else "invalid config"
        noun = "problem" if len(self.problems) == 1 else "problems"
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{head} ({len(self.problems)} {noun}):\n{lines}")


class ProviderError(FailoverError):
    """One provider failed one attempt.

    Class attributes give the defaults of the SPEC's table; a route may override the
    action per kind. ``long_open`` kinds keep the breaker open for ``max_open_for``
    because waiting a few seconds will not bring a revoked key back.
    """

    breaker_failure: ClassVar[bool] = True
    default_action: ClassVar[Action] = "failover"
    retryable: ClassVar[bool] = False
    long_open: ClassVar[bool] = False
    notify: ClassVar[bool] = False

    def __init__(
        self,
        message: str = "",
        *,
        provider: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        self.message = scrub(message) if message else type(self).__name__
        self.provider = provider
        self.status = status
        self.retry_after = retry_after
        self.code = code
        #: The text a stream had delivered when this error ended it ("" otherwise).
        self.partial_text = ""
        #: Every attempt of the request, filled in when this error ends it (BadRequest,
        #: ContentFiltered, or any kind whose route action is ``raise``).
        self.attempts: list[Attempt] = []
        #: False when the adapter refused the request before sending it (the caller's
        #: input cannot be said in this provider's terms): the provider was not asked,
        #: so its breaker and health do not hear of it.
        self.sent = True
        super().__init__(self.message)

    @property
    def kind(self) -> str:
        return type(self).__name__

    def __str__(self) -> str:
        where = f"[{self.provider}] " if self.provider else ""
        status = f" (HTTP {self.status})" if self.status else ""
        return f"{where}{self.kind}{status}: {self.message}"

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_provider_error, (type(self), self.message, self.__dict__))


def _rebuild_provider_error(
    cls: type[ProviderError], message: str, state: dict[str, object]
) -> ProviderError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class RateLimited(ProviderError):
    breaker_failure = False
    retryable = True


class Overloaded(ProviderError):
    pass


class ServerError(ProviderError):
    retryable = True


class Timeout(ProviderError):
    pass


class ConnectionFailed(ProviderError):
    retryable = True


class AuthenticationFailed(ProviderError):
    long_open = True
    notify = True


class PermissionDenied(ProviderError):
    long_open = True
    notify = True


class ModelNotFound(ProviderError):
    long_open = True
    notify = True


class InvalidResponse(ProviderError):
    notify = True


class StreamInterrupted(ProviderError):
    """A stream broke after it began: cut, stalled, malformed, or ended unfinished.

    ``partial_text`` is what had arrived; it is never presented as an answer.
    """

    retryable = True

    def __init__(self, message: str = "", *, partial_text: str = "", **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.partial_text = partial_text


class ContextWindowExceeded(ProviderError):
    breaker_failure = False


class ContentFiltered(ProviderError):
    breaker_failure = False
    default_action = "raise"


class BadRequest(ProviderError, ValueError):
    breaker_failure = False
    default_action = "raise"


def _attempt_lines(attempts: Sequence[Attempt]) -> str:
    lines = []
    for a in attempts:
        status = f" HTTP {a.http_status}" if a.http_status else ""
        why = f"{a.error_kind}{status}" if a.outcome != "ok" else "ok"
        detail = f": {a.detail}" if a.detail else ""
        lines.append(f"  {a.provider} ({a.model}): {why}{detail} after {a.latency_s * 1000:.0f} ms")
    return "\n".join(lines)


class AllProvidersFailed(FailoverError):
    """Every provider of the route failed or was skipped; one line each says why."""

    def __init__(
        self,
        route: str,
        attempts: Sequence[Attempt],
        *,
        errors: Sequence[ProviderError] = (),
        skipped: dict[str, str] | None = None,
    ) -> None:
        self.route = route
        self.attempts = list(attempts)
        self.errors = list(errors)
        self.skipped = dict(skipped or {})
        lines = [f"all providers failed for route {route!r}:"]
        if self.attempts:
            lines.append(_attempt_lines(self.attempts))
        lines.extend(f"  {name}: skipped, {why}" for name, why in self.skipped.items())
        super().__init__("\n".join(lines))

    @property
    def last_error(self) -> ProviderError | None:
        return self.errors[-1] if self.errors else None


class DeadlineExceeded(FailoverError):
    """The request's deadline ran out, even if providers were left to try."""

    def __init__(self, route: str, deadline_s: float, attempts: Sequence[Attempt]) -> None:
        self.route = route
        self.deadline_s = deadline_s
        self.attempts = list(attempts)
        body = _attempt_lines(self.attempts) or "  (no attempt finished)"
        super().__init__(f"deadline of {deadline_s:g}s exceeded for route {route!r}:\n{body}")


class DeferFailed(FailoverError):
    """The route defers, but the store could not take the request: it was NOT stored.

    The caller still holds the request (``attempts`` says why every provider failed,
    ``reason`` why the store refused: full disk, unwritable path, a lock held too long).
    """

    def __init__(
        self, route: str, path: str, reason: str, attempts: Sequence[Attempt] = ()
    ) -> None:
        self.route = route
        self.path = path
        self.reason = reason
        self.attempts = list(attempts)
        super().__init__(
            f"request could NOT be deferred (route {route!r}): {reason}; "
            f"it was not stored, the caller still holds it"
        )


class Deferred(FailoverError):
    """No provider could serve the request; it is stored durably under ``ticket``."""

    def __init__(
        self, ticket: str, route: str, path: str, attempts: Sequence[Attempt] = ()
    ) -> None:
        self.ticket = ticket
        self.route = route
        self.path = path
        self.attempts = list(attempts)
        super().__init__(
            f"request deferred for replay as ticket {ticket} (route {route!r}, store {path})"
        )
