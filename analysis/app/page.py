"""The teaching app's page, served by ``peersim app`` (``solara run analysis.app.page``).

Built from Mesa's visualisation: Mesa's ``ModelController`` gives play, pause,
step and reset, re-creating the ``TeachingModel`` from this page's parameters on
reset, and its ``update_counter`` re-renders the views after every step. The
page's own parts are the lessons, the per-site controls (one site at a time, so
the sidebar stays short) and the views of ``analysis.app.views``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import solara
from mesa.visualization.solara_viz import ModelController
from mesa.visualization.utils import force_update, update_counter

from analysis.app.lessons import LESSONS, LESSONS_BY_KEY, Lesson
from analysis.app.teaching_model import (
    DEFAULT_SEED,
    MAX_TRIALS,
    SITE_CONTROLS,
    Control,
    TeachingModel,
)
from analysis.app.views import (
    final_result_rows,
    network_figure,
    trajectory_figure,
    trial_so_far,
)

TITLE = "peersim: why do sites running the same manual differ?"
Params = dict[str, Any]  # TeachingModel's keyword parameters: seed, conditions, trials


def _params(lesson: Lesson, seed: int) -> Params:
    return {"seed": seed, "conditions": lesson.conditions(), "trials": lesson.trials}


@solara.component
def Page() -> None:
    first = LESSONS[0]
    lesson_key = solara.use_reactive(first.key)
    params = solara.use_reactive(_params(first, DEFAULT_SEED))
    model: solara.Reactive[TeachingModel] = solara.use_reactive(
        solara.use_memo(lambda: TeachingModel(**params.value), [])
    )
    # Mesa's controller disables play and step once a run has finished, until its own
    # Reset. A lesson loaded after that gets a new controller (a new key); otherwise the
    # controller stays, since a click on a controller being replaced would be lost.
    generation = solara.use_reactive(0)
    site = solara.use_reactive(model.value.site_names[0])
    weeks_per_step = solara.use_reactive(1)
    play_interval_ms = solara.use_reactive(100)
    use_threads = solara.use_reactive(False)
    lesson = LESSONS_BY_KEY[lesson_key.value]

    def load_lesson(chosen: Lesson) -> None:
        lesson_key.set(chosen.key)
        params.set(_params(chosen, params.value["seed"]))
        if not model.value.running:
            generation.set(generation.value + 1)
        model.set(TeachingModel(**params.value))
        if chosen.focus:
            site.set(chosen.focus[-1])
        force_update()

    solara.Title("peersim teaching app")
    with solara.AppBar():
        solara.AppBarTitle(TITLE)

    with solara.Sidebar():
        with solara.Card("Lesson"):
            solara.Select(
                label="Choose a lesson",
                values=[lesson.title for lesson in LESSONS],
                value=lesson.title,
                on_value=lambda title: load_lesson(_lesson_titled(title)),
            )
            solara.Markdown(lesson.text)
            solara.Button(
                "Start this lesson again",
                on_click=lambda: load_lesson(lesson),
                outlined=True,
                small=True,
            )
        with solara.Card("Run the trial"):
            ModelController(
                model,
                model_parameters=params,
                play_interval=play_interval_ms,
                render_interval=weeks_per_step,
                use_threads=use_threads,
            ).key(f"controller-{generation.value}")
            RunStatus(model.value, params.value)
            LabelledSlider("Weeks per step", weeks_per_step.value, weeks_per_step.set, (1, 12, 1))
            LabelledSlider(
                "Pause between steps when playing (ms)",
                play_interval_ms.value,
                play_interval_ms.set,
                (0, 1000, 50),
            )
            LabelledSlider(
                "Trials side by side (the charts show their average)",
                params.value["trials"],
                lambda n: params.set({**params.value, "trials": n}),
                (1, MAX_TRIALS, 1),
            )
            solara.InputInt(
                "Seed (the same seed gives the same trials)",
                value=params.value["seed"],
                on_value=lambda seed: params.set({**params.value, "seed": max(0, seed)}),
            )
        with solara.Card("Site conditions"):
            solara.ToggleButtonsSingle(value=site, values=list(model.value.site_names))
            SiteControls(params, site.value)

    with solara.Column(style={"padding": "0 12px"}):
        with solara.Columns([5, 3]):
            Trajectories(model.value, lesson.focus)
            TrialNumbers(model.value)
        AgentNetwork(model.value)
        solara.Markdown(
            "Every site's conditions in the ENRICH scenario are modelling assumptions: "
            "the trial did not publish which site was which. The model, its mechanisms "
            "and the evidence for each parameter are described in `docs/ODD.md`."
        )


def _lesson_titled(title: str) -> Lesson:
    return next(lesson for lesson in LESSONS if lesson.title == title)


@solara.component
def RunStatus(model: TeachingModel, params: Params) -> None:
    """The week reached, and a reminder when the settings differ from the run's."""
    update_counter.get()
    if model.finished:
        solara.Success(f"Week {model.week} of {model.n_weeks}: delivery is over.", dense=True)
    else:
        solara.Info(f"Week {model.week} of {model.n_weeks}", dense=True)
    if params != model.parameters():
        solara.Warning("Settings changed: press Reset to run the trial with them.", dense=True)


@solara.component
def SiteControls(params: solara.Reactive[Params], site: str) -> None:
    """Plain-language controls for one site's conditions; they apply on Reset."""
    current = params.value["conditions"][site]

    def setter(control: Control) -> Callable[[Any], None]:
        def set_value(value: Any) -> None:
            if control.kind == "select":
                value = control.option_value(value)
            conditions = params.value["conditions"]
            changed = {**conditions, site: {**conditions[site], control.field: value}}
            params.set({**params.value, "conditions": changed})

        return set_value

    for control in SITE_CONTROLS:
        value = current[control.field]
        if control.kind == "select":
            solara.Select(
                label=control.label,
                values=[label for _, label in control.options],
                value=control.option_label(value),
                on_value=setter(control),
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
    """A slider under its label and current value: the sidebar is too narrow for both
    on one line. ``bounds``: minimum, maximum and step."""
    minimum, maximum, step = bounds
    shown = f"{round(value)}" if whole else f"{value:.1f}"
    with solara.Column(gap="0px", classes=[f"peersim-slider-{_css_name(label)}"]):
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


def _css_name(label: str) -> str:
    """``Weeks per step`` -> ``weeks-per-step``: a class name to find a control by."""
    return "-".join("".join(c if c.isalnum() else " " for c in label.lower()).split())


@solara.component
def Trajectories(model: TeachingModel, focus: tuple[str, ...]) -> None:
    update_counter.get()
    title = "The sites week by week"
    if model.n_trials > 1:
        title += f" (average of {model.n_trials} trials)"
    with solara.Card(title, classes=["peersim-trajectories"]):
        solara.FigureMatplotlib(
            trajectory_figure(model, focus),
            dependencies=[model, model.week, focus],
            format="png",
        )


@solara.component
def TrialNumbers(model: TeachingModel) -> None:
    update_counter.get()
    numbers = trial_so_far(model)
    rows = [
        "| | Peer support | Usual care |",
        "|:---|---:|---:|",
        *(f"| {what} | {ps} | {uc} |" for what, ps, uc in numbers.rows()),
    ]
    title = "The trial's numbers so far"
    if model.n_trials > 1:
        title = f"Trial numbers so far ({model.n_trials} trials)"
    with solara.Card(title, classes=["peersim-trial"]):
        solara.Markdown(f"Week {numbers.week} of {model.n_weeks}\n\n" + "\n".join(rows))
        final = final_result_rows(model)
        if final:
            solara.Markdown(
                "**After 12 months' follow-up** (as `peersim run` reports it"
                + (", averaged over the trials" if model.n_trials > 1 else "")
                + ")\n\n"
                "| | |\n|:---|---:|\n" + "\n".join(f"| {what} | {value} |" for what, value in final)
            )
        else:
            solara.Markdown(
                "*Readmissions so far count only those that have happened; the trial's "
                "12-month result appears when delivery is over.*"
            )


@solara.component
def AgentNetwork(model: TeachingModel) -> None:
    update_counter.get()
    title = "Who is in contact with whom, now"
    if model.n_trials > 1:
        title += f" (trial 1 of {model.n_trials})"
    with solara.Card(title, classes=["peersim-network"]):
        solara.FigureMatplotlib(
            network_figure(model), dependencies=[model, model.week], format="png"
        )
