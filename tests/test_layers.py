"""The layers point down only (simulation < scenarios < calibration < analysis), the
command line and the app are leaves, and the model never imports the app's libraries:
the import-linter contracts in pyproject.toml, checked on every test run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# lint-imports in a fresh interpreter (about a second: fast tier).
pytestmark = pytest.mark.subprocess

REPO = Path(__file__).resolve().parent.parent
# The `lint-imports` console script, run by this interpreter (no PATH lookup).
_LINT_IMPORTS = (
    "import sys; from importlinter.cli import lint_imports_command; "
    "sys.exit(lint_imports_command())"
)


def test_import_contracts_hold():
    done = subprocess.run(
        [sys.executable, "-c", _LINT_IMPORTS, "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, (
        "an import breaks a layer contract in pyproject.toml [tool.importlinter] "
        f"(expected every contract KEPT):\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
    )
    assert "0 broken" in done.stdout, f"expected '0 broken' in:\n{done.stdout[-2000:]}"
