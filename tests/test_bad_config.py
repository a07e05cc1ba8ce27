"""A config is valid only if it will run: every hostile or careless file is refused at
load with a `ConfigError` naming the place, said for people, each problem once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import failover

GOOD_PROVIDER = "{type: openai, model: gpt-4o-mini, api_key: none, base_url: 'http://x.test/v1'"


def config(provider_extra: str = "", *, top: str = "", route: str = "") -> str:
    return (f"providers:\n  openai: {GOOD_PROVIDER}{provider_extra}}}\n"
            f"routes:\n  default: {{chain: [openai]{route}}}\n{top}")


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)

# (id, file text, where the problem is, what the message must say)
BAD_FILES: list[tuple[str, str, str, str]] = [
    ("timeout-zero", config(", timeout: 0"), "providers.openai.timeout", "above 0"),
    ("timeout-nan", config(", timeout: .nan"), "providers.openai.timeout", "duration"),
    ("timeout-inf", config(", timeout: .inf"), "providers.openai.timeout", "duration"),
    ("timeout-huge", config(", timeout: 1.0e+20"), "providers.openai.timeout", "at most 1d"),
    ("timeout-text", config(", timeout: 1e20"), "providers.openai.timeout", "duration like"),
    ("request-zero", config(", timeouts: {request: 0s}"), "providers.openai.timeouts.request",
     "above 0"),
    ("deadline-huge", config(route=", deadline: 1.0e+20"), "routes.default.deadline", "at most"),
    ("base-url-words", config().replace("'http://x.test/v1'", "'not a url'"),
     "providers.openai.base_url", "expected a URL"),
    ("base-url-ftp", config().replace("'http://x.test/v1'", "'ftp://x.test/v1'"),
     "providers.openai.base_url", "expected a URL"),
    ("base-url-empty", config().replace("'http://x.test/v1'", "''"),
     "providers.openai.base_url", "expected a URL"),
    ("no-routes", f"providers:\n  openai: {GOOD_PROVIDER}}}\nroutes: {{}}\n", "routes",
     "at least 1"),
    ("no-providers", "providers: {}\nroutes: {}\n", "providers", "at least 1"),
    ("empty-name", f"providers:\n  '': {GOOD_PROVIDER}}}\nroutes:\n  default: {{chain: ['']}}\n",
     "providers", "a name cannot be empty"),
    ("webhook-not-url", config(top="notify: {webhook: {url: 'hooks here'}}\n"),
     "notify.webhook.url", "expected a URL"),
    ("header-crlf", config(", headers: {X-Team: \"a\\r\\nX-Evil: 1\"}"), "providers.openai.headers",
     "line break"),
    ("redis-url", config(top="state: {backend: redis, url: 'localhost:6379'}\n"), "state.url",
     "redis://"),
    ("duplicate-key", config() + "routes:\n  other: {chain: [openai]}\n", "routes",
     "appears twice"),
    ("alias-bomb", config(top=BOMB), "", "expands to more than"),
    ("typo-key", config(", timout: 5s"), "providers.openai.timout", "did you mean 'timeout'"),
    ("typo-runbook", config(route=", fallback: {runbok: x.md}"),
     "routes.default.fallback.runbok", "did you mean 'runbook'"),
    ("bad-min-calls", config(top="defaults: {breaker: {min_calls: 0}}\n"),
     "defaults.breaker.min_calls", "expected at least 1, got 0"),
    ("hedge-p99", config(route=", hedge: {after: p99}"), "routes.default.hedge.after",
     "expected 'p95' or a duration"),
]


@pytest.mark.parametrize(("text", "where", "says"),
                         [pytest.param(t, w, m, id=i) for i, t, w, m in BAD_FILES])
def test_a_bad_file_is_refused_at_load(tmp_path: Path, text: str, where: str, says: str) -> None:
    path = tmp_path / "failover.yaml"
    path.write_text(text)
    with pytest.raises(failover.ConfigError) as caught:
        failover.Config.from_file(path)
    problems = caught.value.problems
    assert len(problems) == (2 if where == "providers" and "routes: {}" in text else 1), problems
    assert problems[0].startswith(where), problems
    assert says in problems[0], problems
    assert str(path) in str(caught.value)       # the file is named


def test_duplicate_keys_in_json_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "failover.json"
    path.write_text('{"providers": {"p": {"type": "openai", "model": "m", "api_key": "none"}},'
                    ' "routes": {"d": {"chain": ["p"]}}, "routes": {"e": {"chain": ["p"]}}}')
    with pytest.raises(failover.ConfigError, match="routes: the key appears twice"):
        failover.Config.from_file(path)


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "failover.yaml"
    path.write_bytes(b"providers: {}\nroutes: \xff\xfe\n")
    with pytest.raises(failover.ConfigError, match="not UTF-8 text"):
        failover.Config.from_file(path)


def test_an_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "failover.yaml"
    path.write_text(config(top=BOMB))
    code = ("import failover, sys\ntry:\n    failover.Config.from_file(sys.argv[1])\n"
            "except failover.ConfigError:\n    pass\n")
    done = subprocess.run([sys.executable, "-c", code, str(path)], timeout=20, check=True)
    assert done.returncode == 0
    assert len(BOMB) < 700  # 10^9 values from a few hundred bytes


def test_problems_carry_the_line_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "failover.yaml"
    path.write_text("providers:\n  openai: {type: openai, model: m, api_key: none,\n"
                    "           timeout: 3x}\nroutes:\n  default: {chain: [openai, gemni]}\n")
    with pytest.raises(failover.ConfigError) as caught:
        failover.Config.from_file(path)
    assert caught.value.problems == [
        "providers.openai.timeout: expected a duration like '200ms', '30s' or '5m', got '3x' "
        "(line 3)",
        "routes.default.chain[1]: unknown provider 'gemni' (did you mean 'openai'?) (line 5)"
        if "did you mean" in caught.value.problems[1]
        else "routes.default.chain[1]: unknown provider 'gemni' (line 5)",
    ]


def test_an_error_found_while_building_the_router_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "failover.yaml"
    path.write_text(config(route=", fallback: {python: 'no_such_module:answer'}"))
    with pytest.raises(failover.ConfigError) as caught:
        failover.Router.from_file(path)
    assert str(path) in str(caught.value)
    assert "routes.default.fallback.python: cannot import module 'no_such_module'" in str(
        caught.value)
