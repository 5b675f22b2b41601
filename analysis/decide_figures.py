"""Figures of a decision analysis (``analysis.decide``): the what-ifs' differences
over the parameter sets, PRIM's failure box per what-if, and the value of
information per parameter. Bare ``Figure`` objects on an Agg canvas, no pyplot."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from analysis.decide import FailureBox, OutcomeDecision
from analysis.figures import new_figure
from simulation.outcomes import outcome as registry_outcome

FAIL_COLOUR = "tab:red"
HELP_COLOUR = "#9a9a9a"
BOX_COLOUR = "black"
# How many parameters the value-of-information figure shows (the top ones).
MAX_VOI_PARAMETERS = 16


def make_decision_figures(decision: OutcomeDecision, base: str) -> dict[str, Figure]:
    """The figures of one outcome, keyed by file name: ``effects_<outcome>.png``,
    ``voi_<outcome>.png`` and ``prim_<outcome>_<whatif>.png`` per what-if with a box."""
    name = decision.outcome
    figures = {
        f"effects_{name}.png": effects_figure(decision, base),
        f"voi_{name}.png": voi_figure(decision),
    }
    for whatif, box in decision.boxes.items():
        if box is not None:
            figures[f"prim_{name}_{whatif}.png"] = box_figure(decision, whatif, box)
    return figures


def _unit(name: str) -> str:
    return registry_outcome(name).unit


def effects_figure(decision: OutcomeDecision, base: str) -> Figure:
    """Per what-if, its difference from the baseline in every parameter set (dots),
    their mean (a bar), the 10th-90th percentile (a line), and zero."""
    effects = decision.effects
    whatifs = list(effects.columns)
    better = registry_outcome(decision.outcome).better
    figure = new_figure(width_in=9.0, height_in=1.1 * len(whatifs) + 2.0)
    ax = figure.subplots()
    rng = np.random.default_rng(0)  # jitter only; the same picture every time
    rows = decision.decisions.set_index("option")
    for i, whatif in enumerate(whatifs):
        d = effects[whatif].to_numpy(float)
        good = d > 0 if better == "higher" else d < 0
        y = i + rng.uniform(-0.18, 0.18, len(d))
        ax.scatter(d[good], y[good], s=12, color="tab:blue", alpha=0.7, linewidths=0)
        ax.scatter(d[~good], y[~good], s=12, color=FAIL_COLOUR, alpha=0.7, linewidths=0)
        row = rows.loc[whatif]
        ax.plot([row.diff_p10, row.diff_p90], [i, i], color="black", lw=1.5)
        ax.plot([row.diff_mean] * 2, [i - 0.3, i + 0.3], color="black", lw=2.5)
        ax.annotate(
            f"better in {row.p_improve:.0%}",
            (1.0, i),
            xycoords=("axes fraction", "data"),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    ax.axvline(0.0, color="#555555", lw=0.8, ls="--")
    ax.set_yticks(range(len(whatifs)), [w.removeprefix("whatif_") for w in whatifs])
    ax.set_ylim(-0.6, len(whatifs) - 0.4)
    ax.invert_yaxis()
    ax.set_xlabel(f"what-if minus baseline ({_unit(decision.outcome)}; {better} is better)")
    ax.set_title(
        f"{registry_outcome(decision.outcome).label_for()}: difference from {base} "
        f"in each of {len(effects)} parameter sets",
        fontsize=10,
    )
    ax.legend(
        handles=[
            Line2D([], [], ls="", marker="o", color="tab:blue", label="set where it helps"),
            Line2D([], [], ls="", marker="o", color=FAIL_COLOUR, label="set where it does not"),
            Line2D([], [], color="black", lw=2.5, label="mean"),
            Line2D([], [], color="black", lw=1.5, label="10th-90th percentile"),
        ],
        loc="lower left",
        bbox_to_anchor=(0.0, 1.08),
        ncol=4,
        fontsize=8,
        frameon=False,
    )
    figure.subplots_adjust(left=0.28, right=0.86, top=0.8)
    return figure


def voi_figure(decision: OutcomeDecision) -> Figure:
    """Left: per parameter, the share of each what-if's effect variance that knowing
    it would remove; right: the expected value of partial perfect information of
    the choice, in the outcome's unit."""
    voi, info = decision.voi, decision.evppi
    top = list(info["parameter"])[:MAX_VOI_PARAMETERS]
    shares = voi.groupby("parameter")["variance_share"].max().reindex(top)
    order = list(shares.sort_values(ascending=True, kind="stable").index)
    whatifs = list(dict.fromkeys(voi["whatif"]))
    figure = new_figure(width_in=11.0, height_in=0.35 * len(order) + 2.6)
    left, right = figure.subplots(1, 2, sharey=True)
    palette = colormaps["tab10"]
    height = 0.8 / max(len(whatifs), 1)
    for j, whatif in enumerate(whatifs):
        rows = voi[voi["whatif"] == whatif].set_index("parameter").reindex(order)
        y = np.arange(len(order)) - 0.4 + height * (j + 0.5)
        left.barh(
            y,
            rows["variance_share"],
            height,
            color=palette(j),
            label=whatif.removeprefix("whatif_"),
        )
    left.set_yticks(range(len(order)), order, fontsize=8)
    left.set_xlim(0, 1)
    left.set_xlabel("share of the effect's variance\nremoved if known (0-1)")
    left.set_title("Variance of the what-if's effect", fontsize=10)
    left.legend(fontsize=8, loc="lower right", title="what-if", title_fontsize=8)
    values = info.set_index("parameter").reindex(order)["evppi"]
    right.barh(range(len(order)), values, 0.6, color="tab:purple", label="EVPPI")
    top_value = float(np.nanmax(values.to_numpy(float))) if len(values) else 0.0
    right.set_xlim(0, top_value * 1.1 if top_value > 0 else 1.0)
    if not top_value > 0:
        same = len(info) and float(info["evpi"].iloc[0]) == 0
        right.text(
            0.5,
            0.5,
            "0 for every parameter:\n"
            + ("the same option is best\nin every set" if same else "within the\nestimate's bias"),
            transform=right.transAxes,
            ha="center",
            va="center",
            fontsize=9,
        )
    right.set_xlabel(f"expected gain from knowing it\n({_unit(decision.outcome)})")
    right.set_title("Value of information for the choice", fontsize=10)
    right.legend(fontsize=8, loc="lower right")
    figure.suptitle(
        f"What to measure first: {registry_outcome(decision.outcome).label_for()}", fontsize=11
    )
    right.xaxis.set_major_locator(MaxNLocator(4))
    figure.subplots_adjust(left=0.3, wspace=0.12, top=0.86, bottom=0.16)
    return figure


def _axis_values(x: pd.Series) -> tuple[np.ndarray, list[str] | None]:
    """Numbers to plot a parameter at, and category names for a categorical one."""
    if isinstance(x.dtype, pd.CategoricalDtype):
        return np.asarray(x.cat.codes, dtype=float), [str(c) for c in x.cat.categories]
    return x.to_numpy(float), None


def box_figure(decision: OutcomeDecision, whatif: str, box: FailureBox) -> Figure:
    """Left: PRIM's peeling trajectory (coverage against density), the chosen box
    marked; right: the sets on the box's first two restricted parameters (or the
    first and the next most informative), failures in red, the box drawn."""
    figure = new_figure(width_in=11.0, height_in=4.6)
    left, right = figure.subplots(1, 2)
    t = box.trajectory
    left.plot(t["coverage"], t["density"], "-o", ms=3, color=HELP_COLOUR, label="peeling steps")
    chosen = t[t["chosen"]]
    left.plot(chosen["coverage"], chosen["density"], "o", ms=8, color=BOX_COLOUR, label="box")
    left.set_xlabel("coverage (share of all failures inside the box, 0-1)")
    left.set_ylabel("density (share of sets in the box that fail, 0-1)")
    left.set_xlim(0, 1.02)
    left.set_ylim(0, 1.02)
    left.set_title("PRIM trade-off", fontsize=10)
    left.legend(fontsize=8, loc="lower left")
    x = decision.x.reset_index(drop=True)
    effects = decision.effects[whatif].to_numpy(float)
    better = registry_outcome(decision.outcome).better
    fails = ~(effects > 0 if better == "higher" else effects < 0)
    dims = list(box.restricted)
    others = [
        p for p in decision.voi[decision.voi["whatif"] == whatif]["parameter"] if p not in dims
    ]
    dims = (dims + others)[:2]
    _scatter(right, x, fails, dims, box)
    figure.suptitle(
        f"Where {whatif.removeprefix('whatif_')} fails to improve "
        f"{registry_outcome(decision.outcome).label_for()}: coverage {box.coverage:.0%}, "
        f"density {box.density:.0%}",
        fontsize=11,
    )
    figure.subplots_adjust(wspace=0.35, top=0.86, bottom=0.14)
    return figure


def _scatter(
    ax: Axes, x: pd.DataFrame, fails: np.ndarray, dims: list[str], box: FailureBox
) -> None:
    rng = np.random.default_rng(0)
    xv, xcats = _axis_values(x[dims[0]])
    if len(dims) > 1:
        yv, ycats = _axis_values(x[dims[1]])
    else:
        yv, ycats = rng.uniform(0, 1, len(x)), None
    jx = rng.uniform(-0.15, 0.15, len(x)) if xcats else 0.0
    jy = rng.uniform(-0.15, 0.15, len(x)) if ycats else 0.0
    ax.scatter(
        xv[~fails] + jx if xcats else xv[~fails],
        (yv + jy)[~fails] if ycats else yv[~fails],
        s=14,
        color=HELP_COLOUR,
        label="improves",
    )
    ax.scatter(
        xv[fails] + jx if xcats else xv[fails],
        (yv + jy)[fails] if ycats else yv[fails],
        s=14,
        color=FAIL_COLOUR,
        label="fails to improve",
    )
    limits = box.limits.set_index("parameter")
    x_lo, x_hi = _extent(dims[0], xv, xcats, limits)
    if len(dims) > 1:
        y_lo, y_hi = _extent(dims[1], yv, ycats, limits)
    else:
        y_lo, y_hi = 0.0, 1.0
    ax.add_patch(
        Rectangle(
            (x_lo, y_lo), x_hi - x_lo, y_hi - y_lo, fill=False, ec=BOX_COLOUR, lw=1.5, ls="--"
        )
    )
    ax.set_xlabel(dims[0])
    ax.set_ylabel(dims[1] if len(dims) > 1 else "(spread for legibility)")
    if xcats:
        ax.set_xticks(range(len(xcats)), xcats, fontsize=7, rotation=15)
    if ycats:
        ax.set_yticks(range(len(ycats)), ycats, fontsize=7)
    handles, _ = ax.get_legend_handles_labels()
    handles.append(Patch(fill=False, ec=BOX_COLOUR, ls="--", label="box"))
    ax.legend(
        handles=handles,
        fontsize=8,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=3,
        frameon=False,
    )


def _extent(
    parameter: str, values: np.ndarray, categories: list[str] | None, limits: pd.DataFrame
) -> tuple[float, float]:
    """The box's extent along one axis: its limits, or the data's range where it does
    not restrict the parameter."""
    pad = 0.4 if categories else 0.0
    lo, hi = float(np.min(values)) - pad, float(np.max(values)) + pad
    if parameter not in limits.index:
        return lo, hi
    row = limits.loc[parameter]
    if categories:
        inside = [categories.index(c) for c in str(row["categories"]).split()]
        return min(inside) - 0.4, max(inside) + 0.4
    low = float(row["lower"]) if np.isfinite(row["lower"]) else lo
    high = float(row["upper"]) if np.isfinite(row["upper"]) else hi
    return low, high
