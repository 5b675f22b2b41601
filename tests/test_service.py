"""Service mode (issue 12): a standing service over years, everyone offered peer support.

- the two modes agree where they should: a service whose referrals match the
  trial's recruitment, with no capacity limit, gives the trial's per-participant
  engagement, sessions and readmission (peer support arm vs with peer support,
  usual care arm vs the same people without it) within sampling error;
- the counterfactual is exactly the model without peer support's effect;
- capacity binds: halving a busy site's peer workers raises its waits and lowers
  its engaged share; a longer vacancy lowers sessions delivered;
- bad input gets the house one-line error and nothing is written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis.cli import main
from scenarios import ScenarioError, load_scenario
from scenarios.loader import library
from simulation import Scenario, run, run_batch
from simulation.params import ServiceDesign
from simulation.rng import replicate_seed

SERVICE_EXAMPLE = library()["service_example"]
# Replicate-level mean differences farther than this many standard errors fail.
Z_MAX = 4.0


def _trial_matched_service(trial: Scenario) -> Scenario:
    """The trial's sites as a 1-year service whose referrals are the trial's peer
    support arm (half of each site's participants, uniform over the year as the
    trial's recruitment), starting at once, with no capacity limit."""
    sites = {
        name: s.model_copy(
            update={
                "n_participants": None,
                "referrals_per_year": (s.n_participants or 0) / 2,
                "n_caseload_cap": 200,
            }
        )
        for name, s in trial.sites.items()
    }
    service = ServiceDesign(
        horizon_years=1, dur_prelaunch_weeks=0, dur_ramp_up_weeks=0, max_wait_weeks=104
    )
    return Scenario.model_validate(
        {
            **trial.model_dump(),
            "mode": "service",
            "service": service.model_dump(),
            "sites": {n: s.model_dump() for n, s in sites.items()},
        }
    )


def _uncapped_trial(trial: Scenario) -> Scenario:
    return trial.with_values({"sites[host=nhs].n_caseload_cap": 200}).with_values(
        {"sites[host=not_for_profit].n_caseload_cap": 200}
    )


def _replicate_means(results, select, column: str) -> np.ndarray:
    return np.array(
        [np.mean(r.participant_arrays[column][select(r)]) for r in results], dtype=float
    )


def _z(a: np.ndarray, b: np.ndarray) -> float:
    se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    return float((b.mean() - a.mean()) / se)


def test_a_service_matching_the_trial_reproduces_its_per_participant_outcomes():
    trial = _uncapped_trial(load_scenario(None))
    service = _trial_matched_service(trial)
    n = 30
    trials = run_batch(trial, [replicate_seed(1, i) for i in range(n)])
    services = run_batch(service, [replicate_seed(2, i) for i in range(n)])

    def ps(r):
        return r.participant_arrays["arm"] == 1

    def uc(r):
        return r.participant_arrays["arm"] == 0

    def everyone(r):
        return np.ones(len(r.participant_arrays["arm"]), dtype=bool)

    pairs = [
        ("engaged", ps, "engaged", "engaged"),
        ("sessions", ps, "sessions", "sessions"),
        ("readmitted (peer support arm vs with)", ps, "readmitted_12m", "readmitted_12m"),
        (
            "readmitted (usual care arm vs without)",
            uc,
            "readmitted_12m",
            "readmitted_12m_without_ps",
        ),
    ]
    for label, trial_group, trial_column, service_column in pairs:
        a = _replicate_means(trials, trial_group, trial_column)
        b = _replicate_means(services, everyone, service_column)
        z = _z(a, b)
        assert abs(z) < Z_MAX, (
            f"{label}: trial {a.mean():.4f}, service {b.mean():.4f} per participant, "
            f"{z:+.1f} standard errors apart (expected within {Z_MAX})"
        )
    # The readmission distribution over follow-up: readmitted by 13, 26 and 52 weeks.
    for week in (13, 26, 52):
        a = np.array(
            [
                np.mean(
                    (r.participant_arrays["weeks_to_readmission"][ps(r)] >= 0)
                    & (r.participant_arrays["weeks_to_readmission"][ps(r)] <= week)
                )
                for r in trials
            ]
        )
        b = np.array(
            [
                np.mean(
                    (r.participant_arrays["weeks_to_readmission"] >= 0)
                    & (r.participant_arrays["weeks_to_readmission"] <= week)
                )
                for r in services
            ]
        )
        z = _z(a, b)
        assert abs(z) < Z_MAX, (
            f"readmitted by week {week} with peer support: trial {a.mean():.4f}, service "
            f"{b.mean():.4f}, {z:+.1f} standard errors apart (expected within {Z_MAX})"
        )
    offered = np.mean([s.trial["allocated_share"] for s in services])
    assert offered == 1.0, f"with no capacity limit everyone starts, got share {offered}"


def test_the_counterfactual_is_the_model_without_peer_supports_effect():
    """Readmission without peer support, read off each participant's draws, is
    exactly what the model gives when sessions move no clock (M7 off), person by
    person: a paired difference by construction."""
    service = load_scenario(SERVICE_EXAMPLE)
    with_ps = run(service, 5)
    without = run(service.with_values({"mechanisms.m7_dose_response": False}), 5)
    a, b = with_ps.participant_arrays, without.participant_arrays
    assert np.array_equal(a["week_recruited"], b["week_recruited"]), "the same referrals"
    assert np.array_equal(a["readmitted_12m_without_ps"], b["readmitted_12m"]), (
        "each participant's counterfactual readmission should equal the run without M7"
    )
    assert np.array_equal(a["readmitted_12m_without_ps"], b["readmitted_12m_without_ps"]), (
        "the counterfactual does not depend on peer support"
    )
    avoided = with_ps.trial["readmissions_avoided"]
    paired = int(a["readmitted_12m_without_ps"].sum() - a["readmitted_12m"].sum())
    assert avoided == paired, f"readmissions avoided {avoided} is the paired sum {paired}"
    assert avoided > 0, f"sessions lower the hazard, so some readmissions are avoided: {avoided}"
    years = with_ps.site_years
    n_years = with_ps.site_years["year"].nunique()
    assert sorted(years["year"].unique()) == list(range(1, n_years + 1)), (
        "service years are numbered from 1"
    )
    assert years["readmissions_avoided"].sum() == avoided, "site-years add up to the whole"
    lo, hi = years["readmissions_avoided_lo"], years["readmissions_avoided_hi"]
    assert (lo <= years["readmissions_avoided"]).all(), "each interval holds its estimate"
    assert (years["readmissions_avoided"] <= hi).all(), "each interval holds its estimate"


def _site_totals(results, site: str, columns: list[str]) -> np.ndarray:
    rows = [r.site_years[r.site_years["site"] == site][columns].sum() for r in results]
    return np.array([row.to_numpy(float) for row in rows])


def test_capacity_binds_halving_peer_workers_raises_waits_and_lowers_engagement():
    service = load_scenario(SERVICE_EXAMPLE)
    halved = service.with_values({"sites.city_north.n_peer_workers": 2})
    seeds = [replicate_seed(11, i) for i in range(6)]
    base, fewer = run_batch(service, seeds), run_batch(halved, seeds)
    columns = ["n_referrals", "n_started", "n_engaged", "n_offer_lapsed", "waiting_list_mean"]
    b, f = _site_totals(base, "city_north", columns), _site_totals(fewer, "city_north", columns)
    assert np.array_equal(b[:, 0], f[:, 0]), "the same referrals (common random numbers)"
    wait_b = np.array(
        [r.participants.query("site == 'city_north'")["wait_weeks"].mean() for r in base]
    )
    wait_f = np.array(
        [r.participants.query("site == 'city_north'")["wait_weeks"].mean() for r in fewer]
    )
    assert (wait_f > wait_b).all(), f"waits should rise in every replicate: {wait_b} -> {wait_f}"
    assert (f[:, 4] > b[:, 4]).all(), f"the waiting list should grow: {b[:, 4]} -> {f[:, 4]}"
    engaged_b, engaged_f = b[:, 2] / b[:, 0], f[:, 2] / f[:, 0]
    diff = engaged_f - engaged_b
    se = diff.std(ddof=1) / np.sqrt(len(diff))
    assert diff.mean() + 2 * se < 0, (
        f"the engaged share should fall: {engaged_b.mean():.3f} -> {engaged_f.mean():.3f} "
        f"(paired difference {diff.mean():+.3f}, SE {se:.3f})"
    )
    assert (f[:, 3] > b[:, 3]).all(), f"more offers should lapse: {b[:, 3]} -> {f[:, 3]}"
    other = _site_totals(base, "moorland", ["n_engaged"])
    assert np.array_equal(other, _site_totals(fewer, "moorland", ["n_engaged"])), (
        "other sites are untouched (sites never interact)"
    )


def test_a_longer_vacancy_lowers_sessions_delivered():
    service = load_scenario(SERVICE_EXAMPLE).with_values({"morale.p_leave_per_week": 0.02})
    seeds = [replicate_seed(12, i) for i in range(6)]
    short = run_batch(service.with_values({"morale.dur_vacancy_weeks": 2}), seeds)
    long = run_batch(service.with_values({"morale.dur_vacancy_weeks": 26}), seeds)
    s_short = np.array([r.site_years["n_sessions"].sum() for r in short], dtype=float)
    s_long = np.array([r.site_years["n_sessions"].sum() for r in long], dtype=float)
    vacant_short = np.mean([r.trial["pw_vacancies_mean"] for r in short])
    vacant_long = np.mean([r.trial["pw_vacancies_mean"] for r in long])
    assert vacant_long > vacant_short, (
        f"longer vacancies leave more posts empty: {vacant_short:.2f} -> {vacant_long:.2f}"
    )
    diff = s_long - s_short
    se = diff.std(ddof=1) / np.sqrt(len(diff))
    assert diff.mean() + 2 * se < 0, (
        f"sessions delivered should fall: {s_short.mean():.0f} -> {s_long.mean():.0f} "
        f"(paired difference {diff.mean():+.0f}, SE {se:.0f})"
    )


def test_trial_mode_is_unchanged_by_the_service_table():
    """A trial ignores [service]: its defaults may change without moving a trial."""
    trial = load_scenario(None)
    other = trial.with_values({"service.horizon_years": 7, "service.max_wait_weeks": 1})
    a, b = run(trial, 3), run(other, 3)
    assert a.trial == b.trial, "a trial's statistics do not depend on service parameters"
    assert a.site_years.empty, "a trial has no site-year rows"


# --- bad input -------------------------------------------------------------------------

_SITE = """
[sites.a]
host = "nhs"
geography = "urban"
dur_travel_min = 20.0
n_supervisors = 1
supervisor_h_per_week = 10.0
team_preparation = 0.5
share_records_access = 1.0
n_peer_workers = 3
n_caseload_cap = 10
"""
_SERVICE = 'mode = "service"\n[service]\nhorizon_years = 2\n' + _SITE

BAD_FILES = {
    "negative_rate": (
        _SERVICE + "referrals_per_year = -5.0\n",
        "sites.a.referrals_per_year",
        "-5.0",
        "0 to 100000",
    ),
    "horizon_zero": (
        _SERVICE.replace("horizon_years = 2", "horizon_years = 0") + "referrals_per_year = 50.0\n",
        "service.horizon_years",
        "0",
        "1 to 10",
    ),
    "trial_key_in_service": (
        _SERVICE + "referrals_per_year = 50.0\n[trial]\ndur_recruitment_weeks = 26\n",
        "trial.dur_recruitment_weeks",
        "26",
        "in service mode: [service] and sites.NAME.referrals_per_year",
    ),
    "participants_in_service": (
        _SERVICE + "n_participants = 50\n",
        "sites.a.n_participants",
        "50",
        "in service mode",
    ),
    "service_table_in_trial": (
        "[service]\nhorizon_years = 2\n" + _SITE + "n_participants = 50\n",
        "service",
        "(a table)",
        'need mode = "service"',
    ),
    "referrals_in_trial": (
        _SITE + "n_participants = 50\nreferrals_per_year = 50.0\n",
        "sites.a.referrals_per_year",
        "50.0",
        "in trial mode",
    ),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_service_input_gets_one_line_per_problem_and_writes_nothing(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, key, value, allowed = BAD_FILES[name]
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    lines = [p for p in caught.value.problems if f": {key}: " in p]
    assert len(lines) == 1, f"{name}: one problem at {key}, got {caught.value.problems}"
    line = lines[0]
    assert line.startswith(f"{path}: {key}: value {value}"), f"{name}: file, key, value: {line}"
    assert allowed in line, f"{name}: says what is allowed ({allowed!r}): {line}"
    out = tmp_path / "out"
    status = main(["run", str(path), "-n", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2, f"{name}: exit status 2 for bad input, got {status}"
    assert "Traceback" not in err, f"{name}: no traceback: {err}"
    assert f"{key}: value {value}" in err, f"{name}: the problem reaches stderr: {err}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name], (
        f"{name}: nothing written: {sorted(tmp_path.iterdir())}"
    )
