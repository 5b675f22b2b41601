"""A short plain-text summary of a set of replicates.

Every figure is the mean across replicates with the interval holding the middle
95% of replicates (2.5th to 97.5th percentile): the spread of what the simulated
trial could have shown, not a confidence interval of the mean.
"""

from __future__ import annotations

import math

import pandas as pd

from analysis.aggregates import RunAggregates, as_aggregates, end_of_delivery
from simulation import Scenario
from simulation.outcomes import outcome, units_line
from simulation.runner import ReplicateSet

__all__ = [
    "INTERVAL_QUANTILES",
    "SITE_MEASURES",
    "TRIAL_MEASURES",
    "align_columns",
    "describe",
    "end_of_delivery",
    "format_summary",
    "site_summary",
    "trial_measures",
    "trial_summary",
]

INTERVAL_QUANTILES: tuple[float, float] = (0.025, 0.975)

# (outcome in site_weeks, short heading) per site, read at the last week of delivery;
# a line under the table gives their units (simulation.outcomes).
SITE_MEASURES: tuple[tuple[str, str], ...] = (
    ("met_share", "met share"),
    ("engaged_share", "engaged share"),
    ("fidelity", "fidelity"),
)
# The trial outcomes of the summary, read from ``Results.trial``.
TRIAL_MEASURES: tuple[str, ...] = (
    "readmit_uc",
    "readmit_ps",
    "itt_or",
    "readmit_2plus",
    "met_share",
    "engaged_share",
)


def trial_measures(scenario: Scenario) -> tuple[tuple[str, str], ...]:
    """(key in ``Results.trial``, label with unit) of the trial outcomes in the summary."""
    return tuple((name, outcome(name).heading(scenario)) for name in TRIAL_MEASURES)


def describe(values: pd.Series) -> tuple[float, float, float]:
    """Mean and 95% interval of one measure across replicates (NaNs ignored)."""
    clean = values.dropna().astype(float)
    if clean.empty:
        return (math.nan, math.nan, math.nan)
    lo, hi = clean.quantile(list(INTERVAL_QUANTILES))
    return (float(clean.mean()), float(lo), float(hi))


def site_summary(replicates: RunAggregates | ReplicateSet) -> pd.DataFrame:
    """One row per site; columns ``<measure>``, ``<measure>_lo``, ``<measure>_hi``."""
    end = as_aggregates(replicates).end
    rows = []
    for site, frame in end.groupby("site", observed=True, sort=False):
        row: dict[str, object] = {"site": site}
        for column, _ in SITE_MEASURES:
            row[column], row[f"{column}_lo"], row[f"{column}_hi"] = describe(frame[column])
        rows.append(row)
    return pd.DataFrame(rows)


def trial_summary(replicates: RunAggregates | ReplicateSet) -> pd.DataFrame:
    """One row per trial statistic present: ``key, label, mean, lo, hi``."""
    rows = [
        (key, label, *describe(replicates.trial[key]))
        for key, label in trial_measures(replicates.scenario)
        if key in replicates.trial
    ]
    return pd.DataFrame(rows, columns=["key", "label", "mean", "lo", "hi"])


def format_summary(run: RunAggregates | ReplicateSet) -> str:
    """The summary ``peersim run`` prints: per-site delivery, then trial outcomes."""
    replicates = as_aggregates(run)
    n = replicates.n_replicates
    header = (
        f"Scenario {replicates.scenario.name!r}: {n} replicate{'s' if n != 1 else ''}, "
        f"master seed {replicates.master_seed}. "
        "Mean [95% interval across replicates]."
    )
    sites = site_summary(replicates)
    site_rows = [
        [str(row["site"])] + [_cell(row, column) for column, _ in SITE_MEASURES]
        for _, row in sites.iterrows()
    ]
    site_table = "\n".join(
        [
            align_columns(["site", *(heading for _, heading in SITE_MEASURES)], site_rows),
            units_line(SITE_MEASURES),
        ]
    )
    trial_rows = [
        [row["label"], _estimate(row["mean"], row["lo"], row["hi"])]
        for _, row in trial_summary(replicates).iterrows()
    ]
    trial_table = align_columns(["trial outcome", "estimate"], trial_rows)
    return "\n".join(
        [header, "", "Per site, at the end of delivery", site_table, "", "Trial", trial_table]
    )


def _cell(row: pd.Series, column: str) -> str:
    return _estimate(row[column], row[f"{column}_lo"], row[f"{column}_hi"])


def _estimate(mean: float, lo: float, hi: float) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"


def align_columns(headings: list[str], rows: list[list[str]]) -> str:
    """Left-aligned text columns with a rule under the headings."""
    widths = [max(len(r[i]) for r in [headings, *rows]) for i in range(len(headings))]

    def line(cells: list[str]) -> str:
        cells_padded = (cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        return "  ".join(cells_padded).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headings), rule, *(line(r) for r in rows)])
