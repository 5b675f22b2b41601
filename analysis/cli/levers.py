"""``peersim levers``: does every what-if move the outcome it claims, beyond noise?

Each what-if runs against the file it ``extends`` with common random numbers
(``analysis.levers``), through the experiment runner; the output folder is written
like ``peersim compare``'s: all at once when complete, never over existing
results, ``--resume DIR`` after an interruption.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.cli import common
from analysis.cli.common import EXIT_OK, PROG, Command, Resumable, UsageError, Workspace
from simulation.rng import DEFAULT_SEED

if TYPE_CHECKING:  # kept out of the import so that --help answers at once
    from analysis.levers import Lever
    from simulation.executors import Backend

DEFAULT_REPLICATES = 20
MIN_REPLICATES = 2  # an interval needs at least two paired differences
RESUMABLE = Resumable("levers", "lever audit", "auditing", "levers.json", "peersim-levers/1")

DESCRIPTION = f"""\
Audit the levers: for every what-if (default: every scenarios/whatif_*.toml in
the library), does its lever move the outcome it claims, in the direction it
claims, beyond replicate noise?

Each what-if file ends with a [claim] table saying what its policy question
expects:
  [claim]
  outcome = "engaged_share"          # an outcome of the registry (simulation/outcomes.py)
  direction = "higher"               # or "lower"
  sites = "sites[geography=rural]"   # optional: a site selector or an array of them,
                                     #   chosen in the baseline; omitted: the whole trial
  mechanism = "M5: remote meetings save travel -> ..."
The claim belongs to its own file (not inherited through 'extends').

Each what-if and the file it extends (its baseline; one shared baseline runs
once) run the same N replicates: replicate i of both uses seed (SEED, i), and
inside a replicate every random decision has its own stream per site, so the
what-if meets the same participants and chance events as its baseline wherever
the lever does not reach (common random numbers). Per what-if the audit gives
the claimed outcome in the baseline and the what-if, the mean paired difference
with its 95% confidence interval (Student's t over the replicates), and a
verdict:
  as claimed     the interval excludes 0 on the claimed side
  within noise   the interval includes 0
  opposite       the interval excludes 0 on the other side
  no change      identical in every replicate (the lever reaches nothing)
A claim about sites is judged on the unweighted mean over those sites. More
replicates narrow the intervals; a lever 'within noise' at -n 20 may move at
-n 200, but then its effect is small next to the spread of one trial.

It prints the table and writes a new folder:
  levers.csv        one row per what-if: whatif, baseline, outcome, label, unit,
                    scope, sites, direction, base_mean, whatif_mean, diff_mean,
                    diff_lo, diff_hi, diff_sd, n, moves, verdict, mechanism
  levers.md         the same as a Markdown table, ready for the docs
  values.parquet    every registry outcome per scenario, replicate and scope
                    (overall and each site), for reanalysis
  manifest.json     as for '{PROG} run', with every scenario's path and hash
The folder appears only when complete; an audit stopped by Ctrl-C or a crash
continues with --resume DIR. docs/levers.md is the same audit at the docs'
settings, regenerated with 'uv run python -m analysis.levers --out docs/levers.md'.
"""

EPILOG = f"""\
examples:
  {PROG} levers                                  every what-if in the library, 20 replicates
  {PROG} levers -n 100 -w 2 --out results/levers more replicates, two worker processes
  {PROG} levers scenarios/whatif_turnover.toml   one what-if
  {PROG} levers --resume results/levers          continue an interrupted audit
"""

HELP = "check that every what-if moves the outcome it claims, beyond replicate noise"

COMMAND = Command(
    "levers",
    HELP,
    DESCRIPTION,
    EPILOG,
    positionals=(("whatifs", "WHATIF"),),
    usage=f"{PROG} levers [options] [WHATIF ...]",
)


def register(commands: Any) -> None:
    """Add the ``levers`` subcommand to ``peersim``'s subparsers."""
    options = common.sweep_options(
        RESUMABLE, "results/levers-<UTC time>", resume=" (the same what-ifs, seed and replicates)"
    )
    parser = COMMAND.add(commands, levers, options)
    parser.add_argument(
        "whatifs",
        nargs="*",
        type=Path,
        metavar="WHATIF",
        help="what-if files with a [claim], each audited against the file it extends "
        "(default: every whatif_*.toml of the library)",
    )
    parser.add_argument(
        "-n",
        "--replicates",
        type=common.positive_int,
        metavar="N",
        help=f"paired replicates per scenario, at least {MIN_REPLICATES} (default: "
        f"{DEFAULT_REPLICATES}); more replicates, narrower intervals",
    )


@dataclass
class _Plan:
    """What an audit is to do, from the command line or an interrupted one's record."""

    levers: list[Lever]
    seed: int
    n: int
    ws: Workspace

    def describe(self) -> tuple[str, str]:
        return (
            f"{len(self.levers)} what-if(s) against their baselines, {self.n} paired "
            "replicates each",
            f"seed {self.seed}",
        )

    def n_jobs(self) -> int:
        from analysis.levers import scenarios_to_run

        return self.n * len(scenarios_to_run(self.levers))

    def execute(self, backend: Backend, progress: bool | None, command: list[str]) -> int:
        return _run_plan(self, backend, progress, command)


def levers(args: argparse.Namespace, command: list[str]) -> int:
    """The ``levers`` subcommand; returns the exit status."""
    return RESUMABLE.run(args, command, _new_plan, _resume_plan)


def _new_plan(args: argparse.Namespace, command: list[str]) -> _Plan:
    from analysis.levers import LeverError, lever_record, load_levers, scenarios_to_run
    from scenarios import ScenarioError

    n = DEFAULT_REPLICATES if args.replicates is None else args.replicates
    if n < MIN_REPLICATES:
        raise UsageError(
            f"argument -n/--replicates: must be at least {MIN_REPLICATES} for a paired "
            f"interval, got {n}"
        )
    common.refuse_repeated_files(args.whatifs)
    try:
        chosen = load_levers(args.whatifs or None)
        scenarios_to_run(chosen)
    except (ScenarioError, LeverError) as e:
        raise UsageError(str(e)) from None
    seed = DEFAULT_SEED if args.seed is None else args.seed
    ws = RESUMABLE.start(
        args.out,
        "levers",
        command,
        levers=[lever_record(lever) for lever in chosen],
        master_seed=seed,
        replicates=n,
    )
    return _Plan(chosen, seed, n, ws)


def _resume_plan(args: argparse.Namespace) -> _Plan:
    from analysis.levers import lever_from_record

    ws = RESUMABLE.reopen(args)
    with RESUMABLE.reading(ws):
        chosen = [lever_from_record(record) for record in ws.record["levers"]]
        seed, n = int(ws.record["master_seed"]), int(ws.record["replicates"])
    return _Plan(chosen, seed, n, ws)


def _run_plan(plan: _Plan, backend: Backend, progress: bool | None, command: list[str]) -> int:
    from analysis.levers import audit_table, format_table, markdown_table, run_audit_sweep

    ws = plan.ws
    RESUMABLE.save(ws, command)
    sweep = run_audit_sweep(
        plan.levers,
        ws.sweep_dir,
        seed=plan.seed,
        n_replicates=plan.n,
        executor=backend,
        progress=progress,
        resume=True,
    )
    if not sweep.complete:
        return RESUMABLE.report_failures(
            ws,
            sweep.failures,
            sweep.n_ok + sweep.n_failed,
            "runs",
            lambda row: f"{row.scenario} replicate {row.replicate} (seed {row.seed})",
        )
    values = sweep.table("outcomes")
    table = audit_table(plan.levers, values)

    def write(folder: Path) -> None:
        from simulation.outputs import write_manifest

        table.to_csv(folder / "levers.csv", index=False)
        (folder / "levers.md").write_text(markdown_table(table) + "\n", encoding="utf-8")
        values.to_parquet(folder / "values.parquet", index=False)
        write_manifest(folder, _manifest(plan, backend))

    status = RESUMABLE.write_output(ws, write)
    if status == EXIT_OK:
        print(format_table(table, plan.n, plan.seed))
        print(f"\nResults written to {ws.out}")
    return status


def _manifest(plan: _Plan, backend: Backend) -> dict[str, Any]:
    from simulation.outputs import scenario_sha256

    first = plan.levers[0]
    manifest = common.sweep_manifest(
        first.baseline,
        first.baseline_path,
        plan.ws,
        backend,
        seed=plan.seed,
        replicates=plan.n,
        versions=("scipy",),  # the t quantiles
    )
    manifest["levers"] = {
        "pairing": "common random numbers: replicate i of every scenario runs with "
        "numpy.random.SeedSequence(master_seed, spawn_key=(i,))",
        "interval": "95% confidence interval of the mean paired difference (Student's t)",
        "moves": "the interval excludes 0 on the claimed side",
        "whatifs": [
            {
                "whatif": lever.name,
                "path": str(lever.path),
                "sha256": scenario_sha256(lever.whatif),
                "baseline": lever.baseline_name,
                "baseline_path": str(lever.baseline_path),
                "baseline_sha256": scenario_sha256(lever.baseline),
                "claim": lever.claim.model_dump(mode="json"),
                "sites": list(lever.sites),
            }
            for lever in plan.levers
        ],
    }
    return manifest
