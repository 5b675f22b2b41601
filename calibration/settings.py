"""How a calibration samples: its settings and their defaults (no pyabc import, so
that ``peersim calibrate --help`` answers at once)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulation.rng import DEFAULT_SEED

DEFAULT_POPULATION = 500
DEFAULT_GENERATIONS = 10
DEFAULT_REPLICATES = 8
# Generations at the epsilon floor after the first one there: each refines the same
# posterior (importance sampling), raising its effective sample size.
DEFAULT_REFINE = 2
# Simulated trials of each kind in the fit report.
DEFAULT_REPORT_REPLICATES = 200


@dataclass(frozen=True)
class Settings:
    """How to sample: particles per generation, the most generations in all,
    replicates per particle, the master seed, the epsilon floor (None: the 95%
    sampling-error threshold of ``calibration.distance.acceptance_threshold``) and
    how many more generations to run at the floor once it is reached."""

    population: int = DEFAULT_POPULATION
    generations: int = DEFAULT_GENERATIONS
    replicates: int = DEFAULT_REPLICATES
    seed: int = DEFAULT_SEED
    min_epsilon: float | None = None
    refine: int = DEFAULT_REFINE

    def __post_init__(self) -> None:
        for name in ("population", "generations", "replicates"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1 (got {value!r})")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a whole number >= 0 (got {self.seed!r})")
        if self.min_epsilon is not None and not self.min_epsilon >= 0:
            raise ValueError(f"min_epsilon must be >= 0 (got {self.min_epsilon})")
        if isinstance(self.refine, bool) or not isinstance(self.refine, int) or self.refine < 0:
            raise ValueError(f"refine must be a whole number >= 0 (got {self.refine!r})")

    def as_dict(self) -> dict[str, Any]:
        return {
            "population": self.population,
            "generations": self.generations,
            "replicates": self.replicates,
            "seed": self.seed,
            "min_epsilon": self.min_epsilon,
            "refine": self.refine,
        }


def duration_text(seconds: float) -> str:
    """A duration as people read it in progress lines and reports: seconds,
    minutes or hours."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
