"""The disaster scenarios, as data: what breaks, on which providers of the route."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import failover
    from failover.testing import FakeProviders

__all__ = ["SCENARIOS", "Objective", "Scenario", "scenario"]

#: ``rto``: recovered within objectives.rto; ``rpo``: nothing lost, every deferred request
#: in the store; ``procedure``: every request served, degraded (manual fallback) or
#: deferred, none failed: the route has a DR procedure for when nothing can serve.
Objective = Literal["rto", "rpo", "procedure"]
#: ``inject(fake, chain, config)``: put the fault in place; returns the faulty providers.
Inject = Callable[["FakeProviders", Sequence[str], "failover.Config"], list[str]]


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    fault: str
    #: Put the fault in place on the kit, given the route's chain; returns the faulty.
    inject: Inject
    #: The objectives this scenario is judged on. A total outage cannot recover until a
    #: provider comes back: it is judged on what was kept (RPO) and on the route's DR
    #: procedure (fallback or deferral), and its recovery is reported as measured
    #: ("never"), not judged.
    objectives: tuple[Objective, ...] = ("rto", "rpo")
    #: Recovery: the primary comes back halfway and must get its traffic back.
    recovery: bool = False
    #: Security breach: the primary's key is revoked; halfway a new key is put in the
    #: environment and picked up by a reload (no restart), and must serve at once.
    rotation: bool = False
    #: Data loss: halfway the deferred store's file is deleted, then restored from its
    #: last backup; what was deferred since that backup is lost (the store's real RPO).
    data_loss: bool = False

    @property
    def midway(self) -> bool:
        """Something is repaired halfway (the provider heals, or the key is rotated)."""
        return self.recovery or self.rotation


def _primary(fault: Callable[[Any], Any]) -> Inject:
    def inject(fake: FakeProviders, chain: Sequence[str], config: failover.Config) -> list[str]:
        fault(fake[chain[0]])
        return [chain[0]]

    return inject


def _everyone(fake: FakeProviders, chain: Sequence[str], config: failover.Config) -> list[str]:
    for name in chain:
        fake[name].fail(503)
    return list(chain)


def _cascading(fake: FakeProviders, chain: Sequence[str], config: failover.Config) -> list[str]:
    """The primary and its first backup fail together (one region, one vendor)."""
    down = list(chain[:2])
    for name in down:
        fake[name].fail(503)
    return down


def _flaky(fake: FakeProviders, chain: Sequence[str], config: failover.Config) -> list[str]:
    from failover.testing import flaky

    fake[chain[0]].set(flaky(0.3, seed=30, text=ANSWER))
    return [chain[0]]


def _creeping(fake: FakeProviders, chain: Sequence[str], config: failover.Config) -> list[str]:
    """The primary still answers, slower each time, until it is past its timeout."""
    from failover.testing import slow

    limit = config.timeouts_for(chain[0]).request
    steps = (0.1, 0.25, 0.4, 0.55, 0.7, 0.85, 1.0, 1.5)
    fake[chain[0]].sequence(*(slow(limit * f, ANSWER) for f in steps))
    return [chain[0]]


#: What a healthy simulated provider answers in a drill.
ANSWER = "Incident status: all systems nominal."

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("outage_503", "primary outage (503)", "the primary answers 503 Service Unavailable",
             _primary(lambda p: p.fail(503))),
    Scenario("outage_refused", "primary outage (refused)", "the primary refuses connections",
             _primary(lambda p: p.refuse())),
    Scenario("outage_hang", "primary outage (hang)",
             "the primary accepts and never answers (until the client's timeout)",
             _primary(lambda p: p.hang())),
    Scenario("cascading", "cascading outage",
             "the primary and its first backup answer 503 together", _cascading),
    Scenario("flaky", "flaky primary (30%)",
             "the primary fails a seeded 30% of its requests with 503", _flaky),
    Scenario("slow_degradation", "slow degradation",
             "the primary's latency creeps from 10% of its timeout to past it", _creeping),
    Scenario("rate_limit_storm", "rate-limit storm (429)",
             "the primary answers 429 with Retry-After: 30",
             _primary(lambda p: p.rate_limit(retry_after=30))),
    Scenario("integration_failure", "integration failure",
             "the primary's responses stop parsing (schema drift)",
             _primary(lambda p: p.malformed())),
    Scenario("revoked_key", "revoked key (401)", "the primary rejects the key with 401",
             _primary(lambda p: p.fail(401))),
    Scenario("key_rotation", "security breach: key rotated",
             "the primary's key is revoked (401); halfway a new key is set in the "
             "environment and the config reloaded, without a restart",
             _primary(lambda p: p.fail(401)), rotation=True),
    Scenario("total_outage", "total outage", "every provider of the route answers 503",
             _everyone, objectives=("rpo", "procedure")),
    Scenario("data_loss", "data loss: deferred store",
             "every provider answers 503 so requests are deferred; halfway the store's "
             "file is deleted and restored from its last backup",
             _everyone, objectives=("rpo",), data_loss=True),
    Scenario("recovery", "recovery", "the primary answers 503, then comes back halfway",
             _primary(lambda p: p.fail(503)), recovery=True),
)


def scenario(key: str) -> Scenario:
    """The scenario named ``key``; a `KeyError` listing the known keys otherwise."""
    for found in SCENARIOS:
        if found.key == key:
            return found
    raise KeyError(f"unknown scenario {key!r}; known: {', '.join(s.key for s in SCENARIOS)}")
