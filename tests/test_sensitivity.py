"""``peersim sensitivity``: known answers through the whole pipeline, the model's
inert parameters, resume, and spec mistakes.

- Known answers: test functions stand in for the model through the runner's
  ``simulate`` hook (it replaces ``simulation.run_batch``), so spec parsing,
  SALib sampling, scenario building, the runner, the output table, replicate
  means, SALib analysis and the report are the code real analyses run.
  Ishigami (a=7, b=0.1): Sobol' S1 and ST within 0.05 of the analytic values at
  N=1024; a linear function: Morris mu* exact; replicate noise: its share as
  constructed, and none where all noise is shared by every sample (common
  random numbers).
- The model: with M1 (ward relationship) off, ``ward.w_preparation`` acts on
  nothing, so common random numbers make all its indices exactly 0; coordinator
  hours rank above it for fidelity.
- Resume: an analysis interrupted part-way and resumed writes the same samples,
  outputs and indices as one run straight through.
- Spec mistakes: exit 2, one message listing every problem, nothing written;
  ``"prior"`` ranges come from the calibration priors.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from analysis import sensitivity
from analysis.cli import main
from analysis.sensitivity import (
    Analysis,
    Design,
    SpecError,
    analyze,
    evaluate,
    load_spec,
    make_design,
)
from analysis.sensitivity_report import write_results
from simulation import Results, Scenario
from simulation.executors import ExecutorSpec

REPO = Path(__file__).resolve().parent.parent
ENRICH_SPEC = REPO / "analysis" / "sensitivity_enrich.toml"
IN_PROCESS = ExecutorSpec(workers=1)

TINY = """\
name = "tiny"

[trial]
dur_recruitment_weeks = 8
dur_followup_weeks = 12

[sites.A]
host = "nhs"
geography = "urban"
dur_travel_min = 20.0
n_supervisors = 1
supervisor_h_per_week = 8.0
team_preparation = 1.0
share_records_access = 1.0
n_peer_workers = 2
n_caseload_cap = 10
n_participants = 30

[sites.B]
host = "not_for_profit"
geography = "rural"
dur_travel_min = 60.0
n_supervisors = 1
supervisor_h_per_week = 4.0
team_preparation = 0.3
share_records_access = 0.0
n_peer_workers = 2
n_caseload_cap = 10
n_participants = 30
"""

# Three inputs on [0, 1], read by the test functions below: a global parameter, one
# site's, and one set at every site (so all three path forms are exercised).
UNIT_PARAMETERS = """\
[parameters]
"ward.w_preparation" = [0.0, 1.0]
"sites.A.team_preparation" = [0.0, 1.0]
"sites.*.share_records_access" = [0.0, 1.0]
"""


@pytest.fixture(scope="module")
def tiny_toml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "tiny.toml"
    path.write_text(TINY, encoding="utf-8")
    return path


def _write_spec(folder: Path, scenario: Path, body: str, name: str = "spec.toml") -> Path:
    path = folder / name
    path.write_text(f'scenario = "{scenario.as_posix()}"\n{body}', encoding="utf-8")
    return path


# --- fake models for the known answers ---------------------------------------------------


def _inputs(scenario: Scenario) -> np.ndarray:
    """The three unit inputs of ``UNIT_PARAMETERS`` as the scenario holds them."""
    return np.array(
        [
            scenario.ward.w_preparation,
            scenario.sites["A"].team_preparation,
            scenario.sites["B"].share_records_access,
        ]
    )


def _results(scenario: Scenario, value: float) -> Results:
    """``Results`` whose every output is ``value`` (the site gaps 0, the odds ratio 1)."""
    sites = tuple(scenario.site_names)
    trial: dict[str, float] = {
        "engaged_share": value,
        "met_share": value,
        "readmit_ps": value,
        "readmit_uc": value,
        "itt_or": 1.0,
        **{f"engaged_share_{s}": value for s in sites},
        **{f"fidelity_{s}": value for s in sites},
    }
    n = len(sites)
    site_weeks = {
        "site": np.arange(n),
        "week": np.zeros(n, dtype=np.int64),
        **{d: np.full(n, value) for d in sensitivity.FIDELITY_DOMAINS},
    }
    return Results(sites, trial, site_week_arrays=site_weeks, participant_arrays={})


def ishigami(scenario: Scenario, seeds: Sequence[object]) -> list[Results]:
    """The Ishigami function of the inputs mapped from [0, 1] to [-pi, pi] (indices
    do not change under such a linear map). Deterministic: seeds are ignored."""
    x = -math.pi + 2 * math.pi * _inputs(scenario)
    y = math.sin(x[0]) + 7.0 * math.sin(x[1]) ** 2 + 0.1 * x[2] ** 4 * math.sin(x[0])
    return [_results(scenario, y) for _ in seeds]


def linear(scenario: Scenario, seeds: Sequence[object]) -> list[Results]:
    """y = 3 x1 - 2 x2 (x3 inert)."""
    x = _inputs(scenario)
    return [_results(scenario, 3.0 * x[0] - 2.0 * x[1]) for _ in seeds]


NOISE_SD = 0.4


def _noise(seed: np.random.SeedSequence, scenario: Scenario | None) -> float:
    """A standard normal draw from the job's seed, and from the inputs if given."""
    key = list(seed.generate_state(2))
    if scenario is not None:  # noise of its own for every parameter set
        key += list(struct.unpack("<6I", _inputs(scenario).astype("<f8").tobytes()))
    return float(np.random.default_rng(key).standard_normal())


def noisy_own(scenario: Scenario, seeds: Sequence[np.random.SeedSequence]) -> list[Results]:
    """y = x1 + noise drawn afresh for every parameter set and replicate."""
    x = _inputs(scenario)
    return [_results(scenario, x[0] + NOISE_SD * _noise(s, scenario)) for s in seeds]


def noisy_shared(scenario: Scenario, seeds: Sequence[np.random.SeedSequence]) -> list[Results]:
    """y = x1 + noise that depends on the replicate only: common random numbers at
    their best, every parameter set sees the same draws."""
    x = _inputs(scenario)
    return [_results(scenario, x[0] + NOISE_SD * _noise(s, None)) for s in seeds]


def _pipeline(tmp_path: Path, spec_path: Path, simulate: object) -> tuple[Design, Analysis]:
    design, _, result = _pipeline_runs(tmp_path, spec_path, simulate)
    return design, result


def _pipeline_runs(
    tmp_path: Path, spec_path: Path, simulate: object
) -> tuple[Design, pd.DataFrame, Analysis]:
    spec = load_spec(spec_path)
    design = make_design(spec, spec.settings)
    runs = evaluate(
        design, tmp_path / "sweep", executor=IN_PROCESS, progress=False, simulate=simulate
    )
    return design, runs, analyze(design, runs)


# --- known answers -----------------------------------------------------------------------

# Analytic Ishigami indices for a=7, b=0.1 (Sobol' & Levitan 1999; SALib's tests).
ISHIGAMI_S1 = (0.3139, 0.4424, 0.0)
ISHIGAMI_ST = (0.5576, 0.4424, 0.2437)
ISHIGAMI_TOLERANCE = 0.05


@pytest.mark.slow
def test_ishigami_sobol_indices_match_the_analytic_values(tiny_toml: Path, tmp_path: Path):
    body = (
        'outputs = ["engaged_share"]\nmethod = "sobol"\nreplicates = 1\nseed = 3\n'
        f"{UNIT_PARAMETERS}\n[sobol]\nn = 1024\n"
    )
    spec_path = _write_spec(tmp_path, tiny_toml, body)
    design, runs, result = _pipeline_runs(tmp_path, spec_path, ishigami)
    indices = result.indices.set_index("parameter")
    names = ["ward.w_preparation", "sites.A.team_preparation", "sites.*.share_records_access"]
    for name, s1, st in zip(names, ISHIGAMI_S1, ISHIGAMI_ST, strict=True):
        got_s1, got_st = indices.loc[name, "S1"], indices.loc[name, "ST"]
        assert abs(got_s1 - s1) < ISHIGAMI_TOLERANCE, f"{name}: S1 {got_s1:.4f}, analytic {s1}"
        assert abs(got_st - st) < ISHIGAMI_TOLERANCE, f"{name}: ST {got_st:.4f}, analytic {st}"
    assert indices["converged"].all(), f"N/2 and N should agree: {result.warnings}"
    assert list(indices.sort_values("rank").index) == [names[0], names[1], names[2]], (
        "ranked by ST: x1, x2, x3"
    )
    # The reporting step: the indices as written, the figure and the report.
    out = tmp_path / "out"
    out.mkdir()
    write_results(out, design, runs, result)
    written = pd.read_csv(out / "indices.csv")
    assert written["ST"].to_numpy() == pytest.approx(result.indices["ST"].to_numpy())
    assert (out / "figures" / "sobol_engaged_share.png").stat().st_size > 0
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| `engaged_share` | n/a | `ward.w_preparation` (ST 0.5" in report, (
        f"the report should name the top driver, noise n/a with one replicate:\n{report}"
    )


def test_linear_function_gives_exact_morris_effects(tiny_toml: Path, tmp_path: Path):
    body = f'outputs = ["engaged_share"]\nreplicates = 2\n{UNIT_PARAMETERS}\n[morris]\nn = 8\n'
    _, result = _pipeline(tmp_path, _write_spec(tmp_path, tiny_toml, body), linear)
    got = result.indices.set_index("parameter")
    # y = 3 x1 - 2 x2 on unit ranges: every elementary effect of x1 is 3, of x2 -2, of x3 0.
    expected = {
        "ward.w_preparation": 3.0,
        "sites.A.team_preparation": 2.0,
        "sites.*.share_records_access": 0.0,
    }
    for name, mu_star in expected.items():
        assert got.loc[name, "mu_star"] == pytest.approx(mu_star, abs=1e-9), (
            f"{name}: mu* {got.loc[name, 'mu_star']}, expected {mu_star}"
        )
        assert got.loc[name, "sigma"] == pytest.approx(0.0, abs=1e-9), (
            f"{name}: a linear function has constant effects, sigma should be 0"
        )
    assert got.loc["sites.A.team_preparation", "mu"] == pytest.approx(-2.0), "signed mean"


@pytest.mark.slow
def test_second_order_indices_of_an_additive_function_are_zero(tiny_toml: Path, tmp_path: Path):
    body = 'outputs = ["engaged_share"]\nmethod = "sobol"\nreplicates = 1\n'
    body += f"{UNIT_PARAMETERS}\n[sobol]\nn = 128\nsecond_order = true\n"
    design, runs, result = _pipeline_runs(tmp_path, _write_spec(tmp_path, tiny_toml, body), linear)
    assert design.n_samples == 128 * 8, "N (2D + 2) parameter sets with second order"
    second = result.second_order
    assert second is not None, "second-order indices were asked for"
    assert len(second) == 3, f"one row per pair of the 3 parameters: {second}"
    assert second["S2"].abs().max() < 0.05, f"3 x1 - 2 x2 has no interactions:\n{second}"
    out = tmp_path / "out"
    out.mkdir()
    write_results(out, design, runs, result)
    assert (out / "second_order.csv").is_file(), "S2 is written when asked for"


def test_noise_share_is_what_was_put_in(tiny_toml: Path, tmp_path: Path):
    replicates = 5
    body = f'outputs = ["engaged_share"]\nreplicates = {replicates}\n{UNIT_PARAMETERS}\n'
    body += "[morris]\nn = 20\n"
    spec_path = _write_spec(tmp_path, tiny_toml, body)
    _, own = _pipeline(tmp_path / "own", spec_path, noisy_own)
    got = own.noise.iloc[0]
    # Noise of SD 0.4 in each run leaves variance 0.4^2 / 5 in a mean of 5 replicates;
    # estimated with (K-1)(R-1) = 316 degrees of freedom, so within 3 SE (about 25%).
    assert got["noise_variance"] == pytest.approx(NOISE_SD**2 / replicates, rel=0.25), (
        f"noise variance {got['noise_variance']:.4f}, constructed {NOISE_SD**2 / replicates}"
    )
    assert got["noise_share"] == pytest.approx(got["noise_variance"] / got["variance"])
    assert got["noise_share"] > 0.2, f"x1 on [0, 1] against this noise: {got['noise_share']}"
    assert got["noisy"], "a noise share above 20% is flagged"
    assert any("replicate noise" in w for w in own.warnings), "the report should warn"

    _, shared = _pipeline(tmp_path / "shared", spec_path, noisy_shared)
    row = shared.noise.iloc[0]
    assert row["within_variance"] == pytest.approx(NOISE_SD**2, rel=0.5), "replicates differ"
    assert row["noise_share"] == pytest.approx(0.0, abs=1e-9), (
        "noise shared by every parameter set (common random numbers) shifts all means "
        f"alike and is not noise for the indices; got share {row['noise_share']}"
    )
    mu_star = shared.indices.set_index("parameter")["mu_star"]
    assert mu_star["sites.*.share_records_access"] == pytest.approx(0.0, abs=1e-9), (
        "an inert input under common random numbers has mu* 0"
    )


# --- the model -----------------------------------------------------------------------------

MODEL_PARAMETERS = """\
[parameters]
"ward.w_preparation" = [0.1, 0.7]
"sites.*.supervisor_h_per_week" = { scale = [0.3, 1.5] }
"engagement.logit_intercept" = [-3.0, -1.0]
"""
MODEL_OUTPUTS = '["fidelity", "engaged_share", "readmit_ps", "itt_or", "site_gap_fidelity"]'


@pytest.fixture(scope="module")
def m1_off(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ENRICH scenario with M1 (team preparation -> ward relationship) off."""
    text = (REPO / "scenarios" / "enrich_trial.toml").read_text(encoding="utf-8")
    assert "m1_ward_relationship = true" in text
    path = tmp_path_factory.mktemp("m1") / "enrich_m1_off.toml"
    path.write_text(text.replace("m1_ward_relationship = true", "m1_ward_relationship = false"))
    return path


@pytest.mark.parametrize(("method", "n"), [("morris", 6), ("sobol", 8)])
def test_parameter_of_a_switched_off_mechanism_has_zero_indices(
    m1_off: Path, tmp_path: Path, method: str, n: int
):
    body = f'outputs = {MODEL_OUTPUTS}\nmethod = "{method}"\nreplicates = 2\n{MODEL_PARAMETERS}'
    body += f"\n[{method}]\nn = {n}\n"
    spec = load_spec(_write_spec(tmp_path, m1_off, body))
    design = make_design(spec, spec.settings)
    result = analyze(design, evaluate(design, tmp_path / "sweep", executor=IN_PROCESS))
    inert = result.indices[result.indices["parameter"] == "ward.w_preparation"]
    columns = ["mu_star", "mu", "sigma"] if method == "morris" else ["S1", "ST"]
    for column in columns:
        worst = inert[column].abs().max()
        assert worst < 1e-12, (
            f"{method}: ward.w_preparation acts only through M1, which is off; with common "
            f"random numbers its {column} should be 0 for every output, got up to {worst}"
        )
    fidelity = result.indices[result.indices["output"] == "fidelity"].set_index("parameter")
    hours, prep = "sites.*.supervisor_h_per_week", "ward.w_preparation"
    assert fidelity.loc[hours, "rank"] < fidelity.loc[prep, "rank"], (
        f"coordinator hours should rank above an inert parameter for fidelity:\n{fidelity}"
    )
    if method == "morris":
        assert not fidelity.loc[hours, "within_noise"], "the hours' effect is not noise"


def test_ready_spec_is_valid_and_screens_twenty_parameters_in_2100_runs():
    spec = load_spec(ENRICH_SPEC)
    design = make_design(spec, spec.settings)  # builds and validates all 420 scenarios
    assert len(spec.parameters) == 20, f"the benchmark needs 20 parameters: {spec.names}"
    assert design.n_runs == 2100, f"20 trajectories x 21 points x 5 replicates: {design.n_runs}"
    ints = [p.path for p in spec.parameters if p.integer]
    assert ints, "integer fields are part of the ready spec"
    caps = {s.sites["A"].n_caseload_cap for s in design.scenarios}
    assert all(isinstance(c, int) for c in caps), "integer fields are rounded"


# --- the command: files, resume -----------------------------------------------------------

CLI_BODY = """\
name = "tiny_screen"
outputs = ["engaged_share", "fidelity", "site_gap_engaged"]
replicates = 2
[parameters]
"ward.w_preparation" = [0.1, 0.7]
"sites.*.supervisor_h_per_week" = { scale = [0.5, 1.5] }
"sites[host=not_for_profit].team_preparation" = [0.0, 1.0]
"sites.*.n_caseload_cap" = [3, 12]
[morris]
n = 4
"""
OUTPUT_FILES = [
    "manifest.json",
    "report.md",
    "samples.parquet",
    "outputs.parquet",
    "outputs_mean.parquet",
    "indices.csv",
    "indices.parquet",
    "noise.csv",
    "figures/morris_engaged_share.png",
    "figures/morris_fidelity.png",
    "figures/morris_site_gap_engaged.png",
]


def _run_main(args: list[str]) -> int:
    with contextlib.redirect_stdout(io.StringIO()):
        return main(args)


@pytest.mark.slow
def test_interrupted_analysis_resumes_to_the_same_results(
    tiny_toml: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    spec = _write_spec(tmp_path, tiny_toml, CLI_BODY)
    straight = tmp_path / "straight"
    assert _run_main(["sensitivity", str(spec), "-w", "1", "-o", str(straight)]) == 0
    for name in OUTPUT_FILES:
        assert (straight / name).is_file(), f"peersim sensitivity should write {name}"
    manifest = json.loads((straight / "manifest.json").read_text())
    assert manifest["sensitivity"]["n_runs"] == 40, "4 trajectories x 5 points x 2 replicates"
    assert manifest["master_seed"] == 20241, "the manifest records the seed"
    assert manifest["versions"]["salib"], "and SALib's version"

    calls = {"n": 0}
    real = sensitivity.sensitivity_outputs

    def interrupted_after_some(results: Results) -> pd.DataFrame:
        calls["n"] += 1
        if calls["n"] > 12:
            raise KeyboardInterrupt
        return real(results)

    monkeypatch.setattr(sensitivity, "sensitivity_outputs", interrupted_after_some)
    resumed = tmp_path / "resumed"
    status = _run_main(["sensitivity", str(spec), "-w", "1", "-o", str(resumed)])
    err = capsys.readouterr().err
    assert status == 130, f"Ctrl-C should exit 130, got {status}:\n{err}"
    assert f"peersim sensitivity --resume {resumed}" in err, f"should say how to resume:\n{err}"
    assert not resumed.exists(), "no output folder until the analysis is complete"
    partial = tmp_path / "resumed.partial"
    assert (partial / "samples.parquet").is_file(), "the samples are saved before any run"
    monkeypatch.undo()

    assert _run_main(["sensitivity", "--resume", str(resumed)]) == 0
    assert not partial.exists(), "the partial folder goes once the analysis is complete"
    for name in ("samples.parquet", "outputs.parquet", "indices.parquet"):
        assert_frame_equal(
            pd.read_parquet(resumed / name), pd.read_parquet(straight / name), obj=name
        )
    manifest = json.loads((resumed / "manifest.json").read_text())
    assert len(manifest["resumed"]) == 1, "the manifest records the resume"


def test_help_explains_and_exits_0(capsys: pytest.CaptureFixture[str]):
    assert main(["sensitivity", "--help"]) == 0
    text = capsys.readouterr().out
    for part in ("SPEC", "--method", "--n", "--replicates", "--resume", "common random"):
        assert part in text, f"'peersim sensitivity --help' should mention {part!r}"


# --- spec mistakes ---------------------------------------------------------------------------

GOOD_OUTPUTS = 'outputs = ["engaged_share"]\n'


@pytest.mark.parametrize(
    ("body", "args", "expected"),
    [
        pytest.param(
            GOOD_OUTPUTS + '[parameters]\n"engagement.logit_intercep" = [-3.0, -1.0]\n'
            '"ward.w_preparation" = [0.1, 0.5]\n',
            [],
            ['parameters."engagement.logit_intercep": unknown parameter', "did you mean "
             "engagement.logit_intercept?"],
            id="unknown-path",
        ),
        pytest.param(
            GOOD_OUTPUTS + '[parameters]\n"sites.Z.team_preparation" = [0.0, 1.0]\n'
            '"ward.w_preparation" = [0.1, 0.5]\n',
            [],
            ["no site 'Z' in the base scenario", "sites are A, B"],
            id="unknown-site",
        ),
        pytest.param(
            GOOD_OUTPUTS + '[parameters]\n"ward.w_preparation" = [0.5, 1.5]\n'
            '"engagement.logit_intercept" = [-3.0, -1.0]\n',
            [],
            ['"ward.w_preparation": value [0.5, 1.5]: out of range, allowed: a number, 0 to 1'],
            id="out-of-bounds",
        ),
        pytest.param(
            GOOD_OUTPUTS + '[parameters]\n"sites.*.supervisor_h_per_week" = { scale = [1, 100] }'
            '\n"ward.w_preparation" = [0.1, 0.5]\n',
            [],
            ["scale [1, 100]: gives 800 at site A (base 8), out of range", "0 to 400"],
            id="scale-out-of-bounds",
        ),
        pytest.param(
            GOOD_OUTPUTS + '[parameters]\n"ward.w_preparation" = [0.6, 0.2]\n'
            '"engagement.logit_intercept" = [-3.0, -1.0]\n',
            [],
            ["value [0.6, 0.2]: the lower bound must be below the upper bound"],
            id="low-above-high",
        ),
        pytest.param(
            'outputs = ["engaged"]\n[parameters]\n"ward.w_preparation" = [0.1, 0.5]\n'
            '"engagement.logit_intercept" = [-3.0, -1.0]\n',
            [],
            ["outputs: value 'engaged': unknown output; did you mean engaged_share"],
            id="unknown-output",
        ),
        pytest.param(
            GOOD_OUTPUTS + '[parameters]\n"mechanisms.m1_ward_relationship" = [0, 1]\n'
            '"ward.w_preparation" = [0.1, 0.5]\n',
            [],
            ["not a number (true or false): switches and choices cannot be varied"],
            id="switch",
        ),
        pytest.param(
            GOOD_OUTPUTS + '[parameters]\n"sites.*.team_preparation" = [0.0, 1.0]\n'
            '"sites.A.team_preparation" = [0.1, 0.5]\n',
            [],
            ['"sites.A.team_preparation": sets a value that sites.*.team_preparation also sets'],
            id="overlap",
        ),
        pytest.param(
            GOOD_OUTPUTS + '[parameters]\n"trial.share_psychotic" = [0.3, 0.9]\n'
            '"ward.w_preparation" = [0.1, 0.5]\n',
            [],
            ["gives an invalid scenario", "share_psychotic + share_personality must be at most 1"],
            id="invalid-sample",
        ),
        pytest.param(
            'outputs = ["nope"]\nreplicates = 0\n[parameters]\n"ward.w_prep" = [0.1, 0.5]\n'
            '"ward.w_preparation" = [2.0, 3.0]\n',
            [],
            ["4 problems", "outputs: value 'nope'", "replicates: value 0", "ward.w_prep",
             "value [2.0, 3.0]: out of range"],
            id="all-problems-at-once",
        ),
        pytest.param(
            GOOD_OUTPUTS + '[parameters]\n"ward.w_preparation" = [0.1, 0.5]\n'
            '"engagement.logit_intercept" = [-3.0, -1.0]\n',
            ["--method", "sobol", "--n", "1000"],
            ["--n value 1000: Sobol' sampling needs a power of 2"],
            id="sobol-n",
        ),
        pytest.param(
            "outputs = [\n", [], ["invalid TOML"], id="malformed-toml"
        ),
    ],
)  # fmt: skip
def test_spec_mistakes_exit_2_with_every_problem_and_write_nothing(
    tiny_toml: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    body: str,
    args: list[str],
    expected: list[str],
):
    spec = _write_spec(tmp_path, tiny_toml, body)
    out = tmp_path / "out"
    status = main(["sensitivity", str(spec), *args, "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2, f"should exit 2, got {status}; stderr:\n{err}"
    assert err.startswith("peersim: error: "), f"stderr should start 'peersim: error:':\n{err}"
    for part in expected:
        assert part in err, f"stderr should contain {part!r}:\n{err}"
    assert "Traceback" not in err, f"no traceback for a user mistake:\n{err}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml"], "nothing written"


def test_missing_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    spec = _write_spec(tmp_path, tmp_path / "gone.toml", GOOD_OUTPUTS + UNIT_PARAMETERS)
    assert main(["sensitivity", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"scenario: value '{(tmp_path / 'gone.toml').as_posix()}': no such scenario" in err, err
    assert main(["sensitivity", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: no such spec file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml"], "nothing written"


def test_resume_and_spec_arguments_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["sensitivity"]) == 2
    assert "give a SPEC file, or --resume DIR" in capsys.readouterr().err
    out = tmp_path / "out"
    assert main(["sensitivity", "--resume", str(out)]) == 2
    assert f"--resume {out}: no interrupted analysis there" in capsys.readouterr().err
    assert main(["sensitivity", str(ENRICH_SPEC), "--resume", str(out)]) == 2
    assert "leave out SPEC" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [], "nothing written"


def test_prior_ranges_come_from_the_calibration_priors(tiny_toml: Path, tmp_path: Path):
    from calibration.priors import load_priors

    priors = load_priors(None)
    body = GOOD_OUTPUTS + (
        '[parameters]\n"engagement.logit_intercept" = "prior"\n'
        '"fidelity.rate_drift_per_week" = "prior"\n'
    )
    spec = load_spec(_write_spec(tmp_path, tiny_toml, body))
    uniform, lognormal = spec.parameters
    expected = priors["engagement.logit_intercept"]
    assert (uniform.low, uniform.high) == (expected.lower, expected.upper), (
        "a uniform prior gives its own bounds"
    )
    low, high = priors["fidelity.rate_drift_per_week"].ppf([0.025, 0.975])
    assert (lognormal.low, lognormal.high) == pytest.approx((low, high)), (
        "another prior gives its central 95% interval"
    )
    assert "prior uniform" in uniform.origin, uniform.origin
    assert "central 95% of prior lognormal" in lognormal.origin, lognormal.origin

    body = (
        GOOD_OUTPUTS
        + '[parameters]\n"ward.w_preparation" = "prior"\n"ward.w_experience" = [0, 1]\n'
    )
    with pytest.raises(SpecError, match=r'"prior": enrich.toml has no prior for it; it has priors'):
        load_spec(_write_spec(tmp_path, tiny_toml, body, name="no_prior.toml"))
