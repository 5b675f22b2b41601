"""The app's planner view: a what-if built in the page and compared with its baseline.

A planner picks a scenario (the ENRICH trial or any scenario file, trial or
service), chooses sites one by one or as a group, moves the planner levers
(``analysis.app.planner.LEVERS``), and compares the what-if with the baseline by
common random numbers, exactly as ``peersim compare`` does: people, hours and,
with a costs file, money, with posterior uncertainty when a calibration is
chosen. The what-if downloads as a scenario file ``peersim validate`` accepts,
with the comparison CSV, the figures as PNG and the brief.
"""

from __future__ import annotations

import io
import math
import re
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import solara
import solara.lab

from analysis.app.charts import DifferenceRow, difference_option
from analysis.app.markup import chart, table
from analysis.app.planner import (
    LEVERS,
    Lever,
    PlanError,
    PlannerComparison,
    WhatIf,
    base_scenario,
    changes_text,
    compare_whatif,
    costs_choices,
    posterior_choices,
    scale_lever,
    scenario_choices,
    set_lever,
)
from analysis.economics_report import number
from analysis.resources import RESOURCE_LABELS
from scenarios.costs import load_costs
from scenarios.loader import ScenarioError
from simulation import Scenario
from simulation.outcomes import OUTCOMES, outcome

NONE = "none"
DEFAULT_REPLICATES = 20
# The headline rows of a comparison, whole trial or service, in reading order:
# people, then hours and events, then money (the ones a costs file gives).
HEADLINE = (
    "met_share",
    "engaged_share",
    "fidelity",
    "readmit_ps",
    "readmit_2plus",
    "n_engaged",
    "n_readmissions",
    "bed_days",
    "n_sessions",
    "pw_hours_worked_h",
    "pw_hours_unused_h",
    "coord_hours_paid_h",
)
MONEY = re.compile(r"^cost_(delivery|net)_[A-Z]{3}_discounted$")


@dataclass(frozen=True)
class Result:
    """A finished comparison and the what-if it compared."""

    whatif: WhatIf
    comparison: PlannerComparison
    base: Scenario


def value_text(name: str, value: float, scenario: Scenario, signed: bool = False) -> str:
    """A value of outcome or resource ``name`` with its unit: shares as percentages
    (differences in percentage points), indices to two decimals, hours, days and
    money whole."""
    if not math.isfinite(value):
        return "n/a"
    value += 0.0  # no "-0.0"
    if abs(value) < 5e-10:
        value = 0.0
    if name in OUTCOMES:
        unit = outcome(name).unit_for(scenario)
        sign = "+" if signed else ""
        if unit.startswith("share"):
            percent = round(100 * value, 1) + 0.0  # no "-0.0"
            return f"{percent:{sign}.1f}{' pp' if signed else '%'}"
        return f"{value:{sign}.2f}"
    if MONEY.match(name):
        return number(value, name.split("_")[2], signed)
    unit = "h" if name.endswith("_h") else "days" if name == "bed_days" else ""
    return number(value, unit, signed)


def row_label(name: str, scenario: Scenario) -> str:
    if name in OUTCOMES:
        o = outcome(name)
        return f"{o.label_for(scenario)} ({o.unit_for(scenario)})"
    if MONEY.match(name):
        part, currency = name.split("_")[1:3]
        what = "delivery cost" if part == "delivery" else "net cost (delivery less readmissions)"
        return f"{what} ({currency}, discounted)"
    return RESOURCE_LABELS.get(name, name)


def headline_rows(result: Result) -> list[list[str]]:
    """(what, baseline, what-if, difference [interval]) for the whole trial or service."""
    c = result.comparison.comparison
    overall = c[c["scope"].astype(str) == "overall"].set_index("outcome")
    names = [n for n in HEADLINE if n in overall.index]
    names += [str(n) for n in overall.index if MONEY.match(str(n))]
    rows = []
    for name in names:
        r = overall.loc[name]
        shown = value_text(name, float(r["diff_mean"]), result.base, signed=True)
        lo, hi = float(r["diff_lo"]), float(r["diff_hi"])
        if lo == hi == float(r["diff_mean"]) == 0:
            difference = "0 (identical)"
        elif math.isfinite(lo) and math.isfinite(hi):
            low = value_text(name, lo, result.base, True)
            high = value_text(name, hi, result.base, True)
            difference = f"{shown} [{low}, {high}]"
        else:
            difference = shown
        rows.append(
            [
                row_label(name, result.base),
                value_text(name, float(r["base_mean"]), result.base),
                value_text(name, float(r["whatif_mean"]), result.base),
                difference,
            ]
        )
    return rows


def site_difference_rows(result: Result, name: str) -> list[DifferenceRow]:
    """The whole trial's difference and each site's, for the per-site chart; shares
    in percentage points."""
    scale = 100.0 if value_text(name, 0.5, result.base).endswith("%") else 1.0
    c = result.comparison.comparison
    rows = c[c["outcome"].astype(str) == name]
    out = []
    for _, r in rows.iterrows():
        scope = str(r["scope"])
        label = "whole service" if result.base.mode == "service" else "whole trial"
        out.append(
            DifferenceRow(
                label if scope == "overall" else scope,
                scale * float(r["diff_mean"]),
                scale * float(r["diff_lo"]),
                scale * float(r["diff_hi"]),
            )
        )
    return out


def figures_zip(comparison: PlannerComparison) -> bytes:
    """The comparison's figures as PNG files in one zip."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
        for name, data in comparison.figure_pngs().items():
            z.writestr(name, data)
    return buffer.getvalue()


def site_groups(scenario: Scenario) -> dict[str, list[str]]:
    """Named groups of sites a planner may change together."""
    sites = scenario.sites
    groups = {"all sites": list(sites)}
    for label, test in (
        ("not-for-profit sites", lambda s: s.host == "not_for_profit"),
        ("NHS sites", lambda s: s.host == "nhs"),
        ("rural sites", lambda s: s.geography == "rural"),
        ("urban sites", lambda s: s.geography == "urban"),
    ):
        names = [name for name, s in sites.items() if test(s)]
        if names and len(names) < len(sites):
            groups[label] = names
    return groups


def lever_value(whatif: WhatIf, base: Scenario, lever: Lever, site: str | None) -> Any:
    """The lever's value in the what-if at ``site`` (the base's where unchanged)."""
    if lever.scope == "trial":
        return whatif.trial.get(lever.name, getattr(base.trial, lever.name))
    assert site is not None, "a site lever is read at a site"
    return whatif.sites.get(site, {}).get(lever.field, getattr(base.sites[site], lever.field))


@solara.component
def PlannerView() -> None:  # noqa: C901, PLR0915  (one page of controls, read top to bottom)
    choices = solara.use_memo(scenario_choices, [])
    costs_files = solara.use_memo(costs_choices, [])
    posteriors = solara.use_memo(posterior_choices, [])
    base_label = solara.use_reactive(next(iter(choices)))
    path_text = solara.use_reactive("")
    whatif = solara.use_reactive(WhatIf())
    chosen = solara.use_reactive(["F"])
    problem = solara.use_reactive("")
    n_replicates = solara.use_reactive(DEFAULT_REPLICATES)
    seed = solara.use_reactive(20241)
    costs_label = solara.use_reactive(NONE)
    posterior_label = solara.use_reactive(NONE)
    progress = solara.use_reactive(0.0)
    result: solara.Reactive[Result | None] = solara.use_reactive(None)
    lock = solara.use_memo(threading.Lock, [])

    try:
        base = base_scenario(whatif.value.base)
    except PlanError as e:  # a file changed on disk since it was chosen
        solara.Error(str(e))
        return
    if not set(chosen.value) <= set(base.sites):
        chosen.set(
            [name for name in chosen.value if name in base.sites] or [next(iter(base.sites))]
        )

    def start_from(path: Path | None) -> None:
        try:
            scenario = base_scenario(path)
        except (PlanError, ScenarioError) as e:
            problem.set(str(e))
            return
        problem.set("")
        whatif.set(WhatIf(base=path))
        chosen.set([next(iter(scenario.sites))])
        result.set(None)

    def choose_base(label: str) -> None:
        base_label.set(label)
        start_from(choices[label])

    def change(make: Callable[[WhatIf], WhatIf]) -> None:
        try:
            whatif.set(make(whatif.value))
            problem.set("")
        except PlanError as e:
            problem.set(str(e))

    def run_comparison() -> None:
        with lock:
            progress.set(0.0)
            current = whatif.value
            try:
                scenario = current.scenario()
                costs = (
                    load_costs(costs_files[costs_label.value])
                    if costs_label.value != NONE
                    else None
                )
                comparison = compare_whatif(
                    base,
                    scenario,
                    n_replicates=n_replicates.value,
                    seed=seed.value,
                    costs=costs,
                    posterior_dir=posteriors.get(posterior_label.value),
                    progress=lambda done, total: progress.set(100 * done / max(total, 1)),
                )
            except (PlanError, ScenarioError, ValueError) as e:
                problem.set(str(e))
                return
            problem.set("")
            result.set(Result(current, comparison, base))

    task = solara.lab.use_task(run_comparison, dependencies=None)
    running = bool(task.pending)

    with solara.Div(classes=["peersim-body"]):
        with solara.Div(classes=["peersim-side"]):
            with solara.Card("Start from", classes=["peersim-base"]):
                solara.Select(
                    label="Scenario",
                    values=list(choices),
                    value=base_label.value,
                    on_value=lambda label: choose_base(label),
                )
                solara.InputText(
                    "or a scenario file (path on this computer)",
                    value=path_text.value,
                    on_value=path_text.set,
                    continuous_update=True,
                    classes=["peersim-base-path"],
                )
                solara.Button(
                    "Start from this file",
                    on_click=lambda: start_from(Path(path_text.value).expanduser()),
                    disabled=not path_text.value.strip(),
                    small=True,
                    outlined=True,
                )
            with solara.Card("Sites to change", classes=["peersim-chosen"]):
                solara.SelectMultiple(
                    "Sites", values=chosen.value, all_values=list(base.sites), on_value=chosen.set
                )
                with solara.Div(classes=["peersim-buttons"]):
                    for label, names in site_groups(base).items():
                        solara.Button(
                            label,
                            on_click=lambda names=names: chosen.set(list(names)),
                            small=True,
                            outlined=True,
                        )
            with solara.Card("Levers at the chosen sites", classes=["peersim-levers"]):
                for lever in LEVERS:
                    if lever.scope == "site" and chosen.value:
                        LeverControl(lever, whatif.value, base, chosen.value, change)
            with solara.Card("Whole trial or service", classes=["peersim-trial-levers"]):
                for lever in LEVERS:
                    if lever.scope == "trial":
                        LeverControl(lever, whatif.value, base, [], change)
        with solara.Div(classes=["peersim-main"]):
            with solara.Card("Your what-if", classes=["peersim-whatif"]):
                solara.Text(changes_text(whatif.value), classes=["peersim-changes"])
                if problem.value:
                    solara.Error(problem.value, classes=["peersim-problem"])
                with solara.Div(classes=["peersim-buttons"]):
                    solara.Button(
                        "Undo all changes",
                        on_click=lambda: whatif.set(WhatIf(base=whatif.value.base)),
                        small=True,
                        outlined=True,
                    )
                    solara.FileDownload(
                        lambda: whatif.value.to_toml(),
                        filename="whatif.toml",
                        label="Download the what-if (TOML)",
                        mime_type="application/toml",
                    )
            with solara.Card("Compare with the baseline", classes=["peersim-compare"]):
                with solara.Row(style={"flex-wrap": "wrap", "gap": "4px 16px"}):
                    solara.InputInt(
                        "Replicates (paired runs)",
                        value=n_replicates.value,
                        on_value=lambda n: n_replicates.set(min(max(n, 2), 200)),
                    )
                    solara.InputInt(
                        "Seed", value=seed.value, on_value=lambda s: seed.set(max(s, 0))
                    )
                    solara.Select(
                        "Costs file (money)",
                        values=[NONE, *costs_files],
                        value=costs_label.value,
                        on_value=costs_label.set,
                    )
                    solara.Select(
                        "Calibration (uncertainty)",
                        values=[NONE, *posteriors],
                        value=posterior_label.value,
                        on_value=posterior_label.set,
                    )
                solara.Button(
                    "Running..." if running else "Compare",
                    on_click=lambda: None if running else task(),
                    disabled=running,
                    color="primary",
                    classes=["peersim-run-compare"],
                )
                if running:
                    solara.ProgressLinear(progress.value or True)
                solara.HTML(
                    tag="div",
                    unsafe_innerHTML=(
                        "Baseline and what-if run with the same random numbers, replicate "
                        "by replicate, so a difference is the change's and not chance's. "
                        "With a calibration, each replicate takes a posterior draw of the "
                        "uncertain parameters. The command line gives the same numbers: "
                        "<code>peersim compare</code> on the two files."
                    ),
                    classes=["peersim-caption"],
                )
            if result.value is not None:
                Results(result.value, stale=result.value.whatif != whatif.value)


@solara.component
def LeverControl(
    lever: Lever,
    whatif: WhatIf,
    base: Scenario,
    sites: list[str],
    change: Callable[[Callable[[WhatIf], WhatIf]], None],
) -> None:
    """One lever: its value at the first chosen site, applied to every chosen site."""
    targets: list[str] | None = list(sites) if lever.scope == "site" else None
    value = lever_value(whatif, base, lever, sites[0] if sites else None)
    differs = (
        lever.scope == "site"
        and len({repr(lever_value(whatif, base, lever, s)) for s in sites}) > 1
    )
    label = lever.label + (" (sites differ)" if differs else "")

    def set_to(v: Any) -> None:
        change(lambda w: set_lever(w, targets, lever.field, v))

    css = f"peersim-lever-{lever.name.replace('_', '-')}"
    with solara.Div(classes=[css]):
        if lever.kind == "select":
            labels = dict(lever.options)
            solara.Select(
                label=label,
                values=list(labels.values()),
                value=labels.get(value, str(value)),
                on_value=lambda text: set_to(next(k for k, t in labels.items() if t == text)),
            )
        elif lever.kind == "bool":
            solara.Checkbox(label=label, value=bool(value), on_value=set_to)
        elif lever.kind == "int":
            solara.Text(label, classes=["peersim-slider-label"])
            solara.InputInt("", value=int(value), on_value=set_to, continuous_update=False)
        else:
            solara.Text(label, classes=["peersim-slider-label"])
            with solara.Row(style={"align-items": "center"}):
                solara.InputFloat("", value=float(value), on_value=set_to, continuous_update=False)
                if lever.field == "supervisor_h_per_week":
                    solara.Button(
                        "x2",
                        on_click=lambda: change(lambda w: scale_lever(w, targets, lever.field, 2)),
                        small=True,
                        outlined=True,
                        classes=["peersim-x2"],
                    )


@solara.component
def Results(result: Result, stale: bool) -> None:
    comparison = result.comparison
    measures = comparison.sites["outcome"].astype(str).unique().tolist()
    chosen = solara.use_reactive("engaged_share" if "engaged_share" in measures else measures[0])
    whole = "whole service" if result.base.mode == "service" else "whole trial"
    title = (
        f"What the what-if changes ({whole}, mean of {comparison.n_replicates} paired "
        f"replicates, seed {comparison.seed})"
    )
    with solara.Card(title, classes=["peersim-results"]):
        if stale:
            solara.Warning(
                "The what-if has changed since this comparison: press Compare again.", dense=True
            )
        solara.Text(changes_text(result.whatif))
        table(
            ["", "Baseline", "What-if", "Difference [95% confidence interval]"],
            headline_rows(result),
            "peersim-table peersim-headline",
        )
        with solara.Div(classes=["peersim-buttons"]):
            solara.FileDownload(
                comparison.csv_bytes(),
                filename="comparison.csv",
                label="Comparison (CSV)",
                mime_type="text/csv",
            )
            solara.FileDownload(
                lambda: figures_zip(comparison),
                filename="figures.zip",
                label="Figures (PNG, zip)",
                mime_type="application/zip",
            )
            solara.FileDownload(
                comparison.brief_markdown(),
                filename="brief.md",
                label="Brief (Markdown)",
                mime_type="text/markdown",
            )
    with solara.Card("Site by site", classes=["peersim-site-differences"]):
        names = {row_label(m, result.base): m for m in measures}
        solara.Select(
            "Outcome",
            values=list(names),
            value=row_label(chosen.value, result.base),
            on_value=lambda label: chosen.set(names[label]),
        )
        rows = site_difference_rows(result, chosen.value)
        unit = (
            "percentage points"
            if value_text(chosen.value, 0.5, result.base).endswith("%")
            else ("difference, what-if minus baseline")
        )
        chart(
            difference_option(rows, title=row_label(chosen.value, result.base), unit=unit),
            "peersim-difference-chart",
            120 + 34 * len(rows),
        )
        solara.HTML(
            tag="div",
            unsafe_innerHTML=(
                "Each row: the what-if minus the baseline, its mean over the paired "
                "replicates (dot) and its 95% confidence interval (bar); sites the "
                "what-if leaves alone show no difference."
            ),
            classes=["peersim-caption"],
        )
