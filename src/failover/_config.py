"""The config file: pydantic models, loading from YAML/TOML/JSON, ``${VAR}`` and durations.

A bad file raises one `ConfigError` listing every problem with its path in the file,
e.g. ``routes.default.chain[2]: unknown provider 'gemni'``. Secrets stay `SecretStr`
and ``${VAR}`` references are resolved only when a provider is first needed, so a
missing variable for an unused provider never stops the app from starting.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    SecretStr,
    SerializerFunctionWrapHandler,
    Tag,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from ._errors import ConfigError, ProviderError
from ._events import EventType
from ._secrets import mask_url
from ._types import Action, ProviderType, Strategy

__all__ = [
    "BackupConfig",
    "BreakerConfig",
    "CapabilitiesConfig",
    "Config",
    "CredentialsConfig",
    "DeferredConfig",
    "DrillsConfig",
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
    "config_path_from_env",
    "env_problems",
    "load_config",
    "parse_duration",
    "resolve_env",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

#: The error kinds a route's ``actions`` may name: every kind of provider failure.
ERROR_KINDS = tuple(kind.__name__ for kind in ProviderError.__subclasses__())


#: The longest a timeout, a deadline or a wait may be: longer is a typo, and a timer of
#: ``1e20`` seconds is a hang.
MAX_DURATION = 86400.0


def parse_duration(value: Any, *, most: float = MAX_DURATION, positive: bool = False) -> float:
    """``"200ms"``, ``"30s"``, ``"5m"``, ``"1h"``, ``"7d"`` or a number of seconds ->
    seconds: finite, not negative (above zero with ``positive``), at most ``most``."""
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds is None or not math.isfinite(seconds):
        raise ValueError(f"expected a duration like '200ms', '30s' or '5m', got {value!r}")
    if seconds < 0 or (positive and seconds == 0):
        raise ValueError(f"expected a duration {'above' if positive else 'of at least'} 0, "
                         f"got {value!r}")
    if seconds > most:
        raise ValueError(f"expected a duration of at most {_human(most)}, got {value!r}")
    return seconds


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


#: A duration of zero or more (a delay, a backoff, an interval), a day at most.
Duration = Annotated[float, BeforeValidator(parse_duration)]
#: A duration that must pass (a timeout, a deadline, an open period), a day at most.
Period = Annotated[float, BeforeValidator(functools.partial(parse_duration, positive=True))]
#: A retention period: up to a year.
Retention = Annotated[float, BeforeValidator(functools.partial(
    parse_duration, positive=True, most=365 * 86400.0))]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


def env_problems(config: Config, *, chains_only: bool = False,
                 environ: Mapping[str, str] | None = None) -> list[str]:
    """Every ``${VAR}`` the config refers to that cannot be resolved, as ``path: problem``.

    ``chains_only`` looks only at the keys of providers some route uses.
    """
    used = {name for route in config.routes.values() for name in route.providers}
    refs: list[tuple[str, str]] = []
    for name, provider in config.providers.items():
        if chains_only and name not in used:
            continue
        refs += [(f"providers.{name}.{where}", raw) for where, raw in provider.secret_refs()]
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


def _check_url(value: str | None, schemes: tuple[str, ...], example: str) -> str | None:
    """A URL with one of ``schemes`` and a host; a ``${VAR}`` is checked once resolved."""
    if value is None or "${" in value:
        return value
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        host = None
        parts = None
    if parts is None or parts.scheme not in schemes or not (host or parts.scheme == "unix"):
        raise ValueError(f"expected a URL like {example!r}, got {mask_url(value)!r}")
    return value


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

    connect: Period = 5.0
    request: Period = 30.0
    first_token: Period = 15.0
    stall: Period = 15.0


class PartialTimeouts(_Model):
    connect: Period | None = None
    request: Period | None = None
    first_token: Period | None = None
    stall: Period | None = None


class BreakerConfig(_Model):
    window: Period = 30.0
    min_calls: int = Field(5, ge=1)
    failure_rate: Fraction = 0.5
    consecutive_failures: int = Field(3, ge=1)
    open_for: Period = 5.0
    #: The SPEC's promise: a provider that recovers gets traffic back within this, while
    #: a dead one costs a probe every ``max_open_for`` (6 a minute): 10 s by default.
    max_open_for: Period = 10.0
    half_open_probes: int = Field(1, ge=1)
    #: How long a half-open probe may hold its permit before it is presumed hung.
    probe_lease: Period | None = None
    #: A completion slower than this, or a stream whose first token comes later, is a
    #: slow call (off by default: how long an answer takes depends on its length).
    slow_call: Period | None = None
    #: The share of slow calls in the window (with ``min_calls``) that opens the breaker.
    slow_call_rate: Fraction = 0.5

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
    #: How long a 429 without Retry-After cools the key (or provider) that got it; it
    #: doubles with each 429 in a row, up to ``max_rate_limit_cooldown``.
    rate_limit_cooldown: Duration = 5.0
    max_rate_limit_cooldown: Duration = 60.0

    @model_validator(mode="after")
    def _cooldown_fits(self) -> RetryConfig:
        if self.max_rate_limit_cooldown < self.rate_limit_cooldown:
            raise ValueError("max_rate_limit_cooldown must be at least rate_limit_cooldown")
        return self


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
    #: False: never send the unified ``reasoning`` option to this provider.
    reasoning: bool | None = None


class LimitsConfig(_Model):
    """Declared rate limits: requests and tokens a minute, for the provider as a whole
    (``per: provider``) or for each of its keys (``per: key``)."""

    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)
    per: Literal["provider", "key"] = "provider"


class CredentialsConfig(_Model):
    """Cloud credentials of a provider that does not take an API key (or not only one).

    Each platform reads its own fields; any it leaves out come from that platform's
    standard chain (AWS: environment, profile, role; Google: application default
    credentials). Every value may be a ``${VAR}``; secrets stay secret in every output.
    """

    _shown_as = {"aws_access_key_id": lambda _: "***"}

    # Amazon Bedrock
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None
    aws_profile: str | None = None
    # Google Vertex AI
    service_account_file: str | None = Field(
        None, description="a service-account JSON key file (relative to the config file)")
    # Google Vertex AI or Azure: a bearer token given as is (it is not refreshed)
    access_token: SecretStr | None = None
    # Azure OpenAI with Microsoft Entra ID: a service principal's secret, or the
    # DefaultAzureCredential chain (environment, workload / managed identity, CLI)
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    entra_id: Literal["default"] | None = None

    def given(self) -> set[str]:
        return {name for name in type(self).model_fields if getattr(self, name) is not None}


#: The ``credentials`` fields that hold a secret (the others name one: a profile, a file).
_SECRET_CREDENTIALS = frozenset({"aws_access_key_id", "aws_secret_access_key",
                                 "aws_session_token", "access_token", "client_secret",
                                 "tenant_id", "client_id"})

#: Which ``credentials`` fields each platform reads.
CREDENTIAL_FIELDS: dict[str, frozenset[str]] = {
    "bedrock": frozenset({"aws_access_key_id", "aws_secret_access_key", "aws_session_token",
                          "aws_profile"}),
    "vertex": frozenset({"service_account_file", "access_token"}),
    "azure": frozenset({"access_token", "tenant_id", "client_id", "client_secret", "entra_id"}),
}


#: Provider settings that only a cloud reads, and which clouds.
_CLOUD_SETTINGS: dict[str, tuple[str, ...]] = {
    "region": ("bedrock", "vertex"), "project": ("vertex",), "deployment": ("azure",),
    "api_version": ("azure",), "credentials": ("bedrock", "vertex", "azure"),
}


def _cloud_name(cloud: str) -> str:
    return "type: azure" if cloud == "azure" else f"platform: {cloud}"


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

    type: ProviderType
    #: Where a model of ``type`` is served from when not its maker's own API:
    #: ``bedrock`` or ``vertex`` for anthropic, ``vertex`` for gemini.
    platform: Literal["bedrock", "vertex"] | None = None
    model: str = ""
    api_key: SecretStr | None = None
    api_keys: list[SecretStr] = Field(default_factory=list, description="a key pool, rotated")
    #: A file holding the key (a mounted secret): read when the provider is built, and
    #: again by every reload, so a key rotated in the file takes effect without a
    #: restart. Relative to the config file's folder.
    api_key_file: str | None = None
    base_url: str | None = None
    timeout: Period | None = None
    timeouts: PartialTimeouts = PartialTimeouts()
    capabilities: CapabilitiesConfig = CapabilitiesConfig()
    breaker: BreakerConfig | None = None
    retry: RetryConfig | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    force: Literal["open", "closed"] | None = None
    fake: FakeConfig | None = None
    limits: LimitsConfig | None = None
    #: Provider-specific extra arguments sent with every request, as given.
    extra: dict[str, Any] = Field(default_factory=dict)
    #: Provider options sent with every request (``seed``, ``reasoning_effort``,
    #: ``thinking``, ``safety_settings``...): checked against what the provider's API
    #: takes, an unknown one dropped with a debug log; a call's own options win.
    options: dict[str, Any] = Field(default_factory=dict)
    #: Cloud settings: AWS region or Vertex location; Google Cloud project; Azure
    #: deployment (default: ``model``) and API version.
    region: str | None = None
    project: str | None = None
    deployment: str | None = None
    api_version: str | None = None
    credentials: CredentialsConfig | None = None

    @field_validator("base_url")
    @classmethod
    def _base_url_is_a_url(cls, value: str | None) -> str | None:
        return _check_url(value, ("http", "https"), "https://api.example.com/v1")

    @field_validator("headers")
    @classmethod
    def _headers_are_one_line(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP header name")
            if "\r" in text or "\n" in text:
                raise ValueError(f"header {name!r}: a value cannot contain a line break")
        return value

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
        if self.api_key_file is not None and (self.api_key is not None or self.api_keys):
            raise ValueError("give api_key_file, or api_key / api_keys, not both")
        if (self.type == "gemini" and self.platform is None and not self.key_refs()
                and self.api_key_file is None):
            raise ValueError("the gemini API needs a key (api_key: none is not accepted)")
        self._check_cloud()
        return self

    @property
    def cloud(self) -> str | None:
        """``azure``, ``bedrock``, ``vertex``: the cloud that serves this provider."""
        return "azure" if self.type == "azure" else self.platform

    def _check_cloud(self) -> None:
        """Cloud settings only where they apply, and what each cloud cannot do without."""
        allowed = {"anthropic": ("bedrock", "vertex"), "gemini": ("vertex",)}
        if self.platform is not None and self.platform not in allowed.get(self.type, ()):
            raise ValueError(f"platform: {self.platform!r} does not serve type {self.type!r} "
                             "(anthropic: bedrock or vertex; gemini: vertex)")
        cloud = self.cloud
        for name, clouds in _CLOUD_SETTINGS.items():
            if getattr(self, name) is not None and cloud not in clouds:
                raise ValueError(f"{name} applies only to " + " and ".join(
                    _cloud_name(c) for c in clouds))
        if cloud == "vertex" and not (self.region and self.project):
            raise ValueError("platform: vertex needs project (the Google Cloud project) and "
                             "region (a Vertex AI location: us-east5, europe-west1, global)")
        if cloud == "bedrock" and not self.region:
            raise ValueError("platform: bedrock needs a region (an AWS region, e.g. "
                             "us-east-1)")
        if cloud == "azure" and not self.base_url:
            raise ValueError("type: azure needs base_url: the resource's endpoint, e.g. "
                             "https://my-resource.openai.azure.com")
        if cloud is not None:
            self._check_credentials(cloud)

    def _check_credentials(self, cloud: str) -> None:
        given = self.credentials
        if given is None:
            if cloud == "azure" and not self.key_refs() and self.api_key_file is None:
                raise ValueError("type: azure needs api_key, or credentials (Entra ID: "
                                 "tenant_id/client_id/client_secret, entra_id: default, or "
                                 "access_token)")
            return
        wrong = sorted(given.given() - CREDENTIAL_FIELDS[cloud])
        if wrong:
            raise ValueError(f"credentials: {', '.join(wrong)} do(es) not apply to "
                             f"{_cloud_name(cloud)} (it reads "
                             f"{', '.join(sorted(CREDENTIAL_FIELDS[cloud]))})")
        if cloud == "azure":
            self._check_entra(given)
        if cloud == "bedrock" and self.key_refs():
            raise ValueError("platform: bedrock takes an api_key (a Bedrock API key) or "
                             "AWS credentials, not both")

    def _check_entra(self, given: CredentialsConfig) -> None:
        principal = [given.tenant_id, given.client_id, given.client_secret]
        ways = sum([any(v is not None for v in principal), given.entra_id is not None,
                    given.access_token is not None, bool(self.key_refs())])
        if ways != 1:
            raise ValueError("type: azure authenticates one way: api_key, credentials."
                             "access_token, credentials.entra_id: default, or credentials."
                             "tenant_id + client_id + client_secret")
        if any(v is not None for v in principal) and not all(v is not None for v in principal):
            raise ValueError("credentials: a service principal needs tenant_id, client_id "
                             "and client_secret")

    def timeouts_with(self, defaults: TimeoutsConfig) -> TimeoutsConfig:
        """The effective timeouts: provider's own over ``defaults``; ``timeout`` is request."""
        own = self.timeouts.model_dump(exclude_none=True)
        if self.timeout is not None:
            own.setdefault("request", self.timeout)
        return defaults.model_copy(update=own) if own else defaults

    def key_refs(self) -> list[SecretStr]:
        return ([self.api_key] if self.api_key is not None else []) + list(self.api_keys)

    def secret_refs(self) -> list[tuple[str, str]]:
        """Every credential of this provider as written (maybe ``${VAR}``), with its
        path under ``providers.<name>``: the one list the scrubber and the checks read."""
        refs = [("api_key", self.api_key.get_secret_value())] if self.api_key else []
        refs += [(f"api_keys[{i}]", key.get_secret_value())
                 for i, key in enumerate(self.api_keys)]
        given = self.credentials
        if given is not None:
            for name in sorted(given.given() & _SECRET_CREDENTIALS):
                value = getattr(given, name)
                refs.append((f"credentials.{name}", value if isinstance(value, str)
                             else value.get_secret_value()))
        return refs

    def secret_values(self) -> Iterator[str]:
        """Every credential this provider's config holds that can be read now (a
        ``${VAR}`` that is set, or a value written in the file): what the scrubber must
        know before any provider answers, since one provider may echo another's."""
        for _, raw in self.secret_refs():
            try:
                yield resolve_env(raw, "")
            except ConfigError:
                continue  # unset: registered when the adapter resolves it


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


class PoolMember(_Model):
    provider: str
    weight: float = Field(1.0, gt=0, allow_inf_nan=False)


def _element_kind(value: Any) -> str:
    """Which form a chain element (or pool member) takes: a name, or a mapping."""
    return "<name>" if isinstance(value, str) else "<mapping>"


#: Tags of the one-of-two forms above, left out of config paths in error messages.
_FORM_TAGS = frozenset({"<name>", "<mapping>"})


class PoolConfig(_Model):
    """A chain element of equivalent providers, tried in the strategy's order."""

    pool: list[Annotated[Annotated[str, Tag("<name>")] | Annotated[PoolMember, Tag("<mapping>")],
                         Discriminator(_element_kind)]] = Field(min_length=1)
    strategy: Strategy = "priority"

    @property
    def members(self) -> list[PoolMember]:
        return [m if isinstance(m, PoolMember) else PoolMember(provider=m) for m in self.pool]

    @model_validator(mode="after")
    def _weights_need_weighted(self) -> PoolConfig:
        if self.strategy != "weighted":
            for i, member in enumerate(self.pool):
                if isinstance(member, PoolMember) and "weight" in member.model_fields_set:
                    raise ValueError(f"pool[{i}].weight: only strategy: weighted uses "
                                     f"weights (this pool's is {self.strategy})")
        return self


class RouteConfig(_Model):
    chain: list[Annotated[Annotated[str, Tag("<name>")] | Annotated[PoolConfig, Tag("<mapping>")],
                          Discriminator(_element_kind)]] = Field(min_length=1)
    deadline: Period | None = 30.0
    fallback: FallbackConfig = FallbackConfig()
    stream_interrupt: Literal["restart", "continue", "raise"] = "restart"
    actions: dict[str, Action] = Field(default_factory=dict)
    hedge: HedgeConfig | None = None
    retry: RetryConfig | None = None

    @property
    def providers(self) -> list[str]:
        """The names of the chain's providers, pool members included, in chain order."""
        return [name for _, name in self.placed()]

    @property
    def labels(self) -> list[str]:
        """Each chain element as people read it: a name, or ``{a | b} (strategy)``."""
        return [e if isinstance(e, str) else
                "{" + " | ".join(m.provider for m in e.members) + "} (" + e.strategy + ")"
                for e in self.chain]

    def placed(self) -> list[tuple[str, str]]:
        """Each provider of the chain with its config path (``chain[1].pool[0]``)."""
        out: list[tuple[str, str]] = []
        for i, element in enumerate(self.chain):
            if isinstance(element, str):
                out.append((f"chain[{i}]", element))
            else:
                out += [(f"chain[{i}].pool[{j}]", m.provider)
                        for j, m in enumerate(element.members)]
        return out

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

    @field_validator("url")
    @classmethod
    def _is_a_url(cls, value: str) -> str:
        checked = _check_url(value, ("http", "https"), "https://hooks.example.com/...")
        return value if checked is None else checked
    events: list[str] = Field(
        default_factory=lambda: [
            "breaker_opened", "all_providers_failed", "deferred", "defer_failed",
            "config_rejected", "key_retired", "shared_state_lost",
        ]
    )  # fmt: skip
    min_interval: Duration = 60.0
    timeout: Period = 5.0
    format: Literal["slack", "generic"] = "slack"


class NotifyConfig(_Model):
    webhook: WebhookConfig | None = None
    log: bool = True


class ObjectivesConfig(_Model):
    rto: Period = 2.0
    rpo: int = Field(0, ge=0, description="requests that may be lost")
    #: Each scenario drilled at least this often, each runbook reviewed at least this
    #: often ("test each scenario, review quarterly"): `failover plan` lists the overdue.
    drill_every: Retention = 90 * 86400.0
    review_every: Retention = 90 * 86400.0


class DrillsConfig(_Model):
    #: Drill results, one JSON line per drill, appended (relative to the config's folder).
    history: str = ".failover/drill-history.jsonl"


class StateConfig(_Model):
    _shown_as = {"url": mask_url}

    backend: Literal["memory", "redis"] = "memory"
    url: str | None = None
    prefix: str = "failover"

    @field_validator("url")
    @classmethod
    def _is_a_redis_url(cls, value: str | None) -> str | None:
        return _check_url(value, ("redis", "rediss", "unix"), "redis://localhost:6379/0")

    @model_validator(mode="after")
    def _redis_needs_url(self) -> StateConfig:
        if self.backend == "redis" and not self.url:
            raise ValueError("backend redis needs a url, e.g. redis://localhost:6379/0")
        return self


class TelemetryConfig(_Model):
    #: OpenTelemetry spans and metrics: None = when the ``opentelemetry`` API is installed.
    opentelemetry: bool | None = None
    #: Prompt and answer text in telemetry (``gen_ai.input.messages``...): off unless
    #: asked for, since it is the users' data.
    capture_content: bool = False


class BackupConfig(_Model):
    """Backups of the deferred store, for when its file is lost. ``every: 0`` writes each
    deferral to the backup as well, before the caller gets its ticket (nothing lost with
    one file); otherwise the router copies the store there every ``every``, and a loss
    of the store loses what was deferred since (what ``failover drill`` measures)."""

    path: str
    every: Duration = 900.0


class DeferredConfig(_Model):
    """The deferred-request store. A relative ``path`` is relative to the config file's
    folder (to the working directory for a config built in code)."""

    path: str = ".failover/deferred.sqlite"
    #: How long a write waits for another process's lock before it fails (typed).
    lock_timeout: Period = 5.0
    #: Answered rows are kept this long (``failover deferred show``), then pruned.
    keep_answers: Retention = 7 * 86400.0
    #: A replayer's claim on a row; a replayer that died frees its rows after this.
    replay_lease: Period = 300.0
    backup: BackupConfig | None = None


EVENT_TYPES: tuple[str, ...] = get_args(EventType)


class Config(_Model):
    """The whole configuration. Build it in code or load it with `Config.from_file`."""

    providers: dict[str, ProviderConfig] = Field(min_length=1)
    routes: dict[str, RouteConfig] = Field(min_length=1)
    defaults: DefaultsConfig = DefaultsConfig()
    notify: NotifyConfig = NotifyConfig()
    objectives: ObjectivesConfig = ObjectivesConfig()
    state: StateConfig = StateConfig()
    deferred: DeferredConfig = DeferredConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    drills: DrillsConfig = DrillsConfig()
    watch: bool = False
    #: The folder of the file it was loaded from: where relative paths start.
    _folder: Path | None = PrivateAttr(default=None)

    @property
    def folder(self) -> Path | None:
        """The folder of the config file this was loaded from (None if built in code)."""
        return self._folder

    def key_file_for(self, name: str) -> Path | None:
        """Provider ``name``'s ``api_key_file``, relative to `folder` if set."""
        raw = self.providers[name].api_key_file
        if raw is None:
            return None
        path = Path(raw).expanduser()
        return path if path.is_absolute() or self._folder is None else self._folder / path

    def provider_with_paths(self, name: str) -> ProviderConfig:
        """Provider ``name``'s config with its files (``api_key_file``, a service-account
        file) where the config file says: relative to `folder`."""
        pconf = self.providers[name]
        key_file = self.key_file_for(name)
        if key_file is not None:
            pconf = pconf.model_copy(update={"api_key_file": str(key_file)})
        given = pconf.credentials
        if given is not None and given.service_account_file is not None:
            path = self._relative(given.service_account_file)
            pconf = pconf.model_copy(update={"credentials": given.model_copy(
                update={"service_account_file": str(path)})})
        return pconf

    def deferred_path(self) -> Path:
        """The deferred store's file: ``deferred.path``, relative to `folder` if set."""
        return self._relative(self.deferred.path)

    def history_path(self) -> Path:
        """``drills.history``, relative to `folder` if set."""
        return self._relative(self.drills.history)

    def backup_path(self) -> Path | None:
        """``deferred.backup.path``, relative to `folder` if set; None without backups."""
        backup = self.deferred.backup
        return None if backup is None else self._relative(backup.path)

    def _relative(self, raw: str) -> Path:
        path = Path(raw).expanduser()
        if path.is_absolute() or self._folder is None:
            return path
        return self._folder / path

    @model_validator(mode="after")
    def _chains_name_providers(self) -> Config:
        problems = [f"{kind}: a name cannot be empty" for kind, names in
                    (("providers", self.providers), ("routes", self.routes))
                    for name in names if not name.strip()]
        for route_name, route in self.routes.items():
            seen: set[str] = set()
            for place, name in route.placed():
                where = f"routes.{route_name}.{place}"
                if name not in self.providers:
                    hint = _closest(name, self.providers)
                    problems.append(f"{where}: unknown provider {name!r}{hint}")
                elif name in seen:
                    problems.append(f"{where}: provider {name!r} appears twice in the chain")
                seen.add(name)
        problems += _unclosed_references(self)
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


def _field_names(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[str]:
    seen.add(model)
    names = set(model.model_fields)
    for info in model.model_fields.values():
        for inner in _models_in(info.annotation):
            if inner not in seen:
                names |= _field_names(inner, seen)
    return names


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


#: Every key the config file format knows, for "did you mean" on unknown ones.
_KNOWN_KEYS: dict[str, object] = dict.fromkeys(_field_names(Config, set()))


def _unclosed_references(config: Config) -> list[str]:
    """A ``${VAR`` without its brace would be sent literally, as the key itself."""
    texts: list[tuple[str, str]] = []
    for name, p in config.providers.items():
        texts += [(f"providers.{name}.api_key", p.api_key.get_secret_value())] if p.api_key else []
        texts += [(f"providers.{name}.api_keys[{i}]", k.get_secret_value())
                  for i, k in enumerate(p.api_keys)]
        texts += [(f"providers.{name}.headers.{h}", v) for h, v in p.headers.items()]
        texts += [(f"providers.{name}.base_url", p.base_url or "")]
    texts += [("state.url", config.state.url or "")]
    if config.notify.webhook:
        texts.append(("notify.webhook.url", config.notify.webhook.url))
    return [f"{where}: '${{' without a closing '}}' (write ${{VAR}})"
            for where, text in texts if "${" in _ENV_REF.sub("", text)]


def _chain_problems(data: Mapping[str, Any]) -> list[str]:
    """Chain references checked on the raw data, so they are reported with field errors."""
    providers, routes = data.get("providers"), data.get("routes")
    if not isinstance(providers, Mapping) or not isinstance(routes, Mapping):
        return []
    problems = []
    for route_name, route in routes.items():
        chain = route.get("chain") if isinstance(route, Mapping) else None
        for place, name in _raw_placed(chain):
            if name not in providers:
                problems.append(f"routes.{route_name}.{place}: unknown provider {name!r}"
                                f"{_closest(name, providers)}")
    return problems


def _raw_placed(chain: Any) -> list[tuple[str, str]]:
    """`RouteConfig.placed` on raw data: the provider names a chain (and its pools) gives."""
    out: list[tuple[str, str]] = []
    for i, element in enumerate(chain if isinstance(chain, list) else []):
        if isinstance(element, str):
            out.append((f"chain[{i}]", element))
            continue
        pool = element.get("pool") if isinstance(element, Mapping) else None
        for j, member in enumerate(pool if isinstance(pool, list) else []):
            name = member.get("provider") if isinstance(member, Mapping) else member
            if isinstance(name, str):
                out.append((f"chain[{i}].pool[{j}]", name))
    return out


def _closest(name: str, known: Mapping[str, object]) -> str:
    import difflib

    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _FORM_TAGS or part == "function-after[_needs_model()]" or "[" in str(
                part):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


#: pydantic's error types, said for people: what was expected.
_EXPECTED = {
    "int_type": "a whole number", "int_parsing": "a whole number",
    "int_from_float": "a whole number", "float_type": "a number", "float_parsing": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false", "string_type": "text",
    "dict_type": "a mapping", "model_type": "a mapping", "list_type": "a list",
    "finite_number": "a finite number",
}


def _message(err: Any) -> str:
    kind, ctx, given = err["type"], err.get("ctx") or {}, err.get("input")
    cause = ctx.get("error")
    if kind == "extra_forbidden":
        name = str(err["loc"][-1]) if err["loc"] else ""
        return "unknown key" + _closest(name, _KNOWN_KEYS)
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        return f"expected {ctx.get('expected')}, got {given!r}"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {given!r}"
    bounds = {"greater_than_equal": ("at least", "ge"), "greater_than": ("more than", "gt"),
              "less_than_equal": ("at most", "le"), "less_than": ("less than", "lt")}
    if kind in bounds:
        words, key = bounds[kind]
        return f"expected {words} {ctx.get(key)}, got {given!r}"
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length')} item(s), got none"
    message = str(cause) if cause is not None else str(err["msg"])
    return message.removeprefix("Value error, ")


def _problems(exc: ValidationError) -> list[str]:
    """One problem per place, in the file's order; several failed alternatives of one
    value (``hedge.after``: ``p95`` or a duration) become one sentence."""
    by_place: dict[str, list[str]] = {}
    extra: list[str] = []
    for err in exc.errors(include_url=False):
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, ConfigError):
            extra.extend(cause.problems)
            continue
        messages = by_place.setdefault(_loc(err["loc"]), [])
        message = _message(err)
        if message not in messages:
            messages.append(message)
    problems = [f"{loc}: {_merged(messages)}" if loc else _merged(messages)
                for loc, messages in by_place.items()]
    return problems + [p for p in extra if p not in problems]


def _merged(messages: list[str]) -> str:
    if len(messages) == 1 or not all(m.startswith("expected ") for m in messages):
        return "; ".join(messages)
    wanted = [m.removeprefix("expected ").split(", got ")[0] for m in messages]
    got = messages[-1].split(", got ")[-1] if ", got " in messages[-1] else None
    return "expected " + " or ".join(wanted) + (f", got {got}" if got else "")


#: A config file may not expand (YAML aliases) to more values than this.
MAX_VALUES = 100_000


def _yaml(text: str, lines: dict[str, int]) -> Any:
    """YAML with every mapping's keys unique, and aliases bounded: a 600-byte file must not
    expand to a billion values. ``lines`` gets the line of each key's path."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        problems = _yaml_problems(node, lines)
        if problems:
            raise ConfigError(problems)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _yaml_problems(root: Any, lines: dict[str, int]) -> list[str]:
    import yaml

    problems: list[str] = []
    budget = [MAX_VALUES]

    def walk(node: Any, path: str) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            return
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else "?"
                where = f"{path}.{name}" if path else str(name)
                line = key.start_mark.line + 1
                lines.setdefault(where, line)
                if name in seen and name != "<<":
                    problems.append(f"{where}: the key appears twice (lines {seen[name]} and "
                                    f"{line}); the second would silently win")
                seen[name] = line
                walk(value, where)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines.setdefault(f"{path}[{i}]", item.start_mark.line + 1)
                walk(item, f"{path}[{i}]")

    walk(root, "")
    if budget[0] < 0:
        problems.append(f"the file expands to more than {MAX_VALUES:,} values (YAML "
                        "aliases?); write it out, or use fewer aliases")
    return problems


def _json(text: str) -> Any:
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise ConfigError(f"{key}: the key appears twice in one object; the second "
                                  "would silently win")
            out[key] = value
        return out

    return json.loads(text, object_pairs_hook=unique)


def _parse_text(text: str, suffix: str, source: str, lines: dict[str, int]) -> Any:
    try:
        if suffix in (".yaml", ".yml"):
            return _yaml(text, lines)
        if suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover
                import tomli as tomllib

            return tomllib.loads(text)  # TOML itself refuses duplicate keys
        if suffix == ".json":
            return _json(text)
    except ConfigError as exc:
        raise ConfigError(exc.problems, source=source) from None
    except Exception as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        if line is None:
            line = getattr(exc, "lineno", None)
            line = line - 1 if isinstance(line, int) else None
        at = f" (line {line + 1})" if line is not None else ""
        reason = getattr(exc, "problem", None) or getattr(exc, "msg", None) or str(exc)
        raise ConfigError(f"cannot parse {suffix[1:].upper()}{at}: {reason}",
                          source=source) from None
    raise ConfigError(
        f"unsupported config file type {suffix!r}: use .yaml, .yml, .toml or .json", source=source
    )


def _with_line(problem: str, lines: Mapping[str, int]) -> str:
    """``path: message (line N)``, from the deepest part of the path the file has."""
    path, sep, _ = problem.partition(": ")
    if not sep:
        return problem
    while path and path not in lines:
        path = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", path)
    return f"{problem} (line {lines[path]})" if path else problem


#: The environment variable naming the config file, for `Router.from_env` and the CLI.
CONFIG_ENV = "FAILOVER_CONFIG"


def config_path_from_env(variable: str = CONFIG_ENV) -> str:
    """The config path ``variable`` names; a `ConfigError` saying what to set if none."""
    path = os.environ.get(variable, "").strip()
    if not path:
        raise ConfigError(f"{variable} is not set: set it to the path of your failover.yaml "
                          "(or .toml / .json)", source=f"${variable}")
    return path


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a config file; every problem is reported at once."""
    file = Path(path)
    source = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", source=source) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a config file", source=source) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"the file is not UTF-8 text (byte {exc.start})",
                          source=source) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", source=source) from None
    lines: dict[str, int] = {}
    data = _parse_text(text, file.suffix.lower(), source, lines)
    if not isinstance(data, Mapping):
        raise ConfigError("the top level must be a mapping with 'providers' and 'routes'",
                          source=source)
    try:
        config = Config.from_mapping(data, source=source)
    except ConfigError as exc:
        raise ConfigError([_with_line(p, lines) for p in exc.problems], source=source) from None
    config._folder = file.resolve().parent
    return config
