"""The peer support model: ENRICH-style trial delivery at several sites, weekly.

Agents (see ``simulation.agents``) keep their state in per-type arrays held
here: ``su`` for service users, ``pw`` for peer workers, and small per-site
arrays for supervisors and ward staff. Every random decision is drawn up front
from a stream named for the decision and the site (``simulation.rng``), so a
what-if changes only the draws its change touches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mesa
import numpy as np

from simulation.agents import FIDELITY_DOMAINS, PeerWorker, ServiceUser, Supervisor, WardStaff
from simulation.params import Scenario
from simulation.results import Results
from simulation.rng import Streams
from simulation.stats import odds_ratio

REL, RECIP, LEAD, STRENGTH = 0, 1, 2, 3
SETTING_WARD, SETTING_COMMUNITY = 1, 2
SITE_RECORDS = (
    "n_recruited_ps",
    "met_share",
    "engaged_share",
    "contacts_mean",
    "ward_relationship",
)
PW_RECORDS = (
    "fid_relationships",
    "fid_reciprocity",
    "fid_leadership",
    "fid_strengths",
    "caseload_mean",
    "pw_morale",
)
RECORDS = SITE_RECORDS + PW_RECORDS


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


@dataclass(eq=False)
class ServiceUserState:
    """Per-participant arrays, one row per service user, sites in order."""

    site: np.ndarray
    arm: np.ndarray  # 0 usual care, 1 peer support
    diagnosis: np.ndarray
    non_heterosexual: np.ndarray
    week_recruited: np.ndarray
    week_discharged: np.ndarray
    # Pre-drawn randomness (common random numbers)
    z_frailty: np.ndarray
    readmit_clock: np.ndarray  # Exp(1): readmitted when cumulative hazard passes it
    z_first_contact: np.ndarray
    u_engage: np.ndarray
    u_rb: np.ndarray  # (n, n_rb_activities_max)
    u_ward: np.ndarray  # (n, ward weeks)
    u_community: np.ndarray  # (n, support weeks)
    # Derived, fixed per participant
    hazard: np.ndarray  # weekly readmission hazard without peer support
    hazard_dosed: np.ndarray  # the same once the dose threshold is reached (M7)
    odds_missed: np.ndarray  # odds of missing a meeting at full peer worker morale
    # Dynamic state
    pw: np.ndarray
    met: np.ndarray
    week_first_contact: np.ndarray
    first_contact_setting: np.ndarray
    first_contact_min: np.ndarray
    rb_activities: np.ndarray
    engaged: np.ndarray
    closed: np.ndarray  # no longer on a caseload (declined, readmitted, support over)
    contacts_ward: np.ndarray
    contacts_community: np.ndarray
    sessions: np.ndarray  # contacts_ward + contacts_community
    cum_hazard: np.ndarray
    readmit_week: np.ndarray  # weeks after discharge, -1 if not readmitted


class PeerWorkerState:
    """Per-peer-worker arrays. Fidelity, caseload and morale are column views of
    one matrix so that a week's site means take one matrix product: update them
    in place, never rebind them."""

    def __init__(
        self, site: np.ndarray, records_access: np.ndarray, fidelity0: float, morale0: float
    ) -> None:
        n = len(site)
        self.site = site
        self.records_access = records_access
        self.state = np.empty((n, len(PW_RECORDS)))
        self.fidelity = self.state[:, :4]  # domains on 0-1, in FIDELITY_DOMAINS order
        self.caseload = self.state[:, 4]
        self.morale = self.state[:, 5]
        self.fidelity[:] = fidelity0
        self.caseload[:] = 0
        self.morale[:] = morale0
        self.hours_needed = np.zeros(n)
        self.declines_this_week = np.zeros(n)


class PeerSupportModel(mesa.Model):
    """One simulated trial. ``run_to_end()`` steps it through delivery."""

    def __init__(self, scenario: Scenario, seed: int | np.random.SeedSequence = 0) -> None:
        self.streams = Streams(seed)
        super().__init__(rng=self.streams.get("mesa"))
        self.params = scenario  # not "scenario": mesa.Model reserves that name
        self.site_names: tuple[str, ...] = tuple(scenario.sites)
        self.week = 0
        p = scenario
        tr = p.trial
        self.n_ward_weeks = tr.dur_ward_after_recruitment_max_weeks
        self.n_support_weeks = tr.dur_support_after_discharge_weeks
        # Delivery ends when the last possible participant's support does.
        self.n_weeks = tr.dur_recruitment_weeks + self.n_ward_weeks + self.n_support_weeks
        self._init_sites()
        self._init_peer_workers()
        self._init_service_users()
        self._init_records()
        self.peer_workers = PeerWorker.create_agents(self, self.n_pw, list(range(self.n_pw)))
        n_sup = len(self.sup_site)
        self.supervisors = Supervisor.create_agents(self, n_sup, list(range(n_sup)))
        self.ward_staff = WardStaff.create_agents(self, self.n_sites, list(range(self.n_sites)))
        self._service_users: mesa.agent.AgentSet | None = None

    @property
    def service_users(self) -> mesa.agent.AgentSet:
        """The participants as Mesa agents, registered on first use.

        Their state lives in ``self.su`` either way; registering 590 Mesa agents
        costs about a fifth of a whole replicate, which a calibration run that
        never looks at them should not pay.
        """
        if self._service_users is None:
            n = len(self.su.site)
            self._service_users = ServiceUser.create_agents(self, n, list(range(n)))
        return self._service_users

    # ----------------------------------------------------------------- set-up
    def _init_sites(self) -> None:
        p, mech = self.params, self.params.mechanisms
        sites = list(p.sites.values())
        self.n_sites = len(sites)
        self.site_nfp = np.array([s.host == "not_for_profit" for s in sites])
        self.site_rural = np.array([s.geography == "rural" for s in sites])
        self.site_prep = np.array([s.team_preparation for s in sites])
        self.site_n_pw = np.array([s.n_peer_workers for s in sites])
        self.site_cap = np.array([s.n_caseload_cap for s in sites])
        honorary = np.array([s.honorary_contracts for s in sites])
        # M4: barriers apply to not-for-profit peer workers without honorary contracts.
        self.site_barriers = self.site_nfp & ~honorary & mech.m4_host_barriers
        travel_min = np.array([s.dur_travel_min * (1 - s.p_remote_contact) for s in sites])
        if not mech.m5_rural_travel:
            # Without M5, every site travels like the urban sites of the scenario.
            urban = ~self.site_rural
            travel_min = np.full(self.n_sites, travel_min[urban].mean() if urban.any() else 0.0)
        cm = p.community
        # Peer worker hours per meeting: column 0 on the ward, column 1 in the community.
        self.site_cost_h = (
            np.column_stack(
                [np.full(self.n_sites, cm.dur_meeting_min), cm.dur_meeting_min + 2 * travel_min]
            )
            / 60.0
        )
        # Meeting weeks after discharge (0 = discharge week): weekly, then fortnightly.
        tr = p.trial
        week = np.arange(tr.dur_support_after_discharge_weeks) + 1
        weekly = tr.dur_weekly_phase_weeks
        self.meeting_week = (week <= weekly) | ((week - weekly) % 2 == 0)
        rural_effect = self.site_rural & mech.m5_rural_travel
        self.site_presence = np.where(rural_effect, p.ward.rel_presence_rural, 1.0)
        self.site_authority = np.where(self.site_barriers, p.ward.rel_authority_nfp, 1.0)

        # Supervisors: the site's coordinator hours split evenly between its coordinators.
        self.sup_site = np.repeat(np.arange(self.n_sites), [s.n_supervisors for s in sites])
        site_hours = np.array([s.supervisor_h_per_week for s in sites])
        self.sup_hours = (
            site_hours[self.sup_site] / np.array([s.n_supervisors for s in sites])[self.sup_site]
        )
        self._supervision_plan(site_hours)

        self.ward_relationship = np.full(self.n_sites, p.ward.ward_relationship_base)
        self.site_met = np.zeros(self.n_sites)
        self.site_engaged = np.zeros(self.n_sites)
        self.site_declined = np.zeros(self.n_sites)
        self.site_sessions = np.zeros(self.n_sites)

    def _supervision_plan(self, site_hours: np.ndarray) -> None:
        """M3/M4/M5: coordinator hours -> supervision hours per peer worker.

        Coordinator hours, liaison and preparation do not change over time in
        this version, so the plan is made once.
        """
        p, mech = self.params, self.params.mechanisms
        sv = p.supervision
        liaison = np.where(self.site_nfp & mech.m4_host_barriers, sv.share_liaison_nfp, 0.0)
        prep_h = sv.dur_team_prep_h_per_week * self.site_prep if mech.m1_ward_relationship else 0.0
        available = np.maximum(0.0, site_hours * (1 - liaison) - prep_h)
        attend = np.where(self.site_rural & mech.m5_rural_travel, sv.p_attend_rural, 1.0)
        self.site_supervision_h = available / self.site_n_pw * attend
        self.site_adequacy = np.minimum(1.0, self.site_supervision_h / sv.dur_need_h_per_pw_week)

    def _init_peer_workers(self) -> None:
        p = self.params
        site = np.repeat(np.arange(self.n_sites), self.site_n_pw)
        n_pw = self.n_pw = len(site)
        self.site_pw_start = np.concatenate([[0], np.cumsum(self.site_n_pw)])
        records = np.zeros(n_pw, dtype=bool)
        for k, s in enumerate(p.sites.values()):
            # The first round(share * n) peer workers of a site hold access.
            n_access = (
                s.n_peer_workers
                if s.honorary_contracts
                else round(s.share_records_access * s.n_peer_workers)
            )
            records[self.site_pw_start[k] : self.site_pw_start[k] + n_access] = True
        self.pw = PeerWorkerState(
            site, records, p.fidelity.fidelity_initial, p.morale.morale_initial
        )
        access = np.where(records, 1.0, p.ward.rel_referral_no_records)
        self.pw_ward_access = access * self.site_authority[site] * self.site_presence[site]
        self.pw_hours_available = np.full(n_pw, p.community.dur_pw_contact_h_per_week)
        # M3: supervision adequacy is static per site, so each peer worker's pull is too.
        adequacy = self.site_adequacy[site] if p.mechanisms.m3_supervision else np.ones(n_pw)
        self.pw_adequacy = adequacy
        self.pw_pull = (p.fidelity.rate_pull_per_week * adequacy)[:, None]
        # Site means over peer workers as one matrix product in record().
        self.pw_site_mean = (site[:, None] == np.arange(self.n_sites)[None, :]) / self.site_n_pw

    def _init_service_users(self) -> None:
        p = self.params
        tr = p.trial
        parts: dict[str, list[np.ndarray]] = {}

        def add(name: str, value: np.ndarray) -> None:
            parts.setdefault(name, []).append(value)

        for k, (name, s) in enumerate(p.sites.items()):
            n = s.n_participants
            rng = self.streams.get(f"participants/{name}")
            week_rec = np.sort(rng.integers(0, tr.dur_recruitment_weeks, n))
            stay = rng.integers(1, tr.dur_ward_after_recruitment_max_weeks + 1, n)
            u_diag = rng.random(n)
            u_orient = rng.random(n)
            add("z_frailty", rng.standard_normal(n))
            add("readmit_clock", rng.exponential(1.0, n))
            add("z_first_contact", rng.standard_normal(n))
            add("u_engage", rng.random(n))
            diagnosis = np.where(
                u_diag < tr.share_psychotic,
                0,
                np.where(u_diag < tr.share_psychotic + tr.share_personality, 1, 2),
            )
            add("site", np.full(n, k))
            add("week_recruited", week_rec)
            add("week_discharged", week_rec + stay)
            add("diagnosis", diagnosis)
            add("non_heterosexual", u_orient < tr.p_non_heterosexual)
            add("arm", self._randomise(diagnosis, self.streams.get(f"randomisation/{name}")))
            # Separate streams so that a longer ward stay or support period does
            # not shift any other draw.
            add(
                "u_rb",
                self.streams.get(f"first_contact/{name}").random(
                    (n, p.engagement.n_rb_activities_max)
                ),
            )
            add("u_ward", self.streams.get(f"ward/{name}").random((n, self.n_ward_weeks)))
            add(
                "u_community",
                self.streams.get(f"community/{name}").random((n, max(self.n_support_weeks, 1))),
            )

        a = {k: np.concatenate(v) for k, v in parts.items()}
        n = len(a["site"])
        rd = p.readmission
        h0 = -math.log(1 - rd.p_readmit_12m_usual_care) / 52.0
        sd = rd.sd_frailty_log_hazard
        # Mean-one lognormal frailty keeps the average hazard at h0.
        hazard = h0 * np.exp(sd * a["z_frailty"] - sd * sd / 2)
        logit_missed = (
            _logit(p.community.p_missed_meeting) + p.community.w_frailty_missed * a["z_frailty"]
        )
        odds_missed = np.exp(logit_missed)
        self.su = ServiceUserState(
            **a,
            hazard=hazard,
            hazard_dosed=hazard * (rd.rel_hazard_engaged if p.mechanisms.m7_dose_response else 1.0),
            odds_missed=odds_missed,
            pw=np.full(n, -1),
            met=np.zeros(n, dtype=bool),
            week_first_contact=np.full(n, -1),
            first_contact_setting=np.zeros(n, dtype=np.int8),
            first_contact_min=np.full(n, np.nan),
            rb_activities=np.full(n, -1),
            engaged=np.zeros(n, dtype=bool),
            closed=np.zeros(n, dtype=bool),
            contacts_ward=np.zeros(n, dtype=np.int64),
            contacts_community=np.zeros(n, dtype=np.int64),
            sessions=np.zeros(n, dtype=np.int64),
            cum_hazard=np.zeros(n),
            readmit_week=np.full(n, -1),
        )
        self.ps = a["arm"] == 1
        # Peer-support participants by week of recruitment, for allocation.
        ps_idx = np.flatnonzero(self.ps)
        order = ps_idx[np.argsort(a["week_recruited"][ps_idx], kind="stable")]
        bounds = np.searchsorted(a["week_recruited"][order], np.arange(self.n_weeks + 1))
        self.recruits_by_week = [order[bounds[w] : bounds[w + 1]] for w in range(self.n_weeks)]
        self.waiting: list[int] = []
        self.open_cases = np.zeros(0, dtype=np.int64)
        self.by_discharge = np.argsort(a["week_discharged"], kind="stable")
        self.discharge_bounds = np.searchsorted(
            a["week_discharged"][self.by_discharge], np.arange(self.n_weeks + 2)
        )
        # Participants recruited so far, per site and week (the shares' denominator).
        recruited = np.zeros((self.n_weeks, self.n_sites))
        np.add.at(recruited, (a["week_recruited"][ps_idx], a["site"][ps_idx]), 1)
        self.n_recruited_ps = np.cumsum(recruited, axis=0)
        e = p.engagement
        self._log_or_min = math.log(e.or_per_first_contact_min)
        self._log_or_rb = math.log(e.or_per_rb_activity)
        self._log_or_nonhet = math.log(e.or_non_heterosexual)
        # Week of the last support week: a case closes after it.
        self.su_last_support_week = a["week_discharged"] + self.n_support_weeks - 1

    def _randomise(self, diagnosis: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """1:1 allocation in permuted blocks of random length within each
        diagnostic stratum, participants taken in recruitment order."""
        n = len(diagnosis)
        if n == 0:
            return np.zeros(0, dtype=np.int8)
        n_strata = 3
        # Row s lays stratum s's allocation sequence out as blocks of 2, 4, ... places.
        sizes = 2 * rng.integers(1, self.params.trial.n_block_max + 1, (n_strata, n))
        ends = np.cumsum(sizes, axis=1)
        place = np.arange(n)
        block = np.stack([np.searchsorted(ends[s], place, side="right") for s in range(n_strata)])
        block_id = (block + n * np.arange(n_strata)[:, None]).ravel()
        order = np.lexsort((rng.random(n_strata * n), block_id))  # shuffled within each block
        start = (np.take_along_axis(ends - sizes, block, axis=1)).ravel()
        rank = np.empty(n_strata * n, dtype=np.int64)
        rank[order] = np.arange(n_strata * n)
        # Places are consecutive per block, so rank - (block start) is the shuffled position.
        position = rank - (start + n * np.repeat(np.arange(n_strata), n))
        half = (np.take_along_axis(sizes, block, axis=1) // 2).ravel()
        sequence = (position < half).reshape(n_strata, n)
        # The k-th participant of a stratum takes place k of its sequence.
        nth = np.empty(n, dtype=np.int64)
        by_stratum = np.argsort(diagnosis, kind="stable")
        counts = np.bincount(diagnosis, minlength=n_strata)
        nth[by_stratum] = place - np.repeat(np.cumsum(counts) - counts, counts)
        return sequence[diagnosis, nth].astype(np.int8)

    def _init_records(self) -> None:
        self.records = np.zeros((self.n_weeks, len(RECORDS), self.n_sites))

    # ------------------------------------------------------------- one week
    def step(self) -> None:
        """One week of delivery, in this order:

        1. allocate   - newly recruited peer-support participants get the peer
                        worker with the lightest caseload under the cap
        2. relate     - ward relationships move towards their target (M1, M4)
        3. plan       - peer worker hours needed this week vs hours available (M5)
        4. ward       - first and further contacts on the ward (M1, M2, M4)
        5. community  - first contacts and scheduled meetings after discharge (M2, M5)
        6. close      - cases whose support period ended
        7. drift      - fidelity domains: supervision pull, drift, clinical pull (M3, M6)
        8. morale     - recovery with supervision, strain, declines (M8)
        9. readmit    - readmission clocks after discharge (M7)
        10. record    - per-site measures of this week
        """
        t = self.week
        self.pw.declines_this_week[:] = 0
        self.allocate(t)
        self.relate()
        on_ward, in_community, meeting = self.plan(t)
        first_ward = self.ward_contacts(t, on_ward)
        first_community = self.community_contacts(t, in_community, meeting)
        self.first_contacts(t, first_ward, first_community)
        self.close_cases(t)
        self.drift(on_ward)
        self.update_morale()
        self.readmit(t)
        self.record(t)
        self.week += 1

    def active_caseload_members(self, pw: int) -> np.ndarray:
        """Participants now on peer worker ``pw``'s caseload."""
        cases = self.open_cases[~self.su.closed[self.open_cases]]
        return cases[self.su.pw[cases] == pw]

    def allocate(self, t: int) -> None:
        """Newly recruited peer-support participants, and any still waiting, get
        the peer worker at their site with the lightest caseload under the cap."""
        su = self.su
        queue = [*self.waiting, *self.recruits_by_week[t].tolist()]
        if not queue:
            return
        caseload = self.pw.caseload
        site, start, cap = su.site, self.site_pw_start, self.site_cap
        waiting: list[int] = []
        allocated: list[int] = []
        for i in queue:
            if su.closed[i]:
                continue  # support window passed while waiting
            k = site[i]
            lo = start[k]
            loads = caseload[lo : start[k + 1]].tolist()
            j = lo + loads.index(min(loads))  # lightest caseload, lowest index on ties
            if caseload[j] < cap[k]:
                su.pw[i] = j
                caseload[j] += 1
                allocated.append(i)
            else:
                waiting.append(i)
        self.waiting = waiting
        if allocated:
            self.open_cases = np.concatenate([self.open_cases, allocated])

    def relate(self) -> None:
        """M1: the ward relationship moves towards a target set by preparation,
        host-organisation friction (M4) and the experience of peer support so far."""
        if not self.params.mechanisms.m1_ward_relationship:
            return
        w = self.params.ward
        experience = (self.site_engaged - self.site_declined) / (self.site_met + 1.0)
        target = (
            w.ward_relationship_base
            + w.w_preparation * self.site_prep
            - w.w_friction_nfp * self.site_barriers
            + w.w_experience * experience
        )
        target = np.minimum(np.maximum(target, 0.0), 1.0)
        self.ward_relationship += w.rate_adjust_per_week * (target - self.ward_relationship)

    def plan(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Which participants need their peer worker this week, and whether each
        peer worker has the hours (M5: travel makes community meetings dearer)."""
        su = self.su
        cases = self.open_cases = self.open_cases[~su.closed[self.open_cases]]
        discharged = su.week_discharged[cases] <= t
        on_ward, in_community = cases[~discharged], cases[discharged]
        scheduled = self.meeting_week[t - su.week_discharged[in_community]]
        # Unmet participants are sought every week; engaged ones meet on schedule.
        meeting = ~su.met[in_community] | (su.engaged[in_community] & scheduled)
        cost = self.site_cost_h[su.site[cases], discharged.view(np.int8)]
        cost[discharged] *= meeting
        hours = np.bincount(su.pw[cases], weights=cost, minlength=self.n_pw)
        self.pw.hours_needed = hours
        self.pw_capacity = np.minimum(1.0, self.pw_hours_available / np.maximum(hours, 1e-12))
        return on_ward, in_community, meeting

    def ward_contacts(self, t: int, on_ward: np.ndarray) -> np.ndarray:
        """Further ward meetings happen; returns who meets their peer worker first."""
        su = self.su
        pw = su.pw[on_ward]
        site = su.site[on_ward]
        u = su.u_ward[on_ward, t - su.week_recruited[on_ward]]
        capacity = self.pw_capacity[pw]
        met = su.met[on_ward]
        p_first = (
            self.params.ward.p_first_contact_per_week_max
            * self.ward_relationship[site]
            * self.pw_ward_access[pw]
            * capacity
        )
        p_again = self.params.ward.p_contact_per_week * self.site_presence[site] * capacity
        again = met & su.engaged[on_ward] & (u < p_again)
        su.contacts_ward[on_ward[again]] += 1
        su.sessions[on_ward[again]] += 1
        self.site_sessions += np.bincount(site[again], minlength=self.n_sites)
        return on_ward[~met & (u < p_first)]

    def community_contacts(
        self, t: int, in_community: np.ndarray, meeting: np.ndarray
    ) -> np.ndarray:
        """Scheduled meetings happen or are missed; returns who is first reached."""
        su = self.su
        idx = in_community[meeting]
        pw = su.pw[idx]
        u = su.u_community[idx, t - su.week_discharged[idx]]
        capacity = self.pw_capacity[pw]
        met = su.met[idx]
        p_first = self.params.community.p_first_contact_per_week * capacity
        # Odds of missing: the participant's own, times the peer worker's morale factor.
        morale_odds = np.exp(self.params.morale.w_morale_missed * (1 - self.pw.morale))
        p_attend = capacity / (1 + su.odds_missed[idx] * morale_odds[pw])
        attended = met & (u < p_attend)
        su.contacts_community[idx[attended]] += 1
        su.sessions[idx[attended]] += 1
        self.site_sessions += np.bincount(su.site[idx[attended]], minlength=self.n_sites)
        return idx[~met & (u < p_first)]

    def first_contacts(self, t: int, first_ward: np.ndarray, first_community: np.ndarray) -> None:
        """M2: the first contact's length and relationship-building activities
        depend on the peer worker's fidelity, morale and the setting; whether the
        participant engages follows the published odds ratios."""
        n_ward = len(first_ward)
        if n_ward + len(first_community) == 0:
            return
        p, su = self.params, self.su
        e = p.engagement
        idx = np.concatenate([first_ward, first_community])
        on_ward = np.arange(len(idx)) < n_ward
        pw = su.pw[idx]
        site = su.site[idx]
        if p.mechanisms.m2_first_contact_quality:
            f = self.pw.fidelity[pw]
            quality = (f[:, REL] + f[:, RECIP]) / 2
            p_rb = f[:, REL]
            ward_room = 1 - e.w_ward_room * (1 - self.ward_relationship[site])
            room = np.where(on_ward, ward_room, e.rel_first_contact_community)
        else:
            quality = p_rb = np.full(len(idx), p.fidelity.fidelity_initial)
            room = np.ones(len(idx))
        morale = 1 - p.morale.w_morale_contact * (1 - self.pw.morale[pw])
        mean_min = e.dur_first_contact_full_min * quality * room * morale
        length = mean_min + e.dur_first_contact_sd_min * su.z_first_contact[idx]
        length = np.minimum(np.maximum(length, 1.0), 480.0)
        rb = (su.u_rb[idx] < (p_rb * room)[:, None]).sum(axis=1)
        logit = (
            e.logit_intercept
            + self._log_or_min * length
            + self._log_or_rb * rb
            + self._log_or_nonhet * su.non_heterosexual[idx]
        )
        engaged = su.u_engage[idx] < _expit(logit)
        su.met[idx] = True
        su.week_first_contact[idx] = t
        su.first_contact_setting[idx] = np.where(on_ward, SETTING_WARD, SETTING_COMMUNITY)
        su.first_contact_min[idx] = length
        su.rb_activities[idx] = rb
        su.engaged[idx] = engaged
        su.contacts_ward[first_ward] += 1
        su.contacts_community[first_community] += 1
        su.sessions[idx] += 1
        declined = ~engaged
        su.closed[idx[declined]] = True  # a participant who does not engage leaves the caseload
        by_outcome = np.bincount(2 * site + engaged, minlength=2 * self.n_sites).reshape(-1, 2)
        self.site_declined += by_outcome[:, 0]
        self.site_engaged += by_outcome[:, 1]
        new_met = by_outcome[:, 0] + by_outcome[:, 1]
        self.site_met += new_met
        self.site_sessions += new_met
        self.pw.declines_this_week += np.bincount(pw[declined], minlength=self.n_pw)

    def close_cases(self, t: int) -> None:
        """Cases close when support ends, the participant declines or is readmitted."""
        su = self.su
        cases = self.open_cases
        su.closed[cases[self.su_last_support_week[cases] <= t]] = True
        # Still waiting for a peer worker when support would have ended: never allocated.
        for i in self.waiting:
            if self.su_last_support_week[i] <= t:
                su.closed[i] = True
        self.pw.caseload[:] = np.bincount(su.pw[cases[~su.closed[cases]]], minlength=self.n_pw)

    def drift(self, on_ward: np.ndarray) -> None:
        """M3 and M6: supervision pulls each domain towards full fidelity; every
        domain drifts without it, faster at low morale; ward work pulls the
        relationship and reciprocity domains towards a clinical style."""
        fd, mech = self.params.fidelity, self.params.mechanisms
        drift = fd.rate_drift_per_week * (1 + fd.w_low_morale_drift * (1 - self.pw.morale))
        f = self.pw.fidelity
        f += self.pw_pull * (1 - f) - drift[:, None] * f
        if mech.m6_clinical_drift and len(on_ward):
            on_ward_n = np.bincount(self.su.pw[on_ward], minlength=self.n_pw)
            ward_share = on_ward_n / np.maximum(self.pw.caseload, 1)
            extra = drift * fd.w_clinical_pull * ward_share
            f[:, REL] -= extra * f[:, REL]
            f[:, RECIP] -= extra * f[:, RECIP]
        np.maximum(f, 0.0, out=f)  # only the extra drift terms can overshoot

    def update_morale(self) -> None:
        """M8: morale recovers with supervision, falls with workload and declines."""
        mo, mech = self.params.morale, self.params.mechanisms
        if not mech.m8_morale:
            return
        m = self.pw.morale
        adequacy = self.pw_adequacy
        workload = np.minimum(self.pw.hours_needed / self.pw_hours_available, 2.0)
        m += (
            mo.rate_recovery_per_week * adequacy * (1 - m)
            - mo.rate_strain_per_week * workload * m
            - mo.rate_dropout_per_week * self.pw.declines_this_week * m
        )
        np.maximum(m, 0.0, out=m)
        np.minimum(m, 1.0, out=m)

    def _hazard_now(self, idx: np.ndarray) -> np.ndarray:
        """This week's hazard: lower once the dose threshold of sessions is reached (M7)."""
        su = self.su
        dosed = su.sessions[idx] >= self.params.readmission.n_sessions_dose
        return np.where(dosed, su.hazard_dosed[idx], su.hazard[idx])

    def readmit(self, t: int) -> None:
        """M7: after discharge each participant's cumulative hazard runs against
        their pre-drawn clock; the week it passes, they are readmitted."""
        su = self.su
        first = max(0, t - self.params.trial.dur_followup_weeks + 1)
        at_risk = self.by_discharge[self.discharge_bounds[first] : self.discharge_bounds[t + 1]]
        at_risk = at_risk[su.readmit_week[at_risk] < 0]
        su.cum_hazard[at_risk] += self._hazard_now(at_risk)
        new = at_risk[su.cum_hazard[at_risk] >= su.readmit_clock[at_risk]]
        su.readmit_week[new] = t - su.week_discharged[new] + 1
        su.closed[new] = True  # readmission ends community peer support

    def record(self, t: int) -> None:
        """Per-site measures of the week: shares of the peer-support arm recruited
        so far, and means over each site's peer workers."""
        r = self.records[t]
        n = self.n_recruited_ps[t]
        r[0] = n
        denom = np.maximum(n, 1.0)
        r[1] = self.site_met / denom
        r[2] = self.site_engaged / denom
        r[3] = self.site_sessions / denom
        r[4] = self.ward_relationship
        r[5:] = self.pw.state.T @ self.pw_site_mean

    # ---------------------------------------------------------- whole trial
    def run_to_end(self) -> Results:
        """Step through delivery, finish the readmission follow-up, and report."""
        while self.week < self.n_weeks:
            self.step()
        self._finish_followup()
        return self.results()

    def _finish_followup(self) -> None:
        """After delivery no dose changes, so each remaining clock is solved
        in closed form: the first whole week at which the hazard passes it."""
        su = self.su
        followup = self.params.trial.dur_followup_weeks
        weeks_done = np.minimum(self.n_weeks - su.week_discharged, followup)
        idx = np.flatnonzero((su.readmit_week < 0) & (weeks_done < followup))
        if len(idx) == 0:
            return
        h = self._hazard_now(idx)
        need = np.ceil((su.readmit_clock[idx] - su.cum_hazard[idx]) / h)
        week = weeks_done[idx] + np.maximum(need, 1)
        hit = week <= followup
        su.readmit_week[idx[hit]] = week[hit]

    def results(self) -> Results:
        su = self.su
        sessions = su.sessions
        readmitted = su.readmit_week > 0
        ps, uc = self.ps, ~self.ps
        n_ps, n_uc = int(ps.sum()), int(uc.sum())
        e_ps, e_uc = int((readmitted & ps).sum()), int((readmitted & uc).sum())
        itt, lo, hi = odds_ratio(e_ps, n_ps, e_uc, n_uc)
        dosed = ps & (sessions >= self.params.readmission.n_sessions_dose)
        n_dosed = int(dosed.sum())

        def share(mask: np.ndarray, of: np.ndarray) -> float:
            n_of = int(of.sum())
            return float((mask & of).sum() / n_of) if n_of else math.nan

        trial: dict[str, float] = {
            "n_ps": n_ps,
            "n_uc": n_uc,
            "readmit_ps": share(readmitted, ps),
            "readmit_uc": share(readmitted, uc),
            "itt_or": itt,
            "itt_or_lo": lo,
            "itt_or_hi": hi,
            "n_2plus": n_dosed,
            "readmit_2plus": share(readmitted, dosed),
            "allocated_share": share(su.pw >= 0, ps),
            "met_share": share(su.met, ps),
            "engaged_share": share(su.engaged, ps),
            "contacts_community_mean": float(su.contacts_community[ps].mean())
            if n_ps
            else math.nan,
        }
        last = self.n_weeks - 1
        fid = [RECORDS.index(f"fid_{d}") for d in FIDELITY_DOMAINS]
        fidelity_end = self.records[last, fid].mean(axis=0)
        for k, name in enumerate(self.site_names):
            trial[f"engaged_share_{name}"] = share(su.engaged, ps & (su.site == k))
            trial[f"fidelity_{name}"] = float(fidelity_end[k])

        weeks = np.repeat(np.arange(self.n_weeks), self.n_sites)
        sites = np.tile(np.arange(self.n_sites), self.n_weeks)
        sw: dict[str, np.ndarray] = {n: self.records[:, j].ravel() for j, n in enumerate(RECORDS)}
        sw["fidelity"] = self.records[:, fid].mean(axis=1).ravel()
        sw["supervision_hours"] = np.tile(self.site_supervision_h, self.n_weeks)
        sw["site"] = sites
        sw["week"] = weeks
        participants = {
            "participant": np.arange(len(su.site)),
            "site": su.site,
            "arm": su.arm,
            "diagnosis": su.diagnosis,
            "non_heterosexual": su.non_heterosexual,
            "week_recruited": su.week_recruited,
            "week_discharged": su.week_discharged,
            "peer_worker": su.pw,
            "met": su.met,
            "week_first_contact": su.week_first_contact,
            "first_contact_setting": su.first_contact_setting,
            "first_contact_min": su.first_contact_min,
            "rb_activities": su.rb_activities,
            "engaged": su.engaged,
            "contacts_ward": su.contacts_ward,
            "contacts_community": su.contacts_community,
            "sessions": sessions,
            "readmitted_12m": readmitted,
            "weeks_to_readmission": su.readmit_week,
        }
        return Results(self.site_names, trial, sw, participants)


def run(scenario: Scenario, seed: int | np.random.SeedSequence = 0) -> Results:
    """Simulate one trial replicate of ``scenario``; the same seed gives the same results."""
    return PeerSupportModel(scenario, seed).run_to_end()
