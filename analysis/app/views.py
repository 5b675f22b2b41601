"""What the teaching app shows, as numbers and tables: nothing here draws.

Nothing here needs solara: the page (``analysis.app.page``) wraps these, and the
tests call them directly. Counts are read from the model's arrays of participants
(``simulation.population.ServiceUsers``) in one pass, and are given per trial
(the average over the trials run side by side), never summed over them. The charts
are ``analysis.app.charts``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.app.teaching_model import TeachingModel
from simulation.outcomes import outcome
from simulation.population import FIDELITY_DOMAINS
from simulation.results import RECORDS

# The 12-month result rows, in order.
FINAL_RESULTS: tuple[str, ...] = ("readmit_ps", "readmit_uc", "itt_or", "readmit_2plus")


def site_measures(model: TeachingModel) -> dict[str, np.ndarray]:
    """The lessons' measures, each (week so far, site), averaged over the trials."""
    r = model.records
    column = {name: k for k, name in enumerate(RECORDS)}
    fidelity = r[:, [column[f"fid_{d}"] for d in FIDELITY_DOMAINS]].mean(axis=1)
    return {
        "engaged_share": r[:, column["engaged_share"]],
        "fidelity": fidelity,
        "ward_relationship": r[:, column["ward_relationship"]],
        "contacts_mean": r[:, column["contacts_mean"]],
    }


@dataclass(frozen=True)
class Count:
    """``n`` of ``of`` participants, per trial (averages over trials, so not whole)."""

    n: float
    of: float

    def __str__(self) -> str:
        shown = _people(self.n)
        return f"{shown} ({100 * self.n / self.of:.0f}%)" if self.of else shown


def _people(n: float) -> str:
    """A count per trial: whole when it is, else to one decimal (an average)."""
    return f"{n:.0f}" if float(n).is_integer() else f"{n:.1f}"


@dataclass(frozen=True)
class TrialSoFar:
    """The numbers after the weeks simulated so far, per trial (averaged over the
    trials run side by side).

    Met, engaged and sessions are shares of the peer-support arm randomised so
    far; readmissions are shares of those discharged so far, and count only
    readmissions that have happened by now (the trial follows each participant
    for 12 months after discharge).
    """

    week: int
    n_trials: int
    randomised: dict[str, float]  # by arm
    discharged: dict[str, float]
    met: Count
    engaged: Count
    two_plus_sessions: Count
    readmitted: dict[str, Count]  # by arm, of the discharged
    readmitted_engaged: Count  # of the discharged who engaged
    readmitted_two_plus: Count  # of the discharged with two or more sessions

    def rows(self) -> list[tuple[str, str, str]]:
        """(what, peer support, usual care), as the app shows them."""
        ps, uc = "peer_support", "usual_care"
        return [
            ("Randomised so far", _people(self.randomised[ps]), _people(self.randomised[uc])),
            ("Discharged so far", _people(self.discharged[ps]), _people(self.discharged[uc])),
            ("Met a peer worker", f"{self.met}", "-"),
            ("Engaged with their peer worker", f"{self.engaged}", "-"),
            ("Two or more sessions", f"{self.two_plus_sessions}", "-"),
            (
                "Readmitted (of those discharged)",
                f"{self.readmitted[ps]}",
                f"{self.readmitted[uc]}",
            ),
            ("Readmitted, of the engaged", f"{self.readmitted_engaged}", "-"),
            ("Readmitted, of those with 2+ sessions", f"{self.readmitted_two_plus}", "-"),
        ]


def trial_so_far(model: TeachingModel) -> TrialSoFar:
    """Count the participants by arm, per trial, from the model's participant arrays."""
    sim = model.sim
    su = sim.su
    week = sim.week
    per = 1 / model.n_trials
    dose = sim.params.readmission.n_sessions_dose
    recruited = su.week_recruited < week
    discharged = recruited & (su.week_discharged < week)
    # Readmitted by now: as ServiceUser.readmitted, for everyone at once.
    followup = sim.params.trial.dur_followup_weeks
    due = su.readmit_due
    back = discharged & (due <= followup) & (week - su.week_discharged + 1 > due)
    ps = su.arm == 1
    engaged = su.engaged
    two_plus = su.contacts_ward + su.contacts_community >= dose

    def n(mask: np.ndarray) -> float:
        return float(np.count_nonzero(mask)) * per

    arm_masks = {"peer_support": ps, "usual_care": ~ps}
    n_ps = n(recruited & ps)
    out_engaged, out_two_plus = n(discharged & ps & engaged), n(discharged & ps & two_plus)
    return TrialSoFar(
        week=week,
        n_trials=model.n_trials,
        randomised={arm: n(recruited & m) for arm, m in arm_masks.items()},
        discharged={arm: n(discharged & m) for arm, m in arm_masks.items()},
        met=Count(n(recruited & ps & su.met), n_ps),
        engaged=Count(n(recruited & ps & engaged), n_ps),
        two_plus_sessions=Count(n(recruited & ps & two_plus), n_ps),
        readmitted={arm: Count(n(back & m), n(discharged & m)) for arm, m in arm_masks.items()},
        readmitted_engaged=Count(n(back & ps & engaged), out_engaged),
        readmitted_two_plus=Count(n(back & ps & two_plus), out_two_plus),
    )


# The per-site table: heading (with unit) and how to show the value, from the
# model's weekly records (averaged over the trials).
SITE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("n_recruited_ps", "Randomised to peer support (per trial)"),
    ("met_share", "Met a peer worker (%)"),
    ("engaged_share", "Engaged (%)"),
    ("contacts_mean", "Sessions per participant"),
    ("fidelity", "Fidelity (0-1)"),
    ("ward_relationship", "Ward relationship (0-1)"),
)


def site_numbers(model: TeachingModel) -> list[dict[str, str]]:
    """One row per site after the weeks so far: the site, then ``SITE_COLUMNS``."""
    shape = (len(RECORDS), len(model.site_names))
    last = model.records[-1] if model.week else np.zeros(shape)
    column = {name: k for k, name in enumerate(RECORDS)}
    fidelity = last[[column[f"fid_{d}"] for d in FIDELITY_DOMAINS]].mean(axis=0)
    rows = []
    for k, site in enumerate(model.site_names):
        value = {name: last[column[name], k] for name in column} | {"fidelity": fidelity[k]}
        row = {"Site": site_label(model, site)}
        for name, heading in SITE_COLUMNS:
            v = float(value[name])
            if name == "n_recruited_ps":
                row[heading] = _people(round(v, 1))
            elif heading.endswith("(%)"):
                row[heading] = "-" if model.week == 0 else f"{100 * v:.0f}"
            elif name == "contacts_mean":
                row[heading] = "-" if model.week == 0 else f"{v:.1f}"
            else:
                row[heading] = "-" if model.week == 0 else f"{v:.2f}"
        rows.append(row)
    return rows


def site_label(model: TeachingModel, site: str) -> str:
    """``F: not-for-profit, urban``: the site and the conditions that set it apart."""
    s = model.config.sites[site]
    host = "NHS" if s.host == "nhs" else "not-for-profit"
    return f"{site}: {host}, {s.geography}"


def final_result_rows(model: TeachingModel) -> list[tuple[str, str]]:
    """The result after 12 months' follow-up, as ``peersim run`` reports it
    (``PeerSupportModel.results``), averaged over the trials; empty until delivery
    is over."""
    if not model.finished:
        return []
    trials = [r.trial for r in model.results()]

    def mean(key: str) -> float:
        return float(np.nanmean([t[key] for t in trials]))

    if len(trials) == 1:
        t = trials[0]
        odds = f"{t['itt_or']:.2f} (95% CI {t['itt_or_lo']:.2f}-{t['itt_or_hi']:.2f})"
    else:
        ors = np.array([t["itt_or"] for t in trials])
        odds = (
            f"median {np.nanmedian(ors):.2f}, below 1 in {int((ors < 1).sum())} "
            f"of {len(ors)} trials"
        )
    shown = {name: odds if name == "itt_or" else _percent(mean(name)) for name in FINAL_RESULTS}
    return [(_sentence(outcome(name).heading(model.config)), shown[name]) for name in FINAL_RESULTS]


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _percent(share: float) -> str:
    return "-" if math.isnan(share) else f"{100 * share:.1f}%"
