"""The model's agents as array-backed collections, one class per agent type.

Each collection holds its agents' state by name, one row per agent (sites in
order, replicates side by side), and owns the phases of a week that change
that state. ``Delivery.advance_week`` (``simulation.model``) is the list of
phases calling them; the Mesa agents in ``simulation.agents`` are per-entity
views onto these arrays (``simulation.mesa_model.PeerSupportModel``).

Sites of one replicate never interact, so a batch of replicates is simply more
sites: internal site ``g`` is scenario site ``g % n`` of replicate ``g // n``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simulation.params import Scenario, Site
from simulation.rng import Streams

# The four fidelity domains of the trial's index [T], and their columns.
FIDELITY_DOMAINS: tuple[str, str, str, str] = (
    "relationships",
    "reciprocity",
    "leadership",
    "strengths",
)
REL, RECIP, LEAD, STRENGTH = 0, 1, 2, 3
# Drivers of domain-specific drift, in the order of Fidelity's weight matrix.
CLINICAL, BURNOUT, AUTHORITY, TIME = 0, 1, 2, 3
# The week's uses of a peer worker's hours after fixed commitments, in priority order.
WARD_TIER, COMMUNITY_TIER, SEEK_TIER = 0, 1, 2
SETTING_WARD, SETTING_COMMUNITY = 1, 2
# Most fidelity ratings a scenario can ask for (Fidelity.rating_weeks).
MAX_RATINGS = 20
# Where peer worker and coordinator hours go (resource accounting, ODD 7.14), in the
# column order of PeerWorkers.hours_by_activity and Coordinators.site_hours_by_activity.
PW_ACTIVITIES: tuple[str, ...] = ("contact", "travel", "supervision", "team", "admin", "unused")
COORD_ACTIVITIES: tuple[str, ...] = ("supervision", "team_prep", "liaison", "travel")


def expit(x: np.ndarray) -> np.ndarray:
    # exp overflows beyond about 709; the probability is 0 or 1 to double precision there.
    return 1.0 / (1.0 + np.exp(-np.minimum(np.maximum(x, -700.0), 700.0)))


def logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


@dataclass(frozen=True)
class SiteTable:
    """The sites of every replicate in the batch, with the draws' stream owners."""

    names: tuple[str, ...]  # scenario site name of each internal site
    sites: tuple[Site, ...]
    streams: tuple[Streams, ...]  # the replicate's streams, per internal site

    @classmethod
    def build(cls, scenario: Scenario, replicate_streams: Sequence[Streams]) -> SiteTable:
        names = tuple(scenario.sites) * len(replicate_streams)
        sites = tuple(scenario.sites.values()) * len(replicate_streams)
        n = len(scenario.sites)
        streams = tuple(replicate_streams[g // n] for g in range(len(sites)))
        return cls(names, sites, streams)

    def column(self, field: str) -> np.ndarray:
        return np.array([getattr(s, field) for s in self.sites])

    def __len__(self) -> int:
        return len(self.sites)


class WardTeams:
    """M1 and M4: one ward team per site and its relationship with peer workers (0-1)."""

    def __init__(
        self, scenario: Scenario, sites: SiteTable, barriers: np.ndarray, preparation: np.ndarray
    ) -> None:
        """``preparation``: the share of the team preparation programme the
        coordinators deliver at each site (``Coordinators.site_preparation``)."""
        w = scenario.ward
        self.params = w
        self.enabled = scenario.mechanisms.m1_ward_relationship
        self.relationship = np.full(len(sites), w.ward_relationship_base)
        # The part of the target that experience does not move.
        self.target_fixed = (
            w.ward_relationship_base + w.w_preparation * preparation - w.w_friction_nfp * barriers
        )

    def relate(self, met: np.ndarray, engaged: np.ndarray, declined: np.ndarray) -> None:
        """Move towards a target set by preparation, host friction and the
        experience of peer support so far ((engaged - declined) / met)."""
        if not self.enabled:
            return
        w = self.params
        target = self.target_fixed + w.w_experience * (engaged - declined) / (met + 1.0)
        target = np.minimum(np.maximum(target, 0.0), 1.0)
        self.relationship += w.rate_adjust_per_week * (target - self.relationship)


class Coordinators:
    """M3, M4, M5: peer worker coordinators, their hours, the supervision they
    give and the allocation of participants to peer workers."""

    def __init__(
        self,
        scenario: Scenario,
        sites: SiteTable,
        nfp: np.ndarray,
        rural: np.ndarray,
    ) -> None:
        mech, sv = scenario.mechanisms, scenario.supervision
        n_sup = sites.column("n_supervisors")
        self.site = np.repeat(np.arange(len(sites)), n_sup)
        site_hours = sites.column("supervisor_h_per_week").astype(float)
        self.hours = site_hours[self.site] / n_sup[self.site]
        # Coordinator hours, liaison and preparation are fixed over delivery, so the
        # supervision plan is made once. Hours go first to liaison between
        # organisations (M4) and journeys (M5), then to the team preparation
        # planned (M1), and what is left to supervision (M3): where hours run
        # short, preparation is cut before nothing is left for supervision.
        liaison = np.where(nfp & mech.m4_host_barriers, sv.share_liaison_nfp, 0.0)
        travel_h = sites.column("dur_travel_min") / 60.0 * mech.m5_rural_travel
        journeys = sv.n_team_visits_per_week * 2 * travel_h
        after_fixed = np.maximum(0.0, site_hours * (1 - liaison) - journeys)
        planned = sites.column("team_preparation") if mech.m1_ward_relationship else 0.0
        planned = planned * np.ones(len(sites))
        prep_h = np.minimum(sv.dur_team_prep_h_per_week * planned, after_fixed)
        # The share of the programme delivered (all that is planned if it takes no time).
        self.site_preparation = (
            prep_h / sv.dur_team_prep_h_per_week if sv.dur_team_prep_h_per_week > 0 else planned
        )
        available = after_fixed - prep_h
        # Where the coordinator hours go each week (resource accounting, ODD 7.14):
        # columns COORD_ACTIVITIES; they sum to the site's hours (journeys are cut
        # to what is left after liaison where the hours run short).
        self.site_hours_by_activity = np.column_stack(
            [
                available,
                prep_h,
                site_hours * liaison,
                np.minimum(journeys, site_hours * (1 - liaison)),
            ]
        )
        # Share of group supervision attended: rural travel keeps some peer workers away.
        self.site_attendance = np.where(rural & mech.m5_rural_travel, sv.p_attend_rural, 1.0)
        self.site_supervision_h = available / sites.column("n_peer_workers") * self.site_attendance
        # Diminishing returns: more coordinator time still helps where it is good.
        with np.errstate(over="ignore"):  # a vanishing need: adequacy is simply 1
            ratio = self.site_supervision_h / sv.dur_need_h_per_pw_week
        self.site_adequacy = 1.0 - np.exp(-ratio)

    @staticmethod
    def allocate(
        users: ServiceUsers, workers: PeerWorkers, queue: list[int], week: int = -1
    ) -> list[int]:
        """Give each participant in ``queue`` the peer worker at their site with
        the lightest caseload under the cap (lowest index on ties); returns those
        who must wait."""
        # One pass in plain Python over plain lists: the queue is short and each
        # choice depends on the ones before it.
        loads = (workers.caseload + workers.blocked).tolist()
        start, cap = workers.site_start.tolist(), workers.site_cap.tolist()
        closed, site = users.closed[queue].tolist(), users.site[queue].tolist()
        waiting: list[int] = []
        allocated: list[int] = []
        chosen: list[int] = []
        for i, is_closed, k in zip(queue, closed, site, strict=True):
            if is_closed:
                continue  # support window passed while waiting
            lo = start[k]
            segment = loads[lo : start[k + 1]]
            least = min(segment)
            if least < cap[k]:
                j = lo + segment.index(least)
                loads[j] += 1
                allocated.append(i)
                chosen.append(j)
            else:
                waiting.append(i)
        if allocated:
            users.pw[allocated] = chosen
            first = users.week_allocated[allocated] < 0
            users.week_allocated[np.asarray(allocated)[first]] = week
            workers.caseload += np.bincount(chosen, minlength=workers.n)
            users.open_cases = np.concatenate([users.open_cases, allocated])
        return waiting


class PeerWorkers:
    """Peer workers: their own fidelity in four domains, susceptibility to
    drift, wellbeing (morale), caseload and a working week that can run out.

    ``state`` holds fidelity (4 columns), caseload, wellbeing, hours needed,
    shortfall and whether short so that a week's site means take one reduction: update its column
    views in place, never rebind them.
    """

    def __init__(
        self,
        scenario: Scenario,
        sites: SiteTable,
        coordinators: Coordinators,
        *,
        barriers: np.ndarray,
        rural: np.ndarray,
        n_weeks: int,
    ) -> None:
        self.params = scenario
        n_pw_site = sites.column("n_peer_workers")
        self.site = np.repeat(np.arange(len(sites)), n_pw_site)
        self.n = n = len(self.site)
        self.site_start = np.concatenate([[0], np.cumsum(n_pw_site)])
        self.site_cap = sites.column("n_caseload_cap")
        self.state = np.zeros((n, 9))
        self.fidelity = self.state[:, :4]
        self.caseload = self.state[:, 4]
        self.morale = self.state[:, 5]
        self.hours_needed = self.state[:, 6]  # this week's, filled by plan_week
        self.shortfall = self.state[:, 7]  # share of this week's needed hours not available
        self.short = self.state[:, 8]  # 1 if any of this week's needed hours are not available
        self.morale[:] = scenario.morale.morale_initial
        self.in_post = np.ones(n, dtype=bool)
        self.any_vacant = False
        self.blocked = np.zeros(n)  # a vacant post takes no one: +inf on its caseload
        self.vacant_until = np.full(n, -1)
        # This week's share of each use's hours covered, filled by plan_week.
        self.tier_share = np.ones((n, 3))
        self.need = np.zeros((n, 3))
        self.declines_this_week = np.zeros(n)
        self._init_roles(sites, barriers)
        self._init_draws(sites, n_weeks)
        self._init_support(coordinators)
        self._init_week(sites, coordinators, rural)
        self._init_drift()

    def _init_roles(self, sites: SiteTable, barriers: np.ndarray) -> None:
        """Records access, recruitment pathway and ward access of each post."""
        p, n = self.params, self.n
        # Who holds records access: the first round(share * n) of a site's peer workers;
        # who came from an existing peer workforce: the last round(share * n).
        self.records_access = np.zeros(n, dtype=bool)
        self.existing = np.zeros(n, dtype=bool)
        for g, s in enumerate(sites.sites):
            lo, n_site = self.site_start[g], s.n_peer_workers
            # M4: a not-for-profit host's peer workers see NHS notes only with an
            # honorary contract (or as far as share_records_access_nfp allows).
            share = p.ward.share_records_access_nfp if barriers[g] else s.share_records_access
            n_access = n_site if s.honorary_contracts else round(share * n_site)
            self.records_access[lo : lo + n_access] = True
            n_existing = round(s.share_existing_workforce * n_site)
            self.existing[lo + n_site - n_existing : lo + n_site] = True
        # Ward access: referral reliability without records, authority without an
        # honorary contract at a not-for-profit host (M4).
        authority = np.where(barriers, p.ward.rel_authority_nfp, 1.0)[self.site]
        access = np.where(self.records_access, 1.0, p.ward.rel_referral_no_records)
        self.ward_access = access * authority

    def _init_draws(self, sites: SiteTable, n_weeks: int) -> None:
        """Each site's stream gives the rater errors of its fidelity ratings first
        (a fixed number, so the peer workers' draws never shift them), then each
        peer worker's own start and susceptibility. Replacements after turnover
        draw from streams of their own, per week and post."""
        noise, z = [], []
        for g, s in enumerate(sites.sites):
            rng = sites.streams[g].get(f"peer_workers/{sites.names[g]}")
            noise.append(rng.standard_normal((MAX_RATINGS, 4)))
            z.append(rng.standard_normal((s.n_peer_workers, 5)))
        self.rating_z = np.stack(noise, axis=1)  # (rating, site, domain)
        self.susceptibility = np.empty(self.n)
        self.base_drift = np.empty((self.n, 1))
        self._start(np.arange(self.n), np.vstack(z))
        self.recruit_draws: np.ndarray | None = None
        self.u_leave: np.ndarray | None = None
        if self.params.morale.p_leave_per_week > 0:
            per_site = list(enumerate(sites.sites))
            self.u_leave = np.hstack(
                [
                    sites.streams[g]
                    .get(f"turnover/{sites.names[g]}")
                    .random((n_weeks, s.n_peer_workers))
                    for g, s in per_site
                ]
            )
            self.recruit_draws = np.concatenate(
                [
                    sites.streams[g]
                    .get(f"recruits/{sites.names[g]}")
                    .standard_normal((n_weeks, s.n_peer_workers, 5))
                    for g, s in per_site
                ],
                axis=1,
            )

    def _init_support(self, coordinators: Coordinators) -> None:
        """Supervision and team support, fixed per site over delivery (M3, M5)."""
        p = self.params
        adequacy = coordinators.site_adequacy[self.site]
        self.adequacy = adequacy if p.mechanisms.m3_supervision else np.ones(self.n)
        self.pull = p.fidelity.rate_pull_per_week * self.adequacy
        self.pull_col = self.pull[:, None]
        self.team_support = coordinators.site_attendance[self.site]
        mo = p.morale
        self.recovery = (
            mo.rate_recovery_per_week * self.adequacy
            + mo.rate_team_support_per_week * self.team_support
        )

    def _init_drift(self) -> None:
        """Which driver erodes which domain (rows CLINICAL, BURNOUT, AUTHORITY, TIME;
        columns the four domains), and the drivers that do not change."""
        fd, mech = self.params.fidelity, self.params.mechanisms
        self.drivers = np.zeros((self.n, 4))
        self.drivers[:, AUTHORITY] = 1.0 - self.ward_access
        self.weights = np.zeros((4, 4))
        if mech.m6_clinical_drift:
            self.weights[CLINICAL, [REL, RECIP]] = fd.rate_clinical_pull_per_week
        self.weights[BURNOUT, RECIP] = fd.rate_burnout_drift_per_week
        # Missing records erode it at any host; M4 off removes only the host's part
        # of the missing access (the authority factor), as in ward contacts.
        self.weights[AUTHORITY, LEAD] = fd.rate_authority_drift_per_week
        self.weights[TIME, STRENGTH] = fd.rate_time_pressure_drift_per_week

    def _start(self, rows: np.ndarray, z: np.ndarray) -> None:
        """Starting fidelity per domain and susceptibility of the peer workers in
        ``rows``, from standard normal draws ``z`` (one row of 5 each)."""
        fd = self.params.fidelity
        centre = logit(fd.fidelity_initial) + fd.w_existing_workforce_logit * self.existing[rows]
        self.fidelity[rows] = expit(centre[:, None] + fd.sd_initial_logit * z[:, :4])
        sd = fd.sd_log_susceptibility
        self.susceptibility[rows] = np.exp(sd * z[:, 4] - sd * sd / 2)
        self.base_drift[rows, 0] = fd.rate_drift_per_week * self.susceptibility[rows]

    def _init_week(self, sites: SiteTable, coordinators: Coordinators, rural: np.ndarray) -> None:
        """Hours a peer worker needs per use, fixed by the site (M5 travel)."""
        p, ww, cm = self.params, self.params.workweek, self.params.community
        travel_h = sites.column("dur_travel_min") / 60.0 * p.mechanisms.m5_rural_travel
        remote = sites.column("p_remote_contact")
        attendance = coordinators.site_attendance
        # Group supervision is held at the team base: rural peer workers travel to it.
        to_supervision = np.where(rural, 2 * travel_h, 0.0)
        fixed = (
            ww.dur_team_meeting_h_per_week
            + ww.dur_admin_h_per_week
            + attendance * (ww.dur_group_supervision_h_per_week + to_supervision)
        )
        meeting_h = (cm.dur_meeting_min + ww.dur_notes_min_per_contact) / 60.0
        self.fixed_h = fixed[self.site]
        # The fixed hours by activity per site (supervision, team, admin, travel to
        # supervision): they add up to fixed_h; kept apart only for the accounting.
        n_sites = len(sites)
        self.site_fixed_by_activity = np.column_stack(
            [
                attendance * ww.dur_group_supervision_h_per_week,
                np.full(n_sites, ww.dur_team_meeting_h_per_week),
                np.full(n_sites, ww.dur_admin_h_per_week),
                attendance * to_supervision,
            ]
        )
        self.ward_visits_h = (ww.n_ward_visits_per_week * (ww.dur_ward_visit_h + 2 * travel_h))[
            self.site
        ]
        self.ward_travel_h = (ww.n_ward_visits_per_week * 2 * travel_h)[self.site]
        # Remote meetings save the journey (the model assumes they are as good [M]).
        community_h = meeting_h + 2 * travel_h * (1 - remote)
        self.meeting_h = np.column_stack(
            [
                np.full(n_sites, meeting_h),
                community_h,
                np.full(n_sites, ww.dur_seek_h_per_week),
            ]
        )
        # The journey's share of a community meeting's hours, per peer worker.
        with np.errstate(divide="ignore", invalid="ignore"):
            journey = np.where(community_h > 0, 2 * travel_h * (1 - remote) / community_h, 0.0)
        self.community_travel_share = journey[self.site]
        self.contracted_h = ww.dur_contracted_h_per_week
        self.visits_ward = np.zeros(self.n, dtype=bool)  # this week's, filled by plan_week
        self.ward_travel_now = np.zeros(self.n)
        self._covered = np.zeros((self.n, 4))
        self.planned_fixed = self.fixed_h.copy()
        self._all_in_post = np.ones(self.n, dtype=bool)
        self.planned_in_post = self._all_in_post
        # Peer workers who started in post so far, per site (the first ones excluded).
        self.site_started = np.zeros(n_sites)

    def plan_week(
        self, pw: np.ndarray, site: np.ndarray, tier: np.ndarray, n_on_ward: np.ndarray
    ) -> None:
        """M5: the hours each peer worker needs this week, and the share of each
        use they can cover in priority order (fixed, ward, community, seeking).

        ``pw``, ``site`` and ``tier`` describe one planned piece of work each.
        """
        n = self.n
        need = np.bincount(
            3 * pw + tier, weights=self.meeting_h[site, tier], minlength=3 * n
        ).reshape(n, 3)
        need = need.astype(float, copy=False)  # bincount of nothing is integer
        self.visits_ward = n_on_ward > 0
        need[:, WARD_TIER] += self.ward_visits_h * self.visits_ward
        self.ward_travel_now = self.ward_travel_h * self.visits_ward
        self.need = need
        fixed = self.fixed_h * self.in_post if self.any_vacant else self.fixed_h
        # Who is in post while this week's hours are worked (turnover comes later).
        self.planned_fixed = fixed
        self.planned_in_post = self.in_post.copy() if self.any_vacant else self._all_in_post
        left = np.maximum(self.contracted_h - fixed, 0.0)
        # Each use gets what is left after the uses before it, up to its need (a use
        # that needs nothing gets 1, or 0 once nothing is left: either way no work).
        before = np.cumsum(need, axis=1) - need
        avail = np.maximum(left[:, None] - before, 0.0)
        np.minimum(avail / np.maximum(need, 1e-12), 1.0, out=self.tier_share)
        total = fixed + before[:, SEEK_TIER] + need[:, SEEK_TIER]
        self.hours_needed[:] = total
        self.shortfall[:] = np.maximum(total - self.contracted_h, 0.0) / np.maximum(total, 1e-12)
        np.greater(self.shortfall, 0.0, out=self.short)

    def hours_spent(self) -> np.ndarray:
        """This week's hours worked per peer worker: fixed work up to the contract,
        then each use's need times the share of it covered (by whoever was in
        post when the week was planned: a leaver worked their last week)."""
        fixed = np.minimum(self.planned_fixed, self.contracted_h)
        return fixed + (self.need * self.tier_share).sum(axis=1)

    def contact_hours(self) -> np.ndarray:
        """This week's hours worked on participants per peer worker, (n, 2): with
        them (meetings, notes, ward visits, seeking) and travelling to them."""
        covered = self.covered_hours()
        travel = covered[:, 3]
        return np.column_stack([covered[:, :3].sum(axis=1) - travel, travel])

    def covered_hours(self) -> np.ndarray:
        """This week's hours worked per peer worker on each tier (ward, community,
        seeking) and, last, the travel among them, (n, 4); a buffer reused weekly."""
        out = self._covered
        np.multiply(self.need, self.tier_share, out=out[:, :3])
        np.multiply(self.tier_share[:, WARD_TIER], self.ward_travel_now, out=out[:, 3])
        out[:, 3] += out[:, COMMUNITY_TIER] * self.community_travel_share
        return out

    def hours_by_activity(self) -> np.ndarray:
        """This week's contracted hours per peer worker by use, (n, 6) in
        PW_ACTIVITIES order: contact, travel (to participants and to group
        supervision), supervision, team meeting, admin, and unused (contracted but
        not needed). They add up to the contract (0 for a vacant post), the first
        five to ``hours_spent()``. Fixed work cut to the contract is cut pro rata."""
        parts = self.site_fixed_by_activity[self.site]
        total = parts.sum(axis=1)
        scale = np.minimum(self.planned_fixed, self.contracted_h) / np.maximum(total, 1e-300)
        fixed = parts * scale[:, None]
        contact, travel = self.contact_hours().T
        worked = np.column_stack([contact, travel + fixed[:, 3], fixed[:, :3]])
        paid = self.contracted_h * self.planned_in_post
        return np.column_stack([worked, paid - worked.sum(axis=1)])

    def drift(self, ward_share: np.ndarray) -> None:
        """M3-M6: supervision pulls each domain towards full fidelity; every domain
        drifts at the peer worker's own susceptibility, plus its own drivers."""
        d = self.drivers
        d[:, CLINICAL] = ward_share
        d[:, BURNOUT] = 1.0 - self.morale
        d[:, TIME] = self.shortfall
        f = self.fidelity
        # f + pull (1 - f) - erosion f, in place: f + pull - (pull + erosion) f.
        change = d @ self.weights
        change += self.base_drift
        change += self.pull_col
        change *= f
        f += self.pull_col
        f -= change
        # Rates are per week; large ones would overshoot the 0-1 scale.
        np.minimum(np.maximum(f, 0.0, out=f), 1.0, out=f)

    def update_wellbeing(self, ward_relationship: np.ndarray) -> None:
        """M8: wellbeing recovers with supervision and the peer team; workload,
        hours short, ward friction and participants who stop wear it down."""
        mo = self.params.morale
        if not self.params.mechanisms.m8_morale:
            return
        m = self.morale
        workload = np.minimum(self.hours_needed / self.contracted_h, 2.0)
        recovery = self.recovery
        strain = (
            mo.rate_strain_per_week * workload
            + mo.rate_shortfall_per_week * self.shortfall
            + mo.rate_friction_per_week * (1.0 - ward_relationship[self.site])
            + mo.rate_dropout_per_week * self.declines_this_week
        )
        change = recovery * (1 - m) - strain * m
        m += change * self.in_post if self.any_vacant else change
        np.minimum(np.maximum(m, 0.0, out=m), 1.0, out=m)

    def leavers(self, t: int) -> np.ndarray:
        """M8 lever: who leaves this week; the chance rises as wellbeing falls."""
        if self.u_leave is None:
            return np.zeros(0, dtype=np.int64)
        mo = self.params.morale
        p_leave = mo.p_leave_per_week * (1 + mo.w_leave_low_morale * (1 - self.morale))
        leaving = np.flatnonzero(self.in_post & (self.u_leave[t] < p_leave))
        if len(leaving):
            self.in_post[leaving] = False
            self.any_vacant = True
            self.caseload[leaving] = 0
            self.blocked[leaving] = np.inf
            self.vacant_until[leaving] = t + mo.dur_vacancy_weeks
        return leaving

    def refill(self, t: int) -> None:
        """Vacant posts whose vacancy is over get a new peer worker, drawn afresh."""
        if self.recruit_draws is None:
            return
        starting = np.flatnonzero(self.vacant_until == t)
        if len(starting):
            self._start(starting, self.recruit_draws[t, starting])
            self.morale[starting] = self.params.morale.morale_initial
            self.in_post[starting] = True
            self.blocked[starting] = 0.0
            self.vacant_until[starting] = -1
            self.any_vacant = not self.in_post.all()
            np.add.at(self.site_started, self.site[starting], 1.0)


class ServiceUsers:
    """Trial participants, one row each, sites in order: who they are, their
    pre-drawn randomness (common random numbers) and their course through
    support. Fixed per participant: site, arm, diagnosis, weeks recruited and
    discharged, frailty; dynamic: peer worker, met, engaged, sessions, closed,
    and the readmission clock's progress."""

    def __init__(self, scenario: Scenario, sites: SiteTable, n_weeks: int) -> None:
        p = self.params = scenario
        tr = p.trial
        self.n_ward_weeks = tr.dur_ward_after_recruitment_max_weeks
        self.n_support_weeks = tr.dur_support_after_discharge_weeks
        a = self._draws(sites)
        n = self.n = len(a["site"])
        u_diag = a.pop("u_diag")
        self.site: np.ndarray = a["site"]
        self.diagnosis = np.where(
            u_diag < tr.share_psychotic,
            0,
            np.where(u_diag < tr.share_psychotic + tr.share_personality, 1, 2),
        )
        self.non_heterosexual = a["u_orient"] < tr.p_non_heterosexual
        self.week_recruited: np.ndarray = a["week_recruited"]
        self.week_discharged = self.week_recruited + a["stay"]
        self.service = p.mode == "service"
        self.arm = (
            np.ones(n, dtype=np.int8)
            if self.service
            else randomise(self.site, self.diagnosis, a["block_sizes"], a["block_keys"], len(sites))
        )
        self.z_frailty: np.ndarray = a["z_frailty"]
        self.readmit_clock: np.ndarray = a["readmit_clock"]  # Exp(1): readmitted when passed
        self.z_first_contact: np.ndarray = a["z_first_contact"]
        self.u_engage: np.ndarray = a["u_engage"]
        self.u_handover: np.ndarray = a["u_handover"]
        self.u_lapse: np.ndarray = a["u_lapse"]
        self.u_rb: np.ndarray = a["u_rb"]
        self.u_ward: np.ndarray = a["u_ward"]
        self.u_community: np.ndarray = a["u_community"]
        rd, cm = p.readmission, p.community
        h0 = -math.log1p(-rd.p_readmit_12m_usual_care) / 52.0
        sd = rd.sd_frailty_log_hazard
        # Mean-one lognormal frailty keeps the average hazard at h0.
        self.hazard = h0 * np.exp(sd * self.z_frailty - sd * sd / 2)
        self.odds_missed = np.exp(logit(cm.p_missed_meeting) + cm.w_frailty_missed * self.z_frailty)
        self._init_course(n)
        self.last_support_week = self.week_discharged + self.n_support_weeks - 1
        # Peer-support participants by week of recruitment, for allocation.
        ps_idx = np.flatnonzero(self.arm == 1)
        order = ps_idx[np.argsort(self.week_recruited[ps_idx], kind="stable")]
        bounds = np.searchsorted(self.week_recruited[order], np.arange(n_weeks + 1))
        self.recruits_by_week = [order[bounds[w] : bounds[w + 1]] for w in range(n_weeks)]
        self.open_cases = np.zeros(0, dtype=np.int64)
        self.waiting: list[int] = []
        # Service mode: the week each was first given a peer worker (-1 never), and
        # whether the offer lapsed after the longest wait.
        self.week_allocated = np.full(n, -1)
        self.offer_lapsed = np.zeros(n, dtype=bool)
        self.max_wait_weeks = p.service.max_wait_weeks if self.service else None
        e = p.engagement
        self._log_or = np.log(
            [e.or_per_first_contact_min, e.or_per_rb_activity, e.or_non_heterosexual]
        )
        # Engaged when u < expit(x), i.e. logit(u) < x: each participant's threshold
        # for the part of the log-odds the first contact decides (length, activities),
        # net of what is fixed before contact (intercept, orientation, frailty).
        fixed = (
            e.logit_intercept
            + self._log_or[2] * self.non_heterosexual
            + e.w_frailty_engage * self.z_frailty
        )
        with np.errstate(divide="ignore"):  # u = 0 engages whatever the contact
            self.engage_threshold = np.log(self.u_engage) - np.log1p(-self.u_engage) - fixed
        self.dev_first_contact_min = e.dur_first_contact_sd_min * self.z_first_contact

    def _init_course(self, n: int) -> None:
        """Everyone starts unallocated, unmet, with no sessions and the full hazard."""
        self.pw = np.full(n, -1)
        self.met = np.zeros(n, dtype=bool)
        self.week_first_contact = np.full(n, -1)
        self.first_contact_setting = np.zeros(n, dtype=np.int8)
        self.first_contact_min = np.full(n, np.nan)
        self.rb_activities = np.full(n, -1)
        self.engaged = np.zeros(n, dtype=bool)
        self.stopped_at_handover = np.zeros(n, dtype=bool)
        self.lapsed = np.zeros(n, dtype=bool)  # stopped after meetings not held
        self.n_unheld = np.zeros(n, dtype=np.int64)
        self.closed = np.zeros(n, dtype=bool)  # off caseloads: declined, readmitted, ended
        self.contacts_ward = np.zeros(n, dtype=np.int64)
        self.contacts_community = np.zeros(n, dtype=np.int64)
        self.sessions = np.zeros(n, dtype=np.int64)
        # The readmission clock (M7): hazard accumulated over the first ``clock_week``
        # weeks after discharge, the current weekly hazard, and the week after
        # discharge in which the clock runs out if the dose stays as it is.
        self.clock_used = np.zeros(n)
        self.clock_week = np.zeros(n)
        self.hazard_now = self.hazard.copy()
        with np.errstate(over="ignore"):
            self.readmit_due = np.maximum(
                np.ceil(self.readmit_clock / np.maximum(self.hazard, 1e-300)), 1.0
            )
        # Without peer support nothing moves the clock: the counterfactual's week.
        self.readmit_due_without = self.readmit_due.copy()

    def _draws(self, sites: SiteTable) -> dict[str, np.ndarray]:
        """Every participant's random draws, site by site, each from its own named
        stream so that a change reaches only the draws it touches."""
        p = self.params
        tr = p.trial
        parts: dict[str, list[np.ndarray]] = {}

        def add(name: str, value: np.ndarray) -> None:
            parts.setdefault(name, []).append(value)

        service = p.mode == "service"
        for g, s in enumerate(sites.sites):
            name, streams = sites.names[g], sites.streams[g]
            rng = streams.get(f"participants/{name}")
            if service:
                week = referral_weeks(p, s, streams.get(f"referrals/{name}"))
                n = len(week)
            else:
                n = s.n_participants or 0
                week = np.sort(rng.integers(0, tr.dur_recruitment_weeks, n))
            add("site", np.full(n, g))
            add("week_recruited", week)
            add("stay", rng.integers(1, tr.dur_ward_after_recruitment_max_weeks + 1, n))
            add("u_diag", rng.random(n))
            add("u_orient", rng.random(n))
            add("z_frailty", rng.standard_normal(n))
            add("readmit_clock", rng.exponential(1.0, n))
            add("z_first_contact", rng.standard_normal(n))
            add("u_engage", rng.random(n))
            add("u_handover", rng.random(n))
            add("u_lapse", rng.random(n))
            if not service:  # a service offers peer support to everyone referred
                # Randomisation: block sizes for each diagnostic stratum, then keys
                # that order each block (see randomise).
                rng = streams.get(f"randomisation/{name}")
                sizes = 2 * rng.integers(1, tr.n_block_max + 1, (3, n // 2 + 1))
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

    def meet_on_ward(
        self, t: int, on_ward: np.ndarray, workers: PeerWorkers, ward_relationship: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Ward meetings (M1, M4, M5): returns who meets their peer worker for the
        first time, and who has a further meeting."""
        if len(on_ward) == 0:  # before the first recruit, after the last discharge
            return on_ward, on_ward
        pw = self.pw[on_ward]
        u = self.u_ward[on_ward, t - self.week_recruited[on_ward]]
        share = workers.tier_share[pw, WARD_TIER]
        met = self.met[on_ward]
        p_first = (
            self.params.ward.p_first_contact_per_week_max
            * ward_relationship[self.site[on_ward]]
            * workers.ward_access[pw]
            * share
        )
        p_again = self.params.ward.p_contact_per_week * share
        again = met & self.engaged[on_ward] & (u < p_again)
        self.contacts_ward[on_ward[again]] += 1
        return on_ward[~met & (u < p_first)], on_ward[again]

    def meet_in_community(
        self, t: int, idx: np.ndarray, workers: PeerWorkers
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Planned community work (M5, M8): those not yet met are sought, engaged
        participants attend or miss their scheduled meeting, and a meeting not held
        for lack of the peer worker's hours may end their engagement. Returns who
        is reached for the first time, who attends a meeting and who lapses."""
        if len(idx) == 0:
            return idx, idx, idx
        pw = self.pw[idx]
        u = self.u_community[idx, t - self.week_discharged[idx]]
        met = self.met[idx]
        share = workers.tier_share[pw]
        p_first = self.params.community.p_first_contact_per_week * share[:, SEEK_TIER]
        # Odds of missing: the participant's own, times the peer worker's wellbeing factor.
        morale_odds = np.exp(self.params.morale.w_morale_missed * (1 - workers.morale[pw]))
        held = share[:, COMMUNITY_TIER]
        attended = met & (u < held / (1 + self.odds_missed[idx] * morale_odds))
        self.contacts_community[idx[attended]] += 1
        return idx[~met & (u < p_first)], idx[attended], self._lapse(idx[met & (u >= held)])

    def _lapse(self, unheld: np.ndarray) -> np.ndarray:
        """Participants whose scheduled meeting was not held (the peer worker's
        hours ran out) stop with chance p_lapse_per_unheld_meeting each time: one
        draw per participant, who stops at the k-th such meeting once (1 - p)^k
        falls below it. Stopping ends their engagement, as at a handover."""
        if len(unheld) == 0:
            return unheld
        self.n_unheld[unheld] += 1
        keep = 1.0 - self.params.community.p_lapse_per_unheld_meeting
        lapsed = unheld[self.u_lapse[unheld] > keep ** self.n_unheld[unheld]]
        self.closed[lapsed] = True
        self.engaged[lapsed] = False
        self.lapsed[lapsed] = True
        return lapsed

    def first_contacts(
        self,
        t: int,
        first_ward: np.ndarray,
        first_community: np.ndarray,
        workers: PeerWorkers,
        ward_relationship: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """M2: the first contact's length and relationship-building activities
        depend on the peer worker's relationships and reciprocity domains, their
        wellbeing and the setting; whether the participant engages follows the
        published odds ratios, and frailer participants engage less (confounding).
        Returns the participants met and whether each engaged."""
        p = self.params
        e = p.engagement
        idx = np.concatenate([first_ward, first_community])
        on_ward = np.arange(len(idx)) < len(first_ward)
        pw = self.pw[idx]
        if p.mechanisms.m2_first_contact_quality:
            f = workers.fidelity[pw]
            quality = (f[:, REL] + f[:, RECIP]) / 2
            p_rb = f[:, REL]
            ward_room = 1 - e.w_ward_room * (1 - ward_relationship[self.site[idx]])
            room = np.where(on_ward, ward_room, e.rel_first_contact_community)
        else:
            quality = p_rb = np.full(len(idx), p.fidelity.fidelity_initial)
            room = np.ones(len(idx))
        wellbeing = 1 - p.morale.w_morale_contact * (1 - workers.morale[pw])
        mean_min = e.dur_first_contact_full_min * quality * room * wellbeing
        length = mean_min + self.dev_first_contact_min[idx]
        length = np.minimum(np.maximum(length, 1.0), 480.0)
        rb = (self.u_rb[idx] < (p_rb * room)[:, None]).sum(axis=1)
        b = self._log_or
        engaged = self.engage_threshold[idx] < b[0] * length + b[1] * rb
        self.met[idx] = True
        self.week_first_contact[idx] = t
        self.first_contact_setting[idx] = np.where(on_ward, SETTING_WARD, SETTING_COMMUNITY)
        self.first_contact_min[idx] = length
        self.rb_activities[idx] = rb
        self.engaged[idx] = engaged
        self.contacts_ward[first_ward] += 1
        self.contacts_community[first_community] += 1
        self.closed[idx[~engaged]] = True  # a participant who does not engage leaves the caseload
        return idx, engaged

    def add_sessions(self, t: int, idx: np.ndarray) -> None:
        """Count this week's sessions (at most one per participant a week). M7:
        each session lowers the readmission hazard along a saturating curve,
        so the week the clock runs out moves later."""
        self.sessions[idx] += 1
        if not self.params.mechanisms.m7_dose_response or len(idx) == 0:
            return
        rd = self.params.readmission
        # Weeks after discharge already run at the old hazard (none on the ward).
        k = np.maximum(t - self.week_discharged[idx], 0).astype(float)
        used = self.clock_used[idx] + self.hazard_now[idx] * (k - self.clock_week[idx])
        rel = 1 - (1 - rd.rel_hazard_full_dose) * (
            1 - np.exp2(-self.sessions[idx] / rd.n_sessions_half_effect)
        )
        h = self.hazard[idx] * rel
        self.clock_used[idx] = used
        self.clock_week[idx] = k
        self.hazard_now[idx] = h
        with np.errstate(over="ignore"):  # a vanishing hazard: the clock never runs out
            weeks_left = np.ceil((self.readmit_clock[idx] - used) / np.maximum(h, 1e-300))
        self.readmit_due[idx] = k + np.maximum(weeks_left, 1.0)

    def hand_over(self, leaving: np.ndarray) -> np.ndarray:
        """Open cases of peer workers who leave go back to the queue. Engaged
        participants take up support with the next peer worker with chance
        p_reengage_after_handover; the others stop. Returns those who stopped."""
        cases = self.open_cases
        orphaned = cases[np.isin(self.pw[cases], leaving) & ~self.closed[cases]]
        p = self.params.morale.p_reengage_after_handover
        # One draw per participant: someone handed over twice decides alike [M].
        stop = self.met[orphaned] & (self.u_handover[orphaned] >= p)
        stopped = orphaned[stop]
        # Those who stop keep the peer worker they had (they were allocated and met).
        self.pw[orphaned[~stop]] = -1
        self.open_cases = cases[self.pw[cases] >= 0]
        self.closed[stopped] = True
        # Stopping ends their engagement with peer support: the relationship was the
        # support, and the model's binary "engaged" is engaged at the end [M].
        self.engaged[stopped] = False
        self.stopped_at_handover[stopped] = True
        self.waiting = [*orphaned[~stop].tolist(), *self.waiting]
        return stopped

    def close_cases(self, t: int) -> None:
        """Cases close when support ends; anyone still waiting for a peer worker
        when support would have ended was never allocated."""
        cases = self.open_cases
        self.closed[cases[self.last_support_week[cases] <= t]] = True
        for i in self.waiting:
            if self.last_support_week[i] <= t:
                self.closed[i] = True
        if self.max_wait_weeks is not None and self.waiting:
            self._lapse_offers(t)

    def _lapse_offers(self, t: int) -> None:
        """Service mode: an offer not taken up by a peer worker within the longest
        wait lapses (a participant handed over after a leaver waits without limit)."""
        idx = np.array(self.waiting, dtype=np.int64)
        wait = t - self.week_recruited[idx]
        lapse = idx[
            (self.week_allocated[idx] < 0) & (wait >= self.max_wait_weeks) & ~self.closed[idx]
        ]
        if len(lapse):
            self.closed[lapse] = True
            self.offer_lapsed[lapse] = True

    def readmit(self, t: int, in_community: np.ndarray) -> None:
        """M7: a participant whose clock has run out is readmitted, which ends
        community peer support. Outside support nothing can change the clock,
        so everyone else's readmission week is read off at the end."""
        if len(in_community) == 0 and not self.waiting:
            return
        at_risk = np.concatenate([in_community, self.waiting]).astype(np.int64)
        weeks_after = t - self.week_discharged[at_risk] + 1
        self.closed[at_risk[weeks_after >= self.readmit_due[at_risk]]] = True
        if self.waiting:  # the queue holds only those still waiting
            self.waiting = [i for i in self.waiting if not self.closed[i]]


def referral_weeks(scenario: Scenario, site: Site, rng: np.random.Generator) -> np.ndarray:
    """Service mode: the week of each referral at ``site``, in order. Referrals are
    a Poisson process at the site's yearly rate, ramped up after launch and varying
    with the season, from the site's own stream (so other changes leave them be)."""
    sv = scenario.service
    week = np.arange(52 * sv.horizon_years)
    ramp = np.minimum((week + 1) / sv.dur_ramp_up_weeks, 1.0) if sv.dur_ramp_up_weeks else 1.0
    season = 1.0 + sv.rel_seasonality * np.cos(2 * np.pi * week / 52)
    rate = (site.referrals_per_year or 0.0) / 52 * ramp * season
    counts = rng.poisson(rate)
    return np.repeat(sv.dur_prelaunch_weeks + week, counts)


def randomise(
    site: np.ndarray, diagnosis: np.ndarray, sizes: np.ndarray, keys: np.ndarray, n_sites: int
) -> np.ndarray:
    """1:1 allocation in permuted blocks of random length within each site and
    diagnostic stratum, participants taken in recruitment order.

    Each stratum's allocation sequence is a run of blocks of 2, 4, ... places
    (``sizes``, drawn per site: n // 2 + 1 blocks for each stratum, enough for
    all of its participants), each block holding equal numbers of both arms in
    the order of its ``keys``.
    """
    n_strata = 3
    block = np.repeat(np.arange(len(sizes)), sizes)
    order = np.lexsort((keys, block))  # places shuffled within each block
    block_start = np.cumsum(sizes) - sizes
    rank = np.empty(len(block), dtype=np.int64)
    rank[order] = np.arange(len(block)) - block_start[block]
    sequence = rank < (sizes // 2)[block]
    # Where each (site, stratum) sequence starts among all the places.
    n_site = np.bincount(site, minlength=n_sites)
    n_blocks = n_strata * (n_site // 2 + 1)
    first_block = np.repeat(np.cumsum(n_blocks) - n_blocks, n_strata) + np.tile(
        np.arange(n_strata), n_sites
    ) * np.repeat(n_site // 2 + 1, n_strata)
    stratum_start = block_start[first_block]
    # The k-th participant of a stratum takes place k of its sequence.
    stratum = n_strata * site + diagnosis
    by_stratum = np.argsort(stratum, kind="stable")
    counts = np.bincount(stratum, minlength=n_strata * n_sites)
    nth = np.empty(len(site), dtype=np.int64)
    nth[by_stratum] = np.arange(len(site)) - np.repeat(np.cumsum(counts) - counts, counts)
    return sequence[stratum_start[stratum] + nth].astype(np.int8)
