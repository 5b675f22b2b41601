"""``peersim run``: replicates of one scenario, with tables, figures and a manifest."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.cli.common import (
    DEFAULT_RESULTS_DIR,
    EXIT_OK,
    PROG,
    Resumable,
    UsageError,
    describe_backend,
    drive_sweep,
    executor_options,
    load_checked_posterior,
    output_options,
    positive_int,
    posterior_option,
    progress_option,
    seed_option,
    sweep_manifest,
)
from simulation.rng import DEFAULT_SEED

if TYPE_CHECKING:  # kept out of the import so that --help answers at once
    from simulation import Scenario
    from simulation.executors import Backend

DEFAULT_REPLICATES = 10
RESUMABLE = Resumable("run", "run", "run.json", "peersim-run/1")

DESCRIPTION = """\
Run replicates of one scenario and write, into a new output folder:
  manifest.json          how the run was made (versions, git commit, scenario, seeds)
  site_weeks.parquet     one row per replicate, site and week
  participants.parquet   one row per replicate and participant
  trial.parquet          one row per replicate: the trial's statistics
  figures/*.png          delivery over time, readmission by arm, fidelity domains
and print a summary. Replicate i uses seed (SEED, i), so results do not depend
on --workers or --scheduler. The folder appears only when complete; until then
finished replicates are saved in DIR.partial beside it, so a run stopped by
Ctrl-C, a crash or kill -9 continues with --resume DIR. A replicate that raises
is recorded and the others go on; the run then exits 1 naming the failures.
"""

EPILOG = f"""\
examples:
  {PROG} run                                 the ENRICH trial, {DEFAULT_REPLICATES} replicates
  {PROG} run --replicates 1000 --workers 4   more replicates on 4 processes
  {PROG} run my_site.toml --out results/my_site --seed 7
  {PROG} run -n 100000 --scheduler tcp://10.0.0.5:8786   on a Dask cluster
  {PROG} run --resume results/my_site       continue an interrupted run
"""


def register(commands: Any) -> None:
    """Add the ``run`` subcommand to ``peersim``'s subparsers."""
    parser = commands.add_parser(
        "run",
        help="run replicates of a scenario and write tables, figures and a manifest",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[
            seed_option(),
            executor_options(),
            output_options(RESUMABLE, f"{DEFAULT_RESULTS_DIR}/<scenario name>-<UTC time>"),
            posterior_option(),
            progress_option(),
        ],
    )
    parser.set_defaults(handler=run_command)
    parser.add_argument(
        "scenario",
        nargs="?",
        type=Path,
        metavar="SCENARIO",
        help="scenario TOML file (default: the built-in ENRICH trial scenario)",
    )
    parser.add_argument(
        "-n",
        "--replicates",
        type=positive_int,
        metavar="N",
        help=f"number of replicates (default: {DEFAULT_REPLICATES})",
    )


@dataclass
class _Plan:
    """What a run is to do, from the command line or from an interrupted run's record."""

    scenario: Scenario
    scenario_path: Path | None
    seed: int
    n: int
    out: Path
    partial: Path
    record: dict[str, Any]
    resumed: bool
    posterior: Path | None = None


def run_command(args: argparse.Namespace, command: list[str]) -> int:
    """The ``run`` subcommand; returns the exit status."""
    # Imported here, not at the top, so that --help answers at once and Ctrl-C during
    # the (slow) imports is already inside main's handler.
    from simulation.executors import ExecutorSpec
    from simulation.runner import auto_spec

    plan = _resume_plan(args) if args.resume is not None else _new_plan(args, command)
    spec = auto_spec(ExecutorSpec(workers=args.workers, scheduler=args.scheduler), plan.n)
    return drive_sweep(
        spec,
        announce=lambda backend: (
            f"{'resuming' if plan.resumed else 'running'} {plan.n} replicates of "
            f"{plan.scenario.name!r} (seed {plan.seed}, {describe_backend(backend)})"
        ),
        execute=lambda backend: _run_plan(plan, backend, args.progress, command),
        resumable=RESUMABLE,
        out=plan.out,
        unit="replicates",
    )


def _new_plan(args: argparse.Namespace, command: list[str]) -> _Plan:
    from scenarios import ScenarioError, default_scenario_path, load_scenario

    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as e:
        raise UsageError(str(e)) from None
    posterior = None
    if args.posterior is not None:
        load_checked_posterior(args.posterior, scenario)
        posterior = args.posterior.resolve()
    scenario_path = (args.scenario or default_scenario_path()).resolve()
    out, partial = RESUMABLE.new_output(args.out, scenario.name)
    seed = DEFAULT_SEED if args.seed is None else args.seed
    n = DEFAULT_REPLICATES if args.replicates is None else args.replicates
    record = RESUMABLE.new_record(
        command,
        scenario_path=str(scenario_path),
        master_seed=seed,
        replicates=n,
        scenario=scenario.model_dump(mode="json"),
        posterior=str(posterior) if posterior is not None else None,
    )
    return _Plan(scenario, scenario_path, seed, n, out, partial, record, False, posterior)


def _resume_plan(args: argparse.Namespace) -> _Plan:
    from simulation import Scenario

    out: Path = args.resume
    partial, record = RESUMABLE.open_record(
        out,
        [
            ("SCENARIO", args.scenario),
            ("--replicates", args.replicates),
            ("--seed", args.seed),
            ("--out", args.out),
            ("--posterior", args.posterior),
        ],
    )
    with RESUMABLE.reading(out, partial / RESUMABLE.record_name):
        scenario = Scenario.model_validate(record["scenario"])
        seed, n = int(record["master_seed"]), int(record["replicates"])
    path = record.get("scenario_path")
    posterior = Path(record["posterior"]) if record.get("posterior") else None
    if posterior is not None:
        load_checked_posterior(posterior, scenario)
    return _Plan(
        scenario, Path(path) if path else None, seed, n, out, partial, record, True, posterior
    )


def _run_plan(plan: _Plan, backend: Backend, progress: bool | None, command: list[str]) -> int:
    from analysis.figures import make_figures, save_figures
    from analysis.summary import format_summary
    from simulation.outputs import write_manifest, write_tables
    from simulation.runner import ReplicateSet, replicate_jobs, run_jobs

    RESUMABLE.save_record(plan.partial, plan.record, command, resumed=plan.resumed)
    if plan.posterior is not None:
        from calibration.posterior import load_posterior

        jobs = load_posterior(plan.posterior).jobs(plan.scenario, plan.seed, plan.n)
    else:
        jobs = replicate_jobs(plan.scenario, plan.seed, plan.n)
    sweep = run_jobs(
        jobs,
        plan.partial / "sweep",
        executor=backend,
        progress=progress,
        resume=True,  # the folder is this run's own: continue whatever it holds
        desc=plan.scenario.name,
    )
    if not sweep.complete:
        return RESUMABLE.report_failures(
            plan.out,
            plan.partial,
            sweep.failures,
            plan.n,
            "replicates",
            lambda row: f"replicate {row.replicate} (seed {row.seed})",
        )
    replicates = ReplicateSet.from_sweep(plan.scenario, plan.seed, sweep)

    def write(folder: Path) -> None:
        write_tables(folder, replicates.tables())
        save_figures(make_figures(replicates), folder / "figures")
        manifest = sweep_manifest(
            plan.scenario,
            plan.scenario_path,
            plan.record,
            backend,
            master_seed=plan.seed,
            n_replicates=plan.n,
        )
        manifest["posterior"] = str(plan.posterior) if plan.posterior is not None else None
        write_manifest(folder, manifest)

    status = RESUMABLE.write_output(plan.out, plan.partial, write)
    if status == EXIT_OK:
        print(format_summary(replicates))
        print(f"\nResults written to {plan.out}")
    return status
