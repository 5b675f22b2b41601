"""Site configurations: which sites are not-for-profit hosted and which rural is an
uncertain input (docs/ODD.md section 6), chosen in the scenario file, applied by
the loader before a what-if's changes, and sampled by the calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calibration.files import PriorsError
from calibration.posterior import WEIGHT, Posterior
from calibration.priors import (
    SITE_CONFIGURATION,
    apply_parameters,
    get_parameter,
    load_priors,
)
from calibration.report import configuration_table
from scenarios.loader import ScenarioError, library, load_scenario
from simulation import PeerSupportModel

ENRICH = library()["enrich_trial"]
OPTIONS = ("one_each_one_both", "two_nfp_one_rural", "one_nfp_two_rural", "two_both")


@pytest.fixture(scope="module")
def enrich():
    return load_scenario(ENRICH)


def _kinds(scenario) -> tuple[set[str], set[str]]:
    """(not-for-profit hosted sites, rural sites) of a scenario."""
    nfp = {n for n, s in scenario.sites.items() if s.host == "not_for_profit"}
    rural = {n for n, s in scenario.sites.items() if s.geography == "rural"}
    return nfp, rural


def test_enrich_offers_four_configurations_and_selects_version_one(enrich):
    c = enrich.site_configurations
    assert c is not None, "enrich_trial.toml should offer site configurations"
    assert c.names == OPTIONS, f"expected the four documented options, found {c.names}"
    assert enrich.site_configuration == "one_each_one_both", "expected version 1's assumption"
    assert _kinds(enrich) == ({"F", "G"}, {"E", "G"}), "expected F, G not-for-profit, E, G rural"


@pytest.mark.parametrize("name", OPTIONS)
def test_each_configuration_sets_host_geography_and_travel_of_every_site(enrich, name):
    """Named sites are not-for-profit hosted / rural, every other site NHS and
    urban; travel follows geography (20 or 60 minutes)."""
    option = enrich.site_configurations.options[name]
    scenario = enrich.configured(name)
    assert scenario.site_configuration == name, f"expected {name} selected"
    assert _kinds(scenario) == (set(option.not_for_profit), set(option.rural)), name
    for site_name, site in scenario.sites.items():
        want = 60.0 if site.geography == "rural" else 20.0
        assert site.dur_travel_min == want, f"{name}: {site_name} travel {site.dur_travel_min}"
    assert scenario == load_scenario(ENRICH, configuration=name), (
        "configured(name) should equal loading the file with that configuration"
    )
    # Everything but host, geography and travel is as in the selected configuration.
    for site_name, site in scenario.sites.items():
        other = enrich.sites[site_name]
        same = {k for k in type(site).model_fields if getattr(site, k) == getattr(other, k)}
        assert same >= set(type(site).model_fields) - {"host", "geography", "dur_travel_min"}, (
            f"{name}: {site_name} changed more than its configured keys"
        )


def test_what_if_selectors_follow_the_configuration():
    """A what-if's [[sites_where]] see the configured host and geography, so its
    lever lands on the right sites whichever configuration applies."""
    remote = load_scenario(library()["whatif_remote_contacts_rural"], "one_nfp_two_rural")
    got = {n for n, s in remote.sites.items() if s.p_remote_contact == 0.5}
    assert got == {"E", "F"}, f"remote contacts should go to the rural sites E, F: {got}"
    honorary = load_scenario(library()["whatif_honorary_contracts"], "one_nfp_two_rural")
    got = {n for n, s in honorary.sites.items() if s.honorary_contracts}
    assert got == {"G"}, f"honorary contracts should go to the one not-for-profit site G: {got}"
    # ... and configured() on the loaded what-if redoes it from the what-if's file.
    again = load_scenario(library()["whatif_remote_contacts_rural"]).configured("two_both")
    got = {n for n, s in again.sites.items() if s.p_remote_contact == 0.5}
    assert got == {"F", "G"}, f"under two_both the rural sites are F, G: {got}"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(f'extends = "{ENRICH}"\n' + text, encoding="utf-8")
    return path


def test_a_what_if_selects_another_configuration_and_may_override_a_site(tmp_path):
    path = _write(
        tmp_path,
        "w.toml",
        '[site_configurations]\nselected = "two_both"\n',
    )
    assert _kinds(load_scenario(path)) == ({"F", "G"}, {"F", "G"}), "expected two_both"
    child = tmp_path / "child.toml"
    child.write_text('extends = "w.toml"\n[sites.F]\nhost = "nhs"\n', encoding="utf-8")
    assert load_scenario(child).sites["F"].host == "nhs", "a what-if's own site value wins"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[site_configurations.options.mine]\nnot_for_profit = ["H"]\n',
            ["w.toml", "site_configurations.options.mine.not_for_profit", "'H'", "no such site"],
        ),
        (
            '[site_configurations]\nselected = "nope"\n',
            ["w.toml", "site_configurations.selected", "'nope'", "not one of the options"],
        ),
        (
            None,  # enrich_trial.toml itself, with a site key its configuration sets
            ["w.toml", "sites.E.geography", "set by the site configuration", "offers"],
        ),
    ],
    ids=["unknown-site", "unknown-option", "site-key-beside-the-offer"],
)
def test_configuration_mistakes_name_the_file_key_and_value(tmp_path, text, expected):
    if text is None:
        path = tmp_path / "w.toml"
        own = ENRICH.read_text(encoding="utf-8")
        path.write_text(own.replace("[sites.E]\n", '[sites.E]\ngeography = "rural"\n'))
    else:
        path = _write(tmp_path, "w.toml", text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    for part in expected:
        assert part in message, f"expected {part!r} in the error:\n{message}"
    assert message.count("\n") <= 2, f"one problem, one line:\n{message}"


def test_a_what_if_selecting_another_configuration_keeps_its_parents_changes(tmp_path):
    """The configuration is applied once, where it is first offered, before any
    what-if's changes: a child of whatif_nhs_hosting that selects two_both keeps F
    and G NHS hosted (as nhs_hosting.configured("two_both") does), and rural."""
    child = tmp_path / "child.toml"
    nhs = library()["whatif_nhs_hosting"]
    child.write_text(f'extends = "{nhs}"\n[site_configurations]\nselected = "two_both"\n')
    loaded = load_scenario(child)
    via_configured = load_scenario(nhs).configured("two_both")
    for name in "EFG":
        got, want = loaded.sites[name], via_configured.sites[name]
        assert (got.host, got.geography) == (want.host, want.geography), name
    assert _kinds(loaded) == (set(), {"F", "G"}), "F, G NHS hosted and rural; E urban"


def test_a_changed_file_is_not_mixed_with_its_old_version(tmp_path):
    path = tmp_path / "own.toml"
    path.write_text(ENRICH.read_text(encoding="utf-8"), encoding="utf-8")
    scenario = load_scenario(path)
    assert scenario.configured("two_both").site_configuration == "two_both", "unchanged: fine"
    text = path.read_text(encoding="utf-8").replace(
        "dur_travel_rural_min = 60.0", "dur_travel_rural_min = 90.0"
    )
    path.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="changed since the scenario was loaded"):
        scenario.configured("two_nfp_one_rural")
    assert load_scenario(path).configured("two_both").sites["G"].dur_travel_min == 90.0, (
        "loaded again: the new version throughout"
    )


def test_a_calibrated_file_keeps_sites_a_what_if_moved_off_the_configuration(tmp_path):
    """scenario_toml drops host, geography and travel only where the configuration
    gives them; otherwise it states the sites and leaves the configurations out."""
    from calibration.scenario_file import scenario_toml

    for name, offers in (("enrich_trial", True), ("whatif_nhs_hosting", False)):
        scenario = load_scenario(library()[name])
        path = tmp_path / f"{name}.toml"
        path.write_text(scenario_toml(scenario), encoding="utf-8")
        back = load_scenario(path)
        assert back.sites == scenario.sites, f"{name}: every site as it was"
        assert (back.site_configurations is not None) == offers, name


def test_a_posterior_drawing_configurations_applies_where_they_are_offered(enrich):
    posterior = _posterior([0.5, 3.5])
    posterior.check_configurations(enrich)  # from its file: fine
    region = load_scenario(library()["region_50_sites"])
    assert posterior.check_configurations(region) is False, "the region states its own sites"
    job = posterior.jobs(region, 3, 1)[0]
    assert job.scenario.sites == region.sites, "its sites as written; the other values apply"
    assert job.scenario.ward.w_friction_nfp == 0.2, "the particle's other value"
    with pytest.raises(ValueError, match="not loaded from a file"):
        posterior.check_configurations(enrich.with_values({"ward.w_friction_nfp": 0.1}))
    renamed = enrich.model_copy(update={"name": "renamed"})
    with pytest.raises(ValueError, match="not loaded from a file"):
        renamed.configured("two_both")


def test_a_resumed_run_restores_a_scenario_that_can_be_reconfigured(tmp_path, enrich):
    from analysis.cli.common import restore_scenario

    saved = enrich.model_dump(mode="json")
    restored = restore_scenario(saved, ENRICH)
    assert restored == enrich, "the same parameters"
    assert restored.configured("two_both").site_configuration == "two_both", "from its file"
    moved = tmp_path / "gone.toml"
    only_record = restore_scenario(saved, moved)
    assert only_record == enrich, "the record's parameters when the file is gone"
    with pytest.raises(ValueError, match="not loaded from a file"):
        only_record.configured("two_both")


def test_a_file_replacing_every_trial_site_drops_the_configurations():
    region = load_scenario(library()["region_50_sites"])
    assert region.site_configurations is None, "the region's own sites need none"
    with pytest.raises(ScenarioError, match="offers no site configurations"):
        load_scenario(library()["region_50_sites"], configuration="two_both")


def test_a_changed_copy_cannot_be_reconfigured_but_compares_by_parameters(enrich):
    changed = enrich.with_values({"ward.w_friction_nfp": 0.1})
    with pytest.raises(ValueError, match="not loaded from a file"):
        changed.configured("two_both")
    assert changed.configured("one_each_one_both") is changed, "the selected one is itself"
    same = enrich.with_values({})
    assert same == enrich, "equality is about parameters, not where a scenario came from"
    with pytest.raises(ValueError, match="is not one of"):
        enrich.configured("nope")


def test_not_for_profit_notes_access_comes_from_the_mechanism(enrich):
    """Section 5, M4: at a not-for-profit host without honorary contracts the share
    of peer workers reading NHS notes is ward.share_records_access_nfp, not the
    site's share_records_access; with M4 off the site's share applies."""
    pw = PeerSupportModel(enrich, 0).workers
    nfp = np.isin(pw.site, [5, 6])  # F and G
    assert not pw.records_access[nfp].any(), "expected no notes access at F, G (share 0)"
    assert pw.records_access[~nfp].all(), "expected notes access at every NHS site"
    half = enrich.with_values({"ward.share_records_access_nfp": 0.5})
    pw = PeerSupportModel(half, 0).workers
    assert pw.records_access[nfp].sum() == 4, "round(0.5 * 4) = 2 at each of F, G"
    off = enrich.with_values({"mechanisms.m4_host_barriers": False})
    assert PeerSupportModel(off, 0).workers.records_access.all(), "M4 off: the site's share"


def test_rural_journeys_cost_coordinator_hours_and_can_cut_preparation(enrich):
    """7.1: journeys come out of coordinator hours before team preparation; where
    the hours run out, preparation delivered falls below the plan."""
    c = PeerSupportModel(enrich, 0).coordinators
    np.testing.assert_allclose(c.site_preparation, 0.5, rtol=0, atol=1e-12)
    short = enrich.with_values({"sites.E.supervisor_h_per_week": 4.5})  # 4 h of journeys
    c = PeerSupportModel(short, 0).coordinators
    assert c.site_preparation[4] == pytest.approx(0.25), "0.5 h left: a quarter of 2 h"
    assert c.site_supervision_h[4] == 0.0, "nothing left for supervision at E"
    no_travel = enrich.with_values({"mechanisms.m5_rural_travel": False})
    more = PeerSupportModel(no_travel, 0).coordinators.site_supervision_h
    assert more[4] == pytest.approx((10.0 - 1.0) / 4), "M5 off: no journeys, full attendance"


# --- calibration ----------------------------------------------------------------------


def test_the_shipped_priors_sample_the_configuration(enrich):
    priors = load_priors(None)
    choice = priors[SITE_CONFIGURATION]
    assert choice.options == OPTIONS, f"expected the scenario's options, {choice.options}"
    assert (choice.lower, choice.upper) == (0.0, 4.0), "an index uniform on [0, 4)"
    priors.check_scenario(enrich)  # must not raise
    assert get_parameter(enrich, SITE_CONFIGURATION) == 0.0, "one_each_one_both is index 0"


@pytest.mark.parametrize(
    ("index", "name"), [(0.0, OPTIONS[0]), (1.99, OPTIONS[1]), (3.5, OPTIONS[3])]
)
def test_an_index_picks_the_option_under_its_floor(enrich, index, name):
    s = apply_parameters(enrich, {SITE_CONFIGURATION: index, "ward.w_friction_nfp": 0.1})
    assert s.site_configuration == name, f"index {index} should pick {name}"
    assert s.ward.w_friction_nfp == 0.1, "the other values apply on top"


def _choice_prior(tmp_path: Path, parameter: str, options: list[str]) -> Path:
    path = tmp_path / "priors.toml"
    path.write_text(
        f'[[prior]]\nparameter = "{parameter}"\ndistribution = "choice"\n'
        f'options = {options!r}\nreason = "r"\n'.replace("'", '"'),
        encoding="utf-8",
    )
    return path


def test_choice_prior_mistakes_are_refused(tmp_path, enrich):
    wrong_order = _choice_prior(tmp_path, SITE_CONFIGURATION, ["two_both", "one_each_one_both"])
    with pytest.raises(PriorsError, match="in its order: one_each_one_both"):
        load_priors(wrong_order).check_scenario(enrich)
    not_a_choice = _choice_prior(tmp_path, "ward.w_friction_nfp", ["x"])
    with pytest.raises(PriorsError, match="only the site configuration is a choice"):
        load_priors(not_a_choice)


def _posterior(indices: list[float]) -> Posterior:
    """Equally weighted particles with these site-configuration indices."""
    samples = pd.DataFrame(
        {
            SITE_CONFIGURATION: indices,
            "ward.w_friction_nfp": [0.2] * len(indices),
            WEIGHT: [1.0 / len(indices)] * len(indices),
        }
    )
    return Posterior(samples, (SITE_CONFIGURATION, "ward.w_friction_nfp"))


def test_posterior_median_takes_a_clearly_more_probable_configuration(enrich):
    """400 particles, 60% on index 2: 0.6 - 0.1 = 0.5 ahead of the base's option 0,
    far beyond two standard errors (about 0.08), so the calibrated scenario takes it."""
    posterior = _posterior([2.5] * 240 + [0.5] * 40 + [1.5] * 60 + [3.5] * 60)
    shares = posterior.configuration_shares()
    assert shares.to_dict() == pytest.approx({0: 0.1, 1: 0.15, 2: 0.6, 3: 0.15}), shares
    assert posterior.median_scenario(enrich).site_configuration == "one_nfp_two_rural", (
        "index 2 holds 60% of the weight"
    )
    table = configuration_table(load_priors(None), posterior, enrich)
    assert table["configuration"].tolist() == list(OPTIONS), "a row per option"
    assert table["prior"].tolist() == [0.25] * 4, "equal prior weight"
    assert table["posterior"].sum() == pytest.approx(1.0), "posterior shares sum to 1"
    assert table.set_index("configuration").loc["one_nfp_two_rural", "posterior"] == pytest.approx(
        0.6
    )


def test_a_near_uniform_posterior_keeps_the_base_configuration(enrich):
    """27% against the base's 25% from 400 particles: 0.02 ahead, within two standard
    errors (about 0.07), so the base's selection stays; without a base the most
    probable is taken."""
    posterior = _posterior([2.5] * 108 + [0.5] * 100 + [1.5] * 92 + [3.5] * 100)
    assert posterior.median_scenario(enrich).site_configuration == "one_each_one_both", (
        "a 2-point lead is sampling noise: the base's configuration stays"
    )
    assert posterior.favoured_configuration(None) == 2, "without a base: the most probable"


def test_posterior_ensemble_replicates_run_under_their_drawn_configuration(enrich):
    """Posterior ensembles: each replicate's job runs the base under the configuration
    its particle drew (and the same particle's other values), so the configuration's
    uncertainty reaches what-if comparisons."""
    posterior = _posterior([0.5, 1.5, 2.5, 3.5])
    jobs = posterior.jobs(enrich, 11, 24)
    drawn = {job.tags["particle"]: job.scenario.site_configuration for job in jobs}
    assert drawn == {k: OPTIONS[k] for k in drawn}, f"particle k carries option k: {drawn}"
    assert len(set(drawn.values())) >= 3, f"24 draws of 4 equal particles: {drawn}"
    for job in jobs:
        nfp, rural = _kinds(job.scenario)
        option = enrich.site_configurations.options[job.scenario.site_configuration]
        assert (nfp, rural) == (set(option.not_for_profit), set(option.rural)), job.key
