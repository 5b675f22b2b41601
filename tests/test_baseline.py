"""Golden baseline: the default scenario's output has not changed unnoticed.

The model is deterministic given its seed, so the means recorded in
``tests/baseline.json`` must be reproduced to floating-point noise. The relative
tolerance of 1e-9 allows only last-bit differences between platforms' maths
libraries (a real change to the model moves these means by far more). If a
change to the model or to ``scenarios/enrich_trial.toml`` is intended, rerun
``uv run python tests/update_baseline.py`` and commit the new baseline with it.
"""

from __future__ import annotations

import json
import math

import pytest
from update_baseline import BASELINE, UPDATE_COMMAND, scenario_sha256, summary

REL_TOL = 1e-9
ABS_TOL = 1e-12  # for statistics whose baseline is exactly zero


@pytest.fixture(scope="module")
def recorded() -> dict:
    assert BASELINE.exists(), f"{BASELINE} is missing; create it with `{UPDATE_COMMAND}`"
    return json.loads(BASELINE.read_text())


@pytest.fixture(scope="module")
def current(scenario) -> dict:
    return summary(scenario)


def test_baseline_scenario_is_unchanged(scenario, recorded):
    """The default scenario is the one the baseline was recorded for, so a
    failure below means the model changed, not the scenario file."""
    found = scenario_sha256(scenario)
    assert found == recorded["scenario_sha256"], (
        f"scenarios/enrich_trial.toml changed since the baseline was recorded "
        f"(scenario sha256 {found}, baseline {recorded['scenario_sha256']}); if intended, "
        f"run `{UPDATE_COMMAND}` and commit tests/baseline.json"
    )


def test_baseline_statistics_are_reproduced(recorded, current):
    """Every recorded mean over the baseline replicates is reproduced within
    1e-9 relative, and the set of statistics is the same."""
    assert (recorded["master_seed"], recorded["n_replicates"]) == (
        current["master_seed"],
        current["n_replicates"],
    ), "baseline seeds differ from update_baseline.py's; run the update command"
    assert set(current["means"]) == set(recorded["means"]), (
        f"baseline statistics differ: new {sorted(set(current['means']) - set(recorded['means']))},"
        f" gone {sorted(set(recorded['means']) - set(current['means']))}; "
        f"if intended, run `{UPDATE_COMMAND}`"
    )
    changed = {
        k: (recorded["means"][k], v)
        for k, v in current["means"].items()
        if not math.isclose(v, recorded["means"][k], rel_tol=REL_TOL, abs_tol=ABS_TOL)
    }
    assert not changed, (
        "model output changed (statistic: (baseline, now)): "
        + ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(changed.items()))
        + f"; if the change is intended, run `{UPDATE_COMMAND}` and commit tests/baseline.json"
    )


def test_baseline_participants_table_is_reproduced(recorded, current):
    """Replicate 0's whole participants table, not just its means, is unchanged
    (floats compared to 12 significant digits through the hash)."""
    key = "participants_sha256_replicate_0"
    assert current[key] == recorded[key], (
        f"replicate 0's participants table changed (sha256 {current[key]}, baseline "
        f"{recorded[key]}); if intended, run `{UPDATE_COMMAND}` and commit tests/baseline.json"
    )
