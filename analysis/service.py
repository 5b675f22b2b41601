"""Service mode's summary and figures, per service year (``Scenario.mode = "service"``).

They read the ``site_years`` table (one row per replicate, site and service year:
``simulation.results.SITE_YEAR_COLUMNS``), which is small (a replicate of 50 sites
over 3 years is 150 rows), so it is read whole. Every figure is, per year, the
total (or mean) over sites within a replicate, then the mean across replicates
with the middle 95% of replicates (``analysis.summary.INTERVAL_QUANTILES``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from analysis.figures import fixed_layout, new_figure
from analysis.summary import align_columns, describe
from simulation import Scenario

# (measure of service_years, label, unit, format) for the summary, in order.
YEAR_MEASURES: tuple[tuple[str, str, str, str], ...] = (
    ("n_referrals", "referred (all offered peer support)", "people", "{:.0f}"),
    ("n_started", "started with a peer worker", "people", "{:.0f}"),
    ("n_offer_lapsed", "offer lapsed after the longest wait", "people", "{:.0f}"),
    ("wait_mean_weeks", "wait for a peer worker, of those started", "weeks", "{:.1f}"),
    ("waiting_list_mean", "waiting list, mean over the weeks", "people", "{:.1f}"),
    ("engaged_share", "engaged with peer support", "share of referrals", "{:.3f}"),
    ("n_sessions", "sessions delivered", "sessions", "{:.0f}"),
    ("fidelity_rated", "fidelity as rated, mean of sites", "0-1 index", "{:.3f}"),
    ("pw_wellbeing_mean", "peer worker wellbeing, mean of sites", "0-1 score", "{:.3f}"),
    ("pw_vacancies_mean", "peer worker posts vacant, mean over the weeks", "posts", "{:.1f}"),
    ("n_readmitted_with_ps", "readmitted with peer support", "people", "{:.0f}"),
    ("n_readmitted_without_ps", "readmitted without peer support", "people", "{:.0f}"),
    ("readmissions_avoided", "readmissions avoided (paired)", "readmissions", "{:.1f}"),
)
_SUMS = (
    "n_referrals",
    "n_started",
    "n_offer_lapsed",
    "waiting_list_mean",
    "n_engaged",
    "n_sessions",
    "pw_vacancies_mean",
    "n_readmitted_with_ps",
    "n_readmitted_without_ps",
    "readmissions_avoided",
)
_MEANS = ("fidelity_rated", "pw_wellbeing_mean")


def service_years(site_years: pd.DataFrame) -> pd.DataFrame:
    """One row per replicate and service year: totals over sites (people, sessions,
    waiting lists, vacancies, readmissions), means over sites (fidelity, wellbeing),
    and the mean wait and engaged share of all sites' referrals together."""
    frame = site_years.assign(
        wait_total=site_years["wait_mean_weeks"].fillna(0.0) * site_years["n_started"]
    )
    grouped = frame.groupby(["replicate", "year"], sort=True)
    out = grouped[[*_SUMS, "wait_total"]].sum()
    out[list(_MEANS)] = grouped[list(_MEANS)].mean()
    out["wait_mean_weeks"] = out["wait_total"] / out["n_started"].where(out["n_started"] > 0)
    out["engaged_share"] = out["n_engaged"] / out["n_referrals"].where(out["n_referrals"] > 0)
    return out.drop(columns="wait_total").reset_index()


def format_service_summary(
    scenario: Scenario, master_seed: int, trial: pd.DataFrame, site_years: pd.DataFrame
) -> str:
    """The summary ``peersim run`` prints for a service scenario: each service year
    over all sites, then each site over the whole horizon."""
    n = len(trial)
    sv = scenario.service
    header = (
        f"Scenario {scenario.name!r} (service over {sv.horizon_years} years, "
        f"{len(scenario.sites)} sites): {n} replicate{'s' if n != 1 else ''}, master seed "
        f"{master_seed}. Mean [95% interval across replicates]."
    )
    years = service_years(site_years)
    year_numbers = sorted(years["year"].unique())
    rows = []
    for column, label, unit, fmt in YEAR_MEASURES:
        cells = [
            _estimate(describe(years.loc[years["year"] == y, column]), fmt) for y in year_numbers
        ]
        rows.append([f"{label} ({unit})", *cells])
    year_table = align_columns(["all sites", *(f"year {y}" for y in year_numbers)], rows)
    per_site = site_years.groupby(["replicate", "site"], observed=True, sort=False)[
        ["n_referrals", "n_started", "n_engaged", "readmissions_avoided"]
    ].sum()
    per_site["started_share"] = per_site["n_started"] / per_site["n_referrals"].where(
        per_site["n_referrals"] > 0
    )
    per_site["engaged_share"] = per_site["n_engaged"] / per_site["n_referrals"].where(
        per_site["n_referrals"] > 0
    )
    per_site = per_site.reset_index()
    site_columns = (
        ("n_referrals", "referred (people)", "{:.0f}"),
        ("started_share", "started (share of referrals)", "{:.3f}"),
        ("engaged_share", "engaged (share of referrals)", "{:.3f}"),
        ("readmissions_avoided", "readmissions avoided", "{:.1f}"),
    )
    site_rows = [
        [str(site), *(_estimate(describe(frame[c]), fmt) for c, _, fmt in site_columns)]
        for site, frame in per_site.groupby("site", observed=True, sort=False)
    ]
    site_table = align_columns(["site", *(h for _, h, _ in site_columns)], site_rows)
    whole = [
        [
            f"readmissions avoided over {sv.horizon_years} years (readmissions)",
            _estimate(describe(trial["readmissions_avoided"]), "{:.1f}"),
        ],
        [
            "readmitted within follow-up, with peer support (share of referrals)",
            _estimate(describe(trial["readmit_with_ps"]), "{:.3f}"),
        ],
        [
            "readmitted within follow-up, without peer support (share of referrals)",
            _estimate(describe(trial["readmit_without_ps"]), "{:.3f}"),
        ],
    ]
    return "\n".join(
        [
            header,
            "",
            "Per service year, all sites (people counted in the year they were referred)",
            year_table,
            "",
            f"Per site, over the {sv.horizon_years} years",
            site_table,
            "",
            "Whole service (readmission followed "
            f"{scenario.trial.dur_followup_weeks} weeks after discharge; avoided = "
            "without minus with peer support, the same people)",
            align_columns(["outcome", "estimate"], whole),
        ]
    )


def _estimate(stats: tuple[float, float, float], fmt: str) -> str:
    mean, lo, hi = stats
    if np.isnan(mean):
        return "n/a"
    return f"{fmt.format(mean)} [{fmt.format(lo)}, {fmt.format(hi)}]"


# (measure of service_years, panel title, y-axis label) of the per-year figure.
_PANELS: tuple[tuple[str, str, str], ...] = (
    ("n_referrals", "Referred and started", "people a year"),
    ("waiting_list_mean", "Waiting list", "people waiting, mean over the weeks"),
    ("wait_mean_weeks", "Wait for a peer worker", "weeks, mean of those started"),
    ("engaged_share", "Engaged with peer support", "share of referrals"),
    ("n_sessions", "Sessions delivered", "sessions a year"),
    ("pw_wellbeing_mean", "Peer workers: wellbeing and fidelity", "0-1 scale, mean of sites"),
)


def service_figures(
    scenario: Scenario, site_years: pd.DataFrame, n_replicates: int
) -> dict[str, Figure]:
    """The figures of a service run, keyed by file name."""
    years = service_years(site_years)
    return {
        "service_years.png": _years_figure(scenario, years, n_replicates),
        "readmissions_avoided.png": _readmission_figure(scenario, years, n_replicates),
    }


def _band(
    years: pd.DataFrame, column: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Year (1-based), mean, and the middle 95% of replicates of ``column``."""
    stats = [describe(frame[column]) for _, frame in years.groupby("year", sort=True)]
    x = np.sort(years["year"].unique())
    mean, lo, hi = (np.array([s[k] for s in stats]) for k in range(3))
    return x, mean, lo, hi


def _line(ax: Axes, years: pd.DataFrame, column: str, label: str, colour: str) -> None:
    x, mean, lo, hi = _band(years, column)
    ax.plot(x, mean, "o-", color=colour, label=label)
    ax.fill_between(x, lo, hi, color=colour, alpha=0.2, lw=0)


def _years_figure(scenario: Scenario, years: pd.DataFrame, n_replicates: int) -> Figure:
    figure = new_figure(width_in=15.0, height_in=8.0)
    axes = figure.subplots(2, 3, sharex=True).ravel()
    for ax, (column, title, ylabel) in zip(axes, _PANELS, strict=True):
        if column == "n_referrals":
            _line(ax, years, "n_referrals", "referred", "C0")
            _line(ax, years, "n_started", "started", "C1")
            _line(ax, years, "n_offer_lapsed", "offer lapsed", "C3")
        elif column == "pw_wellbeing_mean":
            _line(ax, years, "pw_wellbeing_mean", "wellbeing", "C2")
            _line(ax, years, "fidelity_rated", "fidelity as rated", "C4")
        else:
            _line(ax, years, column, "all sites", "C0")
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    for ax in axes[3:]:
        ax.set_xlabel("service year")
        ax.set_xticks(np.sort(years["year"].unique()))
    figure.suptitle(
        f"{scenario.name}: service over {scenario.service.horizon_years} years, all "
        f"{len(scenario.sites)} sites (line: mean; band: middle 95% of {n_replicates} "
        "replicates)"
    )
    fixed_layout(figure, left=0.8, right=0.2, bottom=0.6, top=0.6, wspace=0.3, hspace=0.25)
    return figure


def _readmission_figure(scenario: Scenario, years: pd.DataFrame, n_replicates: int) -> Figure:
    figure = new_figure(width_in=11.0, height_in=4.5)
    left, right = figure.subplots(1, 2)
    _line(left, years, "n_readmitted_without_ps", "without peer support", "C0")
    _line(left, years, "n_readmitted_with_ps", "with peer support", "C1")
    left.set_title("Readmissions of each year's referrals")
    left.set_ylabel(f"people readmitted within {scenario.trial.dur_followup_weeks} weeks")
    left.set_ylim(bottom=0)
    x, mean, lo, hi = _band(years, "readmissions_avoided")
    right.bar(x, mean, color="C2", label="mean")
    right.errorbar(
        x,
        mean,
        yerr=[mean - lo, hi - mean],
        fmt="none",
        ecolor="black",
        capsize=4,
        label="middle 95% of replicates",
    )
    right.axhline(0.0, color="black", lw=0.8)
    right.set_title("Readmissions avoided (same people, without minus with)")
    right.set_ylabel("readmissions avoided a year")
    for ax in (left, right):
        ax.set_xlabel("service year (of referral)")
        ax.set_xticks(x)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    figure.suptitle(
        f"{scenario.name}: readmission with and without peer support (line and bar: mean; "
        f"band and error bar: middle 95% of {n_replicates} replicates)"
    )
    fixed_layout(figure, left=0.8, right=0.2, bottom=0.6, top=0.7, wspace=0.3)
    return figure
