"""The teaching app without a browser.

- ``TeachingModel`` runs the same model as the command line: its weekly records
  equal ``PeerSupportModel``'s for the same scenario and seed, and trial i of app
  seed S is replicate i of ``peersim run --seed S``; the charts average the trials;
- Mesa's Reset re-creates exactly the trial the page's parameters describe;
- site conditions are validated like a scenario file;
- every lesson gives a valid scenario, changes only what the controls show, and
  what its text says to watch for is what the app shows, at its default seed and
  at two others;
- the views agree with the model's results;
- the model never imports the app, and the command line works without Solara;
- ``peersim app`` serves on 127.0.0.1 by default and rejects bad ports.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.app.charts import (
    DELIVERY_PANELS,
    FIDELITY_PANELS,
    SITE_COLOURS,
    DifferenceRow,
    difference_option,
    network_option,
)
from analysis.app.lessons import LESSONS, LESSONS_BY_KEY
from analysis.app.teaching_model import (
    CONTROLLED_FIELDS,
    SITE_CONTROLS,
    ConditionsError,
    TeachingModel,
    enrich_scenario,
    site_conditions,
    with_conditions,
)
from analysis.app.views import (
    final_result_rows,
    site_label,
    site_measures,
    site_numbers,
    trial_so_far,
)
from analysis.app.workbench import SESSIONS_TOP, Workbench, describe_changes
from analysis.cli import main
from analysis.cli.app import DEFAULT_HOST, DEFAULT_PORT, solara_command
from simulation import PeerSupportModel, replicate_seed
from simulation.rng import DEFAULT_SEED
from simulation.runner import run_replicates

REPO = Path(__file__).resolve().parent.parent
SEED = 7


def _run_to_end(model):
    while model.running:
        model.step()
    return model


@pytest.fixture(scope="module")
def finished():
    """The ENRICH trial at seed SEED, run through the app's model."""
    return _run_to_end(TeachingModel(seed=SEED))


# ---------------------------------------------------------------- same model
def test_app_model_records_equal_the_model_run_directly(finished, scenario):
    direct = PeerSupportModel(scenario, replicate_seed(SEED, 0))
    direct.run_to_end()
    assert finished.week == direct.n_weeks, "the app model should stop where delivery ends"
    np.testing.assert_array_equal(
        finished.records,
        direct.records,
        err_msg="TeachingModel's weekly records differ from PeerSupportModel's "
        "for the same scenario and seed",
    )


def test_app_seed_is_replicate_zero_of_peersim_run(finished, scenario):
    cli = run_replicates(scenario, SEED, 1).trial.iloc[0]
    app = finished.sim.results(0).trial
    differ = {k: (v, cli[k]) for k, v in app.items() if not np.isclose(v, cli[k], equal_nan=True)}
    assert not differ, f"app seed {SEED} differs from `peersim run --seed {SEED}`: {differ}"


def test_app_model_with_conditions_equals_the_model_of_that_scenario():
    conditions = LESSONS_BY_KEY["rural"].conditions()
    app = _run_to_end(TeachingModel(seed=3, conditions=conditions))
    direct = PeerSupportModel(with_conditions(enrich_scenario(), conditions), replicate_seed(3, 0))
    direct.run_to_end()
    np.testing.assert_array_equal(app.records, direct.records)
    assert app.conditions() == conditions, "the model should report the conditions it runs"


def test_trials_side_by_side_are_the_replicates_of_peersim_run(scenario):
    model = _run_to_end(TeachingModel(seed=SEED, trials=3))
    cli = run_replicates(scenario, SEED, 3).trial
    for r, result in enumerate(model.results()):
        row = cli.iloc[r]
        differ = {k: (v, row[k]) for k, v in result.trial.items() if not np.isclose(v, row[k])}
        assert not differ, f"app trial {r + 1} differs from replicate {r} of `peersim run`"
    direct = PeerSupportModel(scenario, [replicate_seed(SEED, i) for i in range(3)])
    direct.run_to_end()
    weeks, measures, _ = direct.records.shape
    np.testing.assert_array_equal(model.trial_records.reshape(weeks, measures, -1), direct.records)
    np.testing.assert_allclose(
        model.records,
        direct.records.reshape(weeks, measures, 3, -1).mean(axis=2),
        err_msg="the charts should show each site's mean over the trials",
    )
    numbers = trial_so_far(model)
    assert sum(numbers.randomised.values()) == pytest.approx(scenario.n_participants), (
        "counts are per trial: the three trials average to the scenario's participants"
    )


@pytest.mark.parametrize("trials", [0, 21])
def test_trials_out_of_range_are_refused(trials):
    with pytest.raises(ConditionsError, match="trials must be 1-20"):
        TeachingModel(trials=trials)


def test_stepping_after_delivery_changes_nothing(finished):
    records = finished.records.copy()
    finished.step()
    assert not finished.running, "the model should tell Mesa's controls that it has finished"
    assert finished.week == finished.n_weeks
    np.testing.assert_array_equal(finished.records, records)


def test_default_seed_is_the_command_lines():
    assert TeachingModel().seed == DEFAULT_SEED


@pytest.mark.slow
def test_mesa_reset_recreates_the_trial_the_parameters_describe():
    # Mesa's ModelController resets with type(model)(**_build_model_init_kwargs(...)).
    from mesa.visualization.solara_viz import _build_model_init_kwargs

    params = {"seed": 11, "conditions": LESSONS_BY_KEY["supervision"].conditions(), "trials": 2}
    model = TeachingModel(**params)
    kwargs = _build_model_init_kwargs(
        model, params, add_scenario_when_empty=True, require_model_accepts_scenario=True
    )
    assert kwargs == params, f"Mesa's reset would call TeachingModel(**{kwargs!r})"
    again = type(model)(**kwargs)
    assert again.parameters() == params == model.parameters()


# ---------------------------------------------------------------- conditions
def test_conditions_round_trip(scenario):
    assert with_conditions(scenario, site_conditions(scenario)) == scenario


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        ({"Z": {"host": "nhs"}}, "no site 'Z'"),
        ({"A": {"n_participants": 3}}, "site A: n_participants cannot be set here"),
        ({"A": {"host": "charity"}}, "sites.A.host"),
        ({"A": {"n_peer_workers": 0}}, "sites.A.n_peer_workers"),
    ],
)
def test_bad_conditions_are_refused_with_the_key(conditions, message):
    with pytest.raises(ConditionsError, match=re.escape(message)):
        TeachingModel(conditions=conditions)


def test_every_control_sets_a_site_field_within_its_range(scenario):
    for control in SITE_CONTROLS:
        for site in scenario.sites.values():
            value = getattr(site, control.field)
            if control.kind == "select":
                assert value in dict(control.options), f"{control.field}={value!r} has no option"
            else:
                assert control.min <= value <= control.max, (
                    f"{control.field}={value} is outside its slider {control.min}-{control.max}"
                )


# ---------------------------------------------------------------- lessons
@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.key)
def test_lesson_is_a_valid_scenario_the_controls_show(lesson, scenario):
    conditions = lesson.conditions()
    lesson_scenario = with_conditions(scenario, conditions)
    for name, site in lesson_scenario.sites.items():
        base = scenario.sites[name]
        hidden = {
            f
            for f in type(site).model_fields
            if f not in CONTROLLED_FIELDS and getattr(site, f) != getattr(base, f)
        }
        assert not hidden, f"lesson {lesson.key} changes {hidden} at {name}, which no control shows"
    assert set(lesson.focus) <= set(scenario.sites), f"lesson {lesson.key} focuses on no site"
    sentences = re.split(r"(?<=[.!?])\s+", lesson.text.strip())
    assert 2 <= len(sentences) <= 3, f"lesson {lesson.key} should explain in 2-3 sentences"


# What each lesson's text tells students to watch for must be what the app shows at
# its default seed, and not by luck: also at other seeds.
LESSON_SEEDS = [DEFAULT_SEED, 1, 2]


def _lesson_outcome(key, seed):
    """Each site's measures at the end, as the charts show them, and the arms' mean
    12-month readmission, for the lesson run as the app runs it."""
    lesson = LESSONS_BY_KEY[key]
    model = _run_to_end(
        TeachingModel(seed=seed, conditions=lesson.conditions(), trials=lesson.trials)
    )
    end = {k: v[-1] for k, v in site_measures(model).items()}
    sites = {
        name: {k: float(v[i]) for k, v in end.items()} for i, name in enumerate(model.site_names)
    }
    trials = [r.trial for r in model.results()]
    arms = {
        k: float(np.mean([t[k] for t in trials]))
        for k in ("readmit_ps", "readmit_uc", "readmit_2plus")
    }
    return sites, arms


@pytest.mark.parametrize("seed", LESSON_SEEDS)
def test_enrich_lesson_sites_pull_apart(seed):
    sites, _ = _lesson_outcome("enrich", seed)
    for measure in ("engaged_share", "fidelity"):
        values = [s[measure] for s in sites.values()]
        assert max(values) - min(values) > 0.1, f"{measure} should differ between sites: {values}"


@pytest.mark.parametrize("seed", LESSON_SEEDS)
def test_not_for_profit_lesson_shows_f_behind_b(seed):
    sites, _ = _lesson_outcome("not_for_profit", seed)
    b, f = sites["B"], sites["F"]
    assert f["ward_relationship"] < b["ward_relationship"] - 0.1, (b, f)
    assert f["contacts_mean"] < b["contacts_mean"], (b, f)
    assert f["engaged_share"] < b["engaged_share"] - 0.05, (b, f)


@pytest.mark.parametrize("seed", LESSON_SEEDS)
def test_supervision_lesson_shows_c_drift(seed):
    sites, _ = _lesson_outcome("supervision", seed)
    b, c = sites["B"], sites["C"]
    assert c["fidelity"] < b["fidelity"] - 0.1, (b, c)
    assert c["engaged_share"] < b["engaged_share"] - 0.05, (b, c)


@pytest.mark.parametrize("seed", LESSON_SEEDS)
def test_rural_lesson_shows_e_behind_b(seed):
    sites, _ = _lesson_outcome("rural", seed)
    b, e = sites["B"], sites["E"]
    assert e["contacts_mean"] < b["contacts_mean"] - 0.5, (b, e)
    assert e["fidelity"] < b["fidelity"] - 0.05, (b, e)
    # The lesson says engagement moves much less than sessions and fidelity: its gap
    # is smaller than the fidelity gap (both on 0-1 scales).
    gap_engaged = abs(e["engaged_share"] - b["engaged_share"])
    assert gap_engaged < b["fidelity"] - e["fidelity"], (b, e)


@pytest.mark.parametrize("seed", LESSON_SEEDS)
def test_itt_lesson_shows_a_gap_between_randomised_and_engaged(seed):
    _, arms = _lesson_outcome("itt_vs_engaged", seed)
    itt_gap = abs(arms["readmit_ps"] - arms["readmit_uc"])
    dose_gap = arms["readmit_uc"] - arms["readmit_2plus"]
    assert itt_gap < 0.02, f"the lesson says the arms are readmitted about as often: {arms}"
    assert dose_gap > max(0.015, 1.5 * itt_gap), f"the lesson says 2+ sessions do better: {arms}"


# ---------------------------------------------------------------- views
def test_trial_numbers_at_the_end_agree_with_the_results(finished):
    numbers = trial_so_far(finished)
    t = finished.sim.results(0)
    p = t.participants
    ps = p["arm"] == "peer_support"
    assert numbers.randomised == {"peer_support": t.trial["n_ps"], "usual_care": t.trial["n_uc"]}
    assert numbers.discharged == numbers.randomised, "all are discharged when delivery ends"
    assert numbers.met.n == int(p["met"][ps].sum())
    assert numbers.engaged.n == int(p["engaged"][ps].sum())
    assert numbers.two_plus_sessions.n == t.trial["n_2plus"]
    for arm, count in numbers.readmitted.items():
        in_arm = ps if arm == "peer_support" else ~ps
        assert count.n <= int(p["readmitted_12m"][in_arm].sum()), (
            "readmissions so far cannot exceed the 12-month count"
        )
    assert next(what for what, _ in final_result_rows(finished)).startswith("Readmitted")


def test_trial_numbers_start_at_zero_and_grow():
    model = TeachingModel(seed=SEED)
    assert trial_so_far(model).randomised == {"peer_support": 0, "usual_care": 0}
    assert final_result_rows(model) == [], "no 12-month result before delivery ends"
    for _ in range(10):
        model.step()
    numbers = trial_so_far(model)
    assert numbers.randomised["peer_support"] == model.records[-1, 0].sum()
    assert numbers.met.n > 0


def test_trial_numbers_are_per_trial_not_summed():
    two = TeachingModel(seed=SEED, trials=2)
    for _ in range(20):
        two.step()
    numbers = trial_so_far(two)
    singles = []
    for r in range(2):
        # Trial r of the pair is replicate r of the master seed, alone.
        one = TeachingModel(seed=SEED, trials=1)
        one.sim = PeerSupportModel(one.config, replicate_seed(SEED, r))
        for _ in range(20):
            one.step()
        singles.append(trial_so_far(one))
    for arm in ("peer_support", "usual_care"):
        expected = (singles[0].randomised[arm] + singles[1].randomised[arm]) / 2
        assert numbers.randomised[arm] == pytest.approx(expected), (
            f"{arm}: the pair's count should be the mean of its two trials ({expected})"
        )
    assert numbers.engaged.n == pytest.approx((singles[0].engaged.n + singles[1].engaged.n) / 2)


@pytest.mark.parametrize("trials", [1, 2])
def test_network_links_each_peer_worker_to_their_clients(trials):
    model = TeachingModel(seed=SEED, trials=trials)
    for _ in range(20):
        model.step()
    option = network_option(model.sim, {s: s for s in model.site_names})
    (lines,) = [s for s in option["series"] if s["type"] == "lines"]
    sim = model.sim
    first_trial = {sim.site_label(k) for k in range(len(sim.site_names))}
    pws = [pw for pw in sim.peer_workers if pw.site in first_trial]
    assert len(pws) == sum(s.n_peer_workers for s in model.config.sites.values())
    n_supervisor_links = sum(sum(s.site == pw.site for s in sim.supervisors) for pw in pws)
    clients = [c for pw in pws for c in pw.clients()]
    assert clients, "after 20 weeks peer workers have clients"
    assert all(c.arm == "peer_support" for c in clients), "only peer-support participants"
    expected = len(pws) + n_supervisor_links + len(clients)
    assert len(lines["data"]) == expected, (
        f"one line per ward link, coordinator link and client: {expected}"
    )
    shown = sum(len(s["data"]) for s in option["series"] if s.get("name", "").startswith("client"))
    assert shown == len(clients), f"one point per client: {len(clients)}"


def _site_series(option, run_name=None):
    return [s for s in option["series"] if s["name"] != "recruitment ends"]


def test_trajectories_draw_every_site_for_the_weeks_so_far_on_fixed_axes():
    bench = Workbench("not_for_profit", seed=SEED)
    bench.step(5)
    option = bench.delivery_option()
    lines = _site_series(option)
    n_sites = len(bench.model.site_names)
    assert len(lines) == len(DELIVERY_PANELS) * n_sites, "one line per site and panel"
    assert {len(s["data"]) for s in lines} == {5}, "five weeks drawn"
    assert all(x["max"] == bench.model.n_weeks for x in option["xAxis"]), (
        "the week axis spans the whole of delivery from the start"
    )
    tops = [y["max"] for y in option["yAxis"]]
    assert tops == [1.0, SESSIONS_TOP, 1.0], "shares on 0-1, sessions on a fixed scale"
    bold = {s["name"][0]: s["lineStyle"]["width"] for s in lines}
    assert min(bold["B"], bold["F"]) > bold["A"], "the lesson's focus sites are bold"
    markers = [s for s in option["series"] if s["name"] == "recruitment ends"]
    assert [m["markLine"]["data"][0]["xAxis"] for m in markers] == [52] * len(DELIVERY_PANELS), (
        "a marker where the 52 weeks of recruitment end, in every panel"
    )
    colours = [s["color"] for s in lines[:n_sites]]
    assert len(set(colours)) == n_sites, "each site its own colour"
    assert set(colours) <= set(SITE_COLOURS), "colours from the colour-blind safe palette"
    fidelity = bench.fidelity_option()
    assert [t["text"] for t in fidelity["title"]] == [p.title for p in FIDELITY_PANELS]
    assert len(FIDELITY_PANELS) == 4, "the four fidelity domains apart"


def test_reset_keeps_the_run_as_an_earlier_run_labelled_with_what_changed():
    bench = Workbench("supervision", seed=SEED)
    bench.step(10)
    assert not bench.pending
    bench.set_condition("C", "supervisor_h_per_week", 6)
    assert bench.pending, "a changed setting waits for Reset"
    bench.reset()
    assert not bench.pending, "Reset applies the settings"
    assert bench.model.week == 0, "Reset starts again at week 0"
    assert [run.label for run in bench.earlier] == ["the lesson's settings, seed 7"]
    assert bench.run_label() == "C: coordinator hours 4 -> 6, seed 7"
    bench.step(3)
    earlier = [s for s in _site_series(bench.delivery_option()) if s["name"].startswith("earlier")]
    # Earlier runs are drawn for the focus sites only (B and C), in every panel.
    assert len(earlier) == 2 * len(DELIVERY_PANELS)
    assert {len(s["data"]) for s in earlier} == {10}, "the earlier run's ten weeks"
    assert all(s["lineStyle"]["type"] == "dashed" for s in earlier)
    bench.reset()
    bench.reset()  # a run that never stepped is not kept
    assert len(bench.earlier) == 2
    bench.load_lesson("rural")
    assert bench.earlier == [], "a new lesson starts without earlier runs"


def test_sessions_axis_is_raised_never_lowered():
    bench = Workbench("enrich", seed=SEED, trials=1)
    bench.tops["contacts_mean"] = 1.0
    bench.step(72)
    peak = float(site_measures(bench.model)["contacts_mean"].max())
    top = bench.tops["contacts_mean"]
    assert top >= peak, f"the axis ({top}) holds the run's peak ({peak})"
    bench.set_condition("A", "n_peer_workers", 1)
    bench.reset()
    bench.step(2)
    assert bench.tops["contacts_mean"] == top, "a smaller run does not shrink the axis"


def test_the_address_restores_the_lesson_and_its_changes():
    bench = Workbench("supervision", seed=11, trials=3)
    bench.set_condition("C", "supervisor_h_per_week", 7.0)
    bench.set_condition("F", "host", "nhs")
    query = bench.query()
    again, problems = Workbench.from_query(query)
    assert problems == [], f"a query the page wrote reads back cleanly: {query}"
    assert (again.lesson.key, again.seed, again.trials) == ("supervision", 11, 3)
    assert again.settings == bench.settings, f"the site changes come back from {query}"
    _, problems = Workbench.from_query("lesson=nope&seed=x&set=Z.host:nhs;C.n_peer_workers:0")
    assert len(problems) == 4, f"each bad part is named: {problems}"
    assert "no lesson 'nope'" in problems[0]


def test_describe_changes_names_site_setting_and_values():
    before = {"C": {"supervisor_h_per_week": 4.0, "host": "nhs"}}
    after = {"C": {"supervisor_h_per_week": 6.0, "host": "not_for_profit"}}
    assert describe_changes(before, after) == (
        "C: coordinator hours 4 -> 6, employer NHS -> not-for-profit"
    )
    assert describe_changes(before, before) == ""


def test_site_numbers_give_one_row_per_site_with_units():
    model = TeachingModel(seed=SEED, trials=2)
    for _ in range(30):
        model.step()
    rows = site_numbers(model)
    assert [r["Site"] for r in rows] == [site_label(model, s) for s in model.site_names]
    engaged = site_measures(model)["engaged_share"][-1]
    assert [r["Engaged (%)"] for r in rows] == [f"{100 * v:.0f}" for v in engaged]


def test_difference_chart_puts_intervals_around_means():
    rows = [DifferenceRow("whole trial", 0.02, -0.01, 0.05), DifferenceRow("F", 0.1, 0.04, 0.16)]
    option = difference_option(rows, title="Engaged", unit="percentage points")
    interval, means = option["series"]
    assert option["yAxis"]["data"] == ["F", "whole trial"], "first row at the top"
    assert interval["data"] == [
        [0.04, "F"],
        [0.16, "F"],
        "-",
        [-0.01, "whole trial"],
        [0.05, "whole trial"],
        "-",
    ]
    assert means["data"] == [[0.1, "F"], [0.02, "whole trial"]]
    assert -option["xAxis"]["min"] == option["xAxis"]["max"] > 0.16, "symmetric, all in view"


# ---------------------------------------------------------------- boundaries
@pytest.mark.slow
@pytest.mark.subprocess
def test_the_command_line_does_not_import_solara():
    code = (
        "import sys\nfrom analysis.cli import build_parser\nbuild_parser()\n"
        "print(','.join(sorted(m for m in sys.modules if m.startswith(('solara', "
        "'mesa.visualization', 'analysis.app')))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "", f"`peersim` imported {done.stdout.strip()} at start-up"


# ---------------------------------------------------------------- peersim app
def test_app_help_explains_and_serves_locally_by_default(capsys):
    assert main(["app", "--help"]) == 0
    out = capsys.readouterr().out
    for word in ("127.0.0.1", "--host", "--port"):
        assert word in out, f"`peersim app --help` should mention {word}"
    command = solara_command(DEFAULT_HOST, DEFAULT_PORT)
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert {"--production", "--no-open", "--no-check-version"} <= set(command)
    assert "analysis.app.page" in command


@pytest.mark.parametrize("port", ["0", "70000", "http"])
def test_app_rejects_a_bad_port(port, capsys):
    assert main(["app", "--port", port]) == 2
    err = capsys.readouterr().err
    assert err.startswith("peersim: error:"), err
    assert "--port" in err, err


def test_app_without_solara_says_how_to_install_it(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "solara" else real(name, *a)
    )
    assert main(["app"]) == 2
    assert "'app' extra" in capsys.readouterr().err
