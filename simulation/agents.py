"""The model's agents.

Each agent is a Mesa agent with its own identity and state; the state lives in
per-type arrays on the model (row ``index``) so that each phase of a week can
update every agent of a type at once. These classes are the readable face of
that state for the app, the tests and anyone exploring a model by hand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa

from simulation.population import FIDELITY_DOMAINS
from simulation.results import ARMS, DIAGNOSES

if TYPE_CHECKING:
    from simulation.mesa_model import PeerSupportModel

__all__ = ["FIDELITY_DOMAINS", "PeerWorker", "ServiceUser", "Supervisor", "WardStaff"]


class _Indexed(mesa.Agent):
    model: PeerSupportModel

    def __init__(self, model: PeerSupportModel, index: int) -> None:
        super().__init__(model)
        self.index = index


class ServiceUser(_Indexed):
    """A trial participant: recruited on the ward, randomised, then discharged."""

    @property
    def site(self) -> str:
        return self.model.site_label(int(self.model.su.site[self.index]))

    @property
    def arm(self) -> str:
        return ARMS[int(self.model.su.arm[self.index])]

    @property
    def diagnosis(self) -> str:
        return DIAGNOSES[int(self.model.su.diagnosis[self.index])]

    @property
    def week_recruited(self) -> int:
        return int(self.model.su.week_recruited[self.index])

    @property
    def week_discharged(self) -> int:
        return int(self.model.su.week_discharged[self.index])

    @property
    def peer_worker(self) -> PeerWorker | None:
        pw = int(self.model.su.pw[self.index])
        return self.model.peer_workers[pw] if pw >= 0 else None

    @property
    def met(self) -> bool:
        return bool(self.model.su.met[self.index])

    @property
    def engaged(self) -> bool:
        return bool(self.model.su.engaged[self.index])

    @property
    def sessions(self) -> int:
        su = self.model.su
        return int(su.contacts_ward[self.index] + su.contacts_community[self.index])

    @property
    def on_ward(self) -> bool:
        su, week = self.model.su, self.model.week
        return bool(su.week_recruited[self.index] <= week < su.week_discharged[self.index])

    @property
    def readmitted(self) -> bool:
        """Readmitted by now (the clock may still move while peer support goes on)."""
        su, week = self.model.su, self.model.week
        due = su.readmit_due[self.index]
        followup = self.model.params.trial.dur_followup_weeks
        return bool(due <= followup and week - su.week_discharged[self.index] + 1 > due)


class PeerWorker(_Indexed):
    """A peer worker: holds a caseload, four fidelity domains, a wellbeing
    (morale) and a working week."""

    @property
    def site(self) -> str:
        return self.model.site_label(int(self.model.pw.site[self.index]))

    @property
    def fidelity(self) -> dict[str, float]:
        row = self.model.pw.fidelity[self.index]
        return {d: float(v) for d, v in zip(FIDELITY_DOMAINS, row, strict=True)}

    @property
    def morale(self) -> float:
        return float(self.model.pw.morale[self.index])

    @property
    def in_post(self) -> bool:
        """False while the post is vacant after a peer worker left."""
        return bool(self.model.pw.in_post[self.index])

    @property
    def hours_needed(self) -> float:
        """Hours this week's work needed (contracted: ``workweek.dur_contracted_h_per_week``)."""
        return float(self.model.pw.hours_needed[self.index])

    @property
    def caseload(self) -> int:
        return int(self.model.pw.caseload[self.index])

    @property
    def records_access(self) -> bool:
        return bool(self.model.pw.records_access[self.index])

    def clients(self) -> list[ServiceUser]:
        """The participants currently on this peer worker's caseload."""
        users = self.model.service_users.to_list()
        return [users[i] for i in self.model.active_caseload_members(self.index)]


class Supervisor(_Indexed):
    """A peer worker coordinator: splits its hours between supervision, team
    preparation and, at not-for-profit sites, liaison between organisations."""

    @property
    def site(self) -> str:
        return self.model.site_label(int(self.model.coordinators.site[self.index]))

    @property
    def hours_per_week(self) -> float:
        return float(self.model.coordinators.hours[self.index])


class WardStaff(_Indexed):
    """The ward team of one site: its stance towards peer workers (0-1)."""

    @property
    def site(self) -> str:
        return self.model.site_label(self.index)

    @property
    def relationship(self) -> float:
        return float(self.model.ward_relationship[self.index])
