"""A live game day: the drill's scenarios against the real providers, with the faults
injected on the client side.

The primary is made to look down by the library itself (a local 503, a refused
connection, a local 401): nothing is sent to a provider while it "is down", and no
provider is touched to stage the fault. Every other request goes out for real, with the
real keys, through the real network, so a team sees its real backups, keys and fallbacks
work. At most ``budget`` requests leave the machine: past it, the transport refuses
locally and the scenario in progress ends.
"""

from __future__ import annotations

import datetime
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx2

import failover
from failover.providers._base import override_transport
from failover.providers._watchdog import watch_response

from ._engine import FAILBACK_GRACE, DrillClock, Progress, _fail_back, _result, _Run, _verified
from ._measures import DEFAULT_RECOVERY_RUN
from ._results import DrillReport, ScenarioResult
from ._scenarios import SCENARIOS, Scenario

__all__ = ["LIVE_FAULTS", "LiveFaults", "describe", "run_live"]

#: The scenarios a game day can stage on the client side: who looks down, and how.
LIVE_FAULTS: dict[str, tuple[str, str]] = {
    "outage_503": ("primary", "503"),
    "outage_refused": ("primary", "refused"),
    "revoked_key": ("primary", "401"),
    "total_outage": ("all", "503"),
    "recovery": ("primary", "503"),
}


class LiveFaults:
    """The transport seam during a game day: a local fault for the providers made to
    look down, the real network for the others, and a hard cap on what goes out."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.sent = 0
        self.down: dict[str, str] = {}
        self._lock = threading.Lock()
        self._real = httpx2.HTTPTransport()
        self._areal = httpx2.AsyncHTTPTransport()

    @property
    def spent(self) -> bool:
        return self.sent >= self.budget

    def stage(self, scenario: Scenario, chain: Sequence[str]) -> list[str]:
        who, fault = LIVE_FAULTS[scenario.key]
        faulty = list(chain) if who == "all" else [chain[0]]
        self.down = dict.fromkeys(faulty, fault)
        return faulty

    def clear(self, provider: str) -> None:
        self.down.pop(provider, None)

    def _local(self, request: httpx2.Request, provider: str) -> httpx2.Response | None:
        """The staged fault, or the budget's refusal; None: send it for real."""
        fault = self.down.get(provider)
        if fault == "refused":
            raise httpx2.ConnectError("failover drill --live: connection refused (staged)",
                                      request=request)
        if fault is not None:
            return httpx2.Response(int(fault), request=request, json={"error": {
                "message": f"failover drill --live: HTTP {fault} staged by the library",
                "type": "staged_fault"}})
        with self._lock:
            if self.sent >= self.budget:
                raise httpx2.ConnectError(
                    f"failover drill --live: the budget of {self.budget} real request(s) "
                    "is spent", request=request)
            self.sent += 1
        return None

    def handle_request(self, request: httpx2.Request, provider: str) -> httpx2.Response:
        staged = self._local(request, provider)
        if staged is not None:
            return staged
        response = self._real.handle_request(request)
        watch_response(response)
        return response

    async def handle_async_request(self, request: httpx2.Request,
                                   provider: str) -> httpx2.Response:
        staged = self._local(request, provider)
        if staged is not None:
            return staged
        return await self._areal.handle_async_request(request)

    def close(self) -> None:
        self._real.close()


def _live_scenario(config: failover.Config, route: str, scenario: Scenario,
                   faults: LiveFaults, requests: int, recovery_run: int,
                   step: Callable[[int], None]) -> ScenarioResult:
    clock = DrillClock(simulated=False)
    with failover.Router(config) as router:
        run = _Run(config, route, scenario, clock, router, faults.clear)
        router.subscribe(lambda event: run.events.append((clock() - run.t0, event.type)))
        run.t0 = clock()
        faulty = faults.stage(scenario, run.chain)
        for i in range(requests // 2 if scenario.recovery else requests):
            if faults.spent:
                break
            run.requests.append(run.send())
            step(i + 1)
        target = config.breaker_for(run.chain[0]).max_open_for + FAILBACK_GRACE
        if scenario.recovery and not faults.spent:
            _fail_back(run, target, requests, step)
        faults.down = {}
        records = _verified(run)
    return _result(run, faulty, records, recovery_run,
                   target if scenario.recovery else None)


def run_live(
    config: failover.Config, *, budget: int, config_label: str = "(config)",
    requests: int = 20, routes: Sequence[str] | None = None,
    scenarios: Sequence[str] | None = None, recovery_run: int = DEFAULT_RECOVERY_RUN,
    progress: Progress | None = None,
    on_result: Callable[[ScenarioResult], None] | None = None,
) -> DrillReport:
    """The game day: each stageable scenario (or those named) on each route, real
    providers and keys, at most ``budget`` real requests in all; ``report.live`` says
    how many went out."""
    from ._engine import drill_config

    unknown = [k for k in scenarios or () if k not in LIVE_FAULTS]
    if unknown:
        raise KeyError(f"not a scenario a live drill can stage: {', '.join(unknown)}; "
                       f"these can: {', '.join(LIVE_FAULTS)}")
    picked = [s for s in SCENARIOS if s.key in LIVE_FAULTS
              and (scenarios is None or s.key in scenarios)]
    route_names = list(routes) if routes is not None else list(config.routes)
    started, wall = datetime.datetime.now(datetime.timezone.utc), time.monotonic()
    faults = LiveFaults(budget)
    results: list[ScenarioResult] = []
    total = len(picked) * len(route_names)
    with tempfile.TemporaryDirectory(prefix="failover-gameday-") as tmp, \
            override_transport(faults, process_wide=True):
        for route in route_names:
            for scenario in picked:
                if faults.spent:
                    break
                done = len(results)
                folder = Path(tmp) / str(done)
                folder.mkdir()

                def step(i: int, route: str = route, done: int = done,
                         title: str = scenario.title) -> None:
                    if progress:
                        progress(done, total, route, title, min(i, requests), requests)

                result = _live_scenario(drill_config(config, str(folder), live=True), route,
                                        scenario, faults, requests, recovery_run, step)
                results.append(result)
                if on_result:
                    on_result(result)
    faults.close()
    report = DrillReport(config=config_label, builtin=False, started=started,
                         duration_s=time.monotonic() - wall, requests=requests,
                         simulated_time=False, rto=config.objectives.rto,
                         rpo=config.objectives.rpo, results=results)
    report.live = {"budget": budget, "sent": faults.sent}
    return report


def describe(config: failover.Config, routes: Sequence[str] | None) -> list[str]:
    """What a game day will reach, one line a provider, for the confirmation."""
    lines: list[str] = []
    for name in routes or config.routes:
        chain = config.routes[name].providers
        for i, provider in enumerate(chain):
            p = config.providers[provider]
            role = "primary: made to look down locally" if i == 0 else "real requests"
            lines.append(f"{name}/{provider} ({p.type}, {p.model}, "
                         f"{p.base_url or 'default endpoint'}): {role}")
    return lines

