"""calibration.recovery: the simulation-based recovery study.

What each group proves:

- **Verdict rule** (fast, known answers): coverage is "reasonable" unless a
  nominal 90% interval would cover that few truths with probability below 5%
  (binomial tail worked out by hand); a parameter is identified only when its
  median narrowing is below 0.75 *and* coverage is reasonable.
- **Measures** (fast, hand-made posteriors): coverage and narrowing in the
  summary are what the posteriors' 5% and 95% quantiles give, computed by hand.
- **Synthetic targets** (fast, one simulated trial): the file validates and binds,
  its counts are the trial's shares, and the shipped patterns the trial does not
  show are left out.
- **End to end** (slow): a tiny study (2 truths, 2 parameters, 20 particles)
  writes every file with the documented columns, its numbers follow from the
  posteriors by hand, and every synthetic targets file validates.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from calibration.posterior import Posterior
from calibration.priors import load_priors
from calibration.recovery import (
    KINDS,
    NARROWING_IDENTIFIED,
    Design,
    Recovery,
    RecoveryRun,
    SyntheticTargets,
    coverage_reasonable,
    draw_truths,
    interval_rows,
    main,
    prior_interval,
    run_recovery,
    summary_table,
    synthetic_targets,
    synthetic_trial,
    verdict,
    write_outputs,
)
from calibration.settings import Settings
from calibration.targets import default_targets_path, load_targets
from simulation import Scenario

PRIORS_2 = """\
[[prior]]
parameter = "ward.p_first_contact_per_week_max"
distribution = "uniform"
lower = 0.2
upper = 1.0
reason = "test"

[[prior]]
parameter = "readmission.p_readmit_12m_usual_care"
distribution = "uniform"
lower = 0.15
upper = 0.5
reason = "test"
"""
SUMMARY_COLUMNS = [
    "kind",
    "parameter",
    "unit",
    "prior_q05",
    "prior_q95",
    "truths",
    "covered",
    "coverage",
    "coverage_reasonable",
    "narrowing",
    "narrowing_min",
    "narrowing_max",
    "verdict",
    "why",
]
INTERVAL_COLUMNS = [
    "kind",
    "truth_index",
    "parameter",
    "truth",
    "posterior_q05",
    "posterior_q50",
    "posterior_q95",
    "width_ratio",
    "covered",
]


@pytest.fixture(scope="module")
def priors_2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("priors") / "priors.toml"
    path.write_text(PRIORS_2, encoding="utf-8")
    return path


# --- the verdict rule --------------------------------------------------------------------


def test_coverage_is_reasonable_unless_the_binomial_tail_is_below_5_percent() -> None:
    # K = 5 at nominal 0.9: P(X <= 3) = 1 - 0.9**5 - 5 * 0.9**4 * 0.1 = 0.08146 (>= 0.05),
    # P(X <= 2) = 0.00856 (< 0.05).
    assert coverage_reasonable(3, 5), "3 of 5: tail 0.081, not significantly low"
    assert not coverage_reasonable(2, 5), "2 of 5: tail 0.0086, significantly low"
    assert coverage_reasonable(5, 5), "all covered"
    # K = 2: P(X = 0) = 0.01 < 0.05, P(X <= 1) = 0.19.
    assert not coverage_reasonable(0, 2), "0 of 2: tail 0.01"
    assert coverage_reasonable(1, 2), "1 of 2: tail 0.19"
    with pytest.raises(ValueError, match="between 0 and k"):
        coverage_reasonable(3, 2)


def test_verdict_needs_narrowing_below_threshold_and_reasonable_coverage() -> None:
    assert NARROWING_IDENTIFIED == 0.75, "the issue's threshold"
    assert verdict(0.74, 5, 5, "trial") == "identified by trial-type summaries"
    assert verdict(0.74, 3, 5, "published") == "identified by the published summaries"
    assert verdict(0.75, 5, 5, "trial") == "not identified", "0.75 is not below 0.75"
    assert verdict(0.20, 2, 5, "trial") == "not identified", "narrow but 2 of 5 covered"
    assert verdict(0.95, 5, 5, "published") == "not identified", "covers but stays at the prior"


# --- coverage and narrowing from posteriors, by hand -----------------------------------------


def test_summary_coverage_and_narrowing_are_the_posterior_quantiles(priors_2: Path) -> None:
    priors = load_priors(priors_2)
    params = priors.parameters
    rng = np.random.default_rng(3)
    # Two truths; posteriors drawn around known centres so the hand numbers are plain.
    truths = [{params[0]: 0.5, params[1]: 0.3}, {params[0]: 0.9, params[1]: 0.2}]
    centres = [{params[0]: 0.5, params[1]: 0.45}, {params[0]: 0.6, params[1]: 0.2}]
    runs = []
    for k, (truth, centre) in enumerate(zip(truths, centres, strict=True), start=1):
        samples = pd.DataFrame({p: rng.normal(centre[p], 0.03, 400) for p in params})
        samples["weight"] = rng.uniform(0.5, 1.5, 400)
        made = SyntheticTargets("trial", k, "", (), {})
        runs.append(
            RecoveryRun(
                "trial", k, truth, Posterior(samples, tuple(params)), made, 1, 1, 1, True, 1, 1
            )
        )
    settings = Settings(population=10, generations=1, replicates=1, seed=1)
    recovery = Recovery(Design(2, settings, ("trial",)), priors, truths, runs)
    intervals = interval_rows(recovery)
    summary = summary_table(recovery, intervals)
    assert list(summary.columns) == SUMMARY_COLUMNS, "documented columns"
    for p in params:
        p_lo, p_hi = prior_interval(priors, p)
        covered, ratios = 0, []
        for run in runs:
            lo, hi = run.posterior.quantile(0.05)[p], run.posterior.quantile(0.95)[p]
            covered += lo <= run.truth[p] <= hi
            ratios.append((hi - lo) / (p_hi - p_lo))
        row = summary[summary["parameter"] == p].iloc[0]
        assert row["covered"] == covered, f"{p}: covered by hand {covered}"
        assert row["coverage"] == pytest.approx(covered / 2), f"{p}: coverage {covered}/2"
        assert row["narrowing"] == pytest.approx(float(np.median(ratios))), f"{p}: median ratio"
    # By construction: p0 covered at truth 1 only (truth 2 is 0.3 from its centre), p1 at
    # truth 2 only; every interval is about 2 * 1.645 * 0.03 wide.
    assert summary["covered"].tolist() == [1, 1], "one of two covered per parameter"
    prior_width_0 = prior_interval(priors, params[0])[1] - prior_interval(priors, params[0])[0]
    assert summary["narrowing"].iloc[0] == pytest.approx(2 * 1.645 * 0.03 / prior_width_0, rel=0.15)
    assert summary["verdict"].tolist() == ["identified by trial-type summaries"] * 2, (
        "narrow, and 1 of 2 is not significantly below 90%"
    )


# --- synthetic targets ---------------------------------------------------------------------


def test_synthetic_targets_validate_and_hold_the_trials_counts(
    scenario: Scenario, tmp_path: Path, priors_2: Path
) -> None:
    priors = load_priors(priors_2)
    truths = draw_truths(priors, scenario, 2, seed=9)
    assert truths == draw_truths(priors, scenario, 2, seed=9), "a fixed seed, the same truths"
    for truth in truths:
        for p in priors.priors:
            assert p.lower <= truth[p.parameter] <= p.upper, f"{p.parameter} inside its prior"
    results = synthetic_trial(scenario, truths[0], 9, 1)
    shipped = load_targets(default_targets_path()).bind(scenario)
    row = shipped.row(results)
    shown = {
        t.name
        for t in shipped.fitted
        if t.pattern is not None and t.pattern.holds(shipped.value_of(t, row))
    }
    for kind in KINDS:
        made = synthetic_targets(kind, results, shipped, 1, 9)
        path = tmp_path / f"{kind}.toml"
        path.write_text(made.text, encoding="utf-8")
        targets = load_targets(path).bind(scenario)  # raises TargetsError if invalid
        patterns = {t.name for t in targets.targets if t.is_pattern}
        assert patterns == shown, f"{kind}: the shipped patterns this trial shows, no others"
        all_patterns = {t.name for t in shipped.fitted if t.is_pattern}
        assert set(made.dropped_patterns) == all_patterns - shown, f"{kind}: the rest left out"
        assert targets["met"].observed.value == pytest.approx(results.trial["met_share"])
        assert targets["met"].observed.n == results.trial["n_ps"], "met share among the peer arm"
    trial = load_targets(tmp_path / "trial.toml")
    for key in ("readmit_ps", "readmit_uc"):
        assert trial[key].observed.value == pytest.approx(results.trial[key]), f"{key} = count/n"
    assert trial["readmit_uc"].observed.n == results.trial["n_uc"]
    assert trial["engaged"].observed.value == pytest.approx(results.trial["engaged_share"])
    for site in scenario.sites:
        t = trial[f"engaged_site_{site}"]
        assert t.statistic == "site_engaged_share", f"site {site}: per-site statistic"
        assert t.observed.value == pytest.approx(results.trial[f"engaged_share_{site}"])
    published = load_targets(tmp_path / "published.toml")
    assert published["readmit_uc_background"].weight == 0.25, "as shipped: a weak target"
    assert published["readmit_uc_background"].observed.se is None, "as shipped: no reported SE"
    assert "engaged" not in published.names, "the published kind has no engaged share"


def test_help_teaches_and_an_existing_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for part in (
        "coverage",
        "narrowing",
        "0.75",
        "--truths",
        "--population",
        "--workers",
        "examples:",
    ):
        assert part in text, f"--help mentions {part!r}"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("x")
    with pytest.raises(SystemExit) as done:
        main(["--out", str(tmp_path / "out")])
    assert done.value.code == 2, "an existing output folder is a user error"
    assert "never overwritten" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["x"], "nothing written"


# --- end to end ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def study(
    tmp_path_factory: pytest.TempPathFactory, priors_2: Path, scenario: Scenario
) -> dict[str, Any]:
    """2 truths x 2 kinds, 20 particles, 2 trials each, at most 2 generations, in-process."""
    from simulation.executors import ExecutorSpec, open_executor

    folder = tmp_path_factory.mktemp("study")
    priors = load_priors(priors_2)
    design = Design(2, Settings(population=20, generations=2, replicates=2, seed=5))
    lines: list[str] = []
    with open_executor(ExecutorSpec(workers=1)) as backend:
        recovery = run_recovery(design, scenario, priors, backend, work=folder, report=lines.append)
    from datetime import UTC, datetime

    out = folder / "out"
    write_outputs(
        out, recovery, scenario, started=datetime.now(UTC), command=["test"], priors_path=priors_2
    )
    return {"recovery": recovery, "out": out, "lines": lines}


@pytest.mark.slow
def test_study_writes_the_documented_files_and_columns(study: dict[str, Any]) -> None:
    out: Path = study["out"]
    names = {p.name for p in out.iterdir()}
    expected = {"recovery.md", "recovery.csv", "intervals.csv", "runs.csv", "truths.csv"}
    assert expected | {"manifest.json", "targets"} == names, f"files in {out}"
    summary = pd.read_csv(out / "recovery.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS, "recovery.csv columns"
    assert len(summary) == 2 * 2, "2 kinds x 2 parameters"
    assert list(pd.read_csv(out / "intervals.csv").columns) == INTERVAL_COLUMNS
    assert len(study["lines"]) == 4, "a progress line per run"
    assert study["lines"][0].startswith("run 1 of 4: truth 1, published targets"), study["lines"]
    report = (out / "recovery.md").read_text(encoding="utf-8")
    for part in ("## Conclusion", "### published", "### trial", "probability per week", "## Runs"):
        assert part in report, f"report has {part!r}"
    import json

    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["design"]["truths"] == 2
    assert manifest["design"]["settings"]["population"] == 20
    assert "recovery.md" in manifest["outputs"]


@pytest.mark.slow
def test_study_numbers_follow_from_the_posteriors_by_hand(study: dict[str, Any]) -> None:
    recovery: Recovery = study["recovery"]
    summary = pd.read_csv(study["out"] / "recovery.csv")
    intervals = pd.read_csv(study["out"] / "intervals.csv")
    run = next(r for r in recovery.runs if r.kind == "trial" and r.truth_index == 1)
    p = "readmission.p_readmit_12m_usual_care"
    lo, hi = run.posterior.quantile(0.05)[p], run.posterior.quantile(0.95)[p]
    row = intervals[
        (intervals["kind"] == "trial")
        & (intervals["truth_index"] == 1)
        & (intervals["parameter"] == p)
    ].iloc[0]
    assert row["posterior_q05"] == pytest.approx(lo, rel=1e-3), "5% quantile, as written"
    assert row["posterior_q95"] == pytest.approx(hi, rel=1e-3), "95% quantile, as written"
    assert row["truth"] == pytest.approx(run.truth[p], rel=1e-3)
    assert bool(row["covered"]) == (lo <= run.truth[p] <= hi)
    prior_width = 0.95 * 0.35 - 0.05 * 0.35  # uniform(0.15, 0.5): 90% of 0.35
    assert row["width_ratio"] == pytest.approx((hi - lo) / prior_width, rel=1e-3)
    for kind in KINDS:
        for q in recovery.priors.parameters:
            mine = [r for r in recovery.runs if r.kind == kind]
            covered = 0
            ratios = []
            for r in mine:
                a, b = r.posterior.quantile(0.05)[q], r.posterior.quantile(0.95)[q]
                covered += a <= r.truth[q] <= b
                width = prior_interval(recovery.priors, q)
                ratios.append((b - a) / (width[1] - width[0]))
            got = summary[(summary["kind"] == kind) & (summary["parameter"] == q)].iloc[0]
            assert got["covered"] == covered, f"{kind} {q}: {covered} of 2 by hand"
            assert got["narrowing"] == pytest.approx(float(np.median(ratios)), rel=1e-3)
            assert got["verdict"] == verdict(float(np.median(ratios)), covered, 2, kind)


@pytest.mark.slow
def test_study_targets_files_validate(study: dict[str, Any], scenario: Scenario) -> None:
    folder = study["out"] / "targets"
    files = sorted(p.name for p in folder.iterdir())
    assert files == [f"{k}_truth{i}.toml" for k in sorted(KINDS) for i in (1, 2)], files
    for path in folder.iterdir():
        targets = load_targets(path).bind(scenario)
        assert "met" in targets.names, f"{path.name}: the met share is always a target"
        assert all("SYNTHETIC" in t.source for t in targets.targets if not t.is_pattern), (
            f"{path.name}: synthetic numbers say so in their source"
        )
    assert math.isfinite(float(pd.read_csv(study["out"] / "runs.csv")["epsilon"].min()))
