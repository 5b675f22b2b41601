"""docs/tutorial.md runs as written: every command in its code blocks, in order.

The tutorial writes its outputs under ``class/``; the test sends them to a
temporary folder instead (the only change it makes to a command), so later
commands read what earlier ones wrote, as in class.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "tutorial.md"


def _commands() -> list[str]:
    out, inside = [], False
    for line in TUTORIAL.read_text().splitlines():
        if line.strip().startswith("```"):
            inside = not inside
            continue
        if inside and line.strip() and not line.strip().startswith("#"):
            out.append(line.strip())
    return out


def test_tutorial_covers_the_session():
    """The class runs the trial, reads outputs, asks a what-if and reads a
    sensitivity result: each step has at least one command."""
    commands = _commands()
    for needed in ("peersim run", "peersim compare", "peersim sensitivity", "python -c"):
        assert any(needed in c for c in commands), f"expected a `{needed}` command in the tutorial"
    assert all(c.startswith("uv run ") for c in commands), (
        f"expected every tutorial command to start with `uv run`: {commands}"
    )


@pytest.mark.slow
@pytest.mark.subprocess
def test_every_tutorial_command_runs_in_order(tmp_path):
    """Each command exits 0 in sequence, and the outputs the text points the
    class to exist."""
    for command in _commands():
        argv = [arg.replace("class/", f"{tmp_path}/") for arg in shlex.split(command)]
        done = subprocess.run(
            argv, cwd=ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL
        )
        assert done.returncode == 0, (
            f"`{command}` exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
    for path in (
        "trial/trial.parquet",
        "trial/site_weeks.parquet",
        "trial/figures",
        "compare/comparison.csv",
        "sensitivity/report.md",
    ):
        assert (tmp_path / path).exists(), f"expected the tutorial to have written class/{path}"
    assert not (ROOT / "class").exists(), "expected no class/ folder left in the checkout"
