"""Shared fixtures: the default ENRICH scenario, loaded once per test session."""

from __future__ import annotations

import pytest

from scenarios.loader import load_scenario
from simulation import Scenario


@pytest.fixture(scope="session")
def scenario() -> Scenario:
    """The shipped ENRICH trial scenario (``scenarios/enrich_trial.toml``)."""
    return load_scenario(None)
