"""The peersim model and its one boundary, ``run(scenario, seed) -> Results``."""

from simulation.model import PeerSupportModel, run, run_batch
from simulation.params import Scenario
from simulation.results import Results
from simulation.rng import DEFAULT_SEED, replicate_seed

__all__ = [
    "DEFAULT_SEED",
    "PeerSupportModel",
    "Results",
    "Scenario",
    "replicate_seed",
    "run",
    "run_batch",
]
