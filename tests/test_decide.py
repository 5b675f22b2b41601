"""``peersim decide``: robustness, scenario discovery and value of information.

Known answers on synthetic ensembles (``analysis.decide`` is pure):

- the probability of improvement, regret, rank and the pairwise shares equal a
  hand count on a fixed six-set ensemble;
- PRIM (ema_workbench) finds a planted box of failures, numeric and categorical;
- the value-of-information ranking puts the planted parameter first, and the
  binned estimators equal hand-computed values where the answer is exact;
- the ensemble is a Latin hypercube of the priors, reproducible from the seed,
  and pairs every scenario's replicates by common random numbers.

On the command line: a small run writes the documented files; bad input (an
unknown outcome, a what-if equal to the baseline, an empty ensemble, a what-if
changing a drawn parameter) exits 2 with one line and writes nothing.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.cli import main
from analysis.decide import (
    DECISION_COLUMNS,
    decision_jobs,
    decision_table,
    evpi,
    evppi,
    failure_box,
    pairwise_table,
    prior_ensemble,
    replicate_noise,
    spec_ensemble,
    variance_share,
    variance_shares,
)
from calibration.priors import SITE_CONFIGURATION, load_priors
from scenarios import default_scenario_path, load_scenario

ENRICH_TEXT = default_scenario_path().read_text(encoding="utf-8")
SPEC = Path(__file__).resolve().parent.parent / "analysis" / "sensitivity_enrich.toml"
OUTPUT_FILES = [
    "report.md", "ensemble.csv", "ensemble.parquet", "decisions.csv", "pairwise.csv",
    "value_of_information.csv", "evppi.csv", "prim_boxes.csv", "prim_trajectories.csv",
    "manifest.json", "figures/effects_engaged_share.png", "figures/voi_engaged_share.png",
]  # fmt: skip

# --- robustness: a hand count -------------------------------------------------------------

# Six parameter sets, three options (values per set; higher is better unless said).
HAND = pd.DataFrame(
    {
        "base": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "A": [2.0, 2.0, 2.0, 5.0, 7.0, 5.0],  # minus base: +1 0 -1 +1 +2 -1
        "B": [0.0, 3.0, 4.0, 4.0, 6.0, 7.0],  # minus base: -1 +1 +1 0 +1 +1
    }
)


def test_probability_of_improvement_equals_the_hand_count() -> None:
    table = decision_table(HAND, "base", "higher", "x").set_index("option")
    # A beats base in sets 0, 3, 4 (3 of 6), loses in 2 and 5, ties in 1.
    assert table.loc["A", "p_improve"] == pytest.approx(3 / 6), "A better in 3 of 6 sets"
    assert table.loc["A", "p_worse"] == pytest.approx(2 / 6), "A worse in 2 of 6 sets"
    # B beats base in sets 1, 2, 4, 5, loses in 0, ties in 3.
    assert table.loc["B", "p_improve"] == pytest.approx(4 / 6), "B better in 4 of 6 sets"
    assert table.loc["B", "p_worse"] == pytest.approx(1 / 6), "B worse in 1 of 6 sets"
    assert table.loc["A", "diff_mean"] == pytest.approx(2 / 6), "A - base sums to 2 over 6 sets"
    assert table.loc["base", "p_improve"] == 0.0, "the baseline never beats itself"
    expected = [c for c in DECISION_COLUMNS if c != "option"]
    assert list(table.columns) == expected, "the documented columns"


def test_lower_is_better_counts_the_other_side() -> None:
    table = decision_table(HAND, "base", "lower").set_index("option")
    assert table.loc["A", "p_improve"] == pytest.approx(2 / 6), "A lower than base in 2 of 6"
    assert table.loc["B", "p_improve"] == pytest.approx(1 / 6), "B lower than base in 1 of 6"


def test_regret_and_rank_equal_the_hand_count() -> None:
    table = decision_table(HAND, "base", "higher").set_index("option")
    # Best per set: 2 3 4 5 7 7. Regret: base 1 1 1 1 2 1; A 0 1 2 0 0 2; B 2 0 0 1 1 0.
    assert table.loc["base", "regret_mean"] == pytest.approx(7 / 6), "base regret 7/6"
    assert table.loc["A", "regret_mean"] == pytest.approx(5 / 6), "A regret 5/6"
    assert table.loc["B", "regret_mean"] == pytest.approx(4 / 6), "B regret 4/6"
    # 90th percentile (linear interpolation) of A's sorted regrets 0 0 0 1 2 2: 2.
    assert table.loc["A", "regret_p90"] == pytest.approx(2.0), "A's regret p90 is 2"
    # Means: base 3.5, A 23/6, B 4: B first, base last.
    assert table["rank"].to_dict() == {"base": 3, "A": 2, "B": 1}, "ranked by expected value"


def test_pairwise_shares_equal_the_hand_count() -> None:
    table = pairwise_table(HAND, "higher").set_index(["option", "versus"])
    # A - B: +2 -1 -2 +1 +1 -2.
    assert table.loc[("A", "B"), "p_better"] == pytest.approx(3 / 6), "A beats B in 3 of 6"
    assert table.loc[("B", "A"), "p_better"] == pytest.approx(3 / 6), "B beats A in 3 of 6"
    assert table.loc[("B", "base"), "p_better"] == pytest.approx(4 / 6), "as vs the baseline"
    assert len(table) == 6, "every ordered pair of the three options once"


def test_a_set_missing_a_value_is_left_out() -> None:
    gappy = HAND.copy()
    gappy.loc[0, "A"] = np.nan
    table = decision_table(gappy, "base", "higher").set_index("option")
    assert table.loc["A", "n_sets"] == 5, "set 0 lacks A's value, so 5 sets remain"
    assert table.loc["A", "p_improve"] == pytest.approx(2 / 5), "A better in sets 3, 4 of 5"


def test_replicate_noise_is_the_variance_of_the_paired_differences() -> None:
    rows = []
    # Set 0: base 1, 3 and what-if 2, 4 (differences 1, 1); set 1: base 1, 1 and
    # what-if 1, 3 (differences 0, 2: variance 2, over 2 replicates 1).
    for k, base, whatif in ((0, (1.0, 3.0), (2.0, 4.0)), (1, (1.0, 1.0), (1.0, 3.0))):
        for r in range(2):
            for label, v in (("base", base[r]), ("w", whatif[r])):
                rows.append(("overall", "x", v, label, k, r))
    values = pd.DataFrame(
        rows, columns=["scope", "outcome", "value", "scenario", "set", "replicate"]
    )
    noise = replicate_noise(values, "x", "base", ["w"])
    assert noise is not None, "two replicates per set give a noise estimate"
    assert noise.loc[0, "w"] == pytest.approx(0.0), "equal paired differences: no noise"
    assert noise.loc[1, "w"] == pytest.approx(1.0), "differences 0 and 2: variance 2 over 2"
    one = values[values["replicate"] == 0]
    assert replicate_noise(one, "x", "base", ["w"]) is None, "one replicate: no estimate"


# --- scenario discovery: a planted box ---------------------------------------------------------


def _toy(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": rng.uniform(0, 1, n),
            "b": rng.uniform(0, 1, n),
            "c": rng.uniform(0, 1, n),
            "cfg": pd.Categorical(rng.choice(["p", "q", "r"], n)),
        }
    )


def test_prim_finds_the_planted_box() -> None:
    x = _toy(300)
    fails = ((x["a"] > 0.6) & (x["b"] < 0.4)).to_numpy()
    box = failure_box(x, fails)
    assert box is not None, "PRIM should find a box around the planted failures"
    assert sorted(box.restricted) == ["a", "b"], f"the box should restrict a and b: {box.limits}"
    limits = box.limits.set_index("parameter")
    assert limits.loc["a", "lower"] == pytest.approx(0.6, abs=0.05), "a's lower limit near 0.6"
    assert limits.loc["b", "upper"] == pytest.approx(0.4, abs=0.05), "b's upper limit near 0.4"
    assert box.coverage >= 0.9, f"the box should hold >= 90% of failures, got {box.coverage}"
    assert box.density >= 0.9, f"the box should be >= 90% failures, got {box.density}"


def test_prim_finds_a_planted_categorical_box() -> None:
    x = _toy(300, seed=2)
    fails = ((x["cfg"] == "q") & (x["c"] < 0.5)).to_numpy()
    box = failure_box(x, fails)
    assert box is not None, "PRIM should find a box around the planted failures"
    limits = box.limits.set_index("parameter")
    assert sorted(box.restricted) == ["c", "cfg"], f"the box should restrict c and cfg: {limits}"
    assert limits.loc["cfg", "categories"] == "q", "the box should keep configuration q only"
    assert limits.loc["c", "upper"] == pytest.approx(0.5, abs=0.06), "c's upper limit near 0.5"


def test_no_box_without_structure_or_failures() -> None:
    x = _toy(200, seed=3)
    assert failure_box(x, np.zeros(200, dtype=bool)) is None, "no failures: no box"
    assert failure_box(x, np.ones(200, dtype=bool)) is None, "everything fails: no box"
    noise = np.random.default_rng(4).uniform(size=200) < 0.3
    box = failure_box(x, noise)
    assert box is None or box.density < 0.6, "failures at random give no dense box"


# --- value of information -----------------------------------------------------------------------


def test_value_of_information_ranks_the_planted_parameter_first() -> None:
    x = _toy(256, seed=5)
    rng = np.random.default_rng(6)
    y = 3.0 * x["a"].to_numpy() + 0.3 * x["b"].to_numpy() + rng.normal(0, 0.1, 256)
    shares = variance_shares(x, y, 16).set_index("parameter")
    assert shares["rank"].idxmin() == "a", f"a should rank first:\n{shares}"
    assert shares.loc["a", "variance_share"] > 0.8, "a explains most of the variance (~0.97)"
    assert shares.loc["c", "variance_share"] < 0.05, "c, unused, explains next to nothing"
    # Two options: do nothing (0) or act (pays a - 0.5): knowing a decides.
    nb = np.column_stack([np.zeros(256), x["a"].to_numpy() - 0.5 + 0.05 * x["b"].to_numpy()])
    info = evppi(x, nb, 16).set_index("parameter")
    assert info["rank"].idxmin() == "a", f"a should have the highest EVPPI:\n{info}"
    # The bias correction is conservative: it takes a little from informative ones too.
    assert info.loc["a", "share_of_evpi"] > 0.7, "knowing a is most of the information"


def test_binned_estimators_equal_exact_answers() -> None:
    x = pd.Series(np.arange(8, dtype=float))
    step = (x >= 4).to_numpy(float)  # constant within each of 2 bins of 4
    raw, corrected = variance_share(x, step, 2)
    assert raw == pytest.approx(1.0), "a step at the bin edge: the bins explain everything"
    assert corrected == pytest.approx(1.0), "nothing within bins: no correction"
    # Option 2 pays +1 in sets 0, 2 and -1 in sets 1, 3; option 1 pays 0.
    nb = np.array([[0.0, 1.0], [0.0, -1.0], [0.0, 1.0], [0.0, -1.0]])
    assert evpi(nb) == pytest.approx(0.5), "best per set 1 0 1 0, mean 0.5; best mean 0"
    split = pd.DataFrame({"odd": [0.0, 1.0, 0.0, 1.0]})
    info = evppi(split, nb, 2, n_null=0)
    assert info.loc[0, "evppi"] == pytest.approx(0.5), "a parameter that tells the sets apart"


def test_evppi_correction_removes_the_bias_of_an_uninformative_parameter() -> None:
    rng = np.random.default_rng(9)
    x = pd.DataFrame({"useless": rng.uniform(size=64)})
    # Two options whose difference is pure noise, unrelated to the parameter.
    nb = np.column_stack([np.zeros(64), rng.normal(0.0, 1.0, 64)])
    info = evppi(x, nb, 8).iloc[0]
    assert info["evppi_raw"] > 0.05, f"binning alone finds value in noise ({info['evppi_raw']})"
    assert info["evppi"] < 0.5 * info["evppi_raw"], (
        f"the correction should remove most of it: {info['evppi']} of {info['evppi_raw']}"
    )


# --- the ensemble and the runs --------------------------------------------------------------


def test_prior_ensemble_is_a_latin_hypercube_reproducible_from_the_seed() -> None:
    priors = load_priors(None)
    a = prior_ensemble(priors, 16, seed=7)
    b = prior_ensemble(priors, 16, seed=7)
    pd.testing.assert_frame_equal(a.sets, b.sets, obj="the same seed, the same sets")
    prior = priors["ward.p_first_contact_per_week_max"]  # uniform(0.2, 1.0)
    cells = np.floor((a.sets[prior.parameter] - 0.2) / 0.8 * 16).astype(int)
    assert sorted(cells) == list(range(16)), "one set in each of the 16 strata"
    configurations = np.floor(a.sets[SITE_CONFIGURATION]).astype(int).value_counts()
    assert configurations.to_dict() == {0: 4, 1: 4, 2: 4, 3: 4}, "each configuration 4 times"
    other = prior_ensemble(priors, 16, seed=8)
    assert not other.sets.equals(a.sets), "another seed, other sets"


def test_spec_ensemble_sets_each_range_and_scales_each_sites_own_value() -> None:
    from analysis.sensitivity_spec import load_spec

    base = load_scenario(None)
    spec = load_spec(SPEC, base=base)
    ensemble = spec_ensemble(spec, 10, seed=2)
    hours = "sites.*.supervisor_h_per_week"  # scale in [0.5, 1.5] of each site's own
    for k in range(10):
        scale = ensemble.values(k)[hours]
        assert 0.5 <= scale <= 1.5, f"set {k}: the scale {scale} should lie in [0.5, 1.5]"
        made = ensemble.scenario(base, k)
        for site, own in base.sites.items():
            assert made.sites[site].supervisor_h_per_week == pytest.approx(
                own.supervisor_h_per_week * scale
            ), f"set {k}: site {site}'s hours should be its own times {scale}"
    cells = np.floor((ensemble.sets["ward.w_preparation"] - 0.1) / 0.6 * 10).astype(int)
    assert sorted(cells) == list(range(10)), "one set in each of the 10 strata"


def test_jobs_pair_every_scenario_by_set_and_replicate() -> None:
    base = load_scenario(None)
    ensemble = prior_ensemble(load_priors(None), 8, seed=1, options=base.site_configurations.names)
    jobs = decision_jobs({"base": base, "other": base}, ensemble, seed=3, n_replicates=2)
    assert len(jobs) == 2 * 8 * 2, "scenarios x sets x replicates"
    by_key = {(j.tags["scenario"], j.tags["set"], j.tags["replicate"]): j for j in jobs}
    for k in range(8):
        for r in range(2):
            one, two = by_key[("base", k, r)], by_key[("other", k, r)]
            assert one.seed.entropy == two.seed.entropy, "one master seed"
            assert one.seed.spawn_key == two.seed.spawn_key == (k, r), "the same seed per set"
    set_3 = by_key[("base", 3, 0)].scenario
    value = ensemble.values(3)["engagement.logit_intercept"]
    assert set_3.engagement.logit_intercept == pytest.approx(value), "set 3's value applied"


# --- the command line ---------------------------------------------------------------------------


def _run_main(args: list[str]) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main(args)
    assert status == 0, f"peersim {' '.join(args)} should succeed, got exit status {status}"
    return buffer.getvalue()


@pytest.fixture(scope="module")
def decided(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A small analysis of two shipped what-ifs: output folder and stdout."""
    root = Path(__file__).resolve().parent.parent / "scenarios"
    out = tmp_path_factory.mktemp("decide") / "out"
    stdout = _run_main(
        [
            "decide",
            str(root / "enrich_trial.toml"),
            str(root / "whatif_nhs_hosting.toml"),
            str(root / "whatif_turnover.toml"),
            "--outcome",
            "engaged_share",
            "--n-sets",
            "16",
            "-n",
            "1",
            "-w",
            "1",
            "-o",
            str(out),
        ]
    )
    return out, stdout


def test_decide_writes_every_documented_file(decided: tuple[Path, str]) -> None:
    out, stdout = decided
    missing = [f for f in OUTPUT_FILES if not (out / f).is_file()]
    assert not missing, f"decide should write {missing}"
    ensemble = pd.read_parquet(out / "ensemble.parquet")
    assert len(ensemble) == 16 * 3, "one row per set and scenario for the one outcome"
    assert SITE_CONFIGURATION in ensemble, "the drawn site configuration is a column"
    decisions = pd.read_csv(out / "decisions.csv")
    assert list(decisions.columns) == list(DECISION_COLUMNS), "the documented columns"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["decision"]["ensemble"]["n_sets"] == 16, "the manifest records the ensemble"
    assert "better than enrich_trial in" in stdout, f"the summary says how often:\n{stdout}"
    report = (out / "report.md").read_text()
    assert "## Engaged with peer support" in report, "the report has a section per outcome"


def _whatif(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "whatif.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("whatif_text", "extra", "expected"),
    [
        pytest.param(
            "extends = 'base.toml'\n[supervision]\nshare_liaison_nfp = 0.1\n",
            ["--outcome", "engaged_shar"],
            ["--outcome engaged_shar", "did you mean engaged_share"],
            id="unknown-outcome",
        ),
        pytest.param(
            "extends = 'base.toml'\n[site_configurations]\nselected = 'two_both'\n",
            ["--outcome", "site_engaged_share"],
            ["--outcome site_engaged_share", "not an outcome a decision"],
            id="outcome-needing-settings",
        ),
        pytest.param(ENRICH_TEXT, [], ["whatif.toml", "the same scenario as"], id="same-content"),
        pytest.param(None, ["{base}"], ["base.toml", "given twice"], id="same-file"),
        pytest.param(
            "extends = 'base.toml'\n[supervision]\ndur_need_h_per_pw_week = 2.0\n",
            ["--n-sets", "0"],
            ["--n-sets", "the ensemble would be empty"],
            id="empty-ensemble",
        ),
        pytest.param(
            "extends = 'base.toml'\n[engagement]\nlogit_intercept = -1.0\n",
            [],
            ["engagement.logit_intercept", "ensemble"],
            id="whatif-changes-a-drawn-parameter",
        ),
        pytest.param(
            "extends = 'base.toml'\n[supervision]\ndur_need_h_per_pw_week = 2.0\n",
            ["--posterior", "docs/calibration", "--priors", "p.toml"],
            ["--posterior docs/calibration and --priors p.toml", "one source"],
            id="posterior-and-priors",
        ),
        pytest.param(
            "extends = 'base.toml'\n[supervision]\nshare_liaison_nfp = 0.1\n",
            ["--spec", str(SPEC)],
            ["supervision.share_liaison_nfp", "ensemble"],
            id="whatif-changes-a-spec-parameter",
        ),
        pytest.param(
            None,
            [str(SPEC.parents[1] / "scenarios" / "service_example.toml")],
            ["service_example.toml: mode 'service'", "trial scenarios only"],
            id="a-service-scenario",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    whatif_text: str | None,
    extra: list[str],
    expected: list[str],
) -> None:
    base = tmp_path / "base.toml"
    base.write_text(ENRICH_TEXT, encoding="utf-8")
    argv = ["decide", str(base)]
    if whatif_text is not None:
        argv.append(str(_whatif(tmp_path, whatif_text)))
    out = tmp_path / "out"
    argv += [a.replace("{base}", str(base)) for a in extra] + ["--out", str(out), "-w", "1"]
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, f"peersim {' '.join(argv)} should exit 2, got {status}; stderr:\n{err}"
    assert err.startswith("peersim: error: "), f"stderr should start 'peersim: error:':\n{err}"
    assert len(err.strip().splitlines()) == 1, f"one line only:\n{err}"
    for part in expected:
        assert part in err, f"stderr should contain {part!r}:\n{err}"
    left = sorted(p.name for p in tmp_path.iterdir())
    assert "out" not in left, f"no output folder should be written: {left}"
    assert "out.partial" not in left, f"no partial folder should be written: {left}"


def test_help_describes_the_command_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decide", "--help"]) == 0, "--help should exit 0"
    text = capsys.readouterr().out
    for part in ("P(improvement)", "PRIM", "EVPPI", "--n-sets", "examples:", "--resume"):
        assert part in text, f"decide --help should mention {part!r}"


@pytest.mark.slow
def test_interrupt_keeps_the_partial_folder_and_resume_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C after the runs (while writing): only DIR.partial remains, and --resume
    DIR completes the analysis from the saved runs."""
    import analysis.decide_report

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(analysis.decide_report, "write_outputs", interrupted)
    root = Path(__file__).resolve().parent.parent / "scenarios"
    out = tmp_path / "out"
    argv = ["decide", str(root / "enrich_trial.toml"), str(root / "whatif_turnover.toml")]
    status = main([*argv, "--n-sets", "8", "-n", "1", "-w", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 130, f"Ctrl-C should exit 130, got {status}"
    assert f"peersim decide --resume {out}" in err, f"stderr should say how to resume:\n{err}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.partial"], "only out.partial"
    monkeypatch.undo()
    _run_main(["decide", "--resume", str(out), "-w", "1"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "out.partial should go"
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["resumed"]) == 1, "the resumption should be recorded"
    assert (out / "report.md").is_file(), "the report is written on resume"


DOCS_REPORT = Path(__file__).resolve().parent.parent / "docs" / "decisions"


def test_the_committed_report_was_made_by_the_documented_command() -> None:
    import shlex

    page = (DOCS_REPORT / "README.md").read_text(encoding="utf-8")
    commands = [line for line in page.splitlines() if line.startswith("uv run peersim decide")]
    assert len(commands) == 1, "the methods page gives the one command that made the report"
    folder = DOCS_REPORT / "hosting_and_preparation"
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["command"] == shlex.split(commands[0])[2:], (
        f"the report's manifest should record the documented command: {manifest['command']}"
    )
    for name in ("report.md", "decisions.csv", "prim_boxes.csv", "evppi.csv"):
        assert (folder / name).is_file(), f"the committed report should include {name}"
