"""The resources and money of a comparison in words: the printed tables and ``brief.md``.

Every number has its unit; hours and money are rounded to whole units, counts to
one decimal (they are means over simulated trials), shares to whole percent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from analysis.compare import OVERALL
from analysis.economics import Economics
from analysis.resources import RESOURCE_LABELS, RESOURCES
from analysis.summary import align_columns
from scenarios.costs import Costs

# The resources the brief names, with how it says them.
_PEOPLE = (("n_engaged", "participants engaged"), ("n_sessions", "sessions held"))
_HOURS = (
    ("pw_hours_worked_h", "peer worker hours worked"),
    ("pw_hours_contact_h", "of which with participants"),
    ("pw_hours_travel_h", "of which travelling"),
    ("pw_hours_contracted_h", "peer worker hours paid (contracted)"),
    ("coord_hours_paid_h", "coordinator hours"),
    ("pw_posts_fte", "peer worker posts (FTE)"),
)


def is_illustrative(costs: Costs) -> bool:
    """Whether the costs file says its figures are placeholders ([M] or illustrative)."""
    text = " ".join([costs.description, *costs.sources.values()]).lower()
    return "[m]" in text or "illustrative" in text


def _unit(outcome: str) -> str:
    if outcome.endswith("_h"):
        return "h"
    if outcome == "bed_days":
        return "days"
    if outcome == "pw_posts_fte":
        return "FTE"
    return ""


def number(value: float, unit: str = "", signed: bool = False) -> str:
    """``12,345 h``, ``+3.2``, ``GBP -1,200``: whole hours, days and money, counts
    and FTE to one decimal."""
    if not math.isfinite(value):
        return "n/a"
    sign = "+" if signed else ""
    if unit in ("h", "days"):
        return f"{value:{sign},.0f} {unit}"
    if unit == "FTE":
        return f"{value:{sign},.2f} FTE"
    if len(unit) == 3 and unit.isupper():  # a currency
        return f"{unit} {value:{sign},.0f}"
    return f"{value:{sign},.1f}"


def interval(mean: float, lo: float, hi: float, unit: str = "") -> str:
    """``+12 h [+3 h, +20 h]``; the mean alone where the interval is missing."""
    if mean == 0 and lo == 0 and hi == 0:
        return "0 (identical)"
    text = number(mean, unit, signed=True)
    if math.isfinite(lo) and math.isfinite(hi):
        text += f" [{number(lo, unit, True)}, {number(hi, unit, True)}]"
    return text


def _row(comparison: pd.DataFrame, whatif: str, outcome: str, scope: str = OVERALL) -> pd.Series:
    rows = comparison[
        (comparison["whatif"] == whatif)
        & (comparison["outcome"] == outcome)
        & (comparison["scope"] == scope)
    ]
    return rows.iloc[0] if len(rows) else None


def format_resources(
    comparison: pd.DataFrame, base: str, whatif: str, horizon: str, *, whole: str = "whole trial"
) -> str:
    """The resource table of one what-if, whole trial (or ``whole`` service): baseline,
    what-if, difference."""
    table = []
    for outcome, label in RESOURCES:
        r = _row(comparison, whatif, outcome)
        if r is None:
            continue
        unit = _unit(outcome)
        table.append(
            [
                label,
                number(r["base_mean"], unit),
                number(r["whatif_mean"], unit),
                interval(r["diff_mean"], r["diff_lo"], r["diff_hi"], unit),
            ]
        )
    return "\n".join(
        [
            f"What-if {whatif!r} vs baseline {base!r}: resources, {whole}, {horizon} "
            "(means over replicates)",
            align_columns(["resource", "baseline", "what-if", "difference [95% CI]"], table),
        ]
    )


def replicate_word(service: bool) -> str:
    """What one replicate is: a simulated trial, or a simulated service."""
    return "simulated service" if service else "simulated trial"


def discount_text(rate: float) -> str:
    return (
        f"discounted at {rate:.1%} a year (costs of year k divided by "
        f"{1 + rate:.3f}^(k - 1); readmission counts are not discounted, their costs are)"
    )


def format_economics(summary: Economics, costs: Costs, base: str, replicates_are: str) -> str:
    """The money of one what-if: incremental costs, cost per readmission avoided,
    the chance of saving money and the budget impact per year."""
    cur = summary.currency
    lines = [
        f"What-if {summary.whatif!r} vs baseline {base!r}: money ({cur}, unit costs from "
        f"{costs.path}), {discount_text(summary.discount_rate)}",
    ]
    if is_illustrative(costs):
        lines.append(
            "  The unit costs are ILLUSTRATIVE placeholders [M], not real prices: the money "
            "shows the method, not an answer."
        )
    table = [
        ["net incremental cost", interval(*summary.incremental_cost, unit=cur)],
        ["  of which delivery", interval(*summary.incremental_delivery_cost, unit=cur)],
        ["readmissions avoided (n)", interval(*summary.readmissions_avoided)],
    ]
    if summary.bed_days_avoided is not None:
        table.append(["bed-days avoided", interval(*summary.bed_days_avoided, unit="days")])
    table += [
        [
            "cost per readmission avoided",
            ratio_text(summary, cur),
        ],
        [
            "probability of saving money",
            f"{summary.p_saves_money:.0%} of {summary.n} {replicates_are}s",
        ],
    ]
    for year, value in summary.budget_impact.items():
        table.append([f"budget impact, year {year} (not discounted)", interval(*value, unit=cur)])
    lines.append(align_columns(["measure", "mean [95% interval]"], table))
    if costs.not_given:
        lines.append(f"Not costed (not in the costs file): {', '.join(costs.not_given)}.")
    return "\n".join(lines)


def ratio_text(summary: Economics, cur: str) -> str:
    """The cost per readmission avoided, in words where a ratio would mislead: a
    what-if that avoids no readmissions on average has no such cost (a negative
    ratio would read as a saving)."""
    mean, lo, hi = summary.cost_per_readmission_avoided
    cost, avoided = summary.incremental_cost[0], summary.readmissions_avoided[0]
    if not math.isfinite(mean) or avoided <= 0:
        more = "costs more" if cost > 0 else "costs less" if cost < 0 else "costs the same"
        what = "no readmissions avoided" if avoided == 0 else "more readmissions, not fewer"
        return f"none: on average {what}, and it {more} (no ratio shown)"
    if cost == 0:
        return "0: it costs no more and avoids readmissions"
    if cost < 0:
        return f"none: it saves {number(-cost, cur)} and avoids readmissions (no ratio needed)"
    text = number(mean, cur)
    if math.isfinite(lo) and math.isfinite(hi):
        return f"{text} [{number(lo, cur)}, {number(hi, cur)}] (bootstrap)"
    return f"{text} (interval not bounded: readmissions avoided may be zero or fewer)"


# --- brief.md ------------------------------------------------------------------------------


def brief_markdown(
    comparison: pd.DataFrame,
    base: str,
    whatifs: Sequence[str],
    *,
    descriptions: Mapping[str, str],
    summaries: Sequence[Economics],
    costs: Costs | None,
    n: int,
    horizon: str,
    posterior: bool,
    service: bool = False,
) -> str:
    """A page a board member reads in two minutes: per what-if, the question, the
    answer in people, hours and money, and the main uncertainty."""
    by_whatif = {s.whatif: s for s in summaries}
    replicates_are = "posterior draw" if posterior else replicate_word(service)
    whole = "whole service" if service else "whole trial"
    lines = [
        f"# What the what-ifs take and what they buy: against `{base}`",
        "",
        f"Each what-if was simulated {n} times alongside the baseline, with the same "
        f"participants and chance events ({replicates_are}s paired by common random "
        f"numbers), {horizon}. Figures are means; brackets give the 95% interval over "
        f"the {n} {replicates_are}s.",
    ]
    for whatif in whatifs:
        lines += ["", f"## {whatif}", ""]
        question = descriptions.get(whatif, "").strip() or f"What if we did `{whatif}`?"
        lines.append(f"**The question.** {question} (compared with `{base}`)")
        lines += ["", "**The answer in people.** " + _people(comparison, whatif, costs, whole)]
        lines += ["", "**In hours.** " + _hours(comparison, whatif)]
        summary = by_whatif.get(whatif)
        if summary is not None and costs is not None:
            lines += ["", "**In money.** " + _money(summary, costs, replicates_are)]
        else:
            lines += [
                "",
                "**In money.** Not costed: run `peersim compare` with `--costs FILE` (your "
                "own unit costs) to turn these hours and events into money.",
            ]
        uncertainty = _uncertainty(summary, costs, posterior, service)
        lines += ["", "**The main uncertainty.** " + uncertainty]
    return "\n".join(lines) + "\n"


def _say(comparison: pd.DataFrame, whatif: str, outcome: str, unit: str = "") -> str:
    r = _row(comparison, whatif, outcome)
    if r is None:
        return "n/a"
    return interval(r["diff_mean"], r["diff_lo"], r["diff_hi"], unit)


def _people(comparison: pd.DataFrame, whatif: str, costs: Costs | None, whole: str) -> str:
    parts = [f"{label}: {_say(comparison, whatif, key)}" for key, label in _PEOPLE]
    r = _row(comparison, whatif, "n_readmissions")
    if r is not None:
        avoided = interval(-r["diff_mean"] + 0.0, -r["diff_hi"] + 0.0, -r["diff_lo"] + 0.0)
        parts.append(f"readmissions avoided: {avoided}")
    if _row(comparison, whatif, "bed_days") is not None:
        r = _row(comparison, whatif, "bed_days")
        days = interval(-r["diff_mean"] + 0.0, -r["diff_hi"] + 0.0, -r["diff_lo"] + 0.0, "days")
        stay = costs.length_of_stay_days if costs is not None else math.nan
        parts.append(f"bed-days avoided: {days} (at {stay:g} days a readmission)")
    return "; ".join(parts) + f" (changes against the baseline, {whole})."


def _hours(comparison: pd.DataFrame, whatif: str) -> str:
    parts = [
        f"{label}: {_say(comparison, whatif, key, _unit(key))}"
        for key, label in _HOURS
        if key in RESOURCE_LABELS
    ]
    return "; ".join(parts) + "."


def _money(summary: Economics, costs: Costs, replicates_are: str) -> str:
    cur = summary.currency
    years = ", ".join(
        f"year {y} {interval(*v, unit=cur)}" for y, v in summary.budget_impact.items()
    )
    saves = round(summary.p_saves_money * summary.n)
    text = (
        f"Net cost {interval(*summary.incremental_cost, unit=cur)} over the horizon, "
        f"{discount_text(summary.discount_rate)}; cost per readmission avoided "
        f"{ratio_text(summary, cur)}. It saved money in {saves} "
        f"of {summary.n} {replicates_are}s ({summary.p_saves_money:.0%}). Budget impact "
        f"(not discounted): {years}."
    )
    if is_illustrative(costs):
        text += (
            f" **These unit costs ({costs.path.name}) are illustrative placeholders, not "
            "prices: do not quote these amounts.**"
        )
    return text


def _uncertainty(
    summary: Economics | None, costs: Costs | None, posterior: bool, service: bool
) -> str:
    replicate = replicate_word(service)
    parts = []
    if summary is not None and math.isfinite(summary.share_variance_readmissions):
        share = summary.share_variance_readmissions
        driver = "who happens to be readmitted" if share >= 0.5 else "the hours delivered"
        parts.append(
            f"Between {replicate}s the net cost varies mostly with {driver}: of the "
            f"variances of its two parts (their covariance aside), readmission costs' is "
            f"{share:.0%} and delivery costs' {1 - share:.0%}."
        )
    if posterior:
        parts.append(
            "The intervals include the calibration's uncertainty about the model's "
            f"parameters (one posterior draw per {replicate})."
        )
    else:
        parts.append(
            "The intervals show chance only; most of the model's parameters are "
            "assumptions [M] (docs/ODD.md, section 9), so the true uncertainty is wider "
            "(`--posterior` adds the calibration's)."
        )
    if costs is not None:
        sources = set(costs.sources.values())
        said = (
            f"every one's source reads {next(iter(sources))!r}"
            if len(sources) == 1
            else "sources: " + "; ".join(f"{k}: {v}" for k, v in costs.sources.items())
        )
        parts.append(f"The money rests on the unit costs in {costs.path.name} ({said}).")
    return " ".join(parts)


__all__ = [
    "brief_markdown",
    "format_economics",
    "format_resources",
    "interval",
    "is_illustrative",
    "number",
]
