"""The ``peersim`` command line: the top-level parser and the dispatch to commands.

User mistakes (a bad scenario file, bad numbers, an output folder that is not
empty) end with one ``peersim: error: ...`` line on stderr and exit status 2,
before anything is written. Ctrl-C ends with status 130 and leaves no half-written
results: a command that sweeps keeps its finished work in ``DIR.partial`` for
``--resume DIR`` and says so (``analysis.cli.common``). SIGTERM and SIGHUP are
handled the same way, with status 143 and 129 (128 + the signal's number).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from analysis.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    Parser,
    UsageError,
    error,
    interrupted,
)
from simulation.executors import stop_signals_interrupt

# Each command is a module with register(commands), which adds its parser with
# set_defaults(handler=fn); fn(args, command_line) returns the exit status.
COMMAND_MODULES: tuple[str, ...] = (
    "analysis.cli.run",
    "analysis.cli.app",
    "analysis.cli.calibrate",
    "analysis.cli.compare",
    "analysis.cli.decide",
    "analysis.cli.levers",
    "analysis.cli.scenarios",
    "analysis.cli.sensitivity",
)

DESCRIPTION = """\
peersim simulates how peer support is delivered in a mental health trial like
ENRICH (peer workers supporting people discharged from psychiatric wards) and
what it does to readmission. A scenario file describes the sites, the peer
workers and the mechanisms; each replicate simulates the whole trial once with
its own random seed, and the spread across replicates shows what such a trial
could have found.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``peersim`` console script; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    with stop_signals_interrupt():  # SIGTERM, SIGHUP: as Ctrl-C
        return _main(args_list)


def _main(args_list: list[str]) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(args_list)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        handler: Callable[[argparse.Namespace, list[str]], int] = args.handler
        return handler(args, [PROG, *args_list])
    except SystemExit as e:  # --help and --version end through here
        return e.code if isinstance(e.code, int) else EXIT_OK
    except UsageError as e:
        error(str(e))
        return EXIT_USAGE
    except KeyboardInterrupt as stop:
        reason, status = interrupted(stop)
        error(f"{reason}; no results were written")
        return status


def build_parser() -> argparse.ArgumentParser:
    from analysis.cli.run import EPILOG

    parser = Parser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=f"{EPILOG}\nSee '{PROG} run --help' for the options of a run.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(commands)
    return parser
