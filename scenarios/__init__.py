"""Scenario files: the ENRICH trial default, the library of ready what-ifs, and the
loader that resolves their inheritance (``extends``) and validates them, and a
what-if's ``[claim]`` (``load_claim``, ``scenarios.claims``)."""

from scenarios.loader import (
    ScenarioError,
    default_scenario_path,
    library,
    load_claim,
    load_scenario,
    scenario_parent,
)

__all__ = [
    "ScenarioError",
    "default_scenario_path",
    "library",
    "load_claim",
    "load_scenario",
    "scenario_parent",
]
