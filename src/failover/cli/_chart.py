"""``failover drill --chart FILE.png``: latency and serving provider over time.

One panel per scenario: each request is a dot at its start time (0 = the fault starts)
and its latency, coloured by the provider that answered it; deferred and lost requests
have their own marks. Lines show when the fault started, when it was detected (the first
alerting event), when the route recovered (the start of the first run of requests served
normally) and, in the recovery scenario, when the primary was healthy again (the title
says how long it then took to get its traffic back). matplotlib is optional
(``failover[chart]``).
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from failover.drills import DrillReport, ScenarioResult

__all__ = ["chart_available", "draw_chart", "legend_labels", "panel_title", "positions",
           "serving_providers"]

#: How each outcome but "served" (coloured by provider) is drawn: colour, marker, size.
_MARKS = {"degraded": ("#555555", "s", 22), "deferred": ("#ff7f0e", "D", 26),
          "failed": ("#7f7f7f", "x", 30), "lost": ("#d62728", "X", 44)}
#: The vertical lines, in this order: where the fault started, was detected, recovered,
#: and was repaired (healed, or the key rotated).
_LINES: tuple[tuple[str, str, Any], ...] = (
    ("fault starts", "#d62728", "--"), ("detected", "#ff7f0e", ":"),
    ("recovered", "#2ca02c", "-"), ("primary healthy again", "#1f77b4", "--"))
_PALETTE = ["#1f77b4", "#2ca02c", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#bcbd22"]


def chart_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def positions(result: ScenarioResult) -> tuple[dict[int, float], str]:
    """Each request's x (by ``id``) and the axis label: ms since the fault, or, when no
    simulated time passed at all (instant answers), the request's order, so the panel
    shows every request instead of one point."""
    times = [r.t_s for r in result.measured]
    if len(times) > 1 and max(times) - min(times) < 1e-6:
        order = {id(r): float(i) for i, r in enumerate(result.measured)}
        return ({id(r): order.get(id(r), -1.0) for r in result.requests},
                "requests since the fault started (no simulated time passed)")
    return {id(r): r.t_s * 1000.0 for r in result.requests}, "ms since the fault started"


def panel_title(result: ScenarioResult, show_route: bool = False) -> str:
    verdict = "met" if result.met else "MISSED"
    recover = "never" if result.recover_s is None else f"{result.recover_s * 1000:.0f} ms"
    title = f"{result.scenario.title}\nrecovered {recover}, lost {result.lost}: {verdict}"
    if result.scenario.midway:
        back = "never" if result.failback_s is None else f"{result.failback_s * 1000:.0f} ms"
        repaired = "the key was rotated" if result.scenario.rotation else "the primary healed"
        title += f"\ntraffic back {back} after {repaired}"
    return f"[{result.route}] {title}" if show_route else title


def serving_providers(report: DrillReport) -> list[str]:
    """The providers that served a request, in order of appearance (a manual fallback
    is "degraded", never a provider)."""
    found: list[str] = []
    for result in report.results:
        for r in result.requests:
            if r.outcome == "served" and r.provider and r.provider not in found:
                found.append(r.provider)
    return found


def legend_labels(report: DrillReport) -> list[str]:
    return ([f"served by {p}" for p in serving_providers(report)] + list(_MARKS)
            + [label for label, _colour, _style in _LINES])


def _panel(ax: Any, result: ScenarioResult, colours: dict[str, str], *, show_route: bool
           ) -> None:
    ms = 1000.0
    x, label = positions(result)
    for provider, colour in colours.items():
        points = [r for r in result.requests
                  if r.outcome == "served" and r.provider == provider]
        if points:
            ax.scatter([x[id(r)] for r in points], [r.latency_s * ms for r in points],
                       s=18, c=colour, marker="o", zorder=3, linewidths=0)
    for outcome, (colour, marker, size) in _MARKS.items():
        points = [r for r in result.requests if r.outcome == outcome]
        if points:
            ax.scatter([x[id(r)] for r in points], [r.latency_s * ms for r in points],
                       s=size, c=colour, marker=marker, zorder=4, linewidths=1.2)
    if label.startswith("ms"):  # the marks are times: where the definitions put them
        marks = (0.0, result.detect_s, result.recover_s, result.heal_s)
        for at, (_label, colour, style) in zip(marks, _LINES, strict=True):
            if at is not None:
                ax.axvline(at * ms, color=colour, linestyle=style, linewidth=1.1)
    ax.set_xlabel(label, fontsize=8)
    ax.set_title(panel_title(result, show_route), fontsize=9,
                 color="#222222" if result.met else "#d62728")
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
    providers = serving_providers(report)
    colours = {p: _PALETTE[i % len(_PALETTE)] for i, p in enumerate(providers)}

    cols = min(4, max(1, len(results)))
    rows = (len(results) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows + 0.9), squeeze=False)
    show_route = len({r.route for r in results}) > 1
    for ax, result in zip(axes.flat, results, strict=False):
        _panel(ax, result, colours, show_route=show_route)
    for ax in list(axes.flat)[len(results):]:
        ax.axis("off")

    handles = [Line2D([], [], marker="o", linestyle="", color=colours[p],
                      label=f"served by {p}") for p in providers]
    handles += [Line2D([], [], marker=marker, linestyle="", color=colour, label=outcome)
                for outcome, (colour, marker, _size) in _MARKS.items()]
    handles += [Line2D([], [], color=colour, linestyle=style, label=label)
                for label, colour, style in _LINES]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8,
               frameon=False)
    verdict = "all objectives met" if report.passed else "objectives MISSED"
    clock = ", simulated time" if report.simulated_time else ""
    fig.suptitle(f"failover drill: {report.config}: {verdict} "
                 f"(RTO {report.rto:g} s, RPO {report.rpo}{clock})", fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
