"""The teaching app's page, served by ``peersim app`` (``solara run analysis.app.page``).

Two views: *Lessons* (a class runs the simulated trial week by week under preset
conditions, changes a site, and sees the new run beside the earlier ones) and
*Plan a what-if* (``analysis.app.planner_page``: a planner changes levers per
site and compares with the baseline in people, hours and money).

Why not Mesa's ``SolaraViz`` controller and matplotlib charts, as before: drawing
two matplotlib figures took over a second a week and clicks queued silently
behind it (issue 14). Here the model steps in a background task while the buttons
show they are busy and ignore clicks, and the charts are ECharts options
(``analysis.app.charts``) whose data change in place. Only the components that
show the run read ``tick``, so a step re-renders them and not the controls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import solara
import solara.lab
from markdown import markdown

from analysis.app.charts import CLIENT_COLOURS, network_option
from analysis.app.lessons import LESSONS, LESSONS_BY_KEY
from analysis.app.markup import chart, html, table
from analysis.app.teaching_model import MAX_TRIALS, SITE_CONTROLS, Control
from analysis.app.views import final_result_rows, site_label, site_numbers, trial_so_far
from analysis.app.workbench import Workbench

TITLE = "peersim: why do sites running the same manual differ?"
VIEWS = {"lessons": "Lessons", "plan": "Plan a what-if"}
# The documents the page links to, shown in the page itself (``?view=docs&doc=...``):
# the app works offline, and a repository checkout is where it runs.
DOCS_DIR = Path(__file__).resolve().parents[2] / "docs"
DOCS = {
    "tutorial": ("Tutorial", "tutorial.md"),
    "odd": ("The model (ODD protocol)", "ODD.md"),
    "levers": ("What each what-if moves", "levers.md"),
}

CSS = """
.peersim-header { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 16px;
  padding: 6px 12px; background: #1f3b57; color: white; }
.peersim-header h1 { font-size: 18px; font-weight: 600; margin: 0; flex: 1 1 300px; }
.peersim-header a { color: #cfe3ff; font-size: 13px; }
.peersim-body { display: flex; align-items: flex-start; gap: 12px; padding: 8px 10px; }
.peersim-side { flex: 0 0 290px; width: 290px; max-width: 290px; min-width: 0; }
.peersim-side .v-card { margin-bottom: 8px; }
.peersim-side .v-select__selection { white-space: normal; overflow-wrap: anywhere; }
.peersim-main { flex: 1 1 auto; min-width: 0; }
.peersim-main .v-card { margin-bottom: 10px; }
.peersim-caption { font-size: 13px; color: #444; margin: 2px 8px 6px; }
.peersim-table table { border-collapse: collapse; font-size: 13px; width: 100%; }
.peersim-table th, .peersim-table td { padding: 2px 6px; border-bottom: 1px solid #e4e4e4; }
.peersim-table th { text-align: left; font-weight: 600; }
.peersim-table td:not(:first-child), .peersim-table th:not(:first-child) { text-align: right; }
.peersim-text p { margin: 4px 0; font-size: 14px; }
.peersim-slider-label { font-size: 13px; }
.peersim-buttons { display: flex; flex-wrap: wrap; gap: 6px; }
.peersim-site-choice { flex-wrap: wrap; }
.peersim-site-choice .v-btn { min-width: 34px !important; padding: 0 8px !important; }
"""


@solara.component
def Page() -> None:
    router = solara.use_router()
    query = router.search or ""
    fields = dict(parse_qsl(query))
    view = solara.use_reactive(fields.get("view", "lessons"))
    solara.Title("peersim")
    solara.Style(CSS)
    with solara.Div(classes=["peersim-header"]):
        solara.HTML(tag="h1", unsafe_innerHTML=TITLE)
        if view.value in VIEWS:
            solara.ToggleButtonsSingle(
                value=VIEWS[view.value],
                values=list(VIEWS.values()),
                on_value=lambda label: view.set(next(k for k, v in VIEWS.items() if v == label)),
                classes=["peersim-view"],
            )
        links = " · ".join(
            f'<a href="?view=docs&doc={key}" target="_blank">{title}</a>'
            for key, (title, _) in DOCS.items()
        )
        solara.HTML(tag="span", unsafe_innerHTML=links, classes=["peersim-links"])
    if view.value == "docs":
        DocsView(fields.get("doc", "tutorial"))
    elif view.value == "plan":
        from analysis.app.planner_page import PlannerView

        PlannerView()
    else:
        LessonView(query)


@solara.component
def DocsView(key: str) -> None:
    """One of the project's documents, rendered in the page."""
    name = DOCS.get(key, DOCS["tutorial"])[1]
    path = DOCS_DIR / name
    with solara.Div(classes=["peersim-docs"], style={"padding": "8px 24px", "max-width": "980px"}):
        if not path.exists():
            solara.Warning(f"{path} is not here: the documents come with a peersim checkout.")
            return
        solara.HTML(
            tag="div",
            unsafe_innerHTML=markdown(
                path.read_text(encoding="utf-8"), extensions=["tables", "fenced_code", "toc"]
            ),
            classes=["peersim-text"],
        )


class LessonActions:
    """What the lesson's controls do, for one browser. Each action changes the
    workbench under the lock, then bumps ``edits`` (settings changed: the controls
    re-render) or ``tick`` (the run moved: its views re-render)."""

    def __init__(
        self, bench: Workbench, state: dict[str, Any], push: Callable[[str], None]
    ) -> None:
        self.bench = bench
        self.lock: threading.Lock = state["lock"]
        self.tick: solara.Reactive[int] = state["tick"]
        self.edits: solara.Reactive[int] = state["edits"]
        self.playing: solara.Reactive[bool] = state["playing"]
        self.weeks_per_step: solara.Reactive[int] = state["weeks_per_step"]
        self.interval_ms: solara.Reactive[int] = state["interval_ms"]
        self.site: solara.Reactive[str] = state["site"]
        self.push = push
        self.step_task: Any = None
        self.play_task: Any = None

    @property
    def busy(self) -> bool:
        return bool(self.step_task is not None and self.step_task.pending) or self.playing.value

    def changed(self, run: bool = False) -> None:
        self.edits.set(self.edits.value + 1)
        if run:
            self.tick.set(self.tick.value + 1)
            self.push(self.bench.query())

    def do_step(self) -> None:
        """The background task of Step (and of each step of Play)."""
        with self.lock:
            self.bench.step(self.weeks_per_step.value)
        self.tick.set(self.tick.value + 1)

    def play_loop(self) -> None:
        """The background task of Play: step, rest, until paused or delivery is over."""
        while self.playing.value and not self.bench.model.finished:
            started = time.monotonic()
            self.do_step()
            rest = self.interval_ms.value / 1000 - (time.monotonic() - started)
            time.sleep(max(0.0, rest))
        self.playing.set(False)

    def step(self) -> None:
        if not self.busy and not self.bench.model.finished:
            self.step_task()

    def play(self) -> None:
        if not self.busy and not self.bench.model.finished:
            self.playing.set(True)
            self.play_task()

    def pause(self) -> None:
        self.playing.set(False)

    def reset(self) -> None:
        self.playing.set(False)
        with self.lock:
            self.bench.reset()
        self.changed(run=True)

    def load_lesson(self, key: str) -> None:
        self.playing.set(False)
        with self.lock:
            self.bench.load_lesson(key)
        if self.bench.lesson.focus:
            self.site.set(self.bench.lesson.focus[-1])
        self.changed(run=True)

    def edit(self, action: Callable[[], None]) -> None:
        action()
        self.changed()


@solara.component
def LessonView(query: str) -> None:
    router = solara.use_router()
    bench, problems = solara.use_memo(lambda: Workbench.from_query(query), [])
    state = {
        "lock": solara.use_memo(threading.Lock, []),
        "tick": solara.use_reactive(0),
        "edits": solara.use_reactive(0),
        "playing": solara.use_reactive(False),
        "weeks_per_step": solara.use_reactive(1),
        "interval_ms": solara.use_reactive(150),
        "site": solara.use_reactive(bench.lesson.focus[-1] if bench.lesson.focus else "A"),
    }
    act = LessonActions(bench, state, lambda q: router.push(f"{router.path}?{q}"))
    act.step_task = solara.lab.use_task(act.do_step, dependencies=None)
    act.play_task = solara.lab.use_task(act.play_loop, dependencies=None)
    edits, tick = act.edits.value, act.tick.value
    with solara.Div(classes=["peersim-body"]):
        with solara.Div(classes=["peersim-side"]):
            for problem in problems:
                solara.Warning(f"From the address: {problem}", dense=True)
            LessonCard(act, edits)
            RunCard(act, edits)
            SitesCard(act, edits)
        with solara.Div(classes=["peersim-main"]):
            RunViews(bench, tick, edits)


@solara.component
def LessonCard(act: LessonActions, edits: int) -> None:
    bench = act.bench
    with solara.Card("Lesson", classes=["peersim-lesson"]):
        solara.Select(
            label="Choose a lesson",
            values=[lesson.title for lesson in LESSONS],
            value=bench.lesson.title,
            on_value=lambda title: act.load_lesson(
                next(k for k, v in LESSONS_BY_KEY.items() if v.title == title)
            ),
        )
        html(bench.lesson.text)
        solara.Button(
            "Start this lesson again",
            on_click=lambda: act.load_lesson(bench.lesson.key),
            outlined=True,
            small=True,
        )
    if bench.earlier:
        with solara.Card("Earlier runs (faded, dashed)", classes=["peersim-earlier"]):
            for k, run in enumerate(bench.earlier, 1):
                solara.Text(f"{k}. {run.label}")
            solara.Button(
                "Clear earlier runs",
                on_click=lambda: act.edit(bench.clear_earlier),
                small=True,
                outlined=True,
            )


@solara.component
def RunCard(act: LessonActions, edits: int) -> None:
    bench = act.bench
    with solara.Card("Run the trials", classes=["peersim-run"]):
        Controller(act, act.tick.value, act.busy)
        LabelledSlider(
            "Weeks per step", act.weeks_per_step.value, act.weeks_per_step.set, (1, 12, 1)
        )
        LabelledSlider(
            "Pause between steps when playing (ms)",
            act.interval_ms.value,
            act.interval_ms.set,
            (0, 1000, 50),
        )
        LabelledSlider(
            "Trials side by side (the charts show their average)",
            bench.trials,
            lambda n: act.edit(lambda: bench.set_trials(n)),
            (1, MAX_TRIALS, 1),
        )
        solara.InputInt(
            "Seed (the same seed gives the same trials)",
            value=bench.seed,
            on_value=lambda seed: act.edit(lambda: bench.set_seed(seed)),
        )


@solara.component
def SitesCard(act: LessonActions, edits: int) -> None:
    bench = act.bench
    with solara.Card("Site conditions", classes=["peersim-sites"]):
        solara.ToggleButtonsSingle(
            value=act.site.value,
            values=list(bench.model.site_names),
            on_value=act.site.set,
            dense=True,
            classes=["peersim-site-choice"],
        )
        SiteControls(bench, act.site.value, edits, act.changed)


@solara.component
def Controller(act: LessonActions, tick: int, busy: bool) -> None:
    """Step, play or pause, and reset, with the week reached; the buttons show when
    the trials are busy and ignore clicks meanwhile."""
    bench = act.bench
    model = bench.model
    with solara.Div(classes=["peersim-buttons"]):
        solara.Button(
            "Step",
            on_click=act.step,
            disabled=busy or model.finished,
            color="primary",
            classes=["peersim-step"],
        )
        if act.playing.value:
            solara.Button("Pause", on_click=act.pause, color="primary", classes=["peersim-pause"])
        else:
            solara.Button(
                "Play",
                on_click=act.play,
                disabled=busy or model.finished,
                color="primary",
                classes=["peersim-play"],
            )
        solara.Button("Reset", on_click=act.reset, outlined=True, classes=["peersim-reset"])
    solara.ProgressLinear(busy)
    status = f"Week {model.week} of {model.n_weeks}"
    if model.finished:
        solara.Success(f"{status}: delivery is over.", dense=True, classes=["peersim-status"])
    else:
        solara.Info(status, dense=True, classes=["peersim-status"])
    if bench.pending:
        solara.Warning("Settings changed: press Reset to run the trials with them.", dense=True)


@solara.component
def SiteControls(bench: Workbench, site: str, edits: int, changed: Callable[[], None]) -> None:
    """Plain-language controls for one site's conditions; they apply on Reset."""
    del edits  # a prop only so that an edit re-renders the controls
    current = bench.settings[site]

    def setter(control: Control) -> Callable[[Any], None]:
        def set_value(value: Any) -> None:
            if control.kind == "select":
                value = control.option_value(value)
            bench.set_condition(site, control.field, value)
            changed()

        return set_value

    for control in SITE_CONTROLS:
        value = current[control.field]
        if control.kind == "select":
            solara.Select(
                label=control.label,
                values=[label for _, label in control.options],
                value=control.option_label(value),
                on_value=setter(control),
                classes=[f"peersim-select-{control.field}"],
            )
        else:
            LabelledSlider(
                control.label,
                value,
                setter(control),
                (control.min, control.max, control.step),
                whole=control.kind == "int",
            )


@solara.component
def LabelledSlider(
    label: str,
    value: float,
    on_value: Callable[[Any], None],
    bounds: tuple[float, float, float],
    whole: bool = True,
) -> None:
    """A slider under its label and current value: the side panel is too narrow for
    both on one line. ``bounds``: minimum, maximum and step."""
    minimum, maximum, step = bounds
    shown = f"{round(value)}" if whole else f"{value:.1f}"
    with solara.Column(gap="0px", classes=[f"peersim-slider-{css_name(label)}"]):
        solara.Text(f"{label}: {shown}", classes=["peersim-slider-label"])
        if whole:
            solara.SliderInt(
                "",
                value=round(value),
                min=int(minimum),
                max=int(maximum),
                step=int(step),
                on_value=on_value,
            )
        else:
            solara.SliderFloat(
                "", value=value, min=minimum, max=maximum, step=step, on_value=on_value
            )


def css_name(label: str) -> str:
    """``Weeks per step`` -> ``weeks-per-step``: a class name to find a control by."""
    return "-".join("".join(c if c.isalnum() else " " for c in label.lower()).split())


@solara.component
def RunViews(bench: Workbench, tick: int, edits: int) -> None:
    """The charts and numbers of the run; ``tick`` and ``edits`` are props so that
    a step or an edit re-renders them (solara skips a component whose props are
    unchanged)."""
    Trajectories(bench, tick, edits)
    Fidelity(bench, tick, edits)
    TrialNumbers(bench, tick)
    Network(bench, tick)


def _per_trial(n_trials: int) -> str:
    return "per trial" if n_trials == 1 else f"per trial, average of {n_trials}"


@solara.component
def Trajectories(bench: Workbench, tick: int, edits: int) -> None:
    model = bench.model
    per_trial = _per_trial(model.n_trials)
    with solara.Card(f"The sites week by week ({per_trial})", classes=["peersim-trajectories"]):
        chart(bench.delivery_option(), "peersim-delivery", 330)
        html(
            "Each line is a site. **Engaged**: share of those randomised to peer support "
            "so far who engaged with their peer worker. **Sessions**: peer support "
            "sessions per participant so far. **Ward relationship**: how well ward staff "
            "work with the peer workers (0-1). The dotted line marks the end of "
            "recruitment; earlier runs are dashed and faded.",
            "peersim-caption",
        )
        rows = site_numbers(model)
        table(list(rows[0]), [list(r.values()) for r in rows], "peersim-table peersim-site-table")
        html(f"Per-site numbers at week {model.week}, {per_trial}.", "peersim-caption")


@solara.component
def Fidelity(bench: Workbench, tick: int, edits: int) -> None:
    with solara.Card(
        "Fidelity to peer support principles, by domain", classes=["peersim-fidelity"]
    ):
        chart(bench.fidelity_option(), "peersim-fidelity-chart", 300)
        html(
            "The trial's fidelity index has four domains (0 far from the manual, 1 as "
            "it describes): relationships built on shared experience, reciprocity, "
            "leadership and choice by the participant, and a focus on strengths. "
            "Supervision pulls drift back; each site's line is the mean over its peer "
            "workers.",
            "peersim-caption",
        )


@solara.component
def Network(bench: Workbench, tick: int) -> None:
    model = bench.model
    title = "Who is in contact with whom, now"
    if model.n_trials > 1:
        title += f" (trial 1 of {model.n_trials})"
    with solara.Card(title, classes=["peersim-network"]):
        labels = {s: site_label(model, s).replace(": ", "\n") for s in model.site_names}
        chart(network_option(model.sim, labels), "peersim-network-chart", 330)
        html(
            "Per site, top to bottom: the ward team (square), the coordinators "
            "(diamonds), the peer workers (circles) and their clients. Ward team and "
            "peer workers are coloured by ward relationship and fidelity, from dark "
            "blue (poor) to yellow (good); clients by where they are ("
            + ", ".join(CLIENT_COLOURS)
            + ").",
            "peersim-caption",
        )


@solara.component
def TrialNumbers(bench: Workbench, tick: int) -> None:
    model = bench.model
    numbers = trial_so_far(model)
    per_trial = _per_trial(model.n_trials)
    with solara.Card(f"The trial's numbers so far ({per_trial})", classes=["peersim-trial"]):
        html(f"Week {numbers.week} of {model.n_weeks}")
        table(
            ["", "Peer support", "Usual care"],
            [list(row) for row in numbers.rows()],
            "peersim-table peersim-trial-table",
        )
        final = final_result_rows(model)
        if final:
            html(
                "**After 12 months' follow-up** (as `peersim run` reports it"
                + (", averaged over the trials" if model.n_trials > 1 else "")
                + ")"
            )
            table(["", ""], [list(row) for row in final])
        else:
            html(
                "*Readmissions so far count only those that have happened; the trial's "
                "12-month result appears when delivery is over.*",
                "peersim-caption",
            )
