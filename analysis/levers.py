"""The lever audit: does every what-if move the outcome it claims, beyond replicate noise?

Every what-if of the library (``scenarios/whatif_*.toml``) ends with a ``[claim]``
(``scenarios.claims``): an outcome of the registry, the direction the policy
question expects, optionally the sites, and the mechanism path. The audit runs
each what-if and the file it ``extends`` (its baseline) with the same replicate
seeds (common random numbers: ``analysis.compare.comparison_jobs``, through
``simulation.runner.run_jobs``), so that replicate ``i`` of the what-if differs
from replicate ``i`` of its baseline only where the lever reaches, and
tabulates per what-if (``AUDIT_COLUMNS``):

- the claimed outcome with its label and unit (``simulation.outcomes``), the
  scope (``whole trial`` or the claim's selectors) and the direction;
- the baseline and what-if means, the mean paired difference and its 95%
  confidence interval (``analysis.compare.paired_stats``: Student's t over the
  replicates), ``n`` paired replicates;
- ``moves``: whether the interval excludes 0 on the claimed side (``diff_lo > 0``
  for ``higher``, ``diff_hi < 0`` for ``lower``), and a ``verdict`` in words:
  ``as claimed``, ``within noise``, ``opposite`` (the interval excludes 0 on the
  other side), ``no change`` (identical in every replicate);
- the mechanism path.

A per-site claim is judged on the unweighted mean over its sites of each site's
value, the sites chosen in the baseline (``Claim.select``). Baselines shared by
several what-ifs (``enrich_trial.toml``) are run once.

``python -m analysis.levers`` writes the generated page ``docs/levers.md`` (see
``main``); ``peersim levers`` (``analysis.cli.levers``) runs the audit with the
sweep options and writes the table as CSV and Markdown with a manifest.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.compare import comparison_jobs, paired_stats
from scenarios import ScenarioError, library, load_claim, load_scenario, scenario_parent
from scenarios.claims import Claim, selects_nothing
from scenarios.inputs import InputError, Problem
from simulation import Results, Scenario
from simulation.executors import Backend
from simulation.outcomes import OUTCOMES
from simulation.rng import DEFAULT_SEED
from simulation.runner import ExecutorSpec, LazyJobs, SweepResult, TableFn, run_jobs

OVERALL = "overall"
WHOLE_TRIAL = "whole trial"
CONFIDENCE = 0.95
# The docs page's settings: enough replicates for a stable verdict, few enough that
# the test which checks the page is current regenerates it in seconds.
DOCS_REPLICATES = 20
DOCS_SEED = DEFAULT_SEED
DOCS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "levers.md"
REGENERATE = "uv run python -m analysis.levers --out docs/levers.md"

AUDIT_COLUMNS: tuple[str, ...] = (
    "whatif",
    "baseline",
    "outcome",
    "label",
    "unit",
    "scope",
    "sites",
    "direction",
    "base_mean",
    "whatif_mean",
    "diff_mean",
    "diff_lo",
    "diff_hi",
    "diff_sd",
    "n",
    "moves",
    "verdict",
    "mechanism",
)
VALUE_COLUMNS: tuple[str, ...] = ("scenario", "replicate", "scope", "outcome", "value")
# Decimals of a mean, by unit; a difference gets at least enough to show its interval.
_DECIMALS: dict[str, int] = {"contacts per participant of the peer support arm": 2}
_DEFAULT_DECIMALS = 3
_MAX_DECIMALS = 5


class LeverError(InputError):
    """A what-if that cannot be audited: no claim, no parent, a claim about no site."""


@dataclass(frozen=True)
class Lever:
    """One what-if to audit: its file, its claim, its baseline (the file it extends)
    and the sites its claim is about (in the baseline; ``()`` for the whole trial)."""

    name: str
    path: Path
    claim: Claim
    whatif: Scenario
    baseline_name: str
    baseline_path: Path
    baseline: Scenario
    sites: tuple[str, ...]


def library_whatifs() -> list[Path]:
    """The library's what-if files (``whatif_*.toml``), in name order."""
    return [path for name, path in library().items() if name.startswith("whatif_")]


def load_levers(paths: Sequence[Path] | None = None) -> list[Lever]:
    """The levers of the what-if files ``paths`` (default: the library's); a file
    without a claim or a parent, or whose claim selects no site of the baseline,
    raises ``LeverError`` (all such problems at once); a bad scenario or claim,
    ``ScenarioError``."""
    paths = library_whatifs() if paths is None else list(paths)
    levers: list[Lever] = []
    problems: list[Problem | str] = []
    for path in paths:
        lever = _lever(Path(path), problems)
        if lever is not None:
            levers.append(lever)
    if problems:
        raise LeverError(paths[0] if len(paths) == 1 else "what-ifs", problems)
    return levers


def _lever(path: Path, problems: list[Problem | str]) -> Lever | None:
    claim = load_claim(path)
    parent = scenario_parent(path)
    if claim is None:
        problems.append(
            Problem(
                path,
                "claim",
                "missing: a what-if to audit says what its lever does",
                allowed="a [claim] table at the end of the file with outcome, direction, "
                "mechanism and optionally sites (scenarios/claims.py)",
            )
        )
    if parent is None:
        problems.append(
            Problem(
                path,
                "extends",
                "missing: a what-if is audited against the file it extends",
                allowed="extends = the parent scenario file, relative to this file",
            )
        )
    if claim is None or parent is None:
        return None
    whatif, baseline = load_scenario(path), load_scenario(parent)
    nothing = selects_nothing(path, claim, baseline)
    if nothing is not None:
        problems.append(nothing)
        return None
    return Lever(
        name=path.stem,
        path=path,
        claim=claim,
        whatif=whatif,
        baseline_name=parent.stem,
        baseline_path=parent,
        baseline=baseline,
        sites=claim.select(baseline),
    )


def lever_record(lever: Lever) -> dict[str, object]:
    """``lever`` as JSON-ready data (for an interrupted audit's record)."""
    return {
        "name": lever.name,
        "path": str(lever.path.resolve()),
        "claim": lever.claim.model_dump(mode="json"),
        "whatif": lever.whatif.model_dump(mode="json"),
        "baseline_name": lever.baseline_name,
        "baseline_path": str(lever.baseline_path.resolve()),
        "baseline": lever.baseline.model_dump(mode="json"),
        "sites": list(lever.sites),
    }


def lever_from_record(record: dict[str, object]) -> Lever:
    """The lever ``lever_record`` wrote (the files are not read again)."""
    sites = record["sites"]
    assert isinstance(sites, list)
    return Lever(
        name=str(record["name"]),
        path=Path(str(record["path"])),
        claim=Claim.model_validate(record["claim"]),
        whatif=Scenario.model_validate(record["whatif"]),
        baseline_name=str(record["baseline_name"]),
        baseline_path=Path(str(record["baseline_path"])),
        baseline=Scenario.model_validate(record["baseline"]),
        sites=tuple(str(s) for s in sites),
    )


# --- the runs -------------------------------------------------------------------------


def scenarios_to_run(levers: Sequence[Lever]) -> dict[str, Scenario]:
    """Every what-if and every distinct baseline, by label (the file's stem): a
    baseline shared by several what-ifs runs once. ``LeverError`` if two different
    files share a stem."""
    scenarios: dict[str, Scenario] = {}
    paths: dict[str, Path] = {}
    for lever in levers:
        for label, path, scenario in (
            (lever.baseline_name, lever.baseline_path, lever.baseline),
            (lever.name, lever.path, lever.whatif),
        ):
            known = paths.get(label)
            if known is not None and known.resolve() != path.resolve():
                raise LeverError(
                    path, [f"{path}: has the same name as {known}; rename one of them"]
                )
            paths[label] = path
            scenarios[label] = scenario
    return scenarios


def audit_jobs(levers: Sequence[Lever], seed: int, n_replicates: int) -> LazyJobs:
    """Replicates ``0 .. n_replicates - 1`` of every scenario to run, replicate ``i``
    of each with ``replicate_seed(seed, i)`` (``analysis.compare.comparison_jobs``)."""
    return comparison_jobs(scenarios_to_run(levers), seed, n_replicates)


def outcome_values(results: Results) -> pd.DataFrame:
    """Every registry outcome one replicate gives without settings, long: ``scope``
    (``"overall"`` or a site), ``outcome``, ``value``. Computed on the workers, by
    the registry's own functions (``Outcome.of_trial``, ``Outcome.of_sites``;
    readmission of the 2+ sessions group only for the whole trial, as per site it
    needs the scenario's dose)."""
    scopes: list[str] = []
    names: list[str] = []
    values: list[float] = []
    sites = list(results.site_names)
    for o in OUTCOMES.values():
        if o.value is None or (o.trial_key is not None and o.trial_key not in results.trial):
            continue  # needs settings, or the other mode's (a trial's arms, a service's)
        scopes.append(OVERALL)
        names.append(o.name)
        values.append(o.of_trial(results))
        if o.per_site and o.readmitted != "dose":
            scopes += sites
            names += [o.name] * len(sites)
            values += [float(v) for v in o.of_sites(results)]
    return pd.DataFrame(
        {
            "scope": pd.array(scopes, dtype="str"),
            "outcome": pd.array(names, dtype="str"),
            "value": np.asarray(values, dtype=np.float64),
        }
    )


LEVER_TABLES: dict[str, TableFn] = {"outcomes": outcome_values}


def run_audit_sweep(
    levers: Sequence[Lever],
    out_dir: Path,
    *,
    seed: int = DEFAULT_SEED,
    n_replicates: int = DOCS_REPLICATES,
    executor: ExecutorSpec | Backend | Executor | None = None,
    progress: bool | None = None,
    resume: bool = False,
) -> SweepResult:
    """The audit's runs, into ``out_dir`` (``simulation.runner.run_jobs``)."""
    return run_jobs(
        audit_jobs(levers, seed, n_replicates),
        out_dir,
        tables=LEVER_TABLES,
        executor=executor if executor is not None else ExecutorSpec(workers=1),
        progress=progress,
        resume=resume,
        desc="levers",
    )


def audit(
    levers: Sequence[Lever] | None = None,
    *,
    seed: int = DEFAULT_SEED,
    n_replicates: int = DOCS_REPLICATES,
    executor: ExecutorSpec | Backend | Executor | None = None,
) -> pd.DataFrame:
    """The audit table of ``levers`` (default: the library's), run in a temporary
    folder (in this process unless ``executor`` says otherwise)."""
    chosen = load_levers() if levers is None else list(levers)
    with tempfile.TemporaryDirectory(prefix="peersim-levers-") as tmp:
        sweep = run_audit_sweep(
            chosen, Path(tmp) / "sweep", seed=seed, n_replicates=n_replicates, executor=executor
        )
        if not sweep.complete:
            first = sweep.failures.iloc[0]
            raise RuntimeError(
                f"{sweep.n_failed} run(s) failed, first {first['key']}: "
                f"{first['error_type']}: {first['error_message']}"
            )
        values = sweep.table("outcomes")
    return audit_table(chosen, values)


# --- the table ------------------------------------------------------------------------


def claimed_values(lever: Lever, values: pd.DataFrame, label: str) -> pd.Series:
    """Per replicate (the index), scenario ``label``'s value of ``lever``'s claimed
    outcome over the claim's scope: the whole trial's value, or the unweighted mean
    of the finite values of its sites."""
    rows = values[(values["scenario"] == label) & (values["outcome"] == lever.claim.outcome)]
    if not lever.sites:
        return rows[rows["scope"] == OVERALL].set_index("replicate")["value"].sort_index()
    at_sites = rows[rows["scope"].isin(lever.sites)]
    return at_sites.groupby("replicate")["value"].mean().sort_index()


def audit_table(levers: Sequence[Lever], values: pd.DataFrame) -> pd.DataFrame:
    """One row per lever (``AUDIT_COLUMNS``) from the long ``values`` of every
    scenario's replicates (``VALUE_COLUMNS``, as ``outcome_values`` with the jobs'
    ``scenario`` and ``replicate`` tags)."""
    frame = values.assign(
        scenario=values["scenario"].astype(str),
        scope=values["scope"].astype(str),
        outcome=values["outcome"].astype(str),
    )
    rows = [_row(lever, frame) for lever in levers]
    table = pd.DataFrame(rows, columns=list(AUDIT_COLUMNS))
    return table.astype({"n": np.int64, "moves": bool})


def _row(lever: Lever, frame: pd.DataFrame) -> dict[str, object]:
    base = claimed_values(lever, frame, lever.baseline_name)
    whatif = claimed_values(lever, frame, lever.name)
    both = base.index.intersection(whatif.index)
    s = paired_stats(base[both].to_numpy(), whatif[both].to_numpy(), CONFIDENCE)
    claim = lever.claim
    target = claim.target
    moves = _moves(claim.direction, s.diff_lo, s.diff_hi)
    return {
        "whatif": lever.name,
        "baseline": lever.baseline_name,
        "outcome": claim.outcome,
        "label": target.label_for(lever.baseline),
        "unit": target.unit_for(lever.baseline),
        "scope": claim.where,
        "sites": " ".join(lever.sites),
        "direction": claim.direction,
        "base_mean": s.base_mean,
        "whatif_mean": s.whatif_mean,
        "diff_mean": s.diff_mean,
        "diff_lo": s.diff_lo,
        "diff_hi": s.diff_hi,
        "diff_sd": s.diff_sd,
        "n": s.n,
        "moves": moves,
        "verdict": _verdict(claim.direction, s.diff_mean, s.diff_sd, s.diff_lo, s.diff_hi),
        "mechanism": claim.mechanism,
    }


def _moves(direction: str, lo: float, hi: float) -> bool:
    """Whether the interval ``[lo, hi]`` excludes 0 on the ``direction`` side."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return False
    return lo > 0 if direction == "higher" else hi < 0


def _verdict(direction: str, mean: float, sd: float, lo: float, hi: float) -> str:
    if mean == 0 and sd == 0:
        return "no change"
    if _moves(direction, lo, hi):
        return "as claimed"
    if _moves("lower" if direction == "higher" else "higher", lo, hi):
        return "opposite"
    return "within noise"


# --- reading it -------------------------------------------------------------------------


def decimals(unit: str, half_width: float = math.nan) -> int:
    """Decimals to print a value of ``unit`` with: the unit's own (3 for shares and
    indices, 2 for contacts), more where an interval's half-width needs them to show
    (one significant digit), at most 5."""
    places = _DECIMALS.get(unit, _DEFAULT_DECIMALS)
    if math.isfinite(half_width) and half_width > 0:
        places = max(places, -math.floor(math.log10(half_width)))
    return min(places, _MAX_DECIMALS)


def _places(row: Any) -> int:
    unit = str(row.unit)
    lo, hi = float(row.diff_lo), float(row.diff_hi)
    return decimals(unit, (hi - lo) / 2 if math.isfinite(lo) and math.isfinite(hi) else math.nan)


def _number(value: float, places: int, sign: bool = False) -> str:
    if not math.isfinite(value):
        return "n/a"
    text = f"{value:+.{places}f}" if sign else f"{value:.{places}f}"
    return text.replace("-0." + "0" * places, "0." + "0" * places).replace(
        "+0." + "0" * places, "0." + "0" * places
    )


def difference_text(row: Any) -> str:
    """``+0.012 [+0.004, +0.020]``, ``0 (identical)``, or ``n/a``."""
    mean, sd = float(row.diff_mean), float(row.diff_sd)
    if not math.isfinite(mean):
        return "n/a"
    if mean == 0 and sd == 0:
        return "0 (identical)"
    places = _places(row)
    lo, hi = float(row.diff_lo), float(row.diff_hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return _number(mean, places, sign=True)
    return (
        f"{_number(mean, places, True)} [{_number(lo, places, True)}, {_number(hi, places, True)}]"
    )


def _cells(row: Any) -> list[str]:
    places = _places(row)
    heading = f"{row.label} ({row.unit})"
    return [
        str(row.whatif).removeprefix("whatif_"),
        str(row.baseline),
        heading,
        str(row.scope),
        str(row.direction),
        _number(float(row.base_mean), places),
        _number(float(row.whatif_mean), places),
        difference_text(row),
        str(row.verdict),
    ]


TABLE_HEADINGS: tuple[str, ...] = (
    "what-if",
    "baseline",
    "claimed outcome (unit)",
    "where",
    "claim",
    "baseline mean",
    "what-if mean",
    "difference [95% CI]",
    "verdict",
)


def markdown_table(table: pd.DataFrame) -> str:
    """The audit as a Markdown table (no trailing newline), then the mechanism paths
    as a second table, one row per what-if."""
    lines = ["| " + " | ".join(TABLE_HEADINGS) + " |", "|" + "---|" * len(TABLE_HEADINGS)]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(_md(c) for c in _cells(row)) + " |")
    lines += ["", "| what-if | mechanism path |", "|---|---|"]
    for row in table.itertuples(index=False):
        lines.append(f"| {_md(str(row.whatif).removeprefix('whatif_'))} | {_md(row.mechanism)} |")
    return "\n".join(lines)


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def format_table(table: pd.DataFrame, n_replicates: int, seed: int) -> str:
    """The audit as ``peersim levers`` prints it: one block per what-if."""
    n_moved = int(table["moves"].sum())
    lines = [
        f"Lever audit: {len(table)} what-if(s), each against the file it extends, "
        f"{n_replicates} paired replicates, master seed {seed}.",
        "Replicate i of every scenario uses seed (SEED, i) (common random numbers), so "
        "a difference is the lever, not chance.",
        "Difference = mean of (what-if - baseline) over the replicates [95% confidence "
        "interval, Student's t];",
        "'as claimed' = the interval excludes 0 on the claimed side.",
    ]
    for row in table.itertuples(index=False):
        places = _places(row)
        lines += [
            "",
            f"{row.whatif} vs {row.baseline}: {row.verdict}",
            f"  claim      {row.label} ({row.unit}), {row.scope}: {row.direction}",
            f"  baseline   {_number(float(row.base_mean), places)}",
            f"  what-if    {_number(float(row.whatif_mean), places)}",
            f"  difference {difference_text(row)}  (n = {row.n})",
            f"  mechanism  {row.mechanism}",
        ]
    lines += ["", f"{n_moved} of {len(table)} what-if(s) move their claimed outcome as claimed."]
    return "\n".join(lines)


def docs_page(table: pd.DataFrame, n_replicates: int, seed: int) -> str:
    """The generated page ``docs/levers.md`` (ends with a newline)."""
    n_moved = int(table["moves"].sum())
    return f"""\
# Lever audit

<!-- Generated by `{REGENERATE}`; do not edit by hand.
     tests/test_levers.py fails when this page differs from what the model gives. -->

Does every what-if in the library move the outcome it claims, beyond replicate
noise, in the direction its policy question expects? Each what-if file
(`scenarios/whatif_*.toml`) ends with a `[claim]` table (outcome, direction,
optionally sites, mechanism path; `scenarios/claims.py`). Here each what-if and
the file it `extends` ran the same {n_replicates} replicates (master seed {seed};
replicate i of both with seed ({seed}, i): common random numbers), and the table
gives the claimed outcome in the baseline and the what-if, the mean paired
difference with its 95% confidence interval (Student's t over the replicates),
and the verdict: **as claimed** (the interval excludes 0 on the claimed side),
**within noise**, **opposite** (it excludes 0 on the other side) or **no change**
(identical in every replicate). A claim about sites is judged on the unweighted
mean over those sites, chosen in the baseline.

**{n_moved} of {len(table)} what-ifs move their claimed outcome as claimed.**

{markdown_table(table)}

The same audit with other settings, written as CSV and Markdown with a manifest:
`uv run peersim levers -n 50` (see `uv run peersim levers --help`).
"""


def write_page(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a reader sees the old or the new page)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.levers",
        description=(
            "Run the lever audit of the library's what-ifs with the docs page's settings "
            f"({DOCS_REPLICATES} paired replicates, seed {DOCS_SEED}) and print the "
            "generated page docs/levers.md, or write it with --out."
        ),
    )
    parser.add_argument("--out", type=Path, metavar="FILE", help="write the page to FILE")
    args = parser.parse_args(argv)
    try:
        table = audit(seed=DOCS_SEED, n_replicates=DOCS_REPLICATES)
    except (ScenarioError, LeverError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    page = docs_page(table, DOCS_REPLICATES, DOCS_SEED)
    if args.out is None:
        print(page, end="")
    else:
        write_page(args.out, page)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
