"""The scenario library, ``peersim validate`` and ``peersim schema``.

- Every library file validates and runs, carries the header its policy question
  needs, and resolves to exactly the changes its header describes (inheritance
  as documented, on the real files).
- Directional checks: each what-if, run paired with ``enrich_trial`` on common
  random numbers, moves the outcome its question is about in the direction the
  mechanisms imply, by more than 3 paired standard errors (or, where the model
  says nothing changes, not at all; each test says why).
- ``peersim validate`` reports every problem with file, key, value and what is
  allowed, exits 2 and writes nothing; ``peersim schema`` is a JSON Schema that
  accepts the library as written and refuses what the loader refuses.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analysis.cli import main
from scenarios import library, load_scenario
from simulation import Results, Scenario, replicate_seed, run_batch

LIBRARY = library()
WHATIFS = sorted(name for name in LIBRARY if name.startswith("whatif_"))
BASE = "enrich_trial"
N_REPLICATES = 30
MASTER_SEED = 20241
PEER_SUPPORT = 1  # arm code of the peer-support arm (simulation.results.ARMS)
WARD = 1  # first_contact_setting code of a ward first contact (simulation.results.SETTINGS)


# --- the library ----------------------------------------------------------------------


def test_library_has_the_ready_what_ifs() -> None:
    assert BASE in LIBRARY, "the library should hold the ENRICH trial scenario"
    assert len(WHATIFS) >= 8, f"at least 8 ready what-ifs expected, found {WHATIFS}"
    assert "region_50_sites" in LIBRARY, "the scale-up scenario should be in the library"


@pytest.mark.parametrize("name", sorted(LIBRARY))
def test_every_library_file_validates_and_runs(name: str) -> None:
    scenario = load_scenario(LIBRARY[name])
    assert scenario.name == name, f"{name}: the name should be the file name"
    results = run_batch(scenario, [replicate_seed(MASTER_SEED, i) for i in range(2)])
    assert len(results) == 2, f"{name}: two replicates expected"
    for result in results:
        assert result.site_names == tuple(scenario.sites), f"{name}: results for every site"
        if scenario.mode == "service":  # Poisson referrals: the count varies
            referred = len(result.participant_arrays["site"])
            assert result.trial["n_referrals"] == referred > 0, (
                f"{name}: every referral should be simulated"
            )
            continue
        assert result.trial["n_ps"] + result.trial["n_uc"] == scenario.n_participants, (
            f"{name}: every participant should be simulated"
        )


HEADER_PARTS = ("Policy question:", "What changes:", "Mechanisms engaged:", "What to expect:")


@pytest.mark.parametrize("name", [*WHATIFS, "region_50_sites"])
def test_every_what_if_states_its_question_and_grades(name: str) -> None:
    text = LIBRARY[name].read_text(encoding="utf-8")
    header = text.split("\nextends")[0]
    assert all(line.startswith("#") or not line for line in header.splitlines()), (
        f"{name}: the file should open with its comment header"
    )
    for part in (*HEADER_PARTS, "Grades:", "[M]"):
        assert part in header, f"{name}: the header should say {part!r}"
    scenario = load_scenario(LIBRARY[name])
    assert scenario.description.startswith("What if"), (
        f"{name}: description should state the question: {scenario.description!r}"
    )


# Each what-if's resolved changes against enrich_trial: dotted key -> new value. Proves
# that extends, [sites.NAME] and [[sites_where]] resolve as documented on the real files.
EXPECTED_CHANGES: dict[str, dict[str, Any]] = {
    "whatif_honorary_contracts": {
        "sites.F.honorary_contracts": True,
        "sites.G.honorary_contracts": True,
    },
    "whatif_nhs_hosting": {"sites.F.host": "nhs", "sites.G.host": "nhs"},
    "whatif_double_supervision_low_sites": {
        "sites.E.supervisor_h_per_week": 20.0,
        "sites.F.supervisor_h_per_week": 20.0,
        "sites.G.supervisor_h_per_week": 20.0,
    },
    "whatif_team_preparation_everywhere": {f"sites.{s}.team_preparation": 1.0 for s in "ABCDEFG"},
    "whatif_team_preparation_funded": {
        **{f"sites.{s}.team_preparation": 1.0 for s in "ABCDEFG"},
        "sites.A.supervisor_h_per_week": 15.0,
        **{f"sites.{s}.supervisor_h_per_week": 11.0 for s in "BCDE"},
        "sites.F.supervisor_h_per_week": 11.43,
        "sites.G.supervisor_h_per_week": 11.43,
    },
    "whatif_remote_contacts_rural": {
        "sites.E.p_remote_contact": 0.5,
        "sites.G.p_remote_contact": 0.5,
    },
    "whatif_caseload_cap_tight": {f"sites.{s}.n_caseload_cap": 2 for s in "ABCDEFG"},
    "whatif_turnover": {"morale.p_leave_per_week": 0.01, "morale.dur_vacancy_weeks": 12},
    "whatif_support_8_weeks": {
        "trial.dur_support_after_discharge_weeks": 8,
        "trial.dur_weekly_phase_weeks": 8,
    },
    "whatif_support_26_weeks": {"trial.dur_support_after_discharge_weeks": 26},
}


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_every_what_if_has_its_expected_changes() -> None:
    assert sorted(EXPECTED_CHANGES) == WHATIFS, "every library what-if needs its expected changes"


@pytest.mark.parametrize("name", WHATIFS)
def test_what_if_resolves_to_exactly_its_documented_changes(name: str) -> None:
    base = _flat(load_scenario(LIBRARY[BASE]).model_dump())
    scenario = load_scenario(LIBRARY[name])
    changed = {
        key: value
        for key, value in _flat(scenario.model_dump()).items()
        if base.get(key) != value and key not in ("name", "description")
    }
    assert changed == EXPECTED_CHANGES[name], (
        f"{name} should differ from enrich_trial in exactly the documented keys"
    )


def test_region_has_50_sites_about_4000_referrals_a_year_in_the_stated_mix() -> None:
    region = load_scenario(LIBRARY["region_50_sites"])
    assert len(region.sites) == 50, f"50 sites expected, got {len(region.sites)}"
    assert region.mode == "service", "the region is a service, not a trial (no randomisation)"
    per_year = sum(s.referrals_per_year or 0 for s in region.sites.values())
    assert per_year == 4000, f"4,000 referrals a year, got {per_year}"
    assert region.service.horizon_years == 3, "a 3-year service"
    mix: dict[tuple[str, str], int] = {}
    for site in region.sites.values():
        mix[(site.host, site.geography)] = mix.get((site.host, site.geography), 0) + 1
    assert mix == {
        ("nhs", "urban"): 30,
        ("nhs", "rural"): 8,
        ("not_for_profit", "urban"): 7,
        ("not_for_profit", "rural"): 5,
    }, f"the site mix stated in the header: {mix}"
    assert {s.n_supervisors for s in region.sites.values()} == {1}, "one coordinator per site"
    assert {s.n_peer_workers for s in region.sites.values()} == {4, 5}, "4 or 5 peer workers"
    assert not set("ABCDEFG") & set(region.sites), "the trial sites are removed"


def test_region_runs_and_its_site_types_behave_like_the_matching_trial_sites() -> None:
    region = load_scenario(LIBRARY["region_50_sites"])
    results = run_batch(region, [replicate_seed(MASTER_SEED, i) for i in range(3)])
    engaged = {kind: [] for kind in ("urban_nhs", "rural_nhs", "urban_nfp", "rural_nfp")}
    for result in results:
        referred = result.trial["n_referrals"]
        # 4,000 a year for 3 years less the 12-week ramp-up's shortfall (5.5 weeks).
        expected = 4000 * (3 - 5.5 / 52)
        assert abs(referred - expected) < 4 * expected**0.5, (
            f"about {expected:.0f} referrals over 3 years (Poisson), got {referred}"
        )
        for name in region.sites:
            engaged[name[:9]].append(result.trial[f"engaged_share_{name}"])
    means = {kind: float(np.mean(values)) for kind, values in engaged.items()}
    # M1-M5 as in the trial scenario: urban NHS sites engage most, sites with both
    # disadvantages (rural and not-for-profit hosted) least.
    assert means["urban_nhs"] > max(means["rural_nhs"], means["urban_nfp"]), (
        f"urban NHS sites should engage most: {means}"
    )
    assert min(means["rural_nhs"], means["urban_nfp"]) > means["rural_nfp"], (
        f"rural not-for-profit sites should engage least: {means}"
    )


# --- directional checks: paired replicates on common random numbers -----------------------


@cache
def _runs(name: str) -> tuple[Results, ...]:
    seeds = [replicate_seed(MASTER_SEED, i) for i in range(N_REPLICATES)]
    return tuple(run_batch(load_scenario(LIBRARY[name]), seeds))


def _ps_site_mean(result: Results, column: str, sites: str, where: str | None = None) -> float:
    """Mean of a participant column over the peer-support arm at ``sites`` (site letters);
    with ``where``, the share of them for whom that column holds ``WARD``."""
    a = result.participant_arrays
    codes = [result.site_names.index(s) for s in sites]
    chosen = (a["arm"] == PEER_SUPPORT) & np.isin(a["site"], codes)
    values = a[column][chosen]
    if where == "ward":
        values = values == WARD
    return float(np.mean(values))


def _participants(column: str, sites: str, where: str | None = None) -> Callable[[Results], float]:
    return lambda r: _ps_site_mean(r, column, sites, where)


def _site_weeks_mean(column: str) -> Callable[[Results], float]:
    return lambda r: float(np.mean(r.site_week_arrays[column]))


def _trial(key: str) -> Callable[[Results], float]:
    return lambda r: float(r.trial[key])


def _sites_trial(prefix: str, sites: str) -> Callable[[Results], float]:
    return lambda r: float(np.mean([r.trial[f"{prefix}_{s}"] for s in sites]))


def _paired(name: str, outcome: Callable[[Results], float]) -> tuple[float, float, np.ndarray]:
    """Mean paired difference (what-if minus enrich_trial), its standard error, the diffs."""
    diffs = np.array(
        [outcome(w) - outcome(b) for w, b in zip(_runs(name), _runs(BASE), strict=True)]
    )
    return float(diffs.mean()), float(diffs.std(ddof=1) / np.sqrt(len(diffs))), diffs


def assert_moves(name: str, outcome: Callable[[Results], float], label: str, sign: int) -> None:
    mean, se, _ = _paired(name, outcome)
    direction = "up" if sign > 0 else "down"
    assert sign * mean > 3 * se, (
        f"{name}: {label} should go {direction} versus enrich_trial by more than 3 paired SE "
        f"({N_REPLICATES} replicates): mean difference {mean:+.4f}, SE {se:.4f}"
    )


def test_honorary_contracts_raise_engagement_at_not_for_profit_sites() -> None:
    # M4: records access, ward authority and no friction -> more first contacts on the ward.
    name = "whatif_honorary_contracts"
    assert_moves(name, _sites_trial("engaged_share", "FG"), "engaged share at F, G", +1)
    assert_moves(name, _participants("met", "FG"), "met share at F, G", +1)
    unchanged, _, _ = _paired(name, _sites_trial("engaged_share", "ABCDE"))
    assert unchanged == 0, "NHS sites A-E should not change at all (common random numbers)"


def test_nhs_hosting_raises_engagement_and_fidelity_beyond_honorary_contracts() -> None:
    # M4 removed entirely: as honorary contracts, plus no liaison time -> more supervision.
    name = "whatif_nhs_hosting"
    assert_moves(name, _sites_trial("engaged_share", "FG"), "engaged share at F, G", +1)
    assert_moves(name, _sites_trial("fidelity", "FG"), "fidelity at F, G", +1)
    nhs = np.mean([r.trial["engaged_share"] for r in _runs(name)])
    honorary = np.mean([r.trial["engaged_share"] for r in _runs("whatif_honorary_contracts")])
    assert nhs > honorary, (
        f"NHS hosting also frees the coordinators' liaison time, so it should engage more "
        f"than honorary contracts alone: {nhs:.3f} vs {honorary:.3f}"
    )


def test_double_supervision_raises_fidelity_and_engagement_at_the_low_sites() -> None:
    # M3: more supervision per peer worker pulls fidelity back; M2: better first contacts.
    name = "whatif_double_supervision_low_sites"
    for site in "EFG":
        assert_moves(name, _trial(f"fidelity_{site}"), f"fidelity at {site}", +1)
    assert_moves(name, _sites_trial("engaged_share", "FG"), "engaged share at F, G", +1)
    unchanged, _, _ = _paired(name, _sites_trial("fidelity", "ABCD"))
    assert unchanged == 0, "sites A-D are untouched and should not change at all"


def test_team_preparation_everywhere_raises_ward_first_contacts_but_costs_supervision() -> None:
    """M1: more first contacts on the ward at the less prepared sites C-G. But the
    programme's coordinator hours come out of supervision (M3): at the stretched
    not-for-profit sites F and G fidelity falls, so their engagement gains nothing
    (within noise: the ward's gain and the supervision's loss about cancel). This is
    what the mechanisms imply for an unfunded programme (documented in the file); the
    funded variant below shows the gain."""
    name = "whatif_team_preparation_everywhere"
    ward_first = _participants("first_contact_setting", "CDEFG", where="ward")
    assert_moves(name, ward_first, "share first met on the ward at C-G", +1)
    assert_moves(name, _sites_trial("fidelity", "FG"), "fidelity at F, G (less supervision)", -1)
    mean, se, _ = _paired(name, _sites_trial("engaged_share", "FG"))
    assert abs(mean) < 3 * se + 0.01, (
        f"engaged share at F, G: expected no clear gain or loss, found {mean:+.4f} (SE {se:.4f})"
    )


def test_funded_team_preparation_raises_ward_contacts_and_engagement() -> None:
    # M1 without the M3 cost: supervision hours as in enrich_trial.
    name = "whatif_team_preparation_funded"
    ward_first = _participants("first_contact_setting", "CDEFG", where="ward")
    assert_moves(name, ward_first, "share first met on the ward at C-G", +1)
    assert_moves(name, _sites_trial("engaged_share", "CDEFG"), "engaged share at C-G", +1)
    for sites in ("ABCD", "EFG"):  # at the better and the worse placed sites alike
        assert_moves(name, _sites_trial("engaged_share", sites), f"engaged share at {sites}", +1)


def test_remote_contacts_raise_community_contacts_at_rural_sites() -> None:
    """M5: less travel per community meeting, so fewer meetings are cut when a rural
    peer worker's hours run short (about one week in seven, mostly because ward
    visits take the travel first), and fewer participants lapse. The gain in
    contacts is modest, about +0.1 per participant at E and G; see the file."""
    name = "whatif_remote_contacts_rural"
    rural = _participants("contacts_community", "EG")
    assert_moves(name, rural, "community contacts per participant at E, G", +1)
    # Fewer meetings not held, fewer lapses (ODD 7.6): more stay engaged.
    assert_moves(name, _sites_trial("engaged_share", "EG"), "engaged share at E, G", +1)
    mean, _, _ = _paired(name, rural)
    assert mean < 0.2, f"the gain should be small at ENRICH caseloads: {mean:+.3f}"
    unchanged, _, _ = _paired(name, _participants("contacts_community", "ABCDF"))
    assert unchanged == 0, "urban sites should not change at all"


def test_tight_caseload_cap_lowers_met_share_and_contacts() -> None:
    """Allocation: participants wait for a peer worker and miss their ward stay, so
    fewer are met and engaged at the urban sites; at the rural ones, where hours
    run short, smaller caseloads mean fewer meetings not held and fewer lapses
    (ODD 7.6), which outweighs the loss: two paths of opposite sign."""
    name = "whatif_caseload_cap_tight"
    assert_moves(name, _trial("met_share"), "met share", -1)
    assert_moves(name, _sites_trial("engaged_share", "ABCDF"), "engaged share, urban", -1)
    assert_moves(name, _sites_trial("engaged_share", "EG"), "engaged share, rural", +1)
    assert_moves(name, _trial("contacts_community_mean"), "community contacts", -1)
    # M8: smaller caseloads, less workload strain.
    assert_moves(name, _site_weeks_mean("pw_morale"), "peer worker morale", +1)


def test_turnover_lowers_engagement_and_community_contacts() -> None:
    """M8 turnover: some engaged participants stop at the handover to a new peer
    worker, leavers' cases wait for reallocation and colleagues' workload rises, so
    fewer stay engaged and there are fewer community contacts."""
    name = "whatif_turnover"
    assert_moves(name, _trial("engaged_share"), "engaged share", -1)
    assert_moves(name, _trial("contacts_community_mean"), "community contacts", -1)


def test_shorter_support_lowers_community_contacts() -> None:
    name = "whatif_support_8_weeks"
    assert_moves(name, _trial("contacts_community_mean"), "community contacts", -1)
    assert_moves(name, _trial("met_share"), "met share (less time to reach)", -1)


def test_longer_support_raises_community_contacts() -> None:
    name = "whatif_support_26_weeks"
    assert_moves(name, _trial("contacts_community_mean"), "community contacts", +1)
    assert_moves(name, _trial("met_share"), "met share (more time to reach)", +1)


def test_longer_support_lowers_peer_support_readmission_and_leaves_usual_care_alone() -> None:
    """M7, graded dose: 26 weeks of support give the engaged more sessions, each lowering
    the readmission hazard a little more (saturating), so peer-support readmission falls
    in expectation. The effect is small (about -0.001 on 0.31 at ENRICH values: by 16
    weeks most of the dose's effect is reached), so this test pairs 200 replicates,
    where it is more than 3 paired SE below 0 at these seeds. Usual care cannot change
    (common random numbers)."""
    seeds = [replicate_seed(MASTER_SEED, i) for i in range(200)]
    base = run_batch(load_scenario(LIBRARY[BASE]), seeds)
    longer = run_batch(load_scenario(LIBRARY["whatif_support_26_weeks"]), seeds)
    diffs = np.array(
        [w.trial["readmit_ps"] - b.trial["readmit_ps"] for w, b in zip(longer, base, strict=True)]
    )
    mean, se = diffs.mean(), diffs.std(ddof=1) / np.sqrt(len(diffs))
    assert mean < -3 * se, (
        f"peer-support readmission should fall with 26 weeks of support by more than 3 "
        f"paired SE (200 replicates): mean difference {mean:+.5f}, SE {se:.5f}"
    )
    uc = [w.trial["readmit_uc"] - b.trial["readmit_uc"] for w, b in zip(longer, base, strict=True)]
    assert not any(uc), f"usual-care readmission should be identical, found {max(uc, key=abs)}"


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_validate_library_says_ok_for_every_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "--library"]) == 0, "every library file should be valid"
    out = capsys.readouterr().out
    assert "(enrich_trial: 7 sites, 590 participants)" in out, out
    assert (
        "(region_50_sites: 50 sites, service over 3 years, 12000 referrals at the full rate)" in out
    ), out
    assert out.count("\nOK ") + out.startswith("OK ") == len(LIBRARY), f"one OK a file:\n{out}"
    assert _listing(tmp_path) == [], "validate should write nothing"


def test_validate_without_files_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 2, "no files and no --library should exit 2"
    assert "give at least one scenario FILE, or --library" in capsys.readouterr().err


TINY_PARENT = """\
[sites.urban]
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
"""

# (file text, what stdout must say); {dir} is the folder of the file. Each is one
# validation error case of the file format.
VALIDATE_CASES = [
    pytest.param(
        TINY_PARENT.replace("n_peer_workers = 2", "n_peer_workers = 0"),
        [
            "{file}: sites.urban.n_peer_workers: value 0: out of range, "
            "allowed: an integer, 1 to 500"
        ],
        id="out-of-range",
    ),
    pytest.param(
        TINY_PARENT + "honorary_contract = true\n",
        [
            "{file}: sites.urban.honorary_contract: value true: unknown key; "
            "did you mean honorary_contracts?"
        ],
        id="misspelt-key",
    ),
    pytest.param(
        TINY_PARENT.replace('host = "nhs"', "host = nhs"),
        ["{file}: line 2, column 8: invalid TOML"],
        id="malformed-toml",
    ),
    pytest.param(
        TINY_PARENT.replace('host = "nhs"\n', ""),
        ["{file}: sites.urban.host: missing: required, allowed: 'nhs' or 'not_for_profit'"],
        id="missing-key",
    ),
    pytest.param(
        'extends = "nowhere.toml"\n',
        [
            "{file}: extends: value 'nowhere.toml': no such scenario file (looked for "
            "{dir}/nowhere.toml)"
        ],
        id="missing-parent",
    ),
    pytest.param(
        'extends = "bad.toml"\n',
        ["{file}: extends: value 'bad.toml': files extend each other in a circle: {file}"],
        id="circular",
    ),
    pytest.param(
        'extends = "parent.toml"\n[[sites_where]]\nhost = "not_for_profit"\n'
        "[sites_where.set]\nhonorary_contracts = true\n",
        [
            "{file}: sites_where[1]: matches no site: none of the 1 sites has "
            "host = 'not_for_profit'"
        ],
        id="condition-matches-nothing",
    ),
    pytest.param(
        'extends = "parent.toml"\n[[sites_where]]\n[sites_where.set]\nn_caseload_cap = 0\n',
        [
            "{file}: sites_where[1].set.n_caseload_cap: value 0: out of range, allowed: an "
            "integer, 1 to 200"
        ],
        id="bad-set-value",
    ),
    pytest.param(
        'extends = "parent.toml"\n[sites.Urban]\nn_peer_workers = 3\n',
        [
            "{file}: sites.Urban.host: missing: required",
            "{file}: sites.Urban: a new site",
            "did you mean sites.urban?",
        ],
        id="new-site-typo",
    ),
    pytest.param(
        'extends = "parent.toml"\nsites_remove = ["rural"]\n',
        ["{file}: sites_remove: value 'rural': no such site in the parent"],
        id="remove-unknown-site",
    ),
    pytest.param(
        'extends = "parent.toml"\n[trial]\nshare_psychotic = 0.8\nshare_personality = 0.3\n',
        ["{file}: trial: share_psychotic + share_personality must be at most 1"],
        id="rule-across-keys",
    ),
]


@pytest.mark.parametrize(("text", "says"), VALIDATE_CASES)
def test_validate_reports_the_problem_exits_2_and_writes_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    text: str,
    says: list[str],
) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "parent.toml").write_text(TINY_PARENT, encoding="utf-8")
    path = folder / "bad.toml"
    path.write_text(text, encoding="utf-8")
    before = _listing(tmp_path)
    monkeypatch.chdir(tmp_path)
    status = main(["validate", str(folder / "parent.toml"), str(path)])
    out, err = capsys.readouterr()
    assert status == 2, f"an invalid file should exit 2, got {status}:\n{out}{err}"
    assert f"OK {folder / 'parent.toml'} (parent: 1 sites, 30 participants)" in out, (
        f"the valid file should still be reported OK:\n{out}"
    )
    assert f"FAIL {path}:" in out, f"the invalid file should be reported:\n{out}"
    for part in says:
        expected = part.replace("{file}", str(path)).replace("{dir}", str(folder))
        assert expected in out, f"stdout should contain {expected!r}:\n{out}"
    assert err == "peersim: error: 1 of 2 scenario files has problems\n", f"stderr: {err!r}"
    assert "Traceback" not in out + err, "no traceback for a bad file"
    assert _listing(tmp_path) == before, "validate should write nothing"


def test_validate_lists_every_problem_of_every_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = tmp_path / "one.toml"
    one.write_text(
        TINY_PARENT.replace("n_peer_workers = 2", "n_peer_workers = 0").replace(
            "n_caseload_cap = 10", "n_caseload_cap = 0"
        ),
        encoding="utf-8",
    )
    two = tmp_path / "two.toml"
    two.write_text('extends = "one.toml"\n[trial]\ndur_folowup_weeks = 3\n', encoding="utf-8")
    assert main(["validate", str(one), str(two)]) == 2, "two invalid files should exit 2"
    out, err = capsys.readouterr()
    assert f"FAIL {one}: 2 problems" in out, out
    assert f"FAIL {two}: 3 problems" in out, f"the parent's problems come with the child's:\n{out}"
    assert f"  {two}: trial.dur_folowup_weeks: value 3: unknown key; did you mean " in out, out
    assert f"  {one}: sites.urban.n_caseload_cap: value 0: out of range" in out, (
        f"an inherited problem names the parent:\n{out}"
    )
    assert "2 of 2 scenario files have problems" in err, err


# --- peersim schema ---------------------------------------------------------------------


def _schema(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["schema", *args]) == 0, "peersim schema should exit 0"
    return json.loads(capsys.readouterr().out)


def _toml(text: str) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(text)


def test_schema_is_valid_and_accepts_the_library_as_written(
    capsys: pytest.CaptureFixture[str],
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = _schema(capsys)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for name, path in LIBRARY.items():
        errors = [e.message for e in validator.iter_errors(_toml(path.read_text()))]
        assert errors == [], f"{name} as written should satisfy the schema: {errors}"
    site = schema["$defs"]["Site"]["properties"]
    assert "electronic notes" in site["share_records_access"]["description"], "descriptions"
    trial = schema["$defs"]["TrialDesign"]["properties"]["dur_support_after_discharge_weeks"]
    assert "[unit: weeks; grade T" in trial["description"], f"unit and grade: {trial}"


SCHEMA_REFUSES = [
    pytest.param(TINY_PARENT.replace('host = "nhs"\n', ""), id="full-file-missing-site-key"),
    pytest.param(TINY_PARENT + "honorary_contract = true\n", id="misspelt-site-key"),
    pytest.param(
        TINY_PARENT.replace("n_peer_workers = 2", "n_peer_workers = 0"), id="out-of-range"
    ),
    pytest.param('name = "x"\n', id="no-sites-no-parent"),
    pytest.param('extends = "p.toml"\n[sites.F]\nn_peer_workers = "5"\n', id="wrong-type"),
    pytest.param('sites_remove = ["A"]\n', id="remove-without-extends"),
    pytest.param('extends = "p.toml"\n[[sites_where]]\nhost = "nhs"\n', id="where-without-set"),
    pytest.param('extends = "p.toml"\n[engagment]\nlogit_intercept = 1.0\n', id="unknown-table"),
]


@pytest.mark.parametrize("text", SCHEMA_REFUSES)
def test_schema_refuses_what_the_loader_refuses(
    capsys: pytest.CaptureFixture[str], text: str
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(_schema(capsys))
    assert not validator.is_valid(_toml(text)), f"the schema should refuse:\n{text}"


def test_schema_accepts_a_partial_what_if(capsys: pytest.CaptureFixture[str]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(_schema(capsys))
    text = 'extends = "p.toml"\n[sites.F]\nn_peer_workers = 5\n[morale]\np_leave_per_week = 0.01\n'
    assert validator.is_valid(_toml(text)), "a what-if may give a site in part"


def test_resolved_schema_accepts_a_loaded_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = _schema(capsys, "--resolved")
    for name in (BASE, "whatif_turnover"):
        dumped = load_scenario(LIBRARY[name]).model_dump(mode="json")
        errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(dumped)]
        assert errors == [], f"{name}, loaded, should satisfy the resolved schema: {errors}"
    assert "extends" not in schema["properties"], "a resolved scenario has no extends"
    assert Scenario.model_json_schema()["required"] == schema["required"], "sites required"


# --- the README's "Scenario files" section ------------------------------------------------

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Scenario files\n")
    return text[start : text.index("\n## ", start + 1)]


def test_readme_example_what_if_loads_as_its_comments_say(tmp_path: Path) -> None:
    section = _readme_section()
    example = section.split("```toml\n")[1].split("```")[0]
    (tmp_path / "enrich_trial.toml").write_bytes(LIBRARY[BASE].read_bytes())
    path = tmp_path / "example.toml"
    path.write_text(example, encoding="utf-8")
    scenario = load_scenario(path)
    base = load_scenario(LIBRARY[BASE])
    assert scenario.trial.dur_support_after_discharge_weeks == 26, "the [trial] change"
    assert scenario.sites["F"].n_peer_workers == 6, "the [sites.F] change"
    assert [s for s, site in scenario.sites.items() if site.honorary_contracts] == ["F", "G"], (
        "[[sites_where]] should give honorary contracts to the not-for-profit sites"
    )
    assert scenario.sites["A"] == base.sites["A"], "an NHS site is unchanged"


def test_readme_lists_every_library_file() -> None:
    section = _readme_section()
    missing = [name for name in LIBRARY if name != BASE and f"`{name}.toml`" not in section]
    assert missing == [], f"README's library table should list {missing}"


def test_help_of_validate_and_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0, "peersim --help should exit 0"
    top = capsys.readouterr().out
    assert "validate" in top, "peersim --help should list validate"
    assert "schema" in top, "peersim --help should list schema"
    assert main(["validate", "--help"]) == 0, "validate --help should exit 0"
    text = capsys.readouterr().out
    for part in ("FILE", "--library", "OK FILE", "Exit status 0", "Nothing is written"):
        assert part in text, f"'peersim validate --help' should mention {part!r}"
    assert main(["schema", "--help"]) == 0, "schema --help should exit 0"
    text = capsys.readouterr().out
    for part in ("--resolved", "extends", "#:schema", "peersim validate"):
        assert part in text, f"'peersim schema --help' should mention {part!r}"
