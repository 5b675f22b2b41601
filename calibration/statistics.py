"""Statistics a target compares: how each is extracted from one simulated trial.

A *statistic* turns one replicate's ``Results`` into a number (or, for an
interval statistic, a ``(low, high)`` pair), computed the way the trial papers
computed theirs. Targets name a statistic from ``STATISTICS``, or ``trial:KEY``
for any key of ``Results.trial`` (``trial:readmit_uc``, ``trial:n_2plus``,
``trial:engaged_share_A``...), so a user holding the full trial texts can add a
per-arm or per-site figure without code.

Extractors read only ``Results.trial`` and ``Results.participant_arrays`` (plain
numpy columns: ``arm`` 0 usual care / 1 peer support, ``met`` and ``engaged``
booleans, ``first_contact_min``, ``rb_activities`` with -1 where there was no
first contact, ``non_heterosexual``), never the pandas tables, so that they cost
next to nothing on the workers. A statistic that cannot be computed for a
replicate (a regression that does not converge, a site without participants) is
NaN for that replicate.

``describe_statistics()`` lists the registry for ``peersim calibrate --list-statistics``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from simulation.outcomes import OUTCOMES, Outcome, canonical, note, outcome
from simulation.results import Results
from simulation.stats import logistic_regression

TRIAL_PREFIX = "trial:"
# Covariates of the engagement regression (White et al. 2023): minutes of the first
# contact, relationship-building activities in it, and non-heterosexual orientation.
ENGAGEMENT_COVARIATES: tuple[str, ...] = ("first_contact_min", "rb_activities", "non_heterosexual")
# Fewer participants with a first contact than this: no regression (NaN).
MIN_REGRESSION_SAMPLE = 20
# Sites needed for a correlation across sites.
MIN_SITES_FOR_CORRELATION = 3

Value = float | tuple[float, float]
ParamKind = Literal["sites", "site", "statistic", "bool", "choice"]


@dataclass(frozen=True)
class Param:
    """A setting of a statistic, given as a key of the target's table."""

    name: str
    kind: ParamKind
    description: str
    required: bool = False
    choices: tuple[str, ...] = ()
    default: Any = None


@dataclass(frozen=True)
class Statistic:
    """One entry of the registry; its name, label, unit and direction are the
    outcome registry's (``simulation.outcomes``), ``detail`` says how the trial
    papers computed it.

    ``interval``: the statistic is a ``(low, high)`` pair (only patterns
    ``contains``/``excludes`` apply). ``ratio``: compared on the log scale (an
    odds ratio; a reported SE is the SE of the log). ``share``: a proportion, so a
    target may give ``count`` and ``n`` and the binomial SE follows.
    """

    name: str
    detail: str
    compute: Callable[[ReplicateView, Mapping[str, Any]], Value]
    interval: bool = False
    ratio: bool = False
    share: bool = False
    params: tuple[Param, ...] = ()

    @property
    def outcome(self) -> Outcome:
        return outcome(self.name)

    @property
    def description(self) -> str:
        """Label and unit from the outcome registry, then how it is computed."""
        return f"{self.outcome.heading()}: {self.detail}" if self.detail else self.outcome.heading()

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


class Statistics(Mapping[str, Statistic]):
    """The statistics by name. An old spelling (``simulation.outcomes.ALIASES``)
    finds its statistic too, for one release, but is not listed."""

    def __init__(self, statistics: Mapping[str, Statistic]) -> None:
        self._by_name = dict(statistics)

    def __getitem__(self, name: str) -> Statistic:
        return self._by_name[canonical(name)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)


class ReplicateView:
    """One replicate's results, with the quantities several statistics share
    (the engagement regression) computed once."""

    def __init__(self, results: Results) -> None:
        self.results = results
        self.trial = results.trial
        self.participants = results.participant_arrays
        self.site_names = results.site_names
        self._fits: dict[tuple[str, ...], dict[str, float]] = {}

    def trial_value(self, key: str) -> float:
        if key not in self.trial:
            raise KeyError(key)
        return float(self.trial[key])

    def site_values(self, name: str) -> np.ndarray:
        """The outcome ``name`` at every site, in site order (``simulation.outcomes``)."""
        return outcome(name).of_sites(self.results)

    def engagement_odds_ratios(self, covariates: tuple[str, ...]) -> dict[str, float]:
        """Odds ratios of engaging per unit of each covariate, from a logistic
        regression of ``engaged`` on ``covariates`` among participants who met
        their peer worker (they alone have a first contact); NaN if it cannot be
        fitted (too few participants, no variation, separation)."""
        if covariates not in self._fits:
            self._fits[covariates] = self._fit(covariates)
        return self._fits[covariates]

    def _fit(self, covariates: tuple[str, ...]) -> dict[str, float]:
        p = self.participants
        met = np.asarray(p["met"], dtype=bool)
        nan = dict.fromkeys(covariates, math.nan)
        if met.sum() < MIN_REGRESSION_SAMPLE:
            return nan
        x = np.column_stack([np.asarray(p[c], dtype=float)[met] for c in covariates])
        y = np.asarray(p["engaged"], dtype=float)[met]
        if np.any(x.std(axis=0) == 0) or y.min() == y.max():
            return nan
        try:
            with np.errstate(over="ignore"):  # exp overflows on the way to separation
                beta, _ = logistic_regression(x, y)
        except (ValueError, np.linalg.LinAlgError):
            return nan
        with np.errstate(over="ignore"):
            ors = np.exp(beta[1:])
        return {
            c: float(v) if math.isfinite(v) else math.nan
            for c, v in zip(covariates, ors, strict=True)
        }


@dataclass(frozen=True)
class BoundStatistic:
    """A statistic with its settings resolved against a scenario (site names to
    indices), ready to run on a worker: ``bound(view) -> value``."""

    name: str
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Bound once per target on the main process (unpickling skips this): the user
        # sees the note once, not once per replicate.
        if (spelling := note(self.name)) is not None:
            warnings.warn(f"targets: statistic {spelling}", FutureWarning, stacklevel=3)

    def __call__(self, view: ReplicateView) -> Value:
        if self.name.startswith(TRIAL_PREFIX):
            return view.trial_value(self.name.removeprefix(TRIAL_PREFIX))
        return STATISTICS[self.name].compute(view, self.settings)

    @property
    def interval(self) -> bool:
        return self.name in STATISTICS and STATISTICS[self.name].interval

    @property
    def ratio(self) -> bool:
        return self.name in STATISTICS and STATISTICS[self.name].ratio


# --- the extractors ------------------------------------------------------------------


def _of_trial(name: str) -> Callable[[ReplicateView, Mapping[str, Any]], Value]:
    """The registry's whole-trial value of outcome ``name``."""

    def compute(view: ReplicateView, settings: Mapping[str, Any]) -> Value:
        return outcome(name).of_trial(view.results)

    compute.__name__ = f"trial_{name}"
    return compute


def _itt_or_ci(view: ReplicateView, settings: Mapping[str, Any]) -> Value:
    return (view.trial_value("itt_or_lo"), view.trial_value("itt_or_hi"))


def _engaged_or(covariate: str) -> Callable[[ReplicateView, Mapping[str, Any]], Value]:
    def compute(view: ReplicateView, settings: Mapping[str, Any]) -> Value:
        covariates = ENGAGEMENT_COVARIATES if settings.get("adjusted", True) else (covariate,)
        return view.engagement_odds_ratios(covariates)[covariate]

    compute.__name__ = f"engaged_or_{covariate}"
    return compute


def _difference_of(a: str, b: str) -> Callable[[ReplicateView, Mapping[str, Any]], Value]:
    def compute(view: ReplicateView, settings: Mapping[str, Any]) -> Value:
        return view.trial_value(a) - view.trial_value(b)

    compute.__name__ = f"{a}_minus_{b}"
    return compute


def _difference(view: ReplicateView, settings: Mapping[str, Any]) -> Value:
    a, b = settings["a"], settings["b"]
    va, vb = a(view), b(view)
    if isinstance(va, tuple) or isinstance(vb, tuple):
        raise ValueError("difference needs two single-valued statistics")
    return va - vb


def _site_value(name: str) -> Callable[[ReplicateView, Mapping[str, Any]], Value]:
    def compute(view: ReplicateView, settings: Mapping[str, Any]) -> Value:
        return float(view.site_values(name)[settings["site"]])

    compute.__name__ = f"site_{name}"
    return compute


def _correlation(view: ReplicateView, settings: Mapping[str, Any]) -> Value:
    engaged = view.site_values("engaged_share")
    fidelity = view.site_values("fidelity")
    ok = np.isfinite(engaged) & np.isfinite(fidelity)
    return correlation(engaged[ok], fidelity[ok], settings.get("method", "pearson"))


def correlation(x: np.ndarray, y: np.ndarray, method: str = "pearson") -> float:
    """Pearson (or Spearman: Pearson of average ranks) correlation; NaN for fewer
    than ``MIN_SITES_FOR_CORRELATION`` points or no spread."""
    if len(x) < MIN_SITES_FOR_CORRELATION:
        return math.nan
    if method == "spearman":
        x, y = average_ranks(x), average_ranks(y)
    dx, dy = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return float(dx @ dy) / denominator if denominator > 0 else math.nan


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing their average rank."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for v in np.unique(values):
        tied = values == v
        ranks[tied] = ranks[tied].mean()
    return ranks


def _low_sites_gap(view: ReplicateView, settings: Mapping[str, Any]) -> Value:
    listed = np.zeros(len(view.site_names), dtype=bool)
    listed[list(settings["sites"])] = True
    measure = settings.get("measure", "both")
    prefixes = {
        "both": ("engaged_share", "fidelity"),
        "engagement": ("engaged_share",),
        "fidelity": ("fidelity",),
    }[measure]
    gaps = []
    for prefix in prefixes:
        values = view.site_values(prefix)
        low, others = values[listed], values[~listed]
        low, others = low[np.isfinite(low)], others[np.isfinite(others)]
        if not len(low) or not len(others):
            return math.nan
        gaps.append(float(others.mean() - low.mean()))
    return min(gaps)


# Proportions read from Results.trial: a target may give count and n.
_SHARES: tuple[str, ...] = (
    "met_share",
    "allocated_share",
    "engaged_share",
    "readmit_ps",
    "readmit_uc",
    "readmit_2plus",
)

_ADJUSTED = Param(
    "adjusted",
    "bool",
    "true (default): one regression on all three covariates (first-contact minutes, "
    "relationship-building activities, non-heterosexual); false: this covariate alone",
    default=True,
)

_STATISTICS: tuple[Statistic, ...] = (
    *(Statistic(key, f"Results.trial['{key}']", _of_trial(key), share=True) for key in _SHARES),
    Statistic("itt_or", "Results.trial['itt_or']", _of_trial("itt_or"), ratio=True),
    Statistic("log_itt_or", "the natural log of itt_or", _of_trial("log_itt_or")),
    Statistic("itt_or_ci", "Woolf's, an interval statistic", _itt_or_ci, interval=True),
    Statistic(
        "engaged_or_per_first_contact_min",
        "by logistic regression on the simulated participants who met their peer worker, "
        "as White et al. 2023",
        _engaged_or("first_contact_min"),
        ratio=True,
        params=(_ADJUSTED,),
    ),
    Statistic(
        "engaged_or_per_rb_activity",
        "the same regression",
        _engaged_or("rb_activities"),
        ratio=True,
        params=(_ADJUSTED,),
    ),
    Statistic(
        "engaged_or_non_heterosexual",
        "the same regression",
        _engaged_or("non_heterosexual"),
        ratio=True,
        params=(_ADJUSTED,),
    ),
    Statistic("readmit_2plus_minus_uc", "", _difference_of("readmit_2plus", "readmit_uc")),
    Statistic("readmit_ps_minus_uc", "", _difference_of("readmit_ps", "readmit_uc")),
    Statistic(
        "difference",
        "a - b for two single-valued statistics named by keys a and b (an ordering)",
        _difference,
        params=(
            Param("a", "statistic", "the first statistic (a name or trial:KEY)", required=True),
            Param("b", "statistic", "the statistic subtracted", required=True),
        ),
    ),
    Statistic(
        "site_engaged_share",
        "",
        _site_value("engaged_share"),
        share=True,
        params=(Param("site", "site", "the site's name", required=True),),
    ),
    Statistic(
        "site_fidelity",
        "",
        _site_value("fidelity"),
        params=(Param("site", "site", "the site's name", required=True),),
    ),
    Statistic(
        "site_engagement_fidelity_correlation",
        "",
        _correlation,
        params=(
            Param(
                "method",
                "choice",
                "pearson (default) or spearman",
                choices=("pearson", "spearman"),
                default="pearson",
            ),
        ),
    ),
    Statistic(
        "low_sites_below_others",
        "mean of the other sites minus mean of the listed sites, the smaller of the gaps "
        "in engaged share and in fidelity (positive: below on both)",
        _low_sites_gap,
        params=(
            Param(
                "sites",
                "sites",
                'sites, by name or by selector ("sites[host=not_for_profit]", '
                '"sites[geography=rural]"); '
                "a site matching any entry is listed",
                required=True,
            ),
            Param(
                "measure",
                "choice",
                "both (default), engagement or fidelity",
                choices=("both", "engagement", "fidelity"),
                default="both",
            ),
        ),
    ),
)
STATISTICS: Statistics = Statistics({s.name: s for s in _STATISTICS})


def statistic_unit(name: str) -> str | None:
    """The unit of a statistic, or of ``trial:KEY`` when KEY is an outcome; ``None``
    for a key the outcome registry does not know."""
    if name.startswith(TRIAL_PREFIX):
        found = OUTCOMES.get(canonical(name.removeprefix(TRIAL_PREFIX)))
        return found.unit_for() if found is not None else None
    return STATISTICS[name].outcome.unit_for() if name in STATISTICS else None


def describe_statistics() -> str:
    """The registry as text: name, kind and meaning of every statistic."""
    lines = []
    for s in STATISTICS.values():
        kind = "interval" if s.interval else "ratio (log scale)" if s.ratio else "value"
        if s.share:
            kind = "share"
        lines.append(f"{s.name}  [{kind}]\n    {s.description}")
        for p in s.params:
            need = "required" if p.required else f"default {p.default!r}"
            lines.append(f"    {p.name} ({need}): {p.description}")
    lines.append(f"{TRIAL_PREFIX}KEY  [value]\n    any key of Results.trial, e.g. trial:n_2plus")
    return "\n".join(lines)
