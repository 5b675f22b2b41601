"""The peer support model: ENRICH-style trial delivery at several sites, weekly.

The agents are array-backed collections (``simulation.population``): service
users, peer workers, coordinators and ward teams, each owning its state and
its phases of the week; ``step()`` is the list of those phases. Every random
decision is drawn from a stream named for the decision and the site
(``simulation.rng``), so a what-if changes only the draws its change touches.
``Delivery`` is the whole model without Mesa, what ``run`` and ``run_batch``
use; ``simulation.mesa_model.PeerSupportModel`` is the same model as a Mesa
model, with the Mesa agents (``simulation.agents``) as per-entity views for the
app and for exploration. Importing this module does not import Mesa (nor
scipy and networkx, which Mesa pulls in): a run starts faster.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from simulation.params import Scenario
from simulation.population import (
    COMMUNITY_TIER,
    COORD_ACTIVITIES,
    FIDELITY_DOMAINS,
    SEEK_TIER,
    WARD_TIER,
    Coordinators,
    PeerWorkers,
    ServiceUsers,
    SiteTable,
    WardTeams,
)
from simulation.results import PARTICIPANT_COLUMNS, PARTICIPANT_DERIVED, RECORDS, Results
from simulation.rng import Streams
from simulation.stats import odds_ratio

if TYPE_CHECKING:
    from simulation.mesa_model import PeerSupportModel

__all__ = ["RECORDS", "Delivery", "PeerSupportModel", "run", "run_batch"]


def __getattr__(name: str) -> Any:
    # PeerSupportModel lives beside Mesa; loaded on first use (PEP 562).
    if name == "PeerSupportModel":
        from simulation.mesa_model import PeerSupportModel

        return PeerSupportModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_COLUMN = {name: k for k, name in enumerate(RECORDS)}
# Peer-worker state columns (PeerWorkers.state) and the records they feed, in order.
_PW_RECORDS = (
    *(f"fid_{d}" for d in FIDELITY_DOMAINS),
    "caseload_mean",
    "pw_morale",
    "hours_needed_mean",
    "shortfall_mean",
    "share_pw_short",
)
# Participant columns kept as ServiceUsers arrays of the same name (the rest are
# derived in results() from the two arrays after them).
_PARTICIPANT_KEPT = tuple(c for c in PARTICIPANT_COLUMNS if c not in PARTICIPANT_DERIVED)
_PARTICIPANT_ARRAYS = (*_PARTICIPANT_KEPT, "readmit_due", "pw")

Seed = int | np.random.SeedSequence


def replicate_streams(seed: Seed | Sequence[Seed]) -> list[Streams]:
    """The named streams of each replicate a seed (or a sequence of them) asks for."""
    seeds = list(seed) if isinstance(seed, Sequence) else [seed]
    if not seeds:
        raise ValueError("at least one seed is needed")
    return [Streams(s) for s in seeds]


class Delivery:
    """Simulated trials of one scenario. ``run_to_end()`` steps them through delivery.

    Given one seed, the model is one trial replicate. Given several, it runs
    them side by side: sites never interact, so replicate r is simply a copy of
    every site drawing from replicate r's own streams, and the weekly phases
    pay numpy's per-call cost once for all replicates. Each replicate's results
    are identical to running it alone.
    """

    def __init__(self, scenario: Scenario, seed: Seed | Sequence[Seed] = 0) -> None:
        self.replicate_streams = replicate_streams(seed)
        self.n_replicates = len(self.replicate_streams)
        self.params = scenario  # not "scenario": mesa.Model reserves that name
        self.site_names: tuple[str, ...] = tuple(scenario.sites)
        self.week = 0
        tr = scenario.trial
        self.n_support_weeks = tr.dur_support_after_discharge_weeks
        self.service = scenario.mode == "service"
        sv = scenario.service
        # Weeks in which participants arrive: the trial's recruitment, or a service's
        # start-up and horizon.
        self.n_intake_weeks = (
            sv.dur_prelaunch_weeks + 52 * sv.horizon_years
            if self.service
            else tr.dur_recruitment_weeks
        )
        # Delivery ends when the last possible participant's support does.
        self.n_weeks = (
            self.n_intake_weeks + tr.dur_ward_after_recruitment_max_weeks + self.n_support_weeks
        )
        sites = SiteTable.build(scenario, self.replicate_streams)
        self.n_sites = len(sites)
        mech = scenario.mechanisms
        nfp = np.array([s.host == "not_for_profit" for s in sites.sites])
        rural = np.array([s.geography == "rural" for s in sites.sites])
        honorary = sites.column("honorary_contracts").astype(bool)
        # M4: barriers apply to not-for-profit peer workers without honorary contracts.
        barriers = nfp & ~honorary & mech.m4_host_barriers
        self.coordinators = Coordinators(scenario, sites, nfp, rural)
        self.wards = WardTeams(scenario, sites, barriers, self.coordinators.site_preparation)
        self.workers = PeerWorkers(
            scenario, sites, self.coordinators, barriers=barriers, rural=rural, n_weeks=self.n_weeks
        )
        self.users = ServiceUsers(scenario, sites, self.n_weeks)
        # Meeting weeks after discharge (0 = discharge week): weekly, then fortnightly.
        week = np.arange(self.n_support_weeks) + 1
        weekly = tr.dur_weekly_phase_weeks
        self.meeting_week = (week <= weekly) | ((week - weekly) % 2 == 0)
        self._init_counts()
        self._init_ratings()

    # The collections under the short names the agents' views and tests use.
    @property
    def su(self) -> ServiceUsers:
        return self.users

    @property
    def pw(self) -> PeerWorkers:
        return self.workers

    @property
    def ward_relationship(self) -> np.ndarray:
        return self.wards.relationship

    @property
    def site_n_pw(self) -> np.ndarray:
        return np.diff(self.workers.site_start)

    def site_label(self, g: int) -> str:
        """The scenario's name for internal site ``g`` (with its replicate if batched)."""
        name = self.site_names[g % len(self.site_names)]
        return name if self.n_replicates == 1 else f"{name} (replicate {g // len(self.site_names)})"

    # ----------------------------------------------------------------- set-up
    def _init_counts(self) -> None:
        su, n = self.users, self.n_sites
        self.site_met = np.zeros(n)
        self.site_engaged = np.zeros(n)
        self.site_declined = np.zeros(n)
        self.site_sessions = np.zeros(n)
        # Peer-support participants recruited so far, per week and site (the shares'
        # denominator).
        ps = su.arm == 1
        recruited = np.zeros((self.n_weeks, n))
        np.add.at(recruited, (su.week_recruited[ps], su.site[ps]), 1)
        self.n_recruited_ps = np.cumsum(recruited, axis=0)
        self.records = np.zeros((self.n_weeks, len(RECORDS), n))
        if self.service:  # per week and site: sessions held, and people waiting
            self.week_sessions = np.zeros((self.n_weeks, n))
            self.week_waiting = np.zeros((self.n_weeks, n))
        self._pw_rows = [_COLUMN[name] for name in _PW_RECORDS]
        self._hours_rows = [_COLUMN["pw_hours_contact"], _COLUMN["pw_hours_travel"]]
        self._n_pw_site = np.diff(self.workers.site_start).astype(float)[:, None]

    def _init_ratings(self) -> None:
        """Fidelity ratings (weeks of delivery past the end are rated in the last week)."""
        fd, sv = self.params.fidelity, self.params.service
        weeks = (
            [
                sv.dur_prelaunch_weeks + 52 * y + sv.rating_week_of_year
                for y in range(sv.horizon_years)
            ]
            if self.service  # once in each service year
            else fd.rating_weeks
        )
        self.rating_weeks = sorted({min(w, self.n_weeks - 1) for w in weeks})
        n = len(self.rating_weeks)
        self.rating_noise = fd.sd_rating_noise * self.workers.rating_z[:n]
        self.ratings_latent = np.full((n, self.n_sites, 4), np.nan)

    # ------------------------------------------------------------- one week
    def step(self) -> None:
        """One week of delivery (``advance_week``; a Mesa model adds its clock)."""
        self.advance_week()

    def advance_week(self) -> None:
        """One week of delivery, in this order:

        1. allocate   - coordinators give new and waiting participants the peer
                        worker with the lightest caseload under the cap
        2. relate     - ward relationships move towards their target (M1, M4)
        3. plan       - each peer worker's week: hours needed for fixed work, the
                        ward, community meetings and seeking, against hours
                        contracted (M5)
        4. ward       - further meetings on the ward; who is met there first (M1, M4)
        5. community  - scheduled meetings after discharge; who is reached first;
                        who lapses when a meeting is not held for lack of hours
        6. first      - first contacts: length, activities, engaged or not (M2)
        7. sessions   - this week's sessions counted; each moves the readmission
                        clock along the dose-response curve (M7)
        8. close      - cases whose support period ended
        9. drift      - fidelity domains: supervision, susceptibility, each
                        domain's own drivers (M3-M6)
        10. wellbeing - supervision and team support, strain, friction, declines (M8)
        11. turnover  - peer workers leave, their cases are handed over; posts
                        refilled after a vacancy (M8)
        12. readmit   - participants whose clock has run out leave support (M7)
        13. rate      - in rating weeks, each site's peer workers are rated
        14. record    - per-site measures of this week
        """
        t = self.week
        self.workers.declines_this_week[:] = 0
        self.allocate(t)
        self.wards.relate(self.site_met, self.site_engaged, self.site_declined)
        on_ward, in_community, community, ward_share = self.plan(t)
        first_ward, seen_ward = self.users.meet_on_ward(
            t, on_ward, self.workers, self.wards.relationship
        )
        first_community, seen_community, lapsed = self.users.meet_in_community(
            t, community, self.workers
        )
        self.stopped(lapsed)
        self.first_contacts(t, first_ward, first_community)
        self.add_sessions(t, first_ward, first_community, seen_ward, seen_community)
        self.users.close_cases(t)
        self.workers.drift(ward_share)
        self.workers.update_wellbeing(self.wards.relationship)
        self.turnover(t)
        self.users.readmit(t, in_community)
        self._update_caseloads()
        if t in self.rating_weeks:
            self.rate(t)
        self.record(t)
        self.week += 1

    def active_caseload_members(self, pw: int) -> np.ndarray:
        """Participants now on peer worker ``pw``'s caseload."""
        su = self.users
        cases = su.open_cases[~su.closed[su.open_cases]]
        return cases[su.pw[cases] == pw]

    def allocate(self, t: int) -> None:
        su = self.users
        queue = [*su.waiting, *su.recruits_by_week[t].tolist()]
        if queue:
            su.waiting = Coordinators.allocate(su, self.workers, queue, t)
        if self.service and su.waiting:
            self.week_waiting[t] = np.bincount(su.site[su.waiting], minlength=self.n_sites)

    def plan(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Which participants need their peer worker this week and what that
        takes: returns the open cases on the ward and in the community, the
        community work planned (unmet participants sought, engaged ones due a
        meeting), and each peer worker's share of open cases on the ward
        (clinical pull, M6)."""
        su, pw = self.users, self.workers
        cases = su.open_cases = su.open_cases[~su.closed[su.open_cases]]
        discharged = su.week_discharged[cases] <= t
        on_ward, in_community = cases[~discharged], cases[discharged]
        unmet = ~su.met[in_community]
        due = su.engaged[in_community] & self.meeting_week[t - su.week_discharged[in_community]]
        community = in_community[unmet | due]
        work = np.concatenate([on_ward, community])
        tier = np.concatenate(
            [
                np.full(len(on_ward), WARD_TIER),
                np.where(unmet[unmet | due], SEEK_TIER, COMMUNITY_TIER),
            ]
        )
        n_on_ward = np.bincount(su.pw[on_ward], minlength=pw.n)
        pw.plan_week(su.pw[work], su.site[work], tier, n_on_ward)
        ward_share = n_on_ward / np.maximum(pw.caseload, 1.0)
        return on_ward, in_community, community, ward_share

    def first_contacts(self, t: int, first_ward: np.ndarray, first_community: np.ndarray) -> None:
        if len(first_ward) + len(first_community) == 0:
            return
        su = self.users
        idx, engaged = su.first_contacts(
            t, first_ward, first_community, self.workers, self.wards.relationship
        )
        site = su.site[idx]
        by_outcome = np.bincount(2 * site + engaged, minlength=2 * self.n_sites).reshape(-1, 2)
        self.site_declined += by_outcome[:, 0]
        self.site_engaged += by_outcome[:, 1]
        self.site_met += by_outcome[:, 0] + by_outcome[:, 1]
        declined = su.pw[idx[~engaged]]
        self.workers.declines_this_week += np.bincount(declined, minlength=self.workers.n)

    def add_sessions(self, t: int, *seen: np.ndarray) -> None:
        idx = np.concatenate(seen)
        if len(idx) == 0:
            return
        self.users.add_sessions(t, idx)
        held = np.bincount(self.users.site[idx], minlength=self.n_sites)
        self.site_sessions += held
        if self.service:
            self.week_sessions[t] = held

    def turnover(self, t: int) -> None:
        """M8: leavers' cases are handed over (some engaged participants stop,
        which ends their engagement); vacancies refilled after the vacancy."""
        leaving = self.workers.leavers(t)
        if len(leaving):
            stopped = self.users.hand_over(leaving)
            self.site_engaged -= np.bincount(self.users.site[stopped], minlength=self.n_sites)
        self.workers.refill(t)

    def stopped(self, lapsed: np.ndarray) -> None:
        """Participants who lapsed are no longer engaged (the ward's experience, M1)
        and count against their peer worker's sense of value (M8: service users
        discontinuing [T])."""
        if len(lapsed) == 0:
            return
        self.site_engaged -= np.bincount(self.users.site[lapsed], minlength=self.n_sites)
        self.workers.declines_this_week += np.bincount(
            self.users.pw[lapsed], minlength=self.workers.n
        )

    def _update_caseloads(self) -> None:
        su = self.users
        cases = su.open_cases
        open_ = cases[~su.closed[cases]]
        self.workers.caseload[:] = np.bincount(su.pw[open_], minlength=self.workers.n)

    def _site_means(self, values: np.ndarray) -> np.ndarray:
        """Means over each site's peer workers in post (rows of ``values``), per site.

        Peer workers are contiguous by site: sum each block in order (exact, so a
        replicate's numbers do not depend on what else is in the batch).
        """
        pw = self.workers
        start = pw.site_start[:-1]
        if not pw.any_vacant:
            return np.add.reduceat(values, start, axis=0) / self._n_pw_site
        w = pw.in_post.astype(float)
        sums = np.add.reduceat(values * w[:, None], start, axis=0)
        return sums / np.maximum(np.add.reduceat(w, start), 1.0)[:, None]

    def rate(self, t: int) -> None:
        """Rate each site's peer workers in post on the four fidelity domains."""
        k = self.rating_weeks.index(t)
        means = self._site_means(self.workers.fidelity)
        if self.workers.any_vacant:  # a site with every post vacant has no rating
            in_post = np.add.reduceat(self.workers.in_post, self.workers.site_start[:-1])
            means[in_post == 0] = np.nan
        self.ratings_latent[k] = means

    def record(self, t: int) -> None:
        """Per-site measures of the week, by name: shares of the peer-support arm
        recruited so far, and means over each site's peer workers in post."""
        r, c, pw = self.records[t], _COLUMN, self.workers
        n = self.n_recruited_ps[t]
        denom = np.maximum(n, 1.0)
        r[c["n_recruited_ps"]] = n
        r[c["met_share"]] = self.site_met / denom
        r[c["engaged_share"]] = self.site_engaged / denom
        r[c["contacts_mean"]] = self.site_sessions / denom
        r[c["ward_relationship"]] = self.wards.relationship
        # State columns are in _PW_RECORDS order.
        r[self._pw_rows] = self._site_means(pw.state).T
        r[c["pw_in_post"]] = (
            np.add.reduceat(pw.in_post.astype(float), pw.site_start[:-1])
            if pw.any_vacant
            else self._n_pw_site[:, 0]
        )
        # Resources: hours on participants (the fixed hours follow from who was in
        # post, in results()); running totals of sessions and of peer workers started.
        by_site = np.add.reduceat(pw.covered_hours(), pw.site_start[:-1])
        travel = by_site[:, 3]
        r[self._hours_rows[0]] = by_site[:, :3].sum(axis=1) - travel
        r[self._hours_rows[1]] = travel
        r[c["n_sessions"]] = self.site_sessions
        r[c["n_pw_started"]] = pw.site_started

    # ---------------------------------------------------------- whole trial
    def run_to_end(self) -> list[Results]:
        """Step through delivery, finish the readmission follow-up, and report
        each replicate's results, in seed order."""
        # Straight through, without a Mesa model's clock around each step (it
        # costs about a tenth of a replicate and nothing here reads it).
        while self.week < self.n_weeks:
            self.advance_week()
        return [self.results(r) for r in range(self.n_replicates)]

    def results(self, replicate: int = 0) -> Results:
        """The tidy results of one replicate."""
        n_site = len(self.site_names)
        g0, g1 = replicate * n_site, (replicate + 1) * n_site
        lo, hi = np.searchsorted(self.users.site, [g0, g1])  # participants are in site order
        su = {name: getattr(self.users, name)[lo:hi] for name in _PARTICIPANT_ARRAYS}
        pw_offset = self.workers.site_start[g0]
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
        # Peer workers' wellbeing a year into delivery (or at its end, if sooner) minus
        # at the start, mean over sites: the cohort study found it fell [T].
        year = min(52, self.n_weeks - 1)
        wellbeing = self.records[year, _COLUMN["pw_morale"], g0:g1]
        trial["pw_wellbeing_change"] = float(wellbeing.mean() - self.params.morale.morale_initial)
        # Site fidelity as the trial measured it: the mean of the ratings (four
        # domains, rater error included); the latent mean at the same weeks too.
        latent = self.ratings_latent[:, g0:g1]
        rated = np.clip(latent + self.rating_noise[:, g0:g1], 0.0, 1.0)
        fidelity_rated = _mean_of_ratings(rated)
        fidelity_latent = _mean_of_ratings(latent)
        for k, name in enumerate(self.site_names):
            trial[f"engaged_share_{name}"] = share(su["engaged"], ps & (site == k))
            trial[f"fidelity_{name}"] = float(fidelity_rated[k])
            trial[f"latent_fidelity_{name}"] = float(fidelity_latent[k])

        site_years: dict[str, np.ndarray] = {}
        service_columns: dict[str, np.ndarray] = {}
        if self.service:
            from simulation.service import service_results

            trial, site_years, service_columns = service_results(self, replicate, lo, hi, rated)
            for k, name in enumerate(self.site_names):
                trial[f"engaged_share_{name}"] = share(su["engaged"], site == k)
                trial[f"fidelity_{name}"] = float(fidelity_rated[k])
                trial[f"latent_fidelity_{name}"] = float(fidelity_latent[k])
        records = self.records[:, :, g0:g1]
        sw: dict[str, np.ndarray] = {n: records[:, j].ravel() for j, n in enumerate(RECORDS)}
        fid = [_COLUMN[f"fid_{d}"] for d in FIDELITY_DOMAINS]
        sw["fidelity"] = records[:, fid].mean(axis=1).ravel()
        sw["supervision_hours"] = np.tile(self.coordinators.site_supervision_h[g0:g1], self.n_weeks)
        sw.update(self._resources(records, g0, g1))
        sw["site"] = np.tile(np.arange(n_site), self.n_weeks)
        sw["week"] = np.repeat(np.arange(self.n_weeks), n_site)
        participants = {name: su[name] for name in _PARTICIPANT_KEPT}
        participants.update(
            participant=np.arange(hi - lo),
            site=site,
            peer_worker=np.where(su["pw"] >= 0, su["pw"] - pw_offset, -1),
            readmitted_12m=readmitted,
            weeks_to_readmission=readmit_week,
        )
        participants.update(service_columns)
        return Results(self.site_names, trial, sw, participants, site_years)

    def _resources(self, records: np.ndarray, g0: int, g1: int) -> dict[str, np.ndarray]:
        """The site-week resource columns of sites ``g0 .. g1 - 1`` (ODD 7.14), from
        the records and the fixed weekly hours per post and per coordinator team."""
        pw, c = self.workers, _COLUMN
        n_posts = np.diff(pw.site_start)[g0:g1].astype(float)
        in_post = records[:, c["pw_in_post"]]
        # Turnover comes after the week's work: who worked week t was in post at t - 1.
        planned = np.vstack([n_posts[None, :], in_post[:-1]])
        parts = pw.site_fixed_by_activity[g0:g1]
        total = parts.sum(axis=1)
        scale = np.minimum(total, pw.contracted_h) / np.maximum(total, 1e-300)
        fixed = planned[:, :, None] * (parts * scale[:, None])[None, :, :]
        contact = records[:, c["pw_hours_contact"]]
        travel = records[:, c["pw_hours_travel"]] + fixed[:, :, 3]
        worked = contact + travel + fixed[:, :, :3].sum(axis=2)
        contracted = planned * pw.contracted_h
        started = np.diff(records[:, c["n_pw_started"]], axis=0, prepend=0.0)
        started[0] += n_posts  # the first peer workers start in week 0
        out = {
            "pw_hours_travel": travel,
            "pw_hours_supervision": fixed[:, :, 0],
            "pw_hours_team": fixed[:, :, 1],
            "pw_hours_admin": fixed[:, :, 2],
            "pw_hours_unused": contracted - worked,
            "pw_hours_worked": worked,
            "pw_hours_contracted": contracted,
            "n_sessions": np.diff(records[:, c["n_sessions"]], axis=0, prepend=0.0),
            "n_pw_started": started,
        }
        coord = self.coordinators.site_hours_by_activity[g0:g1]
        for k, name in enumerate(COORD_ACTIVITIES):
            out[f"coord_hours_{name}"] = np.tile(coord[:, k], (self.n_weeks, 1))
        out["coord_hours_paid"] = np.tile(coord.sum(axis=1), (self.n_weeks, 1))
        return {name: values.ravel() for name, values in out.items()}


def _mean_of_ratings(ratings: np.ndarray) -> np.ndarray:
    """Per site, the mean over rating weeks and domains of (rating, site, domain),
    leaving out weeks when the site had nobody in post (NaN if it never had)."""
    done = ~np.isnan(ratings[:, :, 0])
    n = done.sum(axis=0) * ratings.shape[2]
    total = np.where(done[:, :, None], ratings, 0.0).sum(axis=(0, 2))
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def run(scenario: Scenario, seed: Seed = 0) -> Results:
    """Simulate one trial replicate of ``scenario``; the same seed gives the same results."""
    return Delivery(scenario, seed).run_to_end()[0]


def run_batch(scenario: Scenario, seeds: Sequence[Seed]) -> list[Results]:
    """Simulate several replicates side by side: the same results as calling
    ``run`` for each seed, in a fraction of the time."""
    return Delivery(scenario, seeds).run_to_end()
