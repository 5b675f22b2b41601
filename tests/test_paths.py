"""Parameter paths, site selectors and ``Scenario.with_values`` (``simulation.paths``)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from scenarios import load_scenario
from simulation import Scenario
from simulation.paths import (
    PathError,
    SiteSelector,
    get_value,
    get_values,
    parse_path,
    parse_selector,
)


@pytest.fixture(scope="module")
def enrich() -> Scenario:
    return load_scenario(None)


def test_with_values_sets_global_and_site_values(enrich: Scenario):
    changed = enrich.with_values(
        {"ward.w_preparation": 0.25, "sites.F.n_peer_workers": 7, "trial.share_psychotic": 0.5}
    )
    assert changed.ward.w_preparation == 0.25
    assert changed.sites["F"].n_peer_workers == 7
    assert changed.trial.share_psychotic == 0.5
    assert changed.sites["A"] == enrich.sites["A"], "an untouched site is unchanged"
    assert changed.engagement == enrich.engagement, "an untouched group is unchanged"
    assert enrich.ward.w_preparation == 0.4, "the original scenario is not changed"
    assert changed.site_names == enrich.site_names, "the sites keep their order"


def test_with_values_revalidates(enrich: Scenario):
    with pytest.raises(ValidationError, match="share_psychotic \\+ share_personality"):
        enrich.with_values({"trial.share_psychotic": 0.9})
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        enrich.with_values({"ward.w_preparation": 1.5})
    changed = enrich.with_values({"sites.A.team_preparation": 1})
    assert changed.sites["A"].team_preparation == 1.0, "values are validated (1 -> 1.0)"
    with pytest.raises(TypeError, match="frozen"):
        changed.sites["Z"] = changed.sites["A"]  # type: ignore[index]


def test_a_selector_sets_exactly_the_matching_sites(enrich: Scenario):
    hosts = {n: (s.host, s.geography) for n, s in enrich.sites.items()}
    assert hosts["G"] == ("not_for_profit", "rural")
    assert hosts["F"] == ("not_for_profit", "urban")
    changed = enrich.with_values(
        {"sites[host=not_for_profit, geography=rural].supervisor_h_per_week": 33.0}
    )
    hours = {n: s.supervisor_h_per_week for n, s in changed.sites.items()}
    assert hours["G"] == 33.0, "the only rural not-for-profit site is set"
    for name in "ABCDEF":
        assert hours[name] == enrich.sites[name].supervisor_h_per_week, f"{name} is untouched"
    every = enrich.with_values({"sites.*.p_remote_contact": 0.5})
    assert {s.p_remote_contact for s in every.sites.values()} == {0.5}
    nfp = enrich.with_values({"sites[host=not_for_profit].honorary_contracts": True})
    assert [n for n, s in nfp.sites.items() if s.honorary_contracts] == ["F", "G"]
    # A selector by a boolean: true is not 1.
    assert get_values(nfp, "sites[honorary_contracts=true].n_participants") == (
        enrich.sites["F"].n_participants,
        enrich.sites["G"].n_participants,
    )


def test_unknown_paths_name_the_closest(enrich: Scenario):
    cases = {
        "ward.w_prep": "'ward.w_prep': ward has no field 'w_prep'; did you mean w_preparation?",
        "wrd.w_preparation": "did you mean ward?",
        "sites.Z.n_peer_workers": "no site 'Z'; the sites are A, B, C, D, E, F, G",
        "sites.FF.n_peer_workers": "no site 'FF'; did you mean F?",
        "sites[hots=nhs].n_peer_workers": "cannot select sites by 'hots'; did you mean host?",
        "sites[host=nsh].n_peer_workers": "host cannot be 'nsh'; it is nhs or not_for_profit; "
        "did you mean nhs?",
        "sites.*.n_peer_worker": "a site has no field 'n_peer_worker'; "
        "did you mean n_peer_workers?",
        "sites[n_peer_workers=99].n_caseload_cap": "selects no site of scenario 'enrich_trial'",
    }
    for path, expected in cases.items():
        with pytest.raises(PathError) as caught:
            enrich.with_values({path: 1})
        assert expected in str(caught.value), f"{path}: {caught.value}"


def test_paths_parse_into_one_form():
    path = parse_path("sites[ host = not_for_profit , honorary_contracts=true ].team_preparation")
    assert (path.group, path.field) == ("sites", "team_preparation")
    assert path.sites == SiteSelector(
        conditions=(("host", "not_for_profit"), ("honorary_contracts", True))
    )
    assert path.sites.text == "sites[host=not_for_profit, honorary_contracts=true]"
    assert parse_path("sites.*.n_peer_workers").sites == SiteSelector()
    assert parse_path('sites."St. Ann".n_peer_workers').sites == SiteSelector(name="St. Ann")
    assert SiteSelector(name="St. Ann").text == 'sites."St. Ann"'
    assert parse_path("ward.w_preparation").sites is None
    assert parse_selector("sites[geography=rural]") == SiteSelector(
        conditions=(("geography", "rural"),)
    )


def test_get_value_reads_one_value(enrich: Scenario):
    assert get_value(enrich, "ward.w_preparation") == 0.4
    assert get_value(enrich, "sites.F.host") == "not_for_profit"
    with pytest.raises(PathError, match="selects 7 sites, not one value"):
        get_value(enrich, "sites.*.n_peer_workers")


def test_the_old_bare_condition_is_accepted_with_a_note(capsys: pytest.CaptureFixture[str]):
    assert parse_selector("host=not_for_profit", old_spelling=True) == SiteSelector(
        conditions=(("host", "not_for_profit"),)
    )
    assert capsys.readouterr().err == (
        "peersim: note: old spelling 'host=not_for_profit'; write 'sites[host=not_for_profit]'\n"
    )
    with pytest.raises(PathError, match="is not a site selector"):
        parse_selector("host=not_for_profit")
