"""Scenario 6, micro: what skipping an open breaker and one routing decision cost.

Both are a few microseconds against a ~800 µs SDK call, far below the noise of a socket
round trip, so they are measured twice:

- *in memory*: every client's transport answers at once from memory (the SDK through an
  ``httpx2.MockTransport``, the router through the library's own transport seam), so
  the only work left is the SDK's and the router's. Variants run in interleaved blocks
  and differences are taken block by block, then the median.
- *on loopback*: the same variants against the loopback server, for the record.

Variants: ``sdk`` (the SDK alone), ``direct`` (router, chain = [backup]), ``skip``
(router, chain = [primary, backup] with the primary forced open). ``skip - direct`` is
the cost of skipping an open breaker; ``direct - sdk`` is the router's whole per-call
cost on a healthy call (planning, breaker permit, health, accounting).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from benchmarks._stats import percentile
from benchmarks.contenders import MESSAGES, MODEL, Setup, failover_config
from benchmarks.server import _COMPLETION, ServerHandle

__all__ = ["micro"]

_MEM_URL = "http://memory.invalid/v1"


class _Canned:
    """A transport override answering every request at once (the seam's test hook)."""

    def _answer(self, request: Any) -> Any:
        import httpx2

        request.read()
        return httpx2.Response(200, headers={"content-type": "application/json"},
                               content=_COMPLETION)  # fmt: skip

    def handle_request(self, request: Any, provider: str) -> Any:
        return self._answer(request)

    async def handle_async_request(self, request: Any, provider: str) -> Any:
        return self._answer(request)


def _sdk_call(base_url: str, in_memory: bool) -> tuple[Callable[[], object], Callable[[], None]]:
    import httpx2
    import openai

    http = None
    if in_memory:
        http = httpx2.Client(transport=httpx2.MockTransport(lambda r: _Canned()._answer(r)))
    client = openai.OpenAI(base_url=base_url, api_key="none", max_retries=0, http_client=http)

    messages: Any = MESSAGES

    def call() -> object:
        return client.chat.completions.create(model=MODEL, messages=messages)

    return call, client.close


def _router_call(setup: Setup, variant: str) -> tuple[Callable[[], object], Callable[[], None]]:
    import failover

    setup.variant = variant
    router = failover.Router(failover.Config.from_mapping(failover_config(setup)))
    if variant == "skip":
        router.force_open("primary")

    def call() -> object:
        return router.complete(MESSAGES)

    return call, router.close


def _blocks(calls: dict[str, Callable[[], object]], blocks: int, per_block: int,
            warmup: int) -> dict[str, list[float]]:  # fmt: skip
    """Median µs per call of each variant, block by block, variants interleaved."""
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    names = list(calls)
    out: dict[str, list[float]] = {name: [] for name in names}
    perf = time.perf_counter_ns
    for b in range(blocks):
        order = names[b % len(names):] + names[: b % len(names)]
        for name in order:
            fn = calls[name]
            samples = []
            for _ in range(per_block):
                t0 = perf()
                fn()
                samples.append(perf() - t0)
            samples.sort()
            out[name].append(percentile(samples, 50) / 1000.0)
    return out


def _report(blocks: dict[str, list[float]]) -> dict[str, Any]:
    def diff(a: str, b: str) -> float:
        return statistics.median(x - y for x, y in zip(blocks[a], blocks[b], strict=True))

    return {
        "per_call_us": {name: statistics.median(v) for name, v in blocks.items()},
        "skip_open_breaker_us": diff("skip", "direct"),
        "router_overhead_us": diff("direct", "sdk"),
        "router_ratio": statistics.median(blocks["direct"]) / statistics.median(blocks["sdk"]),
        "blocks": len(blocks["sdk"]),
    }


def _decision_us(setup: Setup, n: int) -> dict[str, float] | None:
    """One routing decision alone: plan a request and take the first breaker permit.

    Uses the router's private planning step (``_begin`` + the attempt machine's first
    action); None when
    the router's internals moved, since this is a diagnostic, not a contract.
    """
    import failover

    results: dict[str, float] = {}
    for variant in ("direct", "skip"):
        setup.variant = variant
        router = failover.Router(failover.Config.from_mapping(failover_config(setup)))
        if variant == "skip":
            router.force_open("primary")
        try:
            start = router._begin
            # Build the adapters outside the timing, as the first real call would.
            for provider in router._state.routes["default"].chain:
                _ = provider.adapter
        except AttributeError:
            return None

        def decide(start: Any = start) -> None:
            machine = start("complete", MESSAGES, "default", None, None, {"system": None})
            action = machine.start()
            if hasattr(action, "permit"):
                machine.cancelled(action)
            machine.state.leave()

        for _ in range(200):
            decide()
        t0 = time.perf_counter_ns()
        for _ in range(n):
            decide()
        results[variant] = (time.perf_counter_ns() - t0) / n / 1000.0
        router.close()
    results["skip_minus_direct"] = results["skip"] - results["direct"]
    return results


def micro(params: dict[str, Any], handle: ServerHandle) -> dict[str, Any]:
    from failover.providers._base import override_transport

    blocks, per_block, warmup = int(params["blocks"]), int(params["per_block"]), 200
    out: dict[str, Any] = {}

    mem = Setup(primary_url=_MEM_URL, secondary_url=_MEM_URL)
    sdk, close_sdk = _sdk_call(_MEM_URL, in_memory=True)
    direct, close_direct = _router_call(Setup(_MEM_URL, _MEM_URL), "direct")
    skip, close_skip = _router_call(Setup(_MEM_URL, _MEM_URL), "skip")
    with override_transport(_Canned()):
        out["in_memory"] = _report(
            _blocks({"sdk": sdk, "direct": direct, "skip": skip}, blocks, per_block, warmup)
        )
    for close in (close_sdk, close_direct, close_skip):
        close()

    loop = Setup(primary_url=handle.url("micro-p"), secondary_url=handle.url("micro-s"))
    sdk, close_sdk = _sdk_call(loop.secondary_url, in_memory=False)
    direct, close_direct = _router_call(Setup(loop.primary_url, loop.secondary_url), "direct")
    skip, close_skip = _router_call(Setup(loop.primary_url, loop.secondary_url), "skip")
    out["loopback"] = _report(
        _blocks({"sdk": sdk, "direct": direct, "skip": skip}, max(blocks // 2, 1), per_block,
                warmup)
    )  # fmt: skip
    for close in (close_sdk, close_direct, close_skip):
        close()

    out["decision_us"] = _decision_us(mem, int(params.get("decisions", 20000)))
    return out
