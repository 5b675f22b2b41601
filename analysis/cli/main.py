"""The ``peersim`` command line.

User mistakes (a bad scenario file, bad numbers, an output folder that is not
empty) end with one ``peersim: error: ...`` line on stderr and exit status 2,
before anything is written. Ctrl-C ends with status 130 and leaves no half-written
results: ``peersim run`` keeps its finished replicates in ``DIR.partial`` for
``--resume DIR`` and says so.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from simulation.outputs import is_free
from simulation.rng import DEFAULT_SEED

if TYPE_CHECKING:  # kept out of the import so that --help answers at once
    import pandas as pd

    from calibration.posterior import Posterior
    from simulation import Scenario
    from simulation.executors import Backend, ExecutorSpec

PROG = "peersim"
# Subcommands defined in their own modules: each has register(commands), which adds
# its parser with set_defaults(handler=fn); fn(args, command_line) returns the exit code.
COMMAND_MODULES: tuple[str, ...] = (
    "analysis.cli.app",
    "analysis.cli.calibrate",
    "analysis.cli.compare",
    "analysis.cli.scenarios",
    "analysis.cli.sensitivity",
)
DEFAULT_REPLICATES = 10
DEFAULT_RESULTS_DIR = Path("results")
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# `peersim run` keeps an unfinished run's record and replicates in DIR.partial/.
_RUN_RECORD = "run.json"
_RUN_RECORD_FORMAT = "peersim-run/1"
_MAX_FAILURES_LISTED = 10
POSTERIOR_HELP = (
    "posterior-ensemble mode: each replicate draws its parameters from the calibration "
    "posterior in DIR (e.g. docs/calibration, written by 'peersim calibrate'), "
    "propagating calibration uncertainty into the results"
)

DESCRIPTION = """\
peersim simulates how peer support is delivered in a mental health trial like
ENRICH (peer workers supporting people discharged from psychiatric wards) and
what it does to readmission. A scenario file describes the sites, the peer
workers and the mechanisms; each replicate simulates the whole trial once with
its own random seed, and the spread across replicates shows what such a trial
could have found.
"""

RUN_DESCRIPTION = """\
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

RUN_EPILOG = f"""\
examples:
  {PROG} run                                 the ENRICH trial, {DEFAULT_REPLICATES} replicates
  {PROG} run --replicates 1000 --workers 4   more replicates on 4 processes
  {PROG} run my_site.toml --out results/my_site --seed 7
  {PROG} run -n 100000 --scheduler tcp://10.0.0.5:8786   on a Dask cluster
  {PROG} run --resume results/my_site       continue an interrupted run
"""


class UsageError(Exception):
    """A mistake on the command line or in its inputs: exit status 2, no traceback."""


class _Parser(argparse.ArgumentParser):
    # argparse would print the usage block and exit; we want one line and control of exit.
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``peersim`` console script; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        handler: Callable[[argparse.Namespace, list[str]], int] = args.handler
        return handler(args, [PROG, *args_list])
    except SystemExit as e:  # --help and --version end through here
        return e.code if isinstance(e.code, int) else EXIT_OK
    except UsageError as e:
        _error(str(e))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _error("interrupted; no results were written")
        return EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=f"{RUN_EPILOG}\nSee '{PROG} run --help' for the options of a run.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="run replicates of a scenario and write tables, figures and a manifest",
        description=RUN_DESCRIPTION,
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.set_defaults(handler=_run)
    run.add_argument(
        "scenario",
        nargs="?",
        type=Path,
        metavar="SCENARIO",
        help="scenario TOML file (default: the built-in ENRICH trial scenario)",
    )
    run.add_argument(
        "-n",
        "--replicates",
        type=_positive_int,
        metavar="N",
        help=f"number of replicates (default: {DEFAULT_REPLICATES})",
    )
    run.add_argument(
        "-s",
        "--seed",
        type=_non_negative_int,
        metavar="S",
        help=f"master seed, a whole number >= 0 (default: {DEFAULT_SEED})",
    )
    run.add_argument(
        "-w",
        "--workers",
        type=_positive_int,
        metavar="W",
        help="worker processes (1: this process); results are identical for any W "
        f"(default: all cores, {os.cpu_count() or 1} here)",
    )
    run.add_argument(
        "--scheduler",
        type=_scheduler,
        metavar="ADDR",
        help="run on Dask: 'local' starts a cluster of W processes on this machine, "
        "tcp://HOST:PORT uses a running cluster (its workers need peersim installed)",
    )
    run.add_argument(
        "-o",
        "--out",
        type=Path,
        metavar="DIR",
        help="output folder; must not exist or be empty "
        f"(default: a new {DEFAULT_RESULTS_DIR}/<scenario name>-<UTC time>)",
    )
    run.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="continue the interrupted run whose output folder is DIR (its finished "
        "replicates are in DIR.partial), with the scenario, seed and replicates it was "
        "started with",
    )
    run.add_argument(
        "--posterior",
        type=Path,
        metavar="DIR",
        help=POSTERIOR_HELP,
    )
    run.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="show a progress bar with rate and ETA (default: on a terminal)",
    )
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(commands)
    return parser


def _run(args: argparse.Namespace, command: list[str]) -> int:
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
            f"{plan.scenario.name!r} (seed {plan.seed}, {_describe(backend)})"
        ),
        execute=lambda backend: _run_plan(plan, backend, args.progress, command),
        partial=plan.partial,
        resume_hint=f"{PROG} run --resume {plan.out}",
        unit="replicates",
    )


def drive_sweep(
    spec: ExecutorSpec,
    *,
    announce: Callable[[Backend], str],
    execute: Callable[[Backend], int],
    partial: Path,
    resume_hint: str,
    unit: str = "runs",
) -> int:
    """Open the executor, say what will run, run it; the shared ending of every
    command that sweeps (run, compare, sensitivity).

    A bad or unreachable scheduler and a sweep folder that does not fit are user
    mistakes (exit 2). Ctrl-C stops the workers at once (leaving the ``with``
    block does), then says where the finished work is and how to resume (130).
    """
    from simulation.executors import ExecutorError, open_executor
    from simulation.runner import SweepError, SweepInterrupted

    try:
        with open_executor(spec) as backend:
            print(f"{PROG}: {announce(backend)}", file=sys.stderr)
            return execute(backend)
    except ExecutorError as e:
        raise UsageError(f"--scheduler {spec.scheduler}: {e}") from None
    except SweepError as e:
        raise UsageError(str(e)) from None
    except SweepInterrupted as e:
        _error(
            f"interrupted; {e.n_done} of {e.n_jobs} {unit} are saved in {partial}; "
            f"continue with: {resume_hint}"
        )
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        if not partial.exists():
            raise
        _error(
            f"interrupted; the finished {unit} are saved in {partial}; continue with: {resume_hint}"
        )
        return EXIT_INTERRUPTED


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


def load_checked_posterior(directory: Path, scenario: Scenario) -> Posterior:
    """The posterior in ``directory``, checked against ``scenario``; ``UsageError`` if not
    usable."""
    from pydantic import ValidationError

    from calibration.posterior import PosteriorError, load_posterior

    try:
        posterior = load_posterior(directory)
        posterior.median_scenario(scenario)
    except (PosteriorError, KeyError, ValidationError) as e:
        first_line = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(f"--posterior {directory}: {first_line}") from None
    return posterior


def _new_plan(args: argparse.Namespace, command: list[str]) -> _Plan:
    from scenarios import ScenarioError, default_scenario_path, load_scenario
    from simulation.outputs import git_state

    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as e:
        raise UsageError(str(e)) from None
    posterior = None
    if args.posterior is not None:
        load_checked_posterior(args.posterior, scenario)
        posterior = args.posterior.resolve()
    scenario_path = (args.scenario or default_scenario_path()).resolve()
    out = args.out if args.out is not None else _default_out(scenario.name)
    _check_out(out)
    partial = _partial(out)
    if partial.exists():
        raise UsageError(
            f"--out {out}: {partial} holds an interrupted run; continue it with "
            f"'{PROG} run --resume {out}' or delete it"
        )
    seed = DEFAULT_SEED if args.seed is None else args.seed
    n = DEFAULT_REPLICATES if args.replicates is None else args.replicates
    record = {
        "format": _RUN_RECORD_FORMAT,
        "scenario_path": str(scenario_path),
        "master_seed": seed,
        "replicates": n,
        "started_utc": datetime.now(UTC).isoformat(),
        "command": command,
        "git": git_state(),
        "resumed": [],
        "scenario": scenario.model_dump(mode="json"),
        "posterior": str(posterior) if posterior is not None else None,
    }
    return _Plan(
        scenario, scenario_path, seed, n, out, partial, record, resumed=False, posterior=posterior
    )


def _resume_plan(args: argparse.Namespace) -> _Plan:
    from pydantic import ValidationError

    from simulation import Scenario

    out: Path = args.resume
    given = [
        name
        for name, value in [
            ("SCENARIO", args.scenario),
            ("--replicates", args.replicates),
            ("--seed", args.seed),
            ("--out", args.out),
            ("--posterior", args.posterior),
        ]
        if value is not None
    ]
    if given:
        raise UsageError(
            f"--resume {out} continues the run as it was started; leave out {', '.join(given)}"
        )
    partial = _partial(out)
    record_path = partial / _RUN_RECORD
    if not record_path.is_file():
        if out.is_dir() and (out / "manifest.json").is_file():
            raise UsageError(f"--resume {out}: that run is already complete")
        raise UsageError(f"--resume {out}: no interrupted run there ({record_path} not found)")
    if not is_free(out):
        raise UsageError(f"--resume {out}: folder exists and is not empty")
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if record.get("format") != _RUN_RECORD_FORMAT:
            raise ValueError(f"unknown format {record.get('format')!r}")
        scenario = Scenario.model_validate(record["scenario"])
        seed, n = int(record["master_seed"]), int(record["replicates"])
    except (OSError, ValueError, KeyError, TypeError, ValidationError) as e:
        first_line = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(f"--resume {out}: cannot read {record_path}: {first_line}") from None
    path = record.get("scenario_path")
    posterior = Path(record["posterior"]) if record.get("posterior") else None
    if posterior is not None:
        load_checked_posterior(posterior, scenario)
    return _Plan(
        scenario,
        Path(path) if path else None,
        seed,
        n,
        out,
        partial,
        record,
        resumed=True,
        posterior=posterior,
    )


def _run_plan(plan: _Plan, backend: Backend, progress: bool | None, command: list[str]) -> int:
    from analysis.figures import make_figures, save_figures
    from analysis.summary import format_summary
    from simulation.outputs import (
        OutputExistsError,
        atomic_directory,
        build_manifest,
        write_manifest,
        write_tables,
    )
    from simulation.runner import ReplicateSet, replicate_jobs, run_jobs

    if plan.resumed:
        plan.record["resumed"].append(
            {"utc": datetime.now(UTC).isoformat(timespec="seconds"), "command": command}
        )
    plan.partial.mkdir(parents=True, exist_ok=True)
    _write_record(plan.partial / _RUN_RECORD, plan.record)
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
        _report_failures(plan, sweep.failures)
        return EXIT_FAILURE
    replicates = ReplicateSet.from_sweep(plan.scenario, plan.seed, sweep)
    try:
        with atomic_directory(plan.out) as tmp:
            write_tables(tmp, replicates.tables())
            save_figures(make_figures(replicates), tmp / "figures")
            manifest = build_manifest(
                plan.scenario,
                plan.scenario_path,
                master_seed=plan.seed,
                n_replicates=plan.n,
                workers=backend.slots,
                started=datetime.fromisoformat(plan.record["started_utc"]),
                finished=datetime.now(UTC),
                command=plan.record["command"],
            )
            manifest["executor"] = {"kind": backend.kind, "description": backend.description}
            manifest["resumed"] = plan.record["resumed"]
            manifest["posterior"] = str(plan.posterior) if plan.posterior is not None else None
            if plan.resumed:
                manifest["git_at_start"] = plan.record.get("git")
            write_manifest(tmp, manifest)
    except OutputExistsError as e:  # appeared while we were running
        raise UsageError(str(e)) from None
    except OSError as e:
        _error(f"cannot write results to {plan.out}: {e}")
        return EXIT_FAILURE
    shutil.rmtree(plan.partial, ignore_errors=True)
    print(format_summary(replicates))
    print(f"\nResults written to {plan.out}")
    return EXIT_OK


def _report_failures(plan: _Plan, failures: pd.DataFrame) -> None:
    _error(
        f"{len(failures)} of {plan.n} replicates failed "
        f"(details in {plan.partial / 'sweep' / 'failures.parquet'}):"
    )
    for row in failures.head(_MAX_FAILURES_LISTED).itertuples(index=False):
        message = (str(row.error_message).splitlines() or [""])[0]
        print(
            f"  replicate {row.replicate} (seed {row.seed}): {row.error_type}: {message}",
            file=sys.stderr,
        )
    if len(failures) > _MAX_FAILURES_LISTED:
        print(f"  ... and {len(failures) - _MAX_FAILURES_LISTED} more", file=sys.stderr)
    print(
        f"{PROG}: the other replicates are saved in {plan.partial}; once the cause is fixed, "
        f"run the failed ones with: {PROG} run --resume {plan.out}",
        file=sys.stderr,
    )


def _describe(backend: Backend) -> str:
    if backend.kind == "in-process":
        return "1 worker"
    if backend.kind == "process-pool":
        return f"{backend.slots} workers"
    return backend.description


def _partial(out: Path) -> Path:
    """Where a run into ``out`` keeps its finished replicates until it completes."""
    path = Path(os.path.normpath(out))
    if path.name in ("", ".", ".."):
        path = Path(os.path.abspath(path))
    return path.with_name(f"{path.name}.partial")


def _write_record(path: Path, record: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _default_out(scenario_name: str) -> Path:
    safe_name = re.sub(r"[^A-Za-z0-9._-]+", "_", scenario_name).strip("._") or "scenario"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = DEFAULT_RESULTS_DIR / f"{safe_name}-{stamp}"
    suffix = 1
    # Two runs in the same second: never reuse a folder (or its interrupted run).
    while not is_free(out) or _partial(out).exists():
        suffix += 1
        out = DEFAULT_RESULTS_DIR / f"{safe_name}-{stamp}-{suffix}"
    return out


def _check_out(out: Path) -> None:
    """Fail before running, not after, if the results could not be written."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file, not a folder")
    if not is_free(out):
        raise UsageError(
            f"--out {out}: folder exists and is not empty; results are never overwritten"
        )
    existing = next(p for p in [out, *out.absolute().parents] if p.exists())
    if not existing.is_dir():
        raise UsageError(f"--out {out}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: no permission to write in {existing}")


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return value


def _scheduler(text: str) -> str:
    from simulation.executors import check_scheduler

    try:
        return check_scheduler(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
