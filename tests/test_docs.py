"""Docs that run: the ODD parameter table, the README commands and CI agree with the code.

- the parameter table in docs/ODD.md equals the parameter classes' names,
  defaults, units, grades, meanings and sources (regenerate it with
  ``uv run python -m scenarios.odd_table``);
- the assumed site attributes in docs/ODD.md equal the embedded ENRICH scenario;
- every ``uv run peersim`` command in the README runs as written and writes the
  files the README says it writes;
- ``.ci/run`` runs the README's test command verbatim.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from scenarios.loader import load_scenario
from scenarios.odd_table import (
    COLUMNS,
    configurations_markdown_table,
    format_default,
    parameter_rows,
    sites_markdown_table,
)

ROOT = Path(__file__).resolve().parents[1]
ODD = ROOT / "docs" / "ODD.md"
README = ROOT / "README.md"
CI = ROOT / ".ci" / "run"

# A cell boundary is a '|' not escaped as '\|'.
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def _table_after_header(text: str, header: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows of the one Markdown table in ``text`` whose header is ``header``."""
    lines = text.splitlines()
    want = [h.lower() for h in header]
    starts = [i for i, line in enumerate(lines) if _cells(line) == want]
    assert len(starts) == 1, f"expected exactly one table headed {header}, found {len(starts)}"
    rows = []
    for line in lines[starts[0] + 2 :]:
        if not line.startswith("|"):
            break
        cells = _cells(line, lower=False)
        assert len(cells) == len(header), f"row has {len(cells)} cells, not {len(header)}: {line}"
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


def _cells(line: str, lower: bool = True) -> list[str]:
    if not line.startswith("|"):
        return []
    parts = _CELL_SPLIT.split(line.strip())[1:-1]
    cells = [p.strip().replace("\\|", "|").strip("`") for p in parts]
    return [c.lower() for c in cells] if lower else cells


def _code_block_lines(text: str) -> list[str]:
    """Non-empty, non-comment lines inside fenced code blocks."""
    out, inside = [], False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            inside = not inside
            continue
        if inside and line.strip() and not line.strip().startswith("#"):
            out.append(line.strip())
    return out


def test_odd_parameter_table_matches_code_defaults():
    documented = _table_after_header(ODD.read_text(), COLUMNS)
    expected = [{**row, "default": format_default(row["default"])} for row in parameter_rows()]
    doc_names = [r["name"] for r in documented]
    code_names = [r["name"] for r in expected]
    assert doc_names == code_names, (
        "docs/ODD.md parameter names differ from the code: "
        f"missing {sorted(set(code_names) - set(doc_names))}, "
        f"extra {sorted(set(doc_names) - set(code_names))} "
        "(regenerate with `uv run python -m scenarios.odd_table`)"
    )
    for doc, code in zip(documented, expected, strict=True):
        for col in COLUMNS:
            assert doc[col] == code[col], (
                f"docs/ODD.md {code['name']}: {col} is {doc[col]!r}, code says {code[col]!r} "
                "(regenerate with `uv run python -m scenarios.odd_table`)"
            )


def test_enrich_scenario_uses_the_documented_defaults():
    # The ODD table documents the defaults as the ENRICH scenario's values.
    enrich = load_scenario(None)
    differ = [
        f"{row['name']}: default {row['default']!r}, enrich_trial.toml {value!r}"
        for row in parameter_rows()
        if (value := getattr(*_group_field(enrich, row["name"]))) != row["default"]
    ]
    assert not differ, "enrich_trial.toml departs from the documented defaults:\n" + "\n".join(
        differ
    )


def _group_field(scenario, dotted: str) -> tuple[object, str]:
    group, field = dotted.split(".")
    return getattr(scenario, group), field


def test_odd_site_table_matches_enrich_scenario():
    enrich = load_scenario(None)
    want = sites_markdown_table(enrich)
    assert want in ODD.read_text(), (
        "docs/ODD.md's assumed site attributes differ from the embedded ENRICH scenario "
        "(regenerate with `uv run python -m scenarios.odd_table --sites`)"
    )
    options = configurations_markdown_table(enrich)
    assert options.count("\n") == 1 + len(enrich.site_configurations.options), (
        "expected a header, a rule and a row per site configuration"
    )
    assert options in ODD.read_text(), (
        "docs/ODD.md's site configurations differ from the embedded ENRICH scenario "
        "(regenerate with `uv run python -m scenarios.odd_table --sites`)"
    )


def _readme_outputs(section: str = "What `peersim run` writes") -> dict[str, list[str]]:
    """File patterns listed in the README's ``section`` (a trial run's outputs, or
    "Planning a service" for a service's), each with the columns its bullet lists
    after "Columns:" (empty if none)."""
    text = README.read_text()
    match = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## )", text, re.M | re.S)
    assert match, f"README lacks the section '## {section}'"
    bullets = re.findall(r"^- (`[^`]+`.*?)(?=^- |^$)", match.group(1), re.M | re.S)
    outputs = {}
    for bullet in bullets:
        pattern = re.match(r"`([^`]+)`", bullet)
        assert pattern, f"README output bullet does not start with a `file`: {bullet!r}"
        _, _, after = bullet.partition("Columns:")
        outputs[pattern.group(1)] = re.findall(r"`([^`]+)`", after)
    assert outputs, "README's 'What `peersim run` writes' section names no files"
    return outputs


def _check_outputs(
    out: Path, scenario_path: Path | None = None, tags: tuple[str, ...] = ()
) -> None:
    scenario = load_scenario(scenario_path)
    sites = scenario.site_names
    section = "Planning a service" if scenario.mode == "service" else "What `peersim run` writes"
    for pattern, documented in _readme_outputs(section).items():
        found = sorted(out.glob(pattern))
        assert found, f"README says `peersim run` writes {pattern}; not found in {out}"
        if not documented:
            continue
        columns = [c for c in documented if "<site>" not in c]
        per_site = [c for c in documented if "<site>" in c]
        expected = set(columns) | {c.replace("<site>", s) for c in per_site for s in sites}
        expected |= set(tags)  # e.g. a posterior run's particle
        actual = set(pd.read_parquet(found[0]).columns)
        assert actual == expected, (
            f"{pattern}: README lists columns the file lacks {sorted(expected - actual)} "
            f"and omits columns it has {sorted(actual - expected)}"
        )


def _peersim_commands() -> list[str]:
    return [c for c in _code_block_lines(README.read_text()) if c.startswith("uv run peersim")]


def test_readme_has_peersim_commands():
    assert _peersim_commands(), "README has no `uv run peersim ...` command in a code block"


@pytest.mark.parametrize("command", _peersim_commands())
@pytest.mark.slow
@pytest.mark.subprocess
def test_readme_peersim_command_runs_as_written(command, tmp_path):
    argv = shlex.split(command)
    if "--out" not in argv:
        argv += ["--out", str(tmp_path)]  # keep the checkout clean
    done = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, (
        f"`{command}` exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    )
    if argv[3:4] == ["run"]:
        out = Path(argv[argv.index("--out") + 1])
        given = argv[4] if len(argv) > 4 and argv[4].endswith(".toml") else None
        tags = ("particle",) if "--posterior" in argv else ()
        _check_outputs(
            out if out.is_absolute() else ROOT / out, ROOT / given if given else None, tags
        )


def test_ci_runs_the_readme_test_command_verbatim():
    tests = [c for c in _code_block_lines(README.read_text()) if c.startswith("uv run pytest")]
    assert len(tests) == 1, f"README should give one test command, found {tests}"
    ci_lines = [line.strip() for line in CI.read_text().splitlines()]
    assert tests[0] in ci_lines, f".ci/run does not run the README's test command {tests[0]!r}"
