"""One tiny request to each provider, through the real adapters: the integration monitor.

Each provider gets a route of its own with one try and no fallback, so what comes back
is exactly that provider's answer or error kind: schema drift shows up as
``InvalidResponse``, a revoked key as ``AuthenticationFailed``, a dead host as
``ConnectionFailed`` or ``Timeout``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from failover import (
    AllProvidersFailed,
    ConfigError,
    DeadlineExceeded,
    FailoverError,
    ProviderError,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from failover import Config, Router

__all__ = ["PROBE_PROMPT", "ProbeResult", "probe_config", "probe_route", "run_probes"]

PROBE_PROMPT = "Reply with the single word OK."
PROBE_MAX_TOKENS = 16

# Kinds that prove the request got past authentication to the model.
_AUTHENTICATED = (
    "RateLimited", "ModelNotFound", "InvalidResponse", "BadRequest", "ContentFiltered",
    "ContextWindowExceeded", "StreamInterrupted",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ProbeResult:
    provider: str
    type: str
    model: str
    ok: bool
    latency_s: float
    served_model: str | None = None
    error_kind: str | None = None
    status: int | None = None
    message: str = ""

    @property
    def reachable(self) -> bool | None:
        if self.ok:
            return True
        if self.error_kind in ("ConnectionFailed", "Timeout"):
            return False
        if self.error_kind == "ConfigError":
            return None
        return True

    @property
    def authenticated(self) -> bool | None:
        if self.ok or self.error_kind in _AUTHENTICATED:
            return True
        if self.error_kind in ("AuthenticationFailed", "PermissionDenied"):
            return False
        return None

    def as_dict(self) -> dict[str, object]:
        return {
            "provider": self.provider,
            "type": self.type,
            "model": self.model,
            "ok": self.ok,
            "reachable": self.reachable,
            "authenticated": self.authenticated,
            "served_model": self.served_model,
            "latency_s": round(self.latency_s, 4),
            "error_kind": self.error_kind,
            "status": self.status,
            "message": self.message,
        }


def probe_route(provider: str) -> str:
    return f"probe:{provider}"


def probe_config(config: Config, providers: Sequence[str], timeout: float) -> Config:
    """A copy of ``config`` with one single-try route per provider and no notifications."""
    from .._config import FallbackConfig, NotifyConfig, RetryConfig, RouteConfig

    routes = {
        probe_route(name): RouteConfig(
            chain=[name],
            deadline=timeout,
            fallback=FallbackConfig(),
            retry=RetryConfig(attempts=1),
        )
        for name in providers
    }
    # Probes must not page anyone: a failing probe is reported on the terminal.
    return config.model_copy(update={"routes": routes, "notify": NotifyConfig(log=False)})


def _error_result(name: str, config: Config, err: BaseException, latency: float) -> ProbeResult:
    provider = config.providers[name]
    cause: BaseException = err
    if isinstance(err, AllProvidersFailed) and err.last_error is not None:
        cause = err.last_error
    elif isinstance(err, AllProvidersFailed) and err.skipped:
        return ProbeResult(name, provider.type, provider.model, False, latency,
                           error_kind="Skipped", message="; ".join(err.skipped.values()))
    if isinstance(err, DeadlineExceeded):
        return ProbeResult(name, provider.type, provider.model, False, latency,
                           error_kind="Timeout", message=f"no answer within {err.deadline_s:g}s")
    if isinstance(cause, ProviderError):
        return ProbeResult(name, provider.type, provider.model, False, latency,
                           error_kind=cause.kind, status=cause.status, message=cause.message)
    if isinstance(cause, ConfigError):
        return ProbeResult(name, provider.type, provider.model, False, latency,
                           error_kind="ConfigError", message="; ".join(cause.problems))
    return ProbeResult(name, provider.type, provider.model, False, latency,
                       error_kind=type(cause).__name__, message=str(cause).splitlines()[0])


def probe_one(router: Router, config: Config, name: str) -> ProbeResult:
    provider = config.providers[name]
    started = time.monotonic()
    try:
        reply = router.complete(
            PROBE_PROMPT, route=probe_route(name), max_tokens=PROBE_MAX_TOKENS
        )
    except (FailoverError, ConfigError) as err:
        return _error_result(name, config, err, time.monotonic() - started)
    return ProbeResult(
        name, provider.type, provider.model, True, reply.latency_s or time.monotonic() - started,
        served_model=reply.model or provider.model,
    )


def _import_sdks(kinds: set[tuple[str, str | None]]) -> None:
    """Import each SDK before the clock starts: a probe's latency is the round trip,
    not the second or two an SDK takes to import."""
    from failover.providers import adapter_class

    for provider_type, platform in sorted(kinds, key=str):
        try:
            adapter_class(provider_type, platform)
        except ImportError:
            pass  # the probe itself reports it


def run_probes(
    config: Config, *, providers: Sequence[str] | None = None, timeout: float = 20.0
) -> tuple[list[ProbeResult], Router]:
    """Probe each provider once, in config order; returns the results and the router.

    The caller closes the router (``health`` reads it after the probes).
    """
    from failover import Router

    names = list(providers) if providers is not None else list(config.providers)
    _import_sdks({(config.providers[n].type, config.providers[n].platform) for n in names})
    router = Router(probe_config(config, names, timeout))
    return [probe_one(router, config, name) for name in names], router
