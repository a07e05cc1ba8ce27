"""The config file: pydantic models, loading from YAML/TOML/JSON, ``${VAR}`` and durations.

A bad file raises one `ConfigError` listing every problem with its path in the file,
e.g. ``routes.default.chain[2]: unknown provider 'gemni'``. Secrets stay `SecretStr`
and ``${VAR}`` references are resolved only when a provider is first needed, so a
missing variable for an unused provider never stops the app from starting.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from ._errors import ConfigError, ProviderError
from ._events import EventType
from ._secrets import mask_url

__all__ = [
    "BreakerConfig",
    "CapabilitiesConfig",
    "Config",
    "DeferredConfig",
    "FakeConfig",
    "FallbackConfig",
    "HedgeConfig",
    "NotifyConfig",
    "ObjectivesConfig",
    "ProviderConfig",
    "RetryConfig",
    "RouteConfig",
    "StateConfig",
    "TelemetryConfig",
    "TimeoutsConfig",
    "WebhookConfig",
    "env_problems",
    "load_config",
    "parse_duration",
    "resolve_env",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

#: The error kinds a route's ``actions`` may name: every kind of provider failure.
ERROR_KINDS = tuple(kind.__name__ for kind in ProviderError.__subclasses__())


def parse_duration(value: Any) -> float:
    """``"200ms"``, ``"30s"``, ``"5m"``, ``"1h"`` or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '200ms', '30s' or '5m', got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNITS[match.group(2)]
    raise ValueError(f"expected a duration like '200ms', '30s' or '5m', got {value!r}")


Duration = Annotated[float, BeforeValidator(parse_duration)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


def env_problems(config: Config, *, chains_only: bool = False,
                 environ: Mapping[str, str] | None = None) -> list[str]:
    """Every ``${VAR}`` the config refers to that cannot be resolved, as ``path: problem``.

    ``chains_only`` looks only at the keys of providers some route uses.
    """
    used = {name for route in config.routes.values() for name in route.chain}
    refs: list[tuple[str, str]] = []
    for name, provider in config.providers.items():
        if chains_only and name not in used:
            continue
        if provider.api_key is not None:
            refs.append((f"providers.{name}.api_key", provider.api_key.get_secret_value()))
        refs += [(f"providers.{name}.api_keys[{i}]", key.get_secret_value())
                 for i, key in enumerate(provider.api_keys)]
    if not chains_only:
        if config.state.url:
            refs.append(("state.url", config.state.url))
        if config.notify.webhook is not None:
            refs.append(("notify.webhook.url", config.notify.webhook.url))
    problems = []
    for where, raw in refs:
        try:
            resolve_env(raw, where, environ)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return problems


def resolve_env(raw: str, where: str, environ: Mapping[str, str] | None = None) -> str:
    """Expand ``${VAR}`` (and ``${VAR:-default}``); a missing variable is a ConfigError."""
    env = os.environ if environ is None else environ

    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"{where}: environment variable {name} is not set")

    return _ENV_REF.sub(sub, raw)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    #: Fields that may hold a credential, and how each is shown in reprs and dumps.
    _shown_as: ClassVar[dict[str, Callable[[Any], Any]]] = {}

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            show = self._shown_as.get(name or "")
            yield name, show(value) if show is not None and value is not None else value

    @model_serializer(mode="wrap")
    def _dump_without_secrets(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name, show in self._shown_as.items():
                if data.get(name) is not None:
                    data[name] = show(data[name])
        return data


def _hidden_values(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: "***" for name in headers}


class TimeoutsConfig(_Model):
    """Per-attempt timeouts. ``first_token`` and ``stall`` apply to streams."""

    connect: Duration = 5.0
    request: Duration = 30.0
    first_token: Duration = 15.0
    stall: Duration = 15.0


class PartialTimeouts(_Model):
    connect: Duration | None = None
    request: Duration | None = None
    first_token: Duration | None = None
    stall: Duration | None = None


class BreakerConfig(_Model):
    window: Duration = 30.0
    min_calls: int = Field(5, ge=1)
    failure_rate: Fraction = 0.5
    consecutive_failures: int = Field(3, ge=1)
    open_for: Duration = 5.0
    max_open_for: Duration = 30.0
    half_open_probes: int = Field(1, ge=1)
    #: How long a half-open probe may hold its permit before it is presumed hung.
    probe_lease: Duration | None = None

    @model_validator(mode="after")
    def _open_for_fits(self) -> BreakerConfig:
        if self.max_open_for < self.open_for:
            raise ValueError("max_open_for must be at least open_for")
        return self


class RetryConfig(_Model):
    attempts: int = Field(2, ge=1, description="tries on one provider, the first included")
    backoff: Duration = 0.5
    max_backoff: Duration = 4.0
    max_retry_after: Duration = 10.0
    budget: Fraction = 0.2
    #: Retries always allowed per 10 s whatever the budget ratio says.
    min_retries_per_10s: int = Field(3, ge=0)


class DefaultsConfig(_Model):
    breaker: BreakerConfig = BreakerConfig()
    retry: RetryConfig = RetryConfig()
    timeouts: TimeoutsConfig = TimeoutsConfig()


class CapabilitiesConfig(_Model):
    """What a provider can do. ``None`` means: use what is known for its type/model."""

    tools: bool | None = None
    json_schema: bool | None = None
    images: bool | None = None
    prefill: bool | None = None
    context_window: int | None = Field(None, ge=1)


class FakeFault(_Model):
    """A fault for a simulated provider: ``status`` answers with that HTTP error."""

    status: int | None = None
    kind: Literal["status", "timeout", "refused", "reset", "malformed", "cut_stream"] = "status"
    retry_after: Duration | None = None
    rate: Fraction = 1.0


class FakeConfig(_Model):
    """Settings of a ``type: fake`` provider: what it answers, how fast, and how it fails."""

    text: str = "This is a simulated answer."
    latency: Duration = 0.0
    chunk_size: int = Field(8, ge=1)
    fail_rate: Fraction = 0.0
    fail_status: int = 503
    seed: int = 0
    fault: FakeFault | None = None


class ProviderConfig(_Model):
    _shown_as = {"base_url": mask_url, "headers": _hidden_values}

    type: Literal["openai", "anthropic", "gemini", "fake"]
    model: str = ""
    api_key: SecretStr | None = None
    api_keys: list[SecretStr] = Field(default_factory=list, description="a key pool, rotated")
    base_url: str | None = None
    timeout: Duration | None = None
    timeouts: PartialTimeouts = PartialTimeouts()
    capabilities: CapabilitiesConfig = CapabilitiesConfig()
    breaker: BreakerConfig | None = None
    retry: RetryConfig | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    force: Literal["open", "closed"] | None = None
    fake: FakeConfig | None = None
    #: Provider-specific extra arguments sent with every request (e.g. Azure api-version).
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("api_key", mode="before")
    @classmethod
    def _none_means_no_key(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("none", "null", ""):
            return None
        return value

    @model_validator(mode="after")
    def _needs_model(self) -> ProviderConfig:
        if not self.model and self.type != "fake":
            raise ValueError(f"a model is required for type {self.type!r}")
        if self.fake is not None and self.type != "fake":
            raise ValueError("'fake' settings apply only to type: fake")
        if self.type == "gemini" and not self.key_refs():
            raise ValueError("the gemini API needs a key (api_key: none is not accepted)")
        return self

    def timeouts_with(self, defaults: TimeoutsConfig) -> TimeoutsConfig:
        """The effective timeouts: provider's own over ``defaults``; ``timeout`` is request."""
        own = self.timeouts.model_dump(exclude_none=True)
        if self.timeout is not None:
            own.setdefault("request", self.timeout)
        return defaults.model_copy(update=own) if own else defaults

    def key_refs(self) -> list[SecretStr]:
        return ([self.api_key] if self.api_key is not None else []) + list(self.api_keys)


class HedgeConfig(_Model):
    """Start the next provider if the first has not answered ``after`` this long."""

    after: Literal["p95"] | Duration = "p95"
    max_extra: int = Field(1, ge=1, description="extra concurrent attempts per request")
    max_ratio: Fraction = Field(0.1, description="at most this share of requests hedge")
    min_delay: Duration = 0.05


class FallbackConfig(_Model):
    python: str | None = Field(None, description="'module:function' called when all fail")
    runbook: str | None = None
    defer: bool = False
    on_replay: str | None = Field(
        None, description="'module:function' called with (record, response) after a "
        "deferred request of this route was answered by a replay")

    @field_validator("python", "on_replay")
    @classmethod
    def _module_colon_function(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[\w.]+:[\w.]+", value):
            raise ValueError(f"expected 'module:function', got {value!r}")
        return value


Action = Literal["retry", "failover", "raise"]


class RouteConfig(_Model):
    chain: list[str] = Field(min_length=1)
    deadline: Duration | None = 30.0
    fallback: FallbackConfig = FallbackConfig()
    stream_interrupt: Literal["restart", "continue", "raise"] = "restart"
    actions: dict[str, Action] = Field(default_factory=dict)
    hedge: HedgeConfig | None = None
    retry: RetryConfig | None = None

    @field_validator("actions")
    @classmethod
    def _known_kinds(cls, value: dict[str, str]) -> dict[str, str]:
        for kind in value:
            if kind not in ERROR_KINDS:
                raise ValueError(f"unknown error kind {kind!r}; known: {', '.join(ERROR_KINDS)}")
        return value


class WebhookConfig(_Model):
    _shown_as = {"url": functools.partial(mask_url, path=True)}

    url: str
    events: list[str] = Field(
        default_factory=lambda: [
            "breaker_opened", "all_providers_failed", "deferred", "defer_failed",
            "config_rejected",
        ]
    )  # fmt: skip
    min_interval: Duration = 60.0
    timeout: Duration = 5.0
    format: Literal["slack", "generic"] = "slack"


class NotifyConfig(_Model):
    webhook: WebhookConfig | None = None
    log: bool = True


class ObjectivesConfig(_Model):
    rto: Duration = 2.0
    rpo: int = Field(0, ge=0, description="requests that may be lost")


class StateConfig(_Model):
    _shown_as = {"url": mask_url}

    backend: Literal["memory", "redis"] = "memory"
    url: str | None = None
    prefix: str = "failover"

    @model_validator(mode="after")
    def _redis_needs_url(self) -> StateConfig:
        if self.backend == "redis" and not self.url:
            raise ValueError("backend redis needs a url, e.g. redis://localhost:6379/0")
        return self


class TelemetryConfig(_Model):
    #: OpenTelemetry spans and metrics: None = when the ``opentelemetry`` API is installed.
    opentelemetry: bool | None = None


class DeferredConfig(_Model):
    """The deferred-request store. A relative ``path`` is relative to the config file's
    folder (to the working directory for a config built in code)."""

    path: str = ".failover/deferred.sqlite"
    #: How long a write waits for another process's lock before it fails (typed).
    lock_timeout: Duration = 5.0
    #: Answered rows are kept this long (``failover deferred show``), then pruned.
    keep_answers: Duration = 7 * 86400.0
    #: A replayer's claim on a row; a replayer that died frees its rows after this.
    replay_lease: Duration = 300.0


EVENT_TYPES: tuple[str, ...] = get_args(EventType)


class Config(_Model):
    """The whole configuration. Build it in code or load it with `Config.from_file`."""

    providers: dict[str, ProviderConfig]
    routes: dict[str, RouteConfig]
    defaults: DefaultsConfig = DefaultsConfig()
    notify: NotifyConfig = NotifyConfig()
    objectives: ObjectivesConfig = ObjectivesConfig()
    state: StateConfig = StateConfig()
    deferred: DeferredConfig = DeferredConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    watch: bool = False
    #: The folder of the file it was loaded from: where relative paths start.
    _folder: Path | None = PrivateAttr(default=None)

    @property
    def folder(self) -> Path | None:
        """The folder of the config file this was loaded from (None if built in code)."""
        return self._folder

    def deferred_path(self) -> Path:
        """The deferred store's file: ``deferred.path``, relative to `folder` if set."""
        path = Path(self.deferred.path).expanduser()
        if path.is_absolute() or self._folder is None:
            return path
        return self._folder / path

    @model_validator(mode="after")
    def _chains_name_providers(self) -> Config:
        problems = []
        for route_name, route in self.routes.items():
            seen: set[str] = set()
            for i, name in enumerate(route.chain):
                where = f"routes.{route_name}.chain[{i}]"
                if name not in self.providers:
                    hint = _closest(name, self.providers)
                    problems.append(f"{where}: unknown provider {name!r}{hint}")
                elif name in seen:
                    problems.append(f"{where}: provider {name!r} appears twice in the chain")
                seen.add(name)
        if self.notify.webhook:
            for i, event in enumerate(self.notify.webhook.events):
                if event not in EVENT_TYPES:
                    problems.append(f"notify.webhook.events[{i}]: unknown event {event!r}")
        if problems:
            raise ConfigError(problems)
        return self

    def breaker_for(self, provider: str) -> BreakerConfig:
        return self.providers[provider].breaker or self.defaults.breaker

    def retry_for(self, route: str, provider: str) -> RetryConfig:
        return (
            self.routes[route].retry
            or self.providers[provider].retry
            or self.defaults.retry
        )

    def timeouts_for(self, provider: str) -> TimeoutsConfig:
        return self.providers[provider].timeouts_with(self.defaults.timeouts)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Config:
        return load_config(path)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str | None = None) -> Config:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = _problems(exc)
            problems += [p for p in _chain_problems(data) if p not in problems]
            raise ConfigError(problems, source=source) from None
        except ConfigError as exc:
            raise ConfigError(exc.problems, source=source) from None


def _chain_problems(data: Mapping[str, Any]) -> list[str]:
    """Chain references checked on the raw data, so they are reported with field errors."""
    providers, routes = data.get("providers"), data.get("routes")
    if not isinstance(providers, Mapping) or not isinstance(routes, Mapping):
        return []
    problems = []
    for route_name, route in routes.items():
        chain = route.get("chain") if isinstance(route, Mapping) else None
        for i, name in enumerate(chain if isinstance(chain, list) else []):
            if isinstance(name, str) and name not in providers:
                problems.append(
                    f"routes.{route_name}.chain[{i}]: unknown provider {name!r}"
                    f"{_closest(name, providers)}"
                )
    return problems


def _closest(name: str, known: Mapping[str, object]) -> str:
    import difflib

    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after[_needs_model()]",) or "[" in str(part):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _problems(exc: ValidationError) -> list[str]:
    problems: list[str] = []
    for err in exc.errors(include_url=False):
        loc = _loc(err["loc"])
        ctx = err.get("ctx") or {}
        cause = ctx.get("error")
        if isinstance(cause, ConfigError):
            problems.extend(cause.problems)
            continue
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif err["type"] == "literal_error":
            msg = f"expected {ctx.get('expected')}, got {err.get('input')!r}"
        else:
            msg = str(cause) if cause is not None else err["msg"]
            msg = msg.removeprefix("Value error, ")
        problems.append(f"{loc}: {msg}" if loc else msg)
    return problems


def _parse_text(text: str, suffix: str, source: str) -> Any:
    try:
        if suffix in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text)
        if suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover
                import tomli as tomllib

            return tomllib.loads(text)
        if suffix == ".json":
            return json.loads(text)
    except Exception as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        at = f" (line {line + 1})" if line is not None else ""
        raise ConfigError(f"cannot parse {suffix[1:].upper()}{at}: {exc}", source=source) from None
    raise ConfigError(
        f"unsupported config file type {suffix!r}: use .yaml, .yml, .toml or .json", source=source
    )


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a config file; every problem is reported at once."""
    file = Path(path)
    source = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", source=source) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", source=source) from None
    data = _parse_text(text, file.suffix.lower(), source)
    if not isinstance(data, Mapping):
        raise ConfigError("the top level must be a mapping with 'providers' and 'routes'",
                          source=source)
    config = Config.from_mapping(data, source=source)
    config._folder = file.resolve().parent
    return config
