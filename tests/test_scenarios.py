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
