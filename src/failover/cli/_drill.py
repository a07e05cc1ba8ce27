"""``failover drill [CONFIG]``: simulate each disaster, time the recovery, count the loss.

For every route and scenario a fresh `Router` (so no breaker state leaks between
scenarios) sends requests one after another while `FakeProviders` sits in front of the
real adapters: a few healthy warm-up requests, then the fault is injected and ``N`` more
are sent. Measured, from the moment the fault starts:

- **detect**: until the router stops sending to the faulty provider (its breaker opened)
  or, for faults that do not trip a breaker (429 with Retry-After), until the first
  failover;
- **recover (RTO)**: until requests succeed again for good: the end of the first request
  after which every request was answered (by a provider or the Python fallback; in the
  total outage, being kept for replay also counts, since that is the DR procedure);
- **sent / failed / deferred / lost**: failed = not answered by a provider; deferred =
  kept for replay (`Deferred`); lost = the caller got an error and nothing was kept:
  that is the RPO.

The objectives come from the config (``objectives: {rto, rpo}``). The recovery scenario
also checks that the primary gets its traffic back within its breaker's
``max_open_for`` (plus one second of grace) after it comes back.

Time is real by default; ``--simulated-time`` runs the same drill on a simulated clock
(hangs, latencies and breaker times advance it instantly), which drills production
timeouts of many seconds in a moment.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.util
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import add_config_argument, load, non_negative_seconds, record_path, writable_file
from ._output import Style, fmt_duration, table

if TYPE_CHECKING:
    import argparse

    from failover import Config, Event

    from ..testing import FakeProviders

__all__ = [
    "SCENARIOS",
    "DrillReport",
    "RequestRecord",
    "Scenario",
    "ScenarioResult",
    "add_parser",
    "drill_config",
    "run",
    "run_drill",
]

DEFAULT_LATENCY = 0.010
WARMUP = 3
FAILBACK_GRACE = 1.0
DRILL_PROMPT = "Disaster drill: summarise the incident status in one line."
ANSWER = "Incident status: all systems nominal."
MAX_RECORDS = 20


# -- scenarios ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    fault: str
    #: Put the fault in place on the kit, given the route's chain.
    inject: Callable[[FakeProviders, Sequence[str]], list[str]]
    #: Total outage: being kept for replay counts as handled.
    total: bool = False
    #: Recovery: the primary comes back halfway and must get its traffic back.
    recovery: bool = False


def _primary(fault: Callable[[Any], Any]) -> Callable[[FakeProviders, Sequence[str]], list[str]]:
    def inject(fake: FakeProviders, chain: Sequence[str]) -> list[str]:
        fault(fake[chain[0]])
        return [chain[0]]

    return inject


def _everyone(fake: FakeProviders, chain: Sequence[str]) -> list[str]:
    for name in chain:
        fake[name].fail(503)
    return list(chain)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("outage_503", "primary outage (503)", "the primary answers 503 Service Unavailable",
             _primary(lambda p: p.fail(503))),
    Scenario("outage_refused", "primary outage (refused)", "the primary refuses connections",
             _primary(lambda p: p.refuse())),
    Scenario("outage_hang", "primary outage (hang)",
             "the primary accepts and never answers (until the client's timeout)",
             _primary(lambda p: p.hang())),
    Scenario("rate_limit_storm", "rate-limit storm (429)",
             "the primary answers 429 with Retry-After: 30",
             _primary(lambda p: p.rate_limit(retry_after=30))),
    Scenario("integration_failure", "integration failure",
             "the primary's responses stop parsing (schema drift)",
             _primary(lambda p: p.malformed())),
    Scenario("revoked_key", "revoked key (401)", "the primary rejects the key with 401",
             _primary(lambda p: p.fail(401))),
    Scenario("total_outage", "total outage", "every provider of the route answers 503",
             _everyone, total=True),
    Scenario("recovery", "recovery", "the primary answers 503, then comes back halfway",
             _primary(lambda p: p.fail(503)), recovery=True),
)


# -- results -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestRecord:
    #: Start, relative to the fault start (negative for warm-up requests).
    t_s: float
    latency_s: float
    #: ``ok`` (a provider answered), ``fallback`` (the Python fallback answered),
    #: ``deferred`` (kept for replay), ``lost``.
    outcome: str
    provider: str | None = None
    error_kind: str | None = None
    attempts: int = 0

    @property
    def end_s(self) -> float:
        return self.t_s + self.latency_s

    def as_dict(self) -> dict[str, Any]:
        return {
            "t_s": round(self.t_s, 4),
            "latency_s": round(self.latency_s, 4),
            "outcome": self.outcome,
            "provider": self.provider,
            "error_kind": self.error_kind,
            "attempts": self.attempts,
        }


@dataclass
class ScenarioResult:
    route: str
    scenario: Scenario
    faulty: list[str]
    records: list[RequestRecord]
    detect_s: float | None
    rto_s: float | None
    rto_target: float
    rpo_target: int
    heal_s: float | None = None
    failback_s: float | None = None
    failback_target: float | None = None
    breaker_opened_s: float | None = None
    events: Counter[str] = field(default_factory=Counter)
    alerts: int = 0

    @property
    def measured(self) -> list[RequestRecord]:
        return [r for r in self.records if r.t_s >= 0]

    def count(self, *outcomes: str) -> int:
        return sum(1 for r in self.measured if r.outcome in outcomes)

    @property
    def sent(self) -> int:
        return len(self.measured)

    @property
    def failed(self) -> int:
        return self.sent - self.count("ok")

    @property
    def lost(self) -> int:
        return self.count("lost")

    @property
    def deferred(self) -> int:
        return self.count("deferred")

    @property
    def rto_met(self) -> bool:
        return self.rto_s is not None and self.rto_s <= self.rto_target

    @property
    def rpo_met(self) -> bool:
        return self.lost <= self.rpo_target

    @property
    def failback_met(self) -> bool | None:
        if not self.scenario.recovery:
            return None
        return self.failback_s is not None

    @property
    def met(self) -> bool:
        return self.rto_met and self.rpo_met and self.failback_met is not False

    def problems(self) -> list[str]:
        out = []
        if self.rto_s is None:
            kept = f" ({self.deferred} deferred for replay)" if self.deferred else ""
            out.append(f"requests never succeeded again{kept}")
        elif not self.rto_met:
            out.append(f"RTO {fmt_duration(self.rto_s)} > {fmt_duration(self.rto_target)}")
        if not self.rpo_met:
            out.append(f"RPO: {self.lost} lost > {self.rpo_target}")
        if self.failback_met is False:
            out.append(f"{self.faulty[0]} did not get its traffic back within "
                       f"{fmt_duration(self.failback_target)}")
        return out

    def served_by(self) -> dict[str, int]:
        return dict(Counter(r.provider for r in self.measured if r.provider))

    def as_dict(self, *, timeline: bool = True) -> dict[str, Any]:
        def r4(x: float | None) -> float | None:
            return None if x is None else round(x, 4)

        data: dict[str, Any] = {
            "route": self.route,
            "scenario": self.scenario.key,
            "title": self.scenario.title,
            "fault": self.scenario.fault,
            "faulty": self.faulty,
            "detect_s": r4(self.detect_s),
            "rto_s": r4(self.rto_s),
            "failback_s": r4(self.failback_s),
            "sent": self.sent,
            "failed": self.failed,
            "fallback": self.count("fallback"),
            "deferred": self.deferred,
            "lost": self.lost,
            "served_by": self.served_by(),
            "alerts": self.alerts,
            "objectives": {
                "rto_s": self.rto_target,
                "rpo": self.rpo_target,
                "rto_met": self.rto_met,
                "rpo_met": self.rpo_met,
                "failback_met": self.failback_met,
            },
            "met": self.met,
            "problems": self.problems(),
        }
        if timeline:
            data["heal_s"] = r4(self.heal_s)
            data["breaker_opened_s"] = r4(self.breaker_opened_s)
            data["events"] = dict(self.events)
            data["requests"] = [r.as_dict() for r in self.records]
        return data


@dataclass
class DrillReport:
    config: str
    builtin: bool
    started: datetime.datetime
    duration_s: float
    requests: int
    simulated_time: bool
    rto: float
    rpo: int
    results: list[ScenarioResult]

    @property
    def passed(self) -> bool:
        return all(r.met for r in self.results)

    def as_dict(self, *, timeline: bool = True) -> dict[str, Any]:
        return {
            "config": self.config,
            "builtin": self.builtin,
            "started": self.started.isoformat(timespec="seconds"),
            "duration_s": round(self.duration_s, 3),
            "requests_per_scenario": self.requests,
            "simulated_time": self.simulated_time,
            "objectives": {"rto_s": self.rto, "rpo": self.rpo},
            "passed": self.passed,
            "failing": [f"{r.route}/{r.scenario.key}" for r in self.results if not r.met],
            "scenarios": [r.as_dict(timeline=timeline) for r in self.results],
        }


# -- running -----------------------------------------------------------------------------


def drill_config(config: Config, deferred_dir: str | None) -> Config:
    """The config as drilled: dummy keys, in-memory state, no webhook, a temp store.

    The deferred store is a temp file. Keys are replaced because every request goes to
    the simulated providers (a real key must never be sent there, and a missing
    ``${VAR}`` must not stop a drill); state is kept in memory so a drill never opens a
    breaker for production workers sharing Redis; the webhook is off so a drill pages
    nobody (the events it would have sent are counted instead).
    """
    from pydantic import SecretStr

    from .._config import NotifyConfig, StateConfig

    dummy = SecretStr("drill-dummy-key")
    providers = {
        name: p.model_copy(update={
            "api_key": dummy if p.api_key is not None or (p.type != "fake" and not p.api_keys)
            else None,
            "api_keys": [dummy for _ in p.api_keys],
        })
        for name, p in config.providers.items()
    }
    from .._config import FallbackConfig, RetryConfig, RouteConfig

    # One single-try route per provider, used before each scenario so that SDK imports
    # and client set-up are paid before the clock starts, not by the first failover.
    warmups = {
        _warmup_route(name): RouteConfig(chain=[name], fallback=FallbackConfig(),
                                         retry=RetryConfig(attempts=1), deadline=None)
        for name in config.providers
    }
    update: dict[str, Any] = {
        "providers": providers,
        "routes": {**config.routes, **warmups},
        "state": StateConfig(),
        "notify": NotifyConfig(log=False),
        "watch": False,
    }
    # Always a temp store: drill requests in the real store would be replayed to real
    # providers by a later `failover deferred replay`.
    if deferred_dir is not None:
        update["deferred"] = config.deferred.model_copy(
            update={"path": str(Path(deferred_dir) / "deferred.sqlite")}
        )
    return config.model_copy(update=update)


def _warmup_route(provider: str) -> str:
    return f"drill-warmup:{provider}"


class _Clock:
    """The drill's clock: the real one, or a `FakeClock` shared with router and kit."""

    def __init__(self, simulated: bool) -> None:
        from .._clock import FakeClock, MonotonicClock

        self.fake = FakeClock() if simulated else None
        self._real = MonotonicClock()

    def __call__(self) -> float:
        return self.fake() if self.fake is not None else self._real()

    def sleep(self, seconds: float) -> None:
        if self.fake is not None:
            self.fake.sleep(seconds)
        else:
            self._real.sleep(seconds)

    @property
    def router_clock(self) -> Any:
        return self.fake


def _latency_for(config: Config, name: str, default: float,
                 overrides: dict[str, float] | None) -> float:
    if overrides and name in overrides:
        return overrides[name]
    provider = config.providers[name]
    if provider.type == "fake" and provider.fake is not None and provider.fake.latency > 0:
        return provider.fake.latency
    return default


def _healthy(fake: FakeProviders, name: str, latency: float) -> None:
    if latency > 0:
        fake[name].slow(latency, text=ANSWER)
    else:
        fake[name].answer(ANSWER)


def _send(router: Any, route: str, clock: _Clock, t0: float,
          provider_names: set[str]) -> RequestRecord:
    from failover import AllProvidersFailed, DeadlineExceeded, Deferred

    start = clock()
    try:
        reply = router.complete(DRILL_PROMPT, route=route, max_tokens=32)
    except Deferred as err:
        return RequestRecord(start - t0, clock() - start, "deferred",
                             error_kind="Deferred", attempts=len(err.attempts))
    except (AllProvidersFailed, DeadlineExceeded) as err:
        return RequestRecord(start - t0, clock() - start, "lost", error_kind=type(err).__name__,
                             attempts=len(err.attempts))
    except Exception as err:  # a raising fallback or a raise-action kind: still lost
        kind = getattr(err, "kind", None) or type(err).__name__
        return RequestRecord(start - t0, clock() - start, "lost", error_kind=kind)
    outcome = "ok" if reply.provider in provider_names else "fallback"
    return RequestRecord(start - t0, clock() - start, outcome, provider=reply.provider or None,
                         attempts=len(reply.attempts))


def _rto(records: list[RequestRecord], handled: Callable[[RequestRecord], bool]) -> float | None:
    """End of the first request after which every request was handled."""
    measured = [r for r in records if r.t_s >= 0]
    if not measured or not handled(measured[-1]):
        return None
    k = len(measured) - 1
    while k > 0 and handled(measured[k - 1]):
        k -= 1
    return max(measured[k].end_s, 0.0)


Progress = Callable[[str, int, int], None]


def run_scenario(
    config: Config,
    route: str,
    scenario: Scenario,
    *,
    requests: int,
    clock: _Clock,
    latency: float = DEFAULT_LATENCY,
    latencies: dict[str, float] | None = None,
    interval: float = 0.0,
    progress: Progress | None = None,
) -> ScenarioResult:
    from failover import Router

    from ..testing import FakeProviders

    chain = list(config.routes[route].chain)
    events: list[tuple[float, Event]] = []
    router = Router(config, clock=clock.router_clock)
    router.subscribe(lambda event: events.append((clock(), event)))
    webhook = config.notify.webhook
    records: list[RequestRecord] = []
    heal_at: float | None = None
    failback_at: float | None = None
    names = set(config.providers)
    primary = chain[0]
    primary_breaker = config.breaker_for(primary)
    failback_target = primary_breaker.max_open_for + FAILBACK_GRACE

    with FakeProviders(clock=clock.fake) as fake:
        for name in chain:
            _healthy(fake, name, _latency_for(config, name, latency, latencies))
        for name in chain:
            with contextlib.suppress(Exception):
                router.complete(DRILL_PROMPT, route=_warmup_route(name), max_tokens=32)
        t_warm = clock()
        for _ in range(WARMUP):
            records.append(_send(router, route, clock, t_warm, names))
            clock.sleep(interval)
        shift = clock() - t_warm
        records = [RequestRecord(r.t_s - shift, r.latency_s, r.outcome, r.provider,
                                 r.error_kind, r.attempts) for r in records]
        t0 = clock()
        faulty = scenario.inject(fake, chain)
        n_fault = requests // 2 if scenario.recovery else requests
        for i in range(n_fault):
            records.append(_send(router, route, clock, t0, names))
            if progress:
                progress(scenario.title, i + 1, requests)
            clock.sleep(interval)
        if scenario.recovery:
            _healthy(fake, primary, _latency_for(config, primary, latency, latencies))
            heal_at = clock() - t0
            sent = n_fault
            after_failback = 0
            # Keep going until the primary serves again (and a little after, to show
            # it holds), or until it is clearly not getting its traffic back.
            while True:
                record = _send(router, route, clock, t0, names)
                records.append(record)
                sent += 1
                if progress:
                    progress(scenario.title, min(sent, requests), requests)
                if failback_at is None and record.provider == primary:
                    failback_at = record.end_s
                if failback_at is not None:
                    after_failback += 1
                now = clock() - t0
                if failback_at is None and now - heal_at > failback_target:
                    break
                if failback_at is not None and after_failback >= 3 and sent >= requests:
                    break
                # While the breaker keeps the primary out, a request every tenth of its
                # open time is enough to see the moment it is let back in.
                clock.sleep(interval if failback_at is not None
                            else max(interval, primary_breaker.open_for / 10))
    router.close()

    t_events = [(t - t0, e) for t, e in events if t >= t0]
    opened = [t for t, e in t_events if e.type == "breaker_opened" and e.provider in faulty]
    first_failover = [t for t, e in t_events
                      if e.type in ("failover", "all_providers_failed", "deferred")]
    detect = opened[0] if opened else (first_failover[0] if first_failover else None)

    def handled(r: RequestRecord) -> bool:
        if scenario.total:
            return r.outcome in ("ok", "fallback", "deferred")
        return r.outcome in ("ok", "fallback")

    alert_types = set(webhook.events) if webhook else set()
    return ScenarioResult(
        route=route,
        scenario=scenario,
        faulty=faulty,
        records=records,
        detect_s=None if detect is None else max(detect, 0.0),
        rto_s=_rto(records, handled),
        rto_target=config.objectives.rto,
        rpo_target=config.objectives.rpo,
        heal_s=heal_at,
        failback_s=None if failback_at is None or heal_at is None else failback_at - heal_at,
        failback_target=failback_target if scenario.recovery else None,
        breaker_opened_s=opened[0] if opened else None,
        events=Counter(e.type for _, e in t_events),
        alerts=sum(1 for _, e in t_events if e.type in alert_types),
    )


def run_drill(
    config: Config,
    *,
    config_label: str,
    builtin: bool = False,
    requests: int = 20,
    routes: Sequence[str] | None = None,
    scenarios: Sequence[str] | None = None,
    simulated_time: bool = False,
    latency: float = DEFAULT_LATENCY,
    latencies: dict[str, float] | None = None,
    interval: float = 0.0,
    progress: Callable[[int, int, str, str, int, int], None] | None = None,
    on_result: Callable[[ScenarioResult], None] | None = None,
) -> DrillReport:
    """Run the scenarios on every route (or those given); one fresh router each."""
    picked = [s for s in SCENARIOS if scenarios is None or s.key in scenarios]
    route_names = list(routes) if routes is not None else list(config.routes)
    started = datetime.datetime.now(datetime.timezone.utc)
    wall = time.monotonic()
    results: list[ScenarioResult] = []
    total = len(picked) * len(route_names)
    with tempfile.TemporaryDirectory(prefix="failover-drill-") as tmp:
        drilled = drill_config(config, tmp)
        clock = _Clock(simulated_time)
        for route in route_names:
            for scenario in picked:
                done = len(results)

                def step(title: str, i: int, n: int, route: str = route, done: int = done) -> None:
                    if progress:
                        progress(done, total, route, title, i, n)

                result = run_scenario(
                    drilled, route, scenario, requests=requests, clock=clock,
                    latency=latency, latencies=latencies, interval=interval, progress=step,
                )
                results.append(result)
                if on_result:
                    on_result(result)
    return DrillReport(
        config=config_label,
        builtin=builtin,
        started=started,
        duration_s=time.monotonic() - wall,
        requests=requests,
        simulated_time=simulated_time,
        rto=config.objectives.rto,
        rpo=config.objectives.rpo,
        results=results,
    )


# -- the record read by `failover plan` --------------------------------------------------


def write_record(config_path: str, report: DrillReport) -> Path:
    path = record_path(config_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        drills = data.get("drills", []) if isinstance(data, dict) else []
    except (OSError, ValueError):
        drills = []
    entry = report.as_dict(timeline=False)
    entry["time"] = entry.pop("started")
    entry["config_file"] = Path(config_path).name
    drills = [*drills, entry][-MAX_RECORDS:]
    path.write_text(json.dumps({"version": 1, "drills": drills}, indent=2) + "\n",
                    encoding="utf-8")
    return path


# -- the command -------------------------------------------------------------------------


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = ", ".join(s.key for s in SCENARIOS)
    p = sub.add_parser(
        "drill",
        help="run the disaster scenarios and time the recovery",
        description="Simulate each disaster scenario on every route with faults injected in "
        "front of the real adapters, and report time to detect, time to recover (RTO), "
        "requests failed/deferred/lost (RPO) and whether the config's objectives are met. "
        "With no CONFIG it runs on built-in simulated providers. Exits 1 if an objective "
        "is missed.",
    )
    add_config_argument(p, builtin=True)
    p.add_argument("--requests", type=int, default=20, metavar="N",
                   help="requests per scenario after the fault starts (default 20)")
    p.add_argument("--route", action="append", metavar="NAME", help="drill only this route")
    p.add_argument("--scenario", action="append", metavar="KEY",
                   help=f"run only this scenario (repeatable): {keys}")
    p.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    p.add_argument("--chart", metavar="FILE.png", type=writable_file,
                   help="draw latency and serving provider over time per scenario")
    p.add_argument("--simulated-time", action="store_true",
                   help="run on a simulated clock: long timeouts and breaker times cost nothing")
    p.add_argument("--latency", type=non_negative_seconds, default=DEFAULT_LATENCY,
                   metavar="SECONDS",
                   help="simulated latency of a healthy answer (default 0.01)")
    p.add_argument("--interval", type=non_negative_seconds, default=0.0, metavar="SECONDS",
                   help="pause between requests (default 0)")
    p.add_argument("--no-record", action="store_true",
                   help="do not record the drill in .failover/drills.json")
    p.set_defaults(func=run)


class _ProgressLine:
    """One updating line on a terminal; one line per finished scenario elsewhere."""

    def __init__(self, style: Style, enabled: bool) -> None:
        self.style = style
        self.enabled = enabled
        self.stream = style.stream

    def update(self, done: int, total: int, route: str, title: str, i: int, n: int) -> None:
        if not self.enabled or not self.style.tty:
            return
        bar_width = 20
        filled = int(bar_width * (done + i / max(n, 1)) / max(total, 1))
        bar = ("█" if self.style.unicode else "#") * filled
        bar += ("░" if self.style.unicode else ".") * (bar_width - filled)
        line = f"\r  {bar} {done + 1}/{total} {route}: {title} ({i}/{n})"
        self.stream.write(line.ljust(78)[:100])
        self.stream.flush()

    def finished(self, result: ScenarioResult) -> None:
        if not self.enabled:
            return
        mark = self.style.ok_mark if result.met else self.style.fail_mark
        recover = fmt_duration(result.rto_s) if result.rto_s is not None else "never"
        line = (f"  {mark} {result.route}: {result.scenario.title:<25} "
                f"recover {recover:>8}, lost {result.lost}")
        if self.style.tty:
            self.stream.write("\r" + line.ljust(78) + "\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def report_table(report: DrillReport, style: Style) -> str:
    rows = []
    multi_route = len({r.route for r in report.results}) > 1
    for r in report.results:
        def verdict(ok: bool | None) -> str:
            if ok is None:
                return style.dim("-")
            return style.ok_mark if ok else style.fail_mark

        served = ", ".join(f"{name} {count}" for name, count in r.served_by().items()) or "-"
        rto = fmt_duration(r.rto_s) if r.rto_s is not None else style.red("never")
        if r.scenario.recovery:
            back = fmt_duration(r.failback_s) if r.failback_s is not None else style.red("never")
            rto += style.dim(f" (back {back})")
        row = [r.scenario.title, fmt_duration(r.detect_s), rto, str(r.sent),
               str(r.failed), str(r.deferred), style.red(str(r.lost)) if r.lost else "0",
               served, verdict(r.rto_met and r.failback_met is not False), verdict(r.rpo_met)]
        if multi_route:
            row.insert(0, r.route)
        rows.append(row)
    headers = ["scenario", "detect", "recover (RTO)", "sent", "failed", "deferred", "lost",
               "served by", "RTO", "RPO"]
    align = "lrrrrrrlll"
    if multi_route:
        headers.insert(0, "route")
        align = "l" + align
    return table(headers, rows, style=style, align=align, indent="  ")


def _latencies_for_builtin() -> dict[str, float]:
    from ._builtin import BUILTIN_LATENCY

    return dict(BUILTIN_LATENCY)


def run(args: argparse.Namespace) -> int:
    style = Style()
    err_style = Style(sys.stderr)
    if importlib.util.find_spec("respx") is None:
        print("error: failover drill injects its faults with the test kit: "
              "pip install 'failover[testing]'", file=sys.stderr)
        return 2
    if args.requests < 2:
        print("error: --requests must be at least 2", file=sys.stderr)
        return 2
    if args.config:
        config = load(args.config)
        label = args.config
        builtin = False
        latencies = None
        # A Python fallback may also live in the project the drill is run from (`load`
        # put the config's own folder first).
        if str(Path.cwd()) not in sys.path:
            sys.path.insert(1, str(Path.cwd()))
    else:
        from ._builtin import builtin_config

        config = builtin_config()
        label = "(built-in simulated providers)"
        builtin = True
        latencies = _latencies_for_builtin()

    unknown_routes = [r for r in args.route or () if r not in config.routes]
    known_keys = {s.key for s in SCENARIOS}
    unknown_scenarios = [s for s in args.scenario or () if s not in known_keys]
    if unknown_routes or unknown_scenarios:
        for r in unknown_routes:
            print(f"error: unknown route {r!r} (known: {', '.join(config.routes)})",
                  file=sys.stderr)
        for s in unknown_scenarios:
            print(f"error: unknown scenario {s!r} (known: {', '.join(sorted(known_keys))})",
                  file=sys.stderr)
        return 2

    if args.chart:
        from ._chart import chart_available

        if not chart_available():
            print("error: --chart needs matplotlib: pip install 'failover[chart]'",
                  file=sys.stderr)
            return 2

    obj = config.objectives
    head_stream = sys.stderr if args.json else sys.stdout
    head_style = err_style if args.json else style
    chains = "; ".join(f"{name}: {f' {style.arrow} '.join(r.chain)}"
                       for name, r in config.routes.items()
                       if args.route is None or name in args.route)
    print(head_style.bold(f"failover drill: {label}"), file=head_stream)
    print(f"  routes {chains}", file=head_stream)
    print(f"  objectives: RTO {fmt_duration(obj.rto)}, RPO {obj.rpo} lost; "
          f"{args.requests} requests per scenario"
          + (", simulated time" if args.simulated_time else ""), file=head_stream)
    print(file=head_stream, flush=True)

    progress = _ProgressLine(err_style, enabled=True)
    report = run_drill(
        config,
        config_label=label,
        builtin=builtin,
        requests=args.requests,
        routes=args.route,
        scenarios=args.scenario,
        simulated_time=args.simulated_time,
        latency=args.latency,
        latencies=latencies,
        interval=args.interval,
        progress=progress.update,
        on_result=progress.finished,
    )

    if args.chart:
        from ._chart import draw_chart

        Path(args.chart).parent.mkdir(parents=True, exist_ok=True)  # checked: below cwd
        draw_chart(report, args.chart)
    if args.config and not args.no_record:
        with contextlib.suppress(OSError):
            write_record(args.config, report)

    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print()
        print(report_table(report, style))
        print()
        failing = [r for r in report.results if not r.met]
        seconds = f"{report.duration_s:.1f} s" + (" (simulated time)" if args.simulated_time
                                                  else "")
        if failing:
            print(f"{style.fail_mark} {len(failing)} of {len(report.results)} scenario(s) "
                  f"missed the objectives (RTO {fmt_duration(obj.rto)}, RPO {obj.rpo}):")
            for r in failing:
                print(f"    {r.route}/{r.scenario.key} ({r.scenario.title}): "
                      + "; ".join(r.problems()))
        else:
            print(f"{style.ok_mark} all {len(report.results)} scenarios met the objectives "
                  f"(RTO {fmt_duration(obj.rto)}, RPO {obj.rpo}) in {seconds}")
        if args.chart:
            print(f"  chart: {args.chart}")
    if not report.passed:
        names = ", ".join(f"{r.route}/{r.scenario.key}" for r in report.results if not r.met)
        if args.json:
            print(f"drill failed: {names}", file=sys.stderr)
        return 1
    return 0
