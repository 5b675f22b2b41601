"""Service mode's results: the replicate's summary and its site-year table.

In a service everyone referred is offered peer support, and the comparison is the
same people without it. Without peer support nothing moves a participant's
readmission clock (M7: sessions are its only lever), so each participant's
readmission without peer support is read off the same draws
(``ServiceUsers.readmit_due_without``): "readmissions avoided" is a paired
difference, person by person, under common random numbers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from simulation.results import RECORDS, SITE_YEAR_COLUMNS

if TYPE_CHECKING:
    from simulation.model import Delivery

# Normal quantile of a two-sided 95% interval.
_Z95 = 1.959963984540054


def service_results(
    d: Delivery, replicate: int, lo: int, hi: int, rated: np.ndarray
) -> tuple[dict[str, float], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """For replicate ``replicate`` (its participants ``lo:hi``, its sites' ratings
    ``rated`` as (rating, site, domain)): the summary row, the site-year columns
    and the service-only participant columns."""
    p = d.params
    sv, su = p.service, d.users
    n_site, n_year = len(d.site_names), sv.horizon_years
    g0 = replicate * n_site
    site = su.site[lo:hi] - g0
    referred = su.week_recruited[lo:hi]
    year = (referred - sv.dur_prelaunch_weeks) // 52
    allocated = su.week_allocated[lo:hi]
    started = allocated >= 0
    wait = np.where(started, allocated - referred, -1)
    followup = p.trial.dur_followup_weeks
    with_ps = su.readmit_due[lo:hi] <= followup
    without_ps = su.readmit_due_without[lo:hi] <= followup
    engaged = su.engaged[lo:hi]
    lapsed = su.offer_lapsed[lo:hi]

    # People, by site and year of referral.
    group = site * n_year + year
    size = n_site * n_year

    def count(mask: np.ndarray | None = None, weights: np.ndarray | None = None) -> np.ndarray:
        w = None if mask is None else mask.astype(float) if weights is None else mask * weights
        return np.bincount(group, weights=w, minlength=size).astype(float)

    n_referrals = count()
    n_started = count(started)
    waits = count(started, wait.astype(float))
    avoided, avoided_lo, avoided_hi = _paired(group, size, without_ps, with_ps)
    cols: dict[str, np.ndarray] = {
        "site": np.repeat(np.arange(n_site), n_year),
        "year": np.tile(np.arange(n_year) + 1, n_site),  # 1 = the first year after launch
        "n_referrals": n_referrals,
        "n_offered": n_referrals,  # everyone referred is offered peer support
        "n_started": n_started,
        "n_offer_lapsed": count(lapsed),
        "wait_mean_weeks": np.divide(
            waits, n_started, out=np.full(size, np.nan), where=n_started > 0
        ),
        "n_engaged": count(engaged),
        "n_readmitted_with_ps": count(with_ps),
        "n_readmitted_without_ps": count(without_ps),
        "readmissions_avoided": avoided,
        "readmissions_avoided_lo": avoided_lo,
        "readmissions_avoided_hi": avoided_hi,
    }
    cols["engaged_share"] = np.divide(
        cols["n_engaged"], n_referrals, out=np.full(size, np.nan), where=n_referrals > 0
    )
    # The weeks of each service year (start-up before it, the last referrals'
    # support after it: in site_weeks only).
    start = sv.dur_prelaunch_weeks
    weeks = slice(start, start + 52 * n_year)
    sites = slice(g0, g0 + n_site)

    def by_year(values: np.ndarray) -> np.ndarray:
        """(week, site) over the service years -> (site, year) flattened, site-major."""
        return values[weeks, :].reshape(n_year, 52, n_site).transpose(2, 0, 1)

    morale = d.records[:, RECORDS.index("pw_morale"), sites]
    in_post = d.records[:, RECORDS.index("pw_in_post"), sites]
    n_pw = np.diff(d.workers.site_start)[sites].astype(float)
    waiting = by_year(d.week_waiting[:, sites])
    cols["n_sessions"] = by_year(d.week_sessions[:, sites]).sum(axis=2).ravel()
    cols["waiting_list_mean"] = waiting.mean(axis=2).ravel()
    cols["waiting_list_max"] = waiting.max(axis=2).ravel()
    cols["pw_wellbeing_mean"] = by_year(morale).mean(axis=2).ravel()
    cols["pw_vacancies_mean"] = by_year(n_pw[None, :] - in_post).mean(axis=2).ravel()
    # One rating each service year (Delivery._init_ratings), domains averaged; NaN
    # where nobody was in post.
    cols["fidelity_rated"] = rated.mean(axis=2).T.ravel()
    site_years = {
        c: cols[c].astype(np.int64) if c.startswith("n_") else cols[c] for c in SITE_YEAR_COLUMNS
    }

    n = hi - lo
    total_avoided, total_lo, total_hi = _paired(np.zeros(n, dtype=np.int64), 1, without_ps, with_ps)

    def share(mask: np.ndarray, of: np.ndarray | None = None) -> float:
        of_n = n if of is None else int(of.sum())
        picked = mask if of is None else mask & of
        return float(picked.sum() / of_n) if of_n else math.nan

    summary: dict[str, float] = {
        "n_referrals": float(n),
        "allocated_share": share(started),
        "offer_lapsed_share": share(lapsed),
        "wait_mean_weeks": float(wait[started].mean()) if started.any() else math.nan,
        "met_share": share(su.met[lo:hi]),
        "engaged_share": share(engaged),
        "sessions_mean": float(su.sessions[lo:hi].mean()) if n else math.nan,
        "readmit_with_ps": share(with_ps),
        "readmit_without_ps": share(without_ps),
        "readmissions_avoided": float(total_avoided[0]),
        "readmissions_avoided_lo": float(total_lo[0]),
        "readmissions_avoided_hi": float(total_hi[0]),
        "sessions_delivered": float(cols["n_sessions"].sum()),
        "waiting_list_mean": float(waiting.mean()) if waiting.size else math.nan,
        "pw_vacancies_mean": float(cols["pw_vacancies_mean"].mean()),
    }
    participants = {
        "year_referred": year + 1,  # service years count from 1, as in site_years
        "week_allocated": allocated,
        "wait_weeks": wait,
        "offer_lapsed": lapsed,
        "readmitted_12m_without_ps": without_ps,
    }
    return summary, site_years, participants


def _paired(
    group: np.ndarray, size: int, without: np.ndarray, with_: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Readmissions avoided per group (without minus with peer support, person by
    person) and a 95% interval for the number a population like this one would
    avoid: the sum of the paired differences +- 1.96 times its standard error
    (normal approximation; the interval is empty-width for a group of one)."""
    diff = without.astype(float) - with_.astype(float)
    n = np.bincount(group, minlength=size).astype(float)
    total = np.bincount(group, weights=diff, minlength=size)
    squares = np.bincount(group, weights=diff * diff, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(n > 1, (squares - total * total / n) / (n - 1), 0.0)
    half = _Z95 * np.sqrt(np.maximum(var, 0.0) * n)
    return total, total - half, total + half
