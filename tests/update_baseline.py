"""Write the golden baseline ``tests/baseline.json`` from the current model.

Run it deliberately, only when a change to the model's output is intended:

    uv run python tests/update_baseline.py

then review the diff of ``tests/baseline.json`` and commit it with the change.
``tests/test_baseline.py`` recomputes the same summary and fails if it differs.

The summary is the mean, over ``N_REPLICATES`` replicates with seeds
``replicate_seed(MASTER_SEED, i)``, of a fixed set of trial statistics, plus the
SHA-256 of replicate 0's participants table and of the scenario itself.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scenarios.loader import load_scenario
from simulation import Scenario, replicate_seed, run

BASELINE = Path(__file__).with_name("baseline.json")
MASTER_SEED = 2024
N_REPLICATES = 10
TRIAL_STATS: tuple[str, ...] = (
    "n_ps",
    "n_uc",
    "allocated_share",
    "met_share",
    "engaged_share",
    "contacts_community_mean",
    "readmit_ps",
    "readmit_uc",
    "itt_or",
    "n_2plus",
    "readmit_2plus",
)
SITE_STATS: tuple[str, ...] = ("engaged_share", "fidelity")
UPDATE_COMMAND = "uv run python tests/update_baseline.py"


def table_sha256(table: pd.DataFrame) -> str:
    """SHA-256 of a table's content as CSV, floats to 12 significant digits.

    Twelve digits, not all seventeen, so that last-bit differences between
    platforms' maths libraries do not change the hash while any real change does.
    """
    text = table.to_csv(index=False, float_format="%.12g", lineterminator="\n")
    return hashlib.sha256(text.encode()).hexdigest()


def scenario_sha256(scenario: Scenario) -> str:
    """SHA-256 of the validated scenario, to tell a scenario edit from a model change."""
    return hashlib.sha256(scenario.model_dump_json().encode()).hexdigest()


def summary(scenario: Scenario) -> dict[str, Any]:
    """Means of the baseline statistics over the baseline replicates, and the hash."""
    stats = [f"trial.{s}" for s in TRIAL_STATS] + [
        f"site.{name}.{s}" for name in scenario.sites for s in SITE_STATS
    ]
    values: dict[str, list[float]] = {k: [] for k in stats}
    participants_sha256 = ""
    for i in range(N_REPLICATES):
        result = run(scenario, replicate_seed(MASTER_SEED, i))
        for key in stats:
            kind, *rest = key.split(".")
            name = rest[0] if kind == "trial" else f"{rest[1]}_{rest[0]}"
            values[key].append(float(result.trial[name]))
        if i == 0:
            participants_sha256 = table_sha256(result.participants)
    means = {k: float(np.mean(v)) for k, v in values.items()}
    non_finite = [k for k, v in means.items() if not math.isfinite(v)]
    if non_finite:
        raise ValueError(f"baseline statistics must be finite; these are not: {non_finite}")
    return {
        "scenario": scenario.name,
        "scenario_sha256": scenario_sha256(scenario),
        "master_seed": MASTER_SEED,
        "n_replicates": N_REPLICATES,
        "means": means,
        "participants_sha256_replicate_0": participants_sha256,
    }


def main() -> None:
    data = summary(load_scenario(None))
    BASELINE.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(f"wrote {BASELINE} ({len(data['means'])} statistics)")


if __name__ == "__main__":
    main()
