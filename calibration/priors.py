"""Priors of the free parameters, and how a parameter set changes a scenario.

The file format (TOML): one ``[[prior]]`` entry per free parameter::

    [[prior]]
    parameter = "ward.p_first_contact_per_week_max"   # GROUP.FIELD or sites.SITE.FIELD
    distribution = "uniform"                          # uniform | normal | lognormal
    lower = 0.2                                       # uniform: lower and upper
    upper = 1.0
    reason = "why this range: what is known, what is assumed"

``normal`` takes ``mean`` and ``sd``, ``lognormal`` takes ``median`` and ``sigma``
(the SD of the log); both may be truncated with ``lower`` and/or ``upper``, and
must be wherever the parameter's allowed range (from the ``Scenario`` schema) is
bounded on that side: a prior may not put weight on values the model refuses.
Only real-valued parameters can be calibrated (not counts or switches); every
prior needs a ``reason``.

Inside pyabc a lognormal parameter is sampled as its log (named ``log(PATH)``), so
that the perturbation kernel works on the scale the prior is defined on; the
posterior files hold natural-scale values.

The scenario's site configuration (which sites are not-for-profit hosted and which
rural, ``[site_configurations]``) is a free input too::

    [[prior]]
    parameter = "site_configuration"
    distribution = "choice"                           # equal prior weight on each
    options = ["one_each_one_both", "two_nfp_one_rural"]   # the scenario's, in order
    reason = "..."

It is sampled as an index, uniform on [0, number of options) so that pyabc's
kernel can perturb it; option ``floor(index)`` applies (``apply_parameters``).
The options must be exactly the scenario's, in its order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from calibration.files import PriorsError
from scenarios.inputs import NOT_GIVEN, Problem, read_toml
from scenarios.messages import validation_problems
from simulation.params import Scenario
from simulation.paths import PathError, get_value, parse_path

if TYPE_CHECKING:
    import pyabc
    from scipy.stats._distn_infrastructure import rv_continuous_frozen

DEFAULT_PRIORS_FILE = "enrich.toml"
DISTRIBUTIONS: tuple[str, ...] = ("uniform", "normal", "lognormal", "choice")
_KEYS: dict[str, tuple[str, ...]] = {
    "uniform": ("lower", "upper"),
    "normal": ("mean", "sd", "lower", "upper"),
    "lognormal": ("median", "sigma", "lower", "upper"),
    "choice": ("options",),
}
# The pseudo-parameter choosing the scenario's site configuration (an index).
SITE_CONFIGURATION = "site_configuration"

Distribution = Literal["uniform", "normal", "lognormal", "choice"]


def default_priors_path() -> Path:
    """The ENRICH priors shipped inside the ``calibration`` package."""
    return Path(str(files("calibration") / "priors" / DEFAULT_PRIORS_FILE))


@dataclass(frozen=True)
class Bounds:
    """A parameter's allowed range from the schema; None where unbounded."""

    low: float | None = None
    low_strict: bool = False
    high: float | None = None
    high_strict: bool = False

    def text(self) -> str:
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        left = "(" if self.low is None or self.low_strict else "["
        right = ")" if self.high is None or self.high_strict else "]"
        return f"{left}{low}, {high}{right}"

    def admits(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_strict else value < self.low):
            return False
        return not (
            self.high is not None
            and (value >= self.high if self.high_strict else value > self.high)
        )


@dataclass(frozen=True)
class Prior:
    """One free parameter's prior, on the parameter's natural scale."""

    parameter: str
    distribution: Distribution
    reason: str
    lower: float | None = None
    upper: float | None = None
    mean: float | None = None
    sd: float | None = None
    median: float | None = None
    sigma: float | None = None
    options: tuple[str, ...] | None = None  # a choice: its options, index order

    def __post_init__(self) -> None:
        if self.distribution == "choice":  # an index, uniform on [0, number of options)
            assert self.options, "a choice needs options"
            object.__setattr__(self, "lower", 0.0)
            object.__setattr__(self, "upper", float(len(self.options)))

    @property
    def is_choice(self) -> bool:
        return self.distribution == "choice"

    def option(self, index: float) -> str:
        """The option an index value picks: ``floor(index)``, within range."""
        assert self.options is not None
        return self.options[min(max(math.floor(index), 0), len(self.options) - 1)]

    @property
    def abc_name(self) -> str:
        """The parameter's name inside pyabc (a lognormal is sampled as its log)."""
        return f"log({self.parameter})" if self.distribution == "lognormal" else self.parameter

    def to_natural(self, abc_value: float) -> float:
        return math.exp(abc_value) if self.distribution == "lognormal" else float(abc_value)

    def to_abc(self, value: float) -> float:
        return math.log(value) if self.distribution == "lognormal" else float(value)

    def _frozen(self) -> rv_continuous_frozen:
        """The scipy distribution of the pyabc-scale value."""
        from scipy import stats

        if self.distribution in ("uniform", "choice"):
            assert self.lower is not None
            assert self.upper is not None
            return stats.uniform(loc=self.lower, scale=self.upper - self.lower)
        if self.distribution == "normal":
            assert self.mean is not None
            assert self.sd is not None
            loc, scale, low, high = self.mean, self.sd, self.lower, self.upper
        else:
            assert self.median is not None
            assert self.sigma is not None
            loc, scale = math.log(self.median), self.sigma
            low = math.log(self.lower) if self.lower is not None and self.lower > 0 else None
            high = math.log(self.upper) if self.upper is not None else None
        if low is None and high is None:
            return stats.norm(loc=loc, scale=scale)
        a = -np.inf if low is None else (low - loc) / scale
        b = np.inf if high is None else (high - loc) / scale
        return stats.truncnorm(a, b, loc=loc, scale=scale)

    def rv(self) -> pyabc.RV:
        """The prior as a pyabc random variable (on the pyabc scale)."""
        import pyabc

        frozen = self._frozen()
        return pyabc.RV(frozen.dist.name, *frozen.args, **frozen.kwds)

    def pdf(self, values: np.ndarray) -> np.ndarray:
        """Density on the natural scale."""
        values = np.asarray(values, dtype=float)
        if self.distribution != "lognormal":
            return np.asarray(self._frozen().pdf(values))
        with np.errstate(divide="ignore", invalid="ignore"):
            out = self._frozen().pdf(np.log(values)) / values
        return np.where(values > 0, out, 0.0)

    def ppf(self, q: np.ndarray | float) -> np.ndarray:
        """Quantiles on the natural scale."""
        x = np.asarray(self._frozen().ppf(q), dtype=float)
        return np.exp(x) if self.distribution == "lognormal" else x

    def describe(self) -> str:
        if self.options is not None:
            return f"one of {len(self.options)} with equal weight: " + ", ".join(self.options)
        if self.distribution == "uniform":
            return f"uniform({self.lower:g}, {self.upper:g})"
        if self.distribution == "normal":
            text = f"normal(mean {self.mean:g}, sd {self.sd:g})"
        else:
            text = f"lognormal(median {self.median:g}, sigma {self.sigma:g})"
        if self.lower is not None or self.upper is not None:
            bottom = "0" if self.distribution == "lognormal" else "-inf"
            low = bottom if self.lower is None else f"{self.lower:g}"
            high = "inf" if self.upper is None else f"{self.upper:g}"
            text += f" truncated to [{low}, {high}]"
        return text

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"parameter": self.parameter, "distribution": self.distribution}
        for key in _KEYS[self.distribution]:
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class PriorSet:
    """The priors of one file."""

    priors: tuple[Prior, ...]
    path: Path | None = None
    description: str = ""

    @property
    def parameters(self) -> list[str]:
        return [p.parameter for p in self.priors]

    def __getitem__(self, parameter: str) -> Prior:
        for p in self.priors:
            if p.parameter == parameter:
                return p
        raise KeyError(parameter)

    def distribution(self) -> pyabc.Distribution:
        import pyabc

        return pyabc.Distribution(**{p.abc_name: p.rv() for p in self.priors})

    def from_abc(self, parameter: Mapping[str, float]) -> dict[str, float]:
        """Natural-scale values by parameter path from a pyabc parameter."""
        return {p.parameter: p.to_natural(float(parameter[p.abc_name])) for p in self.priors}

    def check_scenario(self, scenario: Scenario) -> None:
        """``PriorsError`` if a ``sites.SITE.FIELD`` prior names a site ``scenario`` lacks,
        or a site-configuration choice does not list exactly the scenario's options."""
        problems = []
        for i, p in enumerate(self.priors, start=1):
            if p.is_choice:
                offered = scenario.site_configurations
                names = offered.names if offered is not None else ()
                if p.options != names:
                    problems.append(
                        f"{self.path or '(priors)'}: prior[{i}] {p.parameter!r}.options: "
                        f"value {list(p.options or ())}: must be scenario {scenario.name!r}'s "
                        "site configurations, in its order: "
                        + (", ".join(names) if names else "it offers none")
                    )
                continue
            site = parse_path(p.parameter).sites
            if site is not None and site.name is not None and site.name not in scenario.sites:
                sites = list(scenario.sites)
                problems.append(
                    f"{self.path or '(priors)'}: prior[{i}] {p.parameter!r}.parameter: no site "
                    f"{site.name!r} in scenario {scenario.name!r}; its sites are {', '.join(sites)}"
                )
        if problems:
            raise PriorsError(self.path or "(priors)", problems)

    def as_dicts(self) -> list[dict[str, Any]]:
        return [p.as_dict() for p in self.priors]


def apply_parameters(scenario: Scenario, values: Mapping[str, float]) -> Scenario:
    """``scenario`` with the parameters at ``values`` (paths as in a priors file),
    validated afresh (``Scenario.with_values``). Raises ``pydantic.ValidationError``
    if the result is not a valid scenario (e.g. shares summing past 1).

    A ``site_configuration`` index picks the scenario's option ``floor(index)``
    first (``Scenario.configured``: made from the scenario's file again), and the
    other values apply to that; it is ignored by a scenario that offers no site
    configurations."""
    rest = {path: float(value) for path, value in values.items() if path != SITE_CONFIGURATION}
    # A scenario that states its sites' host and geography itself (no site
    # configurations, e.g. a region of its own sites) takes the other values only.
    if SITE_CONFIGURATION in values and scenario.site_configurations is not None:
        scenario = scenario.configured(configuration_name(scenario, values[SITE_CONFIGURATION]))
    return scenario.with_values(rest) if rest else scenario


def configuration_name(scenario: Scenario, index: float) -> str:
    """The site configuration of ``scenario`` that index value ``index`` picks."""
    offered = scenario.site_configurations
    if offered is None:
        raise ValueError(f"scenario {scenario.name!r} offers no site configurations")
    names = offered.names
    return names[min(max(math.floor(float(index)), 0), len(names) - 1)]


def get_parameter(scenario: Scenario, path: str) -> float:
    """The value of a parameter (path as in a priors file) in ``scenario``; the site
    configuration as the index of the one selected."""
    if path == SITE_CONFIGURATION:
        offered = scenario.site_configurations
        if offered is None:
            raise ValueError(f"scenario {scenario.name!r} offers no site configurations")
        return float(offered.names.index(offered.selected))
    return float(get_value(scenario, path))


def is_valid_scenario(scenario: Scenario, values: Mapping[str, float]) -> bool:
    try:
        apply_parameters(scenario, values)
    except ValidationError:
        return False
    return True


# --- loading -------------------------------------------------------------------------

Finite = Annotated[float, Field(allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Entry(BaseModel):
    # Strict: TOML is typed, so "0.5" for a number is a mistake, not something to coerce.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    parameter: str = Field(min_length=1, description="GROUP.FIELD or sites.SITE.FIELD")
    reason: str = Field(min_length=1, description="why this prior (a sentence or two)")


class UniformEntry(_Entry):
    distribution: Literal["uniform"]
    lower: Finite
    upper: Finite


class NormalEntry(_Entry):
    distribution: Literal["normal"]
    mean: Finite
    sd: Positive
    lower: Finite | None = None
    upper: Finite | None = None


class ChoiceEntry(_Entry):
    distribution: Literal["choice"]
    options: list[Annotated[str, Field(min_length=1)]] = Field(
        min_length=1, description="the scenario's site configurations, in its order"
    )


class LognormalEntry(_Entry):
    distribution: Literal["lognormal"]
    median: Positive = Field(description="the median, > 0")
    sigma: Positive = Field(description="the SD of the log")
    lower: NonNegative | None = Field(None, description="a lognormal is positive: lower >= 0")
    upper: Finite | None = None


PriorEntry = Annotated[
    UniformEntry | NormalEntry | LognormalEntry | ChoiceEntry, Field(discriminator="distribution")
]


class PriorsFile(BaseModel):
    """A priors file as written; ``load_priors`` checks it against the schema too."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    description: str = ""
    prior: list[PriorEntry] = Field(
        min_length=1, description="one [[prior]] table per free parameter, at least one"
    )


def load_priors(path: str | Path | None = None) -> PriorSet:
    """Read and check a priors file; ``None`` means the shipped ENRICH priors.

    Raises ``PriorsError`` listing every problem (file, entry, key, value, what is
    allowed, the closest valid names for a misspelt parameter).
    """
    source = default_priors_path() if path is None else Path(path)
    data = read_toml(source, "priors", PriorsError)
    problems: list[Problem | str] = []
    try:
        parsed = PriorsFile.model_validate(data)
        entries: list[Any] = list(parsed.prior)
    except ValidationError as e:
        problems += validation_problems(e, PriorsFile, source, data)
        # Check the entries that are well formed further, to report everything at once.
        given = data.get("prior")
        entries = [_entry_or_none(raw) for raw in given] if isinstance(given, list) else []
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries, start=1):
        if entry is None:
            continue
        key = f"prior[{i}] {entry.parameter!r}"
        problems += _entry_problems(source, key, entry)
        if entry.parameter in seen:
            problems.append(
                Problem(
                    source,
                    f"{key}.parameter",
                    f"already given by prior[{seen[entry.parameter]}], one prior per parameter",
                )
            )
        seen.setdefault(entry.parameter, i)
    if problems:
        raise PriorsError(source, problems)
    assert not problems  # hence the file validated
    priors = tuple(_prior(e) for e in parsed.prior)
    return PriorSet(priors, source, parsed.description)


def _prior(e: UniformEntry | NormalEntry | LognormalEntry | ChoiceEntry) -> Prior:
    if isinstance(e, ChoiceEntry):
        return Prior(e.parameter, e.distribution, e.reason, options=tuple(e.options))
    values = {k: getattr(e, k) for k in _KEYS[e.distribution]}
    return Prior(e.parameter, e.distribution, e.reason, **values)


_ENTRY = TypeAdapter(PriorEntry)


def _entry_or_none(
    raw: Any,
) -> UniformEntry | NormalEntry | LognormalEntry | ChoiceEntry | None:
    try:
        return _ENTRY.validate_python(raw)
    except ValidationError:
        return None


def _entry_problems(
    file: Path, key: str, entry: UniformEntry | NormalEntry | LognormalEntry | ChoiceEntry
) -> list[Problem]:
    """What the schema of one entry cannot say: the parameter is a real-valued field
    of the scenario, and the prior's support lies inside that field's range (or a
    choice is of the site configuration)."""

    def problem(at: str, what: str, value: Any = NOT_GIVEN, allowed: str = "") -> Problem:
        return Problem(file, f"{key}.{at}", what, value, allowed)

    if isinstance(entry, ChoiceEntry) or entry.parameter == SITE_CONFIGURATION:
        return _choice_problems(problem, entry)

    try:
        path = parse_path(entry.parameter)
    except PathError as e:
        return [problem("parameter", f"not a parameter: {e}", entry.parameter)]
    if path.sites is not None and path.sites.name is None:
        return [
            problem(
                "parameter",
                "a prior sets one value",
                entry.parameter,
                "GROUP.FIELD or sites.SITE.FIELD (one site by name)",
            )
        ]
    kind: Any = path.info.annotation
    if kind is not float:
        what = (
            "a mechanism is a switch"
            if path.group == "mechanisms"
            else "a whole number"
            if kind is int
            else "not a number"
        )
        return [
            problem(
                "parameter",
                f"{what}; only real-valued parameters can be calibrated",
                entry.parameter,
                "a float parameter",
            )
        ]
    low, high = entry.lower, entry.upper
    if low is not None and high is not None and low >= high:
        return [problem("upper", f"not above lower ({low:g})", high, "upper > lower")]
    return _support_problems(problem, entry.distribution, _bounds(path.info), low, high)


def _choice_problems(problem: Callable[..., Problem], entry: Any) -> list[Problem]:
    """A choice is of the site configuration, and the site configuration a choice."""
    if entry.parameter != SITE_CONFIGURATION:
        what = "only the site configuration is a choice"
        return [problem("parameter", what, entry.parameter, SITE_CONFIGURATION)]
    if not isinstance(entry, ChoiceEntry):
        return [problem("distribution", "the site configuration", entry.distribution, "choice")]
    if len(set(entry.options)) < len(entry.options):
        return [problem("options", "an option is given twice", entry.options)]
    return []


def _support_problems(
    problem: Callable[..., Problem],
    distribution: str,
    bounds: Bounds,
    low: float | None,
    high: float | None,
) -> list[Problem]:
    """The prior's support must lie inside what the model accepts."""
    allowed = f"within the parameter's allowed range {bounds.text()}"
    out = []
    required = f"missing: required because the parameter allows only {bounds.text()}"
    if low is None:
        if distribution == "normal" and bounds.low is not None:
            out.append(problem("lower", f"{required}; truncate the normal with lower (and upper)"))
        if distribution == "lognormal" and bounds.low is not None and bounds.low > 0:
            out.append(problem("lower", required))
    elif not bounds.admits(low):
        out.append(problem("lower", "outside the parameter's range", low, allowed))
    if high is None:
        if bounds.high is not None:
            out.append(problem("upper", f"{required}; truncate the {distribution} with upper"))
    elif not bounds.admits(high):
        out.append(problem("upper", "outside the parameter's range", high, allowed))
    return out


def _bounds(info: FieldInfo) -> Bounds:
    bounds = Bounds()
    for meta in info.metadata:
        if isinstance(meta, Ge):
            bounds = Bounds(float(meta.ge), False, bounds.high, bounds.high_strict)  # type: ignore[arg-type]
        elif isinstance(meta, Gt):
            bounds = Bounds(float(meta.gt), True, bounds.high, bounds.high_strict)  # type: ignore[arg-type]
        elif isinstance(meta, Le):
            bounds = Bounds(bounds.low, bounds.low_strict, float(meta.le), False)  # type: ignore[arg-type]
        elif isinstance(meta, Lt):
            bounds = Bounds(bounds.low, bounds.low_strict, float(meta.lt), True)  # type: ignore[arg-type]
    return bounds
