"""The one reader of input files and the one problem format (``scenarios.inputs``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from analysis.sensitivity_spec import SpecError
from calibration.files import PriorsError, TargetsError
from scenarios import ScenarioError
from scenarios.inputs import (
    MAX_INPUT_BYTES,
    InputError,
    Problem,
    closest_names,
    read_toml,
    show,
    suggest_among,
)


def read_error(path: Path, limit: int = MAX_INPUT_BYTES) -> InputError:
    with pytest.raises(InputError) as caught:
        read_toml(path, "scenario", limit=limit)
    return caught.value


def test_reads_a_toml_file(tmp_path: Path):
    path = tmp_path / "a.toml"
    path.write_text('name = "x"\n[trial]\nn = 3\n', encoding="utf-8")
    assert read_toml(path, "scenario") == {"name": "x", "trial": {"n": 3}}


def test_a_file_over_the_size_limit_is_refused(tmp_path: Path):
    path = tmp_path / "big.toml"
    path.write_bytes(b"# " + b"x" * 98 + b"\n")  # 101 bytes
    assert read_toml(path, "scenario", limit=101) == {}, "a file at the limit is read"
    error = read_error(path, limit=100)
    assert str(error) == f"{path}: 101 bytes: too large for a scenario file (at most 100)"


def test_the_default_limit_is_one_mebibyte(tmp_path: Path):
    path = tmp_path / "big.toml"
    path.write_bytes(b"#" * (1024 * 1024) + b"\n")
    assert "too large for a scenario file (at most 1048576)" in str(read_error(path))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_being_opened(tmp_path: Path):
    path = tmp_path / "pipe.toml"
    os.mkfifo(path)
    # Opening a FIFO with no writer would block: the test finishing shows it was not.
    error = read_error(path)
    assert str(error) == (
        f"{path}: not a regular file (a pipe, device or socket), not a scenario file"
    )


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_device_is_refused_not_read():
    error = read_error(Path("/dev/zero"))
    assert "/dev/zero: not a regular file" in str(error), "an endless device is not read"


def test_a_directory_and_a_missing_file_are_named(tmp_path: Path):
    assert str(read_error(tmp_path)) == f"{tmp_path}: is a directory, not a scenario file"
    gone = tmp_path / "gone.toml"
    assert str(read_error(gone)) == f"{gone}: no such scenario file"


def test_bad_utf8_names_the_byte(tmp_path: Path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'name = "caf\xe9"\n')
    assert str(read_error(path)) == (f"{path}: byte 11: not UTF-8 text (TOML files must be UTF-8)")


def test_bad_toml_names_line_and_column(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\nn = = 3\n', encoding="utf-8")
    message = str(read_error(path))
    assert message.startswith(f"{path}: line 2, column 5: invalid TOML: "), message


def test_every_file_error_is_an_input_error_of_its_own_kind(tmp_path: Path):
    gone = tmp_path / "gone.toml"
    for error, what in (
        (ScenarioError, "scenario"),
        (TargetsError, "targets"),
        (PriorsError, "priors"),
        (SpecError, "spec"),
    ):
        with pytest.raises(error) as caught:
            read_toml(gone, what, error)
        assert isinstance(caught.value, InputError)
        assert caught.value.problems == [f"{gone}: no such {what} file"]


def test_problem_lines_and_the_multi_problem_header():
    first = Problem("f.toml", "trial.n", "out of range", 0, "an integer, 1 to 9")
    second = Problem("f.toml", "engagment", "unknown key", {}, closest=("engagement",))
    assert str(first) == "f.toml: trial.n: value 0: out of range, allowed: an integer, 1 to 9"
    assert str(second) == (
        "f.toml: engagment: value (a table): unknown key; did you mean engagement?"
    )
    error = InputError("f.toml", [first, second])
    assert str(error) == f"f.toml: 2 problems\n  {first}\n  {second}"
    assert error.problems == [str(first), str(second)]
    assert str(InputError("f.toml", [first])) == str(first), "one problem: just its line"


def test_names_and_values_are_shown_as_toml_writes_them():
    assert closest_names("engagment", ["name", "engagement", "ward"]) == ["engagement"]
    assert suggest_among("zzz", ["a", "b"]) == "valid keys here: a, b"
    assert suggest_among("zzz", ["a", "b"], "allowed") == "allowed: a, b"
    assert show([True, 0.5, "x"]) == "[true, 0.5, 'x']"
    assert show({"scale": [1, 2]}) == "(a table)"
    assert show({"scale": [1, 2]}, inline_tables=True) == "{ scale = [1, 2] }"
    assert show("x" * 100) == repr("x" * 100)[:57] + "..."


# --- every file's schema problems go through the one formatter ---------------------------


def test_spec_schema_problems_name_file_key_value_and_closest(tmp_path: Path):
    from analysis.sensitivity_spec import parse_spec

    spec = tmp_path / "s.toml"
    data = {"outputs": ["engaged_share"], "morris": {"levls": 3}, "replicates": "x"}
    with pytest.raises(SpecError) as caught:
        parse_spec(data, spec)
    problems = caught.value.problems
    assert f"{spec}: morris.levls: value 3: unknown key; did you mean levels?" in problems
    assert f"{spec}: replicates: value 'x': wrong type (a string), allowed: an integer" in problems
    assert any(p.startswith(f"{spec}: scenario: missing: required") for p in problems), problems


def problems_of(load: Callable[[Path], object], path: Path, body: str) -> list[str]:
    """The problems ``load`` finds in a file holding ``body``."""
    path.write_text(body, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load(path)
    return caught.value.problems


def test_prior_distributions_are_a_discriminated_union(tmp_path: Path):
    from calibration.priors import load_priors

    path = tmp_path / "p.toml"
    body = (
        "[[prior]]\nparameter = 'ward.w_preparation'\nreason = 'r'\n"
        "[[prior]]\nparameter = 'ward.w_preparation'\ndistribution = 'uniform'\n"
        "lower = 0.1\nupper = 0.5\nmedian = 0.2\nreason = 'r'\n"
    )
    assert problems_of(load_priors, path, body) == [
        f"{path}: prior[1] 'ward.w_preparation'.distribution: missing: required, "
        "allowed: uniform, normal, lognormal, choice",
        f"{path}: prior[2] 'ward.w_preparation'.median: value 0.2: unknown key; "
        "valid keys here: parameter, reason, distribution, lower, upper",
    ], "each entry's keys are those of its distribution"


def test_target_observation_kinds_are_a_discriminated_union(tmp_path: Path):
    from calibration.targets import load_targets

    path = tmp_path / "t.toml"
    common = "statistic = 'met_share'\nsource = 's'\ngrade = 'T'\n"
    body = (
        f"[[target]]\nname = 'a'\n{common}count = 3\n"
        f"[[target]]\nname = 'b'\n{common}pattern = 'positive'\nse = 0.1\n"
    )
    assert problems_of(load_targets, path, body) == [
        f"{path}: target[1] 'a'.n: missing: required, allowed: an integer, >= 1 "
        "(participants in all)",
        f"{path}: target[2] 'b'.se: value 0.1: unknown key; "
        "valid keys here: name, statistic, weight, source, grade, note, pattern, value, interval",
    ], "a count needs n; a pattern takes no se"


def test_shipped_inputs_use_the_current_spelling(capsys: pytest.CaptureFixture[str]):
    from analysis.sensitivity_spec import load_spec
    from calibration.priors import load_priors
    from calibration.targets import load_targets
    from scenarios import library, load_scenario

    targets = load_targets(None)
    load_priors(None)
    load_spec(Path(__file__).resolve().parent.parent / "analysis" / "sensitivity_enrich.toml")
    for path in library().values():
        load_scenario(path)
    assert capsys.readouterr().err == "", "no old-spelling notes for the shipped files"
    assert targets["nfp_rural_sites_low"].settings["sites"] == (
        "sites[host=not_for_profit]",
        "sites[geography=rural]",
    )
