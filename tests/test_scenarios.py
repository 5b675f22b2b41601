"""The scenario loader: the default loads, and every kind of bad input is reported
as one ScenarioError naming the file, the dotted key, the value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from scenarios import ScenarioError, default_scenario_path, load_scenario
from simulation import Scenario

TINY = """\
name = "tiny"
description = "two small sites"

[trial]
dur_recruitment_weeks = 8
dur_followup_weeks = 12

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

[sites.rural]
host = "not_for_profit"
geography = "rural"
dur_travel_min = 60.0
n_supervisors = 1
supervisor_h_per_week = 4.0
team_preparation = 0.3
share_records_access = 0.0
n_peer_workers = 2
n_caseload_cap = 10
n_participants = 30
"""


def write(tmp_path: Path, text: str, name: str = "scenario.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def edited(old: str, new: str, count: int = 1) -> str:
    """TINY with the first ``count`` occurrences of ``old`` replaced by ``new``."""
    assert old in TINY, f"test bug: {old!r} is not in the tiny scenario"
    return TINY.replace(old, new, count)


def load_error(path: Path) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    return caught.value


# --- the files that should load ---------------------------------------------------------


def test_default_scenario_loads_as_the_enrich_trial() -> None:
    scenario = load_scenario(None)
    assert isinstance(scenario, Scenario), "load_scenario(None) should return a Scenario"
    assert scenario.name == "enrich_trial", f"default scenario name: got {scenario.name!r}"
    assert len(scenario.sites) == 7, f"ENRICH has 7 sites, got {scenario.site_names}"
    assert scenario.n_participants == 590, (
        f"ENRICH recruited 590 participants, got {scenario.n_participants}"
    )


def test_default_path_is_a_file_inside_the_package_and_loads_the_same() -> None:
    path = default_scenario_path()
    assert path.is_file(), f"default scenario file should exist at {path}"
    assert path.parent == Path(__file__).resolve().parent.parent / "scenarios", (
        f"default scenario should live in the scenarios package, got {path}"
    )
    assert load_scenario(path) == load_scenario(None), "explicit default path != None"
    assert load_scenario(str(path)) == load_scenario(None), "str path should work like Path"


def test_small_file_loads_and_unset_values_take_the_defaults(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, TINY))
    assert scenario.site_names == ["urban", "rural"], f"site order kept: {scenario.site_names}"
    assert scenario.trial.dur_recruitment_weeks == 8, "value from the file should be used"
    assert scenario.trial.dur_support_after_discharge_weeks == 16, (
        "a key missing from the file should take the schema default (16 weeks)"
    )
    assert scenario.sites["rural"].honorary_contracts is False, "optional site field default"


def test_integer_is_accepted_where_a_float_is_expected(tmp_path: Path) -> None:
    scenario = load_scenario(
        write(tmp_path, edited("dur_travel_min = 20.0", "dur_travel_min = 20"))
    )
    assert scenario.sites["urban"].dur_travel_min == 20.0, "TOML 20 should load as 20.0 min"


def test_missing_name_defaults_to_the_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, edited('name = "tiny"\n', ""), name="my_site.toml")
    assert load_scenario(path).name == "my_site", "name should default to the file stem"


def test_scenario_objects_are_frozen() -> None:
    scenario = load_scenario(None)
    with pytest.raises(ValidationError, match="frozen"):
        scenario.name = "changed"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        scenario.trial.dur_recruitment_weeks = 1  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        scenario.sites["A"].n_peer_workers = 1  # type: ignore[misc]
    with pytest.raises(TypeError, match="frozen"):
        scenario.sites["Z"] = scenario.sites["A"]
    with pytest.raises(TypeError, match="frozen"):
        del scenario.sites["A"]
    assert list(scenario.sites) == list("ABCDEFG"), "the sites must be unchanged after refusals"


# --- bad values: each must name file, key, value and what is allowed -------------------

BAD_VALUES = [
    pytest.param(
        "dur_recruitment_weeks = 8",
        "dur_recruitmnt_weeks = 8",
        ["trial.dur_recruitmnt_weeks", "value 8", "unknown key", "did you mean"],
        ["dur_recruitment_weeks"],
        id="unknown-key-with-suggestion",
    ),
    pytest.param(
        "[sites.urban]",
        "[sites.urban]\nhonorary_contract = true",
        ["sites.urban.honorary_contract", "value true", "unknown key"],
        ["did you mean honorary_contracts?"],
        id="unknown-site-key",
    ),
    pytest.param(
        "n_peer_workers = 2",
        'n_peer_workers = "two"',
        ["sites.urban.n_peer_workers", "value 'two'", "wrong type (a string)"],
        ["an integer, 1 to 500"],
        id="string-for-count",
    ),
    pytest.param(
        "n_supervisors = 1",
        "n_supervisors = 1.5",
        ["sites.urban.n_supervisors", "value 1.5", "wrong type (a float)"],
        ["an integer, 1 to 20"],
        id="float-for-count",
    ),
    pytest.param(
        "[trial]",
        "[mechanisms]\nm3_supervision = 1\n[trial]",
        ["mechanisms.m3_supervision", "value 1", "wrong type (an integer)"],
        ["true or false"],
        id="integer-for-switch",
    ),
    pytest.param(
        "n_peer_workers = 2",
        "n_peer_workers = 0",
        ["sites.urban.n_peer_workers", "value 0", "out of range"],
        ["an integer, 1 to 500"],
        id="count-below-range",
    ),
    pytest.param(
        "team_preparation = 1.0",
        "team_preparation = 1.5",
        ["sites.urban.team_preparation", "value 1.5", "out of range"],
        ["a number, 0 to 1"],
        id="share-above-range",
    ),
    pytest.param(
        "dur_followup_weeks = 12",
        "dur_followup_weeks = 0",
        ["trial.dur_followup_weeks", "value 0", "out of range"],
        ["an integer, 1 to 260"],
        id="duration-below-range",
    ),
    pytest.param(
        'host = "nhs"',
        'host = "NHS"',
        ["sites.urban.host", "value 'NHS'", "not one of the choices"],
        ["'nhs' or 'not_for_profit'"],
        id="unknown-choice",
    ),
    pytest.param(
        "n_participants = 30\n\n[sites.rural]",
        "\n[sites.rural]",
        ["sites.urban.n_participants", "missing", "required"],
        ["an integer, 0 to 100000"],
        id="missing-required-site-field",
    ),
]


@pytest.mark.parametrize(("old", "new", "says", "allowed"), BAD_VALUES)
def test_bad_value_names_file_key_value_and_allowed(
    tmp_path: Path, old: str, new: str, says: list[str], allowed: list[str]
) -> None:
    path = write(tmp_path, edited(old, new))
    error = load_error(path)
    message = str(error)
    assert message.startswith(f"{path}: "), f"message should start with the file: {message}"
    for part in [*says, *allowed]:
        assert part in message, f"message should contain {part!r}:\n{message}"
    assert len(error.problems) == 1, f"exactly one problem expected: {error.problems}"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = edited("n_peer_workers = 2", "n_peer_workers = 0")  # urban
    text = text.replace('host = "not_for_profit"', 'host = "charity"')  # rural
    text = text.replace("dur_followup_weeks = 12", "dur_folowup_weeks = 12")
    path = write(tmp_path, text)
    error = load_error(path)
    keys = ["sites.urban.n_peer_workers", "sites.rural.host", "trial.dur_folowup_weeks"]
    assert len(error.problems) == 3, f"three problems expected, got {error.problems}"
    for key in keys:
        assert any(key in p for p in error.problems), f"{key} should be reported: {error}"
    assert all(p.startswith(f"{path}: ") for p in error.problems), "each line names the file"
    assert str(error).startswith(f"{path}: 3 problems"), f"summary line expected: {error}"


def test_unknown_table_suggests_the_right_one(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, TINY + "\n[engagment]\nlogit_intercept = -1.0\n"))
    assert "engagment: value (a table): unknown key; did you mean engagement?" in str(error), (
        f"misspelt table should suggest 'engagement': {error}"
    )


def test_unknown_key_without_close_match_lists_the_valid_keys(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, edited("[trial]", "[trial]\nzzz = 1")))
    assert "trial.zzz" in str(error), f"key should be named: {error}"
    assert "valid keys here: dur_recruitment_weeks" in str(error), (
        f"with no close match, the valid keys of [trial] should be listed: {error}"
    )


def test_rule_across_fields_is_reported_with_its_table(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, edited("[trial]", "[trial]\nshare_psychotic = 0.9")))
    assert f"{tmp_path / 'scenario.toml'}: trial: share_psychotic + share_personality" in str(
        error
    ), f"the cross-field rule should name the [trial] table: {error}"


def test_scenario_without_sites_is_refused(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, 'name = "empty"\n'))
    assert "sites: missing: required" in str(error), f"no sites should be an error: {error}"


# --- files that cannot be read or parsed ----------------------------------------------


def test_malformed_toml_gives_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "x"\n[trial\ndur_followup_weeks = 3\n')
    message = str(load_error(path))
    assert message.startswith(f"{path}: line 2, column 7: invalid TOML"), (
        f"malformed TOML should give file, line and column: {message}"
    )


def test_duplicate_key_is_malformed_toml(tmp_path: Path) -> None:
    path = write(tmp_path, edited("[trial]", "[trial]\ndur_followup_weeks = 3"))
    message = str(load_error(path))
    assert f"{path}: line" in message, f"duplicate key should point at a line: {message}"
    assert "invalid TOML" in message, f"duplicate key is invalid TOML: {message}"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    assert str(load_error(path)) == f"{path}: no such scenario file", "missing file message"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert "is a directory" in str(load_error(tmp_path)), "a directory is not a scenario file"


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('description = "café"\n'.encode("latin-1"))
    assert "not UTF-8" in str(load_error(path)), "non-UTF-8 bytes should be reported as such"


# --- inheritance: extends, [sites.NAME], sites_remove, [[sites_where]] -------------------
#
# The parent of these what-ifs is TINY (sites "urban": NHS, "rural": not-for-profit).


def whatif(tmp_path: Path, text: str, name: str = "whatif.toml", parent: str = TINY) -> Path:
    """A what-if file extending TINY, written as parent.toml beside it."""
    write(tmp_path, parent, name="parent.toml")
    return write(tmp_path, 'extends = "parent.toml"\n' + text, name=name)


def test_whatif_overrides_only_what_it_names_and_inherits_the_rest(tmp_path: Path) -> None:
    parent = load_scenario(write(tmp_path, TINY, name="parent.toml"))
    path = whatif(
        tmp_path,
        "[trial]\ndur_support_after_discharge_weeks = 8\n"
        "dur_weekly_phase_weeks = 8\n\n[sites.rural]\nn_peer_workers = 5\n",
    )
    child = load_scenario(path)
    assert child.trial.dur_support_after_discharge_weeks == 8, "the child's value wins"
    assert child.trial.dur_recruitment_weeks == 8, "a value the child leaves out is the parent's"
    assert child.trial.dur_followup_weeks == 12, "the parent's other [trial] keys are kept"
    assert child.sites["rural"].n_peer_workers == 5, "[sites.rural] changes the named key"
    assert child.sites["rural"].model_copy(update={"n_peer_workers": 2}) == parent.sites["rural"], (
        "[sites.rural] should change only n_peer_workers; every other site key is inherited"
    )
    assert child.sites["urban"] == parent.sites["urban"], "a site the child does not name is kept"
    assert child.site_names == ["urban", "rural"], "the parent's site order is kept"


def test_name_and_description_are_not_inherited(tmp_path: Path) -> None:
    child = load_scenario(whatif(tmp_path, "", name="my_question.toml"))
    assert child.name == "my_question", f"name should default to the file name: {child.name!r}"
    assert child.description == "", "the parent's description should not carry over"
    named = load_scenario(whatif(tmp_path, 'name = "q"\ndescription = "why"\n'))
    assert (named.name, named.description) == ("q", "why"), "the child's own name and description"


def test_a_new_site_name_adds_a_complete_site_after_the_parents(tmp_path: Path) -> None:
    site = TINY.split("[sites.urban]\n")[1].split("\n\n")[0]
    child = load_scenario(whatif(tmp_path, f"[sites.suburb]\n{site}\n"))
    assert child.site_names == ["urban", "rural", "suburb"], "a new site is added at the end"
    assert child.n_participants == 90, "the new site's participants count"


def test_an_incomplete_new_site_names_the_child_and_the_likely_typo(tmp_path: Path) -> None:
    path = whatif(tmp_path, "[sites.Rural]\nn_peer_workers = 5\n")
    error = load_error(path)
    message = str(error)
    assert f"{path}: sites.Rural.host: missing: required" in message, (
        f"the missing keys of a new site should be named, with the what-if's file: {message}"
    )
    assert f"{path}: sites.Rural: a new site" in message, f"say the site is new: {message}"
    assert "did you mean sites.rural?" in message, f"suggest the parent's site: {message}"


def test_sites_remove_drops_parent_sites(tmp_path: Path) -> None:
    child = load_scenario(whatif(tmp_path, 'sites_remove = ["rural"]\n'))
    assert child.site_names == ["urban"], f"'rural' should be removed: {child.site_names}"


def test_sites_remove_then_redefine_starts_the_site_afresh(tmp_path: Path) -> None:
    error = load_error(
        whatif(tmp_path, 'sites_remove = ["rural"]\n[sites.rural]\nn_peer_workers = 3\n')
    )
    assert "sites.rural.host: missing" in str(error), (
        f"a removed site defined again inherits nothing, so must be complete: {error}"
    )


def test_sites_where_sets_every_matching_site(tmp_path: Path) -> None:
    text = """
[[sites_where]]
host = "not_for_profit"
[sites_where.set]
honorary_contracts = true
team_preparation = 0.9
"""
    child = load_scenario(whatif(tmp_path, text))
    assert child.sites["rural"].honorary_contracts, "the not-for-profit site should match"
    assert child.sites["rural"].team_preparation == 0.9, "every key of set is applied"
    assert not child.sites["urban"].honorary_contracts, "the NHS site should not match"
    assert child.sites["urban"].team_preparation == 1.0, "a non-matching site is unchanged"


def test_sites_where_conditions_all_must_hold_and_defaults_count(tmp_path: Path) -> None:
    text = """
[[sites_where]]
host = "not_for_profit"
geography = "urban"
[sites_where.set]
n_peer_workers = 9

[[sites_where]]
honorary_contracts = false      # left out of both sites: their default, false, counts
geography = "urban"
[sites_where.set]
n_caseload_cap = 4
"""
    error = load_error(whatif(tmp_path, text))
    assert len(error.problems) == 1, f"only the first entry should fail: {error.problems}"
    assert "sites_where[1]: matches no site" in str(error), f"no urban not-for-profit: {error}"
    assert "host = 'not_for_profit' and geography = 'urban'" in str(error), (
        f"the unmatched conditions should be shown: {error}"
    )
    fixed = text.replace(
        'geography = "urban"\n[sites_where.set]\nn_peer_workers',
        'geography = "rural"\n[sites_where.set]\nn_peer_workers',
        1,
    )
    child = load_scenario(whatif(tmp_path, fixed))
    assert child.sites["rural"].n_peer_workers == 9, "both conditions hold for 'rural'"
    assert child.sites["urban"].n_caseload_cap == 4, "a default value should satisfy a condition"
    assert child.sites["rural"].n_caseload_cap == 10, "'rural' fails geography = 'urban'"


def test_sites_where_without_conditions_applies_to_every_site(tmp_path: Path) -> None:
    child = load_scenario(
        whatif(tmp_path, "[[sites_where]]\n[sites_where.set]\nn_caseload_cap = 3\n")
    )
    assert {s.n_caseload_cap for s in child.sites.values()} == {3}, "every site should get 3"


def test_sites_where_applies_after_the_site_merge_and_in_file_order(tmp_path: Path) -> None:
    text = """
[sites.urban]
host = "not_for_profit"          # merged first: now both sites are not-for-profit

[[sites_where]]
host = "not_for_profit"
[sites_where.set]
host = "nhs"
share_records_access = 0.5

[[sites_where]]                  # sees the first entry's change
host = "nhs"
[sites_where.set]
n_caseload_cap = 7
"""
    child = load_scenario(whatif(tmp_path, text))
    for name, site in child.sites.items():
        assert site.host == "nhs", f"{name}: the first entry should make every site NHS"
        assert site.share_records_access == 0.5, f"{name}: the first entry's second key"
        assert site.n_caseload_cap == 7, f"{name}: the second entry should see the first's change"


def test_sites_where_in_a_file_without_extends_fills_in_sites(tmp_path: Path) -> None:
    text = edited("n_participants = 30\n\n[sites.rural]", "\n[sites.rural]")
    text = text.replace("n_participants = 30\n", "")
    text += "\n[[sites_where]]\n[sites_where.set]\nn_participants = 40\n"
    scenario = load_scenario(write(tmp_path, text))
    assert scenario.n_participants == 80, "sites_where should complete sites in a plain file"


SITES_WHERE_MISTAKES = [
    pytest.param(
        '[[sites_where]]\nhots = "nhs"\n[sites_where.set]\nn_caseload_cap = 3\n',
        ["sites_where[1].hots: value 'nhs': unknown key; did you mean host?"],
        id="misspelt-condition",
    ),
    pytest.param(
        '[[sites_where]]\nhost = "charity"\n[sites_where.set]\nn_caseload_cap = 3\n',
        [
            "sites_where[1].host: value 'charity': not one of the choices",
            "'nhs' or 'not_for_profit'",
        ],
        id="condition-not-a-choice",
    ),
    pytest.param(
        '[[sites_where]]\nhost = "nhs"\n[sites_where.set]\nhonorary_contract = true\n',
        [
            "sites_where[1].set.honorary_contract: value true: unknown key; "
            "did you mean honorary_contracts?"
        ],
        id="misspelt-set-key",
    ),
    pytest.param(
        "[[sites_where]]\n[sites_where.set]\nteam_preparation = 1.5\n",
        ["sites_where[1].set.team_preparation: value 1.5: out of range, allowed: a number, 0 to 1"],
        id="set-value-out-of-range",
    ),
    pytest.param(
        '[[sites_where]]\nhost = "nhs"\nhonorary_contracts = true\n',
        ["sites_where[1].set: missing: required"],
        id="no-set-table",
    ),
    pytest.param(
        '[sites_where]\nhost = "nhs"\n',
        ["sites_where: value (a table): wrong type (a table)", "[[sites_where]]"],
        id="single-table-not-array",
    ),
    pytest.param(
        '[[sites_where]]\ngeography = "urban"\nhost = "not_for_profit"\n[sites_where.set]\n'
        "n_caseload_cap = 3\n",
        [
            "sites_where[1]: matches no site: none of the 2 sites has geography = 'urban' and "
            "host = 'not_for_profit'"
        ],
        id="matches-no-site",
    ),
    pytest.param(
        'sites_remove = ["suburb"]\n',
        ["sites_remove: value 'suburb': no such site in the parent"],
        id="remove-unknown-site",
    ),
    pytest.param(
        'sites_remove = "rural"\n',
        ["sites_remove: value 'rural': wrong type (a string)", "an array of site names"],
        id="remove-not-an-array",
    ),
]


@pytest.mark.parametrize(("text", "says"), SITES_WHERE_MISTAKES)
def test_override_mistakes_name_the_file_and_entry(
    tmp_path: Path, text: str, says: list[str]
) -> None:
    path = whatif(tmp_path, text)
    error = load_error(path)
    assert len(error.problems) == 1, f"exactly one problem expected: {error.problems}"
    assert error.problems[0].startswith(f"{path}: "), f"the what-if should be named: {error}"
    for part in says:
        assert part in str(error), f"message should contain {part!r}:\n{error}"


def test_every_override_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = """
[trial]
dur_folowup_weeks = 3

[sites.rural]
n_peer_workers = 0

[[sites_where]]
hots = "nhs"
[sites_where.set]
n_caseload_cap = 3

[[sites_where]]
host = "nhs"
[sites_where.set]
honorary_contract = true
"""
    error = load_error(whatif(tmp_path, text))
    keys = [
        "trial.dur_folowup_weeks",
        "sites.rural.n_peer_workers",
        "sites_where[1].hots",
        "sites_where[2].set.honorary_contract",
    ]
    assert len(error.problems) == 4, f"four problems expected: {error.problems}"
    for key in keys:
        assert any(key in p for p in error.problems), f"{key} should be reported: {error}"


def test_sites_remove_in_a_file_that_extends_nothing_is_refused(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, 'sites_remove = ["rural"]\n' + TINY))
    assert "sites_remove" in str(error), f"sites_remove needs a parent: {error}"
    assert "extends no other" in str(error), f"the reason should be given: {error}"


def test_top_level_key_written_inside_a_table_says_where_it_belongs(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, TINY + 'extends = "parent.toml"\n'))
    assert "sites.rural.extends: value 'parent.toml': unknown key" in str(error), f"{error}"
    assert "extends belongs at the top, above the first [table] header" in str(error), (
        f"a TOML key after a [table] header belongs to that table; say so: {error}"
    )


def test_extends_chains_through_several_files_in_other_folders(tmp_path: Path) -> None:
    write(tmp_path, TINY, name="base.toml")
    (tmp_path / "questions").mkdir()
    write(
        tmp_path / "questions",
        'extends = "../base.toml"\n[sites.urban]\nn_peer_workers = 4\n',
        name="middle.toml",
    )
    (tmp_path / "questions" / "more").mkdir()
    path = write(
        tmp_path / "questions" / "more",
        'extends = "../middle.toml"\n[sites.rural]\nn_peer_workers = 6\n',
        name="leaf.toml",
    )
    leaf = load_scenario(path)
    assert leaf.sites["urban"].n_peer_workers == 4, "the middle file's change is inherited"
    assert leaf.sites["rural"].n_peer_workers == 6, "the leaf's own change applies"
    assert leaf.trial.dur_recruitment_weeks == 8, "the base file's value reaches the leaf"
    assert leaf.name == "leaf", "the leaf's name is its own file name"


def test_value_inherited_from_a_parent_names_the_parent(tmp_path: Path) -> None:
    bad_parent = edited("n_peer_workers = 2", "n_peer_workers = 0")
    path = whatif(tmp_path, "[trial]\ndur_followup_weeks = 0\n", parent=bad_parent)
    error = load_error(path)
    parent = tmp_path / "parent.toml"
    assert f"{parent}: sites.urban.n_peer_workers: value 0: out of range" in str(error), (
        f"the parent's bad value should name the parent: {error}"
    )
    assert f"{path}: trial.dur_followup_weeks: value 0: out of range" in str(error), (
        f"the child's bad value should name the child: {error}"
    )
    assert str(error).startswith(f"{path}: 2 problems"), (
        f"the header names the file loaded: {error}"
    )


def test_child_overriding_a_bad_parent_value_is_valid(tmp_path: Path) -> None:
    bad_parent = edited("n_peer_workers = 2", "n_peer_workers = 0")
    child = load_scenario(
        whatif(tmp_path, "[sites.urban]\nn_peer_workers = 3\n", parent=bad_parent)
    )
    assert child.sites["urban"].n_peer_workers == 3, "the merged result is what is validated"


def test_rule_across_keys_names_the_file_that_broke_it(tmp_path: Path) -> None:
    path = whatif(tmp_path, "[trial]\nshare_personality = 0.7\n")
    error = load_error(path)
    assert str(error).startswith(f"{path}: trial: share_psychotic + share_personality"), (
        f"the child set the value that broke the rule: {error}"
    )


def test_missing_parent_names_the_extending_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, 'extends = "absent.toml"\n')
    error = load_error(path)
    assert str(error) == (
        f"{path}: extends: value 'absent.toml': no such scenario file "
        f"(looked for {tmp_path / 'absent.toml'})"
    ), f"missing parent message: {error}"


def test_missing_library_parent_points_at_the_library_copy(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, 'extends = "enrich_trial.toml"\n'))
    assert f"the library's enrich_trial.toml is {default_scenario_path()}" in str(error), (
        f"a library file name should point at the library's copy: {error}"
    )


def test_extends_must_be_a_path(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "extends = 3\n"))
    assert "extends: value 3: wrong type (an integer)" in str(error), f"wrong type: {error}"


def test_misspelt_extends_is_suggested(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, 'extend = "parent.toml"\n'))
    assert "extend: value 'parent.toml': unknown key; did you mean extends?" in str(error), (
        f"'extend' should suggest 'extends': {error}"
    )


@pytest.mark.parametrize("length", [1, 2, 3], ids=["self", "two-files", "three-files"])
def test_circular_extends_is_an_error_naming_the_files(tmp_path: Path, length: int) -> None:
    names = [f"f{i}.toml" for i in range(length)]
    for i, name in enumerate(names):
        write(tmp_path, f'extends = "{names[(i + 1) % length]}"\n', name=name)
    error = load_error(tmp_path / names[0])
    message = str(error)
    assert "files extend each other in a circle" in message, f"a circle should be named: {message}"
    for name in names:
        assert str(tmp_path / name) in message, f"{name} should be named in: {message}"


def test_unreadable_parent_reports_the_parents_problem(tmp_path: Path) -> None:
    path = whatif(tmp_path, "", parent='name = "x"\n[trial\n')
    message = str(load_error(path))
    assert message.startswith(f"{tmp_path / 'parent.toml'}: line 2, column 7: invalid TOML"), (
        f"the parent's TOML error should name the parent with line and column: {message}"
    )


def test_scenario_parent_and_library() -> None:
    from scenarios import library, scenario_parent

    shipped = library()
    assert shipped["enrich_trial"] == default_scenario_path(), "the library holds enrich_trial"
    assert scenario_parent(shipped["enrich_trial"]) is None, "enrich_trial extends nothing"
    assert scenario_parent(shipped["whatif_honorary_contracts"]) == default_scenario_path(), (
        "a what-if's parent should be enrich_trial.toml beside it"
    )


def test_loader_docstring_example_loads(tmp_path: Path) -> None:
    import scenarios.loader

    doc = scenarios.loader.__doc__ or ""
    example = doc.split("::\n\n")[1].split("\n\nThe rules:")[0]
    example = "\n".join(line.removeprefix("    ") for line in example.splitlines())
    (tmp_path / "enrich_trial.toml").write_bytes(default_scenario_path().read_bytes())
    scenario = load_scenario(write(tmp_path, example, name="example.toml"))
    assert scenario.trial.dur_support_after_discharge_weeks == 26, "the [trial] change"
    assert scenario.sites["F"].n_peer_workers == 6, "the [sites.F] change"
    assert scenario.sites["G"].honorary_contracts, "the [[sites_where]] change"
