"""Resource use per site and year, from the model's own accounting (ODD 7.14).

``resource_table`` runs on the workers of ``peersim compare`` (a table of
``analysis.compare.COMPARE_TABLES``): the site-week hour and count columns summed
per site and year, participants engaged and readmissions by year. No prices here:
``analysis.economics`` turns these into money with the user's costs file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulation import Results
from simulation.population import COORD_ACTIVITIES, PW_ACTIVITIES

WEEKS_PER_YEAR = 52
# A full-time week, for posts as whole-time equivalents: the NHS Agenda for Change
# standard of 37.5 hours [M] (not checked against a source here; ODD 7.14).
FULL_TIME_H_PER_WEEK = 37.5

PW_HOURS: tuple[str, ...] = (
    *(f"pw_hours_{a}" for a in PW_ACTIVITIES),
    "pw_hours_worked",
    "pw_hours_contracted",
)
COORD_HOURS: tuple[str, ...] = (*(f"coord_hours_{a}" for a in COORD_ACTIVITIES), "coord_hours_paid")
SITE_WEEK_SUMS: tuple[str, ...] = (*PW_HOURS, *COORD_HOURS, "n_sessions", "n_pw_started")
RESOURCE_TABLE_COLUMNS: tuple[str, ...] = (
    "site",
    "year",
    "n_weeks",
    *SITE_WEEK_SUMS,
    "n_engaged",
    "n_readmissions",
)
# Resource outcomes compared, with their headings (units in the name and heading).
_SAID = {"team": "team meetings", "team_prep": "team preparation"}
RESOURCES: tuple[tuple[str, str], ...] = (
    *(
        (f"{c}_h", f"peer worker hours, {_SAID.get(c[9:], c[9:])} (h)")  # after "pw_hours_"
        for c in PW_HOURS
    ),
    ("pw_posts_fte", f"peer worker posts in post (FTE, {FULL_TIME_H_PER_WEEK:g} h a week)"),
    *(
        (f"{c}_h", f"coordinator hours, {_SAID.get(c[12:], c[12:])} (h)")  # after "coord_hours_"
        for c in COORD_HOURS
    ),
    ("n_sessions", "sessions held (n)"),
    ("n_pw_started", "peer workers starting in post (n)"),
    ("n_engaged", "participants engaged (n)"),
    ("n_readmissions", "readmissions, everyone followed up (n)"),
    ("bed_days", "bed-days of readmissions (days)"),
)
RESOURCE_LABELS: dict[str, str] = dict(RESOURCES)


# --- on the workers: resources per site and year --------------------------------------


def resource_table(results: Results) -> pd.DataFrame:
    """Resources per site and year of one replicate (the runner's ``resources`` table):
    the site-week hour and count columns summed, participants engaged (peer support
    arm, by year of first contact) and readmissions (both arms, by year)."""
    sw = results.site_week_arrays
    a = results.participant_arrays
    n_sites = len(results.site_names)
    site = np.asarray(sw["site"], dtype=np.int64)
    year = np.asarray(sw["week"], dtype=np.int64) // WEEKS_PER_YEAR
    readmitted = np.asarray(a["readmitted_12m"], dtype=bool)
    week_readmitted = np.asarray(a["week_discharged"]) + np.asarray(a["weeks_to_readmission"]) - 1
    engaged = np.asarray(a["engaged"], dtype=bool) & (np.asarray(a["arm"]) == 1)
    week_engaged = np.asarray(a["week_first_contact"])
    p_site = np.asarray(a["site"], dtype=np.int64)
    last = max(
        int(year.max(initial=0)),
        int((week_readmitted[readmitted] // WEEKS_PER_YEAR).max(initial=0)),
    )
    n_years = last + 1
    cell = site * n_years + year

    def by_cell(index: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(index, weights=weights, minlength=n_sites * n_years).astype(float)

    columns: dict[str, np.ndarray] = {"n_weeks": by_cell(cell)}
    for name in SITE_WEEK_SUMS:
        columns[name] = by_cell(cell, np.asarray(sw[name], dtype=float))
    columns["n_engaged"] = by_cell(
        p_site[engaged] * n_years + week_engaged[engaged] // WEEKS_PER_YEAR
    )
    columns["n_readmissions"] = by_cell(
        p_site[readmitted] * n_years + week_readmitted[readmitted] // WEEKS_PER_YEAR
    )
    names = np.asarray(results.site_names, dtype=object)
    frame = pd.DataFrame(
        {
            "site": pd.array(np.repeat(names, n_years), dtype="str"),
            "year": np.tile(np.arange(1, n_years + 1), n_sites),
            **columns,
        }
    )
    return frame[list(RESOURCE_TABLE_COLUMNS)]
