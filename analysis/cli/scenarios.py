"""``peersim validate`` and ``peersim schema``: check scenario files, print their schema.

Neither command writes anything. ``validate`` exits 0 when every file is valid and
2 otherwise, after listing every problem of every file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from analysis.cli.common import Command, UsageError

VALIDATE_HELP = "check scenario files and list every problem, without running them"
VALIDATE_DESCRIPTION = """\
Check scenario files without running them: read each file, resolve what it
inherits ('extends', [sites.NAME], 'sites_remove', [[sites_where]]) and check
every key and value. For each file print either
  OK FILE (NAME: N sites, P participants)
or every problem found, one a line, as
  FILE: dotted.key: value VALUE: what is wrong, allowed: what the key accepts
where FILE is the file that set the value (a parent, for an inherited one) and a
misspelt key gets the closest valid names. Exit status 0 if every file is valid,
2 if any is not. Nothing is written.
"""

VALIDATE_EPILOG = """\
examples:
  peersim validate my_whatif.toml
  peersim validate scenarios/*.toml
  peersim validate --library             every scenario shipped with peersim
"""

SCHEMA_HELP = "print the JSON Schema of scenario files, for editors"
SCHEMA_DESCRIPTION = """\
Print the JSON Schema of scenario files, for editors that complete and check
TOML against a schema (e.g. the Even Better TOML extension, taplo). One schema
serves complete files and what-ifs: a file with 'extends' or [[sites_where]] may
give sites in part, a file with neither must give every site in full. It cannot
check a parent's contents or a few rules across keys (e.g. share_psychotic +
share_personality <= 1): 'peersim validate' checks everything.

With --resolved, print instead the schema of a loaded scenario, all inheritance
resolved and every site complete: the form 'peersim run' embeds in manifest.json.
"""

SCHEMA_EPILOG = """\
examples:
  peersim schema > scenario.schema.json
      then start a scenario file with the line
      #:schema ./scenario.schema.json
      (taplo and Even Better TOML read it), or map *.toml files to it in the editor
  peersim schema --resolved > resolved.schema.json
"""


VALIDATE = Command("validate", VALIDATE_HELP, VALIDATE_DESCRIPTION, VALIDATE_EPILOG)
SCHEMA = Command("schema", SCHEMA_HELP, SCHEMA_DESCRIPTION, SCHEMA_EPILOG)


def register(commands: Any) -> None:
    """Add the ``validate`` and ``schema`` subcommands to ``peersim``'s subparsers."""
    validate = VALIDATE.add(commands, validate_files)
    validate.add_argument(
        "files", nargs="*", type=Path, metavar="FILE", help="scenario TOML files to check"
    )
    validate.add_argument(
        "--library",
        action="store_true",
        help="also check every scenario file shipped with peersim (the ENRICH trial and "
        "the ready what-ifs)",
    )
    schema = SCHEMA.add(commands, print_schema)
    schema.add_argument(
        "--resolved",
        action="store_true",
        help="the schema of a loaded scenario (inheritance resolved), not of a file",
    )


def validate_files(args: argparse.Namespace, command_line: list[str]) -> int:
    from scenarios import ScenarioError, library, load_scenario

    paths: list[Path] = list(args.files)
    if args.library:
        paths += [_shown(p) for p in library().values()]
    if not paths:
        raise UsageError(
            "give at least one scenario FILE, or --library (see 'peersim validate --help')"
        )
    failed = 0
    for path in paths:
        try:
            scenario = load_scenario(path)
        except ScenarioError as e:
            failed += 1
            count = len(e.problems)
            print(f"FAIL {path}: {count} problem{'s' if count != 1 else ''}")
            for problem in e.problems:
                print(f"  {problem}")
        else:
            people = (
                f"service over {scenario.service.horizon_years} years, "
                f"{scenario.n_participants} referrals at the full rate"
                if scenario.mode == "service"
                else f"{scenario.n_participants} participants"
            )
            print(f"OK {path} ({scenario.name}: {len(scenario.sites)} sites, {people})")
    sys.stdout.flush()
    if failed:
        raise UsageError(
            f"{failed} of {len(paths)} scenario file{'s' if len(paths) != 1 else ''} "
            f"{'has' if failed == 1 else 'have'} problems"
        )
    return 0


def print_schema(args: argparse.Namespace, command_line: list[str]) -> int:
    from scenarios.schema import file_schema, resolved_schema

    schema = resolved_schema() if args.resolved else file_schema()
    try:
        print(json.dumps(schema, indent=2))
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into `head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _shown(path: Path) -> Path:
    """``path`` relative to the working folder when it lies inside it, for short lines."""
    relative = os.path.relpath(path)
    return Path(relative) if not relative.startswith("..") else path
