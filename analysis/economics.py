"""Resources and money of what-ifs: hours and events from the model, prices from the user.

Resources come from the model itself (``site_weeks``' hour and count columns and
the participants, ODD 7.14), summed per site and year on the workers
(``resource_table``). Per replicate and scope (the whole trial or a site) they
become totals over the horizon (delivery and follow-up), compared like the
outcomes, paired by common random numbers (``resource_values``). With a costs
file (``scenarios.costs``) they are priced and discounted (``cost_values``), and
``economics`` summarises each what-if against the baseline: incremental cost,
readmissions and bed-days avoided, cost per readmission avoided, the probability
of saving money and the budget impact per year.

Conventions (stated in every output that uses them):

- year k of the horizon is weeks ``52 (k - 1)`` to ``52 k - 1`` from the start of
  recruitment; a readmission falls in the year of its week;
- costs of year k are discounted by ``(1 + r) ** (k - 1)`` (the first year not at
  all), ``r`` the discount rate a year; readmissions and bed-days are counted, not
  discounted; the budget impact per year is not discounted;
- peer workers are paid for their contracted hours (unused hours too), travel
  expenses are per hour travelled by peer workers and coordinators, training per
  peer worker starting in post (the first ones included);
- the net cost is delivery cost plus readmission cost; cost per readmission
  avoided is the mean net incremental cost over the mean readmissions avoided.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.compare import OVERALL, paired_differences
from analysis.resources import (
    COORD_HOURS,
    FULL_TIME_H_PER_WEEK,
    PW_HOURS,
    RESOURCES,
    SITE_WEEK_SUMS,
)
from scenarios.costs import Costs

DEFAULT_DISCOUNT_RATE = 0.035  # a year: the NICE reference case
N_BOOTSTRAP = 2000
CONFIDENCE = 0.95


# --- per replicate: totals and money ---------------------------------------------------


def _by_scope(resources: pd.DataFrame, columns: Sequence[str], by_year: bool) -> pd.DataFrame:
    """Sums of ``columns`` per scenario, replicate and scope (every site, and the
    whole trial as ``OVERALL``), and per year if ``by_year``."""
    keys = ["scenario", "replicate", "site", *(["year"] if by_year else [])]
    per_site = resources.groupby(keys, sort=False, as_index=False)[list(columns)].sum()
    overall_keys = [k for k in keys if k != "site"]
    overall = per_site.groupby(overall_keys, sort=False, as_index=False)[list(columns)].sum()
    overall["site"] = OVERALL
    frame = pd.concat([overall, per_site], ignore_index=True)
    return frame.rename(columns={"site": "scope"})


def resource_values(resources: pd.DataFrame, costs: Costs | None = None) -> pd.DataFrame:
    """Every resource outcome of every replicate, long (``scenario, replicate, scope,
    outcome, value``, as ``analysis.compare.replicate_outcomes``): totals over the
    horizon; bed-days only where the costs file gives a length of stay."""
    wide = _by_scope(resources, [*SITE_WEEK_SUMS, "n_weeks", "n_engaged", "n_readmissions"], False)
    out = wide[["scenario", "replicate", "scope"]].copy()
    for c in PW_HOURS:
        out[f"{c}_h"] = wide[c]
    # Weeks of delivery per scope: the site's rows, or one site's for the whole trial.
    n_sites = resources.groupby(["scenario", "replicate"])["site"].transform("nunique")
    weeks = (
        resources.assign(w=resources["n_weeks"] / n_sites)
        .groupby(["scenario", "replicate"], sort=False)["w"]
        .sum()
    )
    delivery_weeks = wide.set_index(["scenario", "replicate"]).index.map(weeks).to_numpy()
    site_weeks = np.where(wide["scope"] == OVERALL, delivery_weeks, wide["n_weeks"])
    out["pw_posts_fte"] = wide["pw_hours_contracted"] / (site_weeks * FULL_TIME_H_PER_WEEK)
    for c in COORD_HOURS:
        out[f"{c}_h"] = wide[c]
    for c in ("n_sessions", "n_pw_started", "n_engaged", "n_readmissions"):
        out[c] = wide[c]
    if costs is not None and costs.length_of_stay_days is not None:
        out["bed_days"] = wide["n_readmissions"] * costs.length_of_stay_days
    names = [name for name, _ in RESOURCES if name in out.columns]
    return out.melt(
        id_vars=["scenario", "replicate", "scope"],
        value_vars=names,
        var_name="outcome",
        value_name="value",
    )


def discount_factors(years: np.ndarray, rate: float) -> np.ndarray:
    """The factor on costs of year ``years`` (1, 2, ...): ``(1 + rate) ** -(year - 1)``."""
    return (1.0 + rate) ** -(np.asarray(years, dtype=float) - 1.0)


def cost_components(resources: pd.DataFrame, costs: Costs) -> pd.DataFrame:
    """Undiscounted costs per row of ``resources`` (site and year), in the file's
    currency: peer workers, coordinators, travel, training, delivery (their sum),
    readmissions and net (delivery plus readmissions)."""
    r = resources
    out = r.drop(
        columns=[c for c in r.columns if c not in ("scenario", "replicate", "site", "year")]
    )
    out["cost_peer_workers"] = r["pw_hours_contracted"] * costs.value("peer_worker_hour")
    out["cost_coordinators"] = r["coord_hours_paid"] * costs.value("coordinator_hour")
    out["cost_travel"] = (r["pw_hours_travel"] + r["coord_hours_travel"]) * costs.value(
        "travel_hour"
    )
    out["cost_training"] = r["n_pw_started"] * costs.value("training_per_new_peer_worker")
    out["cost_delivery"] = (
        out["cost_peer_workers"]
        + out["cost_coordinators"]
        + out["cost_travel"]
        + out["cost_training"]
    )
    out["cost_readmissions"] = r["n_readmissions"] * (costs.readmission_cost or 0.0)
    out["cost_net"] = out["cost_delivery"] + out["cost_readmissions"]
    return out


COST_PARTS: tuple[str, ...] = (
    "cost_peer_workers",
    "cost_coordinators",
    "cost_travel",
    "cost_training",
    "cost_delivery",
    "cost_readmissions",
    "cost_net",
)


def cost_outcome(part: str, currency: str, year: int | None = None) -> str:
    """The compared outcome's name, with its unit: ``cost_net_GBP_discounted``, or
    ``cost_net_GBP_year_2`` for one year's budget impact (not discounted)."""
    suffix = "discounted" if year is None else f"year_{year}"
    return f"{part}_{currency}_{suffix}"


def cost_values(resources: pd.DataFrame, costs: Costs, rate: float) -> pd.DataFrame:
    """Money per replicate and scope, long like ``resource_values``: each part
    discounted over the horizon, and the net cost of each year, not discounted."""
    parts = cost_components(resources, costs)
    discounted = parts.assign(
        **{c: parts[c] * discount_factors(parts["year"].to_numpy(), rate) for c in COST_PARTS}
    )
    totals = _by_scope(discounted, COST_PARTS, False)
    totals = totals.rename(columns={c: cost_outcome(c, costs.currency) for c in COST_PARTS})
    long = totals.melt(
        id_vars=["scenario", "replicate", "scope"], var_name="outcome", value_name="value"
    )
    yearly = _by_scope(parts, ["cost_net"], True)
    yearly["outcome"] = [cost_outcome("cost_net", costs.currency, int(y)) for y in yearly["year"]]
    yearly = yearly.rename(columns={"cost_net": "value"}).drop(columns="year")
    return pd.concat([long, yearly[list(long.columns)]], ignore_index=True)


def resource_comparison(
    values: pd.DataFrame, base: str, whatifs: Iterable[str], confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """The paired comparison of the resource (and money) outcomes: the rows
    ``analysis.compare.paired_differences`` makes, added to ``comparison.csv``."""
    return paired_differences(values, base, list(whatifs), confidence)


# --- the economic summary per what-if -----------------------------------------------------


@dataclass(frozen=True)
class Economics:
    """One what-if against the baseline, over the paired replicates (or posterior draws)."""

    whatif: str
    currency: str
    discount_rate: float
    n: int
    incremental_cost: tuple[float, float, float]  # net, discounted: mean, lo, hi
    incremental_delivery_cost: tuple[float, float, float]
    readmissions_avoided: tuple[float, float, float]
    bed_days_avoided: tuple[float, float, float] | None
    cost_per_readmission_avoided: tuple[float, float, float]  # ratio of means; bootstrap
    p_saves_money: float
    budget_impact: dict[int, tuple[float, float, float]]  # per year, not discounted
    delta_cost: np.ndarray  # per replicate: net incremental cost (discounted)
    delta_avoided: np.ndarray  # per replicate: readmissions avoided
    share_variance_readmissions: float  # of the net cost's paired variance

    def row(self) -> dict[str, float | str | int]:
        """One row of ``economics.csv``: units in the column names."""
        cur = self.currency
        row: dict[str, float | str | int] = {
            "whatif": self.whatif,
            "n": self.n,
            "discount_rate_per_year": self.discount_rate,
        }

        def put(name: str, value: tuple[float, float, float] | None) -> None:
            mean, lo, hi = value if value is not None else (math.nan,) * 3
            row[name], row[f"{name}_lo"], row[f"{name}_hi"] = mean, lo, hi

        put(f"incremental_cost_{cur}_discounted", self.incremental_cost)
        put(f"incremental_delivery_cost_{cur}_discounted", self.incremental_delivery_cost)
        put("readmissions_avoided_n", self.readmissions_avoided)
        put("bed_days_avoided_days", self.bed_days_avoided)
        put(f"cost_per_readmission_avoided_{cur}", self.cost_per_readmission_avoided)
        row["p_saves_money"] = self.p_saves_money
        for year, value in self.budget_impact.items():
            put(f"budget_impact_{cur}_year_{year}", value)
        return row


def _interval(stats_row: pd.Series | None) -> tuple[float, float, float]:
    if stats_row is None:
        return (math.nan, math.nan, math.nan)
    return (float(stats_row["diff_mean"]), float(stats_row["diff_lo"]), float(stats_row["diff_hi"]))


def _negated(value: tuple[float, float, float]) -> tuple[float, float, float]:
    mean, lo, hi = value
    return (-mean + 0.0, -hi + 0.0, -lo + 0.0)


def paired_vectors(
    values: pd.DataFrame, base: str, whatif: str, outcome: str
) -> tuple[np.ndarray, np.ndarray]:
    """The overall values of ``outcome`` per replicate for base and what-if, paired."""
    rows = values[(values["outcome"] == outcome) & (values["scope"] == OVERALL)]
    b = rows[rows["scenario"] == base].set_index("replicate")["value"]
    w = rows[rows["scenario"] == whatif].set_index("replicate")["value"]
    joined = pd.concat({"b": b, "w": w}, axis=1).dropna().sort_index()
    return joined["b"].to_numpy(float), joined["w"].to_numpy(float)


def ratio_interval(
    cost: np.ndarray, avoided: np.ndarray, rng: np.random.Generator, confidence: float = CONFIDENCE
) -> tuple[float, float, float]:
    """Mean cost over mean avoided, with a percentile bootstrap interval over the
    replicates; the ends are NaN where resampling can make the avoided mean 0 or
    less in more than the interval's tail (the ratio is then not bounded)."""
    n = len(cost)
    mean_avoided = float(avoided.mean()) if n else math.nan
    if n == 0 or mean_avoided == 0:
        return (math.nan, math.nan, math.nan)
    ratio = float(cost.mean()) / mean_avoided
    if n < 2:
        return (ratio, math.nan, math.nan)
    draws = rng.integers(0, n, size=(N_BOOTSTRAP, n))
    num, den = cost[draws].mean(axis=1), avoided[draws].mean(axis=1)
    tail = (1 - confidence) / 2
    same_sign = np.sign(den) == np.sign(mean_avoided)
    if (~same_sign).mean() > tail:
        return (ratio, math.nan, math.nan)
    lo, hi = np.quantile(num[same_sign] / den[same_sign], [tail, 1 - tail])
    return (ratio, float(lo), float(hi))


def economics(
    comparison: pd.DataFrame,
    values: pd.DataFrame,
    base: str,
    whatifs: Sequence[str],
    *,
    costs: Costs,
    rate: float,
    seed: int,
) -> list[Economics]:
    """The economic summary of each what-if, from the resource and money rows of the
    comparison (``comparison``) and their per-replicate values (``values``)."""
    cur = costs.currency
    net, delivery = cost_outcome("cost_net", cur), cost_outcome("cost_delivery", cur)
    readmissions = cost_outcome("cost_readmissions", cur)
    years = sorted(
        {
            int(o.rsplit("_", 1)[1])
            for o in comparison["outcome"].astype(str)
            if o.startswith(f"cost_net_{cur}_year_")
        }
    )
    out = []
    for k, whatif in enumerate(whatifs):
        rows = comparison[(comparison["whatif"] == whatif) & (comparison["scope"] == OVERALL)]
        cells = {str(r["outcome"]): r for _, r in rows.iterrows()}
        b_cost, w_cost = paired_vectors(values, base, whatif, net)
        b_n, w_n = paired_vectors(values, base, whatif, "n_readmissions")
        d_cost, avoided = w_cost - b_cost, b_n - w_n
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2**31 - 1, k)))
        b_r, w_r = paired_vectors(values, base, whatif, readmissions)
        b_d, w_d = paired_vectors(values, base, whatif, delivery)
        var_r, var_d = np.var(w_r - b_r), np.var(w_d - b_d)
        share = float(var_r / (var_r + var_d)) if var_r + var_d > 0 else math.nan
        bed = None
        if "bed_days" in cells:
            bed = _negated(_interval(cells["bed_days"]))
        out.append(
            Economics(
                whatif=whatif,
                currency=cur,
                discount_rate=rate,
                n=len(d_cost),
                incremental_cost=_interval(cells.get(net)),
                incremental_delivery_cost=_interval(cells.get(delivery)),
                readmissions_avoided=_negated(_interval(cells.get("n_readmissions"))),
                bed_days_avoided=bed,
                cost_per_readmission_avoided=ratio_interval(d_cost, avoided, rng),
                p_saves_money=float((d_cost < 0).mean()) if len(d_cost) else math.nan,
                budget_impact={
                    y: _interval(cells.get(cost_outcome("cost_net", cur, y))) for y in years
                },
                delta_cost=d_cost,
                delta_avoided=avoided,
                share_variance_readmissions=share,
            )
        )
    return out


def economics_table(summaries: Sequence[Economics]) -> pd.DataFrame:
    """``economics.csv``: one row per what-if."""
    return pd.DataFrame([s.row() for s in summaries])


def acceptability(
    delta_cost: np.ndarray, avoided: np.ndarray, willingness: np.ndarray
) -> np.ndarray:
    """Share of replicates in which the what-if is worth it at each willingness to
    pay per readmission avoided: ``w * avoided - cost > 0``."""
    if len(delta_cost) == 0:
        return np.full(len(willingness), math.nan)
    net_benefit = willingness[:, None] * avoided[None, :] - delta_cost[None, :]
    return (net_benefit > 0).mean(axis=1)


def willingness_grid(summaries: Sequence[Economics], n: int = 101) -> np.ndarray:
    """Willingness to pay per readmission avoided, 0 to a range that shows the
    curves: twice the largest finite cost per readmission avoided, else the largest
    per-replicate cost per readmission."""
    ratios = [abs(s.cost_per_readmission_avoided[0]) for s in summaries]
    finite = [r for r in ratios if math.isfinite(r) and r > 0]
    if finite:
        top = 2 * max(finite)
    else:
        per = [
            np.abs(s.delta_cost) / np.maximum(np.abs(s.delta_avoided), 1.0)
            for s in summaries
            if len(s.delta_cost)
        ]
        top = float(max((p.max() for p in per), default=1.0)) or 1.0
    return np.linspace(0.0, top, n)
