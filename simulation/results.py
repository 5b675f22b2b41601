"""Tidy results of one simulated trial replicate.

The model hands back plain column arrays; tables are built only when asked for,
so calibration, which needs only the trial statistics, pays nothing for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pandas is imported where a table is built: `validate` needs none
    import pandas as pd

SITE_WEEK_COLUMNS: tuple[str, ...] = (
    "site",
    "week",
    "n_recruited_ps",
    "met_share",
    "engaged_share",
    "contacts_mean",
    "fidelity",
    "fid_relationships",
    "fid_reciprocity",
    "fid_leadership",
    "fid_strengths",
    "supervision_hours",
    "ward_relationship",
    "caseload_mean",
    "pw_morale",
    "pw_in_post",
    "hours_needed_mean",
    "shortfall_mean",
    "share_pw_short",
    # Resources this week, site totals (ODD 7.14): peer worker hours by use (they add
    # up to pw_hours_contracted; the first five to pw_hours_worked), coordinator hours
    # by use (adding up to coord_hours_paid), sessions held, peer workers starting.
    "pw_hours_contact",
    "pw_hours_travel",
    "pw_hours_supervision",
    "pw_hours_team",
    "pw_hours_admin",
    "pw_hours_unused",
    "pw_hours_worked",
    "pw_hours_contracted",
    "coord_hours_supervision",
    "coord_hours_team_prep",
    "coord_hours_liaison",
    "coord_hours_travel",
    "coord_hours_paid",
    "n_sessions",
    "n_pw_started",
)
"""The site-week table's columns, in order: the one list of them."""
# Columns of the site-week table that are not recorded week by week by the model.
# (pw_hours_travel is recorded as the travel to participants, n_sessions and
# n_pw_started as running totals; Delivery.results completes them.)
SITE_WEEK_DERIVED: tuple[str, ...] = (
    "site",
    "week",
    "fidelity",
    "supervision_hours",
    "pw_hours_supervision",
    "pw_hours_team",
    "pw_hours_admin",
    "pw_hours_unused",
    "pw_hours_worked",
    "pw_hours_contracted",
    "coord_hours_supervision",
    "coord_hours_team_prep",
    "coord_hours_liaison",
    "coord_hours_travel",
    "coord_hours_paid",
)
# What the model records each week for each site, by name (``PeerSupportModel.records``).
RECORDS: tuple[str, ...] = tuple(c for c in SITE_WEEK_COLUMNS if c not in SITE_WEEK_DERIVED)

PARTICIPANT_COLUMNS: tuple[str, ...] = (
    "participant",
    "site",
    "arm",
    "diagnosis",
    "non_heterosexual",
    "week_recruited",
    "week_discharged",
    "peer_worker",
    "met",
    "week_first_contact",
    "first_contact_setting",
    "first_contact_min",
    "rb_activities",
    "engaged",
    "stopped_at_handover",
    "lapsed",
    "contacts_ward",
    "contacts_community",
    "sessions",
    "readmitted_12m",
    "weeks_to_readmission",
)
"""The participant table's columns, in order: the one list of them."""
# Participant columns the model derives at the end rather than keeping per participant.
PARTICIPANT_DERIVED: tuple[str, ...] = (
    "participant",
    "peer_worker",
    "readmitted_12m",
    "weeks_to_readmission",
)

# Service mode: participant columns added after PARTICIPANT_COLUMNS (the participant
# is referred in week_recruited; an offer waits for a peer worker or lapses).
SERVICE_PARTICIPANT_COLUMNS: tuple[str, ...] = (
    "year_referred",
    "week_allocated",
    "wait_weeks",
    "offer_lapsed",
    "readmitted_12m_without_ps",
)
SITE_YEAR_COLUMNS: tuple[str, ...] = (
    "site",
    "year",
    "n_referrals",
    "n_offered",
    "n_started",
    "n_offer_lapsed",
    "wait_mean_weeks",
    "waiting_list_mean",
    "waiting_list_max",
    "n_engaged",
    "engaged_share",
    "n_sessions",
    "fidelity_rated",
    "pw_wellbeing_mean",
    "pw_vacancies_mean",
    "n_readmitted_with_ps",
    "n_readmitted_without_ps",
    "readmissions_avoided",
    "readmissions_avoided_lo",
    "readmissions_avoided_hi",
)
"""Service mode's site-year table, in order. Counts of people (referrals, offers,
starts, lapses, engaged, readmissions) are of those referred in the service year;
sessions, waiting lists, ratings, wellbeing and vacancies are of the weeks of the
year."""

ARMS: tuple[str, str] = ("usual_care", "peer_support")
DIAGNOSES: tuple[str, str, str] = ("psychotic", "personality", "other")
SETTINGS: tuple[str, str, str] = ("", "ward", "community")


@dataclass(frozen=True)
class Results:
    """What ``run(scenario, seed)`` returns.

    ``trial`` is a flat dict of the statistics the trial itself reported;
    ``site_weeks`` and ``participants`` are long-format tables, one row per
    (site, week) and per participant.
    """

    site_names: tuple[str, ...]
    trial: dict[str, float]
    site_week_arrays: dict[str, np.ndarray] = field(repr=False)
    participant_arrays: dict[str, np.ndarray] = field(repr=False)
    # Service mode only (empty for a trial): one row per site and service year.
    site_year_arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @cached_property
    def site_weeks(self) -> pd.DataFrame:
        import pandas as pd

        cols: dict[str, Any] = dict(self.site_week_arrays)
        cols["site"] = pd.Categorical.from_codes(cols["site"], categories=list(self.site_names))
        return pd.DataFrame({c: cols[c] for c in SITE_WEEK_COLUMNS})

    @cached_property
    def participants(self) -> pd.DataFrame:
        import pandas as pd

        a: dict[str, Any] = dict(self.participant_arrays)
        a["site"] = pd.Categorical.from_codes(a["site"], categories=list(self.site_names))
        a["arm"] = pd.Categorical.from_codes(a["arm"], categories=list(ARMS))
        a["diagnosis"] = pd.Categorical.from_codes(a["diagnosis"], categories=list(DIAGNOSES))
        setting = np.asarray(SETTINGS, dtype=object)[a["first_contact_setting"]]
        a["first_contact_setting"] = pd.array(setting, dtype="string")
        # Counts that do not exist for a participant are missing, not -1.
        for c in ("peer_worker", "week_first_contact", "rb_activities", "weeks_to_readmission"):
            a[c] = pd.array(np.where(a[c] >= 0, a[c], 0), dtype="Int64")
            a[c][np.asarray(self.participant_arrays[c]) < 0] = pd.NA
        columns = [*PARTICIPANT_COLUMNS, *(c for c in SERVICE_PARTICIPANT_COLUMNS if c in a)]
        if "week_allocated" in a:
            for c in ("week_allocated", "wait_weeks"):
                a[c] = pd.array(np.where(a[c] >= 0, a[c], 0), dtype="Int64")
                a[c][np.asarray(self.participant_arrays[c]) < 0] = pd.NA
        return pd.DataFrame({c: a[c] for c in columns})

    @cached_property
    def site_years(self) -> pd.DataFrame:
        """Service mode's per site and year table (no rows for a trial)."""
        import pandas as pd

        if not self.site_year_arrays:
            return pd.DataFrame({c: [] for c in SITE_YEAR_COLUMNS})
        cols: dict[str, Any] = dict(self.site_year_arrays)
        cols["site"] = pd.Categorical.from_codes(cols["site"], categories=list(self.site_names))
        return pd.DataFrame({c: cols[c] for c in SITE_YEAR_COLUMNS})

    @cached_property
    def trial_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([self.trial])
