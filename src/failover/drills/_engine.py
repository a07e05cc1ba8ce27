"""Running a drill: a fresh router per route and scenario, the test kit in front of the
real adapters, requests one after another, and the measures of `_measures` on what
happened.

Time is real by default; ``simulated_time=True`` runs the same drill on a simulated
clock (hangs, latencies and breaker times advance it instantly), which drills production
timeouts of many seconds in a moment.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import failover

from ._measures import (
    DEFAULT_RECOVERY_RUN,
    DrillRequest,
    Outcome,
    time_to_detect,
    time_to_recover,
)
from ._results import DrillReport, ScenarioResult
from ._scenarios import ANSWER, SCENARIOS, Scenario
from ._scenarios import scenario as scenario_named

if TYPE_CHECKING:
    from failover.testing import FakeProviders

__all__ = ["DEFAULT_LATENCY", "DrillClock", "drill_config", "run_drill", "run_scenario"]

DEFAULT_LATENCY = 0.010
WARMUP = 3
FAILBACK_GRACE = 1.0
DRILL_PROMPT = "Disaster drill: summarise the incident status in one line."

#: ``progress(done, total, route, title, i, n)``: scenario ``done + 1`` of ``total``,
#: request ``i`` of ``n``.
Progress = Callable[[int, int, str, str, int, int], None]


def drill_config(config: failover.Config, deferred_dir: str | None, *,
                 live: bool = False) -> failover.Config:
    """The config as drilled: dummy keys (``live``: the real ones), in-memory state, no
    webhook, a temp store.

    Keys are replaced because every request goes to the simulated providers (a real key
    must never be sent there, and a missing ``${VAR}`` must not stop a drill); state is
    kept in memory so a drill never opens a breaker for production workers sharing
    Redis; the webhook is off so a drill pages nobody (the events it would have sent are
    counted instead); the deferred store is a temp file, since drill requests in the real
    one would be replayed to real providers.
    """
    from pydantic import SecretStr

    dummy = SecretStr("drill-dummy-key")
    providers = config.providers if live else {  # a live drill uses the real keys
        name: p.model_copy(update={
            "api_key": dummy if p.api_key is not None or (p.type != "fake" and not p.api_keys)
            else None,
            "api_keys": [dummy for _ in p.api_keys],
        })
        for name, p in config.providers.items()
    }
    # One single-try route per provider, used before each scenario so that SDK imports
    # and client set-up are paid before the clock starts, not by the first failover.
    route_type = type(next(iter(config.routes.values())))  # the config's own models
    once = config.defaults.retry.model_copy(update={"attempts": 1})
    warmups = {
        _warmup_route(name): route_type(chain=[name], retry=once, deadline=None)
        for name in config.providers
    }
    update: dict[str, Any] = {
        "providers": providers,
        "routes": {**config.routes, **warmups},
        "state": type(config.state)(),
        "notify": type(config.notify)(log=False),
        "watch": False,
    }
    if deferred_dir is not None:
        backup = config.deferred.backup
        update["deferred"] = config.deferred.model_copy(update={
            "path": str(Path(deferred_dir) / "deferred.sqlite"),
            # The drill takes the periodic backups itself, on its own clock (see
            # `_StoreLoss`): the router's real-time schedule is put out of the way.
            "backup": None if backup is None else backup.model_copy(update={
                "path": str(Path(deferred_dir) / "deferred-backup.sqlite"),
                "every": backup.every and _NEVER_DURING_A_DRILL})})
    return config.model_copy(update=update)


#: The longest period the config allows: no real-time backup fires during a drill.
_NEVER_DURING_A_DRILL = 86400.0


def _warmup_route(provider: str) -> str:
    return f"drill-warmup:{provider}"


class DrillClock:
    """The drill's clock: the real one, or a `FakeClock` shared with router and kit."""

    def __init__(self, simulated: bool) -> None:
        from failover.testing import FakeClock

        self.fake = FakeClock() if simulated else None

    def __call__(self) -> float:
        return self.fake() if self.fake is not None else time.monotonic()

    def sleep(self, seconds: float) -> None:
        if self.fake is not None:
            self.fake.sleep(seconds)
        elif seconds > 0:
            time.sleep(seconds)


@dataclass
class _Run:
    """One scenario in progress: the router, the kit, the clock and what they did."""

    config: failover.Config
    route: str
    scenario: Scenario
    clock: DrillClock
    router: failover.Router
    #: Make provider ``name`` healthy (the simulated answer, or no live fault).
    heal: Callable[[str], None]
    #: The simulated providers (None in a live drill).
    fake: FakeProviders | None = None
    interval: float = 0.0
    #: The events the config's webhook would have sent (the drill sends none).
    notify_events: frozenset[str] = frozenset()
    t0: float = 0.0
    requests: list[DrillRequest] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)
    heal_at: float | None = None
    failback_at: float | None = None

    @property
    def measured(self) -> list[DrillRequest]:
        return [r for r in self.requests if r.t_s >= 0]

    @property
    def chain(self) -> list[str]:
        return list(self.config.routes[self.route].providers)

    def send(self) -> DrillRequest:
        start = self.clock()
        record = _outcome(self.router, self.route, self.config)
        return replace(record, t_s=start - self.t0, latency_s=self.clock() - start)


def _outcome(router: failover.Router, route: str, config: failover.Config) -> DrillRequest:
    """One request's outcome (times are filled in by the caller)."""
    try:
        reply = router.complete(DRILL_PROMPT, route=route, max_tokens=32)
    except failover.Deferred as err:
        return DrillRequest(0, 0, "deferred", error_kind="Deferred",
                            attempts=len(err.attempts), ticket=err.ticket,
                            paid_timeout=_paid(err.attempts), faults=_faults(err.attempts))
    except failover.FailoverError as err:
        attempts = getattr(err, "attempts", None) or []
        return DrillRequest(0, 0, "failed", error_kind=type(err).__name__,
                            attempts=len(attempts), paid_timeout=_paid(attempts),
                            faults=_faults(attempts))
    except Exception as err:  # a raising fallback: raised, so the caller knows
        return DrillRequest(0, 0, "failed", error_kind=type(err).__name__)
    outcome: Outcome = "served" if reply.provider in config.providers else "degraded"
    return DrillRequest(0, 0, outcome, provider=reply.provider or None,
                        attempts=len(reply.attempts), paid_timeout=_paid(reply.attempts),
                        faults=_faults(reply.attempts))


def _paid(attempts: Sequence[failover.Attempt]) -> bool:
    return any(a.error_kind == "Timeout" for a in attempts)


def _faults(attempts: Sequence[failover.Attempt]) -> tuple[str, ...]:
    return tuple(a.error_kind for a in attempts if a.error_kind)


def _warm_up(run: _Run) -> None:
    for name in run.chain:
        run.heal(name)
    for name in run.chain:
        with contextlib.suppress(Exception):
            run.router.complete(DRILL_PROMPT, route=_warmup_route(name), max_tokens=32)
    run.t0 = run.clock()
    warm = [run.send() for _ in range(WARMUP)]
    # Warm-up requests end just before the fault starts (t < 0).
    shift = run.clock() - run.t0
    run.requests = [replace(r, t_s=r.t_s - shift) for r in warm]


def _repair(run: _Run) -> None:
    """Halfway: the primary heals, or (key rotation) its revoked key is replaced in the
    environment and the config reloaded, as an operator would, without a restart."""
    primary = run.chain[0]
    if run.scenario.rotation:
        os.environ[ROTATION_VARIABLE] = ROTATED_KEY
        run.router.reload(run.config)
    run.heal(primary)
    run.heal_at = run.clock() - run.t0


def _fail_back(run: _Run, target: float, requests: int, step: Callable[[int], None]) -> None:
    """After the repair: keep sending until the primary serves (and a little after, to
    show it holds), or until it is clearly not getting its traffic back."""
    primary = run.chain[0]
    open_for = run.config.breaker_for(primary).open_for
    _repair(run)
    healed_at = run.heal_at or 0.0
    sent, after = len(run.measured), 0
    while True:
        record = run.send()
        run.requests.append(record)
        sent += 1
        step(sent)
        if run.failback_at is None and record.provider == primary and _right_key(run):
            run.failback_at = record.end_s
        after += run.failback_at is not None
        if run.failback_at is None and record.end_s - healed_at > target:
            return
        if run.failback_at is not None and after >= 3 and sent >= requests:
            return
        # While the breaker keeps the primary out, a request every tenth of its open
        # time is enough to see the moment it is let back in.
        run.clock.sleep(run.interval if run.failback_at is not None
                        else max(run.interval, open_for / 10))


def _right_key(run: _Run) -> bool:
    """After a rotation, the primary's answer counts only if the new key was sent."""
    if not run.scenario.rotation:
        return True
    if run.fake is None:
        return True
    sent = run.fake[run.chain[0]].last_request.headers.values()
    return any(ROTATED_KEY in value for value in sent)


#: The key-rotation drill's primary reads its key from this variable, as production would.
ROTATION_VARIABLE = "FAILOVER_DRILL_ROTATING_KEY"
REVOKED_KEY = "drill-key-revoked"
ROTATED_KEY = "drill-key-rotated"


def _rotating(config: failover.Config, route: str) -> failover.Config:
    """The drilled config with the route's primary keyed by `ROTATION_VARIABLE`."""
    from pydantic import SecretStr

    primary = config.routes[route].providers[0]
    keyed = config.providers[primary].model_copy(update={
        "api_key": SecretStr("${" + ROTATION_VARIABLE + "}"), "api_keys": []})
    return config.model_copy(update={"providers": {**config.providers, primary: keyed}})


@contextlib.contextmanager
def _revoked_key(scenario: Scenario) -> Iterator[None]:
    """The revoked key in the environment for the scenario; the variable is put back
    as it was after it."""
    if not scenario.rotation:
        yield
        return
    before = os.environ.get(ROTATION_VARIABLE)
    os.environ[ROTATION_VARIABLE] = REVOKED_KEY
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ROTATION_VARIABLE, None)
        else:
            os.environ[ROTATION_VARIABLE] = before


class _StoreLoss:
    """The data-loss drill: backups on the config's schedule (on the drill's clock),
    the store's file deleted halfway, then restored from the last backup."""

    def __init__(self, run: _Run, every: float | None) -> None:
        self.run = run
        self.backup = run.config.deferred.backup
        #: The config's own schedule (the drilled config's router has none running).
        self.every = every if every is not None else (
            self.backup.every if self.backup is not None else None)
        self.path = run.config.deferred_path()
        self.last_backup: float | None = None
        self.deleted_at: float | None = None
        self.since_backup: float | None = None
        self.restored = 0

    def tick(self, i: int, requests: int) -> None:
        now = self.run.clock() - self.run.t0
        every = self.every or 0.0
        if every > 0 and (self.last_backup is None or now - self.last_backup >= every):
            self.run.router.backup_deferred()
            self.last_backup = now
        if i == requests // 2 and self.deleted_at is None:
            self._lose_and_restore(now)

    def _lose_and_restore(self, now: float) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        self.deleted_at = now
        mirrored = self.backup is not None and not self.every
        if mirrored or self.last_backup is not None:
            self.since_backup = 0.0 if mirrored else round(now - (self.last_backup or 0.0), 4)
        if self.backup is not None and self.run.config.backup_path() is not None:
            with contextlib.suppress(failover.FailoverError, OSError):
                self.restored = self.run.router.restore_deferred()

    def report(self, records: list[DrillRequest]) -> dict[str, Any]:
        mirrored = self.backup is not None and not self.every
        return {"backup": "none" if self.backup is None else
                "mirror" if mirrored else f"every {self.every:g} s",
                "deleted_at_s": None if self.deleted_at is None else round(self.deleted_at, 4),
                "restored": self.restored,
                "since_last_backup_s": self.since_backup,
                "lost": sum(1 for r in records if r.outcome == "lost")}


def _verified(run: _Run) -> list[DrillRequest]:
    """Every request reported deferred, read back from the store: one that is not there
    was lost, whatever the router said."""
    return [r if r.outcome != "deferred" or (r.ticket and run.router.deferred(r.ticket))
            else replace(r, outcome="lost") for r in run.requests]


def run_scenario(
    config: failover.Config, route: str, scenario: Scenario, *, requests: int,
    clock: DrillClock, latency: float = DEFAULT_LATENCY,
    latencies: dict[str, float] | None = None, interval: float = 0.0,
    recovery_run: int = DEFAULT_RECOVERY_RUN, notify_events: frozenset[str] = frozenset(),
    backup_every: float | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> ScenarioResult:
    """One scenario on one route of a drilled config (see `drill_config`);
    ``notify_events`` are what the original config's webhook sends, ``backup_every`` its
    ``deferred.backup.every`` (the data-loss drill follows it on the drill's clock)."""
    from failover.testing import FakeProviders

    def healthy(name: str) -> None:
        seconds = _latency_for(config, name, latency, latencies)
        if seconds > 0:
            fake[name].slow(seconds, text=ANSWER)
        else:
            fake[name].answer(ANSWER)

    def step(i: int) -> None:
        if progress:
            progress(scenario.title, min(i, requests), requests)

    if scenario.rotation:
        config = _rotating(config, route)
    router = failover.Router(config, clock=clock.fake)
    with _revoked_key(scenario), router, FakeProviders(clock=clock.fake) as fake:
        run = _Run(config, route, scenario, clock, router, healthy, fake, interval,
                   notify_events)
        router.subscribe(lambda event: run.events.append((clock() - run.t0, event.type)))
        _warm_up(run)
        run.t0 = clock()
        faulty = scenario.inject(fake, run.chain, config)
        store = _StoreLoss(run, backup_every) if scenario.data_loss else None
        for i in range(requests // 2 if scenario.midway else requests):
            if store is not None:
                store.tick(i, requests)
            run.requests.append(run.send())
            step(i + 1)
            clock.sleep(interval)
        # A healed provider is let back in once its breaker's open time is up; a rotated
        # key is a new provider to the reload: it serves at once.
        target = FAILBACK_GRACE if scenario.rotation else (
            config.breaker_for(run.chain[0]).max_open_for + FAILBACK_GRACE)
        if scenario.midway:
            _fail_back(run, target, requests, step)
        records = _verified(run)
    result = _result(run, faulty, records, recovery_run, target if scenario.midway else None)
    result.store_loss = None if store is None else store.report(records)
    return result


def _result(run: _Run, faulty: list[str], records: list[DrillRequest], recovery_run: int,
            failback_target: float | None) -> ScenarioResult:
    events = [(t, kind) for t, kind in run.events if t >= 0]
    notified = [t for t, kind in events if kind in run.notify_events]
    return ScenarioResult(
        route=run.route, scenario=run.scenario, faulty=faulty, requests=records,
        detect_s=time_to_detect(events), recover_s=time_to_recover(records, recovery_run),
        rto_target=run.config.objectives.rto, rpo_target=run.config.objectives.rpo,
        recovery_run=recovery_run,
        deferred_verified=all(r.outcome != "lost" or r.ticket is None for r in records),
        heal_s=run.heal_at,
        failback_s=(None if run.failback_at is None or run.heal_at is None
                    else run.failback_at - run.heal_at),
        failback_target=failback_target,
        events=Counter(kind for _, kind in events),
        alerts=len(notified),
        notified_s=min(notified) if notified else None,
    )


def _latency_for(config: failover.Config, name: str, default: float,
                 overrides: dict[str, float] | None) -> float:
    if overrides and name in overrides:
        return overrides[name]
    provider = config.providers[name]
    if provider.type == "fake" and provider.fake is not None and provider.fake.latency > 0:
        return provider.fake.latency
    return default


def run_drill(
    config: failover.Config, *, config_label: str = "(config)", builtin: bool = False,
    requests: int = 20, routes: Sequence[str] | None = None,
    scenarios: Sequence[str] | None = None, simulated_time: bool = False,
    latency: float = DEFAULT_LATENCY, latencies: dict[str, float] | None = None,
    interval: float = 0.0, recovery_run: int = DEFAULT_RECOVERY_RUN,
    progress: Progress | None = None,
    on_result: Callable[[ScenarioResult], None] | None = None,
) -> DrillReport:
    """Run the scenarios (all, or those named) on every route (or those named), one
    fresh router each, on the simulated providers of the test kit; nothing is sent to
    a real provider and no real key is used."""
    for key in scenarios or ():
        scenario_named(key)  # a name that is no scenario is a KeyError listing the known ones
    picked = [s for s in SCENARIOS if scenarios is None or s.key in scenarios]
    webhook = config.notify.webhook
    notify_events = frozenset(webhook.events) if webhook is not None else frozenset()
    backup = config.deferred.backup
    backup_every = backup.every if backup is not None else None
    route_names = list(routes) if routes is not None else list(config.routes)
    started = datetime.datetime.now(datetime.timezone.utc)
    wall = time.monotonic()
    results: list[ScenarioResult] = []
    total = len(picked) * len(route_names)
    with tempfile.TemporaryDirectory(prefix="failover-drill-") as tmp:
        clock = DrillClock(simulated_time)
        for route in route_names:
            for scenario in picked:
                done = len(results)
                # Each scenario its own store (and backup): one's deferrals never count
                # in another's.
                folder = Path(tmp) / str(done)
                folder.mkdir()
                drilled = drill_config(config, str(folder))

                def step(title: str, i: int, n: int, route: str = route,
                         done: int = done) -> None:
                    if progress:
                        progress(done, total, route, title, i, n)

                result = run_scenario(
                    drilled, route, scenario, requests=requests, clock=clock,
                    latency=latency, latencies=latencies, interval=interval,
                    recovery_run=recovery_run, notify_events=notify_events,
                    backup_every=backup_every, progress=step)
                results.append(result)
                if on_result:
                    on_result(result)
    return DrillReport(
        config=config_label, builtin=builtin, started=started,
        duration_s=time.monotonic() - wall, requests=requests,
        simulated_time=simulated_time, rto=config.objectives.rto,
        rpo=config.objectives.rpo, results=results)
