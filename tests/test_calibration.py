"""Calibration: targets, priors, extraction, distance, ABC-SMC, posterior, ``peersim calibrate``.

What each group proves:

- **Extraction** (known answers on tiny hand-made results): every statistic of the
  registry computes what its docstring says on numbers worked out by hand, e.g. the
  engagement odds ratio of a binary covariate equals the 2x2 table's odds ratio,
  only participants who met count, a correlation across 3 sites, the gap between
  listed and other sites; replicates are summarised as documented (means of logs
  for ratios, shares of replicates showing a pattern, NaN where not computable).
- **Files**: the shipped targets and priors load, are sourced and graded; every kind
  of mistake in a targets or priors file gives the scenario loader's style of error
  (file, entry, key, value, what is allowed, closest names), all at once.
- **Distance**: pattern penalties and the epsilon floor have their documented values.
- **Recovery** (simulation-based): targets simulated at known parameter values are
  recovered: the posterior's 90% interval covers the truth and is clearly narrower
  than the prior's, for both parameters the targets identify.
- **Resume**: a run continued from its database keeps the generations it had and
  adds the rest; ``peersim calibrate`` interrupted mid-run resumes to the same
  output as documented.
- **Posterior**: weighted quantiles, the calibrated scenario file round trip,
  posterior-ensemble draws that depend only on the replicate's seed (so paired
  what-if comparisons draw the same particle), and clear errors for bad folders.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from analysis.cli import main
from calibration.files import PriorsError, TargetsError
from calibration.posterior import (
    Posterior,
    PosteriorError,
    load_posterior,
    round_significant,
    weighted_quantile,
)
from calibration.priors import apply_parameters, get_parameter, load_priors
from calibration.problem import Problem, particle_seeds, simulate_summary
from calibration.scenario_file import scenario_toml
from calibration.settings import Settings
from calibration.statistics import average_ranks
from calibration.targets import SD_SUFFIX, load_targets
from scenarios import load_scenario
from simulation import Results, Scenario, replicate_seed, run_batch
from simulation.executors import ExecutorSpec, open_executor
from simulation.stats import Z_95


# calibration.distance imports pyabc, which alone costs about 10 s of CPU on the project's
# machine: imported on first use, so collecting this file (every run, any -m or -k) does not
# pay it. Same functions, same arguments.
def acceptance_threshold(*args: Any, **kwargs: Any) -> float:
    from calibration.distance import acceptance_threshold as threshold

    return threshold(*args, **kwargs)


def pattern_penalty(*args: Any, **kwargs: Any) -> float:
    from calibration.distance import pattern_penalty as penalty

    return penalty(*args, **kwargs)


# --- tiny hand-made results ------------------------------------------------------------


def _scenario(hosts: dict[str, tuple[str, str]]) -> Scenario:
    """The ENRICH scenario with sites named by ``hosts``: name -> (host, geography)."""
    enrich = load_scenario(None)
    template = enrich.sites["A"]
    sites = {
        name: template.model_copy(update={"host": host, "geography": geo}).model_dump()
        for name, (host, geo) in hosts.items()
    }
    # Without enrich's site configurations: their options name its sites.
    return Scenario.model_validate(
        {**enrich.model_dump(), "sites": sites, "site_configurations": None}
    )


THREE_SITES = {"A": ("nhs", "urban"), "B": ("nhs", "urban"), "C": ("not_for_profit", "rural")}


def _results(trial: dict[str, float], participants: dict[str, list[Any]] | None = None) -> Results:
    """A Results with only what extractors read: the trial dict and participant columns."""
    arrays = {k: np.asarray(v) for k, v in (participants or {}).items()}
    return Results(tuple(THREE_SITES), trial, {}, arrays)


TRIAL = {
    "met_share": 0.9,
    "readmit_uc": 0.35,
    "readmit_ps": 0.33,
    "readmit_2plus": 0.28,
    "n_2plus": 120,
    "itt_or": 0.9,
    "itt_or_lo": 0.7,
    "itt_or_hi": 1.2,
    "engaged_share_A": 0.5,
    "engaged_share_B": 0.7,
    "engaged_share_C": 0.3,
    "fidelity_A": 0.8,
    "fidelity_B": 0.6,
    "fidelity_C": 0.65,
}


def _targets(tmp_path: Path, body: str, name: str = "targets.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def _target(
    name: str, statistic: str, extra: str = "", observed: str = "pattern = 'positive'"
) -> str:
    return (
        f"[[target]]\nname = '{name}'\nstatistic = '{statistic}'\n{extra}\n{observed}\n"
        "source = 'hand-made'\ngrade = 'T'\n"
    )


def _row(tmp_path: Path, body: str, results: Results) -> dict[str, float]:
    targets = load_targets(_targets(tmp_path, body)).bind(_scenario(THREE_SITES))
    return targets.row(results)


def test_trial_statistics_and_differences_read_the_trial_dict(tmp_path: Path) -> None:
    body = (
        _target("met", "met_share", observed="observed = 0.9")
        + _target("gap", "readmit_2plus_minus_uc")
        + _target("n", "trial:n_2plus", observed="observed = 100.0")
        + _target("diff", "difference", "a = 'trial:readmit_ps'\nb = 'readmit_uc'")
        + _target("ci", "itt_or_ci", observed="pattern = 'contains'\nvalue = 1.0")
    )
    row = _row(tmp_path, body, _results(TRIAL))
    assert row["met"] == 0.9, "met_share is Results.trial['met_share']"
    assert row["gap"] == pytest.approx(0.28 - 0.35), "2+ sessions minus usual care"
    assert row["n"] == 120, "trial:KEY reads any key"
    assert row["diff"] == pytest.approx(0.33 - 0.35), "difference a - b"
    assert (row["ci:lo"], row["ci:hi"]) == (0.7, 1.2), "an interval statistic gives lo and hi"


def test_site_statistics_by_hand(tmp_path: Path) -> None:
    body = (
        _target("pearson", "site_engagement_fidelity_correlation")
        + _target("spearman", "site_engagement_fidelity_correlation", "method = 'spearman'")
        + _target("low_both", "low_sites_below_others", "sites = ['C']")
        + _target("low_attr", "low_sites_below_others", "sites = ['sites[host=not_for_profit]']")
        + _target("low_eng", "low_sites_below_others", "sites = ['C']\nmeasure = 'engagement'")
        + _target("site_b", "site_engaged_share", "site = 'B'", observed="observed = 0.7")
        + _target("fid_c", "site_fidelity", "site = 'C'", observed="observed = 0.6")
    )
    trial = {**TRIAL, "fidelity_A": 0.5, "fidelity_B": 0.9, "fidelity_C": 0.6}
    trial.update(engaged_share_A=0.4, engaged_share_B=0.6, engaged_share_C=0.2)
    row = _row(tmp_path, body, _results(trial))
    # engaged (0.4, 0.6, 0.2) ~ centred (0, 0.2, -0.2); fidelity (0.5, 0.9, 0.6) ~ centred
    # (-2/3, 2/3, -1/3)/5 ... by hand: r = sum dx dy / sqrt(sum dx^2 sum dy^2).
    dx = np.array([0.0, 0.2, -0.2])
    dy = np.array([0.5, 0.9, 0.6]) - 2.0 / 3.0
    assert row["pearson"] == pytest.approx(dx @ dy / math.sqrt((dx @ dx) * (dy @ dy)))
    # ranks: engaged (2, 3, 1), fidelity (1, 3, 2): centred (0, 1, -1) and (-1, 1, 0) -> 1/2
    assert row["spearman"] == pytest.approx(0.5), "Spearman: Pearson of the ranks"
    # C below A and B: engaged 0.5 - 0.2 = 0.3, fidelity 0.7 - 0.6 = 0.1 -> the smaller
    assert row["low_both"] == pytest.approx(0.1), "the smaller of the two gaps"
    assert row["low_attr"] == pytest.approx(0.1), "sites[host=not_for_profit] selects site C"
    assert row["low_eng"] == pytest.approx(0.3), "engagement gap only"
    assert row["site_b"] == 0.6, "one site's engaged share"
    assert row["fid_c"] == 0.6, "one site's fidelity"


def test_average_ranks_share_ties() -> None:
    assert average_ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]


def _engagement_participants() -> dict[str, list[Any]]:
    # 24 who met: non-heterosexual 6 (4 engaged), others 18 (6 engaged); rb 0/1 as NH.
    # Plus 10 who never met, all engaged=False with NH=1: they must not count.
    nh = [1] * 6 + [0] * 18 + [1] * 10
    engaged = [1, 1, 1, 1, 0, 0] + [1] * 6 + [0] * 12 + [0] * 10
    met = [True] * 24 + [False] * 10
    minutes = [30.0 + (i % 7) * 5 for i in range(24)] + [0.0] * 10
    return {
        "met": met,
        "engaged": [bool(e) for e in engaged],
        "non_heterosexual": [bool(x) for x in nh],
        "rb_activities": nh[:24] + [-1] * 10,
        "first_contact_min": minutes,
    }


def test_engagement_odds_ratio_of_a_binary_covariate_is_the_tables(tmp_path: Path) -> None:
    body = (
        _target("or_nh", "engaged_or_non_heterosexual", "adjusted = false", "observed = 4.38")
        + _target("or_rb", "engaged_or_per_rb_activity", "adjusted = false", "observed = 1.4")
        + _target("or_min", "engaged_or_per_first_contact_min", "", "observed = 1.03")
    )
    row = _row(tmp_path, body, _results(TRIAL, _engagement_participants()))
    # Among those who met: odds engaged NH 4/2 = 2, others 6/12 = 0.5 -> OR 4 (the
    # logistic MLE with one binary covariate is the table's odds ratio).
    assert row["or_nh"] == pytest.approx(4.0, rel=1e-8), "OR of the 2x2 table, met only"
    assert row["or_rb"] == pytest.approx(4.0, rel=1e-8), "same covariate values, same OR"
    # Adjusted for NH and rb together they are collinear: no fit, NaN, not an error.
    assert math.isnan(row["or_min"]), "a regression that cannot be fitted gives NaN"


def test_engagement_regression_needs_enough_participants(tmp_path: Path) -> None:
    few = {k: v[:10] for k, v in _engagement_participants().items()}
    body = _target("or_nh", "engaged_or_non_heterosexual", "adjusted = false", "observed = 4.38")
    assert math.isnan(_row(tmp_path, body, _results(TRIAL, few))["or_nh"]), "10 < 20 met: NaN"


def test_summary_over_replicates_by_hand(tmp_path: Path) -> None:
    body = (
        _target("or", "itt_or", observed="observed = 1.0")
        + _target("neg", "readmit_2plus_minus_uc", observed="pattern = 'negative'")
        + _target("ci", "itt_or_ci", observed="pattern = 'excludes'\nvalue = 1.0")
    )
    targets = load_targets(_targets(tmp_path, body))
    rows = [
        {"or": 1.0, "neg": -0.1, "ci:lo": 0.5, "ci:hi": 0.9},
        {"or": math.e**2, "neg": 0.2, "ci:lo": 0.8, "ci:hi": 1.3},
        {"or": math.nan, "neg": math.nan, "ci:lo": math.nan, "ci:hi": 1.1},
        {"or": -1.0, "neg": -0.3, "ci:lo": 1.1, "ci:hi": 1.5},
    ]
    summary = targets.summarise(rows)
    # Ratios: logs of 1 and e^2 (NaN and the impossible -1 dropped): mean 1, SD sqrt(2).
    assert summary["or"] == pytest.approx(1.0)
    assert summary["or" + SD_SUFFIX] == pytest.approx(math.sqrt(2))
    assert summary["neg"] == 0.5, "negative in 2 of 4 replicates (NaN does not show it)"
    assert summary["ci"] == 0.5, "1 outside [0.5, 0.9] and [1.1, 1.5]: 2 of 4"
    assert all(math.isnan(v) for v in targets.summarise([]).values()), "no rows: NaN"


def test_observed_values_and_their_sampling_errors(tmp_path: Path) -> None:
    body = (
        _target("share", "met_share", observed="count = 265\nn = 295")
        + _target("or", "engaged_or_per_rb_activity", observed="observed = 1.4\nci = [1.13, 1.85]")
        + _target("lin", "readmit_uc", observed="observed = 0.3\nci = [0.2, 0.4]")
        + _target("pat", "readmit_2plus_minus_uc", observed="pattern = 'negative'")
    )
    targets = load_targets(_targets(tmp_path, body))
    observed = targets.observed()
    assert observed["share"] == pytest.approx(265 / 295), "count / n"
    assert observed["or"] == pytest.approx(math.log(1.4)), "ratios are compared as logs"
    assert observed["pat"] == 1.0, "a pattern was observed"
    p = 265 / 295
    assert targets["share"].observed.se == pytest.approx(math.sqrt(p * (1 - p) / 295))
    se_log = (math.log(1.85) - math.log(1.13)) / (2 * Z_95)
    assert targets["or"].observed.se == pytest.approx(se_log), "SE of the log from the CI"
    assert targets["lin"].observed.se == pytest.approx(0.2 / (2 * Z_95))


# --- the shipped files -------------------------------------------------------------------


def test_shipped_targets_are_sourced_graded_and_bind_to_enrich(scenario: Scenario) -> None:
    targets = load_targets(None)
    for t in targets.targets:
        assert t.source.strip(), f"{t.name}: every target cites its source"
        assert set(t.grade.split("/")) & {"T", "W", "S"}, f"{t.name}: sourced grade"
    assert {t.statistic for t in targets.targets} >= {
        "met_share",
        "itt_or_ci",
        "readmit_2plus_minus_uc",
        "site_engagement_fidelity_correlation",
        "low_sites_below_others",
        "readmit_uc",
        "engaged_or_per_first_contact_min",
        "engaged_or_per_rb_activity",
    }, "the targets the issue lists"
    bound = targets.bind(scenario)
    results = run_batch(scenario, [replicate_seed(1, 0)])[0]
    bound.check_keys(results)
    row = bound.row(results)
    assert all(math.isfinite(v) for v in row.values()), f"every statistic computes: {row}"


def test_shipped_priors_have_reasons_and_fit_the_schema(scenario: Scenario) -> None:
    priors = load_priors(None)
    assert len(priors.priors) >= 5
    for p in priors.priors:
        assert len(p.reason) > 30, f"{p.parameter}: a reason"
        median = float(p.ppf(0.5))
        apply_parameters(scenario, {p.parameter: median})  # validates
        grid = np.linspace(float(p.ppf(0.0005)), float(p.ppf(0.9995)), 4001)
        mass = float(np.trapezoid(p.pdf(grid), grid))
        assert mass == pytest.approx(0.999, abs=0.01), f"{p.parameter}: density integrates to 1"


BAD_TARGETS = {
    "misspelt key": (
        _target("a", "met_share", observed="obsreved = 0.9"),
        ["target[1] 'a'.obsreved", "did you mean observed?"],
    ),
    "unknown statistic": (
        _target("a", "met_shar", observed="observed = 0.9"),
        ["target[1] 'a'.statistic: value 'met_shar': unknown statistic", "did you mean met_share?"],
    ),
    "assumption as target": (
        _target("a", "met_share", observed="observed = 0.9").replace("grade = 'T'", "grade = 'M'"),
        ["grade: value 'M'", "only sourced facts are targets"],
    ),
    "share above 1": (
        _target("a", "met_share", observed="observed = 1.5"),
        ["'a'.observed: value 1.5: out of range, allowed: a share from 0 to 1"],
    ),
    "CI without the value": (
        _target("a", "readmit_uc", observed="observed = 0.3\nci = [0.4, 0.5]"),
        ["'a'.ci: value [0.4, 0.5]: does not contain observed 0.3"],
    ),
    "interval pattern on a value": (
        _target("a", "readmit_uc", observed="pattern = 'contains'\nvalue = 1.0"),
        ["'a'.pattern: value 'contains': applies to an interval statistic only"],
    ),
    "pattern without its value": (
        _target("a", "readmit_uc", observed="pattern = 'greater_than'"),
        ["'a'.value: missing: required"],
    ),
    "duplicate names": (
        _target("a", "met_share", observed="observed = 0.9") * 2,
        ["target[2] 'a'.name: value 'a': already used by target[1]"],
    ),
    "missing source": (
        _target("a", "met_share", observed="observed = 0.9").replace("source = 'hand-made'\n", ""),
        ["'a'.source: missing: required"],
    ),
    "missing setting": (
        _target("a", "low_sites_below_others"),
        ["'a'.sites: missing: required by low_sites_below_others"],
    ),
    "nothing to fit": (
        _target("a", "met_share", "weight = 0", "observed = 0.9"),
        ["every target has weight 0: nothing to fit"],
    ),
    "bad TOML": ("[[target]\nname = 1\n", ["line 1, column", "invalid TOML"]),
    "no targets": ("description = 'x'\n", ["at least one [[target]] table is required"]),
}


@pytest.mark.parametrize("case", sorted(BAD_TARGETS))
def test_bad_targets_file_gives_a_clear_error(case: str, tmp_path: Path) -> None:
    body, expected = BAD_TARGETS[case]
    path = _targets(tmp_path, body)
    with pytest.raises(TargetsError) as caught:
        load_targets(path)
    message = str(caught.value)
    assert str(path) in message, f"the file is named: {message}"
    for part in expected:
        assert part in message, f"{case}: expected {part!r} in:\n{message}"


def test_bad_targets_report_every_problem_at_once(tmp_path: Path) -> None:
    body = _target("a", "met_shar", observed="observed = 0.9") + _target(
        "b", "readmit_uc", observed="observed = 'high'"
    )
    with pytest.raises(TargetsError) as caught:
        load_targets(_targets(tmp_path, body))
    assert len(caught.value.problems) == 2, caught.value.problems
    assert "2 problems" in str(caught.value)


def test_old_bare_site_condition_works_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = load_targets(
        _targets(tmp_path, _target("b", "low_sites_below_others", "sites = ['host=nhs', 'C']"))
    )
    assert capsys.readouterr().err == (
        "peersim: note: old spelling 'host=nhs'; write 'sites[host=nhs]'\n"
    ), "one line saying how to write it now"
    assert old["b"].settings["sites"] == ("sites[host=nhs]", "C"), "read as the new spelling"
    new = load_targets(
        _targets(
            tmp_path,
            _target("b", "low_sites_below_others", "sites = ['sites[host=nhs]', 'C']"),
            "new.toml",
        )
    )
    assert capsys.readouterr().err == "", "no note for the new spelling"
    assert old.targets == new.targets, "the same target either way"


def test_bad_site_selectors_name_the_closest(tmp_path: Path) -> None:
    body = _target("b", "low_sites_below_others", "sites = ['sites[hots=nhs]']")
    with pytest.raises(TargetsError) as caught:
        load_targets(_targets(tmp_path, body))
    assert "cannot select sites by 'hots'; did you mean host?" in str(caught.value)
    scenario = _scenario(THREE_SITES)
    selector = "sites[geography=urban, host=not_for_profit]"
    body = _target("c", "low_sites_below_others", f"sites = ['{selector}']")
    with pytest.raises(TargetsError) as caught:
        load_targets(_targets(tmp_path, body, "t3.toml")).bind(scenario)
    assert f"value '{selector}': selects no site" in str(caught.value)


def test_targets_that_do_not_fit_the_scenario_are_refused(tmp_path: Path) -> None:
    scenario = _scenario(THREE_SITES)
    body = _target("a", "site_fidelity", "site = 'D'", "observed = 0.5") + _target(
        "b", "low_sites_below_others", "sites = ['sites[host=nhs]', 'C']"
    )
    with pytest.raises(TargetsError) as caught:
        load_targets(_targets(tmp_path, body)).bind(scenario)
    message = str(caught.value)
    assert "'a'.site: value 'D': no such site" in message, message
    assert "its sites are A, B, C" in message, message
    assert "selects every site" in message, message
    misspelt = load_targets(
        _targets(tmp_path, _target("c", "trial:readmit_uk", "", "observed = 0.3"), "t2.toml")
    )
    with pytest.raises(TargetsError, match=r"no key 'readmit_uk'.*did you mean readmit_uc"):
        misspelt.bind(scenario).check_keys(_results(TRIAL))


def _prior(parameter: str, body: str = "distribution = 'uniform'\nlower = 0.1\nupper = 0.9") -> str:
    return f"[[prior]]\nparameter = '{parameter}'\n{body}\nreason = 'a test'\n"


BAD_PRIORS = {
    "misspelt field": (
        _prior("ward.p_first_contact_per_week"),
        [
            "prior[1] 'ward.p_first_contact_per_week'.parameter",
            "did you mean p_first_contact_per_week_max",
        ],
    ),
    "misspelt group": (
        _prior("engagment.logit_intercept"),
        ["not a parameter", "did you mean engagement?"],
    ),
    "a count": (
        _prior("engagement.n_rb_activities_max"),
        ["a whole number; only real-valued parameters can be calibrated"],
    ),
    "a switch": (_prior("mechanisms.m1_ward_relationship"), ["a mechanism is a switch"]),
    "outside the range": (
        _prior("ward.p_contact_per_week", "distribution = 'uniform'\nlower = 0.1\nupper = 1.5"),
        ["'ward.p_contact_per_week'.upper: value 1.5: outside the parameter's range", "[0, 1]"],
    ),
    "normal on a bounded parameter": (
        _prior("ward.p_contact_per_week", "distribution = 'normal'\nmean = 0.5\nsd = 0.1"),
        ["lower: missing: required because the parameter allows only [0, 1]"],
    ),
    "unknown distribution": (
        _prior("ward.p_contact_per_week", "distribution = 'gamma'"),
        [
            "distribution: value 'gamma': not one of the choices, "
            "allowed: uniform, normal, lognormal"
        ],
    ),
    "empty interval": (
        _prior("ward.p_contact_per_week", "distribution = 'uniform'\nlower = 0.5\nupper = 0.5"),
        ["upper: value 0.5: not above lower"],
    ),
    "missing reason": (
        _prior("ward.p_contact_per_week").replace("reason = 'a test'\n", ""),
        ["reason: missing: required"],
    ),
    "key of another distribution": (
        _prior(
            "ward.p_contact_per_week", "distribution = 'uniform'\nlower = 0.1\nupper = 0.9\nsd = 1"
        ),
        ["'ward.p_contact_per_week'.sd: value 1: unknown key"],
    ),
    "twice": (_prior("ward.p_contact_per_week") * 2, ["already given by prior[1]"]),
}


@pytest.mark.parametrize("case", sorted(BAD_PRIORS))
def test_bad_priors_file_gives_a_clear_error(case: str, tmp_path: Path) -> None:
    body, expected = BAD_PRIORS[case]
    path = _targets(tmp_path, body, "priors.toml")
    with pytest.raises(PriorsError) as caught:
        load_priors(path)
    message = str(caught.value)
    assert str(path) in message, f"the file is named: {message}"
    for part in expected:
        assert part in message, f"{case}: expected {part!r} in:\n{message}"


def test_site_prior_must_name_a_site_of_the_scenario(tmp_path: Path) -> None:
    priors = load_priors(_targets(tmp_path, _prior("sites.Z.team_preparation"), "p.toml"))
    with pytest.raises(PriorsError, match="no site 'Z' in scenario"):
        priors.check_scenario(_scenario(THREE_SITES))


def test_cli_refuses_a_bad_targets_file_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _targets(tmp_path, _target("a", "met_shar", observed="observed = 0.9"))
    out = tmp_path / "out"
    assert main(["calibrate", str(bad), "--out", str(out)]) == 2, "usage errors exit 2"
    err = capsys.readouterr().err
    assert err.startswith("peersim: error: "), err
    assert "did you mean met_share?" in err, err
    assert not out.exists(), "nothing written"
    assert not (tmp_path / "out.partial").exists(), "nothing written"


# --- distance ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_pattern_shown_in_fewer_than_half_the_trials_rejects_the_particle() -> None:
    shares = (1.0, 0.5, 0.49, 0.25, 0.0)
    assert [pattern_penalty(s) for s in shares] == [0.0, 0.0, math.inf, math.inf, math.inf], (
        "expected 0 when shown in at least half of the trials, infinity (rejected) below"
    )
    assert pattern_penalty(math.nan) == math.inf, "not computable: not shown, rejected"


@pytest.mark.slow
def test_epsilon_floor_is_the_95_percent_sampling_error_threshold(tmp_path: Path) -> None:
    one = load_targets(_targets(tmp_path, _target("a", "met_share", observed="observed = 0.9")))
    assert acceptance_threshold(one) == pytest.approx(Z_95, abs=0.02), "one target: |Z| < 1.96"
    two = load_targets(
        _targets(
            tmp_path,
            _target("a", "met_share", observed="observed = 0.9")
            + _target("b", "readmit_uc", observed="observed = 0.3")
            + _target("c", "readmit_2plus_minus_uc", observed="pattern = 'negative'"),
            "two.toml",
        )
    )
    # sqrt(chi2_2 95% quantile / 2) = sqrt(5.991 / 2); patterns do not count.
    assert acceptance_threshold(two) == pytest.approx(math.sqrt(5.9915 / 2), abs=0.02)


def test_a_particles_simulations_depend_only_on_its_values_and_the_seed(scenario: Scenario) -> None:
    targets = load_targets(None).bind(scenario)
    problem = Problem(scenario, targets, load_priors(None), replicates=2, seed=5)
    values = {p.parameter: float(p.ppf(0.5)) for p in problem.priors.priors}
    again = dict(reversed(list(values.items())))
    assert simulate_summary(problem, values) == simulate_summary(problem, again), "order-free"
    seeds = particle_seeds(5, values, 2)
    other = particle_seeds(5, {**values, "ward.w_friction_nfp": 0.2500001}, 2)
    assert seeds[0].entropy != other[0].entropy, "other values, other random numbers"
    invalid = {"ward.w_friction_nfp": 2.0}  # beyond the schema's range
    assert all(math.isnan(v) for v in simulate_summary(problem, invalid).values())


# --- recovery: ABC-SMC finds known parameters ---------------------------------------------

TRUTH = {"ward.p_first_contact_per_week_max": 0.3, "readmission.p_readmit_12m_usual_care": 0.3}
RECOVERY_PRIORS = """\
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


@pytest.fixture(scope="module")
def recovery(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Targets simulated at ``TRUTH`` (the mean of 32 trials, so the truth sits at the
    centre of what they allow), then a small ABC-SMC in this process: 100 particles,
    4 trials each, until epsilon reaches its floor."""
    from calibration.inference import run_abc

    folder = tmp_path_factory.mktemp("recovery")
    base = load_scenario(None)
    truth = run_batch(apply_parameters(base, TRUTH), [replicate_seed(7, i) for i in range(32)])
    met = float(np.mean([r.trial["met_share"] for r in truth]))
    readmit = float(np.mean([r.trial["readmit_uc"] for r in truth]))
    body = _target("met", "met_share", observed=f"observed = {met}") + _target(
        "uc", "readmit_uc", observed=f"observed = {readmit}"
    )
    targets = load_targets(_targets(folder, body)).bind(base)
    priors = load_priors(_targets(folder, RECOVERY_PRIORS, "priors.toml"))
    settings = Settings(population=100, generations=8, replicates=4, seed=11)
    problem = Problem(base, targets, priors, settings.replicates, settings.seed)
    lines: list[str] = []
    with open_executor(ExecutorSpec(workers=1)) as backend:
        result = run_abc(problem, settings, folder / "abc.db", backend, report=lines.append)
    return {"result": result, "priors": priors, "lines": lines, "problem": problem}


@pytest.mark.slow
def test_recovery_posterior_covers_the_truth_and_narrows(recovery: dict[str, Any]) -> None:
    result, priors = recovery["result"], recovery["priors"]
    assert result.reached_floor, f"the run should reach its floor: {result.stop_reason}"
    posterior = Posterior(result.posterior, tuple(priors.parameters))
    lo, hi = posterior.quantile(0.05), posterior.quantile(0.95)
    for p in priors.priors:
        truth = TRUTH[p.parameter]
        assert lo[p.parameter] < truth < hi[p.parameter], (
            f"{p.parameter}: truth {truth} outside the 90% interval "
            f"[{lo[p.parameter]:.3f}, {hi[p.parameter]:.3f}]"
        )
        prior_width = float(p.ppf(0.95) - p.ppf(0.05))
        width = hi[p.parameter] - lo[p.parameter]
        assert width < 0.8 * prior_width, (
            f"{p.parameter}: the targets identify it, so its 90% interval ({width:.3f}) "
            f"should be well inside the prior's ({prior_width:.3f})"
        )


@pytest.mark.slow
def test_progress_says_epsilon_acceptance_and_time(recovery: dict[str, Any]) -> None:
    lines = recovery["lines"]
    assert lines[0].startswith("prior sample"), lines
    generation = lines[1]
    for part in ("generation 1 of at most 8", "epsilon", "floor", "accepted 100 of", "ESS"):
        assert part in generation, f"{part!r} in {generation!r}"
    assert "to go" in generation, "an estimate of the time left"


@pytest.mark.slow
def test_resume_keeps_finished_generations_and_adds_the_rest(
    tmp_path: Path, scenario: Scenario
) -> None:
    from calibration.inference import run_abc

    body = _target("met", "met_share", observed="observed = 0.9")
    targets = load_targets(_targets(tmp_path, body)).bind(scenario)
    priors = load_priors(_targets(tmp_path, RECOVERY_PRIORS, "priors.toml"))
    problem = Problem(scenario, targets, priors, replicates=2, seed=3)
    db = tmp_path / "abc.db"
    with open_executor(ExecutorSpec(workers=1)) as backend:
        first = run_abc(problem, Settings(20, 1, 2, 3, min_epsilon=0.0), db, backend)
        second = run_abc(problem, Settings(20, 2, 2, 3, min_epsilon=0.0), db, backend, resume=True)
    assert len(first.generations) == 1
    assert len(second.generations) == 2, "one more generation"
    pd.testing.assert_frame_equal(first.generations, second.generations.iloc[:1])


@pytest.mark.slow
def test_resume_after_an_interruption_in_the_prior_sample(
    tmp_path: Path, scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    from calibration import inference

    body = _target("met", "met_share", observed="observed = 0.9")
    targets = load_targets(_targets(tmp_path, body)).bind(scenario)
    priors = load_priors(_targets(tmp_path, RECOVERY_PRIORS, "priors.toml"))
    problem = Problem(scenario, targets, priors, replicates=2, seed=3)
    settings = Settings(20, 1, 2, 3, min_epsilon=0.0)
    db = tmp_path / "abc.db"
    real = inference.simulate_summary
    calls = {"n": 0}

    def interrupting(problem: Problem, values: dict[str, float]) -> dict[str, float]:
        calls["n"] += 1
        if calls["n"] == 5:  # Ctrl-C while sampling from the prior
            raise KeyboardInterrupt
        return real(problem, values)

    monkeypatch.setattr(inference, "simulate_summary", interrupting)
    with open_executor(ExecutorSpec(workers=1)) as backend:
        with pytest.raises(KeyboardInterrupt):
            inference.run_abc(problem, settings, db, backend)
        assert db.exists(), "the run's database was created"
        with pytest.raises(FileExistsError):
            inference.run_abc(problem, settings, db, backend)
        result = inference.run_abc(problem, settings, db, backend, resume=True)
    assert len(result.generations) == 1, "resumed from the start: the prior sample again"


# --- posterior ------------------------------------------------------------------------------


def _posterior() -> Posterior:
    samples = pd.DataFrame(
        {
            "ward.w_friction_nfp": [0.1, 0.2, 0.3, 0.4],
            "readmission.rel_hazard_full_dose": [0.6, 0.7, 0.8, 0.9],
            "weight": [0.1, 0.2, 0.3, 0.4],
            "distance": [1.0, 1.0, 1.0, 1.0],
        }
    )
    return Posterior(samples, ("ward.w_friction_nfp", "readmission.rel_hazard_full_dose"))


def test_weighted_quantile_and_rounding() -> None:
    values, weights = np.array([3.0, 1.0, 2.0]), np.array([1.0, 1.0, 2.0])
    # sorted 1, 2, 3 with weights 1/4, 1/2, 1/4: CDF midpoints 1/8, 1/2, 7/8
    assert weighted_quantile(values, weights, 0.5) == 2.0
    assert weighted_quantile(values, weights, 0.125) == 1.0
    assert round_significant(0.0123456) == 0.01235
    assert round_significant(12345.6) == 12350.0


def test_posterior_draws_depend_only_on_the_replicate_seed(scenario: Scenario) -> None:
    posterior = _posterior()
    draws = [posterior.draw(replicate_seed(1, i)) for i in range(400)]
    assert draws == [posterior.draw(replicate_seed(1, i)) for i in range(400)], "reproducible"
    shares = np.bincount(draws, minlength=4) / 400
    assert np.allclose(shares, posterior.weights, atol=0.06), f"draws follow the weights: {shares}"
    what_if = scenario.model_copy(update={"name": "what_if"})
    a = posterior.scenario_for_replicate(scenario, 3, 20241)
    b = posterior.scenario_for_replicate(what_if, 3, replicate_seed(20241, 3))
    assert get_parameter(a, "ward.w_friction_nfp") == get_parameter(b, "ward.w_friction_nfp"), (
        "replicate 3 of a baseline and of a what-if draw the same particle (paired)"
    )
    jobs = posterior.jobs(scenario, 20241, 6)
    assert [j.tags["particle"] for j in jobs] == [
        posterior.draw(replicate_seed(20241, i)) for i in range(6)
    ]
    assert jobs[0].seed.spawn_key == (0,), "the replicate's usual seed"


def test_median_scenario_file_round_trips(tmp_path: Path, scenario: Scenario) -> None:
    posterior = _posterior()
    median = posterior.median_scenario(scenario)
    assert (
        get_parameter(median, "ward.w_friction_nfp")
        == posterior.median_values()["ward.w_friction_nfp"]
    )
    path = tmp_path / "calibrated.toml"
    path.write_text(scenario_toml(median, ["a header"], {"ward.w_friction_nfp": "calibrated"}))
    loaded = load_scenario(path)
    assert loaded.model_dump() == median.model_dump(), "the file is the scenario, exactly"
    text = path.read_text()
    assert text.startswith("# a header")
    assert "# calibrated" in text


def test_overridden_names_calibrated_parameters_a_what_if_changes(scenario: Scenario) -> None:
    posterior = _posterior()
    what_if = apply_parameters(scenario, {"ward.w_friction_nfp": 0.0, "ward.w_preparation": 0.1})
    assert posterior.overridden(scenario, what_if) == ["ward.w_friction_nfp"]


def test_load_posterior_errors(tmp_path: Path) -> None:
    with pytest.raises(PosteriorError, match="no such folder"):
        load_posterior(tmp_path / "missing")
    with pytest.raises(PosteriorError, match=r"no posterior\.parquet"):
        load_posterior(tmp_path)
    _posterior().save(tmp_path)
    assert load_posterior(tmp_path).parameters == _posterior().parameters


# --- peersim calibrate ----------------------------------------------------------------------


@pytest.mark.slow
def test_calibrate_command_interrupted_resumes_to_a_complete_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run stopped by Ctrl-C in its second generation keeps the first; --resume
    finishes it, and the output folder holds what the help says."""
    from calibration import inference

    targets = _targets(
        tmp_path,
        _target("met", "met_share", observed="observed = 0.9")
        + _target("gap", "readmit_2plus_minus_uc", observed="pattern = 'negative'"),
    )
    priors = _targets(tmp_path, RECOVERY_PRIORS, "priors.toml")
    out = tmp_path / "calib"
    real = inference.simulate_summary
    original = inference._SingleCoreSampler.sample_until_n_accepted
    state = {"generations": 0}

    def counting(self: Any, n: int, simulate_one: Any, t: int, **kwargs: Any) -> Any:
        sample = original(self, n, simulate_one, t, **kwargs)
        state["generations"] += t >= 0
        return sample

    def interrupting(problem: Problem, values: dict[str, float]) -> dict[str, float]:
        if state["generations"] == 1:  # Ctrl-C while generation 2 is under way
            raise KeyboardInterrupt
        return real(problem, values)

    monkeypatch.setattr(inference._SingleCoreSampler, "sample_until_n_accepted", counting)
    monkeypatch.setattr(inference, "simulate_summary", interrupting)
    argv = [
        "calibrate", str(targets), "--priors", str(priors), "--population", "20",
        "--generations", "3", "--replicates", "2", "--report-replicates", "8",
        "--min-epsilon", "0", "--workers", "1", "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 130, "Ctrl-C exits 130"
    err = capsys.readouterr().err
    assert f"continue with: peersim calibrate --resume {out}" in err, err
    assert not out.exists()
    assert (tmp_path / "calib.partial" / "abc.db").is_file(), "finished generations kept"

    monkeypatch.setattr(inference, "simulate_summary", real)
    assert main(["calibrate", "--resume", str(out), "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert "generation 1 of" not in captured.err, "the finished generation is not redone"
    assert "generation 3 of at most 3" in captured.err, captured.err
    assert not (tmp_path / "calib.partial").exists(), "the work folder is removed"
    names = {p.name for p in out.iterdir()}
    assert names >= {
        "manifest.json", "report.md", "figures", "posterior.parquet", "scenario.toml",
        "generations.parquet", "predictive_posterior.parquet", "predictive_calibrated.parquet",
    }, names  # fmt: skip
    assert "abc.db" not in names, "the database is kept only with --keep-db"
    assert {p.name for p in (out / "figures").iterdir()} == {
        "targets.png",
        "parameters.png",
        "pairs.png",
        "epsilon.png",
    }
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"][1:3] == ["calibrate", str(targets)], "the command line is recorded"
    assert len(manifest["resumed"]) == 1
    assert manifest["settings"]["population"] == 20
    assert len(pd.read_parquet(out / "generations.parquet")) == 3
    posterior = load_posterior(out)
    assert posterior.parameters == tuple(TRUTH)
    assert len(posterior.samples) == 20
    calibrated = load_scenario(out / "scenario.toml")
    assert calibrated.name == "enrich_trial_calibrated", calibrated.name
    for p, v in posterior.median_values().items():
        assert get_parameter(calibrated, p) == v, f"{p}: the scenario file holds the median"
    report = (out / "report.md").read_text()
    for part in (
        "## Targets",
        "## Parameters",
        "figures/targets.png",
        "figures/pairs.png",
        "| met |",
    ):
        assert part in report, f"{part!r} in the report"
    assert "Targets met (posterior predictive)" in captured.out
