"""The state of one browser's lesson: settings, the running trials, earlier runs.

``Workbench`` is what the page's controls act on, kept free of solara so that the
tests drive it directly: load a lesson, change a site's conditions, step, reset.
A reset keeps the run it replaces as an *earlier run*, drawn faded behind the new
one with a label of what differed, so a student can see what a change did. The
settings also read from and write to the page's address (``query``/``from_query``),
so a reload or a shared link restores the lesson.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

import numpy as np

from analysis.app.charts import (
    DELIVERY_PANELS,
    FIDELITY_PANELS,
    Option,
    Run,
    run_of,
    trajectory_option,
)
from analysis.app.lessons import LESSONS, LESSONS_BY_KEY, Lesson
from analysis.app.teaching_model import (
    DEFAULT_SEED,
    MAX_TRIALS,
    SITE_CONTROLS,
    ConditionsError,
    TeachingModel,
    enrich_scenario,
    with_conditions,
)
from analysis.app.views import site_label
from simulation import Scenario

# Earlier runs kept for comparison: more would crowd the charts.
MAX_EARLIER = 3
# The sessions panel's first upper limit (sessions per participant); raised, and
# never lowered, when a run goes beyond it, so that runs share one scale.
SESSIONS_TOP = 6.0
# Short names of the site controls, for labels of what changed.
SHORT = {
    "host": "employer",
    "geography": "area",
    "dur_travel_min": "travel (min)",
    "supervisor_h_per_week": "coordinator hours",
    "team_preparation": "team preparation",
    "n_peer_workers": "peer workers",
    "n_caseload_cap": "caseload cap",
}
_VALUE_WORDS = {"nhs": "NHS", "not_for_profit": "not-for-profit"}


def describe_changes(
    before: Mapping[str, Mapping[str, Any]], after: Mapping[str, Mapping[str, Any]]
) -> str:
    """``C: coordinator hours 4 -> 6; F: employer NHS``: what ``after`` changes;
    empty when nothing does."""
    parts = []
    for site, values in after.items():
        changed = [
            f"{SHORT.get(field, field)} {_shown(before[site][field])} -> {_shown(value)}"
            for field, value in values.items()
            if value != before[site][field]
        ]
        if changed:
            parts.append(f"{site}: {', '.join(changed)}")
    return "; ".join(parts)


def _shown(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return f"{value:.0f}"
    if isinstance(value, float):
        return f"{value:g}"
    return _VALUE_WORDS.get(str(value), str(value))


class Workbench:
    """One lesson's settings and runs. ``settings`` are the site conditions the
    controls show; they apply at the next ``reset`` (Mesa's convention, kept)."""

    def __init__(
        self,
        lesson: str = LESSONS[0].key,
        seed: int = DEFAULT_SEED,
        trials: int | None = None,
        changes: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.lesson: Lesson = LESSONS_BY_KEY[lesson]
        self.seed = seed
        self.trials = trials if trials is not None else self.lesson.trials
        self.settings = self.lesson.conditions()
        for site, values in (changes or {}).items():
            self.settings[site] = {**self.settings[site], **values}
        self.earlier: list[Run] = []
        self.tops = {"contacts_mean": SESSIONS_TOP}
        self.model = self._build()

    # ------------------------------------------------------------ actions
    def load_lesson(self, key: str) -> None:
        """Start lesson ``key`` afresh: its conditions, its trials, no earlier runs."""
        self.lesson = LESSONS_BY_KEY[key]
        self.trials = self.lesson.trials
        self.settings = self.lesson.conditions()
        self.earlier = []
        self.tops = {"contacts_mean": SESSIONS_TOP}
        self.model = self._build()

    def set_condition(self, site: str, field: str, value: Any) -> None:
        self.settings = {**self.settings, site: {**self.settings[site], field: value}}

    def set_trials(self, trials: int) -> None:
        self.trials = min(max(int(trials), 1), MAX_TRIALS)

    def set_seed(self, seed: int) -> None:
        self.seed = max(int(seed), 0)

    def step(self, weeks: int = 1) -> None:
        for _ in range(weeks):
            if self.model.finished:
                break
            self.model.step()
        self._raise_tops(self.current_run())

    def reset(self) -> None:
        """Run the trials again under the current settings; the run replaced, if it
        got anywhere, becomes the newest earlier run."""
        if self.model.week > 0:
            self.earlier = [*self.earlier, self.current_run()][-MAX_EARLIER:]
        self.model = self._build()

    def clear_earlier(self) -> None:
        self.earlier = []

    # ------------------------------------------------------------ reading
    @property
    def pending(self) -> bool:
        """The controls differ from the conditions the trials run under."""
        m = self.model
        return self.settings != m.conditions() or self.seed != m.seed or self.trials != m.n_trials

    def run_label(self) -> str:
        """What the running trials change from the lesson, for the legend."""
        changes = describe_changes(self.lesson.conditions(), self.model.conditions())
        extra = []
        if self.model.seed != DEFAULT_SEED:
            extra.append(f"seed {self.model.seed}")
        if self.model.n_trials != self.lesson.trials:
            extra.append(f"{self.model.n_trials} trial{'s' if self.model.n_trials > 1 else ''}")
        label = changes or "the lesson's settings"
        return ", ".join([label, *extra])

    def current_run(self) -> Run:
        m = self.model
        labels = [site_label(m, s) for s in m.site_names]
        return run_of(m.records, m.site_names, labels, self.run_label())

    def scenario(self) -> Scenario:
        """The scenario the trials run under."""
        return self.model.config

    def lesson_scenario(self) -> Scenario:
        """The lesson's own scenario, before any change made in the page."""
        return with_conditions(enrich_scenario(), self.lesson.conditions())

    def delivery_option(self) -> Option:
        return self._option(DELIVERY_PANELS)

    def fidelity_option(self) -> Option:
        return self._option(FIDELITY_PANELS)

    def query(self) -> str:
        """The settings as the page address's query: ``lesson=...&seed=...``."""
        fields: dict[str, str] = {"lesson": self.lesson.key}
        if self.seed != DEFAULT_SEED:
            fields["seed"] = str(self.seed)
        if self.trials != self.lesson.trials:
            fields["trials"] = str(self.trials)
        base = self.lesson.conditions()
        changed = [
            f"{site}.{field}:{_query_value(value)}"
            for site, values in self.settings.items()
            for field, value in values.items()
            if value != base[site][field]
        ]
        if changed:
            fields["set"] = ";".join(changed)
        return urlencode(fields, safe=":;.")

    @classmethod
    def from_query(cls, query: str | None) -> tuple[Workbench, list[str]]:
        """A workbench from a page address's query, and what in it was ignored
        (unknown lesson, bad number, unknown site or setting), in words."""
        fields = dict(parse_qsl(query or ""))
        problems: list[str] = []
        lesson = fields.get("lesson", LESSONS[0].key)
        if lesson not in LESSONS_BY_KEY:
            problems.append(f"no lesson {lesson!r}; the lessons are {', '.join(LESSONS_BY_KEY)}")
            lesson = LESSONS[0].key
        seed = _whole(fields.get("seed"), "seed", 0, 2**63 - 1, problems)
        trials = _whole(fields.get("trials"), "trials", 1, MAX_TRIALS, problems)
        changes = _parse_set(fields.get("set", ""), LESSONS_BY_KEY[lesson], problems)
        bench = cls(lesson, DEFAULT_SEED if seed is None else seed, trials, changes)
        return bench, problems

    # ------------------------------------------------------------ internals
    def _build(self) -> TeachingModel:
        return TeachingModel(seed=self.seed, conditions=self.settings, trials=self.trials)

    def _raise_tops(self, run: Run) -> None:
        if run.weeks == 0:
            return
        peak = float(np.max(run.measures["contacts_mean"]))
        if peak > self.tops["contacts_mean"]:
            self.tops["contacts_mean"] = float(math.ceil(peak * 1.1))

    def _option(self, panels: Any) -> Option:
        m = self.model
        return trajectory_option(
            panels,
            self.current_run(),
            n_weeks=m.n_weeks,
            recruitment_weeks=m.sim.n_intake_weeks,
            earlier=self.earlier,
            focus=self.lesson.focus,
            tops=self.tops,
        )


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _shown(value) if isinstance(value, float) else str(value)


def _whole(text: str | None, name: str, lo: int, hi: int, problems: list[str]) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        problems.append(f"{name} {text!r} is not a whole number")
        return None
    if not lo <= value <= hi:
        problems.append(f"{name} {value} is outside {lo}-{hi}")
        return None
    return value


def _parse_set(text: str, lesson: Lesson, problems: list[str]) -> dict[str, dict[str, Any]]:
    """``C.supervisor_h_per_week:6;F.host:nhs`` -> {"C": {...}, "F": {...}}, each value
    checked as a scenario would check it; bad entries go to ``problems``."""
    controls = {c.field: c for c in SITE_CONTROLS}
    changes: dict[str, dict[str, Any]] = {}
    base = lesson.conditions()
    for entry in filter(None, text.split(";")):
        where, _, raw = entry.partition(":")
        site, _, field = where.partition(".")
        if site not in base or field not in controls:
            problems.append(f"ignored {entry!r}: no site {site!r} or setting {field!r} here")
            continue
        control = controls[field]
        value: Any = raw
        try:
            if control.kind == "int":
                value = int(raw)
            elif control.kind == "float" or field in ("dur_travel_min", "supervisor_h_per_week"):
                value = float(raw)
            with_conditions(enrich_scenario(), {site: {**base[site], field: value}})
        except (ValueError, ConditionsError) as e:
            problems.append(f"ignored {entry!r}: {e}")
            continue
        changes.setdefault(site, {})[field] = value
    return changes
