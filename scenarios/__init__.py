"""Scenario files: the ENRICH trial default and the loader that validates them."""

from scenarios.loader import ScenarioError, default_scenario_path, load_scenario

__all__ = ["ScenarioError", "default_scenario_path", "load_scenario"]
