"""From a comparison's replicate tables to what ``peersim compare`` writes and prints:
the paired outcomes, the resources (and, with a costs file, money), ``brief.md``
and the figures.

Shared by the command line (``analysis.cli.compare``) and the app's planner
(``analysis.app.planner``), so the two give the same numbers from the same runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from analysis.compare import paired_differences, replicate_outcomes
from analysis.economics import (
    DEFAULT_DISCOUNT_RATE,
    cost_values,
    economics,
    economics_table,
    resource_comparison,
    resource_values,
)
from analysis.economics_report import (
    brief_markdown,
    discount_text,
    format_economics,
    format_resources,
    replicate_word,
)
from scenarios.costs import Costs
from simulation import Scenario

__all__ = [
    "DEFAULT_DISCOUNT_RATE",
    "Money",
    "comparison_figures",
    "money_comparison",
    "outcome_comparison",
]


@dataclass
class Money:
    """The resources (and, with a costs file, money) of a comparison, ready to write."""

    values: pd.DataFrame
    comparison: pd.DataFrame
    summaries: list[Any]
    table: pd.DataFrame | None
    printed: str
    brief: str
    replicates_are: str


def outcome_comparison(
    scenarios: Mapping[str, Scenario], base: str, whatifs: Sequence[str], tables: Mapping[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every outcome of every replicate (long) and its paired comparison, from the
    ``trial``, ``site_weeks`` and ``readmission_counts`` tables of
    ``analysis.compare.COMPARE_TABLES``."""
    outcomes = replicate_outcomes(
        scenarios, tables["trial"], tables["site_weeks"], tables["readmission_counts"]
    )
    return outcomes, paired_differences(outcomes, base, list(whatifs))


def money_comparison(
    scenarios: Mapping[str, Scenario],
    base: str,
    whatifs: Sequence[str],
    resources: pd.DataFrame,
    *,
    n: int,
    seed: int,
    costs: Costs | None = None,
    rate: float = DEFAULT_DISCOUNT_RATE,
    posterior: bool = False,
) -> Money:
    """The resources of the ``resources`` table (``analysis.resources.resource_table``
    of every replicate) compared, priced with ``costs`` if given (discounted at
    ``rate`` a year), the printed text and ``brief.md``, as ``peersim compare``
    writes them. ``posterior``: the replicates each drew calibrated parameters."""
    whatifs = list(whatifs)
    values = resource_values(resources, costs)
    if costs is not None:
        values = pd.concat([values, cost_values(resources, costs, rate)], ignore_index=True)
    comparison = resource_comparison(values, base, whatifs)
    summaries = (
        economics(comparison, values, base, whatifs, costs=costs, rate=rate, seed=seed)
        if costs is not None
        else []
    )
    service = scenarios[base].mode == "service"
    replicates_are = "posterior draw" if posterior else replicate_word(service)
    n_years = int(resources["year"].max()) if len(resources) else 0
    start = "the start of the service's preparation" if service else "the start of recruitment"
    horizon = f"over delivery and follow-up ({n_years} year(s) from {start})"
    whole = "whole service" if service else "whole trial"
    lines = []
    for k, whatif in enumerate(whatifs):
        lines += ["", format_resources(comparison, base, whatif, horizon, whole=whole)]
        if costs is not None:
            lines += ["", format_economics(summaries[k], costs, base, replicates_are)]
    if costs is None:
        lines += [
            "",
            "Resources are in hours and events; give --costs FILE for money "
            "(scenarios/costs_example.toml shows the format, with illustrative values).",
        ]
    else:
        lines += ["", f"Money is {discount_text(rate)}; economics.csv has every figure."]
    brief = brief_markdown(
        comparison,
        base,
        whatifs,
        descriptions={label: scenarios[label].description for label in whatifs},
        summaries=summaries,
        costs=costs,
        n=n,
        horizon=horizon,
        posterior=posterior,
        service=service,
    )
    return Money(
        values,
        comparison,
        summaries,
        economics_table(summaries) if costs is not None else None,
        "\n".join(lines),
        brief,
        replicates_are,
    )


def comparison_figures(
    comparison: pd.DataFrame,
    money: Money,
    site_weeks: pd.DataFrame,
    base: str,
    whatifs: Sequence[str],
    *,
    n: int,
) -> dict[str, Figure]:
    """The figures ``peersim compare`` writes, by file name: per what-if its forest
    plot and trajectories (``analysis.compare_figures``), and with costs the
    cost-effectiveness plane and acceptability curve (``analysis.economics_figures``)."""
    from analysis.compare_figures import make_comparison_figures
    from analysis.economics_figures import economics_figures

    figures = make_comparison_figures(comparison, site_weeks, base, list(whatifs), n)
    figures.update(economics_figures(money.summaries, base, money.replicates_are))
    return figures
