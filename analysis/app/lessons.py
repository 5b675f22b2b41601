"""Preset lessons: a configuration of the sites and what to watch for.

Each lesson changes only conditions that the app's site controls show, so a
student sees every change the lesson made and can undo or push it further.
``tests/test_app.py`` checks that each lesson's contrast goes the way its text
says, on average over replicates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from analysis.app.teaching_model import enrich_scenario, site_conditions


@dataclass(frozen=True)
class Lesson:
    key: str
    title: str
    text: str  # two or three sentences: what to watch for
    focus: tuple[str, ...] = ()  # sites to compare; drawn bold in the charts
    # Trials side by side: one trial's ~40 participants per site and arm leave much to
    # chance; the contrasts the lessons point at show reliably in the average of 20.
    trials: int = 20
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)  # site -> field -> value

    def conditions(self) -> dict[str, dict[str, Any]]:
        """Every site's controlled conditions under this lesson."""
        conditions = site_conditions(enrich_scenario())
        for site, changes in self.changes.items():
            conditions[site] = {**conditions[site], **changes}
        return conditions


def _like_site_b(**changes: Any) -> dict[str, Any]:
    """Site B's conditions (urban, NHS-hosted, well prepared), with ``changes``."""
    return {**site_conditions(enrich_scenario())["B"], **changes}


LESSONS: tuple[Lesson, ...] = (
    Lesson(
        "enrich",
        "The ENRICH trial's seven sites",
        "Seven sites deliver the same peer support manual: here A-D are well-prepared "
        "urban NHS sites, E is rural, and F and G employ their peer workers through a "
        "not-for-profit organisation (assumed: the trial did not say which site was which). "
        "Press play and watch the sites' engagement and fidelity pull apart. The charts "
        "average 20 simulated trials: set the trials to 1 to see how much one trial owes "
        "to chance.",
    ),
    Lesson(
        "not_for_profit",
        "Why the not-for-profit site struggles",
        "Sites B and F now differ only in who employs the peer workers: at F a "
        "not-for-profit organisation, whose peer workers (as assumed for the trial) cannot "
        "open NHS records. Watch F's ward relationship, sessions and engagement fall behind "
        "B's: ward staff involve outsiders less, and part of F's coordinator time goes on "
        "liaison between the organisations. Then try more coordinator hours or team "
        "preparation at F.",
        focus=("B", "F"),
        changes={"F": _like_site_b(host="not_for_profit")},
    ),
    Lesson(
        "supervision",
        "What supervision buys",
        "Sites B and C now differ only in their coordinator's hours: 10 a week at B, 4 at "
        "C, where team preparation takes half of them. With little supervision C's peer "
        "workers drift from peer support principles: watch C's fidelity sink, and with it "
        "the engagement of the participants C meets later. Raise C's hours a few at a "
        "time to see where the benefit levels off.",
        focus=("B", "C"),
        changes={"C": _like_site_b(supervisor_h_per_week=4)},
    ),
    Lesson(
        "rural",
        "Rural travel",
        "Sites B and E now differ only in geography: E is rural, an hour's drive each way "
        "to a community meeting or the ward, and both coordinators have 6 hours a week. "
        "Travel eats peer workers' hours, so some weeks E's run out and meetings are cut, "
        "and fewer of them get to group supervision, so E's sessions and fidelity fall "
        "behind B's while engagement, decided at the first contact, moves much less. "
        "Which gaps close with more coordinator hours at E, or more peer worker hours?",
        focus=("B", "E"),
        changes={
            "B": _like_site_b(supervisor_h_per_week=6),
            "E": _like_site_b(geography="rural", dur_travel_min=60, supervisor_h_per_week=6),
        },
    ),
    Lesson(
        "itt_vs_engaged",
        "Intention to treat versus the engaged",
        "Run the trials to the end (more weeks per step) and compare readmission in the "
        "arms as randomised with that of participants who had two or more sessions. "
        "Everyone randomised to peer support is readmitted about as often as usual care, yet "
        "those with two or more sessions are readmitted less. Ask why that does not show "
        "what peer support would do for everyone: who engages is not random, and sites "
        "that deliver poorly dilute the effect.",
    ),
)
LESSONS_BY_KEY: dict[str, Lesson] = {lesson.key: lesson for lesson in LESSONS}
