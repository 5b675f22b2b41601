"""The fit report: does the calibrated model reproduce the targets, and what did
the targets teach us about the parameters?

- ``predictive(...)`` simulates trials for the report through the shared runner
  (``simulation.runner.run_jobs``, the targets' statistics as a table computed on
  the workers): ``posterior`` draws each replicate's parameters from the posterior
  (the posterior predictive: what a trial like ENRICH would show, calibration
  uncertainty included), ``median`` runs the calibrated scenario file.
- ``target_table``: per target, observed vs simulated median and 95% interval and
  whether it is met. A quantitative target is met when the observed value lies
  inside the simulated trials' 95% interval; a pattern when at least half of the
  simulated trials show it (``calibration.distance.PATTERN_MET_SHARE``).
- ``parameter_table``: per free parameter, prior and posterior medians and 90%
  intervals, and how far the targets narrowed the interval.
- ``make_figures``: ``targets.png`` (observed vs simulated, per target),
  ``parameters.png`` (prior vs posterior density, per parameter), ``pairs.png``
  (the posterior's pairwise scatter), ``epsilon.png`` (the run, per generation).
- ``write_report``: ``report.md`` with the tables, figures and the method.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from calibration.distance import PATTERN_MET_SHARE
from calibration.posterior import Posterior, weighted_quantile
from calibration.priors import Prior, PriorSet, get_parameter
from calibration.statistics import Value, statistic_unit
from calibration.targets import Observation, Pattern, Target, TargetSet
from simulation import Scenario
from simulation.executors import Backend
from simulation.runner import SweepError, replicate_jobs, run_jobs
from simulation.stats import Z_95

DPI = 130
DPI_PAIRS = 90
TABLE = "targets"
PREDICTIVE_INTERVAL = (0.025, 0.975)
PARAMETER_INTERVAL = (0.05, 0.95)
# Narrowed to less than this share of the prior's 90% interval: "informed by the targets".
INFORMED_WIDTH = 0.75
_PAIRS_POINTS = 1000
_PAIRS_SEED = 20241


@dataclass(frozen=True)
class Predictive:
    """Per-replicate target statistics of the report's simulated trials:
    ``posterior`` (each replicate's parameters drawn from the posterior) and
    ``median`` (the calibrated scenario), one row per replicate."""

    posterior: pd.DataFrame
    median: pd.DataFrame


def predictive(
    targets: TargetSet,
    posterior: Posterior,
    *,
    base: Scenario,
    calibrated: Scenario,
    backend: Backend,
    work_dir: Path,
    n_replicates: int,
    seed: int,
) -> Predictive:
    """Simulate ``n_replicates`` trials of each kind; resumable in ``work_dir``."""
    tables = {TABLE: targets.table}
    out: dict[str, pd.DataFrame] = {}
    for kind, jobs in (
        ("posterior", posterior.jobs(base, seed, n_replicates)),
        ("median", replicate_jobs(calibrated, seed, n_replicates)),
    ):
        sweep = run_jobs(
            jobs, work_dir / kind, tables=tables, executor=backend, progress=False, resume=True
        )
        if not sweep.complete:
            first = sweep.failures.iloc[0]
            raise SweepError(
                f"{sweep.n_failed} of the report's {kind} simulations failed, first: "
                f"{first['error_type']}: {first['error_message']}"
            )
        out[kind] = sweep.table(TABLE).drop(columns="_job_key", errors="ignore")
    return Predictive(out["posterior"], out["median"])


# --- tables --------------------------------------------------------------------------


def target_table(targets: TargetSet, pred: Predictive) -> pd.DataFrame:
    """One row per target: what was observed, what the simulated trials show, met?"""
    rows = []
    for t in targets.targets:
        row: dict[str, Any] = {
            "target": t.name,
            "statistic": _statistic_text(t),
            "grade": t.grade,
            "weight": t.weight,
            "role": "fitted" if t.weight > 0 else "checked",
            "observed": _observed_text(t),
        }
        for kind, frame in (("posterior", pred.posterior), ("median", pred.median)):
            simulated, met = _simulated(t, targets, frame)
            row[f"{kind}_simulated"] = simulated
            row[f"{kind}_met"] = met
        rows.append(row)
    return pd.DataFrame(rows)


def _simulated(t: Target, targets: TargetSet, frame: pd.DataFrame) -> tuple[str, bool]:
    values = [targets.value_of(t, row) for row in frame.to_dict("records")]
    if t.pattern is not None:
        share = float(np.mean([t.pattern.holds(v) for v in values])) if values else math.nan
        text = f"shown in {share:.0%} of trials"
        scalars = np.array([v for v in values if not isinstance(v, tuple)], float)
        scalars = scalars[np.isfinite(scalars)]
        if len(scalars):
            lo, mid, hi = np.quantile(
                scalars, [PREDICTIVE_INTERVAL[0], 0.5, PREDICTIVE_INTERVAL[1]]
            )
            text += f"; statistic {_num(mid)} [{_num(lo)}, {_num(hi)}]"
        return text, bool(share >= PATTERN_MET_SHARE)
    assert t.observed is not None
    x = np.array(values, float)
    x = x[np.isfinite(x)]
    if not len(x):
        return "not computable", False
    lo, mid, hi = np.quantile(x, [PREDICTIVE_INTERVAL[0], 0.5, PREDICTIVE_INTERVAL[1]])
    return f"{_num(mid)} [{_num(lo)}, {_num(hi)}]", bool(lo <= t.observed.value <= hi)


def _statistic_text(t: Target) -> str:
    settings = ", ".join(
        f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in t.settings.items()
    )
    return f"{t.statistic} ({settings})" if settings else t.statistic


def _observed_text(t: Target) -> str:
    if t.pattern is not None:
        return t.pattern.describe()
    assert t.observed is not None
    o = t.observed
    text = _num(o.value)
    if o.ci is not None:
        text += f" (95% CI {_num(o.ci[0])}-{_num(o.ci[1])})"
    elif o.se is not None:
        text += f" (SE {_num(o.se)}{' of the log' if t.ratio else ''})"
    if o.n is not None:
        text += f", n = {o.n}"
    return text


def configuration_table(priors: PriorSet, posterior: Posterior, base: Scenario) -> pd.DataFrame:
    """One row per site configuration of ``base`` when the site configuration is a
    free input: its prior and posterior probability, and whether ``base`` selects it
    (empty otherwise)."""
    columns = ["configuration", "description", "selected", "prior", "posterior"]
    offered = base.site_configurations
    choice = next((p for p in priors.priors if p.is_choice), None)
    if choice is None or offered is None:
        return pd.DataFrame(columns=columns)
    shares = posterior.configuration_shares()
    rows = [
        {
            "configuration": name,
            "description": offered.options[name].description,
            "selected": name == offered.selected,
            "prior": 1.0 / len(offered.names),
            "posterior": float(shares.get(k, 0.0)),
        }
        for k, name in enumerate(offered.names)
    ]
    return pd.DataFrame(rows, columns=columns)


def _numeric(priors: PriorSet) -> list[Prior]:
    """The priors of real-valued parameters (not the site-configuration choice)."""
    return [p for p in priors.priors if not p.is_choice]


def parameter_table(priors: PriorSet, posterior: Posterior, base: Scenario) -> pd.DataFrame:
    """One row per real-valued free parameter: its value before calibration, prior and
    posterior (the site configuration has ``configuration_table``)."""
    rows = []
    w = posterior.weights
    for p in _numeric(priors):
        values = posterior.samples[p.parameter].to_numpy(float)
        prior_lo, prior_mid, prior_hi = (
            float(v) for v in p.ppf(np.array([*PARAMETER_INTERVAL[:1], 0.5, PARAMETER_INTERVAL[1]]))
        )
        post = [
            weighted_quantile(values, w, q)
            for q in (PARAMETER_INTERVAL[0], 0.5, PARAMETER_INTERVAL[1])
        ]
        narrowed = (post[2] - post[0]) / (prior_hi - prior_lo) if prior_hi > prior_lo else math.nan
        rows.append(
            {
                "parameter": p.parameter,
                "scenario_value": get_parameter(base, p.parameter),
                "prior": p.describe(),
                "prior_median": prior_mid,
                "prior_lo": prior_lo,
                "prior_hi": prior_hi,
                "posterior_median": post[1],
                "posterior_lo": post[0],
                "posterior_hi": post[2],
                "width_ratio": narrowed,
            }
        )
    return pd.DataFrame(rows)


# --- figures -------------------------------------------------------------------------


def make_figures(
    targets: TargetSet,
    priors: PriorSet,
    posterior: Posterior,
    pred: Predictive,
    *,
    generations: pd.DataFrame,
    floor: float,
) -> dict[str, Figure]:
    return {
        "targets.png": targets_figure(targets, pred),
        "parameters.png": parameters_figure(priors, posterior),
        "pairs.png": pairs_figure(priors, posterior),
        "epsilon.png": epsilon_figure(generations, floor),
    }


def save_figures(figures: Mapping[str, Figure], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, figure in figures.items():
        # The pairwise grid is large already: a lower resolution keeps the file small.
        figure.savefig(directory / name, dpi=DPI_PAIRS if name == "pairs.png" else DPI)
        paths.append(directory / name)
    return paths


def targets_figure(targets: TargetSet, pred: Predictive) -> Figure:
    """Per target: the simulated trials' statistic (posterior predictive, and the
    calibrated scenario) against the observation or the pattern's region."""
    n = len(targets.targets)
    figure = _figure(9.0, 1.15 * n + 1.2)
    axes = figure.subplots(n, 1, squeeze=False)[:, 0]
    for ax, t in zip(axes, targets.targets, strict=True):
        _target_panel(ax, t, targets, pred)
    figure.suptitle(
        "Targets: simulated trials (bar: 95% interval, dot: median) vs observed "
        "(black line; grey: its 95% CI)\n"
        "blue: parameters drawn from the posterior; orange: the calibrated (median) scenario\n"
        "interval statistics: median simulated interval (thick), 95% range of its ends (thin)",
        fontsize=10,
    )
    figure.tight_layout()
    return figure


def _target_panel(ax: Axes, t: Target, targets: TargetSet, pred: Predictive) -> None:
    role = "" if t.weight > 0 else "  (checked, not fitted)"
    unit = statistic_unit(t.statistic)
    title = f"{t.name} [{t.grade}]{role}: {_statistic_text(t)}" + (f", in {unit}" if unit else "")
    ax.set_title(title, fontsize=8, loc="left")
    ax.set_yticks([])
    ax.set_ylim(-0.8, 1.8)
    ax.grid(axis="x", alpha=0.3)
    for y, (frame, colour) in enumerate(((pred.median, "C1"), (pred.posterior, "C0"))):
        values = [targets.value_of(t, row) for row in frame.to_dict("records")]
        _simulated_marks(ax, values, y, colour)
    if t.observed is not None:
        _observed_marks(ax, t.observed, ratio=t.ratio)
    elif t.pattern is not None:
        _pattern_marks(ax, t.pattern)
    ax.tick_params(labelsize=7)


def _simulated_marks(ax: Axes, values: Sequence[Value], y: int, colour: str) -> None:
    """The simulated trials' median (dot) and 95% interval (bar) at height ``y``."""
    if any(isinstance(v, tuple) for v in values):
        # An interval statistic: the median simulated interval, and its ends' 95% range.
        ends = np.array([v for v in values if isinstance(v, tuple)], float).reshape(-1, 2)
        ends = ends[np.all(np.isfinite(ends), axis=1)]
        if len(ends):
            lo_q = np.quantile(ends[:, 0], [PREDICTIVE_INTERVAL[0], 0.5])
            hi_q = np.quantile(ends[:, 1], [0.5, PREDICTIVE_INTERVAL[1]])
            ax.plot([lo_q[0], hi_q[1]], [y, y], color=colour, lw=1, alpha=0.6)
            ax.plot([lo_q[1], hi_q[0]], [y, y], color=colour, lw=4, solid_capstyle="butt")
        return
    x = np.array(values, float)
    x = x[np.isfinite(x)]
    if len(x):
        lo, mid, hi = np.quantile(x, [PREDICTIVE_INTERVAL[0], 0.5, PREDICTIVE_INTERVAL[1]])
        ax.plot([lo, hi], [y, y], color=colour, lw=3, solid_capstyle="butt")
        ax.plot(mid, y, "o", color=colour)


def _observed_marks(ax: Axes, o: Observation, *, ratio: bool) -> None:
    """The observed value (black line) and its 95% CI (grey; from its SE if the source
    gives no CI, except for a ratio, whose SE is on the log scale)."""
    ax.axvline(o.value, color="black", lw=1.5)
    if o.ci is not None:
        ax.axvspan(o.ci[0], o.ci[1], color="grey", alpha=0.25, lw=0)
    elif o.se is not None and not ratio:
        ax.axvspan(o.value - Z_95 * o.se, o.value + Z_95 * o.se, color="grey", alpha=0.25, lw=0)


def _pattern_marks(ax: Axes, p: Pattern) -> None:
    """A pattern's region (green) or threshold (black line, with the pattern named)."""
    if p.kind in ("positive", "negative"):
        ax.axvline(0, color="black", lw=1)
        _pattern_label(ax, p)
    elif p.interval is not None:
        ax.axvspan(*p.interval, color="green", alpha=0.15, lw=0)
    elif p.value is not None:
        ax.axvline(p.value, color="black", lw=1)
        _pattern_label(ax, p)


def _pattern_label(ax: Axes, p: Pattern) -> None:
    ax.text(
        0.99,
        0.1,
        f"pattern: {p.describe()}",
        transform=ax.transAxes,
        ha="right",
        fontsize=7,
    )


def parameters_figure(priors: PriorSet, posterior: Posterior) -> Figure:
    n = len(_numeric(priors))
    cols = min(3, n)
    rows = -(-n // cols)
    figure = _figure(4.2 * cols, 2.8 * rows + 0.6)
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    w = posterior.weights
    for ax, p in zip(axes, _numeric(priors), strict=False):
        values = posterior.samples[p.parameter].to_numpy(float)
        lo, hi = (float(v) for v in p.ppf(np.array([0.001, 0.999])))
        lo, hi = min(lo, values.min()), max(hi, values.max())
        grid = np.linspace(lo, hi, 300)
        ax.plot(grid, p.pdf(grid), color="grey", lw=1.5, label="prior")
        ax.hist(
            values,
            bins=30,
            range=(lo, hi),
            weights=w,
            density=True,
            color="C0",
            alpha=0.6,
            label="posterior",
        )
        for q in (PARAMETER_INTERVAL[0], 0.5, PARAMETER_INTERVAL[1]):
            ax.axvline(
                weighted_quantile(values, w, q),
                color="C0",
                lw=1 if q != 0.5 else 2,
                ls="--" if q != 0.5 else "-",
            )
        ax.set_title(p.parameter, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    for ax in axes[n:]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=2, frameon=False)
    figure.suptitle(
        "Prior (grey) and posterior (blue; median and 90% interval dashed) of each free parameter",
        fontsize=10,
    )
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    return figure


def pairs_figure(priors: PriorSet, posterior: Posterior) -> Figure:
    """Lower triangle: the posterior's particles (resampled by weight) for each pair
    of parameters; diagonal: each parameter's posterior histogram."""
    names = [p.parameter for p in _numeric(priors)]
    n = len(names)
    figure = _figure(1.9 * n + 0.8, 1.9 * n + 0.8)
    axes = figure.subplots(n, n, squeeze=False)
    rng = np.random.default_rng(_PAIRS_SEED)
    pick = rng.choice(posterior.n_particles, size=_PAIRS_POINTS, p=posterior.weights)
    data = posterior.samples[names].to_numpy(float)[pick]
    for i in range(n):
        for j in range(n):
            ax = axes[i, j]
            if j > i:
                ax.set_visible(False)
                continue
            if i == j:
                ax.hist(data[:, i], bins=25, color="C0", alpha=0.7)
                ax.set_yticks([])
            else:
                ax.scatter(data[:, j], data[:, i], s=3, alpha=0.25, color="C0", lw=0)
            ax.tick_params(labelsize=6)
            if i == n - 1:
                ax.set_xlabel(_short(names[j]), fontsize=7)
            else:
                ax.set_xticklabels([])
            if j == 0 and i > 0:
                ax.set_ylabel(_short(names[i]), fontsize=7)
            elif j > 0:
                ax.set_yticklabels([])
    figure.suptitle("Posterior, pairwise (particles resampled by weight)", fontsize=10)
    figure.tight_layout()
    return figure


def epsilon_figure(generations: pd.DataFrame, floor: float) -> Figure:
    figure = _figure(9.0, 3.4)
    left, right = figure.subplots(1, 2)
    g = generations["generation"] + 1
    left.plot(g, generations["epsilon"], "o-")
    left.axhline(floor, color="black", ls="--", lw=1, label=f"floor {floor:.3g}")
    left.set_xlabel("generation")
    left.set_ylabel("epsilon")
    left.legend(fontsize=8)
    right.plot(g, generations["acceptance_rate"], "o-", label="acceptance rate")
    right.plot(g, generations["ess"] / generations["particles"], "s--", label="ESS / particles")
    right.set_xlabel("generation")
    right.set_ylim(0, 1.05)
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    figure.suptitle("ABC-SMC run: epsilon, acceptance rate and effective sample size", fontsize=10)
    figure.tight_layout()
    return figure


def _figure(width_in: float, height_in: float) -> Figure:
    figure = Figure(figsize=(width_in, height_in))
    FigureCanvasAgg(figure)
    return figure


def _short(name: str) -> str:
    return name.split(".")[-1]


# --- the Markdown report --------------------------------------------------------------


def write_report(
    directory: Path,
    *,
    targets: TargetSet,
    priors: PriorSet,
    targets_table: pd.DataFrame,
    parameters_table: pd.DataFrame,
    generations: pd.DataFrame,
    info: Mapping[str, Any],
    configurations_table: pd.DataFrame | None = None,
) -> Path:
    """``report.md`` in ``directory``; ``info`` holds the run's facts (command, dates,
    settings, stop reason, scales, output names)."""
    configurations = configurations_table if configurations_table is not None else pd.DataFrame()
    lines = [
        *_run_facts(info, targets, priors),
        _in_short(targets_table, parameters_table),
        "",
        *_targets_section(targets, targets_table),
        *_parameters_section(priors, parameters_table),
        *_configurations_section(configurations),
        *_run_section(generations, info),
        *_method_section(info),
    ]
    path = directory / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _run_facts(info: Mapping[str, Any], targets: TargetSet, priors: PriorSet) -> list[str]:
    """The report's title and the run's facts: command, dates, settings, stop reason."""
    lines: list[str] = []
    add = lines.append
    add(f"# Calibration report: {info['scenario_name']}")
    add("")
    add(
        f"ABC-SMC (pyabc {info.get('pyabc_version', '?')}) of {len(priors.priors)} free "
        f"parameters against {len(targets.fitted)} fitted targets "
        f"({len(targets.targets) - len(targets.fitted)} more checked, not fitted), "
        f"base scenario `{info['scenario_path']}`."
    )
    add("")
    add(f"- Command: `{' '.join(info['command'])}`")
    add(
        f"- Run: {info['started_utc']} to {info['finished_utc']} ({info['duration']}), "
        f"{info['executor']}"
    )
    add(f"- Git: {info['git']}")
    s = info["settings"]
    add(
        f"- Settings: {s['population']} particles a generation, at most {s['generations']} "
        f"generations ({s.get('refine', 0)} more at the epsilon floor once reached), "
        f"{s['replicates']} replicates a particle, seed {s['seed']}; "
        f"{info['simulations']} parameter sets simulated "
        f"({info['simulations'] * s['replicates']} trials)"
    )
    add(f"- Stop: {info['stop_reason']}")
    add(
        f"- Report simulations: {info['predictive_replicates']} trials with parameters drawn from "
        f"the posterior, and as many of the calibrated scenario (`{info['calibrated_scenario']}`)"
    )
    add("")
    return lines


def _targets_section(targets: TargetSet, targets_table: pd.DataFrame) -> list[str]:
    """``## Targets``: observed vs simulated per target, the figure, the sources."""
    lines: list[str] = []
    add = lines.append
    n_met = int(targets_table["posterior_met"].sum())
    fitted = targets_table[targets_table["role"] == "fitted"]
    add("## Targets")
    add("")
    add(
        f"{int(fitted['posterior_met'].sum())} of {len(fitted)} fitted targets met "
        f"({n_met} of {len(targets_table)} in all). Simulated: median and 95% interval over "
        "the report's simulated trials. A quantitative target is met when its observed value "
        "lies inside the simulated 95% interval; a pattern when at least half of the simulated "
        "trials show it."
    )
    add("")
    add(
        "| target | grade | weight | statistic | observed | simulated (posterior) | met "
        "| simulated (calibrated scenario) | met |"
    )
    add("|---|---|---|---|---|---|---|---|---|")
    for r in targets_table.itertuples(index=False):
        unit = statistic_unit(targets[r.target].statistic)
        add(
            f"| {r.target} | {r.grade} | {r.weight:g} | {r.statistic}"
            f"{f' ({unit})' if unit else ''} | {r.observed} | "
            f"{r.posterior_simulated} | {_yes(r.posterior_met)} | {r.median_simulated} | "
            f"{_yes(r.median_met)} |"
        )
    add("")
    add("![targets](figures/targets.png)")
    add("")
    add("Sources and notes:")
    add("")
    for t in targets.targets:
        note = f" {t.note}" if t.note else ""
        add(f"- **{t.name}** [{t.grade}]: {t.source}.{note}")
    add("")
    return lines


def _parameters_section(priors: PriorSet, parameters_table: pd.DataFrame) -> list[str]:
    """``## Parameters``: prior vs posterior per parameter, the figures, why each prior."""
    lines: list[str] = []
    add = lines.append
    add("## Parameters")
    add("")
    add(
        "Prior and posterior: median and 90% interval. *Narrowed to*: the posterior's 90% "
        f"interval as a share of the prior's; below {INFORMED_WIDTH:.0%} the targets informed "
        "the parameter, near 100% they said little about it and its uncertainty is carried "
        "into posterior-ensemble runs as the prior gave it."
    )
    add("")
    add(
        "| parameter | scenario value | prior | prior 90% | posterior median | posterior 90% "
        "| narrowed to |"
    )
    add("|---|---|---|---|---|---|---|")
    for r in parameters_table.itertuples(index=False):
        add(
            f"| `{r.parameter}` | {_num(r.scenario_value)} | {r.prior} | "
            f"{_num(r.prior_lo)} - {_num(r.prior_hi)} | {_num(r.posterior_median)} | "
            f"{_num(r.posterior_lo)} - {_num(r.posterior_hi)} | {r.width_ratio:.0%} |"
        )
    add("")
    add("![prior vs posterior](figures/parameters.png)")
    add("")
    add("![pairwise posterior](figures/pairs.png)")
    add("")
    add("Why each prior:")
    add("")
    for p in priors.priors:
        add(f"- `{p.parameter}`: {p.reason}")
    add("")
    return lines


def _configurations_section(table: pd.DataFrame) -> list[str]:
    """``## Site configuration``: prior and posterior probability of each assumption
    about which sites are not-for-profit hosted and rural (nothing if not free)."""
    if table.empty:
        return []
    lines = [
        "## Site configuration",
        "",
        "Which trial sites were not-for-profit hosted and which rural is not published, so "
        "the configuration is a free input with equal prior weight on each option; the "
        "posterior says how well each fits the targets together with the other parameters "
        "(a probability near the prior's: the targets cannot tell it apart). Posterior-"
        "ensemble runs draw it with the other parameters.",
        "",
        "| configuration | assumes | selected before | prior | posterior |",
        "|---|---|---|---|---|",
    ]
    for r in table.itertuples(index=False):
        lines.append(
            f"| `{r.configuration}` | {r.description} | {'yes' if r.selected else ''} | "
            f"{r.prior:.0%} | {r.posterior:.0%} |"
        )
    return [*lines, ""]


def _run_section(generations: pd.DataFrame, info: Mapping[str, Any]) -> list[str]:
    """``## The run``: one row per generation, the epsilon figure, the targets' scales."""
    lines: list[str] = []
    add = lines.append
    add("## The run")
    add("")
    add("| generation | epsilon | accepted | simulated | acceptance rate | ESS | time |")
    add("|---|---|---|---|---|---|---|")
    for g in generations.itertuples(index=False):
        add(
            f"| {g.generation + 1} | {g.epsilon:.3g} | {g.particles} | {g.simulations} | "
            f"{g.acceptance_rate:.0%} | {g.ess:.0f} | {g.wall_time_s:.0f} s |"
        )
    add("")
    add("![epsilon](figures/epsilon.png)")
    add("")
    scales = info.get("scales") or {}
    if scales:
        add(
            "Sampling error each quantitative target was measured in (last generation; on the "
            "log scale for odds ratios): "
            + ", ".join(f"{k} {_num(v)}" for k, v in scales.items())
            + "."
        )
        add("")
    return lines


def _method_section(info: Mapping[str, Any]) -> list[str]:
    """``## Method`` and the list of output files."""
    lines: list[str] = []
    add = lines.append
    add("## Method")
    add("")
    add(METHOD_TEXT.format(floor=info["epsilon_floor"], met=PATTERN_MET_SHARE))
    add("")
    add("Files: " + ", ".join(f"`{name}`" for name in info["outputs"]) + ".")
    return lines


METHOD_TEXT = """\
Each particle (a parameter set) is simulated as R trials side by side; each trial's
target statistics are computed the way the papers computed them (the engagement odds
ratios by logistic regression on the simulated participants who met their peer
worker). The distance of a particle is `sqrt(sum_i w_i z_i^2 / sum_i w_i)` over the
fitted quantitative targets; a sourced pattern is a constraint: a particle whose
trials show a pattern in fewer than {met:.0%} of them is rejected, whatever its fit
to the other targets. `z_i` is the difference between the particle's mean (of the
log, for odds ratios) and the observed value, in sampling errors: the reported SE
where the source gives one (from its CI or n), otherwise the model's own spread
between simulated trials, refitted every generation (an adaptive distance, as
pyabc's `AdaptivePNormDistance`, with sampling errors as scales). Epsilon follows
the median of the last generation's distances but never goes below {floor:.3g}, the
95% quantile of the quantitative part at the true parameters; the run stops there.
The posterior is then the prior restricted to parameter sets whose simulated trials
agree with every target within sampling error, neither a single tuned point nor a
set made overconfident by treating one observed trial as exact.

Reproducibility: a particle's simulated statistics depend only on its parameter
values and the seed; the report's simulations and the calibrated scenario depend
only on the posterior file and the seed. pyabc's own proposals draw from NumPy's
global generator, reseeded from the operating system, so a repeated calibration
gives a different but statistically equivalent posterior sample.
"""


def _in_short(targets_table: pd.DataFrame, parameters_table: pd.DataFrame) -> str:
    """One paragraph: which targets are met, which parameters the targets informed."""
    fitted = targets_table[targets_table["role"] == "fitted"]
    missed = fitted.loc[~fitted["posterior_met"].astype(bool), "target"].tolist()
    met = (
        f"all {len(fitted)} fitted targets are met"
        if not missed
        else f"{len(fitted) - len(missed)} of {len(fitted)} fitted targets are met "
        f"(not: {', '.join(missed)})"
    )
    ratio = parameters_table.set_index("parameter")["width_ratio"]
    informed = [f"`{p}` to {r:.0%}" for p, r in ratio.items() if r < INFORMED_WIDTH]
    rest = [f"`{p}`" for p, r in ratio.items() if not r < INFORMED_WIDTH]
    text = f"**In short**: {met}. "
    if informed:
        text += "The targets narrow the 90% interval of " + ", ".join(informed) + " of the prior's"
    else:
        text += f"The targets narrow no parameter's 90% interval below {INFORMED_WIDTH:.0%}"
        text += " of the prior's"
    if rest:
        verb = "stays" if len(rest) == 1 else "stay"
        text += (
            f"; {', '.join(rest)} {verb} close to the prior: the sourced targets do not pin "
            f"{'it' if len(rest) == 1 else 'them'} down, and posterior-ensemble runs carry "
            "that uncertainty"
        )
    return text + "."


def _yes(value: bool) -> str:
    return "yes" if value else "**no**"


def _num(value: float) -> str:
    if value is None or not math.isfinite(float(value)):
        return "n/a"
    value = float(value)
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 0.01:
        return f"{value:.3g}"
    return f"{value:.2g}"
