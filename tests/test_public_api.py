"""The public namespace is a contract: pin it, and keep `import failover` light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import failover

EXPECTED = [
    "AllProvidersFailed", "Attempt", "AuthenticationFailed", "BadRequest", "BreakerState",
    "Completed",
    "Config", "ConfigError", "ConnectionFailed", "ContentFiltered", "ContextWindowExceeded",
    "DeadlineExceeded", "DeferFailed", "Deferred", "DeferredAnswer", "DeferredRecord",
    "Event", "FailoverError", "ImagePart", "Instrumentation",
    "InvalidResponse", "JsonSchema", "Message", "ModelNotFound", "OpenTelemetryInstrumentation",
    "Overloaded", "PermissionDenied",
    "ProviderError", "ProviderHealth", "RateLimited", "ReasoningPart", "Request",
    "RequestRecord", "Response",
    "Restart",
    "Router", "ServerError", "StreamEvent", "StreamInterrupted", "TextDelta", "TextPart",
    "Timeout", "ToolCall", "ToolCallDelta", "ToolChoice", "ToolSpec", "Usage", "__version__",
]  # fmt: skip


def test_all_is_pinned_and_sorted() -> None:
    assert failover.__all__ == EXPECTED
    assert sorted(failover.__all__) == failover.__all__


def test_the_errors_module_is_the_public_home_of_every_kind() -> None:
    import failover.errors

    kinds = [n for n in failover.__all__ if isinstance(getattr(failover, n), type)
             and issubclass(getattr(failover, n), failover.FailoverError)]
    assert sorted(failover.errors.__all__) == sorted(kinds)
    assert all(getattr(failover.errors, n) is getattr(failover, n) for n in kinds)


def test_every_public_name_resolves() -> None:
    for name in failover.__all__:
        assert getattr(failover, name) is not None, name


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        failover.Nope  # type: ignore[attr-defined]  # noqa: B018


def test_error_kinds_share_one_base() -> None:
    kinds = [
        failover.RateLimited, failover.Overloaded, failover.ServerError, failover.Timeout,
        failover.ConnectionFailed, failover.AuthenticationFailed, failover.PermissionDenied,
        failover.ModelNotFound, failover.InvalidResponse, failover.ContextWindowExceeded,
        failover.ContentFiltered, failover.BadRequest, failover.StreamInterrupted,
    ]
    for kind in kinds:
        assert issubclass(kind, failover.ProviderError)
        assert issubclass(kind, failover.FailoverError)
    for other in (failover.AllProvidersFailed, failover.DeadlineExceeded, failover.Deferred,
                  failover.ConfigError):
        assert issubclass(other, failover.FailoverError)
        assert not issubclass(other, failover.ProviderError)


def _fresh_python(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_import_loads_no_sdk_and_no_pydantic() -> None:
    out = _fresh_python(
        "import sys, failover; "
        "print(sorted(m for m in ('openai', 'anthropic', 'google.genai', 'pydantic', 'httpx2',"
        " 'pydantic_ai', 'langchain_core', 'prometheus_client', 'opentelemetry', 'boto3',"
        " 'botocore', 'azure', 'google.auth', 'requests')"
        " if m in sys.modules))"
    )
    assert out == "[]"


def test_integrations_are_leaves_on_the_public_api() -> None:
    """An integration imports `failover` and its public names, never a private module:
    what it can do, an application can do."""
    import ast
    from pathlib import Path

    folder = Path(failover.__file__).parent / "integrations"
    private = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            private += [f"{path.name}: {n}" for n in names
                        if n.startswith("failover.") or (isinstance(node, ast.ImportFrom)
                                                          and node.level > 0)]
    assert private == []
    assert len(list(folder.glob("*.py"))) == 5


def test_building_an_openai_router_imports_only_openai() -> None:
    out = _fresh_python(
        "import sys, failover\n"
        "cfg = failover.Config.from_mapping({'providers': {'a': {'type': 'openai', "
        "'model': 'm', 'api_key': 'none'}}, 'routes': {'default': {'chain': ['a']}}})\n"
        "router = failover.Router(cfg)\n"
        "router._state.providers['a'].adapter\n"
        "print(sorted(m for m in ('openai', 'anthropic', 'google.genai') if m in sys.modules))"
    )
    assert out == "['openai']"
