"""The app's planner (``analysis.app.planner``), without the page:

- the levers carry their parameter's bounds and scope;
- ``set_lever`` / ``scale_lever`` change sites by name or by selector, from the
  what-if's current value; bad values fail in one line naming site, lever, value
  and what is allowed;
- ``WhatIf.to_toml`` writes a file the loader reads back to the same parameters
  (a trial and a service base, a changed host included) and ``peersim validate``
  accepts from another folder;
- ``compare_whatif`` gives byte for byte the ``comparison.csv`` and ``brief.md`` of
  ``peersim compare`` on the same two files (with a costs file, and with a
  posterior), draws the figures as PNG bytes, reports progress and leaves no files.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from analysis.app.planner import (
    LEVERS,
    PlanError,
    WhatIf,
    changes_text,
    compare_whatif,
    costs_choices,
    posterior_choices,
    scale_lever,
    scenario_choices,
    set_lever,
)
from analysis.cli import main
from scenarios.costs import load_costs
from scenarios.loader import default_scenario_path, library, load_scenario
from simulation import Scenario

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = default_scenario_path().parent
SERVICE = SCENARIOS / "service_example.toml"
COSTS = SCENARIOS / "costs_example.toml"
POSTERIOR = REPO / "docs" / "calibration"
N = 4  # replicates: enough for an interval, few enough to stay quick


def parameters(scenario: Scenario) -> dict:
    """The model parameters: everything but where the scenario came from."""
    return scenario.model_dump(mode="json", exclude={"name", "description"})


def enrich_whatif() -> WhatIf:
    """Coordinator hours x2 at the not-for-profit sites, F NHS-hosted, A not-for-profit
    with honorary contracts, support 26 weeks."""
    w = scale_lever(WhatIf(), "sites[host=not_for_profit]", "supervisor_h_per_week", 2)
    w = set_lever(w, ["F"], "host", "nhs")
    w = set_lever(w, ["A"], "host", "not_for_profit")
    w = set_lever(w, "A", "honorary_contracts", True)
    return set_lever(w, None, "trial.dur_support_after_discharge_weeks", 26)


def service_whatif() -> WhatIf:
    w = scale_lever(WhatIf(SERVICE), ["city_north"], "n_peer_workers", 0.5)
    w = set_lever(w, ["moorland", "valley"], "p_remote_contact", 0.5)
    return set_lever(w, None, "dur_support_after_discharge_weeks", 26)


# --- levers ---------------------------------------------------------------------------


def test_levers_name_the_planner_levers_with_their_bounds():
    by_field = {lever.field: lever for lever in LEVERS}
    wanted = {
        "host", "honorary_contracts", "share_records_access", "supervisor_h_per_week",
        "team_preparation", "n_peer_workers", "n_caseload_cap", "p_remote_contact",
        "trial.dur_support_after_discharge_weeks",
    }  # fmt: skip
    assert wanted <= set(by_field), f"expected levers {sorted(wanted - set(by_field))} too"
    hours = by_field["supervisor_h_per_week"]
    assert (hours.kind, hours.scope, hours.min, hours.max) == ("float", "site", 0.0, 400.0), (
        "expected coordinator hours a site float with the Site field's bounds 0-400"
    )
    assert "(h)" in hours.label, f"expected the unit in the label, got {hours.label!r}"
    workers = by_field["n_peer_workers"]
    assert (workers.kind, workers.min, workers.max) == ("int", 1.0, 500.0), (
        f"expected peer workers a whole number 1-500 as in Site, got {workers}"
    )
    support = by_field["trial.dur_support_after_discharge_weeks"]
    assert (support.scope, support.min, support.max) == ("trial", 0.0, 104.0), (
        f"expected support length a trial-level lever of 0-104 weeks, got {support}"
    )
    assert by_field["host"].options == (
        ("nhs", "the NHS trust"),
        ("not_for_profit", "a not-for-profit organisation"),
    ), "expected the two hosts as options"
    assert by_field["honorary_contracts"].kind == "bool", "expected honorary contracts a switch"


# --- changing levers ------------------------------------------------------------------


def test_scale_lever_starts_from_the_current_value_and_selects_groups(scenario):
    nfp = [n for n, s in scenario.sites.items() if s.host == "not_for_profit"]
    assert nfp, "expected the ENRICH scenario to have not-for-profit sites"
    once = scale_lever(WhatIf(), "sites[host=not_for_profit]", "supervisor_h_per_week", 2)
    assert set(once.sites) == set(nfp), f"expected changes at {nfp}, got {dict(once.sites)}"
    twice = scale_lever(once, nfp[:1], "supervisor_h_per_week", 2)
    base_hours = scenario.sites[nfp[0]].supervisor_h_per_week
    assert twice.sites[nfp[0]]["supervisor_h_per_week"] == 4 * base_hours, (
        "expected x2 twice to give 4 x the base hours (scaling the what-if's value)"
    )
    back = set_lever(twice, nfp[:1], "supervisor_h_per_week", base_hours)
    assert nfp[0] not in back.sites, "expected setting the base value to remove the change"
    halved = scale_lever(WhatIf(), ["A"], "n_peer_workers", 0.5)
    expected = round(scenario.sites["A"].n_peer_workers * 0.5 + 1e-9)
    assert halved.sites["A"]["n_peer_workers"] == expected, (
        "expected a whole-number lever rounded to the nearest whole number"
    )
    assert isinstance(halved.sites["A"]["n_peer_workers"], int), "expected an int peer count"
    every = set_lever(WhatIf(), "sites.*", "team_preparation", 1.0)
    changed = {n for n, s in scenario.sites.items() if s.team_preparation != 1.0}
    assert set(every.sites) == changed, "expected sites.* to change every site not at 1.0"


def test_lever_mistakes_fail_in_one_line():
    with pytest.raises(PlanError, match="no planner lever 'supervision'"):
        set_lever(WhatIf(), ["A"], "supervision", 1)
    with pytest.raises(PlanError, match="site 'Z': not a site of 'enrich_trial'"):
        set_lever(WhatIf(), ["Z"], "n_peer_workers", 3)
    with pytest.raises(PlanError, match="one value for the whole trial, not per site"):
        set_lever(WhatIf(), ["A"], "trial.dur_support_after_discharge_weeks", 26)
    with pytest.raises(PlanError, match=r"host .* is not a number"):
        scale_lever(WhatIf(), ["A"], "host", 2)
    with pytest.raises(PlanError, match="geography cannot be 'coastal'; it is urban or rural"):
        set_lever(WhatIf(), "sites[geography=coastal]", "n_peer_workers", 3)
    with pytest.raises(PlanError, match=r"sites\[n_caseload_cap=199\] selects no site"):
        set_lever(WhatIf(), "sites[n_caseload_cap=199]", "n_peer_workers", 3)


def test_values_are_taken_as_the_lever_kind_or_refused():
    w = set_lever(WhatIf(), ["A"], "n_peer_workers", "4")
    w = set_lever(w, ["A"], "supervisor_h_per_week", 21)
    assert w.sites["A"] == {"n_peer_workers": 4, "supervisor_h_per_week": 21.0}, (
        f"expected '4' taken as 4 and 21 as 21.0, got {dict(w.sites['A'])}"
    )
    assert isinstance(w.sites["A"]["supervisor_h_per_week"], float), "expected a float"
    refused = [
        ("n_peer_workers", 2.5, "site A: peer workers (n_peer_workers) = 2.5: not a whole number"),
        ("honorary_contracts", "yes", "site A: honorary contracts (honorary_contracts) = 'yes': "
         "not true or false; allowed: true or false"),
        ("team_preparation", "lots", "site A: team preparation (team_preparation) = 'lots': "
         "not a number; allowed: a number from 0 to 1"),
    ]  # fmt: skip
    for name, value, message in refused:
        with pytest.raises(PlanError) as caught:
            set_lever(WhatIf(), ["A"], name, value)
        assert str(caught.value).startswith(message), f"expected {message!r}, got {caught.value}"


def test_a_broken_base_file_fails_in_one_line(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[trial]\ndur_support_after_discharge_weeks = -1\n", encoding="utf-8")
    with pytest.raises(PlanError) as caught:
        WhatIf(path).scenario()
    text = str(caught.value)
    assert "\n" not in text, f"expected one line, got {text!r}"
    assert "trial.dur_support_after_discharge_weeks: value -1: out of range" in text, (
        f"expected the loader's problem named, got {text!r}"
    )


def test_bad_values_name_site_lever_value_and_what_is_allowed():
    cases = [
        (
            set_lever(WhatIf(), ["F"], "n_peer_workers", 0),
            "site F: peer workers (n_peer_workers) = 0: Input should be greater than or equal "
            "to 1; allowed: a whole number from 1 to 500",
        ),
        (
            set_lever(WhatIf(), ["B"], "host", "charity"),
            "site B: host (host) = 'charity': Input should be 'nhs' or 'not_for_profit'; "
            "allowed: nhs or not_for_profit",
        ),
        (
            set_lever(WhatIf(), None, "dur_support_after_discharge_weeks", 8),
            "trial: support (trial.dur_support_after_discharge_weeks) = 8: "
            "dur_weekly_phase_weeks must not exceed dur_support_after_discharge_weeks "
            "(got 10 > 8); allowed: a whole number from 0 to 104",
        ),
    ]
    for whatif, message in cases:
        with pytest.raises(PlanError) as caught:
            whatif.scenario()
        assert str(caught.value) == message, f"expected {message!r}, got {caught.value}"
        assert "\n" not in str(caught.value), "expected one line"
    # Changes that fit only together can be made one by one.
    short = set_lever(WhatIf(), None, "dur_support_after_discharge_weeks", 8)
    short = set_lever(short, None, "dur_weekly_phase_weeks", 8)
    assert short.scenario().trial.dur_support_after_discharge_weeks == 8, (
        "expected 8 weeks of support once the weekly phase is 8 weeks too"
    )


def test_changes_text_groups_sites_with_the_same_change(scenario):
    text = changes_text(enrich_whatif())
    nfp = ", ".join(n for n, s in scenario.sites.items() if s.host == "not_for_profit")
    assert text == (
        f"{nfp}: coordinator hours 10 -> 20; F: host not_for_profit -> nhs; "
        "A: host nhs -> not_for_profit; A: honorary contracts no -> yes; "
        "support 16 -> 26 weeks"
    ), f"unexpected label {text!r}"
    assert changes_text(WhatIf()) == "no change", "expected 'no change' for no change"


# --- the scenario file ----------------------------------------------------------------


@pytest.mark.parametrize("make", [enrich_whatif, service_whatif], ids=["trial", "service"])
def test_the_toml_reads_back_to_the_same_parameters(make, tmp_path):
    whatif = make()
    made = whatif.scenario()
    base = whatif.base_scenario()
    assert parameters(made) != parameters(base), "expected the what-if to change something"
    path = tmp_path / "planned.toml"
    text = whatif.to_toml()
    path.write_text(text, encoding="utf-8")
    loaded = load_scenario(path)
    assert parameters(loaded) == parameters(made), (
        "expected the written file to load to the what-if's parameters"
    )
    assert loaded.description == made.description, "expected the description written"
    assert f'extends = "{whatif.base_path}"' in text, "expected the absolute base path"
    assert "# What changes (base -> what-if):" in text, "expected the header of changes"
    for line in changes_text(whatif).split("; "):
        assert f"#   {line}" in text, f"expected the change {line!r} in the header"


def test_a_host_set_in_the_file_survives_the_site_configuration(tmp_path):
    whatif = enrich_whatif()
    path = tmp_path / "hosts.toml"
    path.write_text(whatif.to_toml(), encoding="utf-8")
    loaded = load_scenario(path)
    assert loaded.site_configuration == whatif.base_scenario().site_configuration, (
        "expected the parent's site configuration still selected"
    )
    assert (loaded.sites["F"].host, loaded.sites["A"].host) == ("nhs", "not_for_profit"), (
        "expected the hosts the what-if sets, not the configuration's"
    )
    # Under another configuration the what-if's changes still apply on top, as in a file.
    other = next(n for n in loaded.site_configurations.names if n != loaded.site_configuration)
    assert parameters(whatif.scenario().configured(other)) == parameters(
        load_scenario(path, configuration=other)
    ), f"expected the what-if under {other!r} equal to its file under {other!r}"


@pytest.mark.subprocess
def test_peersim_validate_accepts_the_file_from_another_folder(tmp_path):
    elsewhere = tmp_path / "downloads"
    elsewhere.mkdir()
    (elsewhere / "planned.toml").write_text(enrich_whatif().to_toml(), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "analysis.cli", "validate", "planned.toml"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"expected exit 0, got {done.returncode}: {done.stderr}"
    assert done.stdout.startswith("OK planned.toml"), f"expected OK, got {done.stdout!r}"


# --- the comparison -------------------------------------------------------------------


def _cli_compare(tmp_path, whatif: WhatIf, *extra: str) -> Path:
    """``peersim compare`` of the base file and the what-if's file; its output folder."""
    path = tmp_path / "planned.toml"
    path.write_text(whatif.to_toml(), encoding="utf-8")
    out = tmp_path / "cli"
    argv = ["compare", str(whatif.base_path), str(path), "-n", str(N), "-w", "1", "--seed", "7"]
    status = main([*argv, *extra, "--no-progress", "--out", str(out)])
    assert status == 0, f"expected peersim compare to exit 0, got {status}"
    return out


def test_the_app_and_the_command_line_agree_with_costs(tmp_path, capsys, monkeypatch):
    whatif = enrich_whatif()
    out = _cli_compare(tmp_path, whatif, "--costs", str(COSTS))
    capsys.readouterr()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    seen: list[tuple[int, int]] = []
    result = compare_whatif(
        whatif.base_scenario(),
        whatif.scenario(),
        n_replicates=N,
        seed=7,
        costs=load_costs(COSTS),
        progress=lambda done, total: seen.append((done, total)),
        labels=("enrich_trial", "planned"),
    )
    assert result.csv_bytes() == (out / "comparison.csv").read_bytes(), (
        "expected the planner's CSV byte for byte as peersim compare's"
    )
    assert result.brief_markdown() == (out / "brief.md").read_text(encoding="utf-8"), (
        "expected the planner's brief as peersim compare's"
    )
    money = result.comparison[result.comparison["outcome"].str.contains("_GBP")]
    assert len(money), "expected money rows (GBP) with the costs file"
    assert seen[0] == (0, 2 * N), f"expected progress to start at 0 of {2 * N}, got {seen}"
    assert seen[-1] == (2 * N, 2 * N), f"expected progress to end at {2 * N}, got {seen}"
    assert [d for d, _ in seen] == sorted(d for d, _ in seen), "expected progress never back"
    assert list(tmp_path.joinpath("tmp").iterdir()) == [], "expected no files left behind"
    pngs = result.figure_pngs()
    assert set(pngs) == {
        "forest_planned.png", "trajectories_planned.png", "ce_plane.png", "acceptability.png",
    }, f"expected the four figures of a costed comparison, got {sorted(pngs)}"  # fmt: skip
    for name, data in pngs.items():
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), f"expected PNG bytes for {name}"
    assert list(tmp_path.joinpath("tmp").iterdir()) == [], "expected no figure files left"
    sites = result.sites
    assert set(sites["site"]) == set(whatif.base_scenario().sites), "expected every site"
    row = sites[(sites["site"] == "F") & (sites["outcome"] == "engaged_share")].iloc[0]
    assert row["diff_mean"] == pytest.approx(row["whatif_mean"] - row["base_mean"]), (
        "expected the difference to be what-if minus base"
    )
    assert row["diff_lo"] <= row["diff_mean"] <= row["diff_hi"], "expected the mean in its CI"
    assert set(result.site_weeks["scenario"]) == {"enrich_trial", "planned"}, (
        "expected both scenarios' weekly site measures for the trajectories"
    )


@pytest.mark.slow
def test_the_app_and_the_command_line_agree_with_a_posterior(tmp_path, capsys):
    whatif = enrich_whatif()
    out = _cli_compare(tmp_path, whatif, "--posterior", str(POSTERIOR))
    capsys.readouterr()
    result = compare_whatif(
        whatif.base_scenario(),
        whatif.scenario(),
        n_replicates=N,
        seed=7,
        posterior_dir=POSTERIOR,
        labels=("enrich_trial", "planned"),
    )
    assert result.csv_bytes() == (out / "comparison.csv").read_bytes(), (
        "expected the planner's CSV byte for byte as peersim compare --posterior's"
    )
    assert "posterior draw" in result.brief_markdown(), "expected the brief to say draws"


def test_a_what_if_changing_a_calibrated_parameter_is_refused_with_a_posterior(scenario, tmp_path):
    path = tmp_path / "friction.toml"
    path.write_text(
        f'extends = "{default_scenario_path()}"\n[ward]\n'
        f"w_friction_nfp = {scenario.ward.w_friction_nfp / 2}\n",
        encoding="utf-8",
    )
    changed = load_scenario(path)
    with pytest.raises(PlanError, match=r"changes calibrated parameter.*ward\.w_friction_nfp"):
        compare_whatif(scenario, changed, n_replicates=2, posterior_dir=POSTERIOR)


def test_a_service_compares():
    whatif = service_whatif()
    result = compare_whatif(whatif.base_scenario(), whatif.scenario(), n_replicates=2, seed=3)
    rows = result.comparison
    assert set(rows["scope"]) >= {"overall", "city_north", "moorland"}, (
        "expected the whole service and its sites"
    )
    avoided = rows[(rows["outcome"] == "readmissions_avoided") & (rows["scope"] == "overall")]
    assert len(avoided) == 1, "expected the service's readmissions avoided, overall"
    assert "simulated services" in result.brief_markdown(), "expected a service's brief"


def test_compare_refuses_what_it_cannot_compare(scenario):
    service = load_scenario(SERVICE)
    with pytest.raises(PlanError, match="compare scenarios of one mode"):
        compare_whatif(scenario, service, n_replicates=2)
    with pytest.raises(PlanError, match="at least 2 for a paired interval"):
        compare_whatif(scenario, scenario, n_replicates=1)


# --- choices --------------------------------------------------------------------------


def test_choices_list_the_files_to_start_from():
    scenarios = scenario_choices()
    first = next(iter(scenarios.items()))
    assert first == ("ENRICH trial (enrich_trial)", None), f"expected ENRICH first, got {first}"
    assert scenarios["service_example"] == library()["service_example"], "expected the library"
    assert "enrich_trial" not in scenarios, "expected the ENRICH file once (as the default)"
    assert costs_choices() == {"costs_example": COSTS}, "expected the shipped costs file"
    found = posterior_choices([REPO])
    assert found == {"docs/calibration": POSTERIOR.resolve()}, f"got {found}"


@pytest.mark.subprocess
def test_the_planner_does_not_import_solara():
    code = (
        "import sys, analysis.app.planner; "
        "print(','.join(m for m in sys.modules if m.split('.')[0] in ('solara', 'mesa')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert "solara" not in done.stdout, f"expected no solara module, got {done.stdout!r}"
