"""The outputs of a decision analysis (``analysis.decide``): tidy tables, figures, a
report in plain words (``report.md``) and the summary ``peersim decide`` prints."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.decide import (
    BOX_COLUMNS,
    PARTICLE,
    Ensemble,
    FailureBox,
    OutcomeDecision,
    box_rows,
)
from analysis.levers import decimals
from calibration.priors import SITE_CONFIGURATION
from simulation.outcomes import outcome as registry_outcome

METHODS_PAGE = "docs/decisions/README.md"
SITE = SITE_CONFIGURATION


def ensemble_table(ensemble: Ensemble, values: pd.DataFrame) -> pd.DataFrame:
    """One row per set, scenario and outcome: ``set, scenario, outcome, value,
    n_replicates``, then the set's parameters (the site configuration by name)."""
    parameters = ensemble.frame()
    parameters[SITE] = parameters[SITE].astype(str) if SITE in parameters else None
    parameters = parameters.dropna(axis=1, how="all")
    if PARTICLE in ensemble.sets:
        parameters[PARTICLE] = ensemble.sets[PARTICLE].to_numpy()
    parameters.index.name = "set"
    table = values[["set", "scenario", "outcome", "value", "n_replicates"]].merge(
        parameters.reset_index(), on="set", how="left"
    )
    return table.sort_values(["outcome", "scenario", "set"], kind="stable").reset_index(drop=True)


def write_outputs(
    folder: Path,
    ensemble: Ensemble,
    *,
    values: pd.DataFrame,
    results: Sequence[OutcomeDecision],
    labels: Sequence[str],
    n_replicates: int,
) -> None:
    """Every table, figure and the report into ``folder``."""
    from analysis.decide_figures import make_decision_figures
    from analysis.figures import save_figures

    table = ensemble_table(ensemble, values)
    table.to_csv(folder / "ensemble.csv", index=False)
    table.to_parquet(folder / "ensemble.parquet", index=False)
    pd.concat([r.decisions for r in results], ignore_index=True).to_csv(
        folder / "decisions.csv", index=False
    )
    pd.concat([r.pairwise for r in results], ignore_index=True).to_csv(
        folder / "pairwise.csv", index=False
    )
    pd.concat([r.voi for r in results], ignore_index=True).to_csv(
        folder / "value_of_information.csv", index=False
    )
    pd.concat([r.evppi for r in results], ignore_index=True).to_csv(
        folder / "evppi.csv", index=False
    )
    boxes = [
        box_rows(r.outcome, w, box, len(r.effects), r.failures[w])
        for r in results
        for w, box in r.boxes.items()
    ]
    pd.concat(boxes, ignore_index=True)[list(BOX_COLUMNS)].to_csv(
        folder / "prim_boxes.csv", index=False
    )
    trajectories = [
        box.trajectory.assign(outcome=r.outcome, whatif=w)
        for r in results
        for w, box in r.boxes.items()
        if box is not None
    ]
    trajectory_columns = ["outcome", "whatif", "step", "coverage", "density", "mass"]
    trajectory_columns += ["n_restricted", "chosen"]
    (
        pd.concat(trajectories, ignore_index=True)[trajectory_columns]
        if trajectories
        else pd.DataFrame(columns=trajectory_columns)
    ).to_csv(folder / "prim_trajectories.csv", index=False)
    for r in results:
        save_figures(make_decision_figures(r, labels[0]), folder / "figures")
    (folder / "report.md").write_text(
        report(results, labels, ensemble, n_replicates), encoding="utf-8"
    )


# --- words -------------------------------------------------------------------------------


def _places(name: str) -> int:
    return decimals(registry_outcome(name).unit)


def _signed(value: float, places: int) -> str:
    if not math.isfinite(value):
        return "n/a"
    text = f"{value:+.{places}f}"
    return text if float(text) != 0 else f"{0:.{places}f}"


def _pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.0%}"


def _short(label: str) -> str:
    return label.removeprefix("whatif_")


def _ensemble_words(ensemble: Ensemble, n_replicates: int) -> str:
    where = {
        "posterior": f"drawn by weight from the calibration posterior in `{ensemble.source}`",
        "priors": f"drawn from the priors in `{ensemble.source}` (a Latin hypercube)",
        "spec": f"drawn from the ranges of the sensitivity spec `{ensemble.source}` "
        "(a Latin hypercube, uniform on each range)",
    }[ensemble.kind]
    configuration = (
        " The site configuration is drawn with them."
        if SITE in ensemble.parameters and ensemble.options
        else ""
    )
    return (
        f"{ensemble.n_sets} parameter sets, {where}, {len(ensemble.parameters)} unknowns each."
        f"{configuration} Every scenario ran {n_replicates} replicate(s) per set with the same "
        "seeds (common random numbers); a scenario's value in a set is the mean of its "
        "replicates."
    )


def decision_sentences(result: OutcomeDecision, base: str) -> list[str]:
    """Per what-if, what the robustness table says, in words."""
    o = registry_outcome(result.outcome)
    places = _places(result.outcome)
    rows = result.decisions.set_index("option")
    n = int(rows["n_sets"].iloc[0])
    lines = []
    for option, row in rows.iterrows():
        if row.role == "baseline":
            continue
        worst = row.diff_p10 if o.better == "higher" else row.diff_p90
        bound = "at most" if o.better == "higher" else "at least"
        lines.append(
            f"- **{_short(str(option))}** is better than {base} in {_pct(row.p_improve)} of "
            f"the {n} sets and worse in {_pct(row.p_worse)}; on average it changes "
            f"{o.label_for()} by {_signed(row.diff_mean, places)} ({o.unit}). In the worst "
            f"tenth of sets the change is {bound} {_signed(worst, places)}. It falls short "
            f"of the best option by {row.regret_mean:.{places}f} on average and by "
            f"{row.regret_p90:.{places}f} or less in 90% of sets (regret). Rank "
            f"{int(row['rank'])} of {len(rows)}."
            + (
                f" Replicate noise makes up about {_pct(row.noise_share)} of the spread of "
                "its effect across sets."
                if math.isfinite(row.noise_share)
                else ""
            )
        )
    return lines


def box_sentence(result: OutcomeDecision, whatif: str, box: FailureBox | None) -> str:
    failures, n = result.failures[whatif], len(result.effects)
    if box is None:
        if failures == 0:
            return (
                f"- **{_short(whatif)}** improves on the baseline in every set: no failures "
                "to explain."
            )
        if failures == n:
            return (
                f"- **{_short(whatif)}** fails to improve in every set: no assumptions "
                "under which it helps were found."
            )
        return (
            f"- **{_short(whatif)}** fails to improve in {failures} of {n} sets, but PRIM "
            "finds no assumptions that concentrate the failures (a box restricting a "
            "parameter beyond chance, with at least half its sets failing)."
        )
    limits = "; ".join(_limit_words(row) for row in box.limits.itertuples())
    inside = int(box.inside.sum())
    return (
        f"- **{_short(whatif)}** fails to improve in {failures} of {n} sets. PRIM finds "
        f"them concentrated where {limits}: {_pct(box.coverage)} of the failures lie "
        f"there (coverage), and {_pct(box.density)} of the {inside} sets there fail "
        f"(density), against {_pct(failures / n)} of all sets."
    )


def _limit_words(row: Any) -> str:
    parameter, categories = str(row.parameter), str(row.categories)
    if categories and categories != "nan":
        return f"`{parameter}` is one of {', '.join(categories.split())}"
    lower, upper = float(row.lower), float(row.upper)
    if math.isfinite(lower) and math.isfinite(upper):
        return f"`{parameter}` is between {lower:.3g} and {upper:.3g}"
    if math.isfinite(lower):
        return f"`{parameter}` is at least {lower:.3g}"
    return f"`{parameter}` is at most {upper:.3g}"


def information_sentences(result: OutcomeDecision) -> list[str]:
    o = registry_outcome(result.outcome)
    info = result.evppi
    lines = []
    if len(info) and info["evpi"].iloc[0] > 0 and info["evppi"].iloc[0] == 0:
        lines.append(
            f"- Knowing every unknown before choosing would gain {info['evpi'].iloc[0]:.2g} "
            f"({o.unit}) on average over choosing now (EVPI), but no single unknown, "
            "measured alone, would change the choice beyond the estimate's own bias "
            "(every EVPPI is 0 after the correction)."
        )
    elif len(info) and info["evpi"].iloc[0] > 0:
        top = info.iloc[0]
        lines.append(
            f"- Knowing every unknown before choosing would gain {info['evpi'].iloc[0]:.2g} "
            f"({o.unit}) on average over choosing now (EVPI). Measuring `{top.parameter}` "
            f"first would gain most: {top.evppi:.2g} (EVPPI, {_pct(top.share_of_evpi)} of "
            "that)."
        )
    else:
        lines.append(
            "- The same option is best in every set: no measurement would change the choice "
            "(EVPI 0)."
        )
    for whatif, rows in result.voi.groupby("whatif", sort=False):
        top = rows.iloc[0]
        second = rows.iloc[1] if len(rows) > 1 else None
        lines.append(
            f"- The effect of **{_short(str(whatif))}** depends most on `{top.parameter}`: "
            f"knowing it would remove about {_pct(top.variance_share)} of its variance"
            + (
                f" (next: `{second.parameter}`, {_pct(second.variance_share)})."
                if second is not None
                else "."
            )
        )
    return lines


def _table(headings: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def decision_markdown(result: OutcomeDecision) -> str:
    """The robustness table, ranked, in the outcome's unit (shares of sets in %)."""
    o = registry_outcome(result.outcome)
    places = _places(result.outcome)
    rows = [
        [
            str(int(r["rank"])),
            _short(str(r.option)),
            f"{r['mean']:.{places}f}",
            "" if r.role == "baseline" else _signed(r.diff_mean, places),
            ""
            if r.role == "baseline"
            else f"{_signed(r.diff_p10, places)} to {_signed(r.diff_p90, places)}",
            "" if r.role == "baseline" else _pct(r.p_improve),
            f"{r.regret_mean:.{places}f}",
            f"{r.regret_p90:.{places}f}",
        ]
        for _, r in result.decisions.sort_values("rank").iterrows()
    ]
    unit = o.unit
    return _table(
        [
            "rank",
            "option",
            f"mean ({unit})",
            "difference from baseline",
            "10th to 90th percentile",
            "better than baseline (% of sets)",
            "regret, mean",
            "regret, 90th percentile",
        ],
        rows,
    ) + (f"\n\nDifferences and regret in {unit}; regret is never below 0.")


def pairwise_markdown(result: OutcomeDecision) -> str:
    """Head to head: the share of sets where the row's option beats the column's."""
    table = result.pairwise
    options = list(dict.fromkeys(table["option"]))
    cells = {(str(r.option), str(r.versus)): float(r.p_better) for r in table.itertuples()}
    rows = [[_short(a), *("" if a == b else _pct(cells[(a, b)]) for b in options)] for a in options]
    return _table(["better than: (% of sets)", *(_short(b) for b in options)], rows)


def evppi_markdown(result: OutcomeDecision) -> str:
    """The EVPPI table, ranked, in the outcome's unit."""
    unit = registry_outcome(result.outcome).unit
    rows = [
        [
            str(int(r["rank"])),
            f"`{r.parameter}`",
            f"{r.evppi:.2g}",
            f"{r.evppi_raw:.2g}",
            _pct(r.share_of_evpi),
        ]
        for _, r in result.evppi.iterrows()
    ]
    return _table(
        [
            "rank",
            "parameter",
            f"EVPPI ({unit})",
            f"before the bias correction ({unit})",
            "share of EVPI",
        ],
        rows,
    )


def report(
    results: Sequence[OutcomeDecision],
    labels: Sequence[str],
    ensemble: Ensemble,
    n_replicates: int,
) -> str:
    """``report.md``: per outcome, the ranking, where each what-if fails and what to
    measure first, in words and tables (ends with a newline)."""
    base = labels[0]
    parts = [
        "# Deciding under uncertainty",
        "",
        f"Baseline `{base}` against {', '.join(f'`{w}`' for w in labels[1:])}. "
        + _ensemble_words(ensemble, n_replicates),
        "",
        "How to read it: *better in X% of sets* is the share of parameter sets where the "
        "what-if's value beats the baseline's in the outcome's better direction; *regret* "
        "is how far an option falls short of the best option in the same set; *coverage* "
        "and *density* describe PRIM's box of assumptions where a what-if fails; the "
        "value of information says which unknown, if measured, would most narrow the "
        f"answer. Methods and references: `{METHODS_PAGE}`.",
    ]
    for result in results:
        o = registry_outcome(result.outcome)
        parts += [
            "",
            f"## {o.label_for().capitalize()} ({o.unit}; {o.better} is better)",
            "",
            "### Which what-if wins",
            "",
            *decision_sentences(result, base),
            "",
            decision_markdown(result),
            "",
            "Head to head, the share of sets where the option in the row does better "
            "than the one in the column:",
            "",
            pairwise_markdown(result),
            "",
            f"![differences](figures/effects_{result.outcome}.png)",
            "",
            "### When it fails",
            "",
            *(box_sentence(result, w, b) for w, b in result.boxes.items()),
            "",
            *(
                f"![{_short(w)}](figures/prim_{result.outcome}_{w}.png)\n"
                for w, b in result.boxes.items()
                if b is not None
            ),
            "### What to measure first",
            "",
            *information_sentences(result),
            "",
            evppi_markdown(result),
            "",
            f"![value of information](figures/voi_{result.outcome}.png)",
        ]
    parts += [
        "",
        "## Caveats",
        "",
        "- Probabilities are shares of the sets, so they are only as good as the ensemble: "
        "with priors, how wide the priors are; with a posterior, what the targets could "
        "say. With N sets a share has a sampling error of up to about "
        f"{0.5 / math.sqrt(max(ensemble.n_sets, 1)):.0%} (one standard error at 50%).",
        "- A set's value averages a few replicates, so some of the spread across sets is "
        "replicate noise (the `noise_share` column of decisions.csv, with 2+ replicates); "
        "it blurs probabilities towards one half and the variance shares towards zero.",
        "- The binned estimators of the value of information are biased upward with few "
        "sets per bin (EVPPI most); ranks are firmer than values.",
        "",
    ]
    return "\n".join(parts)


def summary(
    results: Sequence[OutcomeDecision],
    labels: Sequence[str],
    ensemble: Ensemble,
    n_replicates: int,
    seed: int,
) -> str:
    """What ``peersim decide`` prints."""
    base = labels[0]
    lines = [
        f"Decision: baseline {base!r} vs {len(labels) - 1} what-if(s), master seed {seed}.",
        _ensemble_words(ensemble, n_replicates).replace("`", ""),
    ]
    for result in results:
        o = registry_outcome(result.outcome)
        lines += ["", f"{o.heading()}, {o.better} is better:"]
        lines += [s.replace("**", "").replace("`", "") for s in decision_sentences(result, base)]
        lines += [
            box_sentence(result, w, b).replace("**", "").replace("`", "")
            for w, b in result.boxes.items()
        ]
        lines += [s.replace("**", "").replace("`", "") for s in information_sentences(result)]
    return "\n".join(lines)
