"""The outcomes peersim reports, in one registry: name, plain-language label, unit,
which way is better, scope, and how each is computed from one replicate.

``analysis.compare``, the sensitivity outputs (``analysis.sensitivity``), the
calibration statistics (``calibration.statistics``), the teaching app and every
report take their names, labels, units and directions from ``OUTCOMES``, so the
same quantity has the same name and reads the same everywhere. It lives in
``simulation`` so that calibration and analysis can both import it.

How an outcome is computed:

- ``of_trial(results)``: the whole trial's value in one replicate (not for the
  calibration statistics that need settings, such as a site or two other
  statistics: ``calibration.statistics`` computes those with their settings).
- ``of_sites(results, scenario)``: one value per site, in site order, for the
  outcomes with ``site_values`` (``per_site``); the scenario gives the dose of the 2+ sessions group
  (only readmission of that group needs it).
- ``trial_key``, ``site_week_column``, ``readmitted``: where the value is read, so
  that ``analysis.compare`` can read it from the tables of many replicates at once
  (the same numbers, vectorised): the key of ``Results.trial`` holding the whole
  trial's value; the ``site_weeks`` column holding each site's value at the end of
  delivery; the group whose readmission share is each site's value; the prefix
  of the ``Results.trial`` keys ``PREFIX_SITE`` holding each site's value (rated
  fidelity). An outcome with a ``site_week_column`` or a ``site_trial_prefix`` and
  no ``trial_key`` is, for the whole trial, the mean over sites (fidelity).

Labels and units may name ``{followup}`` and ``{dose}``: ``label_for``,
``unit_for`` and ``heading`` fill in a scenario's follow-up and 2+ sessions dose.

Old spellings (``ALIASES``) are accepted in input files for one release; ``note``
says how to write them now.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from simulation.params import Scenario
from simulation.results import ARMS, SETTINGS, Results

Better = Literal["higher", "lower", "none"]
Group = Literal["peer_support", "usual_care", "dose"]
TrialFn = Callable[[Results], float]
SiteFn = Callable[[Results, Scenario | None], np.ndarray]

FIDELITY_DOMAINS: tuple[str, ...] = (
    "fid_relationships",
    "fid_reciprocity",
    "fid_leadership",
    "fid_strengths",
)
# The dose of the "2+ sessions" group the ENRICH trial reported on.
DEFAULT_DOSE = 2
# Units, named once so that the same unit reads the same everywhere.
SHARE_PS = "share of the peer support arm"
SHARE_ARM = "share of the arm"  # of the arm the label names
SHARE_GROUP = "share of the group"  # of the group the label names
SHARE_SITE_PS = "share of the site's peer support arm"
INDEX_01 = "0-1 index"
ODDS_RATIO = "odds ratio"
LOG_ODDS_RATIO = "log odds ratio"
SHARE_DIFFERENCE = "difference in share"
CONTACTS_PER_PS = "contacts per participant of the peer support arm"


@dataclass(frozen=True)
class Outcome:
    """One outcome (see the module docstring for how it is computed)."""

    name: str
    label: str  # plain language, without the unit; see ``label_for``
    unit: str
    better: Better
    value: TrialFn | None = None
    site_values: SiteFn | None = None
    trial_key: str | None = None
    site_week_column: str | None = None
    readmitted: Group | None = None
    site_trial_prefix: str | None = None

    @property
    def per_site(self) -> bool:
        """Per site too (``False``: the whole trial only)."""
        return self.site_values is not None

    def label_for(self, scenario: Scenario | None = None) -> str:
        """The label with the scenario's follow-up and dose filled in (without a
        scenario: "follow-up" and ENRICH's 2+ sessions)."""
        return _filled(self.label, scenario)

    def unit_for(self, scenario: Scenario | None = None) -> str:
        return _filled(self.unit, scenario)

    def heading(self, scenario: Scenario | None = None) -> str:
        """Label and unit, for table rows and headings and figure axes."""
        return f"{self.label_for(scenario)} ({self.unit_for(scenario)})"

    def of_trial(self, results: Results) -> float:
        """The whole trial's value in one replicate."""
        if self.value is None:
            raise ValueError(f"{self.name} needs settings: see calibration.statistics")
        return self.value(results)

    def of_sites(self, results: Results, scenario: Scenario | None = None) -> np.ndarray:
        """One value per site, in site order; ``scenario`` gives the 2+ sessions dose."""
        if self.site_values is None:
            raise ValueError(f"{self.name} is an outcome of the whole trial only")
        return self.site_values(results, scenario)


def _filled(text: str, scenario: Scenario | None) -> str:
    if scenario is None:
        followup, dose = "follow-up", DEFAULT_DOSE
    else:
        followup = f"{scenario.trial.dur_followup_weeks} weeks"
        dose = scenario.readmission.n_sessions_dose
    return text.replace("{followup}", followup).replace("{dose}", str(dose))


# --- how values are read -------------------------------------------------------------


def finite_mean(values: np.ndarray) -> float:
    """Mean of the finite values; NaN if there are none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def finite_range(values: np.ndarray) -> float:
    """Largest minus smallest finite value; NaN if there are none."""
    finite = values[np.isfinite(values)]
    return float(finite.max() - finite.min()) if finite.size else math.nan


def log_or_nan(ratio: float) -> float:
    """The natural log of an odds ratio; NaN unless it is positive."""
    return math.log(ratio) if ratio > 0 else math.nan


def _trial(key: str) -> TrialFn:
    def value(results: Results) -> float:
        return float(results.trial[key])

    return value


def _per_site_trial(prefix: str) -> Callable[[Results], np.ndarray]:
    """``trial[f"{prefix}_{site}"]`` of every site, in site order."""

    def values(results: Results) -> np.ndarray:
        trial = results.trial
        return np.array([trial[f"{prefix}_{s}"] for s in results.site_names], dtype=np.float64)

    return values


def _end_of_delivery(column: str) -> Callable[[Results], np.ndarray]:
    """Each site's ``column`` in the last simulated week, in site order."""

    def values(results: Results) -> np.ndarray:
        arrays = results.site_week_arrays
        last = arrays["week"] == arrays["week"].max()
        out = np.full(len(results.site_names), math.nan)
        out[np.asarray(arrays["site"])[last]] = np.asarray(arrays[column], dtype=np.float64)[last]
        return out

    return values


def _site(values: Callable[[Results], np.ndarray]) -> SiteFn:
    def site_values(results: Results, scenario: Scenario | None) -> np.ndarray:
        return values(results)

    return site_values


def _mean_over_sites(values: Callable[[Results], np.ndarray]) -> TrialFn:
    def value(results: Results) -> float:
        return finite_mean(values(results))

    return value


def _gap(values: Callable[[Results], np.ndarray]) -> TrialFn:
    def value(results: Results) -> float:
        return finite_range(values(results))

    return value


def _readmitted(group: Group) -> SiteFn:
    """Each site's share of ``group`` readmitted within follow-up (NaN: nobody in it)."""

    def site_values(results: Results, scenario: Scenario | None) -> np.ndarray:
        if group == "dose" and scenario is None:
            raise ValueError("readmission of the 2+ sessions group needs the scenario's dose")
        a = results.participant_arrays
        site = np.asarray(a["site"], dtype=np.int64)
        ps = np.asarray(a["arm"], dtype=np.int64) == ARMS.index("peer_support")
        members = {
            "peer_support": ps,
            "usual_care": ~ps,
        }.get(group)
        if members is None:  # the dose group
            assert scenario is not None
            dose = scenario.readmission.n_sessions_dose
            members = ps & (np.asarray(a["sessions"]) >= dose)
        readmitted = np.asarray(a["readmitted_12m"], dtype=bool)
        n_sites = len(results.site_names)
        n = np.bincount(site[members], minlength=n_sites).astype(float)
        back = np.bincount(site[members & readmitted], minlength=n_sites).astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(n > 0, back / n, math.nan)

    return site_values


def _per_participant_of_ps(values: Callable[[Results], np.ndarray]) -> SiteFn:
    """Each site's mean over its peer support arm of ``values`` (one per participant);
    NaN at a site without peer support participants."""

    def site_values(results: Results, scenario: Scenario | None) -> np.ndarray:
        a = results.participant_arrays
        site = np.asarray(a["site"], dtype=np.int64)
        ps = np.asarray(a["arm"], dtype=np.int64) == ARMS.index("peer_support")
        n_sites = len(results.site_names)
        n = np.bincount(site[ps], minlength=n_sites).astype(float)
        total = np.bincount(site[ps], weights=values(results)[ps], minlength=n_sites)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(n > 0, total / n, math.nan)

    return site_values


def _of_ps(values: Callable[[Results], np.ndarray]) -> TrialFn:
    """The mean over the whole peer support arm of ``values``; NaN if it is empty."""

    def value(results: Results) -> float:
        a = results.participant_arrays
        ps = np.asarray(a["arm"], dtype=np.int64) == ARMS.index("peer_support")
        return float(values(results)[ps].mean()) if ps.any() else math.nan

    return value


def _community_contacts(results: Results) -> np.ndarray:
    return np.asarray(results.participant_arrays["contacts_community"], dtype=np.float64)


def _first_met_on_ward(results: Results) -> np.ndarray:
    setting = np.asarray(results.participant_arrays["first_contact_setting"], dtype=np.int64)
    return (setting == SETTINGS.index("ward")).astype(np.float64)


def _log_itt_or(results: Results) -> float:
    return log_or_nan(float(results.trial["itt_or"]))


_engaged = _per_site_trial("engaged_share")
_fidelity = _per_site_trial("fidelity")


def _from_trial(
    name: str, label: str, unit: str, better: Better, readmitted: Group | None = None
) -> Outcome:
    """An outcome whose whole-trial value is ``Results.trial[name]``; per site, the
    readmission share of ``readmitted`` if given."""
    return Outcome(
        name,
        label,
        unit,
        better,
        value=_trial(name),
        site_values=_readmitted(readmitted) if readmitted is not None else None,
        trial_key=name,
        readmitted=readmitted,
    )


def _domain(name: str, label: str) -> Outcome:
    return Outcome(
        name,
        f"fidelity: {label}",
        INDEX_01,
        "higher",
        value=_mean_over_sites(_end_of_delivery(name)),
        site_values=_site(_end_of_delivery(name)),
        site_week_column=name,
    )


def _described(name: str, label: str, unit: str, better: Better = "none") -> Outcome:
    """A calibration statistic computed by ``calibration.statistics`` (it takes settings)."""
    return Outcome(name, label, unit, better)


_ALL: tuple[Outcome, ...] = (
    Outcome(
        "met_share",
        "met their peer worker",
        SHARE_PS,
        "higher",
        value=_trial("met_share"),
        site_values=_site(_end_of_delivery("met_share")),
        trial_key="met_share",
        site_week_column="met_share",
    ),
    Outcome(
        "engaged_share",
        "engaged with peer support",
        SHARE_PS,
        "higher",
        value=_trial("engaged_share"),
        site_values=_site(_engaged),
        trial_key="engaged_share",
        site_week_column="engaged_share",
    ),
    Outcome(
        "fidelity",
        "fidelity as rated, mean of 4 domains and the rating weeks",
        INDEX_01,
        "higher",
        value=_mean_over_sites(_fidelity),
        site_values=_site(_fidelity),
        site_trial_prefix="fidelity",
    ),
    _domain("fid_relationships", "building relationships"),
    _domain("fid_reciprocity", "reciprocity and mutuality"),
    _domain("fid_leadership", "leadership, choice and control"),
    _domain("fid_strengths", "building on strengths"),
    _from_trial(
        "readmit_ps",
        "readmitted within {followup}, peer support arm",
        SHARE_ARM,
        "lower",
        "peer_support",
    ),
    _from_trial(
        "readmit_uc",
        "readmitted within {followup}, usual care arm",
        SHARE_ARM,
        "lower",
        "usual_care",
    ),
    _from_trial(
        "readmit_2plus",
        "readmitted within {followup}, peer support with {dose}+ sessions",
        SHARE_GROUP,
        "lower",
        "dose",
    ),
    _from_trial(
        "itt_or",
        "ITT odds ratio of readmission, peer support vs usual care",
        ODDS_RATIO,
        "lower",
    ),
    Outcome(
        "log_itt_or",
        "log ITT odds ratio of readmission, peer support vs usual care",
        LOG_ODDS_RATIO,
        "lower",
        value=_log_itt_or,
        trial_key="itt_or",  # a service has no arms, so no odds ratio
    ),
    _from_trial("allocated_share", "allocated a peer worker", SHARE_PS, "higher"),
    Outcome(
        "contacts_community_mean",
        "community contacts after discharge",
        CONTACTS_PER_PS,
        "higher",
        value=_trial("contacts_community_mean"),
        site_values=_per_participant_of_ps(_community_contacts),
        trial_key="contacts_community_mean",
    ),
    Outcome(
        "met_on_ward_share",
        "first met their peer worker on the ward",
        SHARE_PS,
        "higher",
        value=_of_ps(_first_met_on_ward),
        site_values=_per_participant_of_ps(_first_met_on_ward),
    ),
    Outcome(
        "site_gap_engaged",
        "engaged share of the best site minus that of the worst",
        SHARE_DIFFERENCE,
        "lower",
        value=_gap(_engaged),
    ),
    Outcome(
        "site_gap_fidelity",
        "end-of-delivery fidelity of the best site minus that of the worst",
        "difference in 0-1 index",
        "lower",
        value=_gap(_fidelity),
    ),
    # The calibration statistics that take settings or a regression.
    _described(
        "itt_or_ci", "95% confidence interval of the ITT odds ratio", "odds ratios, low and high"
    ),
    _described(
        "engaged_or_per_first_contact_min",
        "odds ratio of engaging per minute of first contact",
        "odds ratio per minute",
    ),
    _described(
        "engaged_or_per_rb_activity",
        "odds ratio of engaging per relationship-building activity in the first contact",
        "odds ratio per activity",
    ),
    _described(
        "engaged_or_non_heterosexual",
        "odds ratio of engaging for non-heterosexual participants",
        ODDS_RATIO,
    ),
    _described(
        "readmit_2plus_minus_uc",
        "readmission of the {dose}+ sessions group minus readmission of the usual care arm",
        SHARE_DIFFERENCE,
        "lower",
    ),
    _described(
        "readmit_ps_minus_uc",
        "readmission of the peer support arm minus readmission of the usual care arm",
        SHARE_DIFFERENCE,
        "lower",
    ),
    _described("difference", "one statistic minus another", "the two statistics' unit"),
    _described(
        "site_engaged_share", "engaged with peer support at one site", SHARE_SITE_PS, "higher"
    ),
    _described(
        "site_fidelity",
        "one site's fidelity, mean of 4 domains, end of delivery",
        INDEX_01,
        "higher",
    ),
    _described(
        "site_engagement_fidelity_correlation",
        "correlation across sites of engaged share and end-of-delivery fidelity",
        "correlation, -1 to 1",
    ),
    _described(
        "low_sites_below_others",
        "how far the listed sites fall below the others in engaged share and fidelity",
        "difference in share or 0-1 index",
    ),
)
# Service mode's outcomes (Scenario.mode = "service"), over the service's horizon;
# people are counted in the year they were referred.
SHARE_REFERRALS = "share of referrals"
_SERVICE: tuple[Outcome, ...] = (
    _from_trial(
        "readmissions_avoided",
        "readmissions avoided (without minus with peer support, the same people)",
        "readmissions",
        "higher",
    ),
    _from_trial(
        "readmit_with_ps",
        "readmitted within {followup}, with peer support",
        SHARE_REFERRALS,
        "lower",
    ),
    _from_trial(
        "readmit_without_ps",
        "readmitted within {followup}, without peer support",
        SHARE_REFERRALS,
        "none",
    ),
    _from_trial(
        "offer_lapsed_share", "offer lapsed after the longest wait", SHARE_REFERRALS, "lower"
    ),
    _from_trial(
        "wait_mean_weeks", "wait for a first peer worker, of those started", "weeks", "lower"
    ),
    _from_trial(
        "waiting_list_mean",
        "waiting list per site, mean over the service's weeks",
        "people",
        "lower",
    ),
    _from_trial("sessions_delivered", "sessions delivered over the horizon", "sessions", "higher"),
    _from_trial(
        "pw_vacancies_mean",
        "peer worker posts vacant per site, mean over the service's weeks",
        "posts",
        "lower",
    ),
)
OUTCOMES: dict[str, Outcome] = {o.name: o for o in (*_ALL, *_SERVICE)}

# Old spelling -> the name to write now; accepted in input files for one release.
ALIASES: dict[str, str] = {"itt_log_or": "log_itt_or"}

# What each user reports, in its order.
COMPARED: tuple[str, ...] = (
    "met_share",
    "engaged_share",
    "fidelity",
    *FIDELITY_DOMAINS,
    "readmit_ps",
    "readmit_uc",
    "readmit_2plus",
    "itt_or",
    "log_itt_or",
)
# What compare reports of a service scenario besides COMPARED's (those present).
SERVICE_COMPARED: tuple[str, ...] = tuple(o.name for o in _SERVICE)
SENSITIVITY_OUTPUTS: tuple[str, ...] = (
    "engaged_share",
    "met_share",
    "fidelity",
    *FIDELITY_DOMAINS,
    "readmit_ps",
    "readmit_uc",
    "itt_or",
    "log_itt_or",
    "site_gap_engaged",
    "site_gap_fidelity",
)
# Per-site sensitivity outputs: "<name>_<site>".
SENSITIVITY_SITE_OUTPUTS: tuple[str, ...] = ("engaged_share", "fidelity")


def canonical(name: str) -> str:
    """The name to write now: ``name`` itself, or what its old spelling became."""
    return ALIASES.get(name, name)


def note(name: str) -> str | None:
    """How to write an old spelling now; ``None`` for a current name."""
    if name not in ALIASES:
        return None
    return (
        f"{name!r} is now written {ALIASES[name]!r}; the old spelling is accepted "
        "for this release only"
    )


def outcome(name: str) -> Outcome:
    """The outcome ``name`` (or an old spelling of it); ``KeyError`` if unknown."""
    return OUTCOMES[canonical(name)]


def heading(name: str, scenario: Scenario | None = None) -> str:
    """``name``'s label and unit; the name itself if it is not an outcome."""
    found = OUTCOMES.get(canonical(name))
    return found.heading(scenario) if found is not None else name


def units_line(columns: Iterable[tuple[str, str]]) -> str:
    """The units of a table's columns, given as (outcome name, column heading) pairs,
    in one line: ``units: HEADING, HEADING: UNIT; HEADING: UNIT``."""
    by_unit: dict[str, list[str]] = {}
    for name, column in columns:
        by_unit.setdefault(outcome(name).unit_for(), []).append(column)
    return "units: " + "; ".join(f"{', '.join(cols)}: {unit}" for unit, cols in by_unit.items())
