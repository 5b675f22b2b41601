"""``peersim calibrate``: fit the model's free parameters to the trial's published
summaries by ABC-SMC, and write the posterior, a calibrated scenario and a fit report.

The work goes on in ``DIR.partial/`` (pyabc's database, copies of the inputs, the
report's simulations); the output folder ``DIR`` appears only when complete. A
run stopped by Ctrl-C, a crash or ``kill -9`` continues from its last complete
generation with ``--resume DIR``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.cli import common
from analysis.cli.common import EXIT_OK, PROG, Command, Resumable, UsageError, Workspace
from calibration.settings import (
    DEFAULT_GENERATIONS,
    DEFAULT_POPULATION,
    DEFAULT_REFINE,
    DEFAULT_REPLICATES,
    DEFAULT_REPORT_REPLICATES,
    DEFAULT_SEED,
)

if TYPE_CHECKING:  # kept out of the import so that --help answers at once
    from calibration.inference import AbcResult
    from calibration.priors import PriorSet
    from calibration.settings import Settings
    from calibration.targets import TargetSet
    from simulation import Scenario
    from simulation.executors import Backend

# The sweeps inside a generation are not what the user counts: no "N of M saved".
RESUMABLE = Resumable(
    "calibrate",
    "calibration",
    "calibrating",
    "calibration.json",
    "peersim-calibration-run/1",
    unit="generations",
    count_done=False,
)
_MANIFEST_FORMAT = "peersim-calibration/1"
_TARGETS_COPY = "targets.toml"
_PRIORS_COPY = "priors.toml"

HELP = "fit the free parameters to the trial's published summaries (ABC-SMC)"
DESCRIPTION = f"""\
Calibrate the model's free parameters (the [M] assumptions) against what the trial
and the seed study report, by ABC-SMC (pyabc). TARGETS lists the sourced targets
(default: the shipped ENRICH targets, calibration/targets/enrich.toml); --priors
the free parameters and their priors (default: calibration/priors/enrich.toml).

Each particle (a parameter set) is simulated as R trials side by side and compared
with every target in sampling errors; patterns (a direction, an interval) add a
penalty when the simulated trials do not show them. Epsilon stops at the 95%
sampling-error threshold, so the posterior keeps the uncertainty the targets leave.
One progress line per generation (epsilon, acceptance rate, time left).

Writes, into a new output folder:
  posterior.parquet      the last generation's particles: parameters, weight, distance
  scenario.toml          the calibrated scenario (posterior medians), for '{PROG} run'
  report.md, figures/    the fit report: targets observed vs simulated, prior vs
                         posterior, pairwise posterior, the run
  generations.parquet    epsilon, acceptance rate and ESS per generation
  predictive_*.parquet   the report's simulated trials, one row each
  manifest.json          command line, versions, git commit, inputs, settings
The folder is also a posterior for posterior-ensemble runs
(calibration.posterior.load_posterior).
"""

EPILOG = f"""\
examples:
  {PROG} calibrate                              the ENRICH targets and priors
  {PROG} calibrate --out results/calib --workers 2
  {PROG} calibrate my_targets.toml --priors my_priors.toml --scenario my_site.toml
  {PROG} calibrate --population 1000 --generations 12 --scheduler tcp://10.0.0.5:8786
  {PROG} calibrate --resume results/calib       continue an interrupted calibration
  {PROG} calibrate --list-statistics            what a target can compare
"""


COMMAND = Command("calibrate", HELP, DESCRIPTION, EPILOG, positionals=(("targets", "TARGETS"),))


def register(commands: Any) -> None:
    """Add the ``calibrate`` subcommand to ``peersim``'s subparsers."""
    options = [
        common.seed_option(),
        common.executor_options(),
        common.output_options(
            RESUMABLE, "results/calibration-<UTC time>", " (--workers and --scheduler may differ)"
        ),
    ]
    parser = COMMAND.add(commands, calibrate, options)
    parser.add_argument(
        "targets",
        nargs="?",
        type=Path,
        metavar="TARGETS",
        help="targets TOML file (default: the shipped ENRICH targets)",
    )
    parser.add_argument(
        "--priors",
        type=Path,
        metavar="FILE",
        help="priors TOML file (default: the shipped ENRICH priors)",
    )
    parser.add_argument(
        "--scenario",
        type=Path,
        metavar="FILE",
        help="base scenario whose free parameters are fitted (default: the ENRICH trial)",
    )
    parser.add_argument(
        "--population",
        type=common.positive_int,
        metavar="N",
        help=f"particles per generation (default: {DEFAULT_POPULATION})",
    )
    parser.add_argument(
        "--generations",
        type=common.positive_int,
        metavar="G",
        help=f"most generations; the run stops earlier once epsilon reaches its floor "
        f"(default: {DEFAULT_GENERATIONS})",
    )
    parser.add_argument(
        "--replicates",
        type=common.positive_int,
        metavar="R",
        help=f"simulated trials per particle, run side by side (default: {DEFAULT_REPLICATES})",
    )
    parser.add_argument(
        "--min-epsilon",
        type=common.non_negative_float,
        metavar="E",
        help="the epsilon floor: epsilon never goes below E and the run stops there, after "
        "--refine more generations (default: the 95%% sampling-error threshold of the "
        "fitted targets; smaller values give overconfident posteriors)",
    )
    parser.add_argument(
        "--refine",
        type=common.non_negative_int,
        metavar="K",
        help=f"generations to add at the epsilon floor once it is reached, each raising "
        f"the posterior sample's effective size (default: {DEFAULT_REFINE})",
    )
    parser.add_argument(
        "--report-replicates",
        type=common.positive_int,
        metavar="N",
        help=f"simulated trials for the fit report, of each kind "
        f"(default: {DEFAULT_REPORT_REPLICATES})",
    )
    parser.add_argument(
        "--calibrated-scenario",
        type=Path,
        metavar="FILE",
        help="also write the calibrated scenario to FILE (must not exist), e.g. "
        "scenarios/enrich_calibrated.toml",
    )
    parser.add_argument(
        "--keep-db",
        action="store_true",
        help="keep pyabc's database (abc.db) in the output folder",
    )
    parser.add_argument(
        "--list-statistics",
        action="store_true",
        help="list the statistics a target can compare, and exit",
    )


@dataclass
class _Plan:
    """A calibration to do: from the command line, or an interrupted run's record."""

    scenario: Scenario
    targets: TargetSet
    priors: PriorSet
    settings: Settings
    report_replicates: int
    calibrated_scenario: Path | None
    keep_db: bool
    ws: Workspace

    def describe(self) -> tuple[str, str]:
        s = self.settings
        return (
            f"{len(self.priors.priors)} parameters of {self.scenario.name!r} against "
            f"{len(self.targets.fitted)} targets",
            f"{s.population} particles, at most {s.generations} generations, "
            f"{s.replicates} trials each, seed {s.seed}",
        )

    def n_jobs(self) -> None:
        return None  # particles come a generation at a time: always the executor asked for

    def execute(self, backend: Backend, progress: bool | None, command: list[str]) -> int:
        return _execute(self, backend, command)


def calibrate(args: argparse.Namespace, command: list[str]) -> int:
    if args.list_statistics:
        from calibration.statistics import describe_statistics

        print(describe_statistics())
        return EXIT_OK
    return RESUMABLE.run(args, command, _new_plan, _resume_plan)


def _new_plan(args: argparse.Namespace, command: list[str]) -> _Plan:
    from calibration.files import CalibrationFileError
    from calibration.priors import default_priors_path, load_priors
    from calibration.settings import Settings
    from calibration.targets import default_targets_path, load_targets
    from scenarios import ScenarioError, default_scenario_path, load_scenario

    try:
        targets = load_targets(args.targets)
        priors = load_priors(args.priors)
        scenario = load_scenario(args.scenario)
    except (CalibrationFileError, ScenarioError) as e:
        raise UsageError(str(e)) from None
    targets, priors = _bind(targets, priors, scenario)
    if args.calibrated_scenario is not None and args.calibrated_scenario.exists():
        raise UsageError(
            f"--calibrated-scenario {args.calibrated_scenario}: file exists; "
            "results are never overwritten"
        )
    settings = Settings(
        population=args.population or DEFAULT_POPULATION,
        generations=args.generations or DEFAULT_GENERATIONS,
        replicates=args.replicates or DEFAULT_REPLICATES,
        seed=DEFAULT_SEED if args.seed is None else args.seed,
        min_epsilon=args.min_epsilon,
        refine=DEFAULT_REFINE if args.refine is None else args.refine,
    )
    scenario_path = (args.scenario or default_scenario_path()).resolve()
    report_replicates: int = args.report_replicates or DEFAULT_REPORT_REPLICATES
    ws = RESUMABLE.start(
        args.out,
        "calibration",
        command,
        settings=settings.as_dict(),
        report_replicates=report_replicates,
        targets_path=str((args.targets or default_targets_path()).resolve()),
        priors_path=str((args.priors or default_priors_path()).resolve()),
        scenario_path=str(scenario_path),
        scenario=scenario.model_dump(mode="json"),
        calibrated_scenario=str(args.calibrated_scenario) if args.calibrated_scenario else None,
        keep_db=bool(args.keep_db),
    )
    ws.partial.mkdir(parents=True)
    # Copies of the inputs: --resume reads these, so edits to the originals cannot leak in.
    shutil.copyfile(args.targets or default_targets_path(), ws.partial / _TARGETS_COPY)
    shutil.copyfile(args.priors or default_priors_path(), ws.partial / _PRIORS_COPY)
    RESUMABLE.save(ws, command)
    return _Plan(
        scenario,
        targets,
        priors,
        settings,
        report_replicates,
        args.calibrated_scenario,
        bool(args.keep_db),
        ws,
    )


def _resume_plan(args: argparse.Namespace) -> _Plan:
    from calibration.files import CalibrationFileError
    from calibration.priors import load_priors
    from calibration.settings import Settings
    from calibration.targets import load_targets

    ws = RESUMABLE.reopen(args)
    record, partial = ws.record, ws.partial
    with RESUMABLE.reading(ws, partial, CalibrationFileError):
        scenario = common.restore_scenario(record["scenario"], record.get("scenario_path"))
        settings = Settings(**record["settings"])
        targets = load_targets(partial / _TARGETS_COPY)
        priors = load_priors(partial / _PRIORS_COPY)
    targets, priors = _bind(targets, priors, scenario)
    calibrated = record.get("calibrated_scenario")
    return _Plan(
        scenario,
        targets,
        priors,
        settings,
        int(record["report_replicates"]),
        Path(calibrated) if calibrated else None,
        bool(record.get("keep_db")),
        ws,
    )


def _bind(targets: TargetSet, priors: PriorSet, scenario: Scenario) -> tuple[TargetSet, PriorSet]:
    """Targets and priors checked against the scenario, and the targets' statistics
    against one simulated trial (a misspelt ``trial:KEY`` fails now, not after an hour)."""
    from calibration.files import CalibrationFileError
    from simulation import run

    try:
        bound = targets.bind(scenario)
        priors.check_scenario(scenario)
        bound.check_keys(run(scenario, 0))
    except CalibrationFileError as e:
        raise UsageError(str(e)) from None
    return bound, priors


def _execute(plan: _Plan, backend: Backend, command: list[str]) -> int:
    from calibration.inference import DB_NAME, run_abc
    from calibration.problem import Problem

    if plan.ws.resumed:
        RESUMABLE.save(plan.ws, command)
    problem = Problem(
        plan.scenario, plan.targets, plan.priors, plan.settings.replicates, plan.settings.seed
    )
    result = run_abc(
        problem,
        plan.settings,
        plan.ws.partial / DB_NAME,
        backend,
        resume=plan.ws.resumed,
        report=lambda line: print(f"{PROG}: {line}", file=sys.stderr, flush=True),
    )
    print(f"{PROG}: {result.stop_reason}", file=sys.stderr)
    print(f"{PROG}: simulating trials for the fit report", file=sys.stderr, flush=True)
    return _finish(plan, problem, result, backend)


def _finish(plan: _Plan, problem: Any, result: AbcResult, backend: Backend) -> int:
    from calibration import report
    from calibration.inference import DB_NAME
    from calibration.posterior import Posterior
    from simulation.outputs import git_state, package_version, scenario_sha256, write_manifest

    posterior = Posterior(result.posterior, tuple(plan.priors.parameters))
    calibrated = posterior.median_scenario(plan.scenario).model_copy(
        update={"name": _calibrated_name(plan), "description": _calibrated_description(plan)}
    )
    pred = report.predictive(
        plan.targets,
        posterior,
        base=plan.scenario,
        calibrated=calibrated,
        backend=backend,
        work_dir=plan.ws.partial / "predictive",
        n_replicates=plan.report_replicates,
        seed=plan.settings.seed,
    )
    targets_table = report.target_table(plan.targets, pred)
    parameters_table = report.parameter_table(plan.priors, posterior, plan.scenario)
    configurations_table = report.configuration_table(plan.priors, posterior, plan.scenario)
    finished = datetime.now(UTC)
    started = datetime.fromisoformat(plan.ws.record["started_utc"])
    outputs = [
        "manifest.json",
        "report.md",
        "figures/",
        "posterior.parquet",
        "scenario.toml",
        "generations.parquet",
        "predictive_posterior.parquet",
        "predictive_calibrated.parquet",
        _TARGETS_COPY,
        _PRIORS_COPY,
        *([DB_NAME] if plan.keep_db else []),
    ]
    git = plan.ws.record.get("git") or git_state()
    info = {
        "scenario_name": plan.scenario.name,
        "scenario_path": _shown(plan.ws.record["scenario_path"]),
        "command": plan.ws.record["command"],
        "started_utc": plan.ws.record["started_utc"],
        "finished_utc": finished.isoformat(timespec="seconds"),
        "duration": _duration(finished - started, plan.ws.record["resumed"]),
        "executor": backend.description,
        "git": (
            f"{git['commit'] or 'no commit'}{' (uncommitted changes)' if git['dirty'] else ''}"
            if git
            else "not a git checkout"
        ),
        "settings": plan.settings.as_dict(),
        "simulations": int(result.generations["simulations"].sum()),
        "stop_reason": result.stop_reason,
        "epsilon_floor": result.epsilon_floor,
        "predictive_replicates": plan.report_replicates,
        "calibrated_scenario": str(plan.calibrated_scenario or "scenario.toml"),
        "scales": result.scales,
        "outputs": outputs,
        "pyabc_version": package_version("pyabc"),
    }
    toml_text = _calibrated_toml(plan, calibrated, posterior, info)

    def write(tmp: Path) -> None:
        posterior.save(tmp)
        result.generations.to_parquet(tmp / "generations.parquet", index=False)
        pred.posterior.to_parquet(tmp / "predictive_posterior.parquet", index=False)
        pred.median.to_parquet(tmp / "predictive_calibrated.parquet", index=False)
        (tmp / "scenario.toml").write_text(toml_text, encoding="utf-8")
        shutil.copyfile(plan.ws.partial / _TARGETS_COPY, tmp / _TARGETS_COPY)
        shutil.copyfile(plan.ws.partial / _PRIORS_COPY, tmp / _PRIORS_COPY)
        figures = report.make_figures(
            plan.targets,
            plan.priors,
            posterior,
            pred,
            generations=result.generations,
            floor=result.epsilon_floor,
        )
        report.save_figures(figures, tmp / "figures")
        report.write_report(
            tmp,
            targets=plan.targets,
            priors=plan.priors,
            targets_table=targets_table,
            parameters_table=parameters_table,
            generations=result.generations,
            info=info,
            configurations_table=configurations_table,
        )
        if plan.keep_db:
            shutil.copyfile(plan.ws.partial / DB_NAME, tmp / DB_NAME)
        manifest = common.sweep_manifest(
            plan.scenario,
            Path(plan.ws.record["scenario_path"]),
            plan.ws,
            backend,
            seed=plan.settings.seed,
            replicates=plan.settings.replicates,
            versions=("pyabc", "scipy"),
        )
        manifest = {
            "format": _MANIFEST_FORMAT,
            **manifest,
            "settings": plan.settings.as_dict(),
            "epsilon_floor": result.epsilon_floor,
            "stop_reason": result.stop_reason,
            "reached_floor": result.reached_floor,
            "simulations": info["simulations"],
            "report_replicates": plan.report_replicates,
            "targets": {"path": plan.ws.record["targets_path"], "entries": plan.targets.as_dicts()},
            "priors": {"path": plan.ws.record["priors_path"], "entries": plan.priors.as_dicts()},
            "parameters": list(posterior.parameters),
            "posterior_median": posterior.median_values(),
            "targets_met": {
                r.target: bool(r.posterior_met) for r in targets_table.itertuples(index=False)
            },
            "calibrated_scenario": {
                "written_to": str(plan.calibrated_scenario) if plan.calibrated_scenario else None,
                "name": calibrated.name,
                "sha256": scenario_sha256(calibrated),
            },
            "outputs": outputs,
            "reproducibility": (
                "Each particle's simulations are seeded from the master seed and its parameter "
                "values; the report's simulations and the calibrated scenario follow from "
                "posterior.parquet and the seed. pyabc's proposals draw from NumPy's global "
                "generator, reseeded from OS entropy, so a repeated calibration gives a "
                "different, statistically equivalent posterior sample."
            ),
        }
        write_manifest(tmp, manifest)

    status = RESUMABLE.write_output(plan.ws, write)
    if status != EXIT_OK:
        return status
    if plan.calibrated_scenario is not None:
        _write_new_file(plan.calibrated_scenario, toml_text)
    _print_summary(plan, result, targets_table, parameters_table)
    return EXIT_OK


def _calibrated_name(plan: _Plan) -> str:
    if plan.calibrated_scenario is not None:
        return plan.calibrated_scenario.stem
    return f"{plan.scenario.name}_calibrated"


def _calibrated_description(plan: _Plan) -> str:
    base = plan.scenario.description or plan.scenario.name
    return f"{base}; free parameters at their posterior medians ({PROG} calibrate)"


def _calibrated_toml(
    plan: _Plan, calibrated: Scenario, posterior: Any, info: dict[str, Any]
) -> str:
    from calibration.priors import SITE_CONFIGURATION
    from calibration.scenario_file import scenario_toml

    lo, hi = posterior.quantile(0.05), posterior.quantile(0.95)
    comments = {
        p: f"calibrated: posterior median, 90% interval [{lo[p]:.4g}, {hi[p]:.4g}]"
        for p in posterior.parameters
        if p != SITE_CONFIGURATION
    }
    if SITE_CONFIGURATION in posterior.parameters:
        shares = posterior.configuration_shares()
        offered = plan.scenario.site_configurations
        names = offered.names if offered is not None else ()
        most_probable = names[posterior.favoured_configuration()]
        how = (
            "calibrated: the most probable"
            if calibrated.site_configuration == most_probable
            else "kept: no option more probable beyond sampling error"
        )
        comments["site_configurations.selected"] = f"{how}; " + ", ".join(
            f"{names[k]} {share:.0%}" for k, share in shares.items()
        )
    header = [
        f"{calibrated.name}: {plan.scenario.name} with its free parameters calibrated against",
        "the trial's published summaries (posterior medians). Written by:",
        f"  {' '.join(plan.ws.record['command'])}",
        f"on {info['finished_utc']}; fit report, posterior and manifest in {plan.ws.out}.",
        f"Every other value is the base scenario's ({info['scenario_path']}): see its",
        "comments and docs/ODD.md for grades. Calibrated values are estimates under the model",
        "with the uncertainty the fit report gives (and the [M] assumptions it rests on), not",
        "facts; for runs that carry that uncertainty, draw each replicate's values from the",
        "posterior (calibration.posterior.load_posterior).",
    ]
    return scenario_toml(calibrated, header, comments)


def _shown(path: str) -> str:
    """``path`` relative to the working directory when it lies below it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _print_summary(
    plan: _Plan, result: AbcResult, targets_table: Any, parameters_table: Any
) -> None:
    fitted = targets_table[targets_table["role"] == "fitted"]
    print(f"Calibration of {plan.scenario.name!r}: {result.stop_reason}.")
    print(
        f"Targets met (posterior predictive): {int(fitted['posterior_met'].sum())} of "
        f"{len(fitted)} fitted, {int(targets_table['posterior_met'].sum())} of "
        f"{len(targets_table)} in all."
    )
    for r in targets_table.itertuples(index=False):
        mark = "met    " if r.posterior_met else "NOT met"
        print(f"  {mark} {r.target}: observed {r.observed}; simulated {r.posterior_simulated}")
    print("Posterior (median and 90% interval; narrowed to % of the prior's interval):")
    width = max(len(p) for p in parameters_table["parameter"])
    for r in parameters_table.itertuples(index=False):
        print(
            f"  {r.parameter.ljust(width)}  {r.posterior_median:.4g}  "
            f"[{r.posterior_lo:.4g}, {r.posterior_hi:.4g}]  {r.width_ratio:.0%}"
        )
    print(f"\nResults written to {plan.ws.out}")
    if plan.calibrated_scenario is not None:
        print(f"Calibrated scenario written to {plan.calibrated_scenario}")


def _write_new_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    if path.exists():
        tmp.unlink()
        raise UsageError(
            f"--calibrated-scenario {path}: appeared while calibrating; not overwritten"
        )
    os.replace(tmp, path)


def _duration(total: Any, resumed: list[Any]) -> str:
    minutes = total.total_seconds() / 60
    text = f"{minutes:.1f} min" if minutes < 120 else f"{minutes / 60:.1f} h"
    return text + (f", resumed {len(resumed)} time(s)" if resumed else "")
