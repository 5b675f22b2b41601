"""The ``peersim`` command line.

User mistakes (a bad scenario file, bad numbers, an output folder that is not
empty) end with one ``peersim: error: ...`` line on stderr and exit status 2,
before anything is written. Ctrl-C ends with status 130 and leaves nothing behind.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from analysis.io import is_free

PROG = "peersim"
# Subcommands defined in their own modules: each has register(commands), which adds
# its parser with set_defaults(handler=fn); fn(args, command_line) returns the exit code.
COMMAND_MODULES: tuple[str, ...] = ()
DEFAULT_REPLICATES = 10
DEFAULT_SEED = 20241
DEFAULT_RESULTS_DIR = Path("results")
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

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
on --workers. The folder appears only when complete.
"""

RUN_EPILOG = f"""\
examples:
  {PROG} run                                 the ENRICH trial, {DEFAULT_REPLICATES} replicates
  {PROG} run --replicates 100 --workers 4    more replicates on 4 processes
  {PROG} run my_site.toml --out results/my_site --seed 7
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
        default=DEFAULT_REPLICATES,
        metavar="N",
        help=f"number of replicates (default: {DEFAULT_REPLICATES})",
    )
    run.add_argument(
        "-s",
        "--seed",
        type=_non_negative_int,
        default=DEFAULT_SEED,
        metavar="S",
        help=f"master seed, a whole number >= 0 (default: {DEFAULT_SEED})",
    )
    run.add_argument(
        "-w",
        "--workers",
        type=_positive_int,
        default=1,
        metavar="W",
        help="worker processes; results are identical for any W (default: 1)",
    )
    run.add_argument(
        "-o",
        "--out",
        type=Path,
        metavar="DIR",
        help="output folder; must not exist or be empty "
        f"(default: a new {DEFAULT_RESULTS_DIR}/<scenario name>-<UTC time>)",
    )
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(commands)
    return parser


def _run(args: argparse.Namespace, command: list[str]) -> int:
    # Imported here, not at the top, so that --help answers at once and Ctrl-C during
    # the (slow) imports is already inside main's handler.
    from analysis.figures import make_figures, save_figures
    from analysis.io import (
        OutputExistsError,
        atomic_directory,
        build_manifest,
        write_manifest,
        write_tables,
    )
    from analysis.runner import run_replicates
    from analysis.summary import format_summary
    from scenarios import ScenarioError, default_scenario_path, load_scenario

    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as e:
        raise UsageError(str(e)) from None
    scenario_path = (args.scenario or default_scenario_path()).resolve()
    out = args.out if args.out is not None else _default_out(scenario.name)
    _check_out(out)
    workers = "worker" if args.workers == 1 else "workers"
    print(
        f"{PROG}: running {args.replicates} replicates of {scenario.name!r} "
        f"(seed {args.seed}, {args.workers} {workers})",
        file=sys.stderr,
    )
    started = datetime.now(UTC)
    replicates = run_replicates(scenario, args.seed, args.replicates, workers=args.workers)
    try:
        with atomic_directory(out) as tmp:
            write_tables(tmp, replicates.tables())
            save_figures(make_figures(replicates), tmp / "figures")
            manifest = build_manifest(
                scenario,
                scenario_path,
                master_seed=args.seed,
                n_replicates=args.replicates,
                workers=args.workers,
                started=started,
                finished=datetime.now(UTC),
                command=command,
            )
            write_manifest(tmp, manifest)
    except OutputExistsError as e:  # appeared while we were running
        raise UsageError(str(e)) from None
    except OSError as e:
        _error(f"cannot write results to {out}: {e}")
        return EXIT_FAILURE
    print(format_summary(replicates))
    print(f"\nResults written to {out}")
    return EXIT_OK


def _default_out(scenario_name: str) -> Path:
    safe_name = re.sub(r"[^A-Za-z0-9._-]+", "_", scenario_name).strip("._") or "scenario"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = DEFAULT_RESULTS_DIR / f"{safe_name}-{stamp}"
    suffix = 1
    while not is_free(out):  # two runs in the same second: never reuse a folder
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


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
