"""The spec of a sensitivity analysis: which parameters vary over which ranges, which
outputs are analysed, and how (``peersim sensitivity SPEC``; see ``analysis.sensitivity``).

A TOML file (``analysis/sensitivity_enrich.toml`` is the ready one)::

    name = "enrich_drivers"                     # optional; default: the file name
    description = "..."                         # optional
    scenario = "../scenarios/enrich_trial.toml" # base scenario, relative to this file
    outputs = ["engaged_share", "fidelity", "itt_or"]
    method = "morris"                           # optional defaults the command line
    replicates = 5                              #   overrides: method, replicates, seed
    seed = 20241

    [parameters]                                # at least two; each value varied once
    "engagement.logit_intercept" = [-3.0, -1.0]              # a value range
    "sites.*.supervisor_h_per_week" = { scale = [0.5, 1.5] } # multiplies each site's value
    "sites.F.team_preparation" = [0.0, 1.0]                  # one site
    "sites[host=nhs].share_records_access" = [0.0, 1.0]  # a group of sites

    [morris]
    n = 20            # trajectories (runs: n * (parameters + 1) * replicates)
    levels = 4        # grid levels of each parameter (even)
    [sobol]
    n = 512           # base samples, a power of 2 (runs: n * (parameters + 2) * replicates,
    second_order = false  #   or n * (2 * parameters + 2) with second-order indices)

``"PATH" = "prior"`` takes the range from the calibration priors
(``calibration/priors/enrich.toml``, or the file a top-level ``priors = "FILE"``
names, relative to the spec): a uniform prior's bounds, else its central 95%
interval.

Both tables also take ``resamples`` (bootstrap resamples of the confidence
intervals, default 1000) and ``conf_level`` (default 0.95).

Parameter paths name one numeric field of the ``Scenario`` (``simulation.params``):
``GROUP.FIELD`` for a global parameter, or ``SELECTOR.FIELD`` for a site
attribute, where the site selector is ``sites.NAME``, ``sites.*`` (every site) or
``sites[FIELD=VALUE, ...]`` (every site meeting all the conditions, e.g.
``sites[host=not_for_profit, geography=rural]``), as everywhere in peersim
(``simulation.paths``). ``[low, high]`` samples the value itself
(the same value at every selected site); ``{ scale = [low, high] }`` samples a
multiplier of the base scenario's own value (each selected site keeps its
relation to the others). Every range is checked against the field's bounds
(every site's scaled value, for ``scale``); integer fields take the sampled
value rounded to the nearest whole number (the indices refer to the unrounded
sample, the model sees the rounded one); switches and choices cannot be varied.

Outputs (``OUTPUTS``, plus ``engaged_share_<site>`` and ``fidelity_<site>``) are
computed per run by ``analysis.sensitivity.sensitivity_outputs``.

Mistakes raise ``SpecError``, whose message lists every problem at once, one a
line, as the scenario loader does: ``FILE: key: value VALUE: what is allowed``,
with close-name suggestions for unknown paths, outputs and keys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

from scenarios.inputs import InputError, closest_names, read_toml
from scenarios.inputs import show as show_value
from scenarios.messages import allowed as field_allowed
from scenarios.messages import validation_problems
from simulation import Scenario
from simulation.outcomes import (
    ALIASES,
    SENSITIVITY_OUTPUTS,
    SENSITIVITY_SITE_OUTPUTS,
    canonical,
    outcome,
)
from simulation.paths import (
    ParameterPath,
    PathError,
    SiteSelector,
    known_paths,
    parse_path,
    site_path,
)
from simulation.rng import DEFAULT_SEED

__all__ = [
    "METHODS",
    "OUTPUTS",
    "Method",
    "Parameter",
    "Settings",
    "Spec",
    "SpecError",
    "load_spec",
    "output_description",
    "output_names",
    "parse_spec",
]

Method = Literal["morris", "sobol"]
METHODS: tuple[Method, ...] = ("morris", "sobol")

# Outputs computed for every run; per-site outputs are added for the base's sites.
# Names and descriptions are the outcome registry's (simulation.outcomes).
OUTPUTS: dict[str, str] = {name: outcome(name).heading() for name in SENSITIVITY_OUTPUTS}
SITE_OUTPUTS: dict[str, str] = {
    f"{name}_": f"{outcome(name).heading()} at site " for name in SENSITIVITY_SITE_OUTPUTS
}
DEFAULT_METHOD: Method = "morris"
DEFAULT_REPLICATES = 5
DEFAULT_N: dict[Method, int] = {"morris": 20, "sobol": 512}
DEFAULT_LEVELS = 4
DEFAULT_RESAMPLES = 1000
DEFAULT_CONF_LEVEL = 0.95
_PATH_HELP = (
    "a parameter is GROUP.FIELD (e.g. engagement.logit_intercept) or sites.SELECT.FIELD "
    "with SELECT a site name, * (every site) or [FIELD=VALUE, ...] (every site meeting all "
    "the conditions), e.g. sites[host=not_for_profit, geography=rural].team_preparation"
)


class SpecError(InputError):
    """A sensitivity spec that cannot be read or is not valid."""


# --- reading and checking --------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """How to sample and analyse; the spec gives defaults, the command line overrides."""

    method: Method = DEFAULT_METHOD
    n: int = DEFAULT_N["morris"]
    replicates: int = DEFAULT_REPLICATES
    seed: int = DEFAULT_SEED
    levels: int = DEFAULT_LEVELS
    second_order: bool = False
    resamples: int = DEFAULT_RESAMPLES
    conf_level: float = DEFAULT_CONF_LEVEL

    def problems(self) -> list[tuple[str, str]]:
        """What is wrong with these settings, as (setting, problem) pairs; empty if
        nothing. Settings are named as in the spec's table of the method (``n``,
        ``levels``, ``resamples``, ``conf_level``) or at its top (``replicates``, ``seed``)."""
        out = []
        if self.method not in METHODS:
            out.append(("method", f"value {self.method!r}: allowed: 'morris' or 'sobol'"))
        elif self.method == "morris" and self.n < 2:
            out.append(("n", f"value {self.n}: Morris needs at least 2 trajectories"))
        elif self.method == "sobol" and (self.n < 4 or self.n & (self.n - 1)):
            out.append(
                (
                    "n",
                    f"value {self.n}: Sobol' sampling needs a power of 2, at least 4 (e.g. "
                    "512 or 1024), so that the convergence check's N/2 is balanced too",
                )
            )
        if self.replicates < 1:
            out.append(("replicates", f"value {self.replicates}: allowed: an integer >= 1"))
        if self.seed < 0:
            out.append(("seed", f"value {self.seed}: allowed: an integer >= 0"))
        if self.method == "morris" and (self.levels < 2 or self.levels % 2):
            out.append(("levels", f"value {self.levels}: allowed: an even integer >= 2"))
        if self.resamples < 10:
            out.append(("resamples", f"value {self.resamples}: allowed: an integer >= 10"))
        if not 0 < self.conf_level < 1:
            out.append(
                ("conf_level", f"value {self.conf_level}: allowed: a number between 0 and 1")
            )
        return out


@dataclass(frozen=True)
class Parameter:
    """One varied input: a path into the scenario, its range and what it sets."""

    path: str  # as written in the spec; also its name in SALib and in every table
    field: str
    group: str  # a global parameter group, or "sites"
    sites: tuple[str, ...]  # the sites it sets (empty for a global parameter)
    mode: Literal["value", "scale"]
    low: float
    high: float
    integer: bool
    base: tuple[float, ...]  # the base scenario's value per target
    description: str
    origin: str = ""  # where the range came from, if not written in the spec

    def values(self, x: float) -> list[float | int]:
        """The value set at each target for the sampled number ``x``."""
        raw = [x] * len(self.base) if self.mode == "value" else [b * x for b in self.base]
        return [round(v) for v in raw] if self.integer else [float(v) for v in raw]

    def assignments(self, x: float) -> dict[str, float | int]:
        """The values to set for the sampled number ``x``, by concrete path (one per
        selected site), for ``Scenario.with_values``."""
        values = self.values(x)
        if self.group != "sites":
            return {f"{self.group}.{self.field}": values[0]}
        return {site_path(s, self.field): v for s, v in zip(self.sites, values, strict=True)}

    @property
    def targets(self) -> list[tuple[str, str]]:
        """(where, field) pairs it sets: where is the group, or ``sites.NAME``."""
        if self.group != "sites":
            return [(self.group, self.field)]
        return [(f"sites.{s}", self.field) for s in self.sites]


@dataclass(frozen=True)
class Spec:
    """A validated sensitivity spec: the base scenario, parameters, outputs, settings."""

    path: Path
    name: str
    description: str
    base: Scenario
    base_path: Path | None
    parameters: tuple[Parameter, ...]
    outputs: tuple[str, ...]
    method: Method  # the spec's default method
    method_settings: Mapping[str, Settings]  # per method, from its table in the spec
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def settings(self) -> Settings:
        """The settings of the spec's own method."""
        return self.method_settings[self.method]

    @property
    def names(self) -> list[str]:
        return [p.path for p in self.parameters]

    def resolved_raw(self) -> dict[str, Any]:
        """The spec as read, with ``"prior"`` ranges written out as ``[low, high]``:
        what a resumed analysis re-reads, whatever the priors file says by then."""
        raw = dict(self.raw)
        given = dict(raw.get("parameters", {}))
        for p in self.parameters:
            if p.origin:
                given[p.path] = [p.low, p.high]
        raw["parameters"] = given
        return raw

    def problem(self, outputs: Sequence[str] | None = None) -> Any:
        """The SALib ``ProblemSpec`` of this spec (with ``outputs``, default all)."""
        from SALib import ProblemSpec

        return ProblemSpec(
            {
                "names": self.names,
                "bounds": [[p.low, p.high] for p in self.parameters],
                "outputs": list(self.outputs if outputs is None else outputs),
            }
        )


def load_spec(path: str | Path, *, base: Scenario | None = None) -> Spec:
    """Read and validate a spec file; raises ``SpecError`` listing every problem.

    ``base`` replaces the scenario the spec names (a resumed run uses the one it
    started with, even if the file has changed since).
    """
    source = Path(path)
    return parse_spec(read_toml(source, "spec", SpecError), source, base=base)


class _Table(BaseModel):
    # Strict: TOML is typed, so "20" for a count is a mistake, not something to coerce.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class MorrisTable(_Table):
    n: int = Field(default=DEFAULT_N["morris"], description="trajectories")
    levels: int = Field(default=DEFAULT_LEVELS, description="grid levels of each parameter, even")
    resamples: int = Field(default=DEFAULT_RESAMPLES, description="bootstrap resamples")
    conf_level: float = Field(default=DEFAULT_CONF_LEVEL, description="of the confidence intervals")


class SobolTable(_Table):
    n: int = Field(default=DEFAULT_N["sobol"], description="base samples, a power of 2")
    second_order: bool = False
    resamples: int = Field(default=DEFAULT_RESAMPLES, description="bootstrap resamples")
    conf_level: float = Field(default=DEFAULT_CONF_LEVEL, description="of the confidence intervals")


class SpecFile(_Table):
    """A spec as written. Every key has a default here (``None`` for the required
    ``scenario``, ``outputs`` and ``parameters``), so that the rest of a spec is
    checked too when one key is wrong; ``parse_spec`` reports what is missing."""

    name: Annotated[str, Field(min_length=1)] | None = None
    description: str = ""
    scenario: Annotated[str, Field(min_length=1)] | None = Field(
        None, description="the base scenario file, relative to this spec"
    )
    outputs: Annotated[list[str], Field(min_length=1)] | None = Field(
        None, description="output names"
    )
    method: Method = DEFAULT_METHOD
    replicates: int = DEFAULT_REPLICATES
    seed: int = DEFAULT_SEED
    parameters: dict[str, Any] | None = None
    morris: MorrisTable = MorrisTable()
    sobol: SobolTable = SobolTable()
    priors: Annotated[str, Field(min_length=1)] | None = Field(
        None, description="a priors file, relative to this spec"
    )


def _read_spec(data: Mapping[str, Any], path: Path) -> tuple[SpecFile, list[str], set[str]]:
    """The spec's keys checked against ``SpecFile``: the spec, the problems, and the
    keys with a problem (read as their defaults)."""
    try:
        return SpecFile.model_validate(data), [], set()
    except ValidationError as e:
        bad = {str(err["loc"][0]) for err in e.errors() if err["loc"]}
        kept = {k: v for k, v in data.items() if k not in bad}
        return SpecFile.model_validate(kept), validation_problems(e, SpecFile, path, data), bad


def parse_spec(data: Mapping[str, Any], path: Path, *, base: Scenario | None = None) -> Spec:
    """Validate a spec already read into ``data``; ``path`` names it in messages and
    anchors a relative ``scenario`` path."""
    spec, problems, reported = _read_spec(data, path)

    def bad(key: str, text: str) -> None:
        problems.append(f"{path}: {key}: {text}")

    base_path: Path | None = None
    if base is None and "scenario" not in reported:
        base, base_path = _base_scenario(spec.scenario, path, bad)
    method_settings = _settings(spec, bad)
    outputs = _outputs(spec.outputs, base, bad) if "outputs" not in reported else []
    parameters = (
        _parameters(spec, "priors" in reported, base, path, bad)
        if "parameters" not in reported
        else []
    )
    if problems or base is None:
        raise SpecError(path, problems)
    return Spec(
        path=path,
        name=spec.name or path.stem,
        description=spec.description,
        base=base,
        base_path=base_path,
        parameters=tuple(parameters),
        outputs=tuple(outputs),
        method=spec.method,
        method_settings=method_settings,
        raw=dict(data),
    )


def _base_scenario(given: str | None, path: Path, bad: Any) -> tuple[Scenario | None, Path]:
    from scenarios import ScenarioError, load_scenario

    if given is None:
        bad("scenario", "missing: required, allowed: the base scenario file, relative to this spec")
        return None, path
    scenario_path = (path.parent / given).resolve()
    try:
        return load_scenario(scenario_path), scenario_path
    except ScenarioError as e:
        if not scenario_path.exists():
            bad("scenario", f"value {given!r}: no such scenario file ({scenario_path})")
        else:
            bad("scenario", f"value {given!r}: not a valid scenario:\n    " + str(e))
        return None, scenario_path


def _settings(spec: SpecFile, bad: Any) -> dict[str, Settings]:
    tables: dict[str, MorrisTable | SobolTable] = {"morris": spec.morris, "sobol": spec.sobol}
    per_method: dict[str, Settings] = {
        m: Settings(
            method=m,
            n=tables[m].n,
            replicates=spec.replicates,
            seed=spec.seed,
            levels=spec.morris.levels,
            second_order=spec.sobol.second_order,
            resamples=tables[m].resamples,
            conf_level=tables[m].conf_level,
        )
        for m in METHODS
    }
    # Both methods' settings are checked, so that --method can switch to either.
    reported: set[str] = set()
    for m, settings in per_method.items():
        for key, text in settings.problems():
            label = key if key in ("replicates", "seed") else f"{m}.{key}"
            if label not in reported:
                reported.add(label)
                bad(label, text)
    return per_method


def output_names(site_names: Sequence[str]) -> list[str]:
    """Every output a spec may name, for a scenario with these sites (old spellings
    too, for one release: ``analysis.sensitivity.make_design`` notes them)."""
    per_site = [f"{prefix}{s}" for prefix in SITE_OUTPUTS for s in site_names]
    old = [alias for alias, name in ALIASES.items() if name in OUTPUTS]
    return [*OUTPUTS, *per_site, *old]


def output_description(name: str) -> str:
    """What ``name`` measures, with its unit (an old spelling as its current name)."""
    if canonical(name) in OUTPUTS:
        return OUTPUTS[canonical(name)]
    for prefix, text in SITE_OUTPUTS.items():
        if name.startswith(prefix):
            return text + name.removeprefix(prefix)
    return name


def _outputs(given: list[str] | None, base: Scenario | None, bad: Any) -> list[str]:
    if given is None:
        bad(
            "outputs",
            f"missing: required, allowed: a non-empty list of output names, from {list(OUTPUTS)}",
        )
        return []
    known = output_names(base.site_names) if base is not None else None
    seen: set[str] = set()
    out = []
    for name in given:
        if name in seen:
            bad("outputs", f"value {name!r}: named twice")
            continue
        seen.add(name)
        site_output = any(name.startswith(p) for p in SITE_OUTPUTS) and name not in OUTPUTS
        if known is None and site_output:
            out.append(name)  # its site cannot be checked without a base scenario
        elif name not in (known or OUTPUTS):
            # Suggest a trial-wide output first, a per-site one only failing that.
            close = closest_names(name, list(OUTPUTS)) or closest_names(name, known or [])
            hint = f"did you mean {' or '.join(close)}?" if close else f"allowed: {list(OUTPUTS)}"
            bad("outputs", f"value {name!r}: unknown output; {hint}")
        else:
            out.append(name)
    return out


def _parameters(
    spec: SpecFile, bad_priors: bool, base: Scenario | None, spec_path: Path, bad: Any
) -> list[Parameter]:
    given = spec.parameters
    if given is None or len(given) < 2:
        shown = "missing" if given is None else f"value {show_inline(given)}"
        bad(
            "parameters",
            f"{shown}: allowed: a table of at least two parameters, "
            '"PATH" = [low, high], { scale = [low, high] } or "prior"',
        )
        return []
    priors = _Priors(spec.priors, spec_path, bad_priors)
    if base is None:
        return []  # paths and ranges are checked against the base scenario
    out: list[Parameter] = []
    claimed: dict[tuple[str, str], str] = {}
    for path, entry in given.items():
        key = f'parameters."{path}"'
        try:
            parameter = _parameter(str(path), entry, base, priors)
        except _ParameterProblem as e:
            bad(key, str(e))
            continue
        clashes = sorted({claimed[t] for t in parameter.targets if t in claimed})
        if clashes:
            bad(key, f"sets a value that {', '.join(clashes)} also sets; vary each value once")
            continue
        claimed.update(dict.fromkeys(parameter.targets, parameter.path))
        out.append(parameter)
    return out


class _ParameterProblem(Exception):
    pass


class _Priors:
    """The calibration priors that ``"PATH" = "prior"`` takes its range from: the
    file the spec's ``priors`` key names (relative to the spec), else the shipped
    ENRICH priors; read on first use."""

    def __init__(self, given: str | None, spec_path: Path, unreadable: bool) -> None:
        self.problem = "the priors key is not a priors file (see priors)" if unreadable else ""
        self.path = (spec_path.parent / given).resolve() if given is not None else None
        self._set: Any = None

    def range(self, parameter: str) -> tuple[float, float, str]:
        """(low, high, origin) for ``parameter``: a uniform prior's bounds, else its
        central 95% interval."""
        from calibration.files import CalibrationFileError
        from calibration.priors import load_priors

        if self.problem:
            raise _ParameterProblem(f'"prior": {self.problem}')
        if self._set is None:
            try:
                self._set = load_priors(self.path)
            except CalibrationFileError as e:
                self.problem = str(e).splitlines()[0]
                raise _ParameterProblem(f'"prior": {self.problem}') from None
        name = Path(self._set.path).name if self._set.path else "the priors"
        try:
            prior = self._set[parameter]
        except KeyError:
            raise _ParameterProblem(
                f'"prior": {name} has no prior for it; it has priors for '
                + ", ".join(self._set.parameters)
            ) from None
        if prior.distribution == "uniform":
            return float(prior.lower), float(prior.upper), f"prior {prior.describe()} ({name})"
        low, high = (float(v) for v in prior.ppf([0.025, 0.975]))
        return low, high, f"central 95% of prior {prior.describe()} ({name})"


def _parameter(path: str, spec: Any, base: Scenario, priors: _Priors) -> Parameter:
    try:
        parsed = parse_path(path)
    except PathError as e:
        raise _ParameterProblem(f"unknown parameter; {_suggest_path(path, base, e)}") from None
    group, name, info = parsed.group, parsed.field, parsed.info
    sites, bases = _base_values(parsed, base)
    kind = info.annotation
    if kind not in (int, float):
        raise _ParameterProblem(
            f"not a number ({field_allowed(info)}): switches and choices cannot be varied; "
            "set them in the base scenario instead"
        )
    given = _given_range(path, spec, priors)
    parameter = Parameter(
        path=path,
        field=name,
        group=group,
        sites=sites,
        mode=given.mode,
        low=given.low,
        high=given.high,
        integer=kind is int,
        base=tuple(float(b) for b in bases),
        description=info.description or "",
        origin=given.origin,
    )
    if given.mode == "scale":
        targets = sites if group == "sites" else (group,)
        _check_scale(info, given, list(zip(targets, bases, strict=True)), at_sites=group == "sites")
    elif not (_within(info, given.low) and _within(info, given.high)):
        raise _ParameterProblem(f"value {given.shown}: out of range, {_allowed(info)}")
    return parameter


def _base_values(parsed: ParameterPath, base: Scenario) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """The sites a path selects (none for a trial-wide group) and the base scenario's
    values there (the group's one value for a trial-wide path)."""
    if parsed.sites is None:
        return (), (getattr(getattr(base, parsed.group), parsed.field),)
    sites = _select_sites(parsed.sites, base)
    return sites, tuple(getattr(base.sites[s], parsed.field) for s in sites)


@dataclass(frozen=True)
class _GivenRange:
    """A parameter's range as the spec gives it: values, or multipliers of the base
    value (``scale``); where it came from (a prior, else ``""``); as written."""

    mode: Literal["value", "scale"]
    low: float
    high: float
    origin: str
    shown: str


def _given_range(path: str, spec: Any, priors: _Priors) -> _GivenRange:
    if spec == "prior":
        low, high, origin = priors.range(path)
        return _GivenRange("value", low, high, origin, f'"prior" [{low:g}, {high:g}]')
    mode, low, high = _range(spec)
    shown = show_inline(spec["scale"] if mode == "scale" else spec)  # as written
    return _GivenRange(mode, low, high, "", shown)


def _check_scale(
    info: FieldInfo, given: _GivenRange, bases: Sequence[tuple[str, Any]], *, at_sites: bool
) -> None:
    """Raise unless the multipliers keep the field within its bounds wherever it is
    set (``bases``: each group or site with its base value) and change something."""
    if given.low < 0:
        raise _ParameterProblem(f"scale {given.shown}: a multiplier must be >= 0")
    if all(b == 0 for _, b in bases):
        raise _ParameterProblem(
            f"scale {given.shown}: the base value is 0, which no multiplier "
            "changes; give a value range [low, high] instead"
        )
    for target, b in bases:
        for x in (given.low, given.high):
            v = b * x
            if not _within(info, v):
                where = f" at site {target}" if at_sites else ""
                raise _ParameterProblem(
                    f"scale {given.shown}: gives {v:g}{where} (base {b:g}), out of range, "
                    f"{_allowed(info)}"
                )


def _allowed(info: FieldInfo) -> str:
    return f"allowed: {field_allowed(info)} ({info.description})"


def _select_sites(selector: SiteSelector, base: Scenario) -> tuple[str, ...]:
    if selector.name is not None and selector.name not in base.sites:
        close = closest_names(selector.name, base.site_names)
        hint = f"did you mean {close[0]}? " if close else ""
        raise _ParameterProblem(
            f"no site {selector.name!r} in the base scenario; {hint}sites are "
            f"{', '.join(base.site_names)}, or * for every site"
        )
    chosen = selector.select(base.sites)
    if not chosen:
        present = "; ".join(
            f"its {attr} values are "
            + ", ".join(sorted({show_inline(getattr(s, attr)) for s in base.sites.values()}))
            for attr, _ in selector.conditions
        )
        raise _ParameterProblem(f"{selector.text} selects no site of the base scenario; {present}")
    return chosen


def _range(spec: Any) -> tuple[Literal["value", "scale"], float, float]:
    mode: Literal["value", "scale"] = "value"
    pair = spec
    if isinstance(spec, Mapping):
        if set(spec) != {"scale"}:
            raise _ParameterProblem(
                f"value {show_inline(spec)}: a table must be {{ scale = [low, high] }}, "
                "a multiplier of the base value"
            )
        mode, pair = "scale", spec["scale"]
    numbers = (
        isinstance(pair, list)
        and len(pair) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in pair)
    )
    if not numbers:
        raise _ParameterProblem(
            f"value {show_inline(pair)}: wrong type, allowed: [low, high] (two numbers), "
            '{ scale = [low, high] } or "prior"'
        )
    low, high = float(pair[0]), float(pair[1])
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise _ParameterProblem(
            f"{'scale' if mode == 'scale' else 'value'} {show_inline(pair)}: "
            "the lower bound must be below the upper bound"
        )
    return mode, low, high


def _within(info: FieldInfo, value: float) -> bool:
    for bound in info.metadata:
        limit: Any = getattr(bound, type(bound).__name__.lower(), None)
        if isinstance(bound, Ge) and not value >= limit:
            return False
        if isinstance(bound, Gt) and not value > limit:
            return False
        if isinstance(bound, Le) and not value <= limit:
            return False
        if isinstance(bound, Lt) and not value < limit:
            return False
    return True


def _suggest_path(path: str, base: Scenario, error: PathError) -> str:
    close = closest_names(path, known_paths(base, numeric_only=True))
    if close:
        return "did you mean " + " or ".join(close) + "?"
    return f"{error}; {_PATH_HELP}"


def show_inline(value: Any) -> str:
    """A spec value as written: ranges are small inline tables, worth echoing."""
    return show_value(value, inline_tables=True)
