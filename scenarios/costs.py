"""Unit costs files: the user's prices that turn the model's resources into money.

The model counts resources itself (hours by use, sessions, peer workers starting,
readmissions; ``site_weeks``, ODD 7.14); what an hour or a readmission costs is the
user's to say, with its source. A costs file is TOML::

    currency = "GBP"
    description = "..."

    [peer_worker_hour]
    value = 20.0
    unit = "GBP per hour"
    source = "where the figure comes from"

with one table per unit cost (``UNIT_COSTS``): ``peer_worker_hour`` and
``coordinator_hour`` are required, the others optional (a cost not given is not
counted, and the output says so). Each table needs ``value`` (at least 0),
``unit`` (exactly the unit ``UNIT_COSTS`` gives, with the file's currency, so that
a figure per day or in another currency cannot pass for one per hour) and
``source`` (not empty). Readmissions are costed either per readmission
(``readmission``) or per bed-day (``bed_day``) times ``length_of_stay``, the mean
days in hospital per readmission, not both; ``length_of_stay`` alone gives
bed-days without costing them. Anything else is refused in the house format
(``FILE: key: value VALUE: what is wrong, allowed: ...``) before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from scenarios.inputs import InputError, Problem, read_toml
from scenarios.messages import validation_problems


@dataclass(frozen=True)
class UnitCost:
    """One kind of unit cost: its key, its unit (``{currency}`` filled in from the
    file) and what it prices."""

    key: str
    unit: str
    meaning: str
    required: bool = False


UNIT_COSTS: tuple[UnitCost, ...] = (
    UnitCost(
        "peer_worker_hour",
        "{currency} per hour",
        "a peer worker's contracted hour (pay and on-costs), unused hours included",
        required=True,
    ),
    UnitCost(
        "coordinator_hour",
        "{currency} per hour",
        "a peer worker coordinator's hour",
        required=True,
    ),
    UnitCost(
        "travel_hour",
        "{currency} per hour",
        "travel expenses per hour travelled by peer workers and coordinators, on top of pay",
    ),
    UnitCost(
        "training_per_new_peer_worker",
        "{currency} per new peer worker",
        "training a peer worker starting in post (the first ones and replacements)",
    ),
    UnitCost("readmission", "{currency} per readmission", "one readmission to hospital"),
    UnitCost("bed_day", "{currency} per bed-day", "one inpatient bed-day"),
)
LENGTH_OF_STAY_UNIT = "days per readmission"
UNITS: dict[str, str] = {c.key: c.unit for c in UNIT_COSTS} | {
    "length_of_stay": LENGTH_OF_STAY_UNIT
}


class CostsError(InputError):
    """A costs file that cannot be read or is not valid."""


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Priced(_Table):
    """One unit cost as written."""

    value: float = Field(ge=0, description="the cost, in the unit given")
    unit: Annotated[str, Field(min_length=1)] = Field(description="the unit of the value")
    source: Annotated[str, Field(min_length=1)] = Field(description="where the value comes from")


class Stay(_Table):
    """The mean length of stay of a readmission, for bed-days."""

    value: float = Field(gt=0, description="mean days in hospital per readmission")
    unit: Annotated[str, Field(min_length=1)] = Field(description="the unit of the value")
    source: Annotated[str, Field(min_length=1)] = Field(description="where the value comes from")


class CostsFile(_Table):
    """A costs file as written."""

    currency: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z]{3}$")] = Field(
        description="the currency of every value, a three-letter code such as GBP"
    )
    description: str = ""
    peer_worker_hour: Priced
    coordinator_hour: Priced
    travel_hour: Priced | None = None
    training_per_new_peer_worker: Priced | None = None
    readmission: Priced | None = None
    bed_day: Priced | None = None
    length_of_stay: Stay | None = None


@dataclass(frozen=True)
class Costs:
    """A checked costs file: unit costs by key (``None`` where not given)."""

    path: Path
    currency: str
    description: str
    values: dict[str, float | None]
    sources: dict[str, str]
    length_of_stay_days: float | None

    def value(self, key: str) -> float:
        """The unit cost ``key``, 0 where the file does not give it."""
        return self.values.get(key) or 0.0

    @property
    def readmission_cost(self) -> float | None:
        """What one readmission costs: per readmission, or bed-days times length of
        stay; ``None`` if the file prices neither."""
        per_readmission, per_day = self.values.get("readmission"), self.values.get("bed_day")
        if per_readmission is not None:
            return per_readmission
        if per_day is not None and self.length_of_stay_days is not None:
            return per_day * self.length_of_stay_days
        return None

    @property
    def not_given(self) -> list[str]:
        """The optional unit costs the file does not give (not counted)."""
        missing = [c.key for c in UNIT_COSTS if self.values.get(c.key) is None]
        if self.readmission_cost is not None:  # costed one way; the other is no gap
            missing = [k for k in missing if k not in ("readmission", "bed_day")]
        return missing

    def to_record(self) -> dict[str, Any]:
        """What ``from_record`` restores (a resumed comparison keeps its prices)."""
        return {
            "path": str(self.path),
            "currency": self.currency,
            "description": self.description,
            "values": self.values,
            "sources": self.sources,
            "length_of_stay_days": self.length_of_stay_days,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Costs:
        return cls(
            Path(record["path"]),
            str(record["currency"]),
            str(record["description"]),
            {k: (None if v is None else float(v)) for k, v in record["values"].items()},
            {k: str(v) for k, v in record["sources"].items()},
            None if record["length_of_stay_days"] is None else float(record["length_of_stay_days"]),
        )


def load_costs(path: Path) -> Costs:
    """The checked costs file at ``path``; raises ``CostsError`` naming every problem."""
    path = Path(path)
    data = read_toml(path, "costs", CostsError)
    try:
        parsed = CostsFile.model_validate(data)
    except ValidationError as e:
        raise CostsError(path, validation_problems(e, CostsFile, path, data)) from None
    problems = _consistency(parsed, path)
    if problems:
        raise CostsError(path, problems)
    values: dict[str, float | None] = {}
    sources: dict[str, str] = {}
    for c in UNIT_COSTS:
        table = getattr(parsed, c.key)
        values[c.key] = None if table is None else table.value
        if table is not None:
            sources[c.key] = table.source
    stay = parsed.length_of_stay
    if stay is not None:
        sources["length_of_stay"] = stay.source
    return Costs(
        path,
        parsed.currency,
        parsed.description,
        values,
        sources,
        None if stay is None else stay.value,
    )


def _consistency(parsed: CostsFile, path: Path) -> list[Problem]:
    """Units as the file's currency says, and one way of costing readmissions."""
    problems = []
    for key, unit in UNITS.items():
        table = getattr(parsed, key)
        expected = unit.format(currency=parsed.currency)
        if table is not None and table.unit != expected:
            problems.append(
                Problem(
                    path, f"{key}.unit", "not the unit of this cost", table.unit, repr(expected)
                )
            )
    if parsed.readmission is not None and parsed.bed_day is not None:
        problems.append(
            Problem(
                path,
                "bed_day",
                "readmission is costed already (per readmission); giving bed_day too would "
                "count it twice",
                allowed="readmission or bed_day with length_of_stay, not both",
            )
        )
    if parsed.bed_day is not None and parsed.length_of_stay is None:
        problems.append(
            Problem(
                path,
                "length_of_stay",
                "missing: required with bed_day (the mean days in hospital per readmission)",
                allowed=f"a table with value (> 0), unit {LENGTH_OF_STAY_UNIT!r} and source",
            )
        )
    return problems
