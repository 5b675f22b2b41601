"""Figures of a set of replicates, drawn on bare ``Figure`` objects (Agg canvas).

No pyplot: nothing is registered globally, so figures are freed when dropped and
library users' own matplotlib state is left alone. Bands and intervals show the
5th to 95th percentile across replicates, or the full range when there are too
few replicates for percentiles to mean much.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from analysis.aggregates import (
    BAND_QUANTILES,
    MIN_REPLICATES_FOR_PERCENTILES,
    RunAggregates,
    as_aggregates,
    band_by_week,
    uses_percentiles,
)
from simulation.executors import default_workers
from simulation.outcomes import INDEX_01, outcome
from simulation.runner import ReplicateSet

__all__ = [
    "BAND_QUANTILES",
    "DPI",
    "FIDELITY_DOMAINS",
    "MIN_REPLICATES_FOR_PERCENTILES",
    "TRAJECTORIES",
    "band_by_week",
    "fidelity_domains_figure",
    "make_figures",
    "new_figure",
    "readmission_figure",
    "save_figures",
    "spread_label",
    "trajectories_figure",
]

DPI = 150
PNG_COMPRESS_LEVEL = 1

# (site_weeks column, panel title, y-axis label) for the trajectory figure; the
# outcomes' units are the registry's (simulation.outcomes), the others are states.
TRAJECTORIES: tuple[tuple[str, str, str], ...] = (
    ("met_share", "Met their peer worker", f"{outcome('met_share').unit} recruited so far"),
    (
        "engaged_share",
        "Engaged with peer support",
        f"{outcome('engaged_share').unit} recruited so far",
    ),
    ("fidelity", "Fidelity to peer support principles", f"mean of 4 domains ({INDEX_01})"),
    ("ward_relationship", "Ward staff relationship", INDEX_01),
    ("pw_morale", "Peer worker morale", INDEX_01),
    ("caseload_mean", "Peer worker caseload", "participants per peer worker"),
)

FIDELITY_DOMAINS: tuple[tuple[str, str], ...] = (
    ("fid_relationships", "Building\nrelationships"),
    ("fid_reciprocity", "Reciprocity\nand mutuality"),
    ("fid_leadership", "Leadership, choice\nand control"),
    ("fid_strengths", "Building on\nstrengths"),
)


def make_figures(run: RunAggregates | ReplicateSet) -> dict[str, Figure]:
    """All figures of a run, keyed by file name."""
    replicates = as_aggregates(run)
    return {
        "trajectories.png": trajectories_figure(replicates),
        "readmission.png": readmission_figure(replicates),
        "fidelity_domains.png": fidelity_domains_figure(replicates),
    }


def save_figures(figures: dict[str, Figure], directory: Path) -> list[Path]:
    """Save each figure as PNG under ``directory`` (created if missing).

    The figures are saved from a few threads: Matplotlib draws one figure at a time
    (``Figure.draw`` holds a class-wide lock, and each thread has its own fonts),
    but the PNG encoding, a third to a half of the time, releases the GIL and
    overlaps the next figure's drawing."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / name for name in figures]
    n_threads = min(len(figures), default_workers())
    if n_threads <= 1:
        for path, figure in zip(paths, figures.values(), strict=True):
            _save_png(figure, path)
        return paths
    with ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="savefig") as pool:
        # list(): wait for every figure and re-raise the first error here
        list(pool.map(_save_png, figures.values(), paths))
    return paths


def _save_png(figure: Figure, path: Path) -> None:
    # compress_level 1 (Pillow's default is 6): files about 15% larger, encoding
    # about twice as fast.
    figure.savefig(path, dpi=DPI, pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})


def trajectories_figure(run: RunAggregates | ReplicateSet) -> Figure:
    """(a) Weekly delivery measures per site: median line and band across replicates."""
    replicates = as_aggregates(run)
    panels = [p for p in TRAJECTORIES if p[0] in replicates.bands]
    n_cols = 3
    n_rows = -(-len(panels) // n_cols)
    figure = new_figure(width_in=5.0 * n_cols, height_in=3.6 * n_rows + 0.8)
    axes = figure.subplots(n_rows, n_cols, squeeze=False, sharex=True).ravel()
    colours = _site_colours(list(replicates.site_order))
    for ax, (column, title, unit) in zip(axes, panels, strict=False):
        for site, band in replicates.bands[column].items():
            colour = colours[site]
            ax.fill_between(band.index, band["lo"], band["hi"], color=colour, alpha=0.2, lw=0)
            ax.plot(band.index, band["median"], color=colour, lw=1.5, label=f"site {site}")
        ax.set_title(title)
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    for ax in axes[-n_cols:]:
        ax.set_xlabel("week since recruitment opened")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    figure.suptitle(
        f"{replicates.scenario.name}: delivery by site over time "
        f"(median and {spread_label(replicates.n_replicates)} of replicates)"
    )
    fixed_layout(figure, left=0.75, right=0.15, bottom=1.0, top=0.75, wspace=0.25, hspace=0.3)
    return figure


def readmission_figure(run: RunAggregates | ReplicateSet) -> Figure:
    """(b) Readmission by arm over follow-up, and the ITT odds ratio, across replicates."""
    replicates = as_aggregates(run)
    trial = replicates.trial
    figure = new_figure(width_in=11.0, height_in=4.5)
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.3]})
    arms = [(key, label) for key, label in _readmission_groups(replicates) if key in trial]
    for x, (key, _) in enumerate(arms):
        values = trial[key].dropna().to_numpy(float)
        _points_with_interval(left, x, values, replicates.n_replicates, colour=f"C{x}")
    left.set_xticks(range(len(arms)), [label for _, label in arms])
    left.set_xlim(-0.6, len(arms) - 0.4)
    left.set_ylim(bottom=0)
    scenario = replicates.scenario
    units = " or ".join(dict.fromkeys(outcome(key).unit_for(scenario) for key, _ in arms))
    weeks = scenario.trial.dur_followup_weeks
    # On two lines: on one it ran past the figure's height.
    left.set_ylabel(f"readmitted within {weeks} weeks of discharge\n({units})")
    left.set_title("Readmission by arm")
    left.grid(axis="y", alpha=0.3)
    _odds_ratio_panel(right, trial)
    figure.suptitle(
        f"{replicates.scenario.name}: readmission over {replicates.n_replicates} replicates "
        f"(small dots: replicates; large dot and bar: median and "
        f"{spread_label(replicates.n_replicates)})"
    )
    fixed_layout(figure, left=0.9, right=0.15, bottom=0.85, top=0.7, wspace=0.25)
    return figure


def fidelity_domains_figure(run: RunAggregates | ReplicateSet) -> Figure:
    """(c) The four fidelity domains per site at the end of delivery."""
    replicates = as_aggregates(run)
    end = replicates.end
    sites = list(replicates.site_order)
    colours = _site_colours(sites)
    domains = [(c, label) for c, label in FIDELITY_DOMAINS if c in end]
    figure = new_figure(width_in=10.0, height_in=4.8)
    ax = figure.subplots()
    width = 0.8 / max(len(sites), 1)
    for k, site in enumerate(sites):
        frame = end[end["site"] == site]
        x = np.arange(len(domains)) + (k - (len(sites) - 1) / 2) * width
        stats = [
            _spread(frame[c].dropna().to_numpy(float), replicates.n_replicates) for c, _ in domains
        ]
        means = np.array([s[0] for s in stats])
        errors = np.array([[s[0] - s[1] for s in stats], [s[2] - s[0] for s in stats]])
        ax.bar(x, means, width, color=colours[site], label=f"site {site}")
        ax.errorbar(x, means, yerr=errors, fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
    ax.set_xticks(range(len(domains)), [label for _, label in domains])
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"fidelity domain, peer worker mean ({outcome('fid_relationships').unit})")
    ax.set_title(
        f"{replicates.scenario.name}: fidelity domains at the end of delivery "
        f"(median and {spread_label(replicates.n_replicates)} of replicates)"
    )
    ax.grid(axis="y", alpha=0.3)
    ax.legend(ncol=min(len(sites), 7), loc="upper center", bbox_to_anchor=(0.5, -0.15))
    fixed_layout(figure, left=0.7, right=0.15, bottom=1.15, top=0.45)
    return figure


# --- helpers ---------------------------------------------------------------------------


def _readmission_groups(replicates: RunAggregates) -> list[tuple[str, str]]:
    dose = replicates.scenario.readmission.n_sessions_dose
    return [
        ("readmit_uc", "Usual care"),
        ("readmit_ps", "Peer support\n(all, ITT)"),
        ("readmit_2plus", f"Peer support,\n{dose}+ sessions"),
    ]


def fixed_layout(
    figure: Figure,
    *,
    left: float,
    right: float,
    bottom: float,
    top: float,
    wspace: float = 0.2,
    hspace: float = 0.2,
) -> None:
    """Margins in inches (room for the labels, titles and legends these figures draw),
    set once instead of measured: ``tight_layout`` measured every text and took 0.9 s
    of the 4-5 s of ``peersim run -n 10``. ``wspace`` and ``hspace``: the gaps between
    panels, as fractions of a panel's width and height (Matplotlib's meaning)."""
    width, height = figure.get_size_inches()
    figure.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=bottom / height,
        top=1 - top / height,
        wspace=wspace,
        hspace=hspace,
    )


def new_figure(width_in: float, height_in: float) -> Figure:
    figure = Figure(figsize=(width_in, height_in))
    FigureCanvasAgg(figure)  # attach an Agg canvas explicitly; no global backend choice
    return figure


def _site_colours(sites: list[str]) -> dict[str, tuple[float, ...]]:
    palette = colormaps["tab10" if len(sites) <= 10 else "tab20"]
    return {site: palette(k % palette.N) for k, site in enumerate(sites)}


def spread_label(n_replicates: int) -> str:
    if uses_percentiles(n_replicates):
        lo, hi = BAND_QUANTILES
        return f"{lo:.0%}-{hi:.0%} range"
    return "min-max range"


def _spread(values: np.ndarray, n_replicates: int) -> tuple[float, float, float]:
    """Median and the lower and upper ends of the band, as for the trajectories."""
    if values.size == 0:
        return (np.nan, np.nan, np.nan)
    qs = BAND_QUANTILES if uses_percentiles(n_replicates) else (0.0, 1.0)
    lo, median, hi = np.quantile(values, [qs[0], 0.5, qs[1]])
    return (float(median), float(lo), float(hi))


def _points_with_interval(
    ax: Axes, x: float, values: np.ndarray, n_replicates: int, colour: str
) -> None:
    if values.size == 0:
        return
    # Evenly spread dots (no random jitter: figures are reproducible byte for byte).
    offsets = np.linspace(-0.15, 0.15, values.size) if values.size > 1 else np.zeros(1)
    ax.scatter(x + offsets, values, s=10, color=colour, alpha=0.4, lw=0)
    median, lo, hi = _spread(values, n_replicates)
    ax.errorbar(
        [x + 0.3], [median], yerr=[[median - lo], [hi - median]], fmt="o", color=colour, capsize=4
    )


def _odds_ratio_panel(ax: Axes, trial: pd.DataFrame) -> None:
    """Each replicate's ITT odds ratio with its 95% confidence interval."""
    if "itt_or" not in trial:
        ax.set_visible(False)
        return
    rows = trial.dropna(subset=["itt_or"])
    x = rows["replicate"].to_numpy() if "replicate" in rows else np.arange(len(rows))
    estimate = rows["itt_or"].to_numpy(float)
    if {"itt_or_lo", "itt_or_hi"} <= set(rows.columns):
        errors = np.array(
            [
                estimate - rows["itt_or_lo"].to_numpy(float),
                rows["itt_or_hi"].to_numpy(float) - estimate,
            ]
        )
        ax.errorbar(x, estimate, yerr=errors, fmt="o", color="C3", ms=4, capsize=2, lw=0.8)
    else:
        ax.plot(x, estimate, "o", color="C3", ms=4)
    ax.axhline(1.0, color="black", lw=0.8, ls="--", label="no effect (OR = 1)")
    if estimate.size:
        ax.axhline(float(np.median(estimate)), color="C3", lw=1, label="median across replicates")
    ax.set_xlabel("replicate")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    itt = outcome("itt_or")
    ax.set_ylabel(f"{itt.unit}, peer support vs usual care")
    ax.set_title("ITT odds ratio of readmission (95% CI per replicate)")
    ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)
