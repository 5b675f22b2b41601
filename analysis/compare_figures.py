"""Figures of a paired comparison: a forest plot of the differences and baseline
vs what-if trajectories per site (drawn like ``analysis.figures``: bare ``Figure``
objects on an Agg canvas, no pyplot)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.compare import OVERALL, paired_sites
from analysis.figures import band_by_week, new_figure, spread_label
from simulation.outcomes import COMPARED, heading
from simulation.outcomes import OUTCOMES as REGISTRY

# The outcomes of the forest plot's main panel (shares and 0-1 scores) and of its
# odds ratio panel, in the order of the comparison table.
FOREST_MAIN: tuple[str, ...] = tuple(k for k in COMPARED if REGISTRY[k].per_site)
FOREST_ODDS: tuple[str, ...] = ("itt_or",)
# (site_weeks column, panel title, y-axis label) of the trajectory figure.
TRAJECTORY_MEASURES: tuple[tuple[str, str, str], ...] = tuple(
    (name, title, f"{title} ({REGISTRY[name].unit})")
    for name, title in (("engaged_share", "engaged"), ("fidelity", "fidelity"))
)
BASE_COLOUR = "#4d4d4d"
WHATIF_COLOUR = "tab:orange"
OVERALL_COLOUR = "black"
# Panels (the whole trial, then sites) per row of the trajectory figure, and the
# most sites it shows.
PANELS_PER_ROW = 8
MAX_TRAJECTORY_SITES = 15
# More sites than this in a forest plot: grey dots without a legend entry each.
MAX_LABELLED_SITES = 10
MANY_SITES_COLOUR = "#8c8c8c"
WHOLE_TRIAL = "whole trial"


def make_comparison_figures(
    comparison: pd.DataFrame,
    site_weeks: pd.DataFrame,
    base: str,
    whatifs: list[str],
    n_replicates: int,
) -> dict[str, Figure]:
    """Two figures per what-if, keyed by file name: ``forest_<whatif>.png`` and
    ``trajectories_<whatif>.png``."""
    figures = {}
    for whatif in whatifs:
        rows = comparison[comparison["whatif"] == whatif]
        figures[f"forest_{whatif}.png"] = forest_figure(rows, base, whatif, n_replicates)
        figures[f"trajectories_{whatif}.png"] = trajectories_figure(
            site_weeks, base, whatif, n_replicates
        )
    return figures


def forest_figure(rows: pd.DataFrame, base: str, whatif: str, n_replicates: int) -> Figure:
    """Mean paired difference (what-if minus baseline) and its 95% confidence
    interval per outcome: the whole trial in black, each site below it.

    Only sites both scenarios have are drawn (the others have no pairs). Up to
    ``MAX_LABELLED_SITES`` sites each get a colour and a legend entry; more are
    drawn as grey dots, which still show the spread of the sites.
    """
    scopes = paired_sites(rows)
    labelled = len(scopes) <= MAX_LABELLED_SITES
    colours = _colours(scopes) if labelled else dict.fromkeys(scopes, MANY_SITES_COLOUR)
    present = set(rows["outcome"])
    main = [o for o in FOREST_MAIN if o in present]
    odds = [o for o in FOREST_ODDS if o in present]
    crowding = max(1.0, min(len(scopes) + 1, MAX_LABELLED_SITES + 2) / 8)
    height = 0.42 * (len(main) + 1.4 * len(odds)) * crowding + 2.4
    figure = new_figure(width_in=10.0, height_in=height)
    ratios = [max(len(main), 1), max(len(odds), 0.01) * 1.4]
    top, bottom = figure.subplots(2, 1, gridspec_kw={"height_ratios": ratios})
    _forest_panel(top, rows, main, scopes, colours)
    top.set_xlabel(f"difference in {_units(main)} (what-if minus baseline)")
    if odds:
        _forest_panel(bottom, rows, odds, scopes, colours)
        bottom.set_xlabel(f"difference in {_units(odds)} (what-if minus baseline)")
    else:
        bottom.set_visible(False)
    handles = [Line2D([], [], color=OVERALL_COLOUR, marker="D", lw=2, label="whole trial")]
    if labelled:
        handles += [
            Line2D([], [], color=colours[s], marker="o", ms=4, lw=1, label=f"site {s}")
            for s in scopes
        ]
    elif scopes:
        handles.append(
            Line2D(
                [], [], color=MANY_SITES_COLOUR, marker="o", ms=4, lw=1,
                label=f"each of {len(scopes)} sites",
            )
        )  # fmt: skip
    figure.legend(
        handles=handles, loc="lower center", ncol=min(len(handles), 8), frameon=False, fontsize=9
    )
    unpaired = rows["scope"].astype(str).nunique() - 1 - len(scopes)
    note = (
        f"\n({unpaired} sites only one of the two scenarios has are not shown)" if unpaired else ""
    )
    figure.suptitle(
        f"What-if {whatif!r} vs baseline {base!r}: mean paired difference and 95% CI\n"
        f"over {n_replicates} replicates with common random numbers (replicate i of both "
        f"uses the same seed){note}",
        fontsize=11,
    )
    figure.tight_layout(rect=(0, 0.06 * min(1.0, 8 / height) + 0.01, 1, 1))
    return figure


def _forest_panel(
    ax: Axes,
    rows: pd.DataFrame,
    outcomes: list[str],
    scopes: list[str],
    colours: dict[str, str],
) -> None:
    cells = {(str(r.outcome), str(r.scope)): r for r in rows.itertuples(index=False)}
    members = [OVERALL, *scopes]
    # Within an outcome's band: the whole trial on top, then the sites.
    offsets = np.linspace(-0.3, 0.3, len(members)) if len(members) > 1 else np.zeros(1)
    for y, outcome in enumerate(outcomes):
        for offset, scope in zip(offsets, members, strict=True):
            cell = cells.get((outcome, scope))
            if cell is None or not math.isfinite(cell.diff_mean):
                continue
            mean = float(cell.diff_mean)
            lo, hi = float(cell.diff_lo), float(cell.diff_hi)
            overall = scope == OVERALL
            colour = OVERALL_COLOUR if overall else colours[scope]
            if math.isfinite(lo) and math.isfinite(hi):
                ax.hlines(y + offset, lo, hi, color=colour, lw=2.2 if overall else 1.0)
            ax.plot(
                [mean],
                [y + offset],
                marker="D" if overall else "o",
                ms=6 if overall else 3.5,
                color=colour,
                ls="none",
            )
        if y > 0:
            ax.axhline(y - 0.5, color="0.85", lw=0.6)
    ax.axvline(0.0, color="black", lw=0.8, ls="--")
    ax.set_yticks(range(len(outcomes)), [heading(o) for o in outcomes])
    ax.set_ylim(len(outcomes) - 0.5, -0.5)
    ax.tick_params(axis="y", length=0)
    ax.grid(axis="x", alpha=0.3)
    # A symmetric axis keeps zero in the middle, so the direction reads at a glance.
    extent = _extent(rows[rows["outcome"].isin(outcomes)])
    ax.set_xlim(-extent, extent)


def _units(outcomes: list[str]) -> str:
    """A panel's unit; where its outcomes have several, the tick labels give each."""
    units = list(dict.fromkeys(REGISTRY[o].unit for o in outcomes))
    return units[0] if len(units) == 1 else "each outcome's unit"


def _colours(sites: list[str]) -> dict[str, str]:
    """The site colours of ``analysis.figures``, as hex strings."""
    palette = colormaps["tab10" if len(sites) <= 10 else "tab20"]
    return {site: to_hex(palette(k % palette.N)) for k, site in enumerate(sites)}


def _extent(rows: pd.DataFrame) -> float:
    values = rows[["diff_lo", "diff_hi", "diff_mean"]].to_numpy(float)
    finite = np.abs(values[np.isfinite(values)])
    largest = float(finite.max()) if finite.size else 0.0
    return largest * 1.15 if largest > 0 else 0.01


def trajectories_figure(
    site_weeks: pd.DataFrame, base: str, whatif: str, n_replicates: int
) -> Figure:
    """Engaged share and fidelity over the weeks of delivery, for the whole trial
    and each site both scenarios have (up to ``MAX_TRAJECTORY_SITES``): median and
    band across replicates, baseline and what-if on the same axes.

    The whole trial's engaged share weighs the sites by their peer support arm
    recruited so far; its fidelity is the mean over sites, as in the comparison.
    """
    frames = {label: site_weeks[site_weeks["scenario"] == label] for label in (base, whatif)}
    site_lists = {label: list(dict.fromkeys(f["site"].astype(str))) for label, f in frames.items()}
    common = [s for s in site_lists[base] if s in set(site_lists[whatif])]
    shown = common[:MAX_TRAJECTORY_SITES]
    panels: list[tuple[str, dict[str, pd.DataFrame]]] = [
        (WHOLE_TRIAL, {label: _whole_trial(f) for label, f in frames.items()})
    ]
    for site in shown:
        panels.append(
            (
                f"site {site}",
                {label: f[f["site"].astype(str) == site] for label, f in frames.items()},
            )
        )
    chunks = [panels[i : i + PANELS_PER_ROW] for i in range(0, len(panels), PANELS_PER_ROW)]
    n_cols = max(len(c) for c in chunks)
    n_rows = len(chunks) * len(TRAJECTORY_MEASURES)
    figure = new_figure(width_in=max(2.4 * n_cols + 1.2, 9.0), height_in=2.3 * n_rows + 1.6)
    axes = figure.subplots(n_rows, n_cols, squeeze=False, sharex=True)
    # The baseline is drawn last, dashed, so where the two coincide both stay visible.
    styles = {whatif: (WHATIF_COLOUR, "-", 1.8), base: (BASE_COLOUR, "--", 1.2)}
    for c, chunk in enumerate(chunks):
        for m, (column, title, unit) in enumerate(TRAJECTORY_MEASURES):
            row = axes[c * len(TRAJECTORY_MEASURES) + m]
            for k in range(n_cols):
                ax = row[k]
                if k >= len(chunk):
                    ax.set_visible(False)
                    continue
                name, by_label = chunk[k]
                for label, (colour, style, width) in styles.items():
                    frame = by_label[label]
                    if frame.empty:
                        continue
                    band = band_by_week(frame, column, n_replicates)
                    ax.fill_between(
                        band.index, band["lo"], band["hi"], color=colour, alpha=0.18, lw=0
                    )
                    ax.plot(band.index, band["median"], color=colour, ls=style, lw=width)
                ax.set_ylim(0, 1)
                ax.set_title(f"{name}: {title}", fontsize=9)
                ax.grid(alpha=0.3)
                ax.tick_params(labelsize=8)
                if k == 0:
                    ax.set_ylabel(unit, fontsize=8)
                else:
                    ax.tick_params(labelleft=False)
    for ax in axes[-1]:
        ax.set_xlabel("week", fontsize=8)
    handles = [
        Line2D([], [], color=BASE_COLOUR, ls="--", lw=1.5, label=f"baseline {base!r}"),
        Line2D([], [], color=WHATIF_COLOUR, lw=2, label=f"what-if {whatif!r}"),
    ]
    figure.legend(handles=handles, loc="lower center", ncol=2, frameon=False)
    left_out = len(set(site_lists[base]) | set(site_lists[whatif])) - len(shown)
    note = f"; {left_out} sites not shown (not in both, or beyond {MAX_TRAJECTORY_SITES})"
    figure.suptitle(
        f"What-if {whatif!r} vs baseline {base!r}: engaged share and fidelity over time\n"
        f"(median and {spread_label(n_replicates)} of {n_replicates} replicates"
        f"{note if left_out else ''})",
        fontsize=11,
    )
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    return figure


def _whole_trial(site_weeks: pd.DataFrame) -> pd.DataFrame:
    """Per replicate and week: engaged share of the whole peer support arm recruited
    so far, and fidelity as the mean over sites."""
    if site_weeks.empty:
        return pd.DataFrame(columns=["replicate", "week", "engaged_share", "fidelity"])
    frame = site_weeks.assign(
        engaged_n=site_weeks["engaged_share"].fillna(0.0) * site_weeks["n_recruited_ps"]
    )
    grouped = frame.groupby(["replicate", "week"], sort=True)
    recruited = grouped["n_recruited_ps"].sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        engaged = grouped["engaged_n"].sum() / recruited.where(recruited > 0)
    whole = pd.DataFrame({"engaged_share": engaged, "fidelity": grouped["fidelity"].mean()})
    return whole.reset_index()
