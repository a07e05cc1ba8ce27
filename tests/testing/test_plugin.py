"""The pytest plugin as a user meets it: their own test files, run with ``pytester``.

The user's tests write a config (OpenAI primary, Anthropic secondary), break the
primary in each way the kit knows, and check that the secondary answered, through the
public `failover.Router` with the real adapters and SDKs.
"""

from __future__ import annotations

import subprocess
import sys

import anthropic  # noqa: F401  (see below)
import openai  # noqa: F401
import pytest

import failover.testing._simulated  # noqa: F401

# pytester drops the modules an inner run imported; importing the SDKs and the kit here
# once keeps every inner run from paying their ~2 s import again.

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""

CONFTEST = '''
import pytest
import failover
from failover.testing import FakeClock

CONFIG = """
providers:
  openai: {type: openai, model: gpt-4o-mini, api_key: sk-test-0123456789}
  claude: {type: anthropic, model: claude-haiku-4-5, api_key: sk-ant-test-0123456789}
routes:
  default: {chain: [openai, claude]}
"""


@pytest.fixture
def router(tmp_path):
    path = tmp_path / "failover.yaml"
    path.write_text(CONFIG)
    # A fake clock: retries' backoff and Retry-After advance it instead of sleeping.
    with failover.Router.from_file(path, clock=FakeClock()) as router:
        yield router
'''


@pytest.fixture
def user_project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    pytester.makeconftest(CONFTEST)
    return pytester


def run(pytester: pytest.Pytester) -> pytest.RunResult:
    # hypothesis (installed here, unrelated) re-imports itself on every inner run: 3 s.
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


SURVIVES = '''
import pytest
import failover
from failover.testing import answer, fail, sequence

FAULTS = {
    "503": lambda p: p.fail(503),
    "529": lambda p: p.fail(529),
    "500": lambda p: p.fail(500),
    "429-retry-after": lambda p: p.rate_limit(retry_after=120),
    "401": lambda p: p.fail(401),
    "refused": lambda p: p.refuse(),
    "timeout": lambda p: p.timeout(),
    "reset": lambda p: p.reset(),
    "malformed": lambda p: p.malformed(),
    "hang": lambda p: p.hang(0.01),
    "down": lambda p: p.down(),
    "flaky": lambda p: p.flaky(1.0, seed=1),
    "sequence": lambda p: p.sequence(fail(503), fail(500)),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_survives_primary_fault(router, fake_providers, fault):
    FAULTS[fault](fake_providers["openai"])
    fake_providers["claude"].answer("hello from claude")
    reply = router.complete("hi")
    assert reply.provider == "claude"
    assert reply.text == "hello from claude"
    assert fake_providers["openai"].calls >= 1
    assert reply.attempts[0].provider == "openai"
    assert reply.attempts[0].outcome == "error"
    assert fake_providers["claude"].requests[0].json["messages"][-1]["content"] == "hi"


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_survives_primary_fault_async(router, fake_providers, fault):
    FAULTS[fault](fake_providers["openai"])
    fake_providers["claude"].answer("hello from claude")
    reply = await router.acomplete("hi")
    assert reply.provider == "claude"


STREAM_FAULTS = {
    "cut-before-first-token": lambda p: p.cut_stream(after=0),
    "cut-mid-stream": lambda p: p.cut_stream(after=2),
    "stall-mid-stream": lambda p: p.stall(after=1),
    "malformed-chunk": lambda p: p.malformed(after=1),
    "503": lambda p: p.fail(503),
}


@pytest.mark.parametrize("fault", sorted(STREAM_FAULTS))
def test_stream_survives_primary_fault(router, fake_providers, fault):
    STREAM_FAULTS[fault](fake_providers["openai"])
    fake_providers["claude"].answer("streamed from claude")
    events = list(router.stream("hi"))
    assert events[-1].type == "completed"
    assert events[-1].response.provider == "claude"
    assert events[-1].response.text == "streamed from claude"
    assert fake_providers["openai"].requests[0].stream


@pytest.mark.parametrize("fault", sorted(STREAM_FAULTS))
async def test_async_stream_survives_primary_fault(router, fake_providers, fault):
    STREAM_FAULTS[fault](fake_providers["openai"])
    fake_providers["claude"].answer("streamed from claude")
    events = [event async for event in router.astream("hi")]
    assert events[-1].response.provider == "claude"


def test_the_primary_is_used_while_healthy(router, fake_providers):
    fake_providers["openai"].answer("from openai")
    assert router.complete("hi").provider == "openai"
    assert fake_providers["claude"].calls == 0
'''


def test_users_failover_tests_pass_for_every_fault(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(test_survives=SURVIVES)
    result = run(user_project)
    result.assert_outcomes(passed=2 * 13 + 2 * 5 + 1)


def test_a_user_test_that_expects_the_wrong_provider_fails(
    user_project: pytest.Pytester,
) -> None:
    user_project.makepyfile(test_wrong='''
def test_wrong(router, fake_providers):
    fake_providers["openai"].fail(503)
    fake_providers["claude"].answer("hi")
    assert router.complete("hi").provider == "openai"
''')
    result = run(user_project)
    result.assert_outcomes(failed=1)


MARKERS = '''
import pytest
import failover
from failover.testing import answer, fail

pytestmark = pytest.mark.fake_providers(claude="ok")


@pytest.mark.fake_providers(openai="down", claude=answer("hi from claude"))
def test_marker_with_behaviours(router):
    reply = router.complete("hi")
    assert reply.provider == "claude"
    assert reply.text == "hi from claude"


@pytest.mark.fake_providers(openai="503")
def test_module_marker_fills_in_the_other_provider(router, fake_providers):
    assert router.complete("hi").provider == "claude"
    assert fake_providers["openai"].calls == 1


@pytest.mark.parametrize("shorthand", ["refused", "timeout", "reset", "malformed", "529",
                                       "overloaded", "rate_limit", "cut_stream", "stall"])
def test_shorthands(router, fake_providers, shorthand):
    fake_providers["openai"].set(shorthand)
    assert router.complete("hi").provider == "claude"


@pytest.mark.fake_providers(openai=500)
async def test_marker_on_an_async_test(router):
    assert (await router.acomplete("hi")).provider == "claude"


@pytest.mark.fake_providers({"https://api.openai.com/v1": "refused"})
def test_marker_by_base_url(router, fake_providers):
    assert router.complete("hi").provider == "claude"
    assert fake_providers["https://api.openai.com/v1"].calls >= 1


@pytest.mark.fake_providers(openai="ok")
class TestClassMarker:
    @pytest.mark.fake_providers(openai="down")
    def test_closest_marker_wins(self, router):
        assert router.complete("hi").provider == "claude"

    def test_class_marker(self, router):
        assert router.complete("hi").provider == "openai"
'''


def test_marker(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(test_markers=MARKERS)
    result = run(user_project)
    result.assert_outcomes(passed=15)


def test_marker_is_registered(user_project: pytest.Pytester) -> None:
    result = user_project.runpytest_inprocess("--markers", "-p", "no:hypothesispytest")
    result.stdout.fnmatch_lines(["@pytest.mark.fake_providers(**behaviours): simulate*"])


@pytest.mark.parametrize(("marker", "says"), [
    ('openai="dwn"', "*fake_providers(openai='dwn'): 'dwn' is not a behaviour. Use an HTTP "
                     "error status (503, '429'), a shorthand (*'down'*), or a behaviour such "
                     "as failover.testing.fail(503)*"),
    ("openai=object()", "*fake_providers(openai=<object object at *>): * is not a behaviour*"),
    ("openai=200", "*fake_providers(openai=200): 200 is not a behaviour*"),
    ('"down"', "*positional arguments must be dicts of {provider name or base URL: "
               "behaviour}; name providers with keywords, e.g. "
               "@pytest.mark.fake_providers(openai='down')."),
    ("", "*@pytest.mark.fake_providers() names no provider*"),
])  # fmt: skip
def test_marker_misuse_says_how_to_fix_it(
    user_project: pytest.Pytester, marker: str, says: str
) -> None:
    user_project.makepyfile(test_misuse=f'''
import pytest

@pytest.mark.fake_providers({marker})
def test_it(router):
    router.complete("hi")
''')
    result = run(user_project)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([says])


def test_a_request_nobody_planned_for_fails_the_test_with_the_fix(
    user_project: pytest.Pytester,
) -> None:
    user_project.makepyfile(test_unplanned='''
def test_forgot_the_primary(router, fake_providers):
    fake_providers["claude"].answer("hi")
    # the router survives (claude answers) but the test did not say what openai does
    assert router.complete("hi").provider == "claude"
''')
    result = run(user_project)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_forgot_the_primary*"])
    assert (
        "fake_providers: provider 'openai' (POST https://api.openai.com/v1/chat/completions) "
        "got a request but no behaviour was set. Add `fake_providers['openai'].answer('...')` "
        "(or .fail(503), ...) to the test."
    ) in result.stdout.str()


def test_a_test_may_accept_unplanned_requests(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(test_accepts='''
def test_it(router, fake_providers):
    fake_providers["claude"].answer("hi")
    router.complete("hi")
    assert {r.provider for r in fake_providers.unexpected} == {"openai"}
    fake_providers.unexpected.clear()
''')
    run(user_project).assert_outcomes(passed=1)


def test_the_fixture_is_per_test(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(test_isolated='''
from failover.providers._base import current_override

def test_first(fake_providers):
    fake_providers["openai"].answer("x")
    assert current_override() is fake_providers.transport

def test_second(fake_providers):
    assert "openai" not in fake_providers

def test_without_the_fixture():
    assert current_override() is None
''')
    run(user_project).assert_outcomes(passed=3)


def test_loading_the_plugin_costs_projects_that_do_not_use_it_nothing() -> None:
    code = ("import sys, failover.testing.plugin; "
            "print(sorted({'respx', 'httpx2', 'pydantic', 'openai'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


DOCS_EXAMPLES = '''import failover, pytest
from failover.testing import FakeClock, FakeProviders, answer

def test_stream_restarts_on_the_secondary(router, fake_providers):
    fake_providers["openai"].cut_stream(after=2)
    fake_providers["claude"].answer("the whole answer")
    events = list(router.stream("hi"))
    assert any(e.type == "restart" for e in events)
    assert events[-1].response.text == "the whole answer"
    assert events[-1].response.provider == "claude"

def test_the_backup_got_the_same_conversation(router, fake_providers):
    fake_providers["openai"].fail(503)
    fake_providers["claude"].answer("ok")
    router.complete("Summarise this", system="Be brief", max_tokens=100)
    primary = fake_providers["openai"].requests[0]
    backup = fake_providers["claude"].last_request
    assert fake_providers["openai"].calls == 1
    assert backup.json["system"] == "Be brief"
    assert backup.json["max_tokens"] == 100
    assert backup.messages[-1]["content"] == "Summarise this"
    assert primary.stream is False and primary.model == "gpt-4o-mini"
    assert [r.provider for r in fake_providers.requests] == ["openai", "claude"]

def test_outage_then_recovery(tmp_path, fake_providers):
    from conftest import CONFIG
    (tmp_path / "failover.yaml").write_text(CONFIG)
    clock = FakeClock()
    fake_providers.clock = clock
    router = failover.Router.from_file(tmp_path / "failover.yaml", clock=clock)
    fake_providers["openai"].down(for_seconds=10)
    fake_providers["claude"].answer("backup")
    assert router.complete("hi").provider == "claude"
    clock.advance(30)
    fake_providers["openai"].answer("primary is back")
    assert router.complete("hi").provider == "openai"

def test_drill(tmp_path):
    from conftest import CONFIG
    (tmp_path / "failover.yaml").write_text(CONFIG)
    clock = FakeClock()
    router = failover.Router.from_file(tmp_path / "failover.yaml", clock=clock)
    with FakeProviders(clock=clock) as fake:
        fake["openai"].down(for_seconds=60)
        fake["claude"].answer("backup answer")
        served = []
        for _ in range(120):
            served.append(router.complete("ping").provider)
            clock.advance(1)
        outage_end = fake["openai"].requests[0].time + 60
        assert 0 < len([r for r in fake["openai"].requests if r.time < outage_end]) < 10
        assert served[0] == "claude"
        assert served[-1] == "openai"

async def test_async_default(router):
    async with FakeProviders(default=answer("ok")) as fake:
        fake["openai"].refuse()
        reply = await router.acomplete("hi")
        assert reply.provider == "claude"
'''


def test_the_examples_in_docs_testing_md(user_project: pytest.Pytester) -> None:
    user_project.makepyfile(test_old_docs_examples=DOCS_EXAMPLES)
    run(user_project).assert_outcomes(passed=5)
