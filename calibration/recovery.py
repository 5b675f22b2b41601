"""Simulation-based recovery: which free parameters the trial's summaries identify.

For K true parameter sets drawn from the priors (a fixed seed), this module
simulates ONE synthetic ENRICH trial at each truth (one trial, as the real data
are one trial), turns it into a targets file, runs ABC-SMC on it
(``calibration.inference.run_abc``) and asks, per parameter, whether the
posterior's 90% interval covers the truth and how much narrower it is than the
prior's. Two kinds of synthetic targets, both with the shipped sourced patterns
(``calibration/targets/enrich.toml``) that the synthetic trial shows:

``published``
    What the shipped targets hold: the share who met a peer worker (count/n), the
    weak control-arm readmission background (weight 0.25, no reported SE) and the
    patterns. What the published summaries can identify.
``trial``
    What a full trial report gives or could give: the met share, readmission per
    arm (count/n each), the engaged share (count/n) and the engaged share at each
    site (count/n), plus the patterns. What fuller trial reports would identify.

Per parameter and kind: **coverage**, the share of the K truths inside the
posterior's 90% interval (weighted 5% and 95% quantiles, ``Posterior.quantile``),
and **narrowing**, the median over the K truths of the posterior 90% width over
the prior 90% width. The verdict (``verdict``): "identified by ..." when
narrowing is below ``NARROWING_IDENTIFIED`` and coverage is reasonable (not
significantly below the nominal 90% by a one-sided binomial test at 5%,
``coverage_reasonable``), else "not identified".

A sourced pattern the synthetic trial does not show is left out of its targets
(the trial would not have reported it) and named in the report. A pattern is a
hard constraint (``calibration.distance``), so a truth that shows a pattern in
fewer than half its trials can be rejected by its own synthetic data: that is
counted as a miss, not hidden.

Output folder (written at once, ``simulation.outputs.atomic_directory``):
``recovery.md`` (the report), ``recovery.csv`` (per kind and parameter),
``intervals.csv`` (per run and parameter: truth, posterior 5/50/95%, width ratio,
covered), ``runs.csv`` (per run: generations, epsilon, simulations, time),
``truths.csv``, ``targets/<kind>_truth<k>.toml`` (each synthetic targets file,
loadable with ``load_targets``) and ``manifest.json``.

Run it with ``uv run python -m calibration.recovery --help``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from calibration.posterior import Posterior
from calibration.priors import PriorSet, apply_parameters, is_valid_scenario, load_priors
from calibration.problem import Problem
from calibration.settings import Settings, duration_text
from calibration.targets import Target, TargetSet, default_targets_path, load_targets
from scenarios import load_scenario
from scenarios.odd_table import parameter_rows
from simulation import Results, Scenario, replicate_seed, run
from simulation.executors import Backend, ExecutorSpec, open_executor
from simulation.outputs import atomic_directory, build_manifest, is_free, package_version
from simulation.rng import DEFAULT_SEED

KINDS: tuple[str, ...] = ("published", "trial")
KIND_LABELS = {"published": "the published summaries", "trial": "trial-type summaries"}
KIND_TEXT = {
    "published": "met share (count/n), control readmission background (weight 0.25), patterns",
    "trial": (
        "met share, readmission per arm, engaged share, engaged share per site "
        "(each count/n), patterns"
    ),
}
DEFAULT_TRUTHS = 4
DEFAULT_POPULATION = 200
DEFAULT_REPLICATES = 4
DEFAULT_GENERATIONS = 6
# A parameter is identified when its posterior 90% interval is, at the median over the
# truths, narrower than this share of its prior 90% interval (and coverage is reasonable).
NARROWING_IDENTIFIED = 0.75
INTERVAL = (0.05, 0.95)
NOMINAL_COVERAGE = INTERVAL[1] - INTERVAL[0]
# Coverage is unreasonable when so few truths are covered that a nominal 90% interval
# would cover that few with probability below this (one-sided binomial test).
COVERAGE_TEST_LEVEL = 0.05
SYNTHETIC = "SYNTHETIC (recovery study, not data)"
Report = Callable[[str], None]


@dataclass(frozen=True)
class Design:
    """What to run: ``truths`` true parameter sets (drawn with ``seed``), the ABC
    ``settings`` for every run, and the target kinds (``KINDS``)."""

    truths: int = DEFAULT_TRUTHS
    settings: Settings = field(
        default_factory=lambda: Settings(
            population=DEFAULT_POPULATION,
            generations=DEFAULT_GENERATIONS,
            replicates=DEFAULT_REPLICATES,
            seed=DEFAULT_SEED,
        )
    )
    kinds: tuple[str, ...] = KINDS

    def __post_init__(self) -> None:
        if isinstance(self.truths, bool) or not isinstance(self.truths, int) or self.truths < 1:
            raise ValueError(f"truths must be a whole number >= 1 (got {self.truths!r})")
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds:
            raise ValueError(f"kinds must be among {', '.join(KINDS)} (got {self.kinds!r})")

    @property
    def seed(self) -> int:
        return self.settings.seed


@dataclass(frozen=True)
class SyntheticTargets:
    """One synthetic targets file: its text, the patterns it left out (the
    synthetic trial did not show them) and the observed values it holds."""

    kind: str
    truth_index: int
    text: str
    dropped_patterns: tuple[str, ...]
    observed: dict[str, float]


@dataclass(frozen=True)
class RecoveryRun:
    """One ABC-SMC run: a truth, a kind of targets, the posterior and how it went."""

    kind: str
    truth_index: int
    truth: dict[str, float]
    posterior: Posterior
    targets: SyntheticTargets
    generations: int
    epsilon: float
    epsilon_floor: float
    reached_floor: bool
    simulations: int
    wall_s: float


@dataclass
class Recovery:
    """Every run of a study, with its design and priors."""

    design: Design
    priors: PriorSet
    truths: list[dict[str, float]]
    runs: list[RecoveryRun]
    wall_s: float = 0.0
    cpu_s: float = 0.0
    load: tuple[float, float] = (math.nan, math.nan)
    workers: int = 1
    configuration: str | None = None  # the base's site configuration, held fixed


# --- truths and synthetic trials -------------------------------------------------------


def numeric_priors(priors: PriorSet) -> PriorSet:
    """``priors`` without the site-configuration choice: the study keeps the base
    scenario's configuration (coverage and narrowing are about real values)."""
    kept = tuple(p for p in priors.priors if not p.is_choice)
    return PriorSet(kept, priors.path, priors.description)


def draw_truths(priors: PriorSet, base: Scenario, k: int, seed: int) -> list[dict[str, float]]:
    """``k`` parameter sets drawn independently from the priors (inverse CDF of
    uniforms from ``seed``), each a valid scenario (an invalid draw is drawn again)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7265636F]))  # "reco"
    truths: list[dict[str, float]] = []
    while len(truths) < k:
        u = rng.random(len(priors.priors))
        truth = {p.parameter: float(p.ppf(q)) for p, q in zip(priors.priors, u, strict=True)}
        if is_valid_scenario(base, truth):
            truths.append(truth)
    return truths


def synthetic_trial(base: Scenario, truth: Mapping[str, float], seed: int, k: int) -> Results:
    """ONE simulated trial at ``truth``, seeded by ``replicate_seed(seed, k)``."""
    return run(apply_parameters(base, truth), replicate_seed(seed, k))


def _counts(results: Results) -> dict[str, tuple[int, int]]:
    """(count, n) of the shares the targets use, counted from the participants."""
    p = results.participant_arrays
    ps = np.asarray(p["arm"]) == 1
    uc = ~ps
    site = np.asarray(p["site"])
    readmitted = np.asarray(p["readmitted_12m"], dtype=bool)
    met = np.asarray(p["met"], dtype=bool)
    engaged = np.asarray(p["engaged"], dtype=bool)

    def count(mask: np.ndarray, of: np.ndarray) -> tuple[int, int]:
        return int((mask & of).sum()), int(of.sum())

    out = {
        "met": count(met, ps),
        "readmit_ps": count(readmitted, ps),
        "readmit_uc": count(readmitted, uc),
        "engaged": count(engaged, ps),
    }
    for i, name in enumerate(results.site_names):
        out[f"engaged_site_{name}"] = count(engaged, ps & (site == i))
    return out


def synthetic_targets(
    kind: str, results: Results, shipped: TargetSet, truth_index: int, seed: int
) -> SyntheticTargets:
    """The targets file of ``kind`` for one synthetic trial (see the module docstring).

    ``shipped`` must be bound to the scenario the trial ran (its patterns are
    evaluated on ``results``)."""
    counts = _counts(results)
    origin = f"{SYNTHETIC}: one simulated trial at truth {truth_index} (seed {seed})"
    entries: list[dict[str, Any]] = []

    def share(name: str, statistic: str, stands_for: str, **extra: Any) -> None:
        c, n = counts[name]
        entries.append(
            {"name": name, "statistic": statistic, **extra, "count": c, "n": n, "weight": 1.0}
            | {"source": f"{origin}; stands for {stands_for}", "grade": "T"}
        )

    share("met", "met_share", "the trial's 'had a known peer worker' (as shipped, count/n)")
    if kind == "published":
        entries.append(
            {
                "name": "readmit_uc_background",
                "statistic": "readmit_uc",
                "observed": counts["readmit_uc"][0] / counts["readmit_uc"][1],
                "weight": 0.25,
                "source": f"{origin}; stands for the shipped background figure (weight 0.25, "
                "no reported SE, as shipped)",
                "grade": "W",
            }
        )
    else:
        share("readmit_ps", "readmit_ps", "peer-arm readmissions at 12 months (count/n)")
        share("readmit_uc", "readmit_uc", "control-arm readmissions at 12 months (count/n)")
        share("engaged", "engaged_share", "the peer arm's engaged share (count/n)")
        for name in results.site_names:
            share(
                f"engaged_site_{name}",
                "site_engaged_share",
                f"site {name}'s engaged share (count/n)",
                site=name,
            )
    row = shipped.row(results)
    dropped = []
    for target in shipped.fitted:
        if target.pattern is None:
            continue
        if target.pattern.holds(shipped.value_of(target, row)):
            entries.append(_pattern_entry(target))
        else:
            dropped.append(target.name)
    text = _targets_toml(
        f"{SYNTHETIC}: {kind} targets of truth {truth_index}", entries, tuple(dropped)
    )
    observed = {e["name"]: _observed_of(e) for e in entries if "pattern" not in e}
    return SyntheticTargets(kind, truth_index, text, tuple(dropped), observed)


def _observed_of(entry: Mapping[str, Any]) -> float:
    if "count" in entry:
        return float(entry["count"]) / float(entry["n"])
    return float(entry["observed"])


def _pattern_entry(target: Target) -> dict[str, Any]:
    entry = target.as_dict()
    entry["note"] = (entry.get("note", "") + " Shown by this synthetic trial.").strip()
    return entry


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def _targets_toml(
    description: str, entries: Iterable[Mapping[str, Any]], dropped: Sequence[str]
) -> str:
    lines = [
        f"# {description}.",
        "# Written by calibration.recovery; loadable with calibration.targets.load_targets.",
        "# Sourced patterns the synthetic trial did not show (left out): "
        + (", ".join(dropped) if dropped else "none"),
        "",
        f"description = {_toml_value(description)}",
    ]
    for entry in entries:
        lines += ["", "[[target]]"]
        lines += [f"{key} = {_toml_value(value)}" for key, value in entry.items()]
    return "\n".join(lines) + "\n"


# --- running ----------------------------------------------------------------------------


def run_recovery(
    design: Design,
    base: Scenario,
    priors: PriorSet,
    backend: Backend,
    *,
    work: Path,
    report: Report | None = None,
    detail: Report | None = None,
) -> Recovery:
    """Every run of ``design``: K truths times its kinds. ABC databases go to
    ``work`` (a scratch folder). ``report`` gets a line per run, ``detail`` the
    ABC-SMC's line per generation."""
    from calibration.inference import run_abc  # pyabc: imported when a study runs

    say = report or (lambda message: None)
    shipped = load_targets(default_targets_path()).bind(base)
    truths = draw_truths(priors, base, design.truths, design.seed)
    settings = design.settings
    n_runs = len(truths) * len(design.kinds)
    runs: list[RecoveryRun] = []
    start = time.perf_counter()
    for k, truth in enumerate(truths, start=1):
        results = synthetic_trial(base, truth, design.seed, k)
        for kind in design.kinds:
            made = synthetic_targets(kind, results, shipped, k, design.seed)
            path = work / f"{kind}_truth{k}.toml"
            path.write_text(made.text, encoding="utf-8")
            targets = load_targets(path).bind(base)
            problem = Problem(base, targets, priors, settings.replicates, settings.seed)
            began = time.perf_counter()
            result = run_abc(
                problem, settings, work / f"{kind}_truth{k}.db", backend, report=detail
            )
            generations = result.generations
            one = RecoveryRun(
                kind=kind,
                truth_index=k,
                truth=truth,
                posterior=Posterior(result.posterior, tuple(priors.parameters)),
                targets=made,
                generations=len(generations),
                epsilon=float(generations["epsilon"].iloc[-1]),
                epsilon_floor=result.epsilon_floor,
                reached_floor=result.reached_floor,
                simulations=int(generations["simulations"].sum()),
                wall_s=time.perf_counter() - began,
            )
            runs.append(one)
            say(_progress_line(one, len(runs), n_runs, time.perf_counter() - start))
    return Recovery(design, priors, truths, runs, configuration=base.site_configuration)


def _progress_line(one: RecoveryRun, done: int, total: int, elapsed: float) -> str:
    floor = "reached" if one.reached_floor else "not reached"
    line = (
        f"run {done} of {total}: truth {one.truth_index}, {one.kind} targets: "
        f"{one.generations} generation(s), epsilon {one.epsilon:.3g} "
        f"(floor {one.epsilon_floor:.3g}, {floor}), {one.simulations:,} particles simulated "
        f"in the generations, {duration_text(one.wall_s)}"
    )
    if one.targets.dropped_patterns:
        line += f"; patterns not shown, left out: {', '.join(one.targets.dropped_patterns)}"
    if done < total:
        line += f"; about {duration_text(elapsed / done * (total - done))} to go"
    return line


# --- measuring -------------------------------------------------------------------------


def prior_interval(priors: PriorSet, parameter: str) -> tuple[float, float]:
    """The prior's central 90% interval of ``parameter`` (natural scale)."""
    prior = priors[parameter]
    return float(prior.ppf(INTERVAL[0])), float(prior.ppf(INTERVAL[1]))


def interval_rows(recovery: Recovery) -> pd.DataFrame:
    """One row per run and parameter: the truth, the posterior's 5%, 50% and 95%
    quantiles, the interval's width over the prior's, and whether it covers."""
    rows = []
    for one in recovery.runs:
        lo, mid, hi = (one.posterior.quantile(q) for q in (INTERVAL[0], 0.5, INTERVAL[1]))
        for p in recovery.priors.parameters:
            p_lo, p_hi = prior_interval(recovery.priors, p)
            truth = one.truth[p]
            rows.append(
                {
                    "kind": one.kind,
                    "truth_index": one.truth_index,
                    "parameter": p,
                    "truth": truth,
                    "posterior_q05": lo[p],
                    "posterior_q50": mid[p],
                    "posterior_q95": hi[p],
                    "width_ratio": (hi[p] - lo[p]) / (p_hi - p_lo),
                    "covered": bool(lo[p] <= truth <= hi[p]),
                }
            )
    return pd.DataFrame(rows)


def coverage_reasonable(covered: int, k: int, nominal: float = NOMINAL_COVERAGE) -> bool:
    """False when ``covered`` of ``k`` truths is significantly fewer than a
    ``nominal`` interval covers: P(Binomial(k, nominal) <= covered) < 5%."""
    if not 0 <= covered <= k:
        raise ValueError(f"covered must be between 0 and k = {k} (got {covered})")
    tail = sum(math.comb(k, i) * nominal**i * (1 - nominal) ** (k - i) for i in range(covered + 1))
    return tail >= COVERAGE_TEST_LEVEL


def verdict(narrowing: float, covered: int, k: int, kind: str) -> str:
    """ "identified by <kind's summaries>" when ``narrowing`` (median posterior/prior
    90% width) is below ``NARROWING_IDENTIFIED`` and coverage is reasonable, else
    "not identified"."""
    if narrowing < NARROWING_IDENTIFIED and coverage_reasonable(covered, k):
        return f"identified by {KIND_LABELS[kind]}"
    return "not identified"


def why(narrowing: float, covered: int, k: int) -> str:
    """The reason for a verdict, in a few words."""
    narrow = narrowing < NARROWING_IDENTIFIED
    reasonable = coverage_reasonable(covered, k)
    if narrow and reasonable:
        return "narrows; coverage consistent with 90%"
    if narrow:
        return "narrows but misses the truth too often"
    if not reasonable:
        return "hardly narrows, and misses the truth too often"
    return "the posterior stays close to the prior"


def summary_table(recovery: Recovery, intervals: pd.DataFrame) -> pd.DataFrame:
    """One row per kind and parameter: coverage, narrowing and the verdict."""
    units = {r["name"]: r["unit"] for r in parameter_rows()}
    rows = []
    for kind in recovery.design.kinds:
        for p in recovery.priors.parameters:
            part = intervals[(intervals["kind"] == kind) & (intervals["parameter"] == p)]
            k = len(part)
            covered = int(part["covered"].sum())
            narrowing = float(part["width_ratio"].median())
            p_lo, p_hi = prior_interval(recovery.priors, p)
            rows.append(
                {
                    "kind": kind,
                    "parameter": p,
                    "unit": units.get(p, ""),
                    "prior_q05": p_lo,
                    "prior_q95": p_hi,
                    "truths": k,
                    "covered": covered,
                    "coverage": covered / k,
                    "coverage_reasonable": coverage_reasonable(covered, k),
                    "narrowing": narrowing,
                    "narrowing_min": float(part["width_ratio"].min()),
                    "narrowing_max": float(part["width_ratio"].max()),
                    "verdict": verdict(narrowing, covered, k, kind),
                    "why": why(narrowing, covered, k),
                }
            )
    return pd.DataFrame(rows)


def runs_table(recovery: Recovery) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "kind": r.kind,
                "truth_index": r.truth_index,
                "generations": r.generations,
                "epsilon": r.epsilon,
                "epsilon_floor": r.epsilon_floor,
                "reached_floor": r.reached_floor,
                "particles_simulated": r.simulations,
                "wall_s": round(r.wall_s, 1),
                "patterns_left_out": " ".join(r.targets.dropped_patterns),
            }
            for r in recovery.runs
        ]
    )


def truths_table(recovery: Recovery) -> pd.DataFrame:
    return pd.DataFrame(
        [{"truth_index": k, **truth} for k, truth in enumerate(recovery.truths, start=1)]
    )


# --- the report ----------------------------------------------------------------------------


def conclusion(summary: pd.DataFrame, kinds: Sequence[str]) -> str:
    """The plain one-paragraph conclusion: which parameters each kind identifies."""
    parts = []
    for kind in kinds:
        part = summary[summary["kind"] == kind]
        named = part[part["verdict"] != "not identified"]["parameter"].tolist()
        unnamed = part[part["verdict"] == "not identified"]["parameter"].tolist()
        parts.append(
            f"{KIND_LABELS[kind].capitalize()} identify "
            + (_names(named) if named else "none of the parameters")
            + (f"; they do not identify {_names(unnamed)}" if unnamed else "")
            + "."
        )
    k = int(summary["truths"].iloc[0])
    return (
        " ".join(parts)
        + f" With {k} truths, coverage is coarse (a 90% interval misses one truth in ten), "
        "so read it as a check that the intervals are not overconfident, and narrowing as "
        "the measure of what the summaries teach."
    )


def _names(parameters: Sequence[str]) -> str:
    shown = [f"`{p}`" for p in parameters]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def _g(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}g}"


def markdown_report(recovery: Recovery, summary: pd.DataFrame, runs: pd.DataFrame) -> str:
    design, settings = recovery.design, recovery.design.settings
    k = design.truths
    lines = [
        "# Calibration recovery: what the trial's summaries identify",
        "",
        "Written by `uv run python -m calibration.recovery` (calibration/recovery.py). "
        f"{k} true parameter sets drawn from the priors (seed {design.seed}); at each, ONE "
        "synthetic trial (one trial, as the real data are), turned into synthetic targets "
        "and fitted by ABC-SMC with the calibration's own machinery (distance, hard pattern "
        "constraints, epsilon floor).",
        *(
            [
                "",
                f"The site configuration stays at the base scenario's (`{recovery.configuration}`) "
                "throughout: the study measures what the summaries teach about real-valued "
                "parameters; the calibration report gives the configurations' posterior.",
            ]
            if recovery.configuration is not None
            else []
        ),
        "",
        "## Conclusion",
        "",
        conclusion(summary, design.kinds),
        "",
        "## Size and time",
        "",
        f"- {k} truth(s) x {len(design.kinds)} kind(s) of targets = "
        f"{len(recovery.runs)} ABC-SMC runs",
        f"- per run: population {settings.population}, {settings.replicates} simulated trials "
        f"per particle, at most {settings.generations} generations ({settings.refine} "
        "refining at the epsilon floor)",
        f"- {recovery.workers} worker(s); wall time {duration_text(recovery.wall_s)}, CPU "
        f"{duration_text(recovery.cpu_s)} (this process and its workers); 1-minute load average "
        f"{recovery.load[0]:.1f} at the start, {recovery.load[1]:.1f} at the end (shared machine)",
        "",
        "## Kinds of synthetic targets",
        "",
        "| kind | what it holds |",
        "|---|---|",
        *(f"| {kind} | {KIND_TEXT[kind]} |" for kind in design.kinds),
        "",
        "Each run's targets file is in `targets/`. A sourced pattern the synthetic trial did "
        "not show is left out (the runs table names them).",
        "",
        "## Per parameter",
        "",
        "Coverage: truths inside the posterior's 90% interval (weighted 5% to 95% "
        "quantiles), of "
        f"{k}. Narrowing: posterior 90% width / prior 90% width, median over the truths "
        "(range in brackets; 1 = learnt nothing, 0 = pinned down). Identified: narrowing "
        f"below {NARROWING_IDENTIFIED} and coverage not significantly below 90% (one-sided "
        f"binomial test at {COVERAGE_TEST_LEVEL:.0%}).",
        "",
    ]
    for kind in design.kinds:
        lines += _kind_table(summary[summary["kind"] == kind], kind)
    if len(design.kinds) > 1:
        lines += _contrast_table(summary, design.kinds)
    lines += _runs_section(runs)
    lines += [
        "## Reproducibility",
        "",
        "The truths, the synthetic trials and each particle's simulations follow from the "
        "seed. pyabc's proposals draw from NumPy's global generator, reseeded from the "
        "operating system, so a repeated study gives different, statistically equivalent "
        "posteriors: narrowing and coverage move a little, verdicts near the threshold can "
        "change.",
        "",
    ]
    return "\n".join(lines)


def _kind_table(part: pd.DataFrame, kind: str) -> list[str]:
    lines = [
        f"### {kind}: {KIND_LABELS[kind]}",
        "",
        "| parameter | unit | prior 90% interval | coverage | narrowing | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in part.itertuples(index=False):
        lines.append(
            f"| `{r.parameter}` | {r.unit} | {_g(r.prior_q05)} to {_g(r.prior_q95)} | "
            f"{r.covered} of {r.truths} ({r.coverage:.0%}) | {r.narrowing:.2f} "
            f"({r.narrowing_min:.2f}-{r.narrowing_max:.2f}) | {r.verdict} ({r.why}) |"
        )
    return [*lines, ""]


def _contrast_table(summary: pd.DataFrame, kinds: Sequence[str]) -> list[str]:
    lines = [
        "### Published versus trial-type summaries",
        "",
        "| parameter | " + " | ".join(f"{k}: narrowing, coverage" for k in kinds) + " |",
        "|---|" + "---|" * len(kinds),
    ]
    for p in summary["parameter"].drop_duplicates():
        cells = []
        for kind in kinds:
            r = summary[(summary["kind"] == kind) & (summary["parameter"] == p)].iloc[0]
            mark = "**identified**" if r["verdict"] != "not identified" else "not identified"
            cells.append(f"{r['narrowing']:.2f}, {r['covered']}/{r['truths']}: {mark}")
        lines.append(f"| `{p}` | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _runs_section(runs: pd.DataFrame) -> list[str]:
    lines = [
        "## Runs",
        "",
        "| kind | truth | generations | epsilon (floor) | particles simulated in the "
        "generations | wall | patterns not shown (left out) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs.itertuples(index=False):
        floor = "" if r.reached_floor else ", floor not reached"
        lines.append(
            f"| {r.kind} | {r.truth_index} | {r.generations} | {r.epsilon:.3g} "
            f"({r.epsilon_floor:.3g}{floor}) | {r.particles_simulated:,} | "
            f"{duration_text(float(r.wall_s))} | {r.patterns_left_out or 'none'} |"
        )
    return [*lines, ""]


# --- writing ----------------------------------------------------------------------------


def write_outputs(
    dest: Path,
    recovery: Recovery,
    base: Scenario,
    *,
    started: datetime,
    command: Sequence[str],
    priors_path: Path | None,
) -> Path:
    """The output folder (see the module docstring), written at once."""
    intervals = interval_rows(recovery)
    summary = summary_table(recovery, intervals)
    runs = runs_table(recovery)
    with atomic_directory(dest) as tmp:
        (tmp / "targets").mkdir()
        for one in recovery.runs:
            name = f"{one.kind}_truth{one.truth_index}.toml"
            (tmp / "targets" / name).write_text(one.targets.text, encoding="utf-8")
        summary.to_csv(tmp / "recovery.csv", index=False, float_format="%.4g")
        intervals.to_csv(tmp / "intervals.csv", index=False, float_format="%.4g")
        runs.to_csv(tmp / "runs.csv", index=False)
        truths_table(recovery).to_csv(tmp / "truths.csv", index=False, float_format="%.6g")
        report = markdown_report(recovery, summary, runs)
        (tmp / "recovery.md").write_text(report, encoding="utf-8")
        manifest = _manifest(recovery, base, started=started, command=command)
        manifest["priors"] = {
            "path": str(priors_path) if priors_path else None,
            "entries": recovery.priors.as_dicts(),
        }
        manifest["outputs"] = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
        manifest["outputs"].append("manifest.json")
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return dest


def _manifest(
    recovery: Recovery, base: Scenario, *, started: datetime, command: Sequence[str]
) -> dict[str, Any]:
    settings = recovery.design.settings
    manifest = build_manifest(
        base,
        None,
        master_seed=settings.seed,
        n_replicates=settings.replicates,
        workers=recovery.workers,
        started=started,
        finished=datetime.now(UTC),
        command=command,
    )
    manifest.pop("scenario", None)  # the ENRICH scenario as shipped: its hash is enough
    manifest["versions"].update({pkg: package_version(pkg) for pkg in ("pyabc", "scipy")})
    return {
        "format": "peersim-recovery/1",
        **manifest,
        "design": {
            "truths": recovery.design.truths,
            "kinds": list(recovery.design.kinds),
            "settings": settings.as_dict(),
            "narrowing_identified": NARROWING_IDENTIFIED,
            "interval": list(INTERVAL),
            "coverage_test_level": COVERAGE_TEST_LEVEL,
        },
        "shipped_targets": str(default_targets_path()),
        "wall_s": round(recovery.wall_s, 1),
        "cpu_s": round(recovery.cpu_s, 1),
        "load_average_1min": list(recovery.load),
    }


# --- the command ------------------------------------------------------------------------

DESCRIPTION = """\
Simulation-based recovery of the calibration: which free parameters the trial's
summaries identify.

For K true parameter sets drawn from the priors (fixed seed), simulate ONE
synthetic ENRICH trial at each, write its synthetic targets, run ABC-SMC on them
(the calibration's own distance, hard pattern constraints and epsilon floor) and
report per parameter:

  coverage   share of the K truths inside the posterior's 90% interval
  narrowing  median over K of posterior 90% width / prior 90% width
  verdict    "identified by ..." when narrowing < 0.75 and coverage is not
             significantly below 90%, else "not identified"

twice: with targets of the kind the shipped file holds (met share, patterns:
what the published summaries give) and with trial-type targets (also readmission
per arm, engaged share and engaged share per site, each count/n: what a full
trial report would give).

Cost: K x 2 ABC-SMC runs, each about population x (1 + generations / acceptance)
particles of --replicates trials (a trial takes about 0.05 s of CPU). The output
folder appears only when complete: recovery.md, recovery.csv, intervals.csv,
runs.csv, truths.csv, targets/*.toml and manifest.json.
"""

EXAMPLES = """\
examples:
  uv run python -m calibration.recovery --out /tmp/recovery --truths 2 --population 50
  uv run python -m calibration.recovery --out docs/calibration_recovery --truths 4 \\
      --population 150 --generations 4 --workers 2
  uv run python -m calibration.recovery --out /tmp/r --kinds trial --priors my_priors.toml
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m calibration.recovery",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder (must not exist)")
    parser.add_argument(
        "--truths",
        type=int,
        default=DEFAULT_TRUTHS,
        metavar="K",
        help="true parameter sets (default %(default)s)",
    )
    parser.add_argument(
        "--population",
        type=int,
        default=DEFAULT_POPULATION,
        metavar="N",
        help="particles per generation (default %(default)s)",
    )
    parser.add_argument(
        "--replicates",
        type=int,
        default=DEFAULT_REPLICATES,
        metavar="R",
        help="simulated trials per particle (default %(default)s)",
    )
    parser.add_argument(
        "--generations",
        type=int,
        default=DEFAULT_GENERATIONS,
        metavar="G",
        help="most generations per run (default %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="W",
        help="worker processes; 1 runs in this process (default %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        metavar="S",
        help="master seed: truths, synthetic trials, particles (default %(default)s)",
    )
    parser.add_argument(
        "--kinds",
        nargs="+",
        choices=KINDS,
        default=list(KINDS),
        help="kinds of synthetic targets (default: both)",
    )
    parser.add_argument(
        "--priors",
        type=Path,
        default=None,
        metavar="FILE",
        help="priors file (default: calibration/priors/enrich.toml)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--verbose", action="store_true", help="also ABC-SMC's line per generation")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not is_free(args.out):
        parser.error(f"--out {args.out}: exists and is not empty; results are never overwritten")
    try:
        settings = Settings(args.population, args.generations, args.replicates, args.seed)
        design = Design(args.truths, settings, tuple(dict.fromkeys(args.kinds)))
        if args.workers < 1:
            raise ValueError(f"workers must be a whole number >= 1 (got {args.workers})")
        priors = numeric_priors(load_priors(args.priors))
    except (ValueError, OSError) as e:
        parser.error(str(e))
    started = datetime.now(UTC)
    base = load_scenario(None)
    say = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    detail = (lambda m: print("  " + m, file=sys.stderr, flush=True)) if args.verbose else None
    load_start = os.getloadavg()[0]
    clock = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="peersim-recovery-") as work,
        open_executor(ExecutorSpec(workers=args.workers)) as backend,
    ):
        recovery = run_recovery(
            design, base, priors, backend, work=Path(work), report=say, detail=detail
        )
    recovery.wall_s = time.perf_counter() - clock
    recovery.cpu_s = _cpu_seconds()
    recovery.load = (load_start, os.getloadavg()[0])
    recovery.workers = args.workers
    command = [
        "python",
        "-m",
        "calibration.recovery",
        *(argv if argv is not None else sys.argv[1:]),
    ]
    write_outputs(
        args.out, recovery, base, started=started, command=command, priors_path=args.priors
    )
    say(
        f"recovery: {len(recovery.runs)} runs in {duration_text(recovery.wall_s)}; "
        f"report in {args.out / 'recovery.md'}"
    )
    return 0


def _cpu_seconds() -> float:
    """User + system CPU of this process and its finished children (the pool's workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


if __name__ == "__main__":
    sys.exit(main())
