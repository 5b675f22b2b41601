"""``peersim run``: replicates of one scenario, with tables, figures and a manifest."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.cli import common
from analysis.cli.common import EXIT_OK, PROG, Command, Resumable, UsageError, Workspace
from simulation.rng import DEFAULT_SEED

if TYPE_CHECKING:  # kept out of the import so that --help answers at once
    from simulation import Scenario
    from simulation.executors import Backend

DEFAULT_REPLICATES = 10
RESUMABLE = Resumable("run", "run", "running", "run.json", "peersim-run/1", unit="replicates")

HELP = "run replicates of a scenario and write tables, figures and a manifest"
DESCRIPTION = """\
Run replicates of one scenario and write, into a new output folder:
  manifest.json          how the run was made (versions, git commit, scenario, seeds)
  site_weeks.parquet     one row per replicate, site and week
  participants.parquet   one row per replicate and participant
  trial.parquet          one row per replicate: the trial's statistics (a service
                         scenario's: the service's over its horizon)
  site_years.parquet     service scenarios: one row per replicate, site and year
  figures/*.png          delivery over time, readmission by arm, fidelity domains
                         (a service: per service year, readmissions avoided)
and print a summary (a service's per service year). Replicate i uses seed
(SEED, i), so results do not depend on --workers or --scheduler. The folder
appears only when complete; until then finished replicates are saved in
DIR.partial beside it, so a run stopped by Ctrl-C, a crash or kill -9 continues
with --resume DIR. A replicate that raises is recorded and the others go on; the
run then exits 1 naming the failures.
"""

EPILOG = f"""\
examples:
  {PROG} run                                 the ENRICH trial, {DEFAULT_REPLICATES} replicates
  {PROG} run --replicates 1000 --workers 4   more replicates on 4 processes
  {PROG} run my_site.toml --out results/my_site --seed 7
  {PROG} run -n 10000 --scheduler tcp://10.0.0.5:8786    on a Dask cluster
  {PROG} run --resume results/my_site       continue an interrupted run
  {PROG} run scenarios/service_example.toml -n 20   a standing service over years
"""


COMMAND = Command("run", HELP, DESCRIPTION, EPILOG, positionals=(("scenario", "SCENARIO"),))


def register(commands: Any) -> None:
    """Add the ``run`` subcommand to ``peersim``'s subparsers."""
    out = "results/<scenario name>-<UTC time>"
    parser = COMMAND.add(commands, run_command, common.sweep_options(RESUMABLE, out, posterior=""))
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
        type=common.positive_int,
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
    ws: Workspace
    posterior: Path | None = None

    def describe(self) -> tuple[str, str]:
        return f"{self.n} replicates of {self.scenario.name!r}", f"seed {self.seed}"

    def n_jobs(self) -> int:
        return self.n

    def gathered_bytes_per_job(self) -> int:
        """What a replicate costs this process once the tables are written: its row of
        the trial table and its end-of-delivery rows, which the summary and the figures
        keep (``analysis.aggregates``; the tables themselves are streamed from the
        shards to the files, and the bands of the figures take a fixed budget)."""
        from analysis.aggregates import END_COLUMNS, end_of_delivery
        from simulation import run

        results = run(self.scenario, 0)
        end = end_of_delivery(results.site_weeks.assign(replicate=0))
        kept = (results.trial_frame, end[["site", "week", *END_COLUMNS]], results.site_years)
        return sum(int(t.memory_usage(deep=True).sum()) for t in kept)

    def execute(self, backend: Backend, progress: bool | None, command: list[str]) -> int:
        return _run_plan(self, backend, progress, command)


def run_command(args: argparse.Namespace, command: list[str]) -> int:
    """The ``run`` subcommand; returns the exit status."""
    return RESUMABLE.run(args, command, _new_plan, _resume_plan)


def _new_plan(args: argparse.Namespace, command: list[str]) -> _Plan:
    from scenarios import ScenarioError, default_scenario_path, load_scenario

    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as e:
        raise UsageError(str(e)) from None
    posterior = None
    if args.posterior is not None:
        common.load_checked_posterior(args.posterior, scenario)
        posterior = args.posterior.resolve()
    scenario_path = (args.scenario or default_scenario_path()).resolve()
    seed = DEFAULT_SEED if args.seed is None else args.seed
    n = DEFAULT_REPLICATES if args.replicates is None else args.replicates
    ws = RESUMABLE.start(
        args.out,
        scenario.name,
        command,
        scenario_path=str(scenario_path),
        master_seed=seed,
        replicates=n,
        scenario=scenario.model_dump(mode="json"),
        posterior=str(posterior) if posterior is not None else None,
    )
    return _Plan(scenario, scenario_path, seed, n, ws, posterior)


def _resume_plan(args: argparse.Namespace) -> _Plan:
    ws = RESUMABLE.reopen(args)
    path = ws.record.get("scenario_path")
    with RESUMABLE.reading(ws):
        scenario = common.restore_scenario(ws.record["scenario"], path)
        seed, n = int(ws.record["master_seed"]), int(ws.record["replicates"])
    posterior = Path(ws.record["posterior"]) if ws.record.get("posterior") else None
    if posterior is not None:
        common.load_checked_posterior(posterior, scenario)
    return _Plan(scenario, Path(path) if path else None, seed, n, ws, posterior)


def _run_plan(plan: _Plan, backend: Backend, progress: bool | None, command: list[str]) -> int:
    from analysis.aggregates import RunAggregates
    from analysis.figures import make_figures, save_figures
    from analysis.summary import format_summary
    from simulation.outputs import write_manifest, write_tables
    from simulation.runner import BUILT_IN_TABLES, SERVICE_TABLES, replicate_jobs, run_jobs

    RESUMABLE.save(plan.ws, command)
    if plan.posterior is not None:
        from calibration.posterior import load_posterior

        jobs = load_posterior(plan.posterior).jobs(plan.scenario, plan.seed, plan.n)
    else:
        jobs = replicate_jobs(plan.scenario, plan.seed, plan.n)
    desc = plan.scenario.name  # the progress bar's label
    service = plan.scenario.mode == "service"
    sweep = run_jobs(
        jobs,
        plan.ws.sweep_dir,
        tables=SERVICE_TABLES if service else BUILT_IN_TABLES,
        executor=backend,
        progress=progress,
        resume=True,
        desc=desc,
    )
    if not sweep.complete:
        return RESUMABLE.report_failures(
            plan.ws,
            sweep.failures,
            plan.n,
            "replicates",
            lambda row: f"replicate {row.replicate} (seed {row.seed})",
        )
    summary: list[str] = []

    def write(folder: Path) -> None:
        # Streamed: the tables go from the shards to the files a piece at a time, and
        # the figures and the summary are drawn from aggregates read back from those
        # files (analysis.aggregates), so the memory this takes does not grow with
        # the number of replicates beyond a fraction of a KB a replicate.
        write_tables(folder, {name: sweep.iter_table(name) for name in sweep.table_names})
        if service:  # per service year, from the (small) site-year table
            import pandas as pd

            from analysis.service import format_service_summary, service_figures

            trial = pd.read_parquet(folder / "trial.parquet")
            years = pd.read_parquet(folder / "site_years.parquet")
            save_figures(service_figures(plan.scenario, years, plan.n), folder / "figures")
            summary.append(format_service_summary(plan.scenario, plan.seed, trial, years))
        else:
            run = RunAggregates.from_files(
                plan.scenario,
                plan.seed,
                folder / "site_weeks.parquet",
                folder / "trial.parquet",
            )
            save_figures(make_figures(run), folder / "figures")
            summary.append(format_summary(run))
        manifest = common.sweep_manifest(
            plan.scenario, plan.scenario_path, plan.ws, backend, seed=plan.seed, replicates=plan.n
        )
        manifest["posterior"] = str(plan.posterior) if plan.posterior is not None else None
        write_manifest(folder, manifest)

    status = RESUMABLE.write_output(plan.ws, write)
    if status == EXIT_OK:
        print(summary[0])
        print(f"\nResults written to {plan.ws.out}")
    return status
