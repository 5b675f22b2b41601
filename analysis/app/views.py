"""What the teaching app shows, as plain matplotlib figures and numbers.

Nothing here needs solara: the page (``analysis.app.page``) wraps these, and the
tests call them directly. Everything is read from the model's records and its
agents (``simulation.agents``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.app.teaching_model import TeachingModel
from simulation.agents import FIDELITY_DOMAINS
from simulation.model import RECORDS
from simulation.outcomes import INDEX_01, outcome

SITE_COLOURS = [f"C{k}" for k in range(10)]  # matplotlib's default cycle (tab10)
# Red (poor) to green (good) for fidelity and ward relationship, both on 0-1.
QUALITY_CMAP = colormaps["RdYlGn"]
CLIENT_COLOURS = {
    "on the ward": "#1f77b4",
    "in the community": "#2ca02c",
    "not yet met": "#b0b0b0",
}

# The trajectory panels: title, y-axis label, y maximum (None: from the data); units
# of the outcomes are the registry's (simulation.outcomes).
TRAJECTORY_PANELS: tuple[tuple[str, str, float | None], ...] = (
    ("Engaged with their peer worker", f"{outcome('engaged_share').unit} so far", 1.0),
    ("Fidelity to peer support", f"mean of 4 domains ({outcome('fidelity').unit})", 1.0),
    ("Ward staff relationship", f"with peer workers ({INDEX_01})", 1.0),
    ("Peer support sessions", "per participant so far", None),
)
# The 12-month result rows, in order.
FINAL_RESULTS: tuple[str, ...] = ("readmit_ps", "readmit_uc", "itt_or", "readmit_2plus")


def site_measures(model: TeachingModel) -> dict[str, np.ndarray]:
    """The trajectories shown, each (week so far, site)."""
    r = model.records
    fidelity = r[:, [RECORDS.index(f"fid_{d}") for d in FIDELITY_DOMAINS]].mean(axis=1)
    return {
        "engaged_share": r[:, RECORDS.index("engaged_share")],
        "fidelity": fidelity,
        "ward_relationship": r[:, RECORDS.index("ward_relationship")],
        "contacts_mean": r[:, RECORDS.index("contacts_mean")],
    }


def trajectory_figure(model: TeachingModel, focus: Sequence[str] = ()) -> Figure:
    """Engagement, fidelity, ward relationship and sessions per site over the weeks so
    far, averaged over the trials; the ``focus`` sites bold, the others faint."""
    # Fixed margins: a constrained layout would double the time to draw, every week.
    fig = Figure(figsize=(7.2, 6.2))
    fig.subplots_adjust(left=0.09, right=0.98, top=0.95, bottom=0.2, wspace=0.3, hspace=0.25)
    axes = fig.subplots(2, 2, sharex=True).ravel()
    measures = list(site_measures(model).values())
    weeks = np.arange(1, model.week + 1)
    handles = []
    for k, site in enumerate(model.site_names):
        colour = SITE_COLOURS[k % len(SITE_COLOURS)]
        style: dict[str, Any]
        if not focus:
            style = {"linewidth": 1.8, "alpha": 0.9}
        elif site in focus:
            style = {"linewidth": 3.0, "alpha": 1.0}
        else:
            style = {"linewidth": 1.0, "alpha": 0.3}
        for ax, values in zip(axes, measures, strict=True):
            ax.plot(weeks, values[:, k], color=colour, **style)
        handles.append(Line2D([], [], color=colour, label=_site_label(model, site), **style))
    for ax, (title, ylabel, ymax), values in zip(axes, TRAJECTORY_PANELS, measures, strict=True):
        ax.set_title(title, fontsize=12)
        ax.set_ylabel(ylabel, fontsize=10)
        ax.tick_params(labelsize=10)
        top = ymax if ymax is not None else max(1.0, float(values.max(initial=0)) * 1.1)
        ax.set_ylim(0, top)
        ax.set_xlim(0, model.n_weeks)
        ax.grid(alpha=0.3)
    for ax in axes[2:]:
        ax.set_xlabel("week of the trial", fontsize=10)
    if model.week == 0:
        axes[0].text(
            model.n_weeks / 2, 0.5, "Press Step or Play", ha="center", va="center", color="grey"
        )
    fig.legend(handles=handles, loc="lower center", ncols=3, fontsize=10, frameon=False)
    return fig


def _site_label(model: TeachingModel, site: str) -> str:
    s = model.config.sites[site]
    host = "NHS" if s.host == "nhs" else "not-for-profit"
    return f"{site}: {host}, {s.geography}"


def network_figure(model: TeachingModel) -> Figure:
    """Who is in contact with whom at each site, now.

    The first trial's sites, each top to bottom: the ward team, the coordinator(s), the peer workers
    and, under each peer worker, the participants on their caseload. Lines join
    the ward team and the coordinators to the peer workers they work with, and
    each peer worker to their clients. Ward team and peer workers are coloured by
    ward relationship and fidelity (red poor, green good); clients by where they
    are.
    """
    sim = model.sim
    # The first trial only: agents of trial r > 0 carry "(replicate r)" in their site.
    sites = {sim.site_label(k): name for k, name in enumerate(sim.site_names)}
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    ax = fig.subplots()
    ax.set_axis_off()
    norm = Normalize(0, 1)
    cap = max(s.n_caseload_cap for s in model.config.sites.values())
    dy = min(0.35, 3.5 / cap)  # client rows fit in the same height whatever the cap
    nodes: dict[str, list[tuple[float, float, Any]]] = {
        "ward": [],
        "coordinator": [],
        "peer worker": [],
        "client": [],
    }
    lines: list[tuple[tuple[float, float], tuple[float, float]]] = []
    line_colours: list[str] = []
    x0 = 0.0
    for label, site in sites.items():
        pws = [pw for pw in sim.peer_workers if pw.site == label]
        sups = [s for s in sim.supervisors if s.site == label]
        ward = next(w for w in sim.ward_staff if w.site == label)
        width = max(len(pws), 2)
        centre = x0 + (width - 1) / 2
        ward_xy = (centre, 3.0)
        nodes["ward"].append((*ward_xy, QUALITY_CMAP(norm(ward.relationship))))
        sup_xy = [(centre + (j - (len(sups) - 1) / 2) * 0.8, 2.0) for j in range(len(sups))]
        nodes["coordinator"] += [(*xy, "#9467bd") for xy in sup_xy]
        first_x = x0 + (width - len(pws)) / 2
        for i, pw in enumerate(pws):
            pw_xy = (first_x + i, 1.0)
            fidelity = float(np.mean(list(pw.fidelity.values())))
            nodes["peer worker"].append((*pw_xy, QUALITY_CMAP(norm(fidelity))))
            lines.append((ward_xy, pw_xy))
            line_colours.append("#cccccc")
            for xy in sup_xy:
                lines.append((xy, pw_xy))
                line_colours.append("#9467bd")
            for j, client in enumerate(pw.clients()):
                colour = CLIENT_COLOURS[_client_status(client.on_ward, client.met)]
                client_xy = (pw_xy[0], 0.35 - j * dy)
                nodes["client"].append((*client_xy, colour))
                lines.append((pw_xy, client_xy))
                line_colours.append(colour)
        label = _site_label(model, site).replace(": ", "\n")
        ax.text(centre, 3.4, label, ha="center", va="bottom", fontsize=9)
        x0 += width + 1.2
    ax.add_collection(LineCollection(lines, colors=line_colours, linewidths=0.8, zorder=1))
    styles: dict[str, dict[str, Any]] = {
        "ward": {"marker": "s", "s": 260, "edgecolors": "black"},
        "coordinator": {"marker": "D", "s": 170, "edgecolors": "black"},
        "peer worker": {"marker": "o", "s": 140, "edgecolors": "black"},
        "client": {"marker": "o", "s": 22},
    }
    for kind, points in nodes.items():
        if points:
            xs, ys, colours = zip(*points, strict=True)
            ax.scatter(xs, ys, c=list(colours), zorder=3, **styles[kind])
    ax.set_xlim(-0.8, x0 - 0.9)
    ax.set_ylim(0.35 - cap * dy - 0.3, 4.2)
    legend = [
        _marker("s", "#888888", "ward team", 10),
        _marker("D", "#9467bd", "coordinator", 8),
        _marker("o", "#888888", "peer worker", 9),
        *(
            _marker("o", c, f"client {status}", 5, edge=False)
            for status, c in CLIENT_COLOURS.items()
        ),
    ]
    fig.legend(handles=legend, loc="outside lower center", ncols=6, fontsize=9, frameon=False)
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=QUALITY_CMAP), ax=ax, shrink=0.6, pad=0.01)
    bar.set_label("peer worker fidelity,\nward relationship (0-1)", fontsize=9)
    return fig


def _marker(marker: str, colour: str, label: str, size: float, edge: bool = True) -> Line2D:
    edge_colour = "black" if edge else colour
    return Line2D(
        [],
        [],
        marker=marker,
        ls="",
        color=colour,
        markeredgecolor=edge_colour,
        ms=size,
        label=label,
    )


def _client_status(on_ward: bool, met: bool) -> str:
    if not met:
        return "not yet met"
    return "on the ward" if on_ward else "in the community"


@dataclass(frozen=True)
class Count:
    """``n`` of ``of`` participants."""

    n: int
    of: int

    def __str__(self) -> str:
        return f"{self.n} ({100 * self.n / self.of:.0f}%)" if self.of else f"{self.n}"


@dataclass(frozen=True)
class TrialSoFar:
    """The trials' numbers after the weeks simulated so far, all trials together.

    Met, engaged and sessions are shares of the peer-support arm randomised so
    far; readmissions are shares of those discharged so far, and count only
    readmissions that have happened by now (the trial follows each participant
    for 12 months after discharge).
    """

    week: int
    randomised: dict[str, int]  # by arm
    discharged: dict[str, int]
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
            ("Randomised so far", f"{self.randomised[ps]}", f"{self.randomised[uc]}"),
            ("Discharged so far", f"{self.discharged[ps]}", f"{self.discharged[uc]}"),
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
    """Count the participants of all trials by arm from the model's service user agents."""
    sim = model.sim
    week = sim.week
    dose = sim.params.readmission.n_sessions_dose
    arms = ("peer_support", "usual_care")
    randomised = dict.fromkeys(arms, 0)
    discharged = dict.fromkeys(arms, 0)
    readmitted = dict.fromkeys(arms, 0)
    met = engaged = two_plus = 0
    out_engaged = out_two_plus = back_engaged = back_two_plus = 0
    for person in sim.service_users:
        if person.week_recruited >= week:
            continue
        arm = person.arm
        randomised[arm] += 1
        is_engaged = person.engaged
        is_two_plus = person.sessions >= dose
        if arm == "peer_support":
            met += person.met
            engaged += is_engaged
            two_plus += is_two_plus
        if person.week_discharged >= week:
            continue
        discharged[arm] += 1
        back = person.readmitted
        readmitted[arm] += back
        if arm == "peer_support":
            out_engaged += is_engaged
            back_engaged += back and is_engaged
            out_two_plus += is_two_plus
            back_two_plus += back and is_two_plus
    n_ps = randomised["peer_support"]
    return TrialSoFar(
        week=week,
        randomised=randomised,
        discharged=discharged,
        met=Count(met, n_ps),
        engaged=Count(engaged, n_ps),
        two_plus_sessions=Count(two_plus, n_ps),
        readmitted={arm: Count(readmitted[arm], discharged[arm]) for arm in arms},
        readmitted_engaged=Count(back_engaged, out_engaged),
        readmitted_two_plus=Count(back_two_plus, out_two_plus),
    )


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
