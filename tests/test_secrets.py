"""No secret in any output. Distinct secrets sit in every place the config holds one; a
loopback server echoes each request's headers (keys included) back in its error bodies;
every output the library produces is then searched for each secret and its encodings."""

from __future__ import annotations

import base64
import gc
import itertools
import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
import yaml

import failover
from failover.cli import main as cli_main

if TYPE_CHECKING:
    from conftest import Serve

SECRETS = {
    "OPENAI": "sk-live-openai-S3CR3T-0001",
    "CLAUDE": "claudekey-S3CR3T-0002",         # not key-shaped: only scrubbing by value finds it
    "CLAUDE_SPARE": "claudespare-S3CR3T-0007",  # the second key of a pool
    "GEMINI": "geminikey-S3CR3T-0003",
    "GATEWAY": "gateway-token-S3CR3T-0004",
    "BASIC_PASSWORD": "basicpw-S3CR3T-0005",
    "HOOK": "T0REDTEAMHOOKTOKEN777",
    "REDIS": "redispass-S3CR3T-0006",
}


def encodings(secret: str) -> set[str]:
    raw = secret.encode()
    return {secret, quote(secret, safe=""), base64.b64encode(raw).decode(),
            base64.b64encode(f"user:{secret}".encode()).decode()}


class Echo(BaseHTTPRequestHandler):
    """Answers every provider request 401 with its own headers in the body (a careless
    gateway), and every webhook 200, keeping what was posted."""

    protocol_version = "HTTP/1.1"
    posted: list[bytes] = []
    #: Each provider request gets the next of these statuses, each echoing the headers.
    statuses = itertools.cycle([401, 403, 404, 429, 500, 503, 529, 400])
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if "/hooks/" in self.path:
            Echo.posted.append(body)
            self._send(200, {"ok": True})
            return
        with Echo.lock:
            status = next(Echo.statuses)
        echoed = "; ".join(f"{k}: {v}" for k, v in self.headers.items())
        # The 400 says the prompt is too long: a kind that fails over, like the others.
        what = "prompt is too long: context_length_exceeded" if status == 400 else "failed"
        self._send(status, {"error": {"message": f"{what}, you sent {echoed}",
                                      "type": "error", "code": status, "status": "ERROR"}})

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echo(serve: Serve) -> int:
    Echo.posted = []
    return serve(Echo)


@pytest.fixture
def config_path(tmp_path: Path, echo: int, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, value in SECRETS.items():
        monkeypatch.setenv(f"T_{name}", value)
    base = f"http://127.0.0.1:{echo}"
    path = tmp_path / "failover.yaml"
    path.write_text(yaml.safe_dump({
        "providers": {
            "openai": {"type": "openai", "model": "gpt-4o-mini", "api_key": "${T_OPENAI}",
                       "base_url": f"http://user:{SECRETS['BASIC_PASSWORD']}@127.0.0.1:{echo}/v1",
                       "headers": {"X-Gateway-Token": "${T_GATEWAY}"}},
            "claude": {"type": "anthropic", "model": "claude-haiku-4-5",
                       "api_keys": ["${T_CLAUDE}", "${T_CLAUDE_SPARE}"], "base_url": base},
            "gemini": {"type": "gemini", "model": "gemini-2.5-flash", "api_key": "${T_GEMINI}",
                       "base_url": base},
        },
        "routes": {"default": {"chain": ["openai", "claude", "gemini"],
                               "fallback": {"defer": True}}},
        "notify": {"webhook": {"url": f"{base}/hooks/{SECRETS['HOOK']}", "min_interval": "0s",
                               "format": "generic",
                               "events": ["attempt_failed", "breaker_opened",
                                          "all_providers_failed", "deferred"]}},
        "deferred": {"path": str(tmp_path / "deferred.sqlite")},
        # A Redis with a password that is down: its connection errors are logged too.
        "state": {"backend": "redis",
                  "url": f"redis://:{SECRETS['REDIS']}@127.0.0.1:{closed_port()}/0"},
    }))
    return path


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chain_of(error: BaseException) -> Iterator[Any]:
    """The exception, everything it chains to, and every object their attributes hold."""
    seen: set[int] = set()
    todo: list[Any] = [error]
    while todo:
        item = todo.pop()
        if id(item) in seen or item is None:
            continue
        seen.add(id(item))
        yield item
        if isinstance(item, BaseException):
            todo += [item.__cause__, item.__context__, *vars(item).values()]
        elif isinstance(item, (list, tuple)):
            todo += list(item)
        elif hasattr(item, "__dict__") and not isinstance(item, type):
            todo += list(vars(item).values())


def assert_clean(where: str, text: str) -> None:
    for name, secret in SECRETS.items():
        for form in encodings(secret):
            assert form not in text, f"{name} ({form!r}) appears in {where}"


async def provoke(router: failover.Router, entry: str) -> None:
    if entry == "complete":
        router.complete("hi")
    elif entry == "acomplete":
        await router.acomplete("hi")
    elif entry == "stream":
        list(router.stream("hi"))
    else:
        [e async for e in router.astream("hi")]


async def test_no_secret_reaches_any_output(
    config_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: the SDKs' and httpx2's records too
    events: list[failover.Event] = []
    telemetry: list[failover.RequestRecord] = []  # what becomes span attributes

    class Recorder:
        def on_request(self, record: failover.RequestRecord) -> None:
            telemetry.append(record)

    with failover.Router.from_file(config_path, instrumentation=[Recorder()]) as router:
        router.subscribe(events.append)
        errors = []
        for entry in ("complete", "acomplete", "stream", "astream") * 3:
            router.reset("openai")
            router.reset("claude")
            router.reset("gemini")
            with pytest.raises(failover.Deferred) as deferred:
                await provoke(router, entry)
            errors.append(deferred.value)
        health = router.health()
        assert router._notifier.flush(5.0)  # every webhook post has gone out

    kinds = {a.error_kind for e in errors for a in e.attempts if a.error_kind}
    assert kinds >= {"AuthenticationFailed", "PermissionDenied", "ModelNotFound",
                     "RateLimited", "ServerError", "Overloaded", "ContextWindowExceeded"}
    echoed = errors[0].attempts[0].detail
    assert "you sent" in echoed and "***" in echoed  # the echo arrived, scrubbed
    assert_clean("telemetry records", repr(telemetry))

    for error in errors:
        for i, item in enumerate(chain_of(error)):
            assert_clean(f"exception chain item {i} ({type(item).__name__})",
                         repr(item) + str(item))
    assert not any(type(item).__module__.startswith(("openai", "anthropic", "google", "httpx"))
                   for error in errors for item in chain_of(error))
    assert_clean("events", repr(events))
    assert_clean("health", repr(health))
    assert_clean("log records", caplog.text + repr([r.__dict__ for r in caplog.records]))
    assert len(Echo.posted) >= 4
    assert_clean("webhook bodies", b"".join(Echo.posted).decode())
    check_store_and_cli(config_path, capsys)


def first_ticket(store: Path) -> str:
    with sqlite3.connect(store) as db:
        return str(db.execute("SELECT ticket FROM deferred").fetchone()[0])


def check_store_and_cli(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = Path(yaml.safe_load(config_path.read_text())["deferred"]["path"])
    assert_clean("the deferred store", store.read_bytes().decode("latin-1"))
    with sqlite3.connect(store) as db:
        assert_clean("the deferred rows", repr(db.execute("SELECT * FROM deferred").fetchall()))

    for argv in (["check", str(config_path)], ["plan", str(config_path)],
                 ["health", str(config_path)], ["deferred", "list", str(config_path), "--json"],
                 ["check", str(config_path), "--probe", "--json"],
                 ["drill", str(config_path), "--simulated-time", "--scenario", "revoked_key"],
                 ["deferred", "replay", str(config_path), "--json"],
                 ["deferred", "show", first_ticket(store), str(config_path), "--json"]):
        cli_main(argv)
        out = capsys.readouterr()
        assert_clean(f"`failover {' '.join(argv[:2])}`", out.out + out.err)
    gc.collect()


def test_config_objects_hide_their_secrets(config_path: Path) -> None:
    config = failover.Config.from_file(config_path)
    shown = repr(config) + str(config) + json.dumps(config.model_dump(mode="json"))
    assert_clean("the config's repr and dump", shown)
    state = failover.Config.from_mapping({
        "providers": {"p": {"type": "openai", "model": "m", "api_key": "none"}},
        "routes": {"d": {"chain": ["p"]}},
        "state": {"backend": "redis", "url": f"redis://:{SECRETS['GATEWAY']}@host:6379/0"},
    })
    assert_clean("state.url", repr(state) + json.dumps(state.model_dump(mode="json")))


def test_a_config_error_never_quotes_a_key(tmp_path: Path) -> None:
    path = tmp_path / "failover.yaml"
    path.write_text(f"providers:\n  p: {{type: openai, model: m, timeout: {SECRETS['OPENAI']}}}\n"
                    "routes:\n  d: {chain: [p]}\n")
    with pytest.raises(failover.ConfigError) as caught:
        failover.Config.from_file(path)
    assert "providers.p.timeout" in str(caught.value)
    assert_clean("ConfigError", str(caught.value))


# --- cloud credentials ------------------------------------------------------------------


async def test_no_cloud_credential_or_token_reaches_any_output(
    tmp_path: Path, cloud_providers: dict[str, Any], caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from failover.testing import FakeClock, FakeProviders
    from support import CLOUD_SECRETS

    caplog.set_level(logging.DEBUG)  # botocore, google-auth, azure-identity, msal too
    names = list(cloud_providers)
    path = tmp_path / "failover.yaml"
    path.write_text(yaml.safe_dump({
        "providers": cloud_providers,
        "routes": {"default": {"chain": names, "fallback": {"defer": True}}},
        "deferred": {"path": str(tmp_path / "deferred.sqlite")},
    }))
    events: list[failover.Event] = []
    with FakeProviders(clock=FakeClock(), real_store=True) as fake:
        fake.identity.answer(expires_in=1)  # a fresh token for every request
        for name, secret in zip(names, itertools.cycle(CLOUD_SECRETS)):
            # Each provider echoes a credential back in its error, as some gateways do.
            fake[name].fail(403, message=f"denied for {secret}")
        with failover.Router.from_file(path) as router:
            router.subscribe(events.append)
            errors = []
            for entry in ("complete", "acomplete", "stream", "astream"):
                for name in names:
                    router.reset(name)
                with pytest.raises(failover.Deferred) as deferred:
                    await provoke(router, entry)
                errors.append(deferred.value)
            health = router.health()
        tokens = tuple(fake.identity.tokens)
    assert len(tokens) >= 4 and all(a.error_kind == "PermissionDenied"
                                    for e in errors for a in e.attempts)
    secrets = {**{f"cloud-{i}": s for i, s in enumerate(CLOUD_SECRETS)},
               **{f"token-{i}": t for i, t in enumerate(tokens)}}

    def clean(where: str, text: str) -> None:
        for name, secret in secrets.items():
            for form in encodings(secret):
                assert form not in text, f"{name} ({form!r}) appears in {where}"

    for error in errors:
        for i, item in enumerate(chain_of(error)):
            clean(f"exception chain item {i} ({type(item).__name__})", repr(item) + str(item))
    clean("events", repr(events))
    clean("health", repr(health))
    clean("log records", caplog.text + repr([r.__dict__ for r in caplog.records]))
    config = failover.Config.from_file(path)
    clean("the config", repr(config) + json.dumps(config.model_dump(mode="json")))
    clean("the deferred store", (tmp_path / "deferred.sqlite").read_bytes().decode("latin-1"))
    for argv in (["check", str(path)], ["plan", str(path)],
                 ["deferred", "list", str(path), "--json"]):
        cli_main(argv)
        out = capsys.readouterr()
        clean(f"`failover {argv[0]}`", out.out + out.err)


@pytest.mark.parametrize("shape", [
    "AKIAIOSFODNN7EXAMPLE",  # an AWS access key id
    "ASIAIOSFODNN7EXAMPLE",  # a temporary one (STS)
    "ya29.a0AfH6SMBx-not-a-real-token",  # a Google OAuth access token
])
def test_cloud_credentials_no_config_named_are_masked_by_their_shape(shape: str) -> None:
    # A credential the library never held (another project's, echoed by a gateway).
    router_error = failover.ServerError(f"upstream said: bad key {shape}", provider="p")
    assert shape not in str(router_error)
    assert "***" in str(router_error)
