"""The error kinds, in their public home (each is also importable from `failover`).

The tree, and what each kind means, is drawn in the docstring of `failover._errors`
(see docs/errors.md).
"""

from __future__ import annotations

from ._errors import (
    AllProvidersFailed,
    AuthenticationFailed,
    BadRequest,
    ConfigError,
    ConnectionFailed,
    ContentFiltered,
    ContextWindowExceeded,
    DeadlineExceeded,
    DeferFailed,
    Deferred,
    FailoverError,
    InvalidResponse,
    ModelNotFound,
    Overloaded,
    PermissionDenied,
    ProviderError,
    RateLimited,
    ServerError,
    StreamInterrupted,
    Timeout,
)

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
