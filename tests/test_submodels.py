"""Known-answer unit tests of the v2 submodels (docs/ODD.md section 7), one or
more per submodel, each calling the collection's phase method directly on a
small model with state set by hand:

- 7.1 supervision: adequacy ``1 - exp(-S_k / need)`` at the ENRICH sites, and
  diminishing returns;
- 7.4 the working week: tier shares, hours needed and shortfall of
  ``PeerWorkers.plan_week`` on crafted work, against hours worked out by hand;
- 7.9 fidelity drift: one step against the formula, each driver's domains,
  M6 off;
- section 5 peer workers who differ: starting fidelity and susceptibility,
  and the existing-workforce shift;
- 7.10 wellbeing (one step, M8 off) and handover at a turnover;
- 7.11 the dose-response curve and the readmission clock against a
  week-by-week brute force;
- 7.12 the fidelity rating against ratings recomputed from captured state.

Every expected value is computed here from the ODD's equations (written out
term by term, in scalar loops, or as literal hours worked out in comments),
not by calling the code under test. Seeds are fixed, so nothing flickers;
the one sampling tolerance (section 5) is stated against its standard error.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from simulation import PeerSupportModel, Scenario
from simulation.params import Site
from simulation.population import AUTHORITY, COMMUNITY_TIER, MAX_RATINGS, SEEK_TIER, WARD_TIER
from simulation.rng import Streams

DOMAINS = ("relationships", "reciprocity", "leadership", "strengths")
REL, RECIP, LEAD, STRENGTH = range(4)

# ------------------------------------------------------------------ helpers


def with_sites(base: Scenario, sites: dict[str, dict[str, Any]], **groups: dict) -> Scenario:
    """``base``'s global parameters (with ``groups`` merged in, e.g.
    ``workweek={...}``) and the given sites instead of its own, validated afresh."""
    data: dict[str, Any] = {name: getattr(base, name) for name in Scenario.model_fields}
    for group, changes in groups.items():
        data[group] = {**getattr(base, group).model_dump(), **changes}
    data["sites"] = sites
    data["site_configurations"] = None  # its options name the base's sites
    return Scenario.model_validate(data)


def site_fields(**changes: Any) -> dict[str, Any]:
    """A plain urban NHS site with small numbers, with ``changes``."""
    fields: dict[str, Any] = {
        "host": "nhs",
        "geography": "urban",
        "dur_travel_min": 20.0,
        "n_supervisors": 1,
        "supervisor_h_per_week": 10.0,
        "team_preparation": 1.0,
        "share_records_access": 1.0,
        "n_peer_workers": 4,
        "n_caseload_cap": 10,
        "n_participants": 20,
    }
    fields.update(changes)
    return fields


def hand_supervision_hours(site: Site, sc: Scenario) -> float:
    """S_k of ODD 7.1, term by term (M1, M4, M5 on): liaison and journeys first,
    then team preparation, the rest shared among the peer workers."""
    sv = sc.supervision
    liaison = sv.share_liaison_nfp if site.host == "not_for_profit" else 0.0
    journeys = sv.n_team_visits_per_week * 2 * site.dur_travel_min / 60.0
    after = max(0.0, site.supervisor_h_per_week * (1 - liaison) - journeys)
    prep = min(sv.dur_team_prep_h_per_week * site.team_preparation, after)
    attendance = sv.p_attend_rural if site.geography == "rural" else 1.0
    return (after - prep) / site.n_peer_workers * attendance


def hand_adequacy(site: Site, sc: Scenario) -> float:
    return 1.0 - math.exp(-hand_supervision_hours(site, sc) / sc.supervision.dur_need_h_per_pw_week)


def per_worker(model: PeerSupportModel, values: dict[str, float]) -> np.ndarray:
    """A per-site value (by scenario site name) for each peer worker, by hand
    from the site sizes: peer workers are numbered site by site."""
    sites = model.params.sites
    return np.array([values[name] for name, s in sites.items() for _ in range(s.n_peer_workers)])


# ------------------------------------------------------------ 7.1 supervision

# S_k at the ENRICH sites (site configuration one_each_one_both: E rural, F
# not-for-profit, G both) from the site table of docs/ODD.md section 6, with
# share_liaison_nfp 0.3, n_team_visits_per_week 2 (journeys 2 x 2 x 20 min =
# 4/3 h urban, 2 x 2 x 60 min = 4 h rural), dur_team_prep_h_per_week 2 at
# half the programme (1 h) and p_attend_rural 0.7:
ENRICH_SUPERVISION_H = {
    "A": (14.0 - 4 / 3 - 1.0) / 5,  # 2.333
    "B": (10.0 - 4 / 3 - 1.0) / 5,  # 1.533
    "C": (10.0 - 4 / 3 - 1.0) / 5,
    "D": (10.0 - 4 / 3 - 1.0) / 5,
    "E": (10.0 - 4.0 - 1.0) / 4 * 0.7,  # rural: 0.875
    "F": (10.0 * 0.7 - 4 / 3 - 1.0) / 4,  # not-for-profit: 1.167
    "G": (10.0 * 0.7 - 4.0 - 1.0) / 4 * 0.7,  # not-for-profit and rural: 0.35
}


def test_supervision_adequacy_at_the_enrich_sites_matches_the_hand_formula(scenario):
    """7.1: S_k from the site table (liaison at not-for-profit sites F, G;
    journeys and preparation hours everywhere, journeys longer at rural sites E,
    G, where 70% of supervision is attended), and adequacy
    1 - exp(-S_k / dur_need_h_per_pw_week) with the need of 1 h."""
    sv = scenario.supervision
    assert (
        sv.share_liaison_nfp,
        sv.dur_team_prep_h_per_week,
        sv.p_attend_rural,
        sv.n_team_visits_per_week,
    ) == (0.3, 2.0, 0.7, 2.0), "the literal hours above assume the ENRICH supervision parameters"
    assert scenario.site_configuration == "one_each_one_both", "the literals assume E, F, G so"
    assert sv.dur_need_h_per_pw_week == 1.0, "the literals assume a need of 1 h"
    for k, site in scenario.sites.items():  # the literals read the site table right
        from_table = hand_supervision_hours(site, scenario)
        assert abs(from_table - ENRICH_SUPERVISION_H[k]) < 1e-12, f"{k}: site table changed?"
    model = PeerSupportModel(scenario, 0)
    names = list(scenario.sites)
    hours = np.array([ENRICH_SUPERVISION_H[k] for k in names])
    np.testing.assert_allclose(
        model.coordinators.site_supervision_h,
        hours,
        rtol=0,
        atol=1e-12,
        err_msg=f"expected hours per peer worker {dict(zip(names, hours, strict=True))}",
    )
    expected = 1.0 - np.exp(-hours / 1.0)
    np.testing.assert_allclose(
        model.coordinators.site_adequacy,
        expected,
        rtol=0,
        atol=1e-12,
        err_msg=f"expected adequacy {dict(zip(names, expected.round(4), strict=True))}",
    )
    # A's two coordinators give it more than B-D (version 1 capped adequacy at 1).
    a, b, c, d = model.coordinators.site_adequacy[:4]
    assert a > b, f"expected A above B, found {a}, {b}"
    assert b == c == d, f"expected B = C = D, found {b}, {c}, {d}"
    # Every peer worker's pull is rate_pull_per_week times its site's adequacy.
    np.testing.assert_allclose(
        model.pw.pull,
        scenario.fidelity.rate_pull_per_week
        * per_worker(model, dict(zip(names, expected, strict=True))),
        rtol=0,
        atol=1e-12,
        err_msg="expected each peer worker's pull = rate_pull_per_week * site adequacy",
    )


def test_doubling_coordinator_hours_helps_less_where_supervision_is_already_good(scenario):
    """7.1, diminishing returns: doubling every site's coordinator hours raises
    adequacy at each site (by the hand formula), by less at a site whose
    adequacy was higher among A-D (A 0.90 gains less than B-D 0.78); and at
    site B, 5 -> 10 h gains more than 10 -> 20 h. (The gain from more hours is
    largest near adequacy 1/2; below that more hours can gain more where
    adequacy is higher, so the comparison is among A-D, all above 1/2. The
    marginal gain per hour falls everywhere.)"""
    base = PeerSupportModel(scenario, 0).coordinators.site_adequacy
    doubled_sc = scenario.with_values(
        {
            f"sites.{k}.supervisor_h_per_week": 2 * s.supervisor_h_per_week
            for k, s in scenario.sites.items()
        }
    )
    doubled = PeerSupportModel(doubled_sc, 0).coordinators.site_adequacy
    hand = np.array([hand_adequacy(s, doubled_sc) for s in doubled_sc.sites.values()])
    np.testing.assert_allclose(
        doubled, hand, rtol=0, atol=1e-12, err_msg="expected doubled adequacy by hand formula"
    )
    gain = doubled - base
    assert (gain > 0).all(), f"expected doubling to raise adequacy everywhere, gains {gain}"
    # Sites A-D in order of their adequacy before doubling: A, then B = C = D.
    a, b, c, d = gain[:4]
    assert b == c == d, f"expected B, C, D alike (same hours and preparation), {b}, {c}, {d}"
    assert a < b, f"expected gains A < B (higher adequacy, smaller gain), A {a:.4f}, B {b:.4f}"
    # One site, a ladder of hours: S = (h - 4/3 - 1) / 5 for 5, 10, 20 h.
    ladder = [
        PeerSupportModel(
            scenario.with_values({"sites.B.supervisor_h_per_week": h}), 0
        ).coordinators.site_adequacy[1]
        for h in (5.0, 10.0, 20.0)
    ]
    hand_ladder = [1 - math.exp(-(h - 4 / 3 - 1) / 5) for h in (5.0, 10.0, 20.0)]
    np.testing.assert_allclose(
        ladder, hand_ladder, rtol=0, atol=1e-12, err_msg=f"expected {hand_ladder}"
    )
    first, second = ladder[1] - ladder[0], ladder[2] - ladder[1]
    assert second < first, (
        f"expected the second doubling (10 -> 20 h) to gain less than the first "
        f"(5 -> 10 h): {second:.4f} vs {first:.4f}"
    )
    # And where supervision is already good, more still helps a little (no cap).
    assert 0 < second < 0.2, f"expected a small positive gain at high adequacy, {second:.4f}"


# --------------------------------------------------------- 7.4 working week

# A rural site R and an urban site U, one peer worker each, with hand-chosen
# hours (exact binary fractions, so the hand values are exact):
#   travel 30 min one way: tau = 0.5 h;  p_attend_rural 0.75;  p_remote 0.25;
#   contracted 16 h; team meeting 1 h; admin 2 h; group supervision 2 h;
#   meeting 45 min + notes 15 min = 1 h per contact;
#   2 ward visits of 1.5 h; seeking 1.25 h per unmet participant.
# Rural fixed  F_R = 1 + 2 + 0.75 * (2 + 2 * 0.5) = 5.25 h, so 10.75 h are left;
# urban fixed  F_U = 1 + 2 + 1 * 2 = 5 h (no journey to supervision).
# Ward visits  V = 2 * (1.5 + 2 * 0.5) = 5 h in a week with anyone on the ward,
# plus 1 h per ward case; community meeting 1 + 2 * 0.5 * (1 - 0.25) = 1.75 h.
WORKWEEK = {
    "dur_contracted_h_per_week": 16.0,
    "dur_team_meeting_h_per_week": 1.0,
    "dur_admin_h_per_week": 2.0,
    "dur_notes_min_per_contact": 15.0,
    "dur_group_supervision_h_per_week": 2.0,
    "n_ward_visits_per_week": 2,
    "dur_ward_visit_h": 1.5,
    "dur_seek_h_per_week": 1.25,
}
F_RURAL, F_URBAN = 5.25, 5.0


@pytest.fixture(scope="module")
def workweek_model(scenario) -> PeerSupportModel:
    sc = with_sites(
        scenario,
        {
            "R": site_fields(
                geography="rural", dur_travel_min=30.0, p_remote_contact=0.25, n_peer_workers=1
            ),
            "U": site_fields(dur_travel_min=30.0, p_remote_contact=0.25, n_peer_workers=1),
        },
        workweek=WORKWEEK,
        community={"dur_meeting_min": 45.0},
        supervision={"p_attend_rural": 0.75},
    )
    return PeerSupportModel(sc, 0)


# (ward cases, community meetings, unmet sought) for the rural peer worker, and
# the hand values: shares (ward, community, seek), hours needed, shortfall, spent.
WORK_CASES = {
    # 6 + 1.75 + 1.25 = 9 h of 10.75 left: everything covered.
    "all covered": ((1, 1, 1), (1.0, 1.0, 1.0), 5.25 + 9.0, 0.0, 5.25 + 9.0),
    # 6 + 3.5 + 1.25 = 10.75 h: exactly the hours left, still everything covered.
    "exactly enough": ((1, 2, 1), (1.0, 1.0, 1.0), 16.0, 0.0, 16.0),
    # Ward 6 h, then 4.75 h of the 5.25 h of meetings, nothing for seeking (2.5 h).
    "community cut": ((1, 3, 2), (1.0, 4.75 / 5.25, 0.0), 19.0, 3.0 / 19.0, 16.0),
    # 6 ward cases: 5 + 6 = 11 h > 10.75 h left; community (1.75 h), seeking (1.25 h) get 0.
    "ward takes all": ((6, 1, 1), (10.75 / 11.0, 0.0, 0.0), 19.25, 3.25 / 19.25, 16.0),
    # Nobody on the ward: no visits, 3.5 + 1.25 h.
    "no one on the ward": ((0, 2, 1), (1.0, 1.0, 1.0), 5.25 + 4.75, 0.0, 5.25 + 4.75),
    # No work: only fixed hours.
    "no work": ((0, 0, 0), (1.0, 1.0, 1.0), 5.25, 0.0, 5.25),
}


@pytest.mark.parametrize("case", list(WORK_CASES))
def test_plan_week_matches_hours_worked_out_by_hand(workweek_model, case):
    """7.4: fixed hours, ward tier (visits with travel when anyone is on the
    ward, plus meeting and notes per case), community tier (meeting, notes and
    the journey saved by remote contacts), seeking; shares in priority order,
    hours needed and shortfall equal the hand values (to 1e-12); hours spent
    never exceed the contract. The urban peer worker (no work) needs only F_U."""
    (n_ward, n_comm, n_seek), shares, needed, shortfall, spent = WORK_CASES[case]
    pw = workweek_model.pw
    assert pw.contracted_h == 16.0, f"expected 16 h contracted, {pw.contracted_h}"
    np.testing.assert_allclose(
        pw.fixed_h, [F_RURAL, F_URBAN], rtol=0, atol=1e-12, err_msg="expected fixed 5.25 h, 5 h"
    )
    tier = np.array(
        [WARD_TIER] * n_ward + [COMMUNITY_TIER] * n_comm + [SEEK_TIER] * n_seek, dtype=np.int64
    )
    work_pw = np.zeros(len(tier), dtype=np.int64)  # all the rural peer worker's (index 0)
    site = np.zeros(len(tier), dtype=np.int64)
    pw.plan_week(work_pw, site, tier, np.array([n_ward, 0]))
    np.testing.assert_allclose(
        pw.tier_share[0],
        shares,
        rtol=0,
        atol=1e-12,
        err_msg=f"{case}: expected (ward, community, seek) shares {shares}",
    )
    assert abs(pw.hours_needed[0] - needed) < 1e-12, (
        f"{case}: expected {needed} h needed, found {pw.hours_needed[0]}"
    )
    assert abs(pw.shortfall[0] - shortfall) < 1e-12, (
        f"{case}: expected shortfall {shortfall}, found {pw.shortfall[0]}"
    )
    hours = pw.hours_spent()
    assert abs(hours[0] - spent) < 1e-12, f"{case}: expected {spent} h spent, found {hours[0]}"
    assert (hours <= 16.0 + 1e-12).all(), f"expected hours spent <= 16 h, found {hours}"
    # The urban peer worker had no work: shares 1, only the fixed hours.
    np.testing.assert_allclose(pw.tier_share[1], 1.0, rtol=0, atol=0, err_msg="expected shares 1")
    assert pw.hours_needed[1] == F_URBAN, f"expected {F_URBAN} h, found {pw.hours_needed[1]}"
    assert pw.shortfall[1] == 0.0, f"expected no shortfall, found {pw.shortfall[1]}"


def test_plan_week_urban_community_meeting_costs_travel_but_not_supervision(workweek_model):
    """7.4 at the urban site: the community journey costs hours there too
    (1.75 h a meeting), group supervision costs no journey (fixed 5 h, 11 h
    left). Seven meetings (12.25 h) get 11 / 12.25 of their hours; seeking,
    which needs nothing, gets share 0 once nothing is left (the ODD's rule:
    no work either way). The rural peer worker, with no work, keeps shares 1."""
    pw = workweek_model.pw
    tier = np.full(7, COMMUNITY_TIER)
    pw.plan_week(np.ones(7, dtype=np.int64), np.ones(7, dtype=np.int64), tier, np.zeros(2))
    expected_shares = (1.0, 11.0 / 12.25, 0.0)
    np.testing.assert_allclose(
        pw.tier_share[1],
        expected_shares,
        rtol=0,
        atol=1e-12,
        err_msg=f"expected urban (ward, community, seek) shares {expected_shares}",
    )
    assert abs(pw.hours_needed[1] - 17.25) < 1e-12, f"expected 17.25 h, {pw.hours_needed[1]}"
    assert abs(pw.shortfall[1] - 1.25 / 17.25) < 1e-12, f"expected 1.25/17.25, {pw.shortfall[1]}"
    spent = pw.hours_spent()
    assert abs(spent[1] - 16.0) < 1e-12, f"expected the whole 16 h spent, found {spent[1]}"
    np.testing.assert_allclose(pw.tier_share[0], 1.0, rtol=0, atol=0, err_msg="expected shares 1")
    assert pw.hours_needed[0] == F_RURAL, f"expected {F_RURAL} h, found {pw.hours_needed[0]}"


def test_enrich_working_week_hours_are_those_the_odd_states(scenario):
    """7.4, "where the hours bind": at ENRICH settings fixed work takes 5.45 h
    at a rural site (1 + 2 + 0.7 * (1.5 + 2 * 1)) and 4.5 h at an urban one;
    ward visits 2 * (1.5 + 2 * 1) = 7 h at rural E and G, 2 * (1.5 + 2 * 1/3)
    = 4.33 h at A; a ward meeting 1.25 h; a community meeting 1.25 + 2 = 3.25
    h at E and G, 1.25 + 2/3 = 1.92 h at A."""
    pw = PeerSupportModel(scenario, 0).pw
    first = pw.site_start[:-1]  # the first peer worker of each site
    names = list(scenario.sites)
    rural_fixed, urban_fixed = 1 + 2 + 0.7 * (1.5 + 2 * 1.0), 1 + 2 + 1.5
    fixed = {k: rural_fixed if k in "EG" else urban_fixed for k in names}
    np.testing.assert_allclose(
        pw.fixed_h[first],
        [fixed[k] for k in names],
        rtol=0,
        atol=1e-12,
        err_msg=f"expected fixed hours {fixed}",
    )
    visits = {"A": 2 * (1.5 + 2 * 20 / 60), "E": 2 * (1.5 + 2.0), "G": 2 * (1.5 + 2.0)}
    for k, hours in visits.items():
        j = first[names.index(k)]
        assert abs(pw.ward_visits_h[j] - hours) < 1e-12, f"{k}: expected {hours} h of visits"
    meeting = {"A": 1.25 + 2 * 20 / 60, "E": 3.25, "G": 3.25}
    for k, hours in meeting.items():
        g = names.index(k)
        assert abs(pw.meeting_h[g, WARD_TIER] - 1.25) < 1e-12, f"{k}: expected 1.25 h on the ward"
        assert abs(pw.meeting_h[g, COMMUNITY_TIER] - hours) < 1e-12, f"{k}: expected {hours} h"


# ----------------------------------------------------------- 7.9 fidelity drift

DRIFT_RATES = {
    "rate_pull_per_week": 0.1,
    "rate_drift_per_week": 0.03,
    "rate_clinical_pull_per_week": 0.05,
    "rate_burnout_drift_per_week": 0.07,
    "rate_authority_drift_per_week": 0.11,
    "rate_time_pressure_drift_per_week": 0.13,
}


def hand_drift(
    f: np.ndarray,
    pull: np.ndarray,
    susceptibility: np.ndarray,
    drivers: dict[str, np.ndarray],
    rates: dict[str, float],
) -> np.ndarray:
    """One step of ODD 7.9 per peer worker and domain, in scalar loops:
    f + r (1 - f) - e f, e = base * sigma + each driver's weight where it acts."""
    acts = {  # the ODD's driver x domain table
        "clinical": (REL, RECIP),
        "burnout": (RECIP,),
        "authority": (LEAD,),
        "time": (STRENGTH,),
    }
    weight = {
        "clinical": rates["rate_clinical_pull_per_week"],
        "burnout": rates["rate_burnout_drift_per_week"],
        "authority": rates["rate_authority_drift_per_week"],
        "time": rates["rate_time_pressure_drift_per_week"],
    }
    out = np.empty_like(f)
    for j in range(f.shape[0]):
        for d in range(4):
            e = rates["rate_drift_per_week"] * susceptibility[j]
            for name, domains in acts.items():
                if d in domains:
                    e += drivers[name][j] * weight[name]
            value = f[j, d] + pull[j] * (1 - f[j, d]) - e * f[j, d]
            out[j, d] = min(max(value, 0.0), 1.0)
    return out


@pytest.mark.parametrize("time_rate", [0.13, 2.0])
def test_one_drift_step_matches_the_hand_formula(scenario, time_rate):
    """7.9: one drift step with drivers set by hand (ward share, wellbeing,
    shortfall; missing ward access from the site table) equals f + r (1 - f)
    - (base * sigma + sum D W) f per domain, clipped; at time_rate 2 (the
    bound) the strengths of the peer workers most short of hours clip at 0."""
    rates = {**DRIFT_RATES, "rate_time_pressure_drift_per_week": time_rate}
    sc = scenario.with_values({f"fidelity.{k}": v for k, v in rates.items()})
    model = PeerSupportModel(sc, 3)
    pw = model.pw
    # Ward access by hand (section 5): every NHS peer worker holds records; at F
    # and G (not-for-profit, no honorary contracts) none do
    # (share_records_access_nfp 0) and they lack authority: 0.7 * 0.7.
    assert sc.ward.share_records_access_nfp == 0.0, "the literals assume no notes at F, G"
    access = per_worker(model, dict.fromkeys("ABCDEFG", 1.0))
    access[24:] = 0.49  # F and G
    np.testing.assert_allclose(
        pw.ward_access, access, rtol=0, atol=1e-12, err_msg=f"expected ward access {access}"
    )
    rng = np.random.default_rng(5)
    ward_share = rng.uniform(0, 1, pw.n)
    pw.morale[:] = rng.uniform(0.3, 1.0, pw.n)
    pw.shortfall[:] = rng.uniform(0, 0.6, pw.n)
    pw.shortfall[:3] = 0.95  # strongly short
    f0 = pw.fidelity.copy()
    q = per_worker(model, {k: hand_adequacy(s, sc) for k, s in sc.sites.items()})
    drivers = {
        "clinical": ward_share,
        "burnout": 1.0 - pw.morale,
        "authority": 1.0 - access,
        "time": pw.shortfall.copy(),
    }
    expected = hand_drift(f0, 0.1 * q, pw.susceptibility, drivers, rates)
    pw.drift(ward_share)
    np.testing.assert_allclose(
        pw.fidelity, expected, rtol=0, atol=1e-12, err_msg="expected the hand drift step"
    )
    if time_rate == 2.0:
        assert (expected[:3, STRENGTH] == 0).all(), "the case was meant to exercise the clip"
        assert (pw.fidelity[:3, STRENGTH] == 0).all(), "expected strengths clipped at 0"
    else:
        assert ((expected > 0) & (expected < 1)).all(), "the case was meant to need no clip"


DRIVER_DOMAINS = {
    "clinical": {"relationships", "reciprocity"},
    "burnout": {"reciprocity"},
    "authority": {"leadership"},
    "time": {"strengths"},
}


def domains_moved(model: PeerSupportModel, driver: str | None) -> tuple[set[str], bool]:
    """The domains one drift step moves when only ``driver`` is set (0.5 for
    every peer worker), against the same step with every driver 0; and
    whether every move is downwards."""
    pw = model.pw
    f0 = pw.fidelity.copy()
    results = []
    for active in (None, driver):
        pw.fidelity[:] = f0
        pw.morale[:] = 0.5 if active == "burnout" else 1.0
        pw.shortfall[:] = 0.5 if active == "time" else 0.0
        pw.drivers[:, AUTHORITY] = 0.5 if active == "authority" else 0.0  # 1 - ward access
        pw.drift(np.full(pw.n, 0.5 if active == "clinical" else 0.0))
        results.append(pw.fidelity.copy())
    pw.fidelity[:] = f0
    base, with_driver = results
    moved = {DOMAINS[d] for d in range(4) if (with_driver[:, d] != base[:, d]).any()}
    return moved, bool((with_driver <= base).all())


@pytest.mark.parametrize("driver", list(DRIVER_DOMAINS))
def test_each_drift_driver_reaches_only_its_documented_domains(scenario, driver):
    """7.9's table: clinical pull erodes relationships and reciprocity, lost
    wellbeing reciprocity, missing ward access leadership, hours short
    strengths; nothing else moves, and what moves moves down."""
    sc = scenario.with_values({f"fidelity.{k}": v for k, v in DRIFT_RATES.items()})
    moved, down = domains_moved(PeerSupportModel(sc, 4), driver)
    assert moved == DRIVER_DOMAINS[driver], (
        f"expected {driver} to move exactly {sorted(DRIVER_DOMAINS[driver])}, moved {sorted(moved)}"
    )
    assert down, f"expected {driver} only to erode fidelity"


def test_without_m6_the_clinical_driver_moves_nothing(scenario):
    """7.9, M6 off removes the CLINICAL row: a ward share of 0.5 moves no
    domain, while the other drivers still reach their domains."""
    sc = scenario.with_values(
        {
            **{f"fidelity.{k}": v for k, v in DRIFT_RATES.items()},
            "mechanisms.m6_clinical_drift": False,
        }
    )
    model = PeerSupportModel(sc, 4)
    moved, _ = domains_moved(model, "clinical")
    assert moved == set(), f"expected no domain to move with M6 off, moved {sorted(moved)}"
    for driver in ("burnout", "authority", "time"):
        moved, _ = domains_moved(model, driver)
        assert moved == DRIVER_DOMAINS[driver], f"{driver}: expected {DRIVER_DOMAINS[driver]}"


# ------------------------------------------------ section 5: peer workers differ


def test_without_spread_every_peer_worker_starts_alike(scenario):
    """Section 5: with sd_initial_logit = 0 and sd_log_susceptibility = 0 every
    peer worker starts at fidelity_initial in every domain, with
    susceptibility 1 (base drift = rate_drift_per_week)."""
    sc = scenario.with_values(
        {"fidelity.sd_initial_logit": 0.0, "fidelity.sd_log_susceptibility": 0.0}
    )
    pw = PeerSupportModel(sc, 1).pw
    np.testing.assert_allclose(
        pw.fidelity, 0.7, rtol=0, atol=1e-12, err_msg="expected every start at 0.7"
    )
    assert (pw.susceptibility == 1.0).all(), f"expected susceptibility 1, {pw.susceptibility}"
    assert (pw.base_drift[:, 0] == sc.fidelity.rate_drift_per_week).all(), (
        "expected base drift = rate_drift_per_week"
    )


def test_starting_fidelity_is_logit_normal_around_fidelity_initial(scenario):
    """Section 5: 2,000 peer workers (four sites of 500), four domains each
    (8,000 draws): the sample median of starting fidelity is within 0.01 of
    fidelity_initial 0.7 (its standard error is about 1.25 / sqrt(8000) * 0.5
    * 0.7 * 0.3 = 0.0015) and the SD of logit(f) within 0.03 of
    sd_initial_logit 0.5 (SE 0.004). Susceptibility is a mean-one lognormal:
    its mean within 0.05 of 1 (SE 0.012; without the -sd^2/2 correction it
    would be exp(0.125) = 1.13), the mean of its log within 0.05 of -0.125
    (SE 0.011), the SD of its log within 0.03 of 0.5 (SE 0.008). Domains are
    drawn on their own: no two domains of a peer worker are equal."""
    sites = {f"X{k}": site_fields(n_peer_workers=500, n_participants=4) for k in range(4)}
    sc = with_sites(scenario, sites)
    assert (sc.fidelity.sd_initial_logit, sc.fidelity.sd_log_susceptibility) == (0.5, 0.5), (
        "the tolerances assume both SDs 0.5"
    )
    pw = PeerSupportModel(sc, 2).pw
    f = pw.fidelity
    assert f.shape == (2000, 4), f"expected 2000 peer workers, {f.shape}"
    median = float(np.median(f))
    assert abs(median - 0.7) < 0.01, f"expected median 0.7 +- 0.01, found {median:.4f}"
    logits = np.log(f / (1 - f))
    sd = float(logits.std(ddof=1))
    assert abs(sd - 0.5) < 0.03, f"expected logit SD 0.5 +- 0.03, found {sd:.4f}"
    mean_s = float(pw.susceptibility.mean())
    assert abs(mean_s - 1.0) < 0.05, f"expected mean susceptibility 1 +- 0.05, found {mean_s:.4f}"
    log_s = np.log(pw.susceptibility)
    mean_log, sd_log = float(log_s.mean()), float(log_s.std(ddof=1))
    assert abs(mean_log + 0.125) < 0.05, f"expected mean log -0.125 +- 0.05, found {mean_log:.4f}"
    assert abs(sd_log - 0.5) < 0.03, f"expected SD of log 0.5 +- 0.03, found {sd_log:.4f}"
    for a in range(4):
        for b in range(a + 1, 4):
            assert (f[:, a] != f[:, b]).all(), f"expected domains {a}, {b} drawn apart"


# Sites and how many of their peer workers come from an existing workforce:
# round(share * n), Python's round (halves to even).
EXISTING = {
    "V": (5, 0.5, 2),  # round(2.5) = 2
    "W": (4, 0.3, 1),  # round(1.2) = 1
    "X": (7, 0.5, 4),  # round(3.5) = 4
    "Y": (3, 0.0, 0),
    "Z": (3, 1.0, 3),
}


@pytest.mark.parametrize("spread", [0.0, 0.5])
def test_existing_workforce_shifts_exactly_the_last_peer_workers_of_a_site(scenario, spread):
    """Section 5: the last round(share_existing_workforce * n) peer workers of
    each site start w_existing_workforce_logit = 0.8 higher on the logit scale
    than the same draws would give a new hire; the others, and everyone's
    susceptibility, are unchanged. Without spread the shifted start is
    expit(logit(0.7) + 0.8) = 1 / (1 + (3/7) exp(-0.8))."""
    sites = {
        name: site_fields(n_peer_workers=n, share_existing_workforce=share, n_participants=4)
        for name, (n, share, _) in EXISTING.items()
    }
    values = {"sd_initial_logit": spread, "w_existing_workforce_logit": 0.8}
    shifted = PeerSupportModel(with_sites(scenario, sites, fidelity=values), 6).pw
    values["w_existing_workforce_logit"] = 0.0
    plain = PeerSupportModel(with_sites(scenario, sites, fidelity=values), 6).pw
    expected_shift = np.concatenate([[0.0] * (n - k) + [0.8] * k for n, _, k in EXISTING.values()])
    diff = np.log(shifted.fidelity / (1 - shifted.fidelity)) - np.log(
        plain.fidelity / (1 - plain.fidelity)
    )
    np.testing.assert_allclose(
        diff,
        np.repeat(expected_shift[:, None], 4, axis=1),
        rtol=0,
        atol=1e-9,
        err_msg=f"expected logit shifts {expected_shift.tolist()} (last of each site)",
    )
    new = expected_shift == 0
    assert (shifted.fidelity[new] == plain.fidelity[new]).all(), "expected new hires untouched"
    assert (shifted.susceptibility == plain.susceptibility).all(), "expected no pathway effect"
    if spread == 0.0:
        high = 1 / (1 + 3 / 7 * math.exp(-0.8))
        np.testing.assert_allclose(
            shifted.fidelity,
            np.where(new, 0.7, high)[:, None] * np.ones(4),
            rtol=0,
            atol=1e-12,
            err_msg=f"expected 0.7 for new hires, {high:.6f} for the existing workforce",
        )


# ----------------------------------------------------------- 7.10 wellbeing


def test_one_wellbeing_step_matches_the_hand_formula(scenario):
    """7.10: m + (rate_recovery * q_k + rate_team_support * a_k) (1 - m) -
    (rate_strain * min(H / contracted, 2) + rate_shortfall * s + rate_friction
    * (1 - R_k) + rate_dropout * D) m, clipped, for peer workers in post; a
    vacant post's wellbeing does not move. Rates set apart from the defaults;
    a dropout rate of 0.3 with up to 4 declines makes some clip at 0."""
    rates = {
        "rate_recovery_per_week": 0.04,
        "rate_team_support_per_week": 0.03,
        "rate_strain_per_week": 0.05,
        "rate_shortfall_per_week": 0.07,
        "rate_friction_per_week": 0.11,
        "rate_dropout_per_week": 0.3,
    }
    sc = scenario.with_values({f"morale.{k}": v for k, v in rates.items()})
    model = PeerSupportModel(sc, 8)
    pw = model.pw
    rng = np.random.default_rng(9)
    pw.morale[:] = rng.uniform(0.2, 1.0, pw.n)
    pw.hours_needed[:] = rng.uniform(5.0, 40.0, pw.n)  # above 30 h the workload caps at 2
    pw.shortfall[:] = rng.uniform(0.0, 0.5, pw.n)
    pw.declines_this_week[:] = rng.integers(0, 5, pw.n)
    relationship = rng.uniform(0.0, 1.0, model.n_sites)
    pw.in_post[5] = False
    pw.any_vacant = True
    m0 = pw.morale.copy()
    q = per_worker(model, {k: hand_adequacy(s, sc) for k, s in sc.sites.items()})
    attendance = per_worker(
        model, {k: 0.7 if s.geography == "rural" else 1.0 for k, s in sc.sites.items()}
    )
    site_of = np.repeat(np.arange(7), [s.n_peer_workers for s in sc.sites.values()])
    expected = m0.copy()
    for j in range(pw.n):
        if j == 5:
            continue  # vacant
        m = m0[j]
        recovery = (0.04 * q[j] + 0.03 * attendance[j]) * (1 - m)
        workload = min(pw.hours_needed[j] / 15.0, 2.0)
        strain = (
            0.05 * workload
            + 0.07 * pw.shortfall[j]
            + 0.11 * (1 - relationship[site_of[j]])
            + 0.3 * pw.declines_this_week[j]
        ) * m
        expected[j] = min(max(m + recovery - strain, 0.0), 1.0)
    assert (pw.hours_needed > 30).any(), "the case was meant to exercise the workload cap"
    assert (expected == 0).any(), "the case was meant to exercise the clip at 0"
    pw.update_wellbeing(relationship)
    np.testing.assert_allclose(
        pw.morale, expected, rtol=0, atol=1e-12, err_msg="expected the hand wellbeing step"
    )
    assert pw.morale[5] == m0[5], "expected a vacant post's wellbeing not to move"


def test_without_m8_wellbeing_does_not_change(scenario):
    """7.10, M8 off: one update with strain set by hand leaves wellbeing as it
    was, and 30 weeks of delivery leave every peer worker at morale_initial."""
    sc = scenario.with_values({"mechanisms.m8_morale": False})
    model = PeerSupportModel(sc, 8)
    pw = model.pw
    pw.hours_needed[:] = 40.0
    pw.shortfall[:] = 0.5
    pw.declines_this_week[:] = 3
    before = pw.morale.copy()
    pw.update_wellbeing(np.zeros(model.n_sites))
    assert (pw.morale == before).all(), "expected no change with M8 off"
    for _ in range(30):
        model.step()
    assert (pw.morale == sc.morale.morale_initial).all(), (
        f"expected every peer worker at {sc.morale.morale_initial}, found {np.unique(pw.morale)}"
    )


# ------------------------------------------------ 7.11 dose and readmission


def rel_hand(s: float, full: float, half: float) -> float:
    """ODD 7.11: 1 - (1 - full) * (1 - 2^(-s / half))."""
    return 1 - (1 - full) * (1 - 2.0 ** (-s / half))


@pytest.mark.parametrize(
    ("full", "half", "expected"),
    [
        # ENRICH values: 1 with no sessions, 0.96 at 2 (to 2 decimals), halfway
        # (0.9) at 6, 0.85 at 12, the full-dose 0.8 at a very large dose.
        (0.8, 6.0, {0: 1.0, 6: 0.9, 12: 0.85, 600: 0.8}),
        (0.5, 4.0, {0: 1.0, 4: 0.75, 8: 0.625, 400: 0.5}),
    ],
)
def test_dose_response_has_its_documented_values(scenario, full, half, expected):
    """7.11: after add_sessions brings a participant to s sessions, their
    hazard is h_i * rel(s): rel(0) = 1, rel(n_half) halfway to
    rel_hazard_full_dose, rel(large) = rel_hazard_full_dose."""
    sc = scenario.with_values(
        {"readmission.rel_hazard_full_dose": full, "readmission.n_sessions_half_effect": half}
    )
    su = PeerSupportModel(sc, 0).su
    assert (su.hazard_now == su.hazard).all(), "expected rel(0) = 1 before any session"
    doses = [s for s in expected if s > 0]
    idx = np.arange(len(doses))
    su.sessions[idx] = np.array(doses) - 1
    su.add_sessions(int(su.week_discharged[idx].max()), idx)
    found = su.hazard_now[idx] / su.hazard[idx]
    np.testing.assert_allclose(
        found,
        [expected[s] for s in doses],
        rtol=0,
        atol=1e-12,
        err_msg=f"expected rel at {doses} sessions = {[expected[s] for s in doses]}",
    )
    if full == 0.8:
        su.sessions[0] = 1
        su.add_sessions(int(su.week_discharged[0]), np.array([0]))
        assert round(su.hazard_now[0] / su.hazard[0], 2) == 0.96, "expected 0.96 at 2 sessions"


def brute_force_due(
    hazard: float, clock: float, discharged: int, session_weeks: list[int], full: float, half: float
) -> int:
    """The first week after discharge (1-based) in which the hazard summed
    week by week reaches the clock; week k's hazard is h * rel(sessions up to
    and including week k); sessions on the ward count from week 1."""
    on_ward = sum(1 for t in session_weeks if t < discharged)
    by_week: dict[int, int] = {}
    for t in session_weeks:
        if t >= discharged:
            by_week[t - discharged + 1] = by_week.get(t - discharged + 1, 0) + 1
    sessions, used, week = on_ward, 0.0, 0
    while True:
        week += 1
        sessions += by_week.get(week, 0)
        used += hazard * rel_hand(sessions, full, half)
        if used >= clock:
            return week


def test_readmission_clock_matches_a_week_by_week_brute_force(scenario):
    """7.11: for 120 participants with high hazards (12-month readmission
    0.9 without support, frailty SD 0.8) and a random schedule of at most one
    session a week from recruitment to the end of support (sessions stop once
    readmitted, as in the model), add_sessions's closed-form readmit_due equals
    the brute-force accumulation of the weekly hazard, before and after."""
    full, half = 0.3, 3.0
    sc = with_sites(
        scenario,
        {"X": site_fields(n_participants=120)},
        readmission={
            "p_readmit_12m_usual_care": 0.9,
            "sd_frailty_log_hazard": 0.8,
            "rel_hazard_full_dose": full,
            "n_sessions_half_effect": half,
        },
    )
    model = PeerSupportModel(sc, 12)
    su = model.su
    n = su.n
    h0 = -math.log(1 - 0.9) / 52
    np.testing.assert_allclose(
        su.hazard,
        h0 * np.exp(0.8 * su.z_frailty - 0.32),
        rtol=1e-12,
        atol=0,
        err_msg="expected h_i = h0 exp(0.8 z - 0.8^2 / 2), h0 = -ln(0.1) / 52",
    )
    no_sessions = [
        brute_force_due(su.hazard[i], su.readmit_clock[i], su.week_discharged[i], [], full, half)
        for i in range(n)
    ]
    assert su.readmit_due.tolist() == no_sessions, "expected the no-session due week"
    rng = np.random.default_rng(13)
    schedule: list[list[int]] = [[] for _ in range(n)]
    last = su.week_discharged + sc.trial.dur_support_after_discharge_weeks - 1
    for t in range(model.n_weeks):
        # Readmitted by the end of last week: week t after discharge is past due.
        not_readmitted = t - su.week_discharged + 1 <= su.readmit_due
        offered = (su.week_recruited <= t) & (t <= last) & not_readmitted
        idx = np.flatnonzero(offered & (rng.random(n) < 0.5))
        for i in idx:
            schedule[i].append(t)
        su.add_sessions(t, idx)
    expected = [
        brute_force_due(
            su.hazard[i], su.readmit_clock[i], su.week_discharged[i], schedule[i], full, half
        )
        for i in range(n)
    ]
    moved = sum(e != d for e, d in zip(expected, no_sessions, strict=True))
    assert moved > n // 2, f"sessions were meant to move most due weeks, moved {moved}"
    assert su.readmit_due.astype(int).tolist() == expected, (
        "expected readmit_due equal to the brute force: differs for "
        f"{[i for i in range(n) if su.readmit_due[i] != expected[i]]}"
    )


# -------------------------------------------------------- 7.10 handover


def handover_model(scenario: Scenario, p_reengage: float, week: int) -> PeerSupportModel:
    """The ENRICH scenario with turnover possible but (at a leaving chance of
    1e-6 a week) not happening, stepped ``week`` weeks."""
    sc = scenario.with_values(
        {"morale.p_leave_per_week": 1e-6, "morale.p_reengage_after_handover": p_reengage}
    )
    model = PeerSupportModel(sc, 21)
    for _ in range(week):
        model.step()
    assert model.pw.in_post.all(), "expected no one to have left before the forced turnover"
    return model


@pytest.mark.parametrize("p_reengage", [0.0, 1.0])
def test_handover_at_a_turnover(scenario, p_reengage):
    """7.10: every peer worker leaves in week 20 (their turnover draw set to
    0). With p_reengage_after_handover = 1 nobody stops: every open case loses
    its peer worker, keeps met and engaged, and waits at the front of the
    queue. With 0 every met participant of a leaver stops: closed, keeps their
    peer worker id, no longer engaged, stopped_at_handover set, and the site's
    engaged count falls by as many; unmet ones go back to the queue."""
    t = 20
    model = handover_model(scenario, p_reengage, t)
    su, pw = model.su, model.pw
    cases = su.open_cases[~su.closed[su.open_cases]]
    met, unmet = cases[su.met[cases]], cases[~su.met[cases]]
    assert len(met) >= 10, f"the case needs met open cases, found {len(met)}"
    assert len(unmet) >= 1, f"the case needs unmet open cases, found {len(unmet)}"
    assert su.engaged[met].all(), "met open cases are engaged (decliners are closed)"
    pw_before = su.pw.copy()
    site_engaged = model.site_engaged.copy()
    assert pw.u_leave is not None, "expected turnover draws (p_leave_per_week > 0)"
    pw.u_leave[t] = 0.0
    model.turnover(t)
    assert not pw.in_post.any(), "expected every peer worker to have left"
    if p_reengage == 1.0:
        assert not su.stopped_at_handover.any(), "expected nobody to stop"
        assert (su.pw[cases] == -1).all(), "expected every open case to lose its peer worker"
        assert not su.closed[cases].any(), "expected no case closed"
        assert su.met[met].all(), "expected met to be kept"
        assert su.engaged[met].all(), "expected engagement to be kept"
        assert set(su.waiting[: len(cases)]) == set(cases.tolist()), "expected them first in queue"
        assert (model.site_engaged == site_engaged).all(), "expected engaged counts unchanged"
    else:
        assert su.stopped_at_handover[met].all(), "expected every met case to stop"
        assert su.closed[met].all(), "expected stoppers' cases closed"
        assert (su.pw[met] == pw_before[met]).all(), "expected stoppers to keep their peer worker"
        assert not su.engaged[met].any(), "expected stoppers no longer engaged"
        assert su.stopped_at_handover.sum() == len(met), "expected only met participants to stop"
        drop = np.bincount(su.site[met], minlength=model.n_sites)
        assert (model.site_engaged == site_engaged - drop).all(), "expected engaged counts down"
        assert (su.pw[unmet] == -1).all(), "expected unmet cases to lose their peer worker"
        assert not su.closed[unmet].any(), "expected unmet cases still open"
        assert set(su.waiting[: len(unmet)]) == set(unmet.tolist()), "expected them first in queue"


@pytest.mark.parametrize("p_reengage", [0.0, 1.0])
def test_handover_over_a_whole_trial_with_turnover(scenario, p_reengage):
    """7.10 over a whole replicate with turnover on (2% a week): with
    p_reengage_after_handover = 1 no participant stopped at a handover; with 0
    some did, and each of them met a peer worker, is not engaged and still
    names the peer worker they had."""
    sc = scenario.with_values(
        {"morale.p_leave_per_week": 0.02, "morale.p_reengage_after_handover": p_reengage}
    )
    p = PeerSupportModel(sc, 22).run_to_end()[0].participants
    stopped = p[p.stopped_at_handover]
    if p_reengage == 1.0:
        assert len(stopped) == 0, f"expected nobody to stop, {len(stopped)} did"
    else:
        assert len(stopped) > 0, "expected some participants to stop at a handover"
        assert stopped.met.all(), "expected every stopper to have met a peer worker"
        assert not stopped.engaged.any(), "expected no stopper engaged"
        assert (stopped.peer_worker >= 0).all(), "expected stoppers to keep their peer worker"


# ------------------------------------------------------------ 7.12 rating


def _site_means_in_post(model: PeerSupportModel, starts: np.ndarray) -> tuple[np.ndarray, int]:
    """Per site and domain, the mean fidelity of the peer workers in post, by hand
    (NaN where every post is vacant: such a site is not rated); and the vacant posts."""
    rows, vacant = np.empty((len(starts) - 1, 4)), 0
    for k in range(len(starts) - 1):
        posts = [j for j in range(starts[k], starts[k + 1]) if model.pw.in_post[j]]
        vacant += starts[k + 1] - starts[k] - len(posts)
        for d in range(4):
            total = sum(model.pw.fidelity[j, d] for j in posts)
            rows[k, d] = total / len(posts) if posts else math.nan
    return rows, vacant


@pytest.mark.parametrize("sd_noise", [0.0, 0.05, 1.0])
def test_site_fidelity_is_the_clipped_mean_of_noisy_ratings(scenario, sd_noise):
    """7.12, with turnover on so that some posts are vacant when rated: at each
    rating week the latent value is the mean over the site's peer workers in
    post (captured by stepping the model), the rater errors are the first
    standard normals of stream peer_workers/<site> times sd_rating_noise;
    fidelity_<site> is the mean over weeks and domains of clip(latent + error),
    latent_fidelity_<site> the latent mean. With no rater error the two are
    equal; with an SD of 1 the clip acts."""
    sc = scenario.with_values(
        {"fidelity.sd_rating_noise": sd_noise, "morale.p_leave_per_week": 0.03}
    )
    seed = 7
    model = PeerSupportModel(sc, seed)
    names = list(sc.sites)
    starts = np.cumsum([0] + [s.n_peer_workers for s in sc.sites.values()])
    weeks = list(sc.fidelity.rating_weeks)
    latent: dict[int, np.ndarray] = {}
    vacant_at_rating = 0
    while model.week < model.n_weeks:
        t = model.week
        model.step()
        if t in weeks:
            latent[t], vacant = _site_means_in_post(model, starts)
            vacant_at_rating += vacant
    assert vacant_at_rating > 0, "the case was meant to rate with some posts vacant"
    np.testing.assert_allclose(
        model.ratings_latent,
        np.stack([latent[w] for w in weeks]),
        rtol=0,
        atol=1e-12,
        err_msg="expected latent ratings = means over peer workers in post",
    )
    trial = model.results(0).trial
    streams = Streams(seed)
    clipped = 0
    for k, name in enumerate(names):
        z = streams.get(f"peer_workers/{name}").standard_normal((MAX_RATINGS, 4))
        rated, plain = [], []
        for w_i, w in enumerate(weeks):
            if math.isnan(latent[w][k, 0]):
                continue  # nobody in post that week: the mean leaves it out
            for d in range(4):
                value = latent[w][k, d] + sd_noise * z[w_i, d]
                clipped += not 0 <= value <= 1
                rated.append(min(max(value, 0.0), 1.0))
                plain.append(latent[w][k, d])
        assert abs(trial[f"fidelity_{name}"] - sum(rated) / len(rated)) < 1e-12, name
        assert abs(trial[f"latent_fidelity_{name}"] - sum(plain) / len(plain)) < 1e-12, name
        if sd_noise == 0.0:
            assert trial[f"fidelity_{name}"] == pytest.approx(
                trial[f"latent_fidelity_{name}"], abs=1e-15
            ), f"{name}: expected rated = latent without rater error"
    if sd_noise == 1.0:
        assert clipped > 0, "the case was meant to exercise the clip"


def test_rating_weeks_past_the_end_are_rated_in_the_last_week(scenario):
    """7.12: ENRICH delivery lasts 52 + 4 + 16 = 72 weeks (0-71): rating weeks
    26 and 500 are rated at weeks 26 and 71."""
    sc = scenario.with_values({"fidelity.rating_weeks": [26, 500]})
    model = PeerSupportModel(sc, 0)
    assert model.n_weeks == 72, f"expected 72 weeks of delivery, {model.n_weeks}"
    assert model.rating_weeks == [26, 71], f"expected [26, 71], found {model.rating_weeks}"


def test_a_site_with_every_post_vacant_at_every_rating_week_has_no_fidelity(scenario):
    """7.12: a rating is of the peer workers in post. Every ENRICH peer worker
    leaves in week 20 (their turnover draws set to 0) and posts stay vacant
    past the end of delivery, so the ratings at weeks 26 and 52 find nobody:
    each site's rated and latent fidelity is missing (NaN), not 0."""
    sc = scenario.with_values({"morale.p_leave_per_week": 1e-6, "morale.dur_vacancy_weeks": 104})
    model = PeerSupportModel(sc, 21)
    model.pw.u_leave[20] = 0.0
    model.run_to_end()
    assert not model.pw.in_post.any(), "expected every post vacant after week 20"
    trial = model.results().trial
    for name in sc.sites:
        for key in (f"fidelity_{name}", f"latent_fidelity_{name}"):
            assert math.isnan(trial[key]), (
                f"{key}: expected NaN with nobody to rate, found {trial[key]}"
            )
