"""Frozen, validated parameters of one peersim scenario.

Every field carries its unit in its name (``p_`` probability, ``dur_`` duration,
``n_`` count, ``rel_`` multiplier, ``w_`` weight, ``rate_`` per-week rate) and, in
its metadata, the evidence grade of its default value:

- ``T`` stated in a published ENRICH trial paper or report abstract;
- ``W`` stated on a trial-site web page or lay summary (weaker);
- ``S`` stated in the seed case study;
- ``M`` a modelling assumption: a free parameter with a prior, never a fact.

The defaults here are the ENRICH trial scenario's values. ``docs/ODD.md`` lists
them in its parameter table and a test keeps the two identical.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, NoReturn

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    model_validator,
)


def _f(default: Any, grade: str, unit: str, meaning: str, source: str = "", **kw: Any) -> Any:
    """A field with its unit, evidence grade and source attached for the ODD table."""
    extra: dict[str, Any] = {"grade": grade, "unit": unit, "source": source}
    return Field(default, description=meaning, json_schema_extra=extra, **kw)


def _as_tuple(value: Any) -> Any:
    """TOML arrays arrive as lists; a frozen scenario holds tuples."""
    return tuple(value) if isinstance(value, list) else value


class FrozenDict(dict[str, Any]):
    """A dict that refuses changes, so a validated scenario's sites stay as validated."""

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("scenario parameters are frozen: make a changed copy instead")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse

    def __reduce__(self) -> tuple[type[FrozenDict], tuple[dict[str, Any]]]:
        return (FrozenDict, (dict(self),))


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class TrialDesign(_Frozen):
    """How the trial recruits, randomises and follows participants."""

    dur_recruitment_weeks: int = _f(
        52, "M", "weeks", "length of the recruitment period at every site", ge=1, le=520
    )
    dur_ward_after_recruitment_max_weeks: int = _f(
        4,
        "W",
        "weeks",
        "longest ward stay after recruitment (recruited when judged likely to be "
        "discharged within a month); stays are uniform on 1..max",
        "ENRICH.md trial design",
        ge=1,
        le=26,
    )
    dur_support_after_discharge_weeks: int = _f(
        16,
        "T",
        "weeks",
        "peer support continues for 4 months after discharge",
        "Lancet Psychiatry 2022",
        ge=0,
        le=104,
    )
    dur_weekly_phase_weeks: int = _f(
        10,
        "W",
        "weeks",
        "meetings are weekly for this many weeks after discharge, "
        "then fortnightly until support ends",
        "ENRICH.md trial design",
        ge=0,
        le=104,
    )
    dur_followup_weeks: int = _f(
        52,
        "T",
        "weeks",
        "readmission is followed for 12 months after discharge",
        "Lancet Psychiatry 2022",
        ge=1,
        le=260,
    )
    share_psychotic: float = _f(
        0.4, "M", "share", "share of participants in the psychotic disorders stratum", ge=0, le=1
    )
    share_personality: float = _f(
        0.3,
        "M",
        "share",
        "share in the personality disorders stratum (the rest: other)",
        ge=0,
        le=1,
    )
    p_non_heterosexual: float = _f(
        0.1, "M", "probability", "share of participants who are not heterosexual", ge=0, le=1
    )
    n_block_max: int = _f(
        3,
        "M",
        "pairs",
        "randomisation blocks hold 1..n_block_max pairs (permuted blocks "
        "of randomly varying length)",
        ge=1,
        le=10,
    )

    @model_validator(mode="after")
    def _shares_fit(self) -> TrialDesign:
        if self.share_psychotic + self.share_personality > 1:
            raise ValueError(
                "share_psychotic + share_personality must be at most 1 "
                f"(got {self.share_psychotic} + {self.share_personality})"
            )
        if self.dur_weekly_phase_weeks > self.dur_support_after_discharge_weeks:
            raise ValueError(
                "dur_weekly_phase_weeks must not exceed dur_support_after_discharge_weeks "
                f"(got {self.dur_weekly_phase_weeks} > {self.dur_support_after_discharge_weeks})"
            )
        return self


class ServiceDesign(_Frozen):
    """Service mode (``Scenario.mode = "service"``): peer support as a standing
    service. Referrals arrive at each site as a Poisson process, everyone referred
    is offered peer support, and the comparison is the same people without it.
    No service has been observed: every value is a planning assumption [M]."""

    horizon_years: int = _f(
        3, "M", "years", "years of referrals simulated after launch", ge=1, le=10
    )
    dur_prelaunch_weeks: int = _f(
        8,
        "M",
        "weeks",
        "weeks before the first referral in which peer workers are in post and the "
        "coordinators prepare the ward teams (start-up)",
        ge=0,
        le=104,
    )
    dur_ramp_up_weeks: int = _f(
        12,
        "M",
        "weeks",
        "referrals rise linearly from none to the full rate over this many weeks after launch",
        ge=0,
        le=260,
    )
    rel_seasonality: float = _f(
        0.0,
        "M",
        "share of the mean rate",
        "referrals vary over the year by this share above and below the mean, "
        "highest at the start of each service year",
        ge=0,
        le=1,
    )
    max_wait_weeks: int = _f(
        8,
        "M",
        "weeks",
        "longest wait for a first peer worker; an offer still waiting then lapses",
        ge=0,
        le=104,
    )
    rating_week_of_year: int = _f(
        26,
        "M",
        "week of the service year",
        "when each site's peer workers are rated for fidelity each service year",
        ge=0,
        le=51,
    )


class Engagement(_Frozen):
    """M2: the quality of the first contact decides whether a participant engages."""

    or_per_first_contact_min: float = _f(
        1.03,
        "T",
        "odds ratio per minute",
        "odds of engaging per minute of first contact",
        "White et al. 2023",
        gt=0,
        le=10,
    )
    or_per_rb_activity: float = _f(
        1.4,
        "T",
        "odds ratio per activity",
        "odds of engaging per relationship-building activity in the first contact",
        "White et al. 2023",
        gt=0,
        le=20,
    )
    or_non_heterosexual: float = _f(
        4.38,
        "T",
        "odds ratio",
        "odds of engaging for non-heterosexual participants",
        "White et al. 2023",
        gt=0,
        le=100,
    )
    logit_intercept: float = _f(
        -2.0,
        "M",
        "log-odds",
        "log-odds of engaging at a zero-minute, zero-activity contact",
        ge=-20,
        le=20,
    )
    dur_first_contact_full_min: float = _f(
        60.0,
        "M",
        "min",
        "mean first-contact length for a peer worker at full fidelity and "
        "morale in a setting that makes room for it",
        gt=0,
        le=480,
    )
    dur_first_contact_sd_min: float = _f(
        15.0, "M", "min", "spread of first-contact length between contacts", ge=0, le=240
    )
    n_rb_activities_max: int = _f(
        5,
        "M",
        "activities",
        "most relationship-building activities one first contact holds",
        ge=0,
        le=20,
    )
    rel_first_contact_community: float = _f(
        0.8,
        "M",
        "multiplier",
        "first contacts made in the community after discharge are "
        "this much shorter (no ward introduction)",
        ge=0,
        le=2,
    )
    w_ward_room: float = _f(
        0.5,
        "M",
        "weight",
        "how much a poor ward relationship shortens a ward first contact",
        ge=0,
        le=1,
    )
    w_frailty_engage: float = _f(
        -0.3,
        "M",
        "log-odds per SD of frailty",
        "frailer participants engage less, so part of the observed dose association is selection",
        ge=-5,
        le=5,
    )


class Ward(_Frozen):
    """M1 and M4: ward staff relationship, referrals and access before discharge."""

    ward_relationship_base: float = _f(
        0.5,
        "M",
        "0-1 score",
        "ward staff stance towards peer workers with no preparation",
        ge=0,
        le=1,
    )
    w_preparation: float = _f(
        0.4,
        "M",
        "score per unit preparation",
        "rise in the ward relationship target from a full team preparation programme",
        ge=0,
        le=1,
    )
    w_friction_nfp: float = _f(
        0.25,
        "M",
        "score",
        "fall in the ward relationship target where peer workers are "
        "employed by a not-for-profit without honorary contracts",
        ge=0,
        le=1,
    )
    w_experience: float = _f(
        0.2,
        "M",
        "score",
        "shift in the target from experience: (engaged - declined) / met",
        ge=0,
        le=1,
    )
    rate_adjust_per_week: float = _f(
        0.1,
        "M",
        "per week",
        "speed at which the ward relationship moves to its target",
        ge=0,
        le=1,
    )
    p_first_contact_per_week_max: float = _f(
        0.6,
        "M",
        "probability per week",
        "chance of a first ward meeting in a week, with a "
        "perfect ward relationship and full access",
        ge=0,
        le=1,
    )
    p_contact_per_week: float = _f(
        0.7,
        "M",
        "probability per week",
        "chance of a further ward meeting in a week before "
        "discharge once the participant has met their peer worker",
        ge=0,
        le=1,
    )
    rel_referral_no_records: float = _f(
        0.7,
        "M",
        "multiplier",
        "referral reliability for a peer worker without access to electronic notes",
        "access differed between peer workers: Marks 2021 [T]",
        ge=0,
        le=1,
    )
    rel_authority_nfp: float = _f(
        0.7,
        "M",
        "multiplier",
        "ward access of not-for-profit peer workers without "
        "honorary contracts (authority on the ward)",
        ge=0,
        le=1,
    )
    share_records_access_nfp: float = _f(
        0.0,
        "M",
        "share",
        "share of not-for-profit peer workers without honorary contracts who can read "
        "the NHS electronic notes (in place of the site's share_records_access)",
        "access differed between peer workers: Marks 2021 [T]",
        ge=0,
        le=1,
    )


class Community(_Frozen):
    """Contacts after discharge; the hours they take are in ``Workweek`` (M5)."""

    p_first_contact_per_week: float = _f(
        0.1,
        "M",
        "probability per week",
        "chance per week that a participant discharged "
        "before any ward contact is reached in the community",
        ge=0,
        le=1,
    )
    p_missed_meeting: float = _f(
        0.25,
        "M",
        "probability",
        "chance an engaged participant of average frailty and a "
        "peer worker at full morale misses a scheduled meeting",
        ge=0,
        le=1,
    )
    w_frailty_missed: float = _f(
        0.5, "M", "log-odds per SD", "frailer participants miss more meetings", ge=-5, le=5
    )
    dur_meeting_min: float = _f(
        60.0, "M", "min", "length of a meeting, travel excluded", gt=0, le=480
    )
    p_lapse_per_unheld_meeting: float = _f(
        0.15,
        "M",
        "probability",
        "chance an engaged participant stops peer support when a scheduled community "
        "meeting is not held because their peer worker's hours ran out",
        "service users discontinued: BMC Psychiatry 2022 [T]",
        ge=0,
        le=1,
    )


class Supervision(_Frozen):
    """M3 and M4: how coordinator hours turn into supervision."""

    dur_need_h_per_pw_week: float = _f(
        1.0,
        "M",
        "h per peer worker per week",
        "scale of supervision's diminishing returns: adequacy is 1 - exp(-hours / this), "
        "so this many hours give 0.63 and twice as many 0.86",
        gt=0,
        le=40,
    )
    share_liaison_nfp: float = _f(
        0.3,
        "M",
        "share",
        "share of coordinator time spent on liaison between organisations "
        "at not-for-profit hosted sites",
        ge=0,
        le=1,
    )
    dur_team_prep_h_per_week: float = _f(
        2.0,
        "M",
        "h per week",
        "coordinator hours a full team preparation programme takes",
        ge=0,
        le=40,
    )
    p_attend_rural: float = _f(
        0.7,
        "M",
        "probability",
        "share of group supervision a rural peer worker attends",
        ge=0,
        le=1,
    )
    n_team_visits_per_week: float = _f(
        2.0,
        "M",
        "visits per week",
        "journeys the site's coordinators make each week to the ward, the community "
        "team and the peer workers; each costs the site's return travel out of "
        "coordinator hours (M5: geography limits supervision [S])",
        ge=0,
        le=20,
    )


class Workweek(_Frozen):
    """M5 and M8: a peer worker's contracted week and what it is spent on.

    Hours go first to fixed commitments (team meeting, admin, group supervision
    and, at rural sites, the journey to it), then to the ward (visits while any
    participant is still an inpatient, and ward meetings), then to scheduled
    community meetings with their travel, and last to seeking participants
    discharged before a first contact. Where the hours run out, the later uses
    get a share of what they need: meetings are missed and first contacts slip.
    """

    dur_contracted_h_per_week: float = _f(
        15.0,
        "M",
        "h per week",
        "a peer worker's contracted hours (ENRICH posts' hours not obtained; "
        "part-time posts assumed)",
        ge=1,
        le=80,
    )
    dur_team_meeting_h_per_week: float = _f(
        1.0, "M", "h per week", "peer worker team and service meetings", ge=0, le=40
    )
    dur_admin_h_per_week: float = _f(
        2.0, "M", "h per week", "admin, training and email, apart from contact notes", ge=0, le=40
    )
    dur_notes_min_per_contact: float = _f(
        15.0, "M", "min per contact", "writing up each meeting", ge=0, le=240
    )
    dur_group_supervision_h_per_week: float = _f(
        1.5,
        "M",
        "h per week",
        "group supervision attended (regular group supervision is [T], Marks 2021; "
        "its length and frequency were not obtained)",
        ge=0,
        le=40,
    )
    n_ward_visits_per_week: int = _f(
        2,
        "M",
        "visits per week",
        "ward visits a peer worker makes while any of their participants is an inpatient "
        "(to be known to staff and meet participants); each costs the return journey",
        ge=0,
        le=14,
    )
    dur_ward_visit_h: float = _f(
        1.5,
        "M",
        "h per visit",
        "time on the ward per visit, apart from meetings with participants",
        ge=0,
        le=12,
    )
    dur_seek_h_per_week: float = _f(
        1.0,
        "M",
        "h per participant per week",
        "trying to reach a participant discharged before any contact (calls, visits)",
        ge=0,
        le=40,
    )


class Fidelity(_Frozen):
    """M3, M4, M5 and M6: each peer worker's four fidelity domains, each on 0-1.

    Every domain is pulled towards full fidelity by supervision and drifts with
    the peer worker's own susceptibility; each domain also has its own driver
    (docs/ODD.md, "Fidelity"): clinical pull erodes relationships and
    reciprocity, lost wellbeing erodes reciprocity, missing ward access and
    records erode leadership, choice and control, and hours short erode
    strengths and community connections.
    """

    fidelity_initial: float = _f(
        0.7,
        "M",
        "0-1 score",
        "median of each domain's score after training, over peer workers (a "
        "logit-normal spread around it)",
        ge=0,
        le=1,
    )
    sd_initial_logit: float = _f(
        0.5,
        "M",
        "SD of log-odds",
        "spread of peer workers' starting scores, each domain drawn on its own",
        ge=0,
        le=5,
    )
    w_existing_workforce_logit: float = _f(
        0.3,
        "M",
        "log-odds",
        "shift in the starting scores of peer workers assigned from an existing peer "
        "workforce rather than newly hired (both pathways are [T], Marks 2021; "
        "their difference is not)",
        ge=-5,
        le=5,
    )
    sd_log_susceptibility: float = _f(
        0.5,
        "M",
        "SD of log-multiplier",
        "spread between peer workers of susceptibility to drift (mean-one lognormal)",
        ge=0,
        le=3,
    )
    rate_pull_per_week: float = _f(
        0.1, "M", "per week", "pull of fully adequate supervision towards full fidelity", ge=0, le=1
    )
    rate_drift_per_week: float = _f(
        0.03,
        "M",
        "per week",
        "drift of every domain away from peer support principles, at average susceptibility",
        ge=0,
        le=1,
    )
    rate_clinical_pull_per_week: float = _f(
        0.03,
        "M",
        "per week per ward share",
        "extra drift of relationships and reciprocity per share of the caseload on the ward (M6)",
        ge=0,
        le=1,
    )
    rate_burnout_drift_per_week: float = _f(
        0.03,
        "M",
        "per week per unit of lost wellbeing",
        "extra drift of reciprocity as wellbeing falls",
        ge=0,
        le=1,
    )
    rate_authority_drift_per_week: float = _f(
        0.04,
        "M",
        "per week per unit of missing access",
        "extra drift of leadership, choice and control per unit of ward access missing "
        "(records, authority: M4)",
        ge=0,
        le=1,
    )
    rate_time_pressure_drift_per_week: float = _f(
        0.1,
        "M",
        "per week per share of hours short",
        "extra drift of strengths and community connections per share of the week's "
        "needed hours not available (M5)",
        ge=0,
        le=2,
    )
    rating_weeks: Annotated[tuple[int, ...], BeforeValidator(_as_tuple)] = _f(
        (26, 52),
        "M",
        "weeks of delivery",
        "weeks at which each site's peer workers are rated on the fidelity index (the "
        "trial's rating times were not obtained); site fidelity is the mean rating",
        min_length=1,
        max_length=20,  # simulation.population.MAX_RATINGS
    )
    sd_rating_noise: float = _f(
        0.05,
        "M",
        "0-1 score",
        "rater error of one site rating, per domain (the index's reliability was not obtained)",
        ge=0,
        le=1,
    )

    @model_validator(mode="after")
    def _rating_weeks(self) -> Fidelity:
        if any(w < 0 for w in self.rating_weeks) or list(self.rating_weeks) != sorted(
            set(self.rating_weeks)
        ):
            raise ValueError(
                "rating_weeks must be distinct weeks >= 0 in increasing order "
                f"(got {list(self.rating_weeks)})"
            )
        return self


class Morale(_Frozen):
    """M8: peer worker wellbeing (morale) on 0-1, its feedback on contacts, and turnover.

    The cohort study found wellbeing and job satisfaction fell and burnout rose
    during the role [T] (BMC Psychiatry 2022): here strain, ward friction and
    participants who decline pull wellbeing down; supervision and the peer team
    hold it up.
    """

    morale_initial: float = _f(0.8, "M", "0-1 score", "wellbeing at the start", ge=0, le=1)
    rate_recovery_per_week: float = _f(
        0.02,
        "M",
        "per week",
        "recovery of wellbeing with fully adequate supervision",
        ge=0,
        le=1,
    )
    rate_team_support_per_week: float = _f(
        0.01,
        "M",
        "per week",
        "recovery with the peer team's support (less where rural travel cuts attendance)",
        ge=0,
        le=1,
    )
    rate_strain_per_week: float = _f(
        0.03,
        "M",
        "per week per workload ratio",
        "loss of wellbeing with workload (hours needed over hours contracted)",
        ge=0,
        le=1,
    )
    rate_shortfall_per_week: float = _f(
        0.05,
        "M",
        "per week per share of hours short",
        "loss of wellbeing from being unable to offer the support planned ([T]: feeling "
        "unable to offer enough support undermined peer workers' sense of value)",
        ge=0,
        le=1,
    )
    rate_friction_per_week: float = _f(
        0.02,
        "M",
        "per week per unit of ward distance",
        "loss of wellbeing from a poor ward relationship (1 - ward relationship)",
        ge=0,
        le=1,
    )
    rate_dropout_per_week: float = _f(
        0.02,
        "M",
        "per decline",
        "loss of wellbeing for each participant who declines at the first contact",
        ge=0,
        le=1,
    )
    w_morale_contact: float = _f(
        0.5, "M", "weight", "how much lost wellbeing shortens first contacts", ge=0, le=1
    )
    w_morale_missed: float = _f(
        1.0,
        "M",
        "log-odds per unit",
        "how much lost wellbeing raises missed meetings",
        ge=0,
        le=10,
    )
    p_leave_per_week: float = _f(
        0.0,
        "M",
        "probability per week",
        "chance a peer worker at full wellbeing leaves the role in a week (turnover; "
        "none in the ENRICH scenario, where no figure was obtained)",
        ge=0,
        le=1,
    )
    w_leave_low_morale: float = _f(
        2.0, "M", "multiplier per unit", "how much lost wellbeing raises leaving", ge=0, le=20
    )
    dur_vacancy_weeks: int = _f(
        8, "M", "weeks", "weeks a post stays vacant before a new peer worker starts", ge=0, le=104
    )
    p_reengage_after_handover: float = _f(
        0.6,
        "M",
        "probability",
        "chance an engaged participant whose peer worker leaves takes up support with "
        "the next one; the others stop",
        ge=0,
        le=1,
    )


class Readmission(_Frozen):
    """M7: readmission over 12 months after discharge, and the dose of peer support."""

    p_readmit_12m_usual_care: float = _f(
        0.34,
        "W",
        "probability",
        "12-month readmission without peer support (a prior for the control arm)",
        "ENRICH.md: quoted to recruits",
        gt=0,
        lt=1,
    )
    sd_frailty_log_hazard: float = _f(
        0.5,
        "M",
        "SD of log-hazard",
        "spread of readmission risk between participants",
        ge=0,
        le=5,
    )
    rel_hazard_full_dose: float = _f(
        0.8,
        "M",
        "hazard ratio",
        "readmission hazard at a saturating dose of sessions (the causal effect)",
        gt=0,
        le=5,
    )
    n_sessions_half_effect: float = _f(
        6.0,
        "M",
        "sessions",
        "sessions that give half of the full-dose effect (graded, saturating)",
        ge=0.1,
        le=100,
    )
    n_sessions_dose: int = _f(
        2,
        "W",
        "sessions",
        "the dose group reported: readmission was lower with at least this many sessions "
        "(a reporting threshold, not a mechanism)",
        "ENRICH.md: lay summary",
        ge=1,
        le=50,
    )


class Mechanisms(_Frozen):
    """Switches: each mechanism of MECHANISMS.md can be turned off to weigh it."""

    m1_ward_relationship: bool = _f(True, "M", "switch", "M1 team preparation -> ward")
    m2_first_contact_quality: bool = _f(
        True, "M", "switch", "M2 fidelity and setting shape the first contact"
    )
    m3_supervision: bool = _f(True, "M", "switch", "M3 supervision pulls fidelity back")
    m4_host_barriers: bool = _f(True, "M", "switch", "M4 not-for-profit host barriers")
    m5_rural_travel: bool = _f(
        True, "M", "switch", "M5 travel costs hours (off: every journey takes no time)"
    )
    m6_clinical_drift: bool = _f(True, "M", "switch", "M6 ward culture pulls to clinical")
    m7_dose_response: bool = _f(
        True, "M", "switch", "M7 sessions lower readmission (graded, saturating)"
    )
    m8_morale: bool = _f(True, "M", "switch", "M8 peer worker wellbeing moves and feeds back")


class Site(_Frozen):
    """Conditions at one site. Every trial site's values are assumptions [M]."""

    host: Literal["nhs", "not_for_profit"] = Field(
        description="who employs the peer workers: the NHS trust or a not-for-profit"
    )
    geography: Literal["urban", "rural"] = Field(description="urban or rural catchment")
    dur_travel_min: float = Field(
        ge=0,
        le=240,
        description="one-way travel to a community meeting, the ward or the team base "
        "(group supervision at rural sites), minutes",
    )
    n_supervisors: int = Field(ge=1, le=20, description="peer worker coordinators at the site")
    supervisor_h_per_week: float = Field(
        ge=0, le=400, description="coordinator hours per week at the site, all coordinators"
    )
    team_preparation: float = Field(
        ge=0, le=1, description="team preparation delivered, 0 none to 1 the full programme"
    )
    share_records_access: float = Field(
        ge=0, le=1, description="share of peer workers with access to electronic notes"
    )
    honorary_contracts: bool = Field(
        default=False,
        description="not-for-profit peer workers hold honorary NHS contracts (records access "
        "and ward authority)",
    )
    p_remote_contact: float = Field(
        default=0.0, ge=0, le=1, description="share of community meetings held by phone or video"
    )
    share_existing_workforce: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="share of peer workers assigned from an existing peer workforce rather "
        "than newly hired (recruitment pathway)",
    )
    n_peer_workers: int = Field(ge=1, le=500, description="peer workers at the site")
    n_caseload_cap: int = Field(ge=1, le=200, description="most participants per peer worker")
    n_participants: int | None = Field(
        default=None,
        ge=0,
        le=100_000,
        description="participants recruited (trial mode, where it is required)",
    )
    referrals_per_year: float | None = Field(
        default=None,
        ge=0,
        le=100_000,
        description="referrals a year at the full rate (service mode, where it is required)",
    )


class SiteConfiguration(_Frozen):
    """One assumption about which sites are not-for-profit hosted and which rural."""

    description: str = Field(default="", description="what this configuration assumes")
    not_for_profit: Annotated[tuple[str, ...], BeforeValidator(_as_tuple)] = Field(
        default=(), description="sites whose peer workers a not-for-profit employs"
    )
    rural: Annotated[tuple[str, ...], BeforeValidator(_as_tuple)] = Field(
        default=(), description="sites with a rural catchment"
    )


# Site keys a site configuration sets (a file that selects one must not set them too).
CONFIGURED_SITE_KEYS: tuple[str, ...] = ("host", "geography", "dur_travel_min")


class SiteConfigurations(_Frozen):
    """Uncertain site attributes [M]: the papers do not say which trial sites were
    not-for-profit hosted or rural, so a scenario may offer several configurations
    consistent with the seed [S] and select one. The loader (``scenarios.loader``)
    writes the selected one's host, geography and travel time into every site;
    calibration and posterior ensembles can sample among the options."""

    selected: str = Field(min_length=1, description="the option in effect")
    options: Annotated[dict[str, SiteConfiguration], AfterValidator(FrozenDict)] = Field(
        min_length=1, description="the configurations, by name"
    )
    dur_travel_urban_min: float = Field(
        ge=0, le=240, description="one-way travel at an urban site, minutes [M]"
    )
    dur_travel_rural_min: float = Field(
        ge=0, le=240, description="one-way travel at a rural site, minutes [M]"
    )

    @model_validator(mode="after")
    def _selected_known(self) -> SiteConfigurations:
        if self.selected not in self.options:
            raise ValueError(
                f"selected {self.selected!r} is not one of the options: " + ", ".join(self.options)
            )
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.options)


class Scenario(_Frozen):
    """One complete, validated scenario: global parameters and the sites."""

    name: str = Field(default="scenario", min_length=1, description="short name")
    description: str = Field(default="", description="what question this scenario asks")
    mode: Literal["trial", "service"] = Field(
        default="trial",
        description="trial: the ENRICH design (randomised, recruited, followed up); "
        "service: a standing service over years, everyone referred offered peer support",
    )
    trial: TrialDesign = TrialDesign()
    engagement: Engagement = Engagement()
    ward: Ward = Ward()
    community: Community = Community()
    workweek: Workweek = Workweek()
    supervision: Supervision = Supervision()
    fidelity: Fidelity = Fidelity()
    morale: Morale = Morale()
    readmission: Readmission = Readmission()
    mechanisms: Mechanisms = Mechanisms()
    service: ServiceDesign = ServiceDesign()
    sites: Annotated[dict[str, Site], AfterValidator(FrozenDict)] = Field(
        min_length=1, description="sites by name"
    )
    site_configurations: SiteConfigurations | None = Field(
        default=None, description="uncertain site attributes: the options and the one selected"
    )
    # How to make this scenario under another site configuration (set by the loader:
    # a configuration is applied before a what-if's changes, so only the file can
    # redo it). A changed copy (with_values, model_copy with an update) has none:
    # its changes would be lost.
    _reconfigure: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _site_names(self) -> Scenario:
        for name in self.sites:
            if not name or "/" in name:
                raise ValueError(f"site name {name!r} must be non-empty and contain no '/'")
        # Each mode's own site key (the loader reports these per file and key first).
        needed, other = SITE_KEY_OF_MODE[self.mode], SITE_KEY_OF_MODE[_OTHER_MODE[self.mode]]
        for name, site in self.sites.items():
            if getattr(site, needed) is None:
                raise ValueError(f"sites.{name}.{needed} is required in {self.mode} mode")
            if getattr(site, other) is not None:
                raise ValueError(f"sites.{name}.{other} is not allowed in {self.mode} mode")
        if self.site_configurations is not None:
            for option, c in self.site_configurations.options.items():
                for kind in ("not_for_profit", "rural"):
                    unknown = [n for n in getattr(c, kind) if n not in self.sites]
                    if unknown:
                        raise ValueError(
                            f"site_configurations.options.{option}.{kind} names "
                            f"{', '.join(unknown)}, not a site of this scenario "
                            f"(sites: {', '.join(self.sites)}); a scenario whose sites "
                            "were replaced needs site_configurations of its own, or none"
                        )
        return self

    def model_copy(
        self, *, update: Mapping[str, Any] | None = None, deep: bool = False
    ) -> Scenario:
        # A changed copy cannot be made again from the file: its changes would be lost.
        copy = super().model_copy(update=update, deep=deep)
        if update:
            copy._reconfigure = None
        return copy

    def __eq__(self, other: object) -> bool:
        # Parameters only: where a scenario came from (_reconfigure) is not part of it.
        if not isinstance(other, Scenario):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # sites are a dict: never hashable

    @property
    def site_configuration(self) -> str | None:
        """The name of the site configuration in effect, if the scenario offers any."""
        c = self.site_configurations
        return None if c is None else c.selected

    def configured(self, name: str) -> Scenario:
        """This scenario under site configuration ``name`` (made again from its file,
        so a what-if's changes apply on top); ``ValueError`` if it cannot be."""
        c = self.site_configurations
        if c is None:
            raise ValueError(f"scenario {self.name!r} offers no site configurations")
        if name not in c.options:
            raise ValueError(
                f"site configuration {name!r} is not one of {self.name!r}'s: "
                + ", ".join(c.options)
            )
        if name == c.selected:
            return self
        if self._reconfigure is None:
            raise ValueError(
                f"scenario {self.name!r} was not loaded from a file (or was changed "
                "since), so it cannot be made under another site configuration"
            )
        return self._reconfigure(name)  # type: ignore[no-any-return]

    @property
    def site_names(self) -> list[str]:
        return list(self.sites)

    def with_values(self, values: Mapping[str, Any]) -> Scenario:
        """This scenario with the values at parameter paths (``ward.w_preparation``,
        ``sites.F.n_peer_workers``, ``sites[host=nhs].team_preparation``; see
        ``simulation.paths``) set, validated afresh."""
        from simulation.paths import with_values  # paths builds on this module

        return with_values(self, values)

    @property
    def n_participants(self) -> int:
        """Trial participants; in service mode, the referrals expected over the horizon."""
        if self.mode == "service":
            years = self.service.horizon_years
            return round(sum(s.referrals_per_year or 0.0 for s in self.sites.values()) * years)
        return sum(s.n_participants or 0 for s in self.sites.values())


PARAMETER_GROUPS: tuple[str, ...] = (
    "trial",
    "engagement",
    "ward",
    "community",
    "workweek",
    "supervision",
    "fidelity",
    "morale",
    "readmission",
    "mechanisms",
    "service",
)
# The site key each mode requires (and the other mode refuses).
SITE_KEY_OF_MODE: dict[str, str] = {"trial": "n_participants", "service": "referrals_per_year"}
_OTHER_MODE = {"trial": "service", "service": "trial"}
# Keys that mean something in one mode only: a file of the other mode may not set them.
TRIAL_ONLY_KEYS: tuple[str, ...] = (
    "trial.dur_recruitment_weeks",
    "trial.n_block_max",
    "sites.*.n_participants",
)
SERVICE_ONLY_KEYS: tuple[str, ...] = ("service", "sites.*.referrals_per_year")
