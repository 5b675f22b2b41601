"""The peersim model as the teaching app drives it, and the site controls it offers.

Mesa's controls (play, pause, step, reset) re-create a model from keyword
parameters. ``TeachingModel(seed=..., conditions=...)`` is that model: it builds
the scenario from the site conditions and holds a ``PeerSupportModel``, the one
model the command line also runs. Seed ``S`` gives replicate 0 of
``peersim run --seed S``, so a run seen in the app can be reproduced there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import mesa
import numpy as np
from pydantic import ValidationError

from scenarios.loader import load_scenario
from simulation import PeerSupportModel, Results, Scenario, replicate_seed
from simulation.paths import site_path
from simulation.rng import DEFAULT_SEED

__all__ = ["DEFAULT_SEED", "SITE_CONTROLS", "TeachingModel", "with_conditions"]

# Trials a model may run side by side: enough to see past chance, few enough to stay quick.
MAX_TRIALS = 20

# Site conditions by site name, then by `Site` field: {"F": {"host": "nhs"}}.
Conditions = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Control:
    """One site condition a student can change, in plain language."""

    field: str  # the `simulation.params.Site` field it sets
    label: str
    kind: Literal["select", "int", "float"]
    options: tuple[tuple[str, str], ...] = ()  # (value, label) of a select
    min: float = 0
    max: float = 1
    step: float = 1

    def option_label(self, value: str) -> str:
        return dict(self.options)[value]

    def option_value(self, label: str) -> str:
        return {text: value for value, text in self.options}[label]


SITE_CONTROLS: tuple[Control, ...] = (
    Control(
        "host",
        "Peer workers employed by",
        "select",
        options=(("nhs", "the NHS trust"), ("not_for_profit", "a not-for-profit organisation")),
    ),
    Control(
        "geography",
        "Area",
        "select",
        options=(
            ("urban", "urban"),
            ("rural", "rural: wards and group supervision harder to reach"),
        ),
    ),
    Control(
        "dur_travel_min", "Travel to a community meeting, one way (minutes)", "int", max=120, step=5
    ),
    Control("supervisor_h_per_week", "Coordinator hours per week", "int", max=40),
    Control(
        "team_preparation",
        "Team preparation (0 none - 1 full programme)",
        "float",
        max=1,
        step=0.1,
    ),
    Control("n_peer_workers", "Peer workers at the site", "int", min=1, max=12),
    Control("n_caseload_cap", "Most clients per peer worker", "int", min=1, max=30),
)
CONTROLLED_FIELDS: tuple[str, ...] = tuple(c.field for c in SITE_CONTROLS)


class ConditionsError(ValueError):
    """Site conditions that name an unknown site or field, or an invalid value."""


@cache
def enrich_scenario() -> Scenario:
    """The ENRICH trial scenario shipped with peersim, read once."""
    return load_scenario(None)


def site_conditions(scenario: Scenario) -> dict[str, dict[str, Any]]:
    """The controlled conditions of every site of ``scenario``."""
    return {
        name: {f: getattr(site, f) for f in CONTROLLED_FIELDS}
        for name, site in scenario.sites.items()
    }


def with_conditions(base: Scenario, conditions: Conditions) -> Scenario:
    """``base`` with the given site conditions, validated like a scenario file."""
    values: dict[str, Any] = {}
    for name, changes in conditions.items():
        if name not in base.sites:
            raise ConditionsError(f"no site {name!r}; the sites are {', '.join(base.sites)}")
        unknown = sorted(set(changes) - set(CONTROLLED_FIELDS))
        if unknown:
            raise ConditionsError(
                f"site {name}: {', '.join(unknown)} cannot be set here; "
                f"the site controls set {', '.join(CONTROLLED_FIELDS)}"
            )
        values.update({site_path(name, key): value for key, value in changes.items()})
    try:
        return base.with_values(values)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
        )
        raise ConditionsError(problems) from None


class TeachingModel(mesa.Model):
    """Simulated trials stepped a week at a time, built from keyword parameters.

    ``conditions`` changes the controlled site conditions of ``base`` (default:
    the ENRICH scenario). ``trials`` trials run side by side: trial ``i`` is
    replicate ``i`` of master seed ``seed``, as in ``peersim run``. The
    ``PeerSupportModel`` it holds, ``sim``, does all the work.
    """

    def __init__(
        self,
        seed: int = DEFAULT_SEED,
        conditions: Conditions | None = None,
        trials: int = 1,
        base: Scenario | None = None,
    ) -> None:
        if not 1 <= trials <= MAX_TRIALS:
            raise ConditionsError(f"trials must be 1-{MAX_TRIALS}, got {trials}")
        super().__init__(rng=seed)
        self.seed = seed
        self.n_trials = trials
        self.config = with_conditions(base or enrich_scenario(), conditions or {})
        self.sim = PeerSupportModel(self.config, [replicate_seed(seed, i) for i in range(trials)])
        self.running = self.week < self.n_weeks

    @property
    def week(self) -> int:
        """Weeks simulated so far."""
        return self.sim.week

    @property
    def n_weeks(self) -> int:
        """Weeks of delivery: recruitment, the last ward stay and its support."""
        return self.sim.n_weeks

    @property
    def site_names(self) -> tuple[str, ...]:
        return self.sim.site_names

    @property
    def trial_records(self) -> np.ndarray:
        """Per-site measures of the weeks so far, each trial's: (week, measure, trial,
        site), measures as in ``simulation.model.RECORDS``."""
        weeks, measures, _ = self.sim.records.shape
        shape = (weeks, measures, self.n_trials, len(self.site_names))
        return self.sim.records.reshape(shape)[: self.week]

    @property
    def records(self) -> np.ndarray:
        """Per-site measures of the weeks so far, averaged over the trials: (week,
        measure, site)."""
        return self.trial_records.mean(axis=2)

    @property
    def finished(self) -> bool:
        return self.week >= self.n_weeks

    def conditions(self) -> dict[str, dict[str, Any]]:
        """The controlled site conditions these trials run under."""
        return site_conditions(self.config)

    def parameters(self) -> dict[str, Any]:
        """The keyword parameters that re-create this model (what Mesa's Reset uses)."""
        return {"seed": self.seed, "conditions": self.conditions(), "trials": self.n_trials}

    def results(self) -> list[Results]:
        """Each trial's results, as ``peersim run`` gathers them; complete once
        delivery is over."""
        return [self.sim.results(r) for r in range(self.n_trials)]

    def step(self) -> None:
        """One week of delivery; nothing once delivery is over."""
        if not self.finished:
            self.sim.step()
        self.running = not self.finished
