"""The peer support model: ENRICH-style trial delivery at several sites, weekly.

Agents (see ``simulation.agents``) keep their state in per-type arrays held
here: ``su`` for service users, ``pw`` for peer workers, and small per-site
arrays for supervisors and ward staff. Every random decision is drawn up front
from a stream named for the decision and the site (``simulation.rng``), so a
what-if changes only the draws its change touches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import mesa
import numpy as np

from simulation.agents import FIDELITY_DOMAINS, PeerWorker, ServiceUser, Supervisor, WardStaff
from simulation.params import Scenario
from simulation.results import DIAGNOSES, Results
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
    # exp overflows beyond about 709; the probability is 0 or 1 to double precision there.
    return 1.0 / (1.0 + np.exp(-np.minimum(np.maximum(x, -700.0), 700.0)))


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
    readmit_due: np.ndarray  # week after discharge the clock runs out, given the dose so far


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


Seed = int | np.random.SeedSequence


class PeerSupportModel(mesa.Model):
    """Simulated trials of one scenario. ``run_to_end()`` steps them through delivery.

    Given one seed, the model is one trial replicate. Given several, it runs
    them side by side: sites never interact, so replicate r is simply a copy of
    every site drawing from replicate r's own streams, and the weekly phases
    pay numpy's per-call cost once for all replicates. Each replicate's results
    are identical to running it alone.
    """

    def __init__(self, scenario: Scenario, seed: Seed | Sequence[Seed] = 0) -> None:
        seeds = list(seed) if isinstance(seed, Sequence) else [seed]
        if not seeds:
            raise ValueError("at least one seed is needed")
        self.replicate_streams = [Streams(s) for s in seeds]
        self.n_replicates = len(seeds)
        super().__init__(rng=self.replicate_streams[0].get("mesa"))
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

    def site_label(self, g: int) -> str:
        """The scenario's name for internal site ``g`` (with its replicate if batched)."""
        name = self.site_names[g % len(self.site_names)]
        return name if self.n_replicates == 1 else f"{name} (replicate {g // len(self.site_names)})"

    # ----------------------------------------------------------------- set-up
    def _init_sites(self) -> None:
        p, mech = self.params, self.params.mechanisms
        # Site g is site g % n of the scenario in replicate g // n.
        sites = list(p.sites.values()) * self.n_replicates
        self.n_sites = len(sites)
        self.site_nfp = np.array([s.host == "not_for_profit" for s in sites])
        self.site_rural = np.array([s.geography == "rural" for s in sites])
        self.site_prep = np.array([s.team_preparation for s in sites])
        self.site_n_pw = np.array([s.n_peer_workers for s in sites])
        self.site_cap = np.array([s.n_caseload_cap for s in sites])
        honorary = np.array([s.honorary_contracts for s in sites])
        # M4: barriers apply to not-for-profit peer workers without honorary contracts.
        self.site_barriers = self.site_nfp & ~honorary & mech.m4_host_barriers
        # M5: travel to community meetings costs peer worker hours (remote meetings
        # cost none); without M5, travel is free everywhere.
        travel_min = np.array([s.dur_travel_min * (1 - s.p_remote_contact) for s in sites])
        travel_min *= mech.m5_rural_travel
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
        # The part of the ward relationship target that experience does not move.
        self.ward_target_fixed = (
            p.ward.ward_relationship_base
            + p.ward.w_preparation * self.site_prep
            - p.ward.w_friction_nfp * self.site_barriers
        )
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
        with np.errstate(over="ignore"):  # a tiny need: adequacy is simply 1
            ratio = self.site_supervision_h / sv.dur_need_h_per_pw_week
        self.site_adequacy = np.minimum(1.0, ratio)

    def _init_peer_workers(self) -> None:
        p = self.params
        site = np.repeat(np.arange(self.n_sites), self.site_n_pw)
        n_pw = self.n_pw = len(site)
        self.site_pw_start = np.concatenate([[0], np.cumsum(self.site_n_pw)])
        records = np.zeros(n_pw, dtype=bool)
        for k, s in enumerate(list(p.sites.values()) * self.n_replicates):
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
        # Turnover (M8): a vacant post is blocked from allocation until refilled.
        self.pw_blocked = np.zeros(n_pw)
        self.pw_vacant_until = np.full(n_pw, -1)
        self.u_leave: np.ndarray | None = None
        if p.morale.p_leave_per_week > 0:
            self.u_leave = np.hstack(
                [
                    self.replicate_streams[k // len(p.sites)]
                    .get(f"turnover/{name}")
                    .random((self.n_weeks, s.n_peer_workers))
                    for k, (name, s) in enumerate(list(p.sites.items()) * self.n_replicates)
                ]
            )
        # M3: supervision adequacy is static per site, so each peer worker's pull is too.
        adequacy = self.site_adequacy[site] if p.mechanisms.m3_supervision else np.ones(n_pw)
        self.pw_adequacy = adequacy
        self.pw_pull = (p.fidelity.rate_pull_per_week * adequacy)[:, None]

    def _participant_draws(self) -> dict[str, np.ndarray]:
        """Every participant's random draws, site by site and replicate by replicate,
        each from its own named stream (common random numbers)."""
        p = self.params
        tr = p.trial
        parts: dict[str, list[np.ndarray]] = {}

        def add(name: str, value: np.ndarray) -> None:
            parts.setdefault(name, []).append(value)

        block_max = tr.n_block_max
        for k, (name, s) in enumerate(list(p.sites.items()) * self.n_replicates):
            n = s.n_participants
            streams = self.replicate_streams[k // len(p.sites)]
            rng = streams.get(f"participants/{name}")
            add("site", np.full(n, k))
            add("week_recruited", np.sort(rng.integers(0, tr.dur_recruitment_weeks, n)))
            add("stay", rng.integers(1, tr.dur_ward_after_recruitment_max_weeks + 1, n))
            add("u_diag", rng.random(n))
            add("u_orient", rng.random(n))
            add("z_frailty", rng.standard_normal(n))
            add("readmit_clock", rng.exponential(1.0, n))
            add("z_first_contact", rng.standard_normal(n))
            add("u_engage", rng.random(n))
            # Randomisation: block sizes for each diagnostic stratum, then keys
            # that order each block (see _randomise).
            rng = streams.get(f"randomisation/{name}")
            sizes = 2 * rng.integers(1, block_max + 1, (len(DIAGNOSES), n // 2 + 1))
            add("block_sizes", sizes.ravel())
            add("block_keys", rng.random(int(sizes.sum())))
            # Separate streams so that a longer ward stay or support period does
            # not shift any other draw.
            add(
                "u_rb",
                streams.get(f"first_contact/{name}").random((n, p.engagement.n_rb_activities_max)),
            )
            add("u_ward", streams.get(f"ward/{name}").random((n, self.n_ward_weeks)))
            add(
                "u_community",
                streams.get(f"community/{name}").random((n, max(self.n_support_weeks, 1))),
            )

        return {k: np.concatenate(v) for k, v in parts.items()}

    def _init_service_users(self) -> None:
        p = self.params
        tr = p.trial
        a = self._participant_draws()
        n = len(a["site"])
        u_diag = a.pop("u_diag")
        a["diagnosis"] = np.where(
            u_diag < tr.share_psychotic,
            0,
            np.where(u_diag < tr.share_psychotic + tr.share_personality, 1, 2),
        )
        a["non_heterosexual"] = a.pop("u_orient") < tr.p_non_heterosexual
        a["week_discharged"] = a["week_recruited"] + a.pop("stay")
        sizes, keys = a.pop("block_sizes"), a.pop("block_keys")
        a["arm"] = self._randomise(a["site"], a["diagnosis"], sizes, keys)
        rd = p.readmission
        h0 = -math.log1p(-rd.p_readmit_12m_usual_care) / 52.0
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
            readmit_due=self._first_due(a["readmit_clock"], hazard),
        )
        self.ps = a["arm"] == 1
        # Peer-support participants by week of recruitment, for allocation.
        ps_idx = np.flatnonzero(self.ps)
        order = ps_idx[np.argsort(a["week_recruited"][ps_idx], kind="stable")]
        bounds = np.searchsorted(a["week_recruited"][order], np.arange(self.n_weeks + 1))
        self.recruits_by_week = [order[bounds[w] : bounds[w + 1]] for w in range(self.n_weeks)]
        self.waiting: list[int] = []
        self.open_cases = np.zeros(0, dtype=np.int64)
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

    @staticmethod
    def _first_due(clock: np.ndarray, hazard: np.ndarray) -> np.ndarray:
        """Until dosed, the hazard is constant: the clock runs out in this week."""
        with np.errstate(over="ignore"):
            return np.maximum(np.ceil(clock / np.maximum(hazard, 1e-300)), 1.0)

    def _randomise(
        self, site: np.ndarray, diagnosis: np.ndarray, sizes: np.ndarray, keys: np.ndarray
    ) -> np.ndarray:
        """1:1 allocation in permuted blocks of random length within each site and
        diagnostic stratum, participants taken in recruitment order.

        Each stratum's allocation sequence is a run of blocks of 2, 4, ... places
        (``sizes``, drawn per site: n // 2 + 1 blocks for each stratum, enough
        for all of its participants), each block holding equal numbers of both
        arms in the order of its ``keys``.
        """
        n_strata = len(DIAGNOSES)
        block = np.repeat(np.arange(len(sizes)), sizes)
        order = np.lexsort((keys, block))  # places shuffled within each block
        block_start = np.cumsum(sizes) - sizes
        rank = np.empty(len(block), dtype=np.int64)
        rank[order] = np.arange(len(block)) - block_start[block]
        sequence = rank < (sizes // 2)[block]
        # Where each (site, stratum) sequence starts among all the places.
        n_site = np.bincount(site, minlength=self.n_sites)
        n_blocks = n_strata * (n_site // 2 + 1)
        first_block = np.repeat(np.cumsum(n_blocks) - n_blocks, n_strata) + np.tile(
            np.arange(n_strata), self.n_sites
        ) * np.repeat(n_site // 2 + 1, n_strata)
        stratum_start = block_start[first_block]
        # The k-th participant of a stratum takes place k of its sequence.
        stratum = n_strata * site + diagnosis
        by_stratum = np.argsort(stratum, kind="stable")
        counts = np.bincount(stratum, minlength=n_strata * self.n_sites)
        nth = np.empty(len(site), dtype=np.int64)
        nth[by_stratum] = np.arange(len(site)) - np.repeat(np.cumsum(counts) - counts, counts)
        return sequence[stratum_start[stratum] + nth].astype(np.int8)

    def _init_records(self) -> None:
        self.records = np.zeros((self.n_weeks, len(RECORDS), self.n_sites))

    # ------------------------------------------------------------- one week
    def step(self) -> None:
        """One week of delivery, in this order:

        1. allocate   - newly recruited peer-support participants get the peer
                        worker with the lightest caseload under the cap
        2. relate     - ward relationships move towards their target (M1, M4)
        3. plan       - peer worker hours needed this week vs hours available (M5)
        4. ward       - further meetings on the ward; who is met there first (M1, M4)
        5. community  - scheduled meetings after discharge; who is reached first (M5)
        6. first      - first contacts: length, activities, engaged or not (M2)
        7. sessions   - this week's sessions counted; the dose moves the
                        readmission clock (M7)
        8. close      - cases whose support period ended
        9. drift      - fidelity domains: supervision pull, drift, clinical pull (M3, M6)
        10. morale    - recovery with supervision, strain, declines (M8)
        11. turnover  - peer workers leave; posts refilled after a vacancy (M8)
        12. readmit   - participants whose clock has run out leave support (M7)
        13. record    - per-site measures of this week
        """
        t = self.week
        self.pw.declines_this_week[:] = 0
        self.allocate(t)
        self.relate()
        on_ward, in_community, meeting = self.plan(t)
        first_ward, seen_ward = self.ward_contacts(t, on_ward)
        first_community, seen_community = self.community_contacts(t, in_community, meeting)
        self.first_contacts(t, first_ward, first_community)
        self.add_sessions(t, first_ward, first_community, seen_ward, seen_community)
        self.close_cases(t)
        self.drift(on_ward)
        self.update_morale()
        self.turnover(t)
        self.readmit(t, in_community)
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
        blocked = self.pw_blocked  # vacant posts take no one
        waiting: list[int] = []
        allocated: list[int] = []
        for i in queue:
            if su.closed[i]:
                continue  # support window passed while waiting
            k = site[i]
            lo = start[k]
            loads = (caseload[lo : start[k + 1]] + blocked[lo : start[k + 1]]).tolist()
            j = lo + loads.index(min(loads))  # lightest caseload, lowest index on ties
            if loads[j - lo] < cap[k]:
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
        target = self.ward_target_fixed + w.w_experience * experience
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

    def ward_contacts(self, t: int, on_ward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ward meetings: returns who meets their peer worker for the first time,
        and who has a further meeting."""
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
        return on_ward[~met & (u < p_first)], on_ward[again]

    def community_contacts(
        self, t: int, in_community: np.ndarray, meeting: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scheduled meetings happen or are missed: returns who is reached for the
        first time, and who attends a meeting."""
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
        return idx[~met & (u < p_first)], idx[attended]

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
        declined = ~engaged
        su.closed[idx[declined]] = True  # a participant who does not engage leaves the caseload
        by_outcome = np.bincount(2 * site + engaged, minlength=2 * self.n_sites).reshape(-1, 2)
        self.site_declined += by_outcome[:, 0]
        self.site_engaged += by_outcome[:, 1]
        self.site_met += by_outcome[:, 0] + by_outcome[:, 1]
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
        change = self.pw_pull * (1 - f) - drift[:, None] * f
        if mech.m6_clinical_drift and len(on_ward):
            # Share of each peer worker's open caseload still on the ward.
            still_open = on_ward[~self.su.closed[on_ward]]
            on_ward_n = np.bincount(self.su.pw[still_open], minlength=self.n_pw)
            extra = drift * fd.w_clinical_pull * on_ward_n / np.maximum(self.pw.caseload, 1)
            change[:, :2] -= extra[:, None] * f[:, :2]  # relationships and reciprocity
        f += change
        # Rates are per week; large ones would overshoot the 0-1 scale.
        np.maximum(f, 0.0, out=f)
        np.minimum(f, 1.0, out=f)

    def turnover(self, t: int) -> None:
        """M8 lever: a peer worker leaves with a chance that rises as morale
        falls; their open cases wait for reallocation to colleagues, and the
        post stays vacant for ``dur_vacancy_weeks`` before a new peer worker
        starts with the initial fidelity and morale."""
        if self.u_leave is None:
            return
        mo, pw = self.params.morale, self.pw
        in_post = self.pw_vacant_until < 0
        p_leave = mo.p_leave_per_week * (1 + mo.w_leave_low_morale * (1 - pw.morale))
        leaving = np.flatnonzero(in_post & (self.u_leave[t] < p_leave))
        if len(leaving):
            su = self.su
            cases = self.open_cases
            orphaned = cases[np.isin(su.pw[cases], leaving) & ~su.closed[cases]]
            su.pw[orphaned] = -1
            self.open_cases = cases[su.pw[cases] >= 0]
            self.waiting = [*orphaned.tolist(), *self.waiting]
            pw.caseload[leaving] = 0
            self.pw_blocked[leaving] = np.inf
            self.pw_vacant_until[leaving] = t + mo.dur_vacancy_weeks
        starting = np.flatnonzero(self.pw_vacant_until == t)
        if len(starting):
            pw.fidelity[starting] = self.params.fidelity.fidelity_initial
            pw.morale[starting] = mo.morale_initial
            self.pw_blocked[starting] = 0.0
            self.pw_vacant_until[starting] = -1

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

    def add_sessions(self, t: int, *seen: np.ndarray) -> None:
        """Count this week's sessions (each participant meets at most once a
        week). M7: from the week a participant reaches the dose threshold, their
        readmission hazard is lower, so the week their clock runs out moves later."""
        su = self.su
        idx = np.concatenate(seen)
        su.sessions[idx] += 1
        self.site_sessions += np.bincount(su.site[idx], minlength=self.n_sites)
        rd = self.params.readmission
        if not self.params.mechanisms.m7_dose_response:
            return
        dosed = idx[su.sessions[idx] == rd.n_sessions_dose]
        if len(dosed) == 0:
            return
        # Weeks after discharge already run at the full hazard (none if dosed on the ward).
        k = np.maximum(t - su.week_discharged[dosed], 0).astype(float)
        h = su.hazard[dosed]
        remaining = su.readmit_clock[dosed] - h * k
        with np.errstate(over="ignore"):  # a vanishing hazard: the clock never runs out
            weeks_left = np.ceil(remaining / np.maximum(h * rd.rel_hazard_engaged, 1e-300))
        su.readmit_due[dosed] = k + np.maximum(weeks_left, 1.0)

    def readmit(self, t: int, in_community: np.ndarray) -> None:
        """M7: a participant whose readmission clock has run out is readmitted,
        which ends community peer support. Outside support nothing can change
        the clock, so everyone else's readmission week is read off at the end."""
        su = self.su
        # Open cases after discharge, and anyone still waiting for a peer worker.
        at_risk = np.concatenate([in_community, self.waiting]).astype(np.int64)
        weeks_after = t - su.week_discharged[at_risk] + 1
        su.closed[at_risk[weeks_after >= su.readmit_due[at_risk]]] = True

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
        # Peer workers are contiguous by site: sum each block in order (exact,
        # so a replicate's numbers do not depend on what else is in the batch).
        sums = np.add.reduceat(self.pw.state, self.site_pw_start[:-1], axis=0)
        r[5:] = (sums / self.site_n_pw[:, None]).T

    # ---------------------------------------------------------- whole trial
    def run_to_end(self) -> list[Results]:
        """Step through delivery, finish the readmission follow-up, and report
        each replicate's results, in seed order."""
        while self.week < self.n_weeks:
            self.step()
        return [self.results(r) for r in range(self.n_replicates)]

    def results(self, replicate: int = 0) -> Results:
        """The tidy results of one replicate."""
        n_site = len(self.site_names)
        g0, g1 = replicate * n_site, (replicate + 1) * n_site
        lo, hi = np.searchsorted(self.su.site, [g0, g1])  # participants are in site order
        su = {name: value[lo:hi] for name, value in vars(self.su).items()}
        pw_offset = self.site_pw_start[g0]
        site = su["site"] - g0
        followup = self.params.trial.dur_followup_weeks
        readmitted = su["readmit_due"] <= followup
        readmit_week = np.where(readmitted, su["readmit_due"], -1).astype(np.int64)
        ps = su["arm"] == 1
        uc = ~ps
        n_ps, n_uc = int(ps.sum()), int(uc.sum())
        e_ps, e_uc = int((readmitted & ps).sum()), int((readmitted & uc).sum())
        itt, itt_lo, itt_hi = odds_ratio(e_ps, n_ps, e_uc, n_uc)
        dosed = ps & (su["sessions"] >= self.params.readmission.n_sessions_dose)

        def share(mask: np.ndarray, of: np.ndarray) -> float:
            n_of = int(of.sum())
            return float((mask & of).sum() / n_of) if n_of else math.nan

        trial: dict[str, float] = {
            "n_ps": n_ps,
            "n_uc": n_uc,
            "readmit_ps": share(readmitted, ps),
            "readmit_uc": share(readmitted, uc),
            "itt_or": itt,
            "itt_or_lo": itt_lo,
            "itt_or_hi": itt_hi,
            "n_2plus": int(dosed.sum()),
            "readmit_2plus": share(readmitted, dosed),
            "allocated_share": share(su["pw"] >= 0, ps),
            "met_share": share(su["met"], ps),
            "engaged_share": share(su["engaged"], ps),
            "contacts_community_mean": float(su["contacts_community"][ps].mean())
            if n_ps
            else math.nan,
        }
        records = self.records[:, :, g0:g1]
        fid = [RECORDS.index(f"fid_{d}") for d in FIDELITY_DOMAINS]
        fidelity = records[:, fid].mean(axis=1)
        for k, name in enumerate(self.site_names):
            trial[f"engaged_share_{name}"] = share(su["engaged"], ps & (site == k))
            trial[f"fidelity_{name}"] = float(fidelity[-1, k])

        sw: dict[str, np.ndarray] = {n: records[:, j].ravel() for j, n in enumerate(RECORDS)}
        sw["fidelity"] = fidelity.ravel()
        sw["supervision_hours"] = np.tile(self.site_supervision_h[g0:g1], self.n_weeks)
        sw["site"] = np.tile(np.arange(n_site), self.n_weeks)
        sw["week"] = np.repeat(np.arange(self.n_weeks), n_site)
        participants = {
            "participant": np.arange(hi - lo),
            "site": site,
            "arm": su["arm"],
            "diagnosis": su["diagnosis"],
            "non_heterosexual": su["non_heterosexual"],
            "week_recruited": su["week_recruited"],
            "week_discharged": su["week_discharged"],
            "peer_worker": np.where(su["pw"] >= 0, su["pw"] - pw_offset, -1),
            "met": su["met"],
            "week_first_contact": su["week_first_contact"],
            "first_contact_setting": su["first_contact_setting"],
            "first_contact_min": su["first_contact_min"],
            "rb_activities": su["rb_activities"],
            "engaged": su["engaged"],
            "contacts_ward": su["contacts_ward"],
            "contacts_community": su["contacts_community"],
            "sessions": su["sessions"],
            "readmitted_12m": readmitted,
            "weeks_to_readmission": readmit_week,
        }
        return Results(self.site_names, trial, sw, participants)


def run(scenario: Scenario, seed: Seed = 0) -> Results:
    """Simulate one trial replicate of ``scenario``; the same seed gives the same results."""
    return PeerSupportModel(scenario, seed).run_to_end()[0]


def run_batch(scenario: Scenario, seeds: Sequence[Seed]) -> list[Results]:
    """Simulate several replicates side by side: the same results as calling
    ``run`` for each seed, in a fraction of the time."""
    return PeerSupportModel(scenario, seeds).run_to_end()
