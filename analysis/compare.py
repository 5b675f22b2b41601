"""Paired comparisons of what-if scenarios with a baseline, by common random numbers.

Replicate ``i`` of every scenario runs with the same seed, ``replicate_seed(seed, i)``.
Inside a replicate each random decision draws from a stream named for the
decision and the site (``simulation.rng``), so replicate ``i`` of a what-if meets
the same participants, the same randomisation and the same chance events as
replicate ``i`` of the baseline wherever the change does not reach. The paired
difference ``d_i = whatif_i - baseline_i`` then reflects the change, not noise:
a what-if identical to its baseline gives exactly zero, and a change confined to
one site leaves the other sites' outcomes exactly as they were (sites never
interact in the model).

The statistics, per what-if, outcome and scope (``"overall"`` or a site name):

- ``n``: replicates where both values are finite. Some outcomes are undefined
  in some replicates (readmission of the 2+ sessions group when nobody had two
  sessions at a small site); those replicates are left out of the pair, and
  ``n`` says how many remained.
- ``base_mean``, ``whatif_mean``: means over those ``n`` pairs, so that
  ``diff_mean == whatif_mean - base_mean``. A site that only one of the two
  scenarios has (a scale-up adding sites) has no pairs: its ``n`` is 0, the
  difference is missing and each mean is over that scenario's own replicates.
- ``diff_mean``, ``diff_sd``: mean and standard deviation (``ddof=1``) of the
  paired differences.
- ``diff_lo``, ``diff_hi``: the 95% confidence interval of the mean paired
  difference, ``diff_mean -/+ t(0.975, n - 1) * diff_sd / sqrt(n)`` (Student's t;
  missing when ``n < 2``). It is the uncertainty of the simulated *expected*
  difference across replicates, and narrows as replicates are added; the spread
  of what one trial would show is wider (``diff_sd`` tells it).

Outcomes (``COMPARED`` of the outcome registry, ``simulation.outcomes``, which gives
their labels, units and directions; ``OUTCOMES`` pairs each name with its label and
unit): met and engaged shares of the peer support arm; fidelity
(mean of the four domains) and each domain, at the end of delivery; readmission
within follow-up per arm and in the peer support arm's 2+ sessions group (the
scenario's ``readmission.n_sessions_dose``); and, overall only, the ITT odds ratio
of readmission. The odds ratio is compared on its own scale (``itt_or``: a
difference of odds ratios, as planners read it) and on the log scale
(``log_itt_or``, written ``itt_log_or`` before: the mean log ratio of the
what-if's odds ratio to the baseline's, the better behaved of the two for
intervals). Overall fidelity is the
mean over sites of each site's peer worker mean; per-site shares are of the
site's peer support arm.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from analysis.resources import resource_table
from analysis.summary import end_of_delivery
from simulation import Results, Scenario
from simulation.outcomes import COMPARED, SERVICE_COMPARED, Outcome, finite_mean
from simulation.outcomes import OUTCOMES as REGISTRY
from simulation.results import ARMS
from simulation.runner import LazyJobs, TableFn, replicate_jobs

OVERALL = "overall"
CONFIDENCE = 0.95

# The compared outcomes, from the registry (simulation.outcomes). Order is the order
# of every table and figure.
COMPARED_OUTCOMES: tuple[Outcome, ...] = tuple(REGISTRY[name] for name in COMPARED)
SERVICE_OUTCOMES: tuple[Outcome, ...] = tuple(REGISTRY[name] for name in SERVICE_COMPARED)
# Thin aliases for callers: (name, label with unit), and the whole-trial-only names.
OUTCOMES: tuple[tuple[str, str], ...] = tuple((o.name, o.heading()) for o in COMPARED_OUTCOMES)
OUTCOME_LABELS: dict[str, str] = dict(OUTCOMES)
# Outcomes of the whole trial only: a per-site odds ratio is no trial quantity.
OVERALL_ONLY: frozenset[str] = frozenset(o.name for o in COMPARED_OUTCOMES if not o.per_site)
# Read from site_weeks at the end of delivery, per site; overall fidelity is the
# mean over sites (the registry gives it no trial key).
SITE_WEEK_OUTCOMES: tuple[str, ...] = tuple(
    o.name for o in COMPARED_OUTCOMES if o.site_week_column is not None
)
FIDELITY_OUTCOMES: tuple[str, ...] = tuple(
    o.name for o in COMPARED_OUTCOMES if o.site_week_column is not None and o.trial_key is None
)
# Read per site from the trial table's PREFIX_SITE columns (rated fidelity); overall:
# the mean over sites.
SITE_TRIAL_OUTCOMES: tuple[Outcome, ...] = tuple(
    o for o in COMPARED_OUTCOMES if o.site_trial_prefix is not None
)

COMPARISON_COLUMNS: tuple[str, ...] = (
    "whatif",
    "outcome",
    "scope",
    "base_mean",
    "whatif_mean",
    "diff_mean",
    "diff_sd",
    "diff_lo",
    "diff_hi",
    "n",
)
VALUE_COLUMNS: tuple[str, ...] = ("scenario", "replicate", "scope", "outcome", "value")
_PS = ARMS.index("peer_support")
_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


# --- the runs -----------------------------------------------------------------------


def trial_table(results: Results) -> pd.DataFrame:
    """The trial's statistics, one row (the runner's ``trial`` table)."""
    return results.trial_frame


def site_weeks_table(results: Results) -> pd.DataFrame:
    """One row per site and week (the runner's ``site_weeks`` table)."""
    return results.site_weeks


def readmission_counts(results: Results) -> pd.DataFrame:
    """Participants and readmissions by site, arm and number of sessions.

    Computed on the workers in place of the participant table: a few hundred
    rows per replicate instead of one per participant, and enough for per-site
    readmission of each arm and of any dose group.
    """
    a = results.participant_arrays
    site = np.asarray(a["site"], dtype=np.int64)
    arm = np.asarray(a["arm"], dtype=np.int64)
    sessions = np.asarray(a["sessions"], dtype=np.int64)
    readmitted = np.asarray(a["readmitted_12m"], dtype=np.int64)
    keys = np.stack([site, arm, sessions], axis=1)
    if len(keys):
        groups, index = np.unique(keys, axis=0, return_inverse=True)
        index = index.ravel()
    else:
        groups, index = np.zeros((0, 3), dtype=np.int64), np.zeros(0, dtype=np.int64)
    names = np.asarray(results.site_names, dtype=object)
    return pd.DataFrame(
        {
            "site": pd.array(names[groups[:, 0]], dtype="str"),
            "arm": pd.array(np.asarray(ARMS, dtype=object)[groups[:, 1]], dtype="str"),
            "sessions": groups[:, 2],
            "n": np.bincount(index, minlength=len(groups)).astype(np.int64),
            "n_readmitted": np.bincount(index, weights=readmitted, minlength=len(groups)).astype(
                np.int64
            ),
        }
    )


# What each job ships back: tables computed on the workers.
COMPARE_TABLES: dict[str, TableFn] = {
    "trial": trial_table,
    "site_weeks": site_weeks_table,
    "readmission_counts": readmission_counts,
    "resources": resource_table,  # hours and events per site and year (analysis.economics)
}


def scenario_labels(paths: Sequence[Path]) -> list[str]:
    """A short label per scenario file: its stem, made safe for file names, with
    ``-2``, ``-3``... added where two files share a stem."""
    labels: list[str] = []
    for path in paths:
        stem = _LABEL_UNSAFE.sub("_", Path(path).stem).strip("._") or "scenario"
        label, k = stem, 1
        while label in labels:
            k += 1
            label = f"{stem}-{k}"
        labels.append(label)
    return labels


def comparison_jobs(scenarios: Mapping[str, Scenario], seed: int, n_replicates: int) -> LazyJobs:
    """Replicates ``0 .. n_replicates - 1`` of every scenario, made when asked for;
    replicate ``i`` of each uses ``replicate_seed(seed, i)`` (common random numbers).
    Tags: ``scenario`` (the label) and ``replicate``."""
    if n_replicates < 1:
        raise ValueError(f"n_replicates must be at least 1 (got {n_replicates})")
    return LazyJobs.concat(
        [
            replicate_jobs(
                scenario, seed, n_replicates, tags={"scenario": label}, key_prefix=f"{label}/"
            )
            for label, scenario in scenarios.items()
        ]
    )


# --- outcomes per replicate -----------------------------------------------------------


def replicate_outcomes(
    scenarios: Mapping[str, Scenario],
    trial: pd.DataFrame,
    site_weeks: pd.DataFrame,
    counts: pd.DataFrame,
) -> pd.DataFrame:
    """Every outcome of every replicate, long: ``scenario, replicate, scope, outcome,
    value``, from the three tables of ``COMPARE_TABLES`` (with their ``scenario``
    and ``replicate`` tags)."""
    pieces = []
    for label, scenario in scenarios.items():
        pieces += [
            _trial_outcomes(trial[trial["scenario"] == label]),
            _site_week_outcomes(site_weeks[site_weeks["scenario"] == label]),
        ]
        if scenario.mode == "trial":  # a service has no arms: its readmission is paired
            pieces.append(
                _readmission_outcomes(
                    counts[counts["scenario"] == label], scenario.readmission.n_sessions_dose
                )
            )
    frame = pd.concat([p for p in pieces if not p.empty], ignore_index=True)
    frame["scope"] = frame["scope"].astype(str)
    frame["value"] = frame["value"].astype(float)
    return frame[list(VALUE_COLUMNS)]


def _long(wide: pd.DataFrame, outcomes: Sequence[str]) -> pd.DataFrame:
    """``scenario, replicate, scope`` plus one column per outcome -> long rows."""
    present = [o for o in outcomes if o in wide]
    return wide.melt(
        id_vars=["scenario", "replicate", "scope"],
        value_vars=present,
        var_name="outcome",
        value_name="value",
    )


def _trial_outcomes(trial: pd.DataFrame) -> pd.DataFrame:
    if trial.empty:
        return pd.DataFrame(columns=list(VALUE_COLUMNS))
    wide = trial[["scenario", "replicate"]].copy()
    wide["scope"] = OVERALL
    # A service's trial table has no arms' statistics, and a trial's no service ones.
    for o in (*COMPARED_OUTCOMES, *SERVICE_OUTCOMES):
        if o.trial_key is not None and o.trial_key in trial:
            wide[o.name] = trial[o.trial_key].astype(float)
    if "itt_or" in wide:
        # The log odds ratio, vectorised over the replicates (the registry's log_or_nan).
        odds = wide["itt_or"].to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            wide["log_itt_or"] = np.where(odds > 0, np.log(odds), np.nan)
    parts = [_long(wide, [n for n in (*COMPARED, *SERVICE_COMPARED) if n in wide.columns])]
    for o in SITE_TRIAL_OUTCOMES:
        parts.append(_site_trial_outcome(trial, o))
    return pd.concat(parts, ignore_index=True)


def _site_trial_outcome(trial: pd.DataFrame, o: Outcome) -> pd.DataFrame:
    """Per site from the trial table's ``PREFIX_SITE`` columns, overall their mean."""
    prefix = f"{o.site_trial_prefix}_"
    columns = [c for c in trial.columns if c.startswith(prefix)]
    ids = trial[["scenario", "replicate"]]
    rows = [ids.assign(scope=OVERALL, **{o.name: trial[columns].astype(float).mean(axis=1)})]
    rows += [
        ids.assign(scope=c[len(prefix) :], **{o.name: trial[c].astype(float)}) for c in columns
    ]
    return _long(pd.concat(rows, ignore_index=True), [o.name])


def _site_week_outcomes(site_weeks: pd.DataFrame) -> pd.DataFrame:
    if site_weeks.empty:
        return pd.DataFrame(columns=list(VALUE_COLUMNS))
    end = end_of_delivery(site_weeks)
    per_site = end[["scenario", "replicate"]].copy()
    per_site["scope"] = end["site"].astype(str)
    for o in COMPARED_OUTCOMES:
        if o.site_week_column is not None:
            per_site[o.name] = end[o.site_week_column].astype(float)
    # Overall fidelity: the mean over sites (shares overall come from the trial table).
    overall = per_site.groupby(["scenario", "replicate"], sort=False, as_index=False)[
        list(FIDELITY_OUTCOMES)
    ].mean()
    overall["scope"] = OVERALL
    return pd.concat(
        [_long(overall, FIDELITY_OUTCOMES), _long(per_site, SITE_WEEK_OUTCOMES)],
        ignore_index=True,
    )


def _readmission_outcomes(counts: pd.DataFrame, dose: int) -> pd.DataFrame:
    """Per-site readmission of each arm and of the peer support arm's dose group."""
    if counts.empty:
        return pd.DataFrame(columns=list(VALUE_COLUMNS))
    c = counts.assign(site=counts["site"].astype(str))
    ps = c["arm"] == ARMS[_PS]
    members = {"peer_support": ps, "usual_care": ~ps, "dose": ps & (c["sessions"] >= dose)}
    groups = {o.name: c[members[o.readmitted]] for o in COMPARED_OUTCOMES if o.readmitted}
    keys = ["scenario", "replicate", "site"]
    every = c[keys].drop_duplicates()
    wide = every.rename(columns={"site": "scope"}).reset_index(drop=True)
    for outcome, rows in groups.items():
        sums = rows.groupby(keys, sort=False)[["n", "n_readmitted"]].sum()
        aligned = sums.reindex(pd.MultiIndex.from_frame(every)).to_numpy(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = aligned[:, 1] / aligned[:, 0]
        # No one in the group (or no row at all): the share is undefined, not 0.
        wide[outcome] = np.where(np.nan_to_num(aligned[:, 0]) > 0, share, np.nan)
    return _long(wide, list(groups))


# --- paired differences -------------------------------------------------------------


@dataclass(frozen=True)
class PairedStats:
    """The paired-difference statistics of one outcome in one scope."""

    base_mean: float
    whatif_mean: float
    diff_mean: float
    diff_sd: float
    diff_lo: float
    diff_hi: float
    n: int


def paired_stats(
    base: np.ndarray, whatif: np.ndarray, confidence: float = CONFIDENCE
) -> PairedStats:
    """Statistics of ``whatif - base``, paired element by element, over the pairs
    where both are finite (see the module docstring)."""
    b = np.asarray(base, dtype=float)
    w = np.asarray(whatif, dtype=float)
    if b.shape != w.shape:
        raise ValueError(f"paired values need equal shapes (got {b.shape} and {w.shape})")
    both = np.isfinite(b) & np.isfinite(w)
    n = int(both.sum())
    if n == 0:
        return PairedStats(
            finite_mean(b), finite_mean(w), math.nan, math.nan, math.nan, math.nan, 0
        )
    b, w = b[both], w[both]
    d = w - b
    mean = float(d.mean())
    if n < 2:
        sd = lo = hi = math.nan
    else:
        sd = float(d.std(ddof=1))
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
        # + 0.0 turns -0.0 into 0.0, so an identical what-if prints as exactly zero.
        lo, hi = mean - half + 0.0, mean + half + 0.0
    return PairedStats(float(b.mean()), float(w.mean()), mean + 0.0, sd, lo, hi, n)


def paired_differences(
    values: pd.DataFrame,
    base: str,
    whatifs: Iterable[str],
    confidence: float = CONFIDENCE,
) -> pd.DataFrame:
    """The comparison table: one row per what-if, outcome and scope.

    ``values`` is long (``scenario, replicate, scope, outcome, value``, as from
    ``replicate_outcomes``); replicates pair by their ``replicate`` number. Rows
    come in what-if order, then outcome order (``COMPARED``, unknown outcomes
    after them), then ``"overall"`` and the sites in order of first appearance.
    Columns: ``COMPARISON_COLUMNS``.
    """
    missing = sorted(set(VALUE_COLUMNS) - set(values.columns))
    if missing:
        raise ValueError(f"values lack columns {missing}")
    scenarios = set(values["scenario"].astype(str))
    whatif_list = list(whatifs)
    for label in [base, *whatif_list]:
        if label not in scenarios:
            raise ValueError(f"no values for scenario {label!r}; have {sorted(scenarios)}")
    frame = values.assign(
        scope=values["scope"].astype(str), scenario=values["scenario"].astype(str)
    )
    outcome_order = _order([*COMPARED, *SERVICE_COMPARED], frame["outcome"])
    scope_order = _order([OVERALL], frame["scope"])
    by_scenario = {
        label: rows.set_index(["outcome", "scope", "replicate"])["value"].astype(float)
        for label, rows in frame.groupby("scenario", sort=False)
    }
    base_values = by_scenario[base]
    rows = []
    for whatif in whatif_list:
        joined = pd.concat({"base": base_values, "whatif": by_scenario[whatif]}, axis=1)
        cells = {key: group for key, group in joined.groupby(level=["outcome", "scope"])}
        for outcome in outcome_order:
            for scope in scope_order:
                group = cells.get((outcome, scope))
                if group is None:
                    continue
                s = paired_stats(group["base"].to_numpy(), group["whatif"].to_numpy(), confidence)
                rows.append(
                    {
                        "whatif": whatif,
                        "outcome": outcome,
                        "scope": scope,
                        "base_mean": s.base_mean,
                        "whatif_mean": s.whatif_mean,
                        "diff_mean": s.diff_mean,
                        "diff_sd": s.diff_sd,
                        "diff_lo": s.diff_lo,
                        "diff_hi": s.diff_hi,
                        "n": s.n,
                    }
                )
    table = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    return table.astype({"n": np.int64})


def _order(first: list[str], values: pd.Series) -> list[str]:
    """``first``, then the other distinct values in order of first appearance."""
    seen = dict.fromkeys(first)
    seen.update(dict.fromkeys(values.astype(str)))
    return list(seen)


def paired_sites(rows: pd.DataFrame) -> list[str]:
    """The sites with at least one paired outcome (both scenarios have them), in order."""
    sites = rows[(rows["scope"].astype(str) != OVERALL) & (rows["n"] > 0)]["scope"].astype(str)
    return list(dict.fromkeys(sites))
