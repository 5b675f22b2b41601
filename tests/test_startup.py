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
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
HEAVY = (
    "mesa", "pandas", "matplotlib", "networkx", "scipy", "pyarrow", "distributed", "ema_workbench",
)  # fmt: skip

PROBE = """
import contextlib, io, json, sys
from analysis.cli import main
statuses = {}
for argv in (["--help"], ["schema"], ["validate", "scenarios/enrich_trial.toml"],
             ["run", "--help"], ["compare", "--help"], ["calibrate", "--help"],
             ["sensitivity", "--help"], ["decide", "--help"]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        statuses[" ".join(argv)] = main(argv)
heavy = sorted(m for m in HEAVY if m in sys.modules)
print(json.dumps({"statuses": statuses, "heavy": heavy}))
"""


def _probe(code: str) -> Any:
    """Run ``code`` in a fresh interpreter in the checkout; the JSON of its last line."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"the probe should run:\n{done.stderr}"
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.subprocess
def test_validate_schema_and_help_import_no_heavy_library() -> None:
    result = _probe(f"HEAVY = {HEAVY!r}\n{PROBE}")
    assert set(result["statuses"].values()) == {0}, (
        f"every command should succeed (exit 0): {result['statuses']}"
    )
    assert result["heavy"] == [], (
        f"validate, schema and --help should import none of {HEAVY}, but imported {result['heavy']}"
    )


RUN_PROBE = """
import json, sys
from scenarios.loader import load_scenario
from simulation import run, run_batch, replicate_seed
scenario = load_scenario(None)
run(scenario, 1)
run_batch(scenario, [replicate_seed(1, i) for i in range(2)])
print(json.dumps(sorted(m for m in ("mesa", "networkx", "scipy") if m in sys.modules)))
"""


@pytest.mark.subprocess
def test_simulating_imports_no_mesa() -> None:
    """``run`` and ``run_batch`` use ``Delivery``, the model without Mesa, so a run
    pays for neither Mesa nor the scipy and networkx it pulls in (the Mesa model,
    ``PeerSupportModel``, is for the app and exploration)."""
    loaded = _probe(RUN_PROBE)
    assert loaded == [], f"a run should import none of mesa, networkx, scipy: {loaded}"


def test_the_mesa_model_gives_the_same_results_as_delivery() -> None:
    from scenarios.loader import load_scenario
    from simulation import PeerSupportModel, run

    scenario = load_scenario(None)
    model = PeerSupportModel(scenario, 5)
    while model.week < model.n_weeks:
        model.step()
    via_mesa, plain = model.results(0), run(scenario, 5)
    assert via_mesa.trial == plain.trial, "Mesa's clock and agents change no result"
    assert via_mesa.participants.equals(plain.participants), "participants identical too"
    assert len(model.peer_workers) == model.workers.n, "one Mesa agent per peer worker"
