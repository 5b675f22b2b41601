"""Fast start (issue 10, item 9): the commands that only read or describe files import
none of the heavy libraries, which cost seconds where bytecode is not cached.

``peersim validate``, ``schema`` and ``--help`` run in one fresh interpreter (a
library imported by any of them stays in ``sys.modules``), which then reports the
heavy modules loaded. The timings themselves are ``benchmarks/startup_bench.py``'s.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("mesa", "pandas", "matplotlib", "networkx", "scipy", "pyarrow", "distributed")

PROBE = """
import contextlib, io, json, sys
from analysis.cli import main
statuses = {}
for argv in (["--help"], ["schema"], ["validate", "scenarios/enrich_trial.toml"],
             ["run", "--help"], ["compare", "--help"], ["calibrate", "--help"],
             ["sensitivity", "--help"]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        statuses[" ".join(argv)] = main(argv)
heavy = sorted(m for m in HEAVY if m in sys.modules)
print(json.dumps({"statuses": statuses, "heavy": heavy}))
"""


@pytest.mark.subprocess
def test_validate_schema_and_help_import_no_heavy_library() -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{PROBE}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"the probe should run:\n{done.stderr}"
    result = json.loads(done.stdout.splitlines()[-1])
    assert set(result["statuses"].values()) == {0}, (
        f"every command should succeed (exit 0): {result['statuses']}"
    )
    assert result["heavy"] == [], (
        f"validate, schema and --help should import none of {HEAVY}, but imported {result['heavy']}"
    )
