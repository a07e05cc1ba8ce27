"""``failover drill --chart FILE.png``: latency and serving provider over time.

One panel per scenario: each request is a dot at its start time (0 = the fault starts)
and its latency, coloured by the provider that answered it; deferred and lost requests
have their own marks. Lines show when the fault started, when the faulty provider's
breaker opened (detect), when requests succeeded again (RTO) and, in the recovery
scenario, when the primary came back. matplotlib is optional (``failover[chart]``).
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._drill import DrillReport, ScenarioResult

__all__ = ["chart_available", "draw_chart"]

_PALETTE = ["#1f77b4", "#2ca02c", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#bcbd22"]


def chart_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _panel(ax: Any, result: ScenarioResult, colours: dict[str, str], *, show_route: bool
           ) -> None:
    ms = 1000.0
    for outcome, marker, size in (("ok", "o", 18), ("fallback", "s", 22)):
        for provider, colour in colours.items():
            points = [r for r in result.records
                      if r.outcome == outcome and r.provider == provider]
            if points:
                ax.scatter([r.t_s * ms for r in points], [r.latency_s * ms for r in points],
                           s=size, c=colour, marker=marker, zorder=3, linewidths=0)
    deferred = [r for r in result.records if r.outcome == "deferred"]
    lost = [r for r in result.records if r.outcome == "lost"]
    if deferred:
        ax.scatter([r.t_s * ms for r in deferred], [r.latency_s * ms for r in deferred],
                   s=26, c="#ff7f0e", marker="D", zorder=3, linewidths=0)
    if lost:
        ax.scatter([r.t_s * ms for r in lost], [r.latency_s * ms for r in lost],
                   s=40, c="#d62728", marker="x", zorder=4)
    ax.axvline(0, color="#d62728", linestyle="--", linewidth=1)
    if result.detect_s is not None:
        ax.axvline(result.detect_s * ms, color="#ff7f0e", linestyle=":", linewidth=1.2)
    if result.rto_s is not None:
        ax.axvline(result.rto_s * ms, color="#2ca02c", linestyle="-", linewidth=1.2, alpha=0.8)
    if result.heal_s is not None:
        ax.axvline(result.heal_s * ms, color="#1f77b4", linestyle="--", linewidth=1)
    verdict = "met" if result.met else "MISSED"
    rto = "never" if result.rto_s is None else f"{result.rto_s * ms:.0f} ms"
    title = f"{result.scenario.title}\nRTO {rto}, lost {result.lost}: {verdict}"
    if result.scenario.recovery:
        back = "never" if result.failback_s is None else f"{result.failback_s * ms:.0f} ms"
        title = f"{result.scenario.title} (primary back after {back})\nRTO {rto}, " \
                f"lost {result.lost}: {verdict}"
    if show_route:
        title = f"[{result.route}] " + title
    ax.set_title(title, fontsize=9, color="#222222" if result.met else "#d62728")
    ax.set_xlabel("ms since the fault started", fontsize=8)
    ax.set_ylabel("latency (ms)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.25)


def draw_chart(report: DrillReport, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    results = report.results
    providers: list[str] = []
    for result in results:
        for record in result.records:
            if record.provider and record.provider not in providers:
                providers.append(record.provider)
    colours = {p: _PALETTE[i % len(_PALETTE)] for i, p in enumerate(providers)}

    cols = min(4, max(1, len(results)))
    rows = (len(results) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows + 0.9), squeeze=False)
    show_route = len({r.route for r in results}) > 1
    for ax, result in zip(axes.flat, results, strict=False):
        _panel(ax, result, colours, show_route=show_route)
    for ax in list(axes.flat)[len(results):]:
        ax.axis("off")

    handles = [Line2D([], [], marker="o", linestyle="", color=c, label=f"served by {p}")
               for p, c in colours.items()]
    handles += [
        Line2D([], [], marker="s", linestyle="", color="#555555", label="python fallback"),
        Line2D([], [], marker="D", linestyle="", color="#ff7f0e", label="deferred"),
        Line2D([], [], marker="x", linestyle="", color="#d62728", label="lost"),
        Line2D([], [], color="#d62728", linestyle="--", label="fault starts"),
        Line2D([], [], color="#ff7f0e", linestyle=":", label="detected"),
        Line2D([], [], color="#2ca02c", label="recovered (RTO)"),
        Line2D([], [], color="#1f77b4", linestyle="--", label="primary back"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8,
               frameon=False)
    verdict = "all objectives met" if report.passed else "objectives MISSED"
    clock = ", simulated time" if report.simulated_time else ""
    fig.suptitle(f"failover drill: {report.config}: {verdict} "
                 f"(RTO {report.rto:g} s, RPO {report.rpo}{clock})", fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
