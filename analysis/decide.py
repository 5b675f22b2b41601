"""Decisions under uncertainty: which what-if wins, where it fails, what to measure first.

``peersim decide`` (``analysis.cli.decide``) runs a baseline and what-ifs over an
*ensemble*: ``N`` parameter sets drawn from a calibration posterior (weighted
draws of its particles), from the priors (a Latin hypercube through each
prior's quantile function; the site configuration among them where the priors
make it free) or from a sensitivity spec's ranges (a Latin hypercube, uniform on
each range). Set ``k`` of every scenario runs ``R`` replicates with seeds
``SeedSequence(master_seed, spawn_key=(k, r))``: the same parameter values and
the same random numbers (common random numbers), so that the difference between
two scenarios in one set is the lever, given those parameters, and not chance.
A scenario's value in a set is the mean over its ``R`` replicates.

The functions here are pure (arrays and frames in, frames out) so that the
known-answer tests run them on synthetic ensembles:

- ``decision_table``: per option (the baseline and each what-if) the expected
  value, the expected difference from the baseline with its 10th and 90th
  percentiles over the sets, the probability of improvement (the share of sets
  where the option is strictly better than the baseline, "better" being the
  outcome's direction in the registry), regret (in each set, how far the option
  falls short of the best option in that set; its mean and 90th percentile) and
  a rank (by expected value in the better direction, which is also the order of
  expected regret).
- ``pairwise_table``: per ordered pair of options, the share of sets where the
  first is strictly better.
- ``variance_shares``: the value of information of each parameter about a
  what-if's effect, as the first-order variance share
  ``Var(E[Y | X_i]) / Var(Y)``, estimated by binning ``X_i`` into equal-count
  bins (a categorical parameter: its categories) with the bias-corrected ANOVA
  estimate (omega squared) beside the raw one (Saltelli et al. 2008, *Global
  Sensitivity Analysis: The Primer*, ch. 1 and 4; the binning estimator of
  Strong & Oakley 2013). It is the expected share of the effect's variance that
  knowing the parameter exactly would remove.
- ``evppi``: the expected value of partial perfect information of each
  parameter for the choice among the options (Strong & Oakley 2013, "An
  efficient method for computing single-parameter partial expected value of
  perfect information", *Medical Decision Making* 33(6):755-766): with the sets
  ordered by the parameter and cut into bins, ``mean over bins of max over
  options of the bin mean`` minus ``max over options of the overall mean``, in
  the outcome's unit: how much better the chosen option would be, on average,
  if the parameter were known before choosing. Its upward bias (the best of
  noisy bin means) is measured by reassigning the sets to bins at random and
  subtracted.
- ``failure_box``: scenario discovery with PRIM (Friedman & Fisher 1999;
  Bryant & Lempert 2010), ``ema_workbench.analysis.prim``: the box of parameter
  space (ranges, and for the site configuration a set of configurations) where
  the what-if fails to improve on the baseline, with its coverage (the share of
  all failures inside it) and density (the share of the sets inside it that are
  failures). From PRIM's peeling trajectory the box with the best balance of
  the two (their harmonic mean) among those restricting at least one parameter
  where at least half the sets fail is chosen, then its restrictions that chance
  alone could have made (quasi-p above 0.05, Bryant & Lempert's one-sided
  binomial test) are dropped one by one; the whole trajectory is kept.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from calibration.priors import SITE_CONFIGURATION, PriorSet, apply_parameters, get_parameter
from simulation import Scenario
from simulation.outcomes import OUTCOMES
from simulation.rng import Streams

if TYPE_CHECKING:
    from analysis.sensitivity_spec import Spec
    from calibration.posterior import Posterior
    from simulation.runner import Job

DEFAULT_N_SETS = 64
MIN_SETS = 8  # fewer sets give no bins to speak of, and no box
DEFAULT_REPLICATES = 2
OVERALL = "overall"
# The stream the ensemble's draws come from (no model stream has this name).
ENSEMBLE_STREAM = "decide/ensemble-draw"
SET, SCENARIO, OUTCOME, VALUE = "set", "scenario", "outcome", "value"
PARTICLE = "particle"
# Regret and the difference: the percentiles reported (of the sets).
REGRET_QUANTILE = 0.9
WORST_TENTH = 0.1
# PRIM's settings: ema_workbench's defaults (peel 5% of the box at a time, stop at
# 5% of the sets); fewer failures than MIN_FAILURES give no box.
PEEL_ALPHA = 0.05
MASS_MIN = 0.05
MIN_FAILURES = 3
# A restriction whose quasi-p (one-sided binomial test, Bryant & Lempert 2010) exceeds
# this is dropped from the box: chance alone could have made it.
QUASI_P_MAX = 0.05
# A box is reported only where at least half its sets fail: below that it does not
# say "here the what-if fails", only "here it fails a little more often".
DENSITY_MIN = 0.5
# EVPPI's bias: measured over this many random reassignments of the sets to bins,
# drawn from a generator of its own (the same ensemble gives the same answer).
N_NULL = 200
NULL_SEED = 20241

DECISION_COLUMNS: tuple[str, ...] = (
    "outcome",
    "option",
    "role",
    "n_sets",
    "mean",
    "diff_mean",
    "diff_p10",
    "diff_p90",
    "p_improve",
    "p_worse",
    "regret_mean",
    "regret_p90",
    "noise_share",
    "rank",
)
PAIRWISE_COLUMNS: tuple[str, ...] = (
    "outcome",
    "option",
    "versus",
    "p_better",
    "p_worse",
    "diff_mean",
    "n_sets",
)
VOI_COLUMNS: tuple[str, ...] = (
    "outcome",
    "whatif",
    "parameter",
    "variance_share",
    "variance_share_raw",
    "variance_removed",
    "n_bins",
    "rank",
)
EVPPI_COLUMNS: tuple[str, ...] = (
    "outcome",
    "parameter",
    "evppi",
    "evppi_raw",
    "evppi_null",
    "share_of_evpi",
    "evpi",
    "n_bins",
    "rank",
)
BOX_COLUMNS: tuple[str, ...] = (
    "outcome",
    "whatif",
    "box",
    "n_sets",
    "n_failures",
    "coverage",
    "density",
    "mass",
    "n_restricted",
    "parameter",
    "lower",
    "upper",
    "categories",
    "quasi_p",
)


# The outcomes a decision can be taken on: a whole-trial value and a better direction.
DECISION_OUTCOMES: tuple[str, ...] = tuple(
    o.name for o in OUTCOMES.values() if o.value is not None and o.better != "none"
)


# --- the ensemble ---------------------------------------------------------------------


@dataclass(frozen=True)
class Ensemble:
    """``N`` parameter sets: ``sets`` has a row per set (index ``0 .. N-1``) and a
    column per parameter (a path as in a priors file or a sensitivity spec),
    natural-scale numbers; the site configuration as its sampled index (option
    ``floor(index)``). ``options``: the site configurations' names, where the
    ensemble draws one. ``assignments``: for a spec's ensemble, per set the values
    its parameters set, by concrete path (a spec's ``scale`` multiplies each site's
    own value, an integer field is rounded); empty for priors and posteriors, whose
    values apply as they are (``calibration.priors.apply_parameters``)."""

    kind: str  # "posterior", "priors" or "spec"
    source: str  # the folder or file it came from
    sets: pd.DataFrame
    options: tuple[str, ...] = ()
    assignments: tuple[Mapping[str, float], ...] = ()

    @property
    def n_sets(self) -> int:
        return len(self.sets)

    @property
    def parameters(self) -> list[str]:
        return [c for c in self.sets.columns if c != PARTICLE]

    @property
    def targets(self) -> list[str]:
        """The concrete paths the ensemble sets (the parameters themselves, or a
        spec's per-site paths)."""
        if not self.assignments:
            return self.parameters
        return list(dict.fromkeys(p for a in self.assignments for p in a))

    def values(self, k: int) -> dict[str, float]:
        row = self.sets.iloc[k]
        return {p: float(row[p]) for p in self.parameters}

    def scenario(self, base: Scenario, k: int) -> Scenario:
        """``base`` with set ``k``'s parameters."""
        if self.assignments:
            return base.with_values(dict(self.assignments[k]))
        return apply_parameters(base, self.values(k))

    def frame(self) -> pd.DataFrame:
        """The sets as the analysis reads them: the site configuration by name (a
        category), every other parameter a float."""
        out = self.sets[self.parameters].astype(float).copy()
        if SITE_CONFIGURATION in out:
            if self.options:
                index = np.clip(np.floor(out[SITE_CONFIGURATION]), 0, len(self.options) - 1)
                names = np.asarray(self.options, dtype=object)[index.astype(int)]
                out[SITE_CONFIGURATION] = pd.Categorical(names, categories=list(self.options))
            else:  # a scenario without site configurations ignores the draw
                out = out.drop(columns=SITE_CONFIGURATION)
        return out

    def record(self) -> dict[str, Any]:
        """JSON-ready, for an interrupted analysis's record."""
        return {
            "kind": self.kind,
            "source": self.source,
            "options": list(self.options),
            "sets": {c: [float(v) for v in self.sets[c]] for c in self.sets.columns},
            "assignments": [dict(a) for a in self.assignments],
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Ensemble:
        sets = pd.DataFrame({str(c): [float(v) for v in vs] for c, vs in record["sets"].items()})
        if PARTICLE in sets:
            sets[PARTICLE] = sets[PARTICLE].astype(np.int64)
        return cls(
            str(record["kind"]),
            str(record["source"]),
            sets,
            tuple(str(o) for o in record["options"]),
            tuple(dict(a) for a in record.get("assignments", [])),
        )


def _ensemble_rng(seed: int) -> np.random.Generator:
    return Streams(np.random.SeedSequence(seed)).get(ENSEMBLE_STREAM)


def prior_ensemble(
    priors: PriorSet, n_sets: int, seed: int, options: Sequence[str] = (), source: str = ""
) -> Ensemble:
    """``n_sets`` sets from the priors: a Latin hypercube on the unit cube (each
    parameter's range cut into ``n_sets`` equal-probability strata, one set in each)
    mapped through each prior's quantile function. A choice's index is uniform on
    ``[0, options)``, so each site configuration gets an equal share of the sets."""
    from scipy.stats import qmc

    if n_sets < 1:
        raise ValueError(f"an ensemble needs at least one set (got {n_sets})")
    cube = qmc.LatinHypercube(d=len(priors.priors), rng=_ensemble_rng(seed)).random(n_sets)
    sets = pd.DataFrame(
        {p.parameter: p.ppf(cube[:, j]) for j, p in enumerate(priors.priors)}, dtype=float
    )
    return Ensemble("priors", source or str(priors.path or "(priors)"), sets, tuple(options))


def posterior_ensemble(
    posterior: Posterior, n_sets: int, seed: int, options: Sequence[str] = ()
) -> Ensemble:
    """``n_sets`` particles drawn from the posterior by weight (with replacement:
    the sets then carry equal weight), their index in column ``particle``."""
    if n_sets < 1:
        raise ValueError(f"an ensemble needs at least one set (got {n_sets})")
    drawn = _ensemble_rng(seed).choice(posterior.n_particles, size=n_sets, p=posterior.weights)
    rows = [posterior.values(int(k)) for k in drawn]
    sets = pd.DataFrame(rows, columns=list(posterior.parameters), dtype=float)
    sets[PARTICLE] = drawn.astype(np.int64)
    source = str(posterior.source) if posterior.source is not None else "(posterior)"
    return Ensemble("posterior", source, sets, tuple(options))


def spec_ensemble(spec: Spec, n_sets: int, seed: int, source: str = "") -> Ensemble:
    """``n_sets`` sets from a sensitivity spec's ranges: a Latin hypercube, uniform on
    each parameter's ``[low, high]`` (a value, or a ``scale`` of the base's own)."""
    from scipy.stats import qmc

    if n_sets < 1:
        raise ValueError(f"an ensemble needs at least one set (got {n_sets})")
    cube = qmc.LatinHypercube(d=len(spec.parameters), rng=_ensemble_rng(seed)).random(n_sets)
    lows = np.array([p.low for p in spec.parameters])
    highs = np.array([p.high for p in spec.parameters])
    x = lows + cube * (highs - lows)
    sets = pd.DataFrame(x, columns=spec.names, dtype=float)
    assignments = tuple(
        {
            path: float(value)
            for j, p in enumerate(spec.parameters)
            for path, value in p.assignments(float(x[k, j])).items()
        }
        for k in range(n_sets)
    )
    return Ensemble("spec", source or str(spec.path), sets, (), assignments)


def changed_parameters(base: Scenario, scenario: Scenario, parameters: Sequence[str]) -> list[str]:
    """Parameters of the ensemble whose value in ``scenario`` differs from ``base``:
    the ensemble's values would overwrite a what-if's change to them."""
    changed = []
    for p in parameters:
        if p == SITE_CONFIGURATION:
            a, b = base.site_configurations, scenario.site_configurations
            if (a.selected if a else None) != (b.selected if b else None):
                changed.append(p)
            continue
        try:
            a_value, b_value = get_parameter(base, p), get_parameter(scenario, p)
        except (KeyError, ValueError):  # a site one of them lacks: the sets' check says so
            continue
        if not math.isclose(a_value, b_value, rel_tol=1e-12):
            changed.append(p)
    return changed


def set_seed(master_seed: int, k: int, r: int) -> np.random.SeedSequence:
    """The seed of replicate ``r`` of set ``k``, the same for every scenario."""
    return np.random.SeedSequence(master_seed, spawn_key=(k, r))


def decision_jobs(
    scenarios: Mapping[str, Scenario], ensemble: Ensemble, seed: int, n_replicates: int
) -> list[Job]:
    """Replicates ``0 .. n_replicates - 1`` of every set of every scenario, tagged
    ``scenario``, ``set`` and ``replicate``; replicate ``r`` of set ``k`` has the same
    seed in every scenario (common random numbers)."""
    from simulation.runner import Job

    if n_replicates < 1:
        raise ValueError(f"n_replicates must be at least 1 (got {n_replicates})")
    jobs = []
    for label, base in scenarios.items():
        for k in range(ensemble.n_sets):
            scenario = ensemble.scenario(base, k)
            for r in range(n_replicates):
                jobs.append(
                    Job(
                        f"{label}/set-{k}/replicate-{r}",
                        scenario,
                        set_seed(seed, k, r),
                        {SCENARIO: label, SET: k, "replicate": r},
                    )
                )
    return jobs


def set_values(values: pd.DataFrame, outcomes: Sequence[str]) -> pd.DataFrame:
    """Per outcome, scenario and set, the mean over the set's replicates of the whole
    trial's value (``value``), with ``n_replicates`` (the finite ones); from the long
    values of ``analysis.levers.outcome_values`` with the jobs' tags."""
    rows = values[(values["scope"].astype(str) == OVERALL) & values[OUTCOME].isin(outcomes)]
    grouped = rows.groupby([OUTCOME, SCENARIO, SET], sort=True)[VALUE]
    out = grouped.agg(value="mean", n_replicates="count").reset_index()
    out[OUTCOME] = out[OUTCOME].astype(str)
    out[SCENARIO] = out[SCENARIO].astype(str)
    return out


def replicate_noise(
    values: pd.DataFrame, outcome: str, base: str, whatifs: Sequence[str]
) -> pd.DataFrame | None:
    """Per set (index) and what-if (columns), the variance of the set's mean paired
    difference from the baseline that replicate noise alone gives: the variance
    (``ddof=1``) of the replicates' paired differences over their number; None
    with one replicate per set. ``values``: ``analysis.levers.outcome_values``
    with the jobs' tags."""
    rows = values[(values["scope"].astype(str) == OVERALL) & (values[OUTCOME] == outcome)]
    wide = rows.pivot_table(
        index=[SET, "replicate"], columns=SCENARIO, values=VALUE, aggfunc="first"
    )
    if wide.index.get_level_values("replicate").nunique() < 2:
        return None
    diffs = wide[list(whatifs)].sub(wide[base], axis=0)
    grouped = diffs.groupby(level=SET)
    return grouped.var(ddof=1) / grouped.count()


def wide_values(frame: pd.DataFrame, outcome: str, options: Sequence[str]) -> pd.DataFrame:
    """``set_values``'s ``value`` of ``outcome``: a row per set (index), a column per
    option, in ``options``' order."""
    rows = frame[frame[OUTCOME] == outcome]
    wide = rows.pivot(index=SET, columns=SCENARIO, values=VALUE)
    return wide.reindex(columns=list(options)).sort_index()


# --- robustness -----------------------------------------------------------------------


def _sign(better: str) -> float:
    if better not in ("higher", "lower"):
        raise ValueError(f"a decision needs a direction, 'higher' or 'lower' (got {better!r})")
    return 1.0 if better == "higher" else -1.0


def _complete(wide: pd.DataFrame) -> pd.DataFrame:
    """The sets where every option's value is finite."""
    return wide[np.isfinite(wide.to_numpy(float)).all(axis=1)]


def decision_table(
    wide: pd.DataFrame,
    base: str,
    better: str,
    outcome: str = "",
    noise_var: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``DECISION_COLUMNS``, one row per option (``wide``'s columns: values per set,
    the baseline ``base`` among them), baseline first.

    Over the sets where every option is defined: ``mean``; ``diff_*`` of the
    option minus the baseline (mean, 10th and 90th percentile); ``p_improve`` and
    ``p_worse``, the share of sets where the option is strictly better or worse
    than the baseline in direction ``better``; regret, the best option's value in
    the set minus the option's (in the better direction, so >= 0), its mean and
    90th percentile; ``noise_share``, the share of the variance of the difference
    across sets that is replicate noise (``noise_var``: per set, a column per
    what-if, the variance of its mean paired difference from replicate noise
    alone, as from ``replicate_noise``; NaN without it); and
    ``rank`` (1: the best expected value)."""
    sign = _sign(better)
    data = _complete(wide)
    if data.empty:
        raise ValueError("no set where every option has a value")
    values = data.to_numpy(float)
    options = [str(c) for c in data.columns]
    b = options.index(base)
    gain = sign * values  # larger is better
    regret = gain.max(axis=1, keepdims=True) - gain
    diff = values - values[:, [b]]
    means = gain.mean(axis=0)
    order = np.argsort(-means, kind="stable")
    ranks = np.empty(len(options), dtype=np.int64)
    ranks[order] = np.arange(1, len(options) + 1)
    rows = []
    for j, option in enumerate(options):
        d = diff[:, j]
        noise = math.nan
        if noise_var is not None and option in noise_var and j != b:
            var_d = float(np.var(d, ddof=1)) if len(d) > 1 else math.nan
            within = noise_var[option].reindex(data.index).to_numpy(float)
            if var_d > 0 and np.isfinite(within).all():
                noise = min(float(within.mean()) / var_d, 1.0)
        rows.append(
            {
                "outcome": outcome,
                "option": option,
                "role": "baseline" if j == b else "whatif",
                "n_sets": len(data),
                "mean": float(values[:, j].mean()),
                "diff_mean": float(d.mean()) + 0.0,
                "diff_p10": float(np.quantile(d, WORST_TENTH)) + 0.0,
                "diff_p90": float(np.quantile(d, 1 - WORST_TENTH)) + 0.0,
                "p_improve": float(np.mean(sign * d > 0)),
                "p_worse": float(np.mean(sign * d < 0)),
                "regret_mean": float(regret[:, j].mean()),
                "regret_p90": float(np.quantile(regret[:, j], REGRET_QUANTILE)),
                "noise_share": noise,
                "rank": int(ranks[j]),
            }
        )
    return pd.DataFrame(rows, columns=list(DECISION_COLUMNS))


def pairwise_table(wide: pd.DataFrame, better: str, outcome: str = "") -> pd.DataFrame:
    """``PAIRWISE_COLUMNS``: per ordered pair of distinct options, the share of sets
    where ``option`` is strictly better (``p_better``) or worse than ``versus``, and
    the mean of ``option - versus``."""
    sign = _sign(better)
    data = _complete(wide)
    options = [str(c) for c in data.columns]
    rows = []
    for a in options:
        for b in options:
            if a == b:
                continue
            d = (data[a] - data[b]).to_numpy(float)
            rows.append(
                {
                    "outcome": outcome,
                    "option": a,
                    "versus": b,
                    "p_better": float(np.mean(sign * d > 0)) if len(d) else math.nan,
                    "p_worse": float(np.mean(sign * d < 0)) if len(d) else math.nan,
                    "diff_mean": float(d.mean()) + 0.0 if len(d) else math.nan,
                    "n_sets": len(d),
                }
            )
    return pd.DataFrame(rows, columns=list(PAIRWISE_COLUMNS))


# --- value of information ----------------------------------------------------------------


def default_bins(n_sets: int) -> int:
    """Bins for the binning estimators: about the square root of the sets (8 bins
    of 8 at 64 sets), at least 2 and at most 20."""
    return int(min(max(round(math.sqrt(n_sets)), 2), 20))


def bin_index(x: pd.Series, n_bins: int) -> np.ndarray:
    """Each set's bin: a categorical parameter's category; a number's equal-count bin
    of its rank (ties broken by order, so the bins stay equal)."""
    if isinstance(x.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(x):
        codes = pd.Categorical(x).codes
        return np.asarray(codes, dtype=np.int64)
    ranks = np.argsort(np.argsort(x.to_numpy(float), kind="stable"), kind="stable")
    return (ranks * n_bins // len(x)).astype(np.int64)


def _bins_used(x: pd.Series, n_bins: int) -> int:
    return len(np.unique(bin_index(x, n_bins)))


def variance_share(x: pd.Series, y: np.ndarray, n_bins: int) -> tuple[float, float]:
    """The first-order variance share of ``y`` explained by ``x``, by binning: the raw
    estimate ``SS_between / SS_total`` and the bias-corrected one (omega squared,
    ``(SS_between - (B - 1) MS_within) / (SS_total + MS_within)``, at least 0), which
    removes the share that noise alone puts between ``B`` bin means."""
    y = np.asarray(y, dtype=float)
    bins = bin_index(x, n_bins)
    groups = np.unique(bins)
    n, b = len(y), len(groups)
    total = float(((y - y.mean()) ** 2).sum())
    if n < 2 or total == 0 or b < 2:
        return 0.0, 0.0
    between = sum(
        float((bins == g).sum()) * (float(y[bins == g].mean()) - float(y.mean())) ** 2
        for g in groups
    )
    within = total - between
    ms_within = within / (n - b) if n > b else 0.0
    corrected = (between - (b - 1) * ms_within) / (total + ms_within)
    return float(between / total), float(max(corrected, 0.0))


def variance_shares(
    x: pd.DataFrame, y: np.ndarray, n_bins: int, *, outcome: str = "", whatif: str = ""
) -> pd.DataFrame:
    """``VOI_COLUMNS``: per parameter (``x``'s columns) the share of ``y``'s variance
    knowing it would remove (``variance_share``, bias-corrected; ``_raw``: without the
    correction), that variance itself (``y``'s unit squared) and the rank (1: the
    largest share)."""
    y = np.asarray(y, dtype=float)
    var_y = float(np.var(y, ddof=0))
    rows = []
    for p in x.columns:
        raw, corrected = variance_share(x[p], y, n_bins)
        rows.append(
            {
                "outcome": outcome,
                "whatif": whatif,
                "parameter": str(p),
                "variance_share": corrected,
                "variance_share_raw": raw,
                "variance_removed": corrected * var_y,
                "n_bins": _bins_used(x[p], n_bins),
            }
        )
    table = pd.DataFrame(rows, columns=[c for c in VOI_COLUMNS if c != "rank"])
    return _ranked(table, ["variance_share", "variance_share_raw"], VOI_COLUMNS)


def evpi(net_benefit: np.ndarray) -> float:
    """The expected value of perfect information of all parameters at once:
    ``mean over sets of the best option's value - the best option's mean value``."""
    nb = np.asarray(net_benefit, dtype=float)
    return _clean(float(nb.max(axis=1).mean() - nb.mean(axis=0).max()), nb)


def _clean(value: float, nb: np.ndarray) -> float:
    """``value``, with rounding error (an EVPI of 1e-16 where one option is best in
    every set) turned into the exact 0 it is."""
    scale = float(np.nanmax(np.abs(nb))) if nb.size else 0.0
    return 0.0 if abs(value) <= 1e-12 * max(scale, 1.0) else value


def evppi(
    x: pd.DataFrame,
    net_benefit: np.ndarray,
    n_bins: int,
    *,
    outcome: str = "",
    n_null: int = N_NULL,
) -> pd.DataFrame:
    """``EVPPI_COLUMNS``: per parameter the expected value of partial perfect
    information (Strong & Oakley 2013, binning): ``net_benefit`` has a row per set
    (``x``'s rows) and a column per option, larger better.

    The binned estimate is biased upward: bin means carry noise, and the best of
    noisy means beats the best true mean. ``evppi_null`` is that bias measured: the
    mean estimate over ``n_null`` random reassignments of the sets to the same bins
    (a parameter that says nothing); ``evppi`` is the estimate minus it, at least 0
    (``evppi_raw`` without the correction)."""
    nb = np.asarray(net_benefit, dtype=float)
    total = evpi(nb)
    best_now = float(nb.mean(axis=0).max())
    rng = np.random.default_rng(NULL_SEED)  # the estimator's own: same data, same answer
    rows = []
    for p in x.columns:
        bins = bin_index(x[p], n_bins)
        raw = max(_clean(_binned_best(nb, bins) - best_now, nb), 0.0)
        null = (
            float(np.mean([_binned_best(nb, rng.permutation(bins)) for _ in range(n_null)]))
            - best_now
            if n_null
            else 0.0
        )
        value = max(_clean(raw - max(null, 0.0), nb), 0.0)
        rows.append(
            {
                "outcome": outcome,
                "parameter": str(p),
                "evppi": value,
                "evppi_raw": raw,
                "evppi_null": max(null, 0.0),
                "share_of_evpi": value / total if total > 0 else math.nan,
                "evpi": total,
                "n_bins": _bins_used(x[p], n_bins),
            }
        )
    table = pd.DataFrame(rows, columns=[c for c in EVPPI_COLUMNS if c != "rank"])
    return _ranked(table, ["evppi", "evppi_raw"], EVPPI_COLUMNS)


def _binned_best(nb: np.ndarray, bins: np.ndarray) -> float:
    """The mean over sets of the best option's mean in the set's bin."""
    return sum(
        float((bins == g).sum()) * float(nb[bins == g].mean(axis=0).max()) for g in np.unique(bins)
    ) / len(nb)


def _ranked(table: pd.DataFrame, by: list[str], columns: Sequence[str]) -> pd.DataFrame:
    table = table.sort_values(by, ascending=False, kind="stable").reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1, dtype=np.int64)
    return table[list(columns)]


# --- scenario discovery -----------------------------------------------------------------


@dataclass(frozen=True)
class FailureBox:
    """PRIM's box where a what-if fails: its statistics, its limits per restricted
    parameter (``lower``/``upper`` for a number, ``categories`` for a category;
    ``quasi_p``: Bryant & Lempert's one-sided binomial test of the restriction),
    and the whole peeling trajectory (coverage, density, mass, n restricted)."""

    n_sets: int
    n_failures: int
    coverage: float
    density: float
    mass: float
    limits: pd.DataFrame  # parameter, lower, upper, categories, quasi_p
    trajectory: pd.DataFrame  # step, coverage, density, mass, n_restricted, chosen
    inside: np.ndarray  # bool per set: in the box

    @property
    def restricted(self) -> list[str]:
        return [str(p) for p in self.limits["parameter"]]


def failure_box(
    x: pd.DataFrame,
    fails: np.ndarray,
    *,
    peel_alpha: float = PEEL_ALPHA,
    mass_min: float = MASS_MIN,
) -> FailureBox | None:
    """The PRIM box of ``x``'s parameter space where ``fails`` is true (see the module
    docstring for the choice on the trajectory); None where there are fewer than
    ``MIN_FAILURES`` failures, where everything fails, or where no box restricts a
    parameter."""
    y = np.asarray(fails, dtype=bool)
    n_failures = int(y.sum())
    if n_failures < MIN_FAILURES or n_failures == len(y):
        return None
    prim = _ema_prim()
    data = x.reset_index(drop=True).copy()
    for column in data.columns:  # PRIM reads categories by dtype
        if not isinstance(data[column].dtype, pd.CategoricalDtype):
            data[column] = data[column].astype(float)
    with warnings.catch_warnings():  # pandas deprecations inside ema_workbench
        warnings.filterwarnings("ignore", module="ema_workbench")
        return _failure_box(prim, data, y, n_failures, peel_alpha=peel_alpha, mass_min=mass_min)


def _failure_box(
    prim: Any,
    data: pd.DataFrame,
    y: np.ndarray,
    n_failures: int,
    *,
    peel_alpha: float,
    mass_min: float,
) -> FailureBox | None:
    finder = prim.Prim(
        data, y.astype(int), peel_alpha=peel_alpha, paste_alpha=peel_alpha, mass_min=mass_min
    )
    box = finder.find_box()
    if box is None:
        return None
    steps = _steps(box.peeling_trajectory)
    c, d = steps["coverage"].to_numpy(), steps["density"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        balance = np.where(c + d > 0, 2 * c * d / (c + d), 0.0)
    balance[(steps["n_restricted"].to_numpy() == 0) | (d < DENSITY_MIN)] = -1.0
    i = int(np.argmax(balance))
    if balance[i] < 0:
        return None
    box.select(i)
    limits = _limits(box.box_lims[i], finder.box_init, box.p_values[i])
    # Bryant & Lempert's pruning: drop the least significant restriction while its
    # quasi-p exceeds QUASI_P_MAX (each drop is a new step on the trajectory).
    while len(limits) and float(limits["quasi_p"].max()) > QUASI_P_MAX:
        weakest = str(limits.loc[limits["quasi_p"].idxmax(), "parameter"])
        box.drop_restriction(weakest)
        i = len(box.box_lims) - 1
        limits = _limits(box.box_lims[i], finder.box_init, box.p_values[i])
    if limits.empty:
        return None
    steps = _steps(box.peeling_trajectory)
    c, d = steps["coverage"].to_numpy(), steps["density"].to_numpy()
    if d[i] < DENSITY_MIN:  # the dropped restrictions were what made it dense
        return None
    steps["chosen"] = steps.index == i
    inside = np.zeros(len(y), dtype=bool)
    inside[np.asarray(box.yi, dtype=np.int64)] = True
    return FailureBox(
        n_sets=len(y),
        n_failures=n_failures,
        coverage=float(c[i]),
        density=float(d[i]),
        mass=float(steps["mass"].iloc[i]),
        limits=limits,
        trajectory=steps,
        inside=inside,
    )


def _steps(trajectory: pd.DataFrame) -> pd.DataFrame:
    """PRIM's peeling trajectory (then pasting and dropped restrictions), step by step."""
    return pd.DataFrame(
        {
            "step": np.arange(len(trajectory), dtype=np.int64),
            "coverage": trajectory["coverage"].to_numpy(float),
            "density": trajectory["density"].to_numpy(float),
            "mass": trajectory["mass"].to_numpy(float),
            "n_restricted": trajectory["res_dim"].to_numpy(np.int64),
        }
    )


def _ema_prim() -> Any:
    """ema_workbench's PRIM, imported only here: the package is slow to import and
    warns about optional parallel back-ends it does not need for PRIM."""
    import logging

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from ema_workbench.analysis import prim
    logging.getLogger("EMA").setLevel(logging.WARNING)
    return prim


def _limits(box_lim: pd.DataFrame, box_init: pd.DataFrame, p_values: Any) -> pd.DataFrame:
    rows = []
    quasi = dict(p_values) if isinstance(p_values, Mapping) else {}
    for p in box_lim.columns:
        low, high = box_lim[p].iloc[0], box_lim[p].iloc[1]
        low0, high0 = box_init[p].iloc[0], box_init[p].iloc[1]
        if isinstance(low, set):
            if set(low) == set(low0):
                continue
            lower = upper = math.nan
            categories = " ".join(sorted(str(v) for v in low))
        else:
            if float(low) == float(low0) and float(high) == float(high0):
                continue
            lower = float(low) if float(low) != float(low0) else math.nan
            upper = float(high) if float(high) != float(high0) else math.nan
            categories = ""
        qp = [float(v) for v in quasi.get(p, []) if v is not None and float(v) >= 0]
        rows.append(
            {
                "parameter": str(p),
                "lower": lower,
                "upper": upper,
                "categories": categories,
                "quasi_p": max(qp) if qp else math.nan,
            }
        )
    return pd.DataFrame(rows, columns=["parameter", "lower", "upper", "categories", "quasi_p"])


def box_rows(
    outcome: str, whatif: str, box: FailureBox | None, n_sets: int, n_failures: int
) -> pd.DataFrame:
    """``BOX_COLUMNS`` rows of one what-if's box: one per restricted parameter (none:
    one row without a parameter, saying no box was found)."""
    if box is None:
        return pd.DataFrame(
            [
                {
                    "outcome": outcome,
                    "whatif": whatif,
                    "box": 0,
                    "n_sets": n_sets,
                    "n_failures": n_failures,
                    "n_restricted": 0,
                    "parameter": "",
                    "categories": "",
                }
            ],
            columns=list(BOX_COLUMNS),
        )
    shared = {
        "outcome": outcome,
        "whatif": whatif,
        "box": 1,
        "n_sets": box.n_sets,
        "n_failures": box.n_failures,
        "coverage": box.coverage,
        "density": box.density,
        "mass": box.mass,
        "n_restricted": len(box.limits),
    }
    rows = [{**shared, **limit} for limit in box.limits.to_dict(orient="records")]
    return pd.DataFrame(rows, columns=list(BOX_COLUMNS))


# --- everything for one outcome -------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeDecision:
    """What ``analyse`` finds for one outcome."""

    outcome: str
    decisions: pd.DataFrame
    pairwise: pd.DataFrame
    voi: pd.DataFrame
    evppi: pd.DataFrame
    boxes: dict[str, FailureBox | None]
    effects: pd.DataFrame  # per set (index), per what-if: what-if minus baseline
    x: pd.DataFrame  # the parameters of the sets used
    failures: dict[str, int]  # per what-if: the sets where it fails to improve


def analyse(
    x: pd.DataFrame,
    values: pd.DataFrame,
    base: str,
    whatifs: Sequence[str],
    *,
    outcome: str,
    better: str,
    noise_var: pd.DataFrame | None = None,
    n_bins: int | None = None,
) -> OutcomeDecision:
    """Robustness, scenario discovery and value of information for ``outcome``:
    ``x`` the parameters per set, ``values`` per set (index) a column per option."""
    options = [base, *whatifs]
    data = _complete(values.reindex(columns=options))
    if data.empty:
        raise ValueError(f"{outcome}: no set where every scenario has a value")
    xs = x.loc[data.index]
    xs = xs[[c for c in xs.columns if xs[c].nunique() > 1]]  # a constant says nothing
    bins = default_bins(len(data)) if n_bins is None else n_bins
    sign = _sign(better)
    decisions = decision_table(data, base, better, outcome, noise_var)
    pairwise = pairwise_table(data, better, outcome)
    effects = data[list(whatifs)].sub(data[base], axis=0)
    voi = pd.concat(
        [
            variance_shares(xs, effects[w].to_numpy(), bins, outcome=outcome, whatif=w)
            for w in whatifs
        ],
        ignore_index=True,
    )
    information = evppi(xs, sign * data.to_numpy(float), bins, outcome=outcome)
    fails = {w: sign * effects[w].to_numpy() <= 0 for w in whatifs}
    boxes = {w: failure_box(xs, fails[w]) for w in whatifs}
    failures = {w: int(f.sum()) for w, f in fails.items()}
    return OutcomeDecision(
        outcome, decisions, pairwise, voi, information, boxes, effects, xs, failures
    )
