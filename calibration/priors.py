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
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from calibration.files import Checker, PriorsError
from scenarios.inputs import read_toml, show, suggest_among
from simulation.params import PARAMETER_GROUPS, Scenario, Site

if TYPE_CHECKING:
    import pyabc
    from scipy.stats._distn_infrastructure import rv_continuous_frozen

DEFAULT_PRIORS_FILE = "enrich.toml"
DISTRIBUTIONS: tuple[str, ...] = ("uniform", "normal", "lognormal")
_KEYS: dict[str, tuple[str, ...]] = {
    "uniform": ("lower", "upper"),
    "normal": ("mean", "sd", "lower", "upper"),
    "lognormal": ("median", "sigma", "lower", "upper"),
}
_COMMON_KEYS = ("parameter", "distribution", "reason")
_TOP_LEVEL = ("description", "prior")

Distribution = Literal["uniform", "normal", "lognormal"]


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

        if self.distribution == "uniform":
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
        """``PriorsError`` if a ``sites.SITE.FIELD`` prior names a site ``scenario`` lacks."""
        problems = []
        for i, p in enumerate(self.priors, start=1):
            parts = p.parameter.split(".")
            if parts[0] == "sites" and parts[1] not in scenario.sites:
                sites = list(scenario.sites)
                problems.append(
                    f"{self.path or '(priors)'}: prior[{i}] {p.parameter!r}.parameter: no site "
                    f"{parts[1]!r} in scenario {scenario.name!r}; its sites are {', '.join(sites)}"
                )
        if problems:
            raise PriorsError(self.path or "(priors)", problems)

    def as_dicts(self) -> list[dict[str, Any]]:
        return [p.as_dict() for p in self.priors]


def apply_parameters(scenario: Scenario, values: Mapping[str, float]) -> Scenario:
    """``scenario`` with the parameters at ``values`` (paths as in a priors file),
    validated afresh. Raises ``pydantic.ValidationError`` if the result is not a
    valid scenario (e.g. a cross-field rule such as shares summing past 1)."""
    data = scenario.model_dump()
    for path, value in values.items():
        *parents, leaf = path.split(".")
        table = data
        for part in parents:
            table = table[part]
        if leaf not in table:
            raise KeyError(path)
        table[leaf] = float(value)
    return Scenario.model_validate(data)


def get_parameter(scenario: Scenario, path: str) -> float:
    """The value of a parameter (path as in a priors file) in ``scenario``."""
    obj: Any = scenario
    for part in path.split("."):
        obj = obj[part] if isinstance(obj, Mapping) else getattr(obj, part)
    return float(obj)


def is_valid_scenario(scenario: Scenario, values: Mapping[str, float]) -> bool:
    try:
        apply_parameters(scenario, values)
    except ValidationError:
        return False
    return True


# --- loading -------------------------------------------------------------------------


def load_priors(path: str | Path | None = None) -> PriorSet:
    """Read and check a priors file; ``None`` means the shipped ENRICH priors.

    Raises ``PriorsError`` listing every problem (file, entry, key, value, what is
    allowed, the closest valid names for a misspelt parameter).
    """
    source = default_priors_path() if path is None else Path(path)
    data = read_toml(source, "priors", PriorsError)
    problems: list[str] = []
    for key, value in data.items():
        if key not in _TOP_LEVEL:
            problems.append(
                f"{source}: {key}: value {show(value)}: unknown key; "
                f"{suggest_among(key, list(_TOP_LEVEL))}"
            )
    description = data.get("description", "")
    if not isinstance(description, str):
        problems.append(f"{source}: description: value {show(description)}: not a string")
        description = ""
    entries = data.get("prior")
    if (
        not isinstance(entries, list)
        or not entries
        or not all(isinstance(e, dict) for e in entries)
    ):
        problems.append(
            f"{source}: prior: {'missing' if entries is None else f'value {show(entries)}'}: "
            "at least one [[prior]] table is required"
        )
        raise PriorsError(source, problems)
    priors: list[Prior] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries, start=1):
        prior, entry_problems = _parse_prior(source, i, entry)
        problems += entry_problems
        if prior is None:
            continue
        if prior.parameter in seen:
            problems.append(
                f"{source}: prior[{i}] {prior.parameter!r}.parameter: already given by "
                f"prior[{seen[prior.parameter]}], one prior per parameter"
            )
        seen.setdefault(prior.parameter, i)
        priors.append(prior)
    if problems:
        raise PriorsError(source, problems)
    return PriorSet(tuple(priors), source, description)


def _parse_prior(path: Path, i: int, entry: dict[str, Any]) -> tuple[Prior | None, list[str]]:
    name = entry.get("parameter")
    c = Checker(path, f"prior[{i}] {name!r}" if isinstance(name, str) else f"prior[{i}]", entry)
    parameter = c.string("parameter", required=True, allowed="GROUP.FIELD or sites.SITE.FIELD")
    bounds = _parameter_bounds(c, parameter) if parameter is not None else None
    distribution = entry.get("distribution")
    if distribution not in DISTRIBUTIONS:
        if distribution is None:
            c.problem("distribution", f"missing: required, allowed: {', '.join(DISTRIBUTIONS)}")
        else:
            c.bad_value(
                "distribution", distribution, "not one of the choices", ", ".join(DISTRIBUTIONS)
            )
        c.unknown_keys([*_COMMON_KEYS, "lower", "upper", "mean", "sd", "median", "sigma"])
        c.string("reason", required=True, allowed="why this prior (a sentence or two)")
        return None, c.problems
    c.unknown_keys([*_COMMON_KEYS, *_KEYS[distribution]])
    reason = c.string("reason", required=True, allowed="why this prior (a sentence or two)")
    values: dict[str, float | None] = {}
    if distribution == "uniform":
        values["lower"] = c.number("lower", required=True)
        values["upper"] = c.number("upper", required=True)
    elif distribution == "normal":
        values["mean"] = c.number("mean", required=True)
        values["sd"] = c.number("sd", required=True, low=0.0, low_open=True)
    else:
        values["median"] = c.number("median", required=True, low=0.0, low_open=True)
        values["sigma"] = c.number("sigma", required=True, low=0.0, low_open=True)
    if distribution != "uniform":
        values["lower"] = c.number("lower", required=False)
        values["upper"] = c.number("upper", required=False)
    low, high = values.get("lower"), values.get("upper")
    if low is not None and high is not None and low >= high:
        c.bad_value("upper", high, f"not above lower ({low:g})", "upper > lower")
    if distribution == "lognormal" and low is not None and low < 0:
        c.bad_value("lower", low, "negative", "a lognormal is positive: lower >= 0")
    if bounds is not None and not c.problems:
        _check_support(c, distribution, bounds, values)
    if c.problems or parameter is None or reason is None:
        return None, c.problems
    return Prior(parameter=parameter, distribution=distribution, reason=reason, **values), []


def _check_support(
    c: Checker, distribution: str, bounds: Bounds, values: Mapping[str, float | None]
) -> None:
    """The prior's support must lie inside what the model accepts."""
    allowed = f"within the parameter's allowed range {bounds.text()}"
    low, high = values.get("lower"), values.get("upper")
    if low is None:
        if distribution == "normal" and bounds.low is not None:
            c.problem(
                "lower",
                f"missing: required because the parameter allows only {bounds.text()}; "
                "truncate the normal with lower (and upper)",
            )
        if distribution == "lognormal" and bounds.low is not None and bounds.low > 0:
            c.problem(
                "lower", f"missing: required because the parameter allows only {bounds.text()}"
            )
    elif not bounds.admits(low):
        c.bad_value("lower", low, "outside the parameter's range", allowed)
    if high is None:
        if bounds.high is not None:
            c.problem(
                "upper",
                f"missing: required because the parameter allows only {bounds.text()}; "
                f"truncate the {distribution} with upper",
            )
    elif not bounds.admits(high):
        c.bad_value("upper", high, "outside the parameter's range", allowed)


def _parameter_bounds(c: Checker, parameter: str) -> Bounds | None:
    """The schema field's bounds; records a problem if the path is not a calibratable
    parameter (unknown group or field, not real-valued)."""
    parts = parameter.split(".")
    groups = [g for g in PARAMETER_GROUPS if g != "mechanisms"]
    if parts[0] == "sites":
        if len(parts) != 3:
            c.bad_value("parameter", parameter, "not a site parameter", "sites.SITE.FIELD")
            return None
        model: type[BaseModel] = Site
        field_name = parts[2]
    elif len(parts) == 2 and parts[0] in groups:
        model = Scenario.model_fields[parts[0]].annotation  # type: ignore[assignment]
        field_name = parts[1]
    else:
        if len(parts) == 2 and parts[0] == "mechanisms":
            c.bad_value(
                "parameter", parameter, "a mechanism is a switch", "a real-valued parameter"
            )
            return None
        hint = suggest_among(parts[0], [*groups, "sites"])
        c.bad_value(
            "parameter",
            parameter,
            "not a parameter" + (f" ({hint})" if hint.startswith("did you mean") else ""),
            f"GROUP.FIELD with GROUP one of {', '.join(groups)}, or sites.SITE.FIELD",
        )
        return None
    info = model.model_fields.get(field_name)
    if info is None:
        prefix = ".".join(parts[:-1])
        floats = [f for f, i in model.model_fields.items() if _is_float(i)]
        hint = suggest_among(field_name, floats).replace(
            "valid keys here", "its real-valued fields"
        )
        c.problem(
            "parameter", f"value {show(parameter)}: {prefix} has no field {field_name!r}; {hint}"
        )
        return None
    if not _is_float(info):
        kind = "a whole number" if _annotation(info) is int else "not a number"
        c.bad_value(
            "parameter",
            parameter,
            f"{kind}; only real-valued parameters can be calibrated",
            "a float parameter",
        )
        return None
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


def _annotation(info: FieldInfo) -> Any:
    annotation = info.annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = args[0] if len(args) == 1 else annotation
    return annotation


def _is_float(info: FieldInfo) -> bool:
    return _annotation(info) is float
