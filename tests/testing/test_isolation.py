"""Under ``fake_providers`` nothing leaves the test: no real deferred rows, no real
webhook, no request from any thread to a real host, no real time. Each case is a user's
own test file in a project of its own, run with ``pytester``."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic  # noqa: F401  (imported once here: pytester's inner runs reuse it)
import openai  # noqa: F401
import pytest

import failover.testing._simulated  # noqa: F401

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""


class Listener:
    """A loopback port that counts the connections made to it (and answers none)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def project(pytester: pytest.Pytester, port: int, *, extra: str = "") -> pytest.Pytester:
    pytester.makeini(INI)
    pytester.makefile(".yaml", failover=f"""
providers:
  openai: {{type: openai, model: gpt-4o-mini, api_key: sk-test-0123456789,
            base_url: "http://127.0.0.1:{port}/v1"}}
  claude: {{type: anthropic, model: claude-haiku-4-5, api_key: sk-ant-test-0123456789,
            base_url: "http://127.0.0.1:{port}"}}
routes:
  default: {{chain: [openai, claude]}}
  batch: {{chain: [openai], fallback: {{defer: true}}}}
{extra}
""")
    return pytester


def run(pytester: pytest.Pytester) -> pytest.RunResult:
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


def test_a_deferred_request_goes_to_a_throwaway_store(
    pytester: pytest.Pytester, listener: Listener
) -> None:
    project(pytester, listener.port).makepyfile(test_user="""
        import pytest
        import failover

        def test_defers(fake_providers):
            fake_providers["openai"].fail(503)
            router = failover.Router.from_file("failover.yaml")
            with pytest.raises(failover.Deferred) as deferred:
                router.complete("keep me", route="batch")
            [record] = fake_providers.deferred
            assert record.ticket == deferred.value.ticket
            assert record.request.messages[-1].text == "keep me"
    """)
    run(pytester).assert_outcomes(passed=1)
    assert not (pytester.path / ".failover").exists()  # the real store stays empty
    assert listener.connections == 0


def test_webhook_posts_are_captured_not_sent(
    pytester: pytest.Pytester, listener: Listener
) -> None:
    extra = f"""notify:
  webhook: {{url: "http://127.0.0.1:{listener.port}/hooks/T0KEN", min_interval: 0s,
             events: [all_providers_failed, deferred]}}"""
    project(pytester, listener.port, extra=extra).makepyfile(test_user="""
        import time
        import pytest
        import failover

        def test_outage_tells_people(fake_providers):
            fake_providers["openai"].fail(503)
            with failover.Router.from_file("failover.yaml") as router:
                with pytest.raises(failover.Deferred):
                    router.complete("keep me", route="batch")
                for _ in range(200):                       # the notifier is a thread
                    if len(fake_providers.webhooks) >= 2:
                        break
                    time.sleep(0.01)
            posted = [w.json["text"] for w in fake_providers.webhooks]
            assert any("all providers failed" in text for text in posted), posted
            assert any("deferred" in text for text in posted), posted
    """)
    run(pytester).assert_outcomes(passed=1)
    assert listener.connections == 0


def test_requests_from_threads_the_test_starts_are_served_by_the_fake(
    pytester: pytest.Pytester, listener: Listener
) -> None:
    project(pytester, listener.port).makepyfile(test_user="""
        import asyncio
        import threading
        from concurrent.futures import ThreadPoolExecutor
        import failover

        def test_executor_and_thread(fake_providers):
            fake_providers["openai"].answer("from the fake")
            router = failover.Router.from_file("failover.yaml")
            with ThreadPoolExecutor(4) as pool:
                replies = list(pool.map(lambda _: router.complete("hi").text, range(4)))
            seen = []
            thread = threading.Thread(target=lambda: seen.append(router.complete("hi").text))
            thread.start()
            thread.join()
            assert replies + seen == ["from the fake"] * 5
            assert fake_providers["openai"].calls == 5

        async def test_sync_call_and_to_thread_inside_an_async_test(fake_providers):
            fake_providers["openai"].answer("from the fake")
            router = failover.Router.from_file("failover.yaml")
            assert router.complete("hi").text == "from the fake"
            reply = await asyncio.to_thread(router.complete, "hi")
            assert reply.text == "from the fake"
    """)
    run(pytester).assert_outcomes(passed=2)
    assert listener.connections == 0


def test_a_request_to_an_unfaked_provider_fails_the_test_and_opens_no_socket(
    pytester: pytest.Pytester, listener: Listener
) -> None:
    project(pytester, listener.port).makepyfile(test_user="""
        import threading
        import failover

        def test_forgot_the_backup(fake_providers):
            fake_providers["openai"].fail(503)
            router = failover.Router.from_file("failover.yaml")
            thread = threading.Thread(target=lambda: router.complete("hi"), daemon=True)
            thread.start()
            thread.join()
    """)
    result = run(pytester)
    result.assert_outcomes(errors=1, passed=1)
    out = result.stdout.str()
    assert (f"provider 'claude' (POST http://127.0.0.1:{listener.port}/v1/messages) got a "
            "request but no behaviour was set") in out
    assert "Add `fake_providers['claude'].answer('...')`" in out
    assert listener.connections == 0


def test_a_60_second_outage_with_recovery_takes_no_real_time(
    pytester: pytest.Pytester, listener: Listener
) -> None:
    project(pytester, listener.port).makepyfile(test_user="""
        import failover

        def test_outage_then_recovery(fake_providers):
            fake_providers["openai"].down(for_seconds=60)
            fake_providers["claude"].answer("backup")
            router = failover.Router.from_file("failover.yaml")
            clock = fake_providers.clock
            served = []
            for _ in range(30):                           # one request every 4 s
                served.append(router.complete("hi").provider)
                clock.sleep(4)
            assert served[0] == "claude"
            assert served[-1] == "openai"                  # back after the outage
            fake_providers["openai"].hang()                # a hang costs no real time
            assert router.complete("hi", deadline=60).provider == "claude"
    """)
    started = time.monotonic()
    run(pytester).assert_outcomes(passed=1)
    assert time.monotonic() - started < 5  # pytester's own start-up included
    assert listener.connections == 0


def test_default_behaviour_requests_are_counted(
    pytester: pytest.Pytester, listener: Listener
) -> None:
    project(pytester, listener.port).makepyfile(test_user="""
        import failover
        from failover.testing import FakeProviders, answer

        def test_default_counts():
            with FakeProviders(default=answer("ok")) as fake:
                router = failover.Router.from_file("failover.yaml")
                assert router.complete("hi").text == "ok"
                assert router.complete("hi").text == "ok"
                assert fake["openai"].calls == 2
                assert fake["claude"].calls == 0
                fake["openai"].fail(503)                   # still settable afterwards
                assert router.complete("hi").provider == "claude"
                assert fake["claude"].calls == 1
    """)
    run(pytester).assert_outcomes(passed=1)


def test_the_outage_test_runs_in_under_a_second(tmp_path: Path) -> None:
    # The same scenario in-process, timed alone (without pytester's start-up).
    import failover
    from failover.testing import FakeClock, FakeProviders

    path = tmp_path / "failover.yaml"
    path.write_text("""
providers:
  openai: {type: openai, model: gpt-4o-mini, api_key: sk-test-0123456789}
  claude: {type: anthropic, model: claude-haiku-4-5, api_key: sk-ant-test-0123456789}
routes:
  default: {chain: [openai, claude]}
""")
    clock = FakeClock()
    with FakeProviders(clock=clock) as fake:
        fake["openai"].down(for_seconds=60)
        fake["claude"].answer("backup")
        router = failover.Router.from_file(path)
        router.warm_up()
        started = time.monotonic()
        served = []
        for _ in range(30):
            served.append(router.complete("hi").provider)
            clock.sleep(4)
        elapsed = time.monotonic() - started
    assert served[0] == "claude" and served[-1] == "openai"
    assert clock() >= 120 and elapsed < 1.0
