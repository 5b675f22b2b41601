"""The outcome registry (``simulation.outcomes``): one name, label, unit and direction
per outcome, used by compare, the sensitivity outputs and the calibration statistics.

- every outcome compare reports, every sensitivity output and every calibration
  statistic resolves in the registry;
- every outcome has a label, a unit and a direction, and the headings are unique;
- known answers of the computations on a small hand-built ``Results``;
- compare's vectorised tables give the registry's values on a real replicate;
- the old spelling ``itt_log_or`` resolves to ``log_itt_or``, with a note, in the
  registry, a sensitivity spec's outputs and a targets file's statistic.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from analysis import compare
from analysis.sensitivity import OutputTable, load_spec, make_design, output_unit
from analysis.sensitivity_spec import OUTPUTS, SITE_OUTPUTS, output_description, output_names
from calibration.statistics import STATISTICS, BoundStatistic, ReplicateView, statistic_unit
from scenarios import default_scenario_path
from simulation import Results, run
from simulation.outcomes import (
    ALIASES,
    COMPARED,
    OUTCOMES,
    SENSITIVITY_OUTPUTS,
    SENSITIVITY_SITE_OUTPUTS,
    canonical,
    heading,
    note,
    outcome,
    units_line,
)

DIRECTIONS = {"higher", "lower", "none"}


# --- everything resolves ---------------------------------------------------------------


def test_every_compared_outcome_is_in_the_registry():
    names = [name for name, _ in compare.OUTCOMES]
    assert names == list(COMPARED), "compare reports the registry's outcomes, in its order"
    for name, label in compare.OUTCOMES:
        assert name in OUTCOMES, f"compare's {name} should be a registry outcome"
        assert label == OUTCOMES[name].heading(), f"compare's label of {name} is the registry's"
    assert {"itt_or", "log_itt_or"} == compare.OVERALL_ONLY, (
        "the odds ratios are whole-trial outcomes only"
    )


def test_every_sensitivity_output_is_in_the_registry():
    assert list(OUTPUTS) == list(SENSITIVITY_OUTPUTS), "the spec's outputs are the registry's"
    for name in OUTPUTS:
        assert OUTCOMES[name].value is not None, f"{name} needs a whole-trial computation"
        assert OUTPUTS[name] == OUTCOMES[name].heading(), f"{name}: described as the registry"
    for prefix in SITE_OUTPUTS:
        base = prefix.removesuffix("_")
        assert base in SENSITIVITY_SITE_OUTPUTS, f"per-site output {prefix}<site> from the registry"
        assert OUTCOMES[base].per_site, f"{base} should be an outcome per site too"
    assert output_description("fidelity_A") == (f"{OUTCOMES['fidelity'].heading()} at site A"), (
        "a per-site output is described by its outcome and the site"
    )
    assert output_unit("engaged_share_B") == OUTCOMES["engaged_share"].unit, (
        "a per-site output has its outcome's unit"
    )


def test_every_calibration_statistic_is_in_the_registry():
    for name, statistic in STATISTICS.items():
        assert name in OUTCOMES, f"calibration statistic {name} should be a registry outcome"
        assert statistic.description.startswith(OUTCOMES[name].heading()), (
            f"{name}: described with the registry's label and unit"
        )
        assert statistic_unit(name) == OUTCOMES[name].unit_for(), f"{name}: the registry's unit"
    assert statistic_unit("trial:readmit_uc") == OUTCOMES["readmit_uc"].unit, (
        "trial:KEY of an outcome has the outcome's unit"
    )
    assert statistic_unit("trial:n_2plus") is None, "a trial key that is no outcome has no unit"


def test_every_outcome_has_a_label_unit_direction_and_a_unique_heading():
    for o in OUTCOMES.values():
        assert o.label, f"{o.name} should have a label"
        assert o.unit, f"{o.name} should have a unit"
        assert o.better in DIRECTIONS, f"{o.name}: better is one of {DIRECTIONS}, not {o.better}"
    for name in COMPARED:
        o = OUTCOMES[name]
        read_per_site = (
            o.site_week_column is not None
            or o.readmitted is not None
            or o.site_trial_prefix is not None
        )
        assert o.per_site == read_per_site, (
            f"{name}: compare reads an outcome per site from site_weeks, readmissions or "
            "the trial table's per-site keys"
        )
    headings = [o.heading() for o in OUTCOMES.values()]
    assert len(set(headings)) == len(headings), f"headings should tell outcomes apart: {headings}"
    assert OUTCOMES["readmit_ps"].better == "lower", "fewer readmissions are better"
    assert OUTCOMES["engaged_share"].better == "higher", "more engagement is better"
    assert OUTCOMES["itt_or"].unit == "odds ratio"
    assert OUTCOMES["fidelity"].unit == "0-1 index"


def test_labels_fill_in_the_scenarios_follow_up_and_dose(scenario):
    changed = scenario.model_copy(
        update={
            "readmission": scenario.readmission.model_copy(update={"n_sessions_dose": 3}),
            "trial": scenario.trial.model_copy(update={"dur_followup_weeks": 26}),
        }
    )
    assert OUTCOMES["readmit_2plus"].label_for(changed) == (
        "readmitted within 26 weeks, peer support with 3+ sessions"
    )
    assert OUTCOMES["readmit_2plus"].label_for() == (
        "readmitted within follow-up, peer support with 2+ sessions"
    ), "without a scenario: the follow-up and ENRICH's 2+ sessions"
    assert heading("not_an_outcome") == "not_an_outcome", "an unknown name reads as itself"
    assert units_line(
        [("met_share", "met"), ("engaged_share", "engaged"), ("fidelity", "fid")]
    ) == ("units: met, engaged: share of the peer support arm; fid: 0-1 index")


# --- known answers ----------------------------------------------------------------------


def _hand_built() -> Results:
    """Two sites, two weeks. Peer support (arm 1) at A: 4 participants with 0, 1, 2 and 3
    sessions, the first and the last readmitted; at B: 2 with 2 and 5 sessions, none
    readmitted. Usual care: 2 at A (one readmitted), 1 at B (readmitted)."""
    site = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1])
    arm = np.array([1, 1, 1, 1, 0, 0, 1, 1, 0])
    sessions = np.array([0, 1, 2, 3, 0, 0, 2, 5, 0])
    readmitted = np.array([1, 0, 0, 1, 1, 0, 0, 0, 1], dtype=bool)
    trial = {
        "met_share": 0.5,
        "engaged_share": 0.25,
        "engaged_share_A": 0.5,
        "engaged_share_B": 0.0,
        "fidelity_A": 0.8,
        "fidelity_B": 0.4,
        "readmit_ps": 2 / 6,
        "readmit_uc": 2 / 3,
        "itt_or": 0.25,
    }
    weeks = {
        "site": np.array([0, 1, 0, 1]),
        "week": np.array([0, 0, 1, 1]),
        "met_share": np.array([0.1, 0.2, 0.75, 0.25]),
        "fid_strengths": np.array([0.0, 0.0, 0.9, 0.5]),
    }
    people = {"site": site, "arm": arm, "sessions": sessions, "readmitted_12m": readmitted}
    return Results(("A", "B"), trial, site_week_arrays=weeks, participant_arrays=people)


def test_known_answers_on_a_hand_built_replicate(scenario):
    r = _hand_built()
    assert OUTCOMES["met_share"].of_trial(r) == 0.5, "the trial's own met share"
    assert OUTCOMES["fidelity"].of_trial(r) == pytest.approx(0.6), "mean of 0.8 and 0.4"
    assert OUTCOMES["log_itt_or"].of_trial(r) == pytest.approx(math.log(0.25))
    assert OUTCOMES["site_gap_engaged"].of_trial(r) == pytest.approx(0.5), "0.5 minus 0.0"
    assert OUTCOMES["fid_strengths"].of_trial(r) == pytest.approx(0.7), "last week: 0.9, 0.5"
    assert list(OUTCOMES["met_share"].of_sites(r)) == [0.75, 0.25], "the last week's values"
    assert list(OUTCOMES["fidelity"].of_sites(r)) == [0.8, 0.4], "trial['fidelity_<site>']"
    assert list(OUTCOMES["readmit_ps"].of_sites(r)) == pytest.approx([0.5, 0.0]), "2 of 4, 0 of 2"
    assert list(OUTCOMES["readmit_uc"].of_sites(r)) == pytest.approx([0.5, 1.0]), "1 of 2, 1 of 1"
    # ENRICH's dose is 2 sessions: A's 2+ group is the participants with 2 and 3 sessions.
    assert scenario.readmission.n_sessions_dose == 2
    assert list(OUTCOMES["readmit_2plus"].of_sites(r, scenario)) == pytest.approx([0.5, 0.0])
    with pytest.raises(ValueError, match="dose"):
        OUTCOMES["readmit_2plus"].of_sites(r)
    with pytest.raises(ValueError, match="whole trial only"):
        OUTCOMES["itt_or"].of_sites(r)
    with pytest.raises(ValueError, match="needs settings"):
        OUTCOMES["difference"].of_trial(r)


def test_log_odds_ratio_of_a_non_positive_ratio_is_missing():
    r = _hand_built()
    r.trial["itt_or"] = 0.0
    assert math.isnan(OUTCOMES["log_itt_or"].of_trial(r)), "log of 0 is undefined, so NaN"


def test_compare_tables_give_the_registry_values(scenario):
    """On a real replicate, compare's vectorised outcomes (from the trial, site_weeks
    and readmission_counts tables) equal the registry's per-replicate computations."""
    r = run(scenario, 3)
    tables = {}
    for name, table_fn in compare.COMPARE_TABLES.items():
        tables[name] = table_fn(r).assign(scenario="s", replicate=0)
    values = compare.replicate_outcomes(
        {"s": scenario}, tables["trial"], tables["site_weeks"], tables["readmission_counts"]
    ).set_index(["outcome", "scope"])["value"]
    for name in COMPARED:
        o = OUTCOMES[name]
        assert values[(name, compare.OVERALL)] == pytest.approx(o.of_trial(r), rel=1e-12), (
            f"{name}: compare's whole-trial value is the registry's"
        )
        if o.per_site:
            at_sites = o.of_sites(r, scenario)
            for k, site in enumerate(r.site_names):
                assert values[(name, site)] == pytest.approx(at_sites[k], rel=1e-12, nan_ok=True), (
                    f"{name} at {site}: compare's value is the registry's"
                )


# --- the old spelling -------------------------------------------------------------------


def test_old_spelling_of_the_log_odds_ratio_resolves_with_a_note():
    assert ALIASES == {"itt_log_or": "log_itt_or"}, "one old spelling, of the log odds ratio"
    assert canonical("itt_log_or") == "log_itt_or"
    assert outcome("itt_log_or") is OUTCOMES["log_itt_or"], "the old spelling finds the outcome"
    assert "itt_log_or" not in OUTCOMES, "the old spelling is no outcome of its own"
    text = note("itt_log_or")
    assert text is not None, "the old spelling should get a note"
    assert "'log_itt_or'" in text, f"the note should say how to write it now: {text}"
    assert "this release" in text, f"the note should say how long the old one works: {text}"
    assert note("log_itt_or") is None, "the current name needs no note"


def test_targets_statistic_accepts_the_old_spelling_with_a_note():
    assert STATISTICS["itt_log_or"] is STATISTICS["log_itt_or"], "the old spelling finds it"
    assert "itt_log_or" not in list(STATISTICS), "but it is not listed"
    with pytest.warns(FutureWarning, match="now written 'log_itt_or'"):
        bound = BoundStatistic("itt_log_or")
    view = ReplicateView(_hand_built())
    assert bound(view) == pytest.approx(math.log(0.25)), "it computes the log odds ratio"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BoundStatistic("log_itt_or")  # the current name: no warning


def test_sensitivity_spec_accepts_the_old_spelling_with_a_note(tmp_path: Path):
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(
        f'scenario = "{default_scenario_path().as_posix()}"\n'
        'outputs = ["itt_log_or", "engaged_share"]\n'
        '[parameters]\n"ward.w_preparation" = [0.0, 1.0]\n'
        '"sites.A.team_preparation" = [0.0, 1.0]\n[morris]\nn = 2\n',
        encoding="utf-8",
    )
    spec = load_spec(spec_path)
    assert spec.outputs == ("itt_log_or", "engaged_share"), "the old spelling is accepted"
    assert "itt_log_or" in output_names(spec.base.site_names), "as a name a spec may use"
    with pytest.warns(FutureWarning, match="outputs: 'itt_log_or' is now written 'log_itt_or'"):
        make_design(spec, spec.settings)
    row = OutputTable(spec.outputs)(_hand_built_for_outputs())
    assert list(row.columns) == ["itt_log_or", "engaged_share"], "columns as the spec names them"
    assert row["itt_log_or"].iloc[0] == pytest.approx(math.log(0.25)), "the log odds ratio"
    assert output_description("itt_log_or") == OUTCOMES["log_itt_or"].heading()


def _hand_built_for_outputs() -> Results:
    """The hand-built replicate with every column the sensitivity outputs read."""
    r = _hand_built()
    weeks = dict(r.site_week_arrays)
    for name in ("fidelity", "fid_relationships", "fid_reciprocity", "fid_leadership"):
        weeks[name] = weeks["fid_strengths"]
    trial = {**r.trial, "readmit_2plus": 0.25}
    return Results(r.site_names, trial, weeks, r.participant_arrays)
