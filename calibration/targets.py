"""Calibration targets: what the simulated trial must reproduce, and how to compare.

The file format (TOML), modelled on Starsim's ``CalibComponent`` and on
pattern-oriented modelling, puts quantitative targets and qualitative patterns
side by side. Each ``[[target]]`` entry has:

``name``
    Letters, digits and ``_``, unique in the file.
``statistic``
    What is compared: a name from ``calibration.statistics.STATISTICS`` (some take
    settings, given as further keys of the entry: ``sites``, ``site``, ``measure``,
    ``method``, ``adjusted``, ``a``, ``b``) or ``trial:KEY`` for any key of
    ``Results.trial``. ``peersim calibrate --list-statistics`` lists them.
either a quantitative observation
    ``observed`` (a number) or, for a share, ``count`` with ``n``; optionally its
    uncertainty as reported: ``se`` (for a ratio statistic, the SE of the log
    ratio), or ``ci = [low, high]`` (a 95% interval), or for a share ``n`` alone
    (binomial SE). Without any, the model's own spread between simulated trials
    stands in for the observation's sampling error.
or a pattern
    ``pattern`` = ``"positive"`` / ``"negative"`` (the statistic's sign),
    ``"greater_than"`` / ``"less_than"`` with ``value``, ``"between"`` with
    ``interval = [low, high]``, or, for an interval statistic, ``"contains"`` /
    ``"excludes"`` with ``value``.
``weight``
    How much the target counts in the distance (default 1). ``0`` makes it a
    validation target: reported in the fit report, not fitted.
``source``, ``grade``
    Where the fact is stated, and its evidence grade (``T``, ``W`` or ``S``,
    optionally with ``/M`` for a part that is inferred, as in ENRICH.md: ``"T/M"``).
    A target graded ``M`` alone is refused: an assumption is not an observation.
``note``
    Optional free text for the fit report.

Comparison of one simulated parameter set with the targets (``TargetSet``):
each parameter set runs R replicates; each replicate gives one row of raw
statistic values (``TargetSet.row``, on the workers); ``TargetSet.summarise``
turns the R rows into the particle's summary: for a quantitative target the mean
over replicates (of the log for ratio statistics) and its spread (``NAME::sd``),
for a pattern the share of replicates in which it holds. ``calibration.distance``
turns summaries into a distance.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
)

from calibration.files import NAME_PATTERN, TargetsError
from calibration.statistics import (
    STATISTICS,
    TRIAL_PREFIX,
    BoundStatistic,
    ReplicateView,
    Value,
)
from scenarios.inputs import NOT_GIVEN, Problem, read_toml, show, suggest_among
from scenarios.messages import validation_problems
from simulation import Results, Scenario
from simulation.paths import PathError, parse_selector
from simulation.stats import Z_95

DEFAULT_TARGETS_FILE = "enrich.toml"
SD_SUFFIX = "::sd"
PATTERNS: tuple[str, ...] = (
    "positive",
    "negative",
    "greater_than",
    "less_than",
    "between",
    "contains",
    "excludes",
)
_PATTERNS_WITH_VALUE = ("greater_than", "less_than", "contains", "excludes")
_INTERVAL_PATTERNS = ("contains", "excludes")
_GRADE = re.compile(r"^[TWSM](/[TWSM])*$")
SELECTOR_FORMS = "a selector such as sites[host=not_for_profit] or sites[geography=rural]"

PatternKind = Literal[
    "positive", "negative", "greater_than", "less_than", "between", "contains", "excludes"
]


def default_targets_path() -> Path:
    """The ENRICH targets shipped inside the ``calibration`` package."""
    return Path(str(files("calibration") / "targets" / DEFAULT_TARGETS_FILE))


@dataclass(frozen=True)
class Observation:
    """A reported number: ``value`` on its natural scale, ``se`` on the comparison
    scale (log for ratio statistics) or None if the report gives none; ``ci`` and
    ``n`` as reported, for the fit report."""

    value: float
    se: float | None = None
    ci: tuple[float, float] | None = None
    n: int | None = None


@dataclass(frozen=True)
class Pattern:
    """A qualitative finding the simulated trial should show."""

    kind: PatternKind
    value: float | None = None
    interval: tuple[float, float] | None = None

    def holds(self, value: Value) -> bool:
        """Whether one replicate's value shows the pattern (NaN: it does not)."""
        if isinstance(value, tuple):
            return self._interval_holds(value)
        if not math.isfinite(value):
            return False
        test = _SCALAR_TESTS.get(self.kind)
        if test is None:
            raise ValueError(f"pattern {self.kind!r} needs an interval statistic")
        return test(self, value)

    def _interval_holds(self, interval: tuple[float, float]) -> bool:
        """``contains`` or ``excludes``: whether a simulated interval holds the pattern's
        ``value`` (or does not; NaN ends: neither)."""
        low, high = interval
        if not (math.isfinite(low) and math.isfinite(high)):
            return False
        inside = low <= _given(self.value) <= high
        return inside if self.kind == "contains" else not inside

    def describe(self) -> str:
        match self.kind:
            case "positive" | "negative":
                return self.kind
            case "between":
                assert self.interval is not None
                return f"between {self.interval[0]:g} and {self.interval[1]:g}"
        return f"{self.kind.replace('_', ' ')} {self.value:g}"


def _given[T](setting: T | None) -> T:
    """A pattern's ``value`` or ``interval``, which its kind requires (checked on loading)."""
    assert setting is not None
    return setting


# Whether a single (finite) value shows a pattern, by the pattern's kind.
_SCALAR_TESTS: dict[str, Callable[[Pattern, float], bool]] = {
    "positive": lambda pattern, value: value > 0,
    "negative": lambda pattern, value: value < 0,
    "greater_than": lambda pattern, value: value > _given(pattern.value),
    "less_than": lambda pattern, value: value < _given(pattern.value),
    "between": lambda pattern, value: (
        _given(pattern.interval)[0] <= value <= _given(pattern.interval)[1]
    ),
}


@dataclass(frozen=True)
class Target:
    """One entry of a targets file."""

    name: str
    statistic: str
    settings: Mapping[str, Any]
    weight: float
    source: str
    grade: str
    observed: Observation | None = None
    pattern: Pattern | None = None
    note: str = ""
    bound: BoundStatistic | None = field(default=None, compare=False)

    @property
    def is_pattern(self) -> bool:
        return self.pattern is not None

    @property
    def ratio(self) -> bool:
        return self.statistic in STATISTICS and STATISTICS[self.statistic].ratio

    @property
    def interval(self) -> bool:
        return self.statistic in STATISTICS and STATISTICS[self.statistic].interval

    def to_comparison_scale(self, value: float) -> float:
        """Ratios are compared as logs; a non-positive ratio is NaN."""
        if not self.ratio:
            return value
        return math.log(value) if value > 0 else math.nan

    def as_dict(self) -> dict[str, Any]:
        """The entry as written in a targets file (for the manifest)."""
        out: dict[str, Any] = {"name": self.name, "statistic": self.statistic}
        for key, value in self.settings.items():
            out[key] = list(value) if isinstance(value, tuple) else value
        if self.observed is not None:
            out["observed"] = self.observed.value
            if self.observed.n is not None:
                out["n"] = self.observed.n
            if self.observed.ci is not None:
                out["ci"] = list(self.observed.ci)
            elif self.observed.se is not None:
                out["se"] = self.observed.se
        if self.pattern is not None:
            out["pattern"] = self.pattern.kind
            if self.pattern.value is not None:
                out["value"] = self.pattern.value
            if self.pattern.interval is not None:
                out["interval"] = list(self.pattern.interval)
        out.update(weight=self.weight, source=self.source, grade=self.grade)
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class TargetSet:
    """The targets of one file, bound to a scenario once ``bind`` has run."""

    targets: tuple[Target, ...]
    path: Path | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not self.targets:
            raise ValueError("a target set needs at least one target")

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.targets]

    @property
    def fitted(self) -> list[Target]:
        """Targets with a positive weight: those the distance uses."""
        return [t for t in self.targets if t.weight > 0]

    def __getitem__(self, name: str) -> Target:
        for t in self.targets:
            if t.name == name:
                return t
        raise KeyError(name)

    # --- binding -----------------------------------------------------------------
    def bind(self, scenario: Scenario) -> TargetSet:
        """Resolve site names and selectors against ``scenario``; ``TargetsError``
        if a site is unknown or a selection leaves no site on either side."""
        problems: list[str] = []
        bound = []
        for i, target in enumerate(self.targets):
            where = f"{self.path or '(targets)'}: {_where(i, target.name)}"
            statistic = _bind_statistic(
                target.statistic, target.settings, scenario, where, problems
            )
            bound.append(replace(target, bound=statistic))
        if problems:
            raise TargetsError(self.path or "(targets)", problems)
        return replace(self, targets=tuple(bound))

    def check_keys(self, results: Results) -> None:
        """``TargetsError`` for ``trial:KEY`` statistics naming keys ``results`` lacks."""
        problems = []
        for i, target in enumerate(self.targets):
            names = [target.statistic]
            for setting in target.settings.values():
                if isinstance(setting, BoundStatistic):
                    names.append(setting.name)
            for name in names:
                key = name.removeprefix(TRIAL_PREFIX)
                if name.startswith(TRIAL_PREFIX) and key not in results.trial:
                    hint = suggest_among(key, list(results.trial))
                    problems.append(
                        f"{self.path or '(targets)'}: {_where(i, target.name)}.statistic: "
                        f"value {show(name)}: Results.trial has no key {key!r}; "
                        + hint.replace("valid keys here", "its keys are")
                    )
        if problems:
            raise TargetsError(self.path or "(targets)", problems)

    # --- extraction, on the workers ------------------------------------------------
    def row(self, results: Results) -> dict[str, float]:
        """One replicate's raw statistic values: ``NAME`` per single-valued target,
        ``NAME:lo`` and ``NAME:hi`` per interval target; NaN where not computable."""
        view = ReplicateView(results)
        out: dict[str, float] = {}
        for target in self.targets:
            if target.bound is None:
                raise RuntimeError("bind the targets to a scenario before extracting")
            try:
                value = target.bound(view)
            except (ValueError, ArithmeticError):
                value = (math.nan, math.nan) if target.bound.interval else math.nan
            if isinstance(value, tuple):
                out[f"{target.name}:lo"], out[f"{target.name}:hi"] = map(float, value)
            else:
                out[target.name] = float(value)
        return out

    def table(self, results: Results) -> pd.DataFrame:
        """``row`` as a one-row table: a ``run_jobs`` table function."""
        return pd.DataFrame([self.row(results)])

    def value_of(self, target: Target, row: Mapping[str, float]) -> Value:
        if target.interval:
            return (row[f"{target.name}:lo"], row[f"{target.name}:hi"])
        return row[target.name]

    def summarise(self, rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
        """One parameter set's summary over its replicates' rows: per quantitative
        target its mean on the comparison scale and ``NAME::sd``; per pattern the
        share of replicates in which it holds. No rows: every key NaN."""
        out: dict[str, float] = {}
        for target in self.targets:
            values = [self.value_of(target, row) for row in rows]
            if not values:
                out[target.name] = math.nan
                if target.pattern is None:
                    out[target.name + SD_SUFFIX] = math.nan
            elif target.pattern is not None:
                out[target.name] = float(np.mean([target.pattern.holds(v) for v in values]))
            else:
                scaled = np.array([target.to_comparison_scale(float(v)) for v in values])  # type: ignore[arg-type]
                scaled = scaled[np.isfinite(scaled)]
                out[target.name] = float(scaled.mean()) if len(scaled) else math.nan
                sd = float(scaled.std(ddof=1)) if len(scaled) > 1 else math.nan
                out[target.name + SD_SUFFIX] = sd
        return out

    def observed(self) -> dict[str, float]:
        """The observed summary in the same keys: observations on the comparison
        scale, 1 for every pattern (the trial showed it)."""
        out: dict[str, float] = {}
        for target in self.targets:
            if target.observed is not None:
                out[target.name] = target.to_comparison_scale(target.observed.value)
            else:
                out[target.name] = 1.0
        return out

    def as_dicts(self) -> list[dict[str, Any]]:
        return [t.as_dict() for t in self.targets]


# --- loading -------------------------------------------------------------------------

Finite = Annotated[float, Field(allow_inf_nan=False)]
Pair = Annotated[list[Finite], Field(min_length=2, max_length=2)]
_PAIR = "an array of two numbers [low, high], low <= high"


def _check_name(value: str) -> str:
    if not NAME_PATTERN.match(value):
        raise ValueError("not a valid name, allowed: letters, digits and _, starting with a letter")
    return value


def _check_statistic(value: str) -> str:
    if value not in STATISTICS and not _is_trial_key(value):
        raise ValueError(
            f"unknown statistic, allowed: trial:KEY or one of: {', '.join(STATISTICS)}"
            + _near(value, list(STATISTICS))
        )
    return value


def _check_grade(value: str) -> str:
    if not _GRADE.match(value):
        raise ValueError('not a grade, allowed: T, W, S or M joined by / ("T/M")')
    if set(value.split("/")) == {"M"}:
        raise ValueError(
            "a modelling assumption is not an observation; only sourced facts are targets, "
            'allowed: T, W or S, optionally with /M ("T/M")'
        )
    return value


class _Entry(BaseModel):
    # Strict: TOML is typed, so "0.5" for a number is a mistake, not something to coerce.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    name: Annotated[str, AfterValidator(_check_name)] = Field(
        description="letters, digits and _, starting with a letter"
    )
    statistic: Annotated[str, AfterValidator(_check_statistic)] = Field(
        description="a statistic name or trial:KEY"
    )
    weight: Finite = Field(1.0, ge=0, description="0: reported, not fitted")
    source: str = Field(min_length=1, description="where the fact is stated")
    grade: Annotated[str, AfterValidator(_check_grade)] = Field(
        description='T, W or S, optionally with /M ("T/M")'
    )
    note: str = ""


class _Reported(_Entry):
    se: Finite | None = Field(None, gt=0, description="its standard error, > 0")
    ci: Pair | None = Field(None, description=f"its 95% interval: {_PAIR}")


class ObservedEntry(_Reported):
    observed: Finite = Field(
        description="the reported value; or count and n for a share, or a pattern"
    )
    n: int | None = Field(None, ge=1, description="participants, for a share's binomial SE")


class CountEntry(_Reported):
    count: int = Field(ge=0, description="participants counted, out of n")
    n: int = Field(ge=1, description="participants in all")


class PatternEntry(_Entry):
    pattern: PatternKind
    value: Finite | None = None
    interval: Pair | None = Field(None, description=_PAIR)


def _observation_kind(entry: Any) -> str:
    """Which kind of target an entry is, by the keys it has (``observed`` if none)."""
    if isinstance(entry, dict):
        for kind in ("pattern", "count"):
            if kind in entry:
                return kind
    return "observed"


TargetEntry = Annotated[
    Annotated[ObservedEntry, Tag("observed")]
    | Annotated[CountEntry, Tag("count")]
    | Annotated[PatternEntry, Tag("pattern")],
    Discriminator(_observation_kind),
]


class TargetsFile(BaseModel):
    """A targets file as written, without each entry's statistic settings (those
    depend on the statistic and are checked against it)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    description: str = ""
    target: list[TargetEntry] = Field(
        min_length=1, description="at least one [[target]] table is required"
    )


_ENTRY = TypeAdapter(TargetEntry)


def load_targets(path: str | Path | None = None) -> TargetSet:
    """Read and check a targets file; ``None`` means the shipped ENRICH targets.

    Raises ``TargetsError`` listing every problem (file, entry, key, value, what is
    allowed). Site names are checked later, by ``TargetSet.bind``.
    """
    source = default_targets_path() if path is None else Path(path)
    data = read_toml(source, "targets", TargetsError)
    raw = data.get("target")
    entries = raw if isinstance(raw, list) else []
    settings_of = [_settings_keys(e) for e in entries]
    # The entries without their settings, so that the schema sees only its own keys.
    plain = {**data}
    if entries:
        plain["target"] = [
            {k: v for k, v in e.items() if k not in s} if isinstance(e, dict) else e
            for e, s in zip(entries, settings_of, strict=True)
        ]
    problems: list[Problem | str] = []
    try:
        parsed: list[Any] = list(TargetsFile.model_validate(plain).target)
        description = str(data.get("description", ""))
    except ValidationError as e:
        problems += validation_problems(e, TargetsFile, source, plain)
        parsed = [_entry_or_none(e) for e in plain.get("target", [])] if entries else []
        description = ""
    targets: list[Target] = []
    seen: dict[str, int] = {}
    for i, (entry, settings) in enumerate(zip(parsed, settings_of, strict=False), start=1):
        if entry is None:
            continue
        where = _where(i, entry.name)
        target, entry_problems = _target(source, where, entry, settings)
        problems += entry_problems
        if entry.name in seen:
            problems.append(
                Problem(
                    source,
                    f"{where}.name",
                    f"already used by target[{seen[entry.name]}], names must be unique",
                    entry.name,
                )
            )
        seen.setdefault(entry.name, i)
        if target is not None:
            targets.append(target)
    if not problems and not any(t.weight > 0 for t in targets):
        problems.append(Problem(source, "", "every target has weight 0: nothing to fit"))
    if problems:
        raise TargetsError(source, problems)
    return TargetSet(tuple(targets), source, description)


def _entry_or_none(raw: Any) -> ObservedEntry | CountEntry | PatternEntry | None:
    try:
        return _ENTRY.validate_python(raw)
    except ValidationError:
        return None


def _settings_keys(entry: Any) -> dict[str, Any]:
    """The entry's settings of its statistic (the keys its statistic takes)."""
    if not isinstance(entry, dict):
        return {}
    statistic = STATISTICS.get(entry.get("statistic"))  # type: ignore[arg-type]
    names = [p.name for p in statistic.params] if statistic else []
    return {k: v for k, v in entry.items() if k in names}


def _where(i: int, name: object) -> str:
    return f"target[{i}] {name!r}" if isinstance(name, str) else f"target[{i}]"


def _target(
    file: Path, where: str, entry: ObservedEntry | CountEntry | PatternEntry, given: dict[str, Any]
) -> tuple[Target | None, list[Problem]]:
    """The checks that depend on the statistic, and the ``Target`` if they pass."""
    problems: list[Problem] = []

    def bad(key: str | None, what: str, value: Any = NOT_GIVEN, allowed: str = "") -> None:
        problems.append(Problem(file, f"{where}.{key}" if key else where, what, value, allowed))

    statistic = STATISTICS.get(entry.statistic)
    settings = _settings(bad, statistic, given)
    observed = pattern = None
    if isinstance(entry, PatternEntry):
        pattern = _pattern(bad, statistic, entry)
    else:
        observed = _observation(bad, statistic, entry)
    if problems:
        return None, problems
    target = Target(
        name=entry.name,
        statistic=entry.statistic,
        settings=settings,
        weight=entry.weight,
        source=entry.source,
        grade=entry.grade,
        observed=observed,
        pattern=pattern,
        note=entry.note,
    )
    return target, problems


def _is_trial_key(name: str) -> bool:
    return name.startswith(TRIAL_PREFIX) and len(name) > len(TRIAL_PREFIX)


def _near(key: str, names: list[str]) -> str:
    hint = suggest_among(key, names)
    return f" ({hint})" if hint.startswith("did you mean") else ""


def _settings(bad: Callable[..., None], statistic: Any, given: dict[str, Any]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if statistic is None:
        return settings
    for p in statistic.params:
        value = given.get(p.name)
        if value is None:
            if p.required:
                bad(p.name, f"missing: required by {statistic.name}: {p.description}")
            continue
        if p.kind == "sites":
            selectors = _sites_setting(bad, p, value)
            if selectors is not None:
                settings[p.name] = selectors
        elif _setting_ok(bad, p, value):
            settings[p.name] = value
    return settings


def _setting_ok(bad: Callable[..., None], p: Any, value: Any) -> bool:
    """Whether ``value`` suits the (single-valued) setting ``p``; if not, it is reported."""
    if p.kind == "bool" and not isinstance(value, bool):
        bad(p.name, "wrong type", value, "true or false")
    elif p.kind == "choice" and value not in p.choices:
        bad(p.name, "not one of the choices", value, ", ".join(p.choices))
    elif p.kind in ("site", "statistic") and (not isinstance(value, str) or not value):
        bad(p.name, "wrong type", value, f"a string: {p.description}")
    elif p.kind == "statistic" and not _single_valued(value):
        bad(
            p.name,
            "not a single-valued statistic without settings",
            value,
            "trial:KEY or one of: "
            + ", ".join(n for n in STATISTICS if _single_valued(n))
            + _near(value, list(STATISTICS)),
        )
    else:
        return True
    return False


def _sites_setting(bad: Callable[..., None], p: Any, value: Any) -> tuple[Any, ...] | None:
    """The site selectors of a ``sites`` setting, the bad ones reported and left out;
    ``None`` (reported) if ``value`` is not a non-empty array of strings."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        bad(p.name, "wrong type", value, f"a non-empty array of strings: {p.description}")
        return None
    selectors = []
    for v in value:
        try:
            selectors.append(_site_entry(v))
        except PathError as e:
            what = str(e).removeprefix(f"{v!r}: ")  # the value is shown already
            bad(p.name, what, v, f"a site name or {SELECTOR_FORMS}")
    return tuple(selectors)


def _single_valued(name: str) -> bool:
    if _is_trial_key(name):
        return True
    s = STATISTICS.get(name)
    return s is not None and not s.interval and not any(p.required for p in s.params)


def _pattern(bad: Callable[..., None], statistic: Any, entry: PatternEntry) -> Pattern | None:
    kind = entry.pattern
    interval_statistic = statistic is not None and statistic.interval
    if kind in _INTERVAL_PATTERNS and not interval_statistic:
        allowed = ", ".join(p for p in PATTERNS if p not in _INTERVAL_PATTERNS)
        bad("pattern", "applies to an interval statistic only (such as itt_or_ci)", kind, allowed)
        return None
    if interval_statistic and kind not in _INTERVAL_PATTERNS:
        allowed = " or ".join(_INTERVAL_PATTERNS)
        bad("pattern", f"{entry.statistic} is an interval", kind, allowed)
        return None
    if kind in _PATTERNS_WITH_VALUE and entry.value is None:
        bad("value", f"missing: required by pattern {kind!r}, allowed: a number")
        return None
    if kind not in _PATTERNS_WITH_VALUE and entry.value is not None:
        bad("value", f"not used by pattern {kind!r}", entry.value)
    if kind == "between":
        if entry.interval is None:
            bad("interval", f"missing: required by pattern 'between', allowed: {_PAIR}")
            return None
        if entry.interval[0] > entry.interval[1]:
            bad("interval", "low is above high", list(entry.interval), _PAIR)
            return None
    elif entry.interval is not None:
        bad("interval", "only pattern 'between' uses it", list(entry.interval))
    interval = (entry.interval[0], entry.interval[1]) if entry.interval is not None else None
    return Pattern(kind, entry.value, interval)


def _observation(
    bad: Callable[..., None], statistic: Any, entry: ObservedEntry | CountEntry
) -> Observation | None:
    share = statistic is not None and statistic.share
    ratio = statistic is not None and statistic.ratio
    if not _takes_observation(bad, statistic, entry, share=share):
        return None
    value = _observed_value(bad, entry, share=share, ratio=ratio)
    if value is None:
        return None
    se, n = entry.se, entry.n
    ci = (entry.ci[0], entry.ci[1]) if entry.ci is not None else None
    if se is not None and ci is not None:
        bad("se", "give se or ci, not both")
        return None
    if ci is not None:
        se = _se_from_ci(bad, ci, value, ratio=ratio)
    elif se is None and n is not None:
        se = _se_from_n(bad, value, n)
    else:
        return Observation(value=value, se=se, ci=ci, n=n)
    # A standard error from ci or n is None when they were bad (and reported).
    return Observation(value=value, se=se, ci=ci, n=n) if se is not None else None


def _takes_observation(
    bad: Callable[..., None], statistic: Any, entry: ObservedEntry | CountEntry, *, share: bool
) -> bool:
    """Whether ``statistic`` can be given an observed value (a count and n: a share only)."""
    if statistic is not None and statistic.interval:
        bad(
            None,
            f"{entry.statistic} is an interval: give a pattern (contains or excludes), "
            "not observed",
        )
        return False
    counted = isinstance(entry, CountEntry)
    if (counted or entry.n is not None) and not share and not _is_trial_key(entry.statistic):
        key = "count" if counted else "n"
        bad(key, "only share statistics take count and n", getattr(entry, key))
        return False
    return True


def _observed_value(
    bad: Callable[..., None], entry: ObservedEntry | CountEntry, *, share: bool, ratio: bool
) -> float | None:
    """The observed value, or the share ``count / n``; ``None`` (reported) if out of range."""
    if isinstance(entry, CountEntry):
        if entry.count > entry.n:
            bad("count", "more than n", entry.count, f"a whole number from 0 to n = {entry.n}")
            return None
        return entry.count / entry.n
    value = entry.observed
    if ratio and not value > 0:
        bad("observed", "out of range", value, "a ratio > 0")
        return None
    if share and not 0 <= value <= 1:
        bad("observed", "out of range", value, "a share from 0 to 1")
        return None
    return value


def _se_from_ci(
    bad: Callable[..., None], ci: tuple[float, float], value: float, *, ratio: bool
) -> float | None:
    """The standard error (on the log scale for a ratio) that a 95% interval implies;
    ``None`` (reported) if the interval is reversed, empty or does not hold ``value``."""
    shown = list(ci)
    if ci[0] > ci[1]:
        bad("ci", "low is above high", shown, _PAIR)
        return None
    if not ci[0] <= value <= ci[1]:
        bad("ci", f"does not contain observed {value:g}", shown, "low <= observed <= high")
        return None
    if ratio and ci[0] <= 0:
        bad("ci", "not positive", shown, "a ratio's interval, low > 0")
        return None
    if ci[0] == ci[1]:
        bad("ci", "has no width", shown, "low < high")
        return None
    width = math.log(ci[1]) - math.log(ci[0]) if ratio else ci[1] - ci[0]
    return width / (2 * Z_95)


def _se_from_n(bad: Callable[..., None], value: float, n: int) -> float | None:
    """The standard error of a share observed among ``n``; ``None`` (reported) if
    ``value`` is not a share."""
    if not 0 <= value <= 1:
        bad("n", f"observed {value:g} is not a share", n, "n only with a share")
        return None
    return math.sqrt(max(value * (1 - value), 0.25 / n) / n)  # never 0 at 0% or 100%


def _bind_statistic(
    name: str, settings: Mapping[str, Any], scenario: Scenario, where: str, problems: list[str]
) -> BoundStatistic:
    sites = list(scenario.sites)
    resolved: dict[str, Any] = {}
    for key, value in settings.items():
        statistic = STATISTICS[name]
        kind = statistic.param(key).kind  # type: ignore[union-attr]
        if kind == "site":
            if value not in sites:
                problems.append(
                    f"{where}.{key}: value {show(value)}: no such site in scenario "
                    f"{scenario.name!r}; {_site_choices(value, sites)}"
                )
                continue
            resolved[key] = sites.index(value)
        elif kind == "sites":
            chosen = _select_sites(value, scenario, f"{where}.{key}", problems)
            if chosen is not None:
                if len(chosen) == len(sites):
                    problems.append(
                        f"{where}.{key}: value {show(list(value))}: selects every site of "
                        f"{scenario.name!r}; at least one other site is needed to compare with"
                    )
                    continue
                resolved[key] = chosen
        elif kind == "statistic":
            resolved[key] = BoundStatistic(value)
        else:
            resolved[key] = value
    return BoundStatistic(name, resolved)


def _select_sites(
    entries: Sequence[str], scenario: Scenario, where: str, problems: list[str]
) -> tuple[int, ...] | None:
    names = list(scenario.sites)
    chosen: set[int] = set()
    ok = True
    for entry in entries:
        if not _is_selector(entry):
            if entry in names:
                chosen.add(names.index(entry))
                continue
            problems.append(
                f"{where}: value {show(entry)}: no such site in scenario {scenario.name!r}; "
                f"{_site_choices(entry, names)}"
            )
            ok = False
            continue
        try:
            hits = parse_selector(entry).select(scenario.sites)
        except PathError as e:
            hits, why = (), str(e)
        else:
            why = f"selects no site of scenario {scenario.name!r}"
        if not hits:
            problems.append(f"{where}: value {show(entry)}: {why}")
            ok = False
        chosen |= {names.index(h) for h in hits}
    return tuple(sorted(chosen)) if ok else None


def _site_choices(value: str, sites: list[str]) -> str:
    hint = suggest_among(value, sites)
    if hint.startswith("did you mean"):
        return hint
    return "its sites are " + ", ".join(sites) + f" (or select them: {SELECTOR_FORMS})"


def _is_selector(entry: str) -> bool:
    return entry.startswith(("sites.", "sites[")) or "=" in entry


def _site_entry(entry: str) -> str:
    """A ``sites`` entry as it is written now: a site name, or a selector (an old bare
    ``host=nhs`` becomes ``sites[host=nhs]``, with a note); ``PathError`` if malformed."""
    if not _is_selector(entry):
        return entry
    return parse_selector(entry, old_spelling=True).text
