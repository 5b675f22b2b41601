"""The lever audit: what-if claims, the paired audit, ``peersim levers`` and docs/levers.md.

- the ``[claim]`` schema (``scenarios.claims``): good claims load, bad ones are
  refused with one line naming the file, the key, the value and what is allowed
  (closest names for a misspelt one); a claim is not inherited, and is stripped
  before the scenario is validated;
- the two outcomes added for claims (community contacts, first met on the ward)
  on a hand-built replicate;
- the audit on small paired runs with known answers: a what-if identical to its
  parent gives exactly 0, a change at one site leaves another site exactly as it
  was (sites never interact), support for 8 weeks lowers community contacts;
- THE lever audit: every what-if in the library moves its claimed outcome beyond
  replicate noise in its claimed direction (seed 20241, 20 paired replicates,
  the docs page's settings); the ones the current model cannot move are marked
  ``xfail(strict=True)`` until model v2 (issue 11) makes them move;
- docs/levers.md is what the audit gives now;
- ``peersim levers``: output files and manifest, exit status 2 for mistakes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.cli import main
from analysis.levers import (
    AUDIT_COLUMNS,
    DOCS_PAGE,
    DOCS_REPLICATES,
    DOCS_SEED,
    REGENERATE,
    LeverError,
    audit,
    claimed_values,
    decimals,
    docs_page,
    library_whatifs,
    load_levers,
    outcome_values,
)
from scenarios import ScenarioError, default_scenario_path, load_claim, load_scenario
from scenarios.claims import CLAIMABLE
from simulation import Results
from simulation.outcomes import OUTCOMES

ENRICH = default_scenario_path()
LIBRARY_WHATIFS = {path.stem: path for path in library_whatifs()}

# What-ifs whose claimed outcome the current model does not move beyond noise. Remove
# a mark once the new model makes the what-if move (strict: an unexpected pass fails).
NOT_YET: dict[str, str] = {}


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _whatif(folder: Path, body: str, claim: str, name: str = "whatif_x.toml") -> Path:
    """A what-if of the shipped ENRICH scenario in ``folder``, with ``claim`` as its table."""
    extends = f'extends = "{ENRICH}"\n'
    return _write(folder, name, extends + body + "\n[claim]\n" + claim)


CLAIM_OK = 'outcome = "engaged_share"\ndirection = "higher"\nmechanism = "M3: more supervision"\n'


# --- the claim schema ---------------------------------------------------------------------


def test_every_library_whatif_makes_a_claim_of_a_registry_outcome():
    assert len(LIBRARY_WHATIFS) >= 10, f"the library's what-ifs: {sorted(LIBRARY_WHATIFS)}"
    for name, path in LIBRARY_WHATIFS.items():
        claim = load_claim(path)
        assert claim is not None, f"{name} should end with a [claim]"
        assert claim.outcome in OUTCOMES, f"{name}: {claim.outcome} is a registry outcome"
        assert claim.direction in ("higher", "lower"), f"{name}: direction {claim.direction}"
        assert "->" in claim.mechanism, f"{name}: the mechanism is a path (a -> b): {claim}"
    assert load_claim(ENRICH) is None, "the trial scenario claims nothing"


def test_good_claims_load(tmp_path):
    whole = load_claim(_whatif(tmp_path, "", CLAIM_OK))
    assert whole is not None, "a claim about the whole trial"
    assert whole.sites == (), "no sites: the whole trial"
    assert whole.where == "whole trial", "its scope in words"
    rural = CLAIM_OK + 'sites = "sites[geography=rural]"\n'
    one = load_claim(_whatif(tmp_path, "", rural, "one.toml"))
    assert one is not None, "a claim with one selector"
    assert one.sites == ("sites[geography=rural]",), "one selector"
    assert one.select(load_scenario(ENRICH)) == ("E", "G"), "the rural sites of ENRICH"
    two = CLAIM_OK + 'sites = ["sites.G", "sites.E"]\n'
    many = load_claim(_whatif(tmp_path, "", two, "m.toml"))
    assert many is not None, "a claim with an array of selectors"
    assert many.select(load_scenario(ENRICH)) == ("E", "G"), (
        "an array of selectors: the sites any selects, in the scenario's order"
    )


BAD_CLAIMS = [
    pytest.param(
        CLAIM_OK.replace("engaged_share", "engaged"),
        ["claim.outcome: value 'engaged'", "not an outcome", "did you mean engaged_share"],
        id="misspelt-outcome",
    ),
    pytest.param(
        CLAIM_OK.replace("engaged_share", "difference"),
        ["claim.outcome: value 'difference'", "needs settings", "claimable outcomes: met_share"],
        id="outcome-needing-settings",
    ),
    pytest.param(
        CLAIM_OK.replace('"higher"', '"up"'),
        ["claim.direction: value 'up'", "not one of the choices", "allowed: 'higher' or 'lower'"],
        id="direction",
    ),
    pytest.param(
        CLAIM_OK.replace('mechanism = "M3: more supervision"\n', ""),
        ["claim.mechanism: missing: required", "allowed: a string"],
        id="missing-mechanism",
    ),
    pytest.param(
        CLAIM_OK + "outcomes = 1\n",
        ["claim.outcomes: value 1: unknown key", "did you mean outcome"],
        id="unknown-key",
    ),
    pytest.param(
        CLAIM_OK + 'sites = "sites[geograpy=rural]"\n',
        ["claim.sites: value 'sites[geograpy=rural]'", "cannot select sites by", "geography"],
        id="misspelt-selector-field",
    ),
    pytest.param(
        CLAIM_OK + 'sites = "rural"\n',
        ["claim.sites: value 'rural'", "not a site selector", "sites[FIELD=VALUE, ...]"],
        id="not-a-selector",
    ),
    pytest.param(
        CLAIM_OK + "sites = 3\n",
        ["claim.sites: value 3: wrong type (an integer)", "allowed: a site selector"],
        id="sites-wrong-type",
    ),
    pytest.param(
        CLAIM_OK + "sites = []\n",
        ["claim.sites: value []: an empty array selects no site", "leave sites out"],
        id="sites-empty",
    ),
    pytest.param(
        CLAIM_OK.replace("engaged_share", "itt_or") + 'sites = "sites.E"\n',
        ["claim.sites: value ['sites.E']", "whole trial only", "contacts_community_mean"],
        id="whole-trial-outcome-at-sites",
    ),
]


@pytest.mark.parametrize(("claim", "expected"), BAD_CLAIMS)
def test_bad_claims_are_refused_naming_file_key_value_and_what_is_allowed(
    tmp_path, claim, expected
):
    path = _whatif(tmp_path, "", claim)
    with pytest.raises(ScenarioError) as caught:
        load_claim(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), f"the problem names the file first: {message}"
    for fragment in expected:
        assert fragment in message, f"expected {fragment!r} in: {message}"
    with pytest.raises(ScenarioError) as loading:
        load_scenario(path)
    assert str(caught.value) in str(loading.value), (
        f"loading the scenario reports the same problem: {loading.value}"
    )


def test_claim_that_is_not_a_table_is_refused(tmp_path):
    path = _write(tmp_path, "w.toml", f'extends = "{ENRICH}"\nclaim = "more engagement"\n')
    with pytest.raises(ScenarioError, match=r"claim: value 'more engagement': wrong type"):
        load_claim(path)


def test_claim_is_stripped_before_validation_and_not_inherited(tmp_path):
    parent = _whatif(tmp_path, "[morale]\np_leave_per_week = 0.01\n", CLAIM_OK, "parent.toml")
    child = _write(tmp_path, "child.toml", 'extends = "parent.toml"\n')
    plain = _write(
        tmp_path, "plain.toml", f'extends = "{ENRICH}"\n[morale]\np_leave_per_week = 0.01\n'
    )
    assert load_scenario(parent).model_dump(exclude={"name"}) == load_scenario(plain).model_dump(
        exclude={"name"}
    ), "the claim changes nothing in the scenario"
    assert load_claim(parent) is not None, "the parent's own claim"
    assert load_claim(child) is None, "a claim belongs to its file: not inherited"
    with pytest.raises(LeverError) as caught:
        load_levers([child])
    assert f"{child}: claim: missing" in str(caught.value), (
        f"a what-if without a claim is not audited, and the message says so: {caught.value}"
    )


def test_bad_claim_in_a_parent_names_the_parent(tmp_path):
    bad = CLAIM_OK.replace('"higher"', '"up"')
    parent = _whatif(tmp_path, "", bad, "parent.toml")
    child = _write(tmp_path, "child.toml", 'extends = "parent.toml"\n')
    with pytest.raises(ScenarioError) as caught:
        load_scenario(child)
    assert f"{parent}: claim.direction: value 'up'" in str(caught.value), (
        f"the parent set the bad value, so the parent is named: {caught.value}"
    )


def test_claim_about_sites_the_baseline_lacks_is_refused_by_the_audit(tmp_path):
    path = _whatif(tmp_path, "", CLAIM_OK + 'sites = "sites[n_peer_workers=99]"\n')
    with pytest.raises(LeverError) as caught:
        load_levers([path])
    message = str(caught.value)
    assert f"{path}: claim.sites: value ['sites[n_peer_workers=99]']" in message, message
    assert "selects none of the baseline's sites" in message, message
    assert "A, B, C" in message, f"the message lists the baseline's sites: {message}"


def test_claimable_outcomes_have_a_computation():
    for name in CLAIMABLE:
        assert OUTCOMES[name].value is not None, f"{name} can be computed from one replicate"
    assert "contacts_community_mean" in CLAIMABLE, "community contacts can be claimed"
    assert "met_on_ward_share" in CLAIMABLE, "first met on the ward can be claimed"


# --- the outcomes added for claims ----------------------------------------------------------


def test_community_contacts_and_first_met_on_the_ward_by_hand():
    """Two sites. Peer support (arm 1) at A: community contacts 0, 2, 4, first contacts
    on the ward, in the community, on the ward; at B: 1, first contact on the ward.
    Usual care (arm 0) has contacts that must not count."""
    people = {
        "site": np.array([0, 0, 0, 0, 1, 1]),
        "arm": np.array([1, 1, 1, 0, 1, 0]),
        "contacts_community": np.array([0, 2, 4, 9, 1, 9]),
        "first_contact_setting": np.array([1, 2, 1, 0, 1, 0]),
    }
    r = Results(("A", "B"), {"contacts_community_mean": 7 / 4}, {}, people)
    contacts, ward = OUTCOMES["contacts_community_mean"], OUTCOMES["met_on_ward_share"]
    assert contacts.of_trial(r) == 7 / 4, "the trial's own mean over the peer support arm"
    assert list(contacts.of_sites(r)) == pytest.approx([2.0, 1.0]), "A: (0+2+4)/3, B: 1"
    assert ward.of_trial(r) == pytest.approx(3 / 4), "3 of the 4 peer support participants"
    assert list(ward.of_sites(r)) == pytest.approx([2 / 3, 1.0]), "A: 2 of 3, B: 1 of 1"


def test_outcome_values_agree_with_the_trials_own_statistics(scenario):
    from simulation import run

    r = run(scenario, 5)
    values = outcome_values(r).set_index(["outcome", "scope"])["value"]
    assert values[("contacts_community_mean", "overall")] == r.trial["contacts_community_mean"]
    assert values[("engaged_share", "E")] == r.trial["engaged_share_E"], "per site, the trial's"
    assert ("readmit_2plus", "E") not in values.index, "per site it needs the dose: not given"


# --- the audit on small runs ----------------------------------------------------------------


def test_identical_whatif_gives_exactly_zero_and_no_change(tmp_path):
    path = _whatif(tmp_path, "", CLAIM_OK)
    table = audit(load_levers([path]), n_replicates=3)
    row = table.iloc[0]
    assert list(table.columns) == list(AUDIT_COLUMNS), "the audit's columns, in order"
    assert row["diff_mean"] == 0, f"identical runs: exactly 0: {row}"
    assert row["diff_sd"] == 0, f"identical runs: exactly 0 in every replicate: {row}"
    assert row["verdict"] == "no change", f"nothing moves: {row}"
    assert not row["moves"], f"nothing moves: {row}"
    assert row["n"] == 3, "3 paired replicates"


def test_change_at_one_site_leaves_another_exactly_as_it_was(tmp_path):
    """Sites never interact: more coordinator hours at F change nothing at E (common
    random numbers), and raise fidelity at F."""
    body = "[sites.F]\nsupervisor_h_per_week = 20.0\n"
    fidelity = 'outcome = "fidelity"\ndirection = "higher"\nmechanism = "M3: a -> b"\n'
    at_e = _whatif(tmp_path, body, fidelity + 'sites = "sites.E"\n', "at_e.toml")
    at_f = _whatif(tmp_path, body, fidelity + 'sites = "sites.F"\n', "at_f.toml")
    table = audit(load_levers([at_e, at_f]), n_replicates=3).set_index("whatif")
    assert table.loc["at_e", "verdict"] == "no change", f"E is untouched: {table.loc['at_e']}"
    assert table.loc["at_f", "verdict"] == "as claimed", f"F gains: {table.loc['at_f']}"
    assert table.loc["at_f", "diff_lo"] > 0, "the interval at F excludes 0 from above"


def test_support_for_8_weeks_lowers_community_contacts():
    lever = load_levers([LIBRARY_WHATIFS["whatif_support_8_weeks"]])
    row = audit(lever, n_replicates=4).iloc[0]
    assert row["outcome"] == "contacts_community_mean", "its claim: community contacts"
    assert row["direction"] == "lower", "its claim: lower"
    # 16 -> 8 weeks of support: more than a whole contact fewer per participant (measured
    # -1.57 [-1.65, -1.49] at 20 replicates); -0.5 leaves a wide margin.
    assert row["diff_hi"] < -0.5, f"fewer community contacts, beyond noise: {row}"
    assert row["diff_mean"] == pytest.approx(row["whatif_mean"] - row["base_mean"], abs=1e-12), (
        "the mean difference is the difference of the means (every replicate paired)"
    )
    assert row["verdict"] == "as claimed", f"moves as claimed: {row}"
    assert row["moves"], f"moves as claimed: {row}"


def test_site_claims_compare_the_mean_over_their_sites():
    lever = load_levers([LIBRARY_WHATIFS["whatif_remote_contacts_rural"]])[0]
    assert lever.sites == ("E", "G"), "the rural sites, chosen in the baseline"
    values = pd.DataFrame(
        {
            "scenario": ["enrich_trial"] * 4,
            "replicate": [0, 0, 1, 1],
            "scope": ["E", "G", "E", "G"],
            "outcome": ["engaged_share"] * 4,
            "value": [1.0, 3.0, 2.0, math.nan],
        }
    )
    got = claimed_values(lever, values, "enrich_trial")
    assert list(got) == [2.0, 2.0], "replicate 0: mean of 1 and 3; replicate 1: E alone"


def test_nhs_hosting_is_judged_at_the_sites_that_were_not_for_profit():
    lever = load_levers([LIBRARY_WHATIFS["whatif_nhs_hosting"]])[0]
    assert lever.sites == ("F", "G"), (
        "sites[host=not_for_profit] is chosen in the baseline: the what-if makes them NHS"
    )


def test_decimals_follow_the_unit_and_the_interval():
    assert decimals("share of the peer support arm") == 3, "shares: 3 decimals"
    assert decimals("contacts per participant of the peer support arm") == 2, "contacts: 2"
    assert decimals("0-1 index", 0.0002) == 4, "a half-width of 0.0002 needs 4 decimals"
    assert decimals("0-1 index", 1e-9) == 5, "at most 5"


# --- THE lever audit --------------------------------------------------------------------


@pytest.fixture(scope="module")
def library_audit() -> pd.DataFrame:
    """The library's audit at the docs page's settings: seed 20241, 20 paired replicates
    (11 what-ifs and 2 baselines, 260 runs side by side in this process)."""
    return audit(seed=DOCS_SEED, n_replicates=DOCS_REPLICATES).set_index("whatif", drop=False)


def test_the_marked_whatifs_are_library_whatifs():
    assert set(NOT_YET) <= set(LIBRARY_WHATIFS), f"unknown names in NOT_YET: {set(NOT_YET)}"


@pytest.mark.parametrize(
    "whatif",
    [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=NOT_YET[name]))
        if name in NOT_YET
        else name
        for name in sorted(LIBRARY_WHATIFS)
    ],
)
def test_every_whatif_moves_its_claimed_outcome_beyond_noise(library_audit, whatif):
    row = library_audit.loc[whatif]
    assert row["n"] == DOCS_REPLICATES, f"{whatif}: every replicate paired"
    side = "diff_lo > 0" if row["direction"] == "higher" else "diff_hi < 0"
    assert row["moves"], (
        f"{whatif} claims {row['outcome']} ({row['scope']}) {row['direction']}, so its 95% "
        f"interval should exclude 0 ({side}) at {DOCS_REPLICATES} paired replicates, seed "
        f"{DOCS_SEED}; got {row['diff_mean']:+.4g} [{row['diff_lo']:+.4g}, "
        f"{row['diff_hi']:+.4g}] ({row['verdict']}). Mechanism: {row['mechanism']}"
    )


def test_docs_levers_page_is_current(library_audit):
    want = docs_page(library_audit.reset_index(drop=True), DOCS_REPLICATES, DOCS_SEED)
    have = DOCS_PAGE.read_text(encoding="utf-8")
    assert have == want, (
        f"docs/levers.md differs from what the audit gives now; regenerate with `{REGENERATE}`"
    )


# --- peersim levers -----------------------------------------------------------------------


def test_peersim_levers_writes_the_table_and_a_manifest(tmp_path, capsys):
    out = tmp_path / "audit"
    whatif = LIBRARY_WHATIFS["whatif_support_8_weeks"]
    status = main(["levers", str(whatif), "-n", "2", "-w", "1", "--out", str(out)])
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert sorted(p.name for p in out.iterdir()) == [
        "levers.csv",
        "levers.md",
        "manifest.json",
        "values.parquet",
    ], "the files the README lists"
    table = pd.read_csv(out / "levers.csv")
    assert list(table.columns) == list(AUDIT_COLUMNS), "levers.csv has the audit's columns"
    assert table.loc[0, "whatif"] == "whatif_support_8_weeks", "the what-if given"
    assert table.loc[0, "baseline"] == "enrich_trial", "against the file it extends"
    md = (out / "levers.md").read_text(encoding="utf-8")
    assert md.startswith("| what-if | baseline | claimed outcome (unit) |"), md
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["master_seed"] == DOCS_SEED, "the default seed"
    assert manifest["replicates"] == 2, "-n 2"
    assert manifest["levers"]["whatifs"][0]["claim"]["outcome"] == "contacts_community_mean", (
        "the manifest records the claim audited"
    )
    assert "community contacts after discharge (contacts per participant" in printed, printed
    assert not (tmp_path / "audit.partial").exists(), "the partial folder is gone"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(["-n", "1"], "must be at least 2", id="one-replicate"),
        pytest.param([str(ENRICH)], "claim: missing", id="no-claim"),
    ],
)
def test_peersim_levers_mistakes_exit_2_and_write_nothing(tmp_path, capsys, args, fragment):
    out = tmp_path / "audit"
    status = main(["levers", *args, "--out", str(out), "-w", "1"])
    err = capsys.readouterr().err
    assert status == 2, f"a user mistake exits 2: {err}"
    assert err.startswith("peersim: error: "), f"one error line: {err}"
    assert fragment in err, f"expected {fragment!r} in: {err}"
    assert not out.exists(), "nothing written"
    assert not (tmp_path / "audit.partial").exists(), "no partial folder either"


def test_peersim_levers_help_teaches(capsys):
    assert main(["levers", "--help"]) == 0
    text = capsys.readouterr().out
    for fragment in ("[claim]", "common random numbers", "as claimed", "examples:", "-n"):
        assert fragment in text, f"--help should explain {fragment!r}"
