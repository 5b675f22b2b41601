"""Figures of the economic summary: the cost-effectiveness plane and the
acceptability curve (drawn like ``analysis.figures``: bare ``Figure`` objects)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from analysis.economics import Economics, acceptability, willingness_grid
from analysis.figures import new_figure


def _colours(n: int) -> list[str]:
    cmap = colormaps["tab10"]
    return [to_hex(cmap(k % 10)) for k in range(n)]


# Money on the axes in whole units with thousands separators, never as 1e6 offsets.
_THOUSANDS = FuncFormatter(lambda value, _: f"{value:,.0f}")


def ce_plane_figure(summaries: Sequence[Economics], base: str, replicates_are: str) -> Figure:
    """Each what-if's replicates on the plane of readmissions avoided against net
    incremental cost (discounted), its mean as a cross."""
    figure = new_figure(width_in=8.0, height_in=6.0)
    ax = figure.subplots()
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(0, color="grey", lw=0.8)
    handles = []
    for s, colour in zip(summaries, _colours(len(summaries)), strict=True):
        ax.scatter(s.delta_avoided, s.delta_cost, s=14, color=colour, alpha=0.5)
        ax.scatter(
            [s.readmissions_avoided[0]], [s.incremental_cost[0]], marker="X", s=90, color=colour
        )
        handles.append(
            Line2D(
                [], [], color=colour, marker="o", lw=0, label=f"{s.whatif}: each {replicates_are}"
            )
        )
    handles.append(Line2D([], [], color="black", marker="X", lw=0, ms=9, label="mean"))
    cur = summaries[0].currency if summaries else ""
    rate = summaries[0].discount_rate if summaries else 0.0
    ax.set_xlabel("readmissions avoided over the horizon (n, baseline minus what-if)")
    ax.set_ylabel(f"net incremental cost ({cur}, discounted at {rate:.1%} a year)")
    ax.yaxis.set_major_formatter(_THOUSANDS)
    ax.text(0.99, 0.01, "saves money, fewer readmissions", transform=ax.transAxes,
            ha="right", va="bottom", fontsize=8, color="grey")  # fmt: skip
    ax.text(0.01, 0.99, "costs more, more readmissions", transform=ax.transAxes,
            ha="left", va="top", fontsize=8, color="grey")  # fmt: skip
    ax.legend(handles=handles, loc="upper right", fontsize=8, frameon=False)
    figure.suptitle(
        f"Cost-effectiveness plane: what-ifs against baseline {base!r}\n"
        f"one point per {replicates_are} (paired by common random numbers)",
        fontsize=11,
    )
    return figure


def acceptability_figure(summaries: Sequence[Economics], base: str, replicates_are: str) -> Figure:
    """Share of replicates in which each what-if is worth it, by the willingness to
    pay per readmission avoided."""
    figure = new_figure(width_in=8.0, height_in=5.0)
    ax = figure.subplots()
    grid = willingness_grid(summaries)
    for s, colour in zip(summaries, _colours(len(summaries)), strict=True):
        ax.plot(grid, acceptability(s.delta_cost, s.delta_avoided, grid), color=colour,
                label=s.whatif)  # fmt: skip
    cur = summaries[0].currency if summaries else ""
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(float(grid[0]), float(grid[-1]) if grid[-1] > grid[0] else 1.0)
    ax.set_xlabel(f"willingness to pay per readmission avoided ({cur})")
    ax.xaxis.set_major_formatter(_THOUSANDS)
    ax.set_ylabel(f"share of {replicates_are}s in which the what-if is worth it")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    figure.suptitle(
        f"Cost-effectiveness acceptability curve against baseline {base!r}\n"
        "worth it: willingness x readmissions avoided > net incremental cost (discounted)",
        fontsize=11,
    )
    return figure


def economics_figures(
    summaries: Sequence[Economics], base: str, replicates_are: str
) -> dict[str, Figure]:
    """``ce_plane.png`` and ``acceptability.png``."""
    if not summaries:
        return {}
    return {
        "ce_plane.png": ce_plane_figure(summaries, base, replicates_are),
        "acceptability.png": acceptability_figure(summaries, base, replicates_are),
    }


__all__ = ["acceptability_figure", "ce_plane_figure", "economics_figures", "np"]
