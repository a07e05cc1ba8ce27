"""Events reach the ``failover`` logger as flat fields, so a JSON log handler writes
``event``, ``route``, ``provider``, ``error_kind``... as top-level keys."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import failover
from failover.testing import FakeClock, FakeProviders
from support import PROVIDERS


def make_config() -> failover.Config:
    return failover.Config.from_mapping({
        "providers": PROVIDERS, "routes": {"default": {"chain": list(PROVIDERS)}}})


class JsonLines(logging.Formatter):
    """The shape of python-json-logger's formatter: the message plus every extra field."""

    def format(self, record: logging.LogRecord) -> str:
        standard = vars(logging.LogRecord("", 0, "", 0, "", (), None))
        extra = {k: v for k, v in vars(record).items()
                 if k not in standard and k != "failover_event"}
        return json.dumps({"level": record.levelname, "message": record.getMessage(), **extra})


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonLines())
    logger = logging.getLogger("failover")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    yield out
    logger.removeHandler(handler)
    logger.setLevel(old)


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_each_event_is_a_json_line_with_flat_fields(
    fake: FakeProviders, clock: FakeClock, json_log: io.StringIO
) -> None:
    fake["openai"].fail(503)
    fake["claude"].answer("ok")
    with failover.Router(make_config(), clock=clock) as router:
        router.complete("hi")
    records = {r["event"]: r for r in lines(json_log)}
    assert records["attempt_failed"] | {"message": ""} == {
        "level": "INFO", "message": "", "event": "attempt_failed", "route": "default",
        "provider": "openai", "detail": records["attempt_failed"]["detail"],
        "runbook": None, "error_kind": "Overloaded", "status": 503,
    }
    assert records["failover"]["from_provider"] == "openai"
    assert records["failover"]["provider"] == "claude"


def test_breaker_and_total_failure_events_carry_their_fields(
    fake: FakeProviders, clock: FakeClock, json_log: io.StringIO
) -> None:
    for name in ("openai", "claude", "gemini"):
        fake[name].fail(503)
    with failover.Router(make_config(), clock=clock) as router:
        for _ in range(3):
            with pytest.raises(failover.AllProvidersFailed):
                router.complete("hi")
    records = lines(json_log)
    opened = next(r for r in records if r["event"] == "breaker_opened")
    assert (opened["old_state"], opened["new_state"], opened["reason"]) == (
        "closed", "open", "consecutive_failures")
    total = next(r for r in records if r["event"] == "all_providers_failed")
    assert (total["error_kind"], total["attempts"]) == ("AllProvidersFailed", 3)


def test_a_data_key_named_like_a_record_attribute_does_not_break_logging(
    json_log: io.StringIO,
) -> None:
    from failover._events import EventBus

    EventBus().emit(failover.Event("config_reloaded", detail="x", data={"name": "n", "msg": "m"}))
    (record,) = lines(json_log)
    assert (record["data_name"], record["data_msg"]) == ("n", "m")


def test_an_error_event_is_logged_when_the_log_keeps_only_errors(
    json_log: io.StringIO, clock: FakeClock, fake: FakeProviders
) -> None:
    """A defect: with no subscriber and the logger above INFO, no event was built at
    all, so ERROR and CRITICAL ones (all providers failed, a defer failed) were lost."""
    logging.getLogger("failover").setLevel(logging.ERROR)
    for name in PROVIDERS:
        fake[name].fail(503)
    with failover.Router(make_config(), clock=clock) as router:
        with pytest.raises(failover.AllProvidersFailed):
            router.complete("hi")
    assert [line["event"] for line in lines(json_log)] == ["all_providers_failed"]
