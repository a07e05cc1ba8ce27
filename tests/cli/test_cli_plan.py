"""``failover plan``: the DR plan, the maturity level per route and the gaps."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .conftest import CliRunner, ConfigWriter

PROVIDERS = {
    "openai": {"type": "openai", "model": "gpt-4o-mini", "api_key": "${OPENAI_API_KEY}"},
    "claude": {"type": "anthropic", "model": "claude-haiku-4-5", "api_key": "${ANTHROPIC_KEY}"},
    "local": {"type": "openai", "model": "llama3.1", "base_url": "http://localhost:11434/v1",
              "api_key": "none"},
}


def config(**extra: Any) -> dict[str, Any]:
    return {
        "providers": PROVIDERS,
        "routes": {
            "bare": {"chain": ["openai"]},
            "documented": {"chain": ["local"], "fallback": {"runbook": "runbooks/local.md"}},
            "automated": {"chain": ["openai", "claude"],
                          "fallback": {"python": "app.fallbacks:canned", "defer": True,
                                       "runbook": "https://wiki.example/llm-outage"}},
        },
        "objectives": {"rto": "3s", "rpo": 1},
        **extra,
    }


def section(text: str, route: str) -> str:
    match = re.search(rf"^## Route `{route}`.*?(?=^## )", text, re.S | re.M)
    assert match, f"no section for {route}"
    return match.group(0)


def test_levels_and_the_gaps_to_the_next_level(cli: CliRunner, write_config: ConfigWriter,
                                               tmp_path: Path) -> None:
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "local.md").write_text("# call the on-call\n")
    run = cli("plan", str(write_config(config())))
    assert run.code == 0
    out = run.out
    assert out.startswith("# Disaster-recovery plan")
    assert "| `bare` | 0 of 3 | openai |" in out
    assert "| `documented` | 1 of 3 | local |" in out
    assert "| `automated` | 2 of 3 | openai → claude |" in out
    assert "recovery time (RTO) 3 s; recovery point (RPO) 1 lost request(s)" in out

    bare = section(out, "bare")
    assert "level 0 of 3" in bare
    assert "To reach level 1:\n\n- no manual fallback" in bare
    assert "To reach level 2:\n\n- no backup provider: the chain has only `openai`" in bare
    assert "To reach level 3:\n\n- no notification" in bare
    assert "**the request fails and is lost**" in bare
    assert "never drilled" in bare

    documented = section(out, "documented")
    assert "To reach level 1" not in documented
    assert "no backup provider" in documented
    assert "not found" not in documented  # the runbook file exists
    assert "requests are lost when every provider is down" in documented

    automated = section(out, "automated")
    assert "To reach level 2" not in automated
    assert "To reach level 3:\n\n- no notification: set `notify.webhook`" in automated
    assert "the Python fallback `app.fallbacks:canned` answers and the request is stored" \
        in automated
    assert "| 1 | `openai` | openai | gpt-4o-mini | default | `${OPENAI_API_KEY}` |" in automated


def test_a_webhook_brings_routes_with_a_backup_to_level_3(
    cli: CliRunner, write_config: ConfigWriter
) -> None:
    data = config(notify={"webhook": {"url": "${OPS_WEBHOOK_URL}",
                                      "events": ["breaker_opened", "all_providers_failed"]}})
    out = cli("plan", str(write_config(data))).out
    assert "| `automated` | 3 of 3 |" in out
    assert "| `documented` | 1 of 3 |" in out  # still no backup
    assert "To reach level" not in section(out, "automated")
    assert "webhook (slack) on `breaker_opened`, `all_providers_failed`" in out


def test_a_webhook_that_sends_no_alert_does_not_count(
    cli: CliRunner, write_config: ConfigWriter
) -> None:
    data = config(notify={"webhook": {"url": "https://hooks.example/x",
                                      "events": ["config_reloaded"]}})
    out = cli("plan", str(write_config(data))).out
    assert "| `automated` | 2 of 3 |" in out
    assert "the webhook sends none of `breaker_opened`" in section(out, "automated")


def test_plain_text_keys_missing_runbook_and_same_vendor_backups_are_gaps(
    cli: CliRunner, write_config: ConfigWriter
) -> None:
    data = {
        "providers": {
            "a": {"type": "openai", "model": "gpt-4o", "api_key": "sk-plain-text-key-123456"},
            "b": {"type": "openai", "model": "gpt-4o-mini", "api_key": "${OPENAI_API_KEY}"},
        },
        "routes": {"default": {"chain": ["a", "b"], "fallback": {"runbook": "missing.md"}}},
    }
    out = cli("plan", str(write_config(data))).out
    gaps = section(out, "default") if "## Route `default`" in out else ""
    assert "provider `a` has its API key in plain text in the file" in gaps
    assert "runbook `missing.md` not found next to the config" in gaps
    assert "every provider in the chain is the same vendor and endpoint" in gaps
    assert "**plain text in the file**" in gaps
    assert "sk-plain-text-key-123456" not in out


def test_plan_shows_the_last_drill(cli: CliRunner, write_config: ConfigWriter) -> None:
    data = {
        "providers": {
            "openai": {"type": "openai", "model": "gpt-4o-mini", "api_key": "${OPENAI_API_KEY}"},
            "claude": {"type": "anthropic", "model": "claude-haiku-4-5",
                       "api_key": "${ANTHROPIC_API_KEY}"},
        },
        "routes": {"default": {"chain": ["openai", "claude"], "deadline": "60s",
                               "fallback": {"defer": True}}},
    }
    path = str(write_config(data))
    assert "Never drilled" in cli("plan", path).out
    drill = cli("drill", path, "--simulated-time", "--requests", "4",
                "--scenario", "outage_503", "--scenario", "outage_hang")
    assert drill.code == 1  # a 30 s timeout against an RTO of 2 s
    out = cli("plan", path).out
    assert "**failed**" in out.split("## Summary")[1].split("##")[0]
    assert "Last drill " in out
    assert "| `default` | primary outage (503) |" in out
    assert "| `default` | primary outage (hang) |" in out
    route = section(out, "default")
    assert "failed its last drill: `outage_hang`" in route
    assert "| primary outage (503) | " in route and "| met |" in route
    assert "never drilled: `outage_refused`" in route  # the scenarios not run yet


def test_plan_to_a_file_and_min_level(cli: CliRunner, write_config: ConfigWriter,
                                      tmp_path: Path) -> None:
    path = str(write_config(config()))
    target = tmp_path / "docs" / "dr-plan.md"
    run = cli("plan", path, "-o", str(target))
    assert run.code == 0
    assert run.out.strip() == f"wrote {target}"
    assert target.read_text().startswith("# Disaster-recovery plan")
    run = cli("plan", path, "-o", str(target), "--min-level", "1")
    assert run.code == 1
    assert "route(s) below level 1: bare" in run.err


def test_plan_of_a_broken_config_prints_the_problems(
    cli: CliRunner, write_config: ConfigWriter
) -> None:
    run = cli("plan", str(write_config({"providers": {}, "routes": {"x": {"chain": ["y"]}}})))
    assert run.code == 1
    assert "routes.x.chain[0]: unknown provider 'y'" in run.err


def test_a_fallback_that_cannot_be_imported_is_no_fallback(
    cli: CliRunner, write_config: ConfigWriter
) -> None:
    data = {"providers": {"sim": {"type": "fake"}},
            "routes": {"solo": {"chain": ["sim"],
                                "fallback": {"python": "no_such_module:answer"}}}}
    run = cli("plan", str(write_config(data)))
    assert run.code == 0
    assert "the python fallback cannot run" in run.out
    assert "level 0 of 3" in run.out or "0 of 3" in run.out


def gaps_of(text: str, route: str) -> list[str]:
    """The bullets under "Gaps:" in a route's section of the plan."""
    part = section(text, route).split("Gaps:\n\n", 1)
    return [] if len(part) == 1 else [
        line[2:] for line in part[1].split("\n\n", 1)[0].splitlines()]


def test_plan_lists_exactly_the_gaps_of_an_untested_unowned_plan(
    cli: CliRunner, write_config: ConfigWriter, tmp_path: Path
) -> None:
    """A runbook with one owner, a drill history 200 days old, a route without a manual
    fallback: exactly those gaps, and nothing else among them."""
    import datetime
    import json

    from failover.drills import SCENARIOS

    now = datetime.datetime.now(datetime.timezone.utc)
    (tmp_path / "docs").mkdir()
    reviewed = (now - datetime.timedelta(days=10)).date().isoformat()
    (tmp_path / "docs" / "runbook.md").write_text(
        f"---\nowners: [alice]\nlast_reviewed: {reviewed}\n---\n# When the LLM is down\n")
    path = write_config({
        "providers": {
            "openai": {"type": "openai", "model": "gpt-4o-mini", "api_key": "${OPENAI_API_KEY}"},
            "claude": {"type": "anthropic", "model": "claude-haiku-4-5",
                       "api_key": "${ANTHROPIC_API_KEY}"},
        },
        "routes": {
            "default": {"chain": ["openai", "claude"],
                        "fallback": {"runbook": "docs/runbook.md", "defer": True}},
            "batch": {"chain": ["claude", "openai"]},
        },
    })
    stale = (now - datetime.timedelta(days=200)).isoformat(timespec="seconds")
    (tmp_path / ".failover").mkdir()
    (tmp_path / ".failover" / "drill-history.jsonl").write_text(json.dumps({
        "time": stale, "config_file": "failover.yaml", "passed": True,
        "scenarios": [{"route": r, "scenario": s.key, "title": s.title, "met": True}
                      for r in ("default", "batch") for s in SCENARIOS],
    }) + "\n")
    out = cli("plan", str(path)).out
    overdue = "drill overdue (every 90 days): " + ", ".join(
        f"`{s.key}` (200 days)" for s in SCENARIOS)
    assert gaps_of(out, "default") == [
        overdue,
        "runbook `docs/runbook.md` has 1 owner(s): name at least two (`owners:` in its "
        "front matter), so someone on call knows it",
    ]
    assert gaps_of(out, "batch") == [
        "no manual fallback: when every provider is down the request fails", overdue]
    assert "| total outage | " + stale[:10] + " | met |" in section(out, "default")


def test_a_runbook_never_reviewed_or_reviewed_long_ago_is_a_gap(tmp_path: Path) -> None:
    import datetime

    import failover
    from failover.cli._plan import front_matter, plan_gaps

    now = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
    config = failover.Config.from_mapping({
        "providers": {"a": {"type": "fake", "model": "s"}, "b": {"type": "fake", "model": "t"}},
        "routes": {"default": {"chain": ["a", "b"], "fallback": {"runbook": "rb.md"}}},
        "objectives": {"review_every": "30d"},
    })
    runbook = tmp_path / "rb.md"
    runbook.write_text("# no front matter\n")
    assert front_matter(runbook) is None
    gaps = plan_gaps(config, "default", [], tmp_path, now)
    assert "runbook `rb.md` has no `last_reviewed` date in its front matter" in gaps
    runbook.write_text("---\nowners: [a, b]\nlast_reviewed: 2026-09-01\n---\n")
    gaps = plan_gaps(config, "default", [], tmp_path, now)
    assert [g for g in gaps if "runbook" in g] == [
        "runbook `rb.md` last reviewed 91 days ago (review every 30 days)"]
