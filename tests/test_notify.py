"""The webhook notifier, posting through the httpx2 seam to a respx router."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from failover import ConfigError
from failover._clock import FakeClock
from failover._config import WebhookConfig
from failover._events import Event
from failover._notify import WebhookNotifier
from failover.providers._base import override_transport
from failover.testing import RespxTransport

URL = "https://hooks.example.test/services/T000/B000/s3cr3t-token"


@pytest.fixture
def hook() -> Iterator[respx.Router]:
    router = respx.Router(assert_all_called=False)
    with override_transport(RespxTransport(router)):
        yield router


def bodies(route: respx.Route) -> list[dict[str, Any]]:
    return [json.loads(call.request.content) for call in route.calls]


def opened(provider: str = "openai", route: str = "default") -> Event:
    return Event(
        type="breaker_opened",
        route=route,
        provider=provider,
        detail="3 consecutive failures: Overloaded (HTTP 503)",
        time=1_700_000_000.0,
    )


def notifier(clock: FakeClock | None = None, **kw: Any) -> WebhookNotifier:
    settings = {"url": URL, "min_interval": 60}
    settings.update(kw.pop("config", {}))
    return WebhookNotifier(
        WebhookConfig(**settings),
        runbooks={"default": "docs/runbooks/default.md"},
        clock=clock or FakeClock(),
        **kw,
    )


def test_slack_payload_names_event_provider_route_detail_and_runbook(
    hook: respx.Router,
) -> None:
    route = hook.post(URL).respond(200, text="ok")
    n = notifier()
    n(opened())
    assert n.flush()
    n.close()
    [body] = bodies(route)
    assert set(body) == {"text"}
    text = body["text"]
    assert "breaker_opened" in text
    assert "`openai`" in text
    assert "`default`" in text
    assert "3 consecutive failures: Overloaded (HTTP 503)" in text
    assert "Runbook: docs/runbooks/default.md" in text
    assert n.sent == 1
    assert n.failed == 0


def test_event_runbook_wins_over_the_route_mapping(hook: respx.Router) -> None:
    route = hook.post(URL).respond(200)
    n = notifier()
    n(Event(type="all_providers_failed", route="default", runbook="https://wiki/runbook"))
    n.close()
    assert "Runbook: https://wiki/runbook" in bodies(route)[0]["text"]


def test_generic_format_posts_the_event_fields(hook: respx.Router) -> None:
    route = hook.post(URL).respond(204)
    n = notifier(config={"format": "generic"})
    n(
        Event(
            type="deferred",
            route="default",
            provider=None,
            detail="ticket t-1",
            time=1_700_000_000.0,
            data={"ticket": "t-1"},
        )
    )
    n.close()
    [body] = bodies(route)
    assert body == {
        "source": "failover",
        "event": "deferred",
        "route": "default",
        "provider": None,
        "detail": "ticket t-1",
        "time": 1_700_000_000.0,
        "time_iso": "2023-11-14T22:13:20+00:00",
        "runbook": "docs/runbooks/default.md",
        "suppressed": 0,
        "rate_limited": 0,
        "data": {"ticket": "t-1"},
    }


def test_only_configured_event_types_are_posted(hook: respx.Router) -> None:
    route = hook.post(URL).respond(200)
    n = notifier(config={"events": ["all_providers_failed"]})
    n(opened())
    n(Event(type="attempt_failed", route="default", provider="openai"))
    n(Event(type="all_providers_failed", route="default"))
    n.close()
    assert [("all_providers_failed" in b["text"]) for b in bodies(route)] == [True]


def test_same_event_within_min_interval_is_sent_once_then_counted(hook: respx.Router) -> None:
    route = hook.post(URL).respond(200)
    clock = FakeClock()
    n = notifier(clock)
    for _ in range(4):
        n(opened())
        clock.advance(10)
    assert n.flush()
    assert route.call_count == 1
    clock.advance(30)  # 70 s after the first message
    n(opened())
    n.close()
    texts = [b["text"] for b in bodies(route)]
    assert len(texts) == 2
    assert "3 more like this in the last 60s were not sent" in texts[1]
    assert "not sent" not in texts[0]


def test_dedup_is_per_type_route_and_provider(hook: respx.Router) -> None:
    route = hook.post(URL).respond(200)
    n = notifier()
    n(opened("openai"))
    n(opened("claude"))
    n(opened("openai", route="batch"))
    n(Event(type="all_providers_failed", route="default", provider="openai"))
    n(opened("openai"))  # the only duplicate
    n.close()
    assert route.call_count == 4


def test_rate_limit_caps_messages_per_minute_and_reports_the_rest(hook: respx.Router) -> None:
    route = hook.post(URL).respond(200)
    clock = FakeClock()
    n = notifier(clock, max_per_minute=2)
    for i in range(5):
        n(opened(f"p{i}"))
    assert n.flush()
    assert route.call_count == 2
    clock.advance(61)
    n(opened("p9"))
    n.close()
    texts = [b["text"] for b in bodies(route)]
    assert len(texts) == 3
    assert "3 other event(s) were not sent (rate limit)" in texts[2]


@pytest.mark.parametrize(
    "respond",
    [
        {"status_code": 500, "text": "boom"},
        {"side_effect": httpx.ConnectError("Connection refused")},
        {"side_effect": httpx.ReadTimeout("timed out")},
    ],
    ids=["http-500", "refused", "timeout"],
)
def test_failing_webhook_never_raises_and_never_logs_the_url(
    hook: respx.Router, respond: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    route = hook.post(URL)
    if "side_effect" in respond:
        route.side_effect = respond["side_effect"]
    else:
        route.respond(respond["status_code"], text=respond["text"])
    n = notifier()
    with caplog.at_level(logging.DEBUG, logger="failover"):
        n(opened())  # must not raise
        n(opened("claude"))
        assert n.flush()
        n.close()
    assert route.call_count == 2
    assert n.failed == 2
    assert n.sent == 0
    assert "webhook" in caplog.text
    assert "s3cr3t-token" not in caplog.text
    assert "hooks.example.test" not in caplog.text


def test_a_hung_webhook_does_not_block_the_caller_and_a_full_queue_drops(
    hook: respx.Router, caplog: pytest.LogCaptureFixture
) -> None:
    entered, release = threading.Event(), threading.Event()

    def stuck(request: httpx.Request) -> httpx.Response:
        entered.set()
        release.wait(5)
        return httpx.Response(200)

    route = hook.post(URL).mock(side_effect=stuck)
    n = notifier(queue_size=1)
    n(opened("a"))
    assert entered.wait(5)  # the worker holds the first message
    with caplog.at_level(logging.WARNING, logger="failover"):
        n(opened("b"))  # fills the queue
        n(opened("c"))  # dropped, at once
    assert "queue is full" in caplog.text
    assert n.failed == 1
    release.set()
    assert n.flush()
    n.close()
    assert route.call_count == 2
    assert n.sent == 2


def test_url_reads_the_environment_and_stays_out_of_repr(
    hook: respx.Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPS_WEBHOOK_URL", URL)
    route = hook.post(URL).respond(200)
    n = WebhookNotifier(WebhookConfig(url="${OPS_WEBHOOK_URL}"))
    assert "s3cr3t" not in repr(n)
    assert "hooks.example" not in repr(n)
    n(Event(type="all_providers_failed", route="default"))
    n.close()
    assert route.call_count == 1


def test_missing_url_variable_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPS_WEBHOOK_URL", raising=False)
    with pytest.raises(
        ConfigError,
        match=r"notify\.webhook\.url: environment variable "
        r"OPS_WEBHOOK_URL is not set",
    ):
        WebhookNotifier(WebhookConfig(url="${OPS_WEBHOOK_URL}"))


def test_close_stops_the_thread_and_later_events_are_ignored(hook: respx.Router) -> None:
    route = hook.post(URL).respond(200)
    n = notifier()
    n(opened())
    n.close()
    assert n._thread is not None
    assert not n._thread.is_alive()
    n(opened("claude"))
    n.close()  # idempotent
    assert route.call_count == 1


def test_secret_looking_detail_is_redacted(hook: respx.Router) -> None:
    route = hook.post(URL).respond(200)
    n = notifier()
    n(
        Event(
            type="breaker_opened",
            route="default",
            provider="openai",
            detail="AuthenticationFailed: bad key sk-abcdefghijklmnop",
        )
    )
    n.close()
    text = bodies(route)[0]["text"]
    assert "sk-abcdefghijklmnop" not in text
    assert "***" in text
