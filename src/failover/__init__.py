"""failover: disaster recovery for AI operations.

One completion API over a config-ordered chain of LLM providers, with circuit breakers,
retries, hedging, stream recovery and a manual fallback when every provider is down.

``import failover`` stays cheap: the router and config (pydantic) load on first use of
`Router` or `Config`, and each provider SDK only when a provider of its type is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
from ._models import (
    Attempt,
    Completed,
    ImagePart,
    JsonSchema,
    Message,
    ReasoningPart,
    Request,
    Response,
    Restart,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolSpec,
    Usage,
)
from ._types import BreakerState

if TYPE_CHECKING:
    from ._config import Config
    from ._events import Event
    from ._fallback import DeferredAnswer, DeferredRecord
    from ._health import ProviderHealth
    from ._instrumentation import Instrumentation, OpenTelemetryInstrumentation, RequestRecord
    from ._router import Router

__version__ = "0.1.0"

__all__ = [
    "AllProvidersFailed",
    "Attempt",
    "AuthenticationFailed",
    "BadRequest",
    "BreakerState",
    "Completed",
    "Config",
    "ConfigError",
    "ConnectionFailed",
    "ContentFiltered",
    "ContextWindowExceeded",
    "DeadlineExceeded",
    "DeferFailed",
    "Deferred",
    "DeferredAnswer",
    "DeferredRecord",
    "Event",
    "FailoverError",
    "ImagePart",
    "Instrumentation",
    "InvalidResponse",
    "JsonSchema",
    "Message",
    "ModelNotFound",
    "OpenTelemetryInstrumentation",
    "Overloaded",
    "PermissionDenied",
    "ProviderError",
    "ProviderHealth",
    "RateLimited",
    "ReasoningPart",
    "Request",
    "RequestRecord",
    "Response",
    "Restart",
    "Router",
    "ServerError",
    "StreamEvent",
    "StreamInterrupted",
    "TextDelta",
    "TextPart",
    "Timeout",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "ToolSpec",
    "Usage",
    "__version__",
]

_LAZY = {
    "Config": "._config",
    "DeferredAnswer": "._fallback",
    "DeferredRecord": "._fallback",
    "Event": "._events",
    "Instrumentation": "._instrumentation",
    "OpenTelemetryInstrumentation": "._instrumentation",
    "ProviderHealth": "._health",
    "RequestRecord": "._instrumentation",
    "Router": "._router",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'failover' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
