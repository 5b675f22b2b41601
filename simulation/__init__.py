"""The peersim model and its one boundary, ``run(scenario, seed) -> Results``.

The names below are loaded on first use (PEP 562), not when the package is: a
module that needs only ``simulation.params`` or ``simulation.outputs`` (``peersim
validate``, ``schema``, ``--help``, a worker process arming its parent watch)
does not pay for Mesa, pandas and scipy, seconds where bytecode is not cached.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simulation.mesa_model import PeerSupportModel
    from simulation.model import Delivery, run, run_batch
    from simulation.params import Scenario
    from simulation.results import Results
    from simulation.rng import DEFAULT_SEED, replicate_seed

# Each name and the module that defines it.
_EXPORTS = {
    "DEFAULT_SEED": "simulation.rng",
    "Delivery": "simulation.model",
    "PeerSupportModel": "simulation.mesa_model",
    "Results": "simulation.results",
    "Scenario": "simulation.params",
    "replicate_seed": "simulation.rng",
    "run": "simulation.model",
    "run_batch": "simulation.model",
}

__all__ = [
    "DEFAULT_SEED",
    "Delivery",
    "PeerSupportModel",
    "Results",
    "Scenario",
    "replicate_seed",
    "run",
    "run_batch",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
