"""A calibration problem and the function its workers run for one parameter set.

``simulate_summary(problem, values)`` is the model pyabc calls (through
``calibration.inference``) for one particle: it sets the free parameters in the
base scenario, simulates ``problem.replicates`` trials side by side
(``simulation.run_batch``), extracts each replicate's target statistics and
summarises them. It is a module-level function of picklable arguments, so it runs
on any executor of ``simulation.executors`` (this process, a local pool, Dask), and
it imports neither pyabc nor pandas' tables.

Seeds: a particle's replicates are seeded from the master seed and the parameter
values themselves (``particle_seeds``), so the same parameter set always gives
the same simulated statistics, whoever evaluates it and in whatever order, while
different parameter sets get independent random numbers.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from pydantic import ValidationError

from calibration.priors import PriorSet, apply_parameters
from calibration.targets import TargetSet
from simulation import Scenario, run_batch


@dataclass(frozen=True)
class Problem:
    """What to fit: a base scenario, targets bound to it, priors of the free
    parameters, replicates per parameter set and the master seed."""

    scenario: Scenario
    targets: TargetSet
    priors: PriorSet
    replicates: int
    seed: int

    def __post_init__(self) -> None:
        if self.replicates < 1:
            raise ValueError(f"replicates must be at least 1 (got {self.replicates})")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0 (got {self.seed})")


def particle_seeds(
    seed: int, values: Mapping[str, float], replicates: int
) -> list[np.random.SeedSequence]:
    """Seeds of a parameter set's replicates: ``SeedSequence([seed, *digest],
    spawn_key=(r,))`` with a digest of the (sorted, exactly represented) values."""
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(values):
        digest.update(path.encode())
        digest.update(struct.pack("<d", float(values[path])))
    words = np.frombuffer(digest.digest(), dtype="<u4").tolist()
    return [np.random.SeedSequence([seed, *words], spawn_key=(r,)) for r in range(replicates)]


def simulate_summary(problem: Problem, values: Mapping[str, float]) -> dict[str, float]:
    """Summary statistics of one parameter set (see ``TargetSet.summarise``).

    A parameter set the scenario schema refuses (a cross-field rule) gives NaN
    statistics, hence an infinite distance: it is rejected, as if the prior were
    truncated to valid scenarios.
    """
    try:
        scenario = apply_parameters(problem.scenario, values)
    except ValidationError:
        return problem.targets.summarise([])
    results = run_batch(scenario, particle_seeds(problem.seed, values, problem.replicates))
    return problem.targets.summarise([problem.targets.row(r) for r in results])
