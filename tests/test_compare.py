"""``peersim compare``: paired differences with common random numbers (CRN).

- the paired-difference statistics equal hand-computed values on tiny tables;
- CRN: a what-if identical to its baseline gives exactly zero difference, and a
  change confined to one site (coordinator hours at site G) leaves every other
  site's outcomes exactly as they were, while site G's change;
- the output folder holds the documented files and columns and a manifest of
  every scenario; the printed table names each what-if;
- user mistakes exit 2 with one line and write nothing; Ctrl-C leaves only the
  resumable partial folder, and --resume completes the comparison.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from analysis.cli import main
from analysis.cli.compare import format_comparison
from analysis.compare import (
    COMPARISON_COLUMNS,
    OUTCOMES,
    OVERALL,
    OVERALL_ONLY,
    paired_differences,
    paired_stats,
    readmission_counts,
    scenario_labels,
)
from scenarios import default_scenario_path
from simulation import run
from simulation.rng import DEFAULT_SEED

N_REPLICATES = 6
ENRICH_TEXT = default_scenario_path().read_text(encoding="utf-8")
SITES = ["A", "B", "C", "D", "E", "F", "G"]
# The same columns as `peersim run`'s manifest, plus the comparison's own.
MANIFEST_KEYS = [
    "peersim_version", "git", "scenario", "scenario_sha256", "scenario_path", "master_seed",
    "replicates", "workers", "versions", "started_utc", "finished_utc", "command",
    "comparison", "scenarios",
]  # fmt: skip
OUTPUT_FILES = [
    "comparison.csv", "comparison.parquet", "manifest.json",
    "replicates/outcomes.parquet", "replicates/trial.parquet",
    "replicates/site_weeks.parquet", "replicates/readmission_counts.parquet",
    "replicates/resources.parquet", "replicates/resource_values.parquet", "brief.md",
    "figures/forest_same.png", "figures/trajectories_same.png",
    "figures/forest_g_supervision.png", "figures/trajectories_g_supervision.png",
]  # fmt: skip
# Outcomes of one site, as the comparison reports them.
SITE_OUTCOMES = [k for k, _ in OUTCOMES if k not in OVERALL_ONLY]
OUTCOME_NAMES = {k for k, _ in OUTCOMES}


def _site_g_hours(text: str, hours: float) -> str:
    """``text`` with site G's coordinator hours set to ``hours`` (all else equal)."""
    head, _, tail = text.partition("[sites.G]")
    changed = tail.replace("supervisor_h_per_week = 10.0", f"supervisor_h_per_week = {hours}", 1)
    assert changed != tail, "site G's coordinator hours should be 10.0 in enrich_trial.toml"
    return f"{head}[sites.G]{changed}"


@pytest.fixture(scope="module")
def toml_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The ENRICH scenario, an identical copy, and a copy with more hours at site G."""
    folder = tmp_path_factory.mktemp("scenarios")
    texts = {
        "base": ENRICH_TEXT,
        "same": ENRICH_TEXT,
        "g_supervision": _site_g_hours(ENRICH_TEXT, 20.0),
    }
    paths = {}
    for label, text in texts.items():
        paths[label] = folder / f"{label}.toml"
        paths[label].write_text(text, encoding="utf-8")
    return paths


def _run_main(args: list[str]) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main(args)
    assert status == 0, f"peersim {' '.join(args)} should succeed, got exit status {status}"
    return buffer.getvalue()


@pytest.fixture(scope="module")
def compared(
    toml_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    """One comparison of both what-ifs with the baseline: output folder and stdout."""
    out = tmp_path_factory.mktemp("compare") / "out"
    files = [str(toml_files[k]) for k in ("base", "same", "g_supervision")]
    stdout = _run_main(["compare", *files, "-n", str(N_REPLICATES), "-w", "1", "-o", str(out)])
    return out, stdout


@pytest.fixture(scope="module")
def comparison(compared: tuple[Path, str]) -> pd.DataFrame:
    return pd.read_parquet(compared[0] / "comparison.parquet")


# --- the statistics, by hand ----------------------------------------------------------


def test_paired_statistics_equal_hand_computed_values() -> None:
    """d = (1, 0, 2, 0): mean 0.75, SD sqrt(11/12), and with t(0.975, 3) = 3.182446
    from the tables the interval is 0.75 -/+ 3.182446 * SD / 2."""
    s = paired_stats(np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.0, 5.0, 4.0]))
    sd = math.sqrt(11 / 12)
    half = 3.182446 * sd / 2
    assert s.n == 4, f"four pairs expected, got {s.n}"
    assert (s.base_mean, s.whatif_mean) == (2.5, 3.25), "means over the pairs"
    assert s.diff_mean == pytest.approx(0.75), "mean of the paired differences"
    assert s.diff_sd == pytest.approx(sd), "SD of the differences, ddof = 1"
    assert s.diff_lo == pytest.approx(0.75 - half, rel=1e-6), "lower end of the t interval"
    assert s.diff_hi == pytest.approx(0.75 + half, rel=1e-6), "upper end of the t interval"


def test_pairs_with_a_missing_value_are_left_out_and_counted() -> None:
    """Only replicates where both values are finite pair up; n says how many. One
    pair has no interval; no pair has no difference, but each side keeps its mean."""
    one = paired_stats(np.array([1.0, np.nan, 3.0]), np.array([2.0, 5.0, np.nan]))
    assert one.n == 1, f"one complete pair expected, got {one.n}"
    assert (one.base_mean, one.whatif_mean, one.diff_mean) == (1.0, 2.0, 1.0), (
        "means and difference over the one complete pair"
    )
    assert math.isnan(one.diff_lo), "no interval from one pair"
    assert math.isnan(one.diff_hi), "no interval from one pair"
    none = paired_stats(np.array([1.0, np.nan]), np.array([np.nan, 4.0]))
    assert none.n == 0, "no complete pair"
    assert math.isnan(none.diff_mean), "no difference without pairs"
    assert (none.base_mean, none.whatif_mean) == (1.0, 4.0), "each side's own mean"


def test_identical_values_give_an_exactly_zero_interval() -> None:
    s = paired_stats(np.array([0.1, 0.7, 0.3]), np.array([0.1, 0.7, 0.3]))
    assert (s.diff_mean, s.diff_sd, s.diff_lo, s.diff_hi) == (0.0, 0.0, 0.0, 0.0), (
        f"identical values should give exactly 0 [0, 0], got {s}"
    )


def test_paired_differences_pair_by_replicate_and_order_rows() -> None:
    """Replicates pair by number whatever the row order; rows come per what-if, in
    outcome order, overall first; a site only the what-if has gets n = 0."""
    values = pd.DataFrame(
        [
            ("base", 1, OVERALL, "engaged_share", 0.5),
            ("base", 0, OVERALL, "engaged_share", 0.4),
            ("base", 0, "X", "engaged_share", 0.2),
            ("base", 1, "X", "engaged_share", 0.3),
            ("base", 0, OVERALL, "met_share", 0.9),
            ("base", 1, OVERALL, "met_share", 0.8),
            ("w", 0, OVERALL, "engaged_share", 0.5),
            ("w", 1, OVERALL, "engaged_share", 0.5),
            ("w", 0, "X", "engaged_share", 0.2),
            ("w", 1, "X", "engaged_share", 0.3),
            ("w", 0, OVERALL, "met_share", 0.9),
            ("w", 1, OVERALL, "met_share", 1.0),
            ("w", 0, "Y", "engaged_share", 0.6),
        ],
        columns=["scenario", "replicate", "scope", "outcome", "value"],
    )
    table = paired_differences(values, "base", ["w"])
    assert list(table.columns) == list(COMPARISON_COLUMNS), "documented columns, in order"
    keys = list(zip(table["outcome"], table["scope"], strict=True))
    assert keys == [
        ("met_share", OVERALL),
        ("engaged_share", OVERALL),
        ("engaged_share", "X"),
        ("engaged_share", "Y"),
    ], f"rows in outcome order, overall first, then sites: {keys}"
    rows = table.set_index(["outcome", "scope"])
    assert rows.loc[("met_share", OVERALL), "diff_mean"] == pytest.approx(0.1), (
        "met share: differences (0, 0.2), mean 0.1"
    )
    assert rows.loc[("engaged_share", OVERALL), "diff_mean"] == pytest.approx(0.05), (
        "engaged share: replicate 0 pairs 0.4 with 0.5, replicate 1 0.5 with 0.5"
    )
    assert rows.loc[("engaged_share", "X"), "diff_hi"] == 0.0, "identical site: exactly 0"
    assert rows.loc[("engaged_share", "Y"), "n"] == 0, "a site only the what-if has: no pairs"
    assert rows.loc[("engaged_share", "Y"), "whatif_mean"] == pytest.approx(0.6), (
        "the what-if's own mean is still shown"
    )


def test_printed_table_pairs_only_sites_both_scenarios_have() -> None:
    """A what-if adding a site (a scale-up) cannot pair it: the printed per-site
    table leaves it out and says so, instead of a row of n/a."""
    values = pd.DataFrame(
        [
            (label, i, scope, "engaged_share", 0.1 * i + (0.05 if label == "w" else 0))
            for label in ("base", "w")
            for i in range(3)
            for scope in (OVERALL, "X", *(["new_site"] if label == "w" else []))
        ],
        columns=["scenario", "replicate", "scope", "outcome", "value"],
    )
    text = format_comparison(paired_differences(values, "base", ["w"]), "base", ["w"], 3, 1)
    site_x = [line for line in text.splitlines() if line.startswith("X ")]
    assert len(site_x) == 1, f"the shared site X should have one row:\n{text}"
    assert "+0.050 [+0.050, +0.050]" in site_x[0], f"site X's difference:\n{text}"
    assert not any(line.startswith("new_site") for line in text.splitlines()), (
        f"the unpaired site should have no row of n/a:\n{text}"
    )
    assert "not paired: new_site" in text, f"the new site should be named as unpaired:\n{text}"


def test_labels_are_file_stems_made_unique() -> None:
    labels = scenario_labels([Path("a/x.toml"), Path("b/x.toml"), Path("what if!.toml")])
    assert labels == ["x", "x-2", "what_if"], f"stems, deduplicated and file-safe: {labels}"


def test_readmission_counts_add_up_to_the_trial_statistics(scenario) -> None:
    """The compact per-site table shipped from the workers loses nothing: summed
    over sites it gives the trial's readmission per arm and of the 2+ group."""
    results = run(scenario, 3)
    counts = readmission_counts(results)
    assert set(counts["site"]) == set(SITES), "every site should have rows"
    assert counts["n"].sum() == results.trial["n_ps"] + results.trial["n_uc"], (
        "every participant counted once"
    )
    ps = counts[counts["arm"] == "peer_support"]
    uc = counts[counts["arm"] == "usual_care"]
    dosed = ps[ps["sessions"] >= scenario.readmission.n_sessions_dose]
    for rows, key in [(ps, "readmit_ps"), (uc, "readmit_uc"), (dosed, "readmit_2plus")]:
        share = rows["n_readmitted"].sum() / rows["n"].sum()
        assert share == results.trial[key], f"{key}: counts give {share}, trial says so too"


# --- common random numbers, end to end ---------------------------------------------------


def test_identical_whatif_gives_exactly_zero_difference(comparison: pd.DataFrame) -> None:
    """CRN: replicate i of both runs with the same seed, so a what-if identical to its
    baseline differs by exactly 0, with interval [0, 0], in every outcome and scope."""
    rows = comparison[comparison["whatif"] == "same"]
    outcome_rows = rows[rows["outcome"].isin(OUTCOME_NAMES)]
    assert len(outcome_rows) == len(OUTCOMES) + len(SITE_OUTCOMES) * len(SITES), (
        "every outcome overall and per site should be reported"
    )
    assert set(rows["outcome"]) - OUTCOME_NAMES >= {"pw_hours_worked_h", "coord_hours_paid_h"}, (
        "the resource rows (analysis.economics) should be reported too, and zero as well"
    )
    for column in ("diff_mean", "diff_sd", "diff_lo", "diff_hi"):
        nonzero = rows[rows[column] != 0]
        assert nonzero.empty, (
            f"{column} should be exactly 0 for an identical what-if:\n{nonzero.to_string()}"
        )
    assert (rows["n"] == N_REPLICATES).all(), f"all {N_REPLICATES} replicates should pair"
    assert (rows["base_mean"] == rows["whatif_mean"]).all(), "identical means"


def test_change_at_one_site_leaves_every_other_site_unchanged(
    comparison: pd.DataFrame, compared: tuple[Path, str]
) -> None:
    """CRN: more coordinator hours at site G cannot reach another site (sites share
    no peer workers, coordinators or participants), so every outcome of sites A-F,
    down to each participant group's sessions and readmissions, is exactly as in the
    baseline; site G's fidelity rises."""
    rows = comparison[comparison["whatif"] == "g_supervision"]
    others = rows[rows["scope"].isin(SITES[:-1])]
    n_outcomes = others["outcome"].isin(OUTCOME_NAMES).sum()
    assert n_outcomes == len(SITE_OUTCOMES) * 6, "every outcome of sites A-F reported"
    # Their resources (hours by use, sessions, readmissions) too: rows beyond the outcomes.
    changed = others[(others["diff_mean"] != 0) | (others["diff_hi"] != 0)]
    assert changed.empty, f"sites A-F should be exactly unchanged:\n{changed.to_string()}"
    counts = pd.read_parquet(compared[0] / "replicates" / "readmission_counts.parquet")
    counts = counts[counts["site"] != "G"]
    by_label = {
        label: counts[counts["scenario"] == label].drop(columns="scenario").reset_index(drop=True)
        for label in ("base", "g_supervision")
    }
    assert_frame_equal(
        by_label["base"],
        by_label["g_supervision"],
        obj="participants by site, arm and sessions at sites A-F",
    )
    at_g = rows[rows["scope"] == "G"].set_index("outcome")
    assert at_g.loc["fidelity", "diff_lo"] > 0, (
        "tripling site G's coordinator hours should raise its fidelity, "
        f"got {at_g.loc['fidelity', ['diff_mean', 'diff_lo', 'diff_hi']].to_dict()}"
    )
    overall = rows[rows["scope"] == OVERALL].set_index("outcome")
    assert overall.loc["fidelity", "diff_mean"] > 0, "overall fidelity should rise too"


# --- the output folder and the printed table ---------------------------------------------


def test_compare_writes_every_documented_file(compared: tuple[Path, str]) -> None:
    out, _ = compared
    for name in OUTPUT_FILES:
        path = out / name
        assert path.is_file(), f"{name} should be written"
        assert path.stat().st_size > 0, f"{name} should not be empty"
    for png in (out / "figures").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{png.name} should be a PNG"
    leftovers = [p.name for p in out.parent.iterdir() if p.name != out.name]
    assert leftovers == [], f"no temporary or partial folders should remain: {leftovers}"


def test_comparison_csv_and_parquet_hold_the_same_documented_columns(
    compared: tuple[Path, str], comparison: pd.DataFrame
) -> None:
    assert list(comparison.columns) == list(COMPARISON_COLUMNS), (
        f"comparison.parquet columns should be {list(COMPARISON_COLUMNS)}"
    )
    csv = pd.read_csv(compared[0] / "comparison.csv", keep_default_na=False, na_values=[""])
    assert list(csv.columns) == list(COMPARISON_COLUMNS), "comparison.csv: same columns"
    assert len(csv) == len(comparison), "comparison.csv: same rows"
    assert set(comparison["whatif"]) == {"same", "g_supervision"}, "both what-ifs"
    assert set(comparison["scope"]) == {OVERALL, *SITES}, "overall and every site"


def test_replicate_tables_are_tagged_by_scenario_and_replicate(compared: tuple[Path, str]) -> None:
    folder = compared[0] / "replicates"
    for name in ("outcomes", "trial", "site_weeks", "readmission_counts"):
        table = pd.read_parquet(folder / f"{name}.parquet")
        assert list(table.columns[:2]) == ["scenario", "replicate"], (
            f"{name}.parquet should start with scenario, replicate"
        )
        pairs = set(zip(table["scenario"], table["replicate"], strict=True))
        expected = {(s, i) for s in ("base", "same", "g_supervision") for i in range(N_REPLICATES)}
        assert pairs == expected, f"{name}.parquet: every scenario and replicate"
    trial = pd.read_parquet(folder / "trial.parquet")
    assert len(trial) == 3 * N_REPLICATES, "trial.parquet: one row per scenario and replicate"


def test_manifest_records_every_scenario(
    compared: tuple[Path, str], toml_files: dict[str, Path]
) -> None:
    manifest = json.loads((compared[0] / "manifest.json").read_text())
    missing = [key for key in MANIFEST_KEYS if key not in manifest]
    assert missing == [], f"manifest.json lacks {missing}"
    assert manifest["master_seed"] == DEFAULT_SEED, "default seed recorded"
    assert manifest["replicates"] == N_REPLICATES, "replicates recorded"
    assert manifest["command"][:2] == ["peersim", "compare"], "command line recorded"
    scenarios = {s["label"]: s for s in manifest["scenarios"]}
    assert list(scenarios) == ["base", "same", "g_supervision"], "baseline first, then what-ifs"
    assert scenarios["base"]["role"] == "baseline", "the baseline is marked"
    for label, path in toml_files.items():
        assert scenarios[label]["path"] == str(path.resolve()), f"{label}: path recorded"
        assert len(scenarios[label]["sha256"]) == 64, f"{label}: sha256 recorded"
    assert scenarios["base"]["sha256"] == scenarios["same"]["sha256"], "identical files hash equal"
    assert scenarios["base"]["sha256"] != scenarios["g_supervision"]["sha256"], (
        "a changed scenario hashes differently"
    )
    assert manifest["scenario_sha256"] == scenarios["base"]["sha256"], (
        "the top-level scenario is the baseline, as in peersim run's manifest"
    )


def test_printed_table_names_each_whatif_and_the_pairing(compared: tuple[Path, str]) -> None:
    out, stdout = compared
    for part in (
        "What-if 'same' vs baseline 'base'",
        "What-if 'g_supervision' vs baseline 'base'",
        "common random numbers",
        f"{N_REPLICATES} paired replicates",
        "ITT odds ratio",
        "0 (identical)",
        f"Results written to {out}",
    ):
        assert part in stdout, f"printed comparison should mention {part!r}:\n{stdout}"


# --- user mistakes, help, interruption ---------------------------------------------------


@pytest.mark.parametrize(
    ("whatif_text", "extra", "expected"),
    [
        pytest.param(
            ENRICH_TEXT.replace("n_peer_workers = 4", "n_peer_workers = 0", 1),
            [],
            ["whatif.toml", "n_peer_workers", "value 0"],
            id="bad-scenario",
        ),
        pytest.param(None, [], ["at least one WHATIF"], id="no-whatif"),
        pytest.param(ENRICH_TEXT, ["{base}"], ["base.toml", "given twice"], id="same-file-twice"),
        pytest.param(ENRICH_TEXT, ["-n", "1"], ["--replicates", "at least 2"], id="one-replicate"),
        pytest.param(
            ENRICH_TEXT.replace("[sites.G]", "[sites.overall]").replace('"G"', '"overall"'),
            [],
            ["site named 'overall'"],
            id="site-named-overall",
        ),
        pytest.param(ENRICH_TEXT, ["-w", "0"], ["--workers", ">= 1"], id="zero-workers"),
    ],
)
def test_user_mistakes_exit_2_and_write_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    whatif_text: str | None,
    extra: list[str],
    expected: list[str],
) -> None:
    base = tmp_path / "base.toml"
    base.write_text(ENRICH_TEXT, encoding="utf-8")
    argv = ["compare", str(base)]
    if whatif_text is not None:
        whatif = tmp_path / "whatif.toml"
        whatif.write_text(whatif_text, encoding="utf-8")
        argv.append(str(whatif))
    out = tmp_path / "out"
    argv += [a.replace("{base}", str(base)) for a in extra] + ["--out", str(out)]
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, f"peersim {' '.join(argv)} should exit 2, got {status}; stderr:\n{err}"
    assert err.startswith("peersim: error: "), f"stderr should start 'peersim: error:':\n{err}"
    for part in expected:
        assert part in err, f"stderr should contain {part!r}:\n{err}"
    assert "Traceback" not in err, f"no traceback for a user mistake:\n{err}"
    left = sorted(p.name for p in tmp_path.iterdir())
    assert "out" not in left, f"no output folder should be written: {left}"
    assert "out.partial" not in left, f"no partial folder should be written: {left}"


def test_existing_output_folder_is_never_overwritten(
    toml_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("earlier results")
    argv = ["compare", str(toml_files["base"]), str(toml_files["same"]), "--out", str(out)]
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, f"a non-empty --out should exit 2, got {status}"
    assert f"--out {out}" in err, f"message should name the folder:\n{err}"
    assert "not empty" in err, f"message should say why:\n{err}"
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"], "earlier files must be kept"


def test_help_teaches_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--help"]) == 0, "--help should exit 0"
    text = capsys.readouterr().out
    for part in (
        "BASE WHATIF",
        "common random numbers",
        "--replicates",
        "default: 20",
        "--resume",
        "examples:",
        "peersim compare scenarios/enrich_trial.toml scenarios/whatif_",
    ):
        assert part in text, f"'peersim compare --help' should mention {part!r}"


@pytest.mark.slow
def test_interrupt_keeps_only_the_partial_folder_and_resume_completes(
    toml_files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ctrl-C after the runs finished (while drawing): no half-written output folder,
    only DIR.partial, and --resume DIR completes the comparison from it."""
    import analysis.compare_figures

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(analysis.compare_figures, "make_comparison_figures", interrupted)
    out = tmp_path / "out"
    argv = ["compare", str(toml_files["base"]), str(toml_files["g_supervision"])]
    costs = ["--costs", str(COSTS_EXAMPLE), "--discount-rate", "0.01"]
    status = main([*argv, "-n", "2", "-w", "1", *costs, "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 130, f"Ctrl-C should exit 130, got {status}"
    assert f"peersim compare --resume {out}" in err, f"stderr should say how to resume:\n{err}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.partial"], (
        "only the resumable out.partial should remain"
    )
    monkeypatch.undo()
    _run_main(["compare", "--resume", str(out), "-w", "1"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "out.partial should go"
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["resumed"]) == 1, "the resumption should be recorded"
    assert (out / "figures" / "forest_g_supervision.png").is_file(), "figures drawn on resume"
    rates = pd.read_csv(out / "economics.csv")["discount_rate_per_year"].tolist()
    assert rates == [0.01], f"the resumed comparison keeps its costs and rate 0.01: {rates}"


# --- posterior-ensemble mode ----------------------------------------------------------

POSTERIOR_DIR = Path(__file__).resolve().parent.parent / "docs" / "calibration"
COSTS_EXAMPLE = POSTERIOR_DIR.parent.parent / "scenarios" / "costs_example.toml"


@pytest.mark.slow
def test_posterior_compare_pairs_the_same_particle_per_replicate(
    toml_files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    files = [str(toml_files[k]) for k in ("base", "g_supervision")]
    stdout = _run_main(
        ["compare", *files, "--posterior", str(POSTERIOR_DIR), "-n", "3", "-w", "1",
         "--costs", str(COSTS_EXAMPLE), "-o", str(out)]
    )  # fmt: skip
    trial = pd.read_parquet(out / "replicates" / "trial.parquet")
    particles = trial.pivot(index="replicate", columns="scenario", values="particle")
    assert (particles["base"] == particles["g_supervision"]).all(), "CRN: same draw per replicate"
    assert particles["base"].nunique() > 1
    # The money's intervals are over the posterior ensemble, and say so.
    economics = pd.read_csv(out / "economics.csv")
    assert economics["n"].tolist() == [3], "one paired value per posterior draw"
    assert "posterior draws" in stdout, "the printed money names the posterior draws"
    brief = (out / "brief.md").read_text(encoding="utf-8")
    assert "calibration's uncertainty" in brief, "the brief says the intervals include it"


def test_posterior_compare_refuses_a_whatif_changing_a_calibrated_parameter(
    toml_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    changed = ENRICH_TEXT.replace("logit_intercept = -2.0", "logit_intercept = -1.0", 1)
    assert changed != ENRICH_TEXT
    whatif = tmp_path / "engagement.toml"
    whatif.write_text(changed, encoding="utf-8")
    out = tmp_path / "out"
    args = ["compare", str(toml_files["base"]), str(whatif), "--posterior", str(POSTERIOR_DIR)]
    assert main([*args, "-w", "1", "-o", str(out)]) == 2
    assert "engagement.logit_intercept" in capsys.readouterr().err
    assert not out.exists()
