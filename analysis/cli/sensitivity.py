"""``peersim sensitivity``: which parameters drive the outputs (SALib, on the runner).

The analysis itself is ``analysis.sensitivity`` (spec, sampling, evaluation,
indices) and ``analysis.sensitivity_report`` (files, figures, report); this
module is the command line around them, with the same conventions as ``peersim
run``: user mistakes exit 2 with one message before anything is written, the
output folder appears only when complete, and an interrupted analysis keeps its
samples and finished runs in ``DIR.partial`` for ``--resume DIR``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.cli.main import (
    EXIT_FAILURE,
    EXIT_OK,
    PROG,
    UsageError,
    _check_out,
    _default_out,
    _describe,
    _error,
    _non_negative_int,
    _partial,
    _positive_int,
    _scheduler,
    drive_sweep,
)

if TYPE_CHECKING:
    import pandas as pd

    from analysis.sensitivity import Design
    from simulation.executors import Backend

_RECORD = "sensitivity.json"
_RECORD_FORMAT = "peersim-sensitivity/1"
_SAMPLES = "samples.parquet"
_MAX_FAILURES_LISTED = 10
# Command-line flags of the settings the command line can override.
_FLAGS = {"n": "--n", "replicates": "--replicates", "seed": "--seed"}

DESCRIPTION = """\
Global sensitivity analysis: which parameters of a scenario drive engagement,
fidelity and readmission. SPEC (TOML) names the base scenario, the parameters
with their ranges and the outputs; analysis/sensitivity_enrich.toml is a ready
one for the ENRICH trial (its comments explain the format, as does the README).

SALib samples the parameters (Morris trajectories or a Sobol'-Saltelli sample);
each parameter set runs R replicates, replicate r with seed (SEED, r) in every
set (common random numbers), and SALib analyses the replicate means. The report
gives, next to the indices, the share of each output's variance that replicate
noise explains, so that noise is not read as sensitivity; Sobol' indices are
also checked for convergence (N against N/2).

Writes, into a new output folder: manifest.json, report.md (top drivers per
output, noise, warnings), samples.parquet, outputs.parquet (one row per run),
outputs_mean.parquet, indices.csv and .parquet, noise.csv and figures/*.png.
The folder appears only when complete; until then the samples and finished
runs are saved in DIR.partial, so an interrupted analysis continues with
--resume DIR. Results do not depend on --workers or --scheduler.
"""

EPILOG = f"""\
examples:
  {PROG} sensitivity analysis/sensitivity_enrich.toml          Morris screening, as the spec says
  {PROG} sensitivity analysis/sensitivity_enrich.toml --workers 2 --out results/screen
  {PROG} sensitivity my_spec.toml --method sobol --n 1024 --replicates 10
  {PROG} sensitivity --resume results/screen                   continue an interrupted analysis
"""


def register(commands: Any) -> None:
    """Add the ``sensitivity`` subcommand to ``peersim``'s subparsers."""
    parser = commands.add_parser(
        "sensitivity",
        help="global sensitivity analysis of a scenario (Morris or Sobol', with SALib)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=run_sensitivity_command)
    parser.add_argument("spec", nargs="?", type=Path, metavar="SPEC", help="spec TOML file")
    parser.add_argument(
        "--method",
        choices=("morris", "sobol"),
        help="morris (screening: mu*, sigma) or sobol (S1, ST with intervals) "
        "(default: the spec's, else morris)",
    )
    parser.add_argument(
        "--n",
        type=_positive_int,
        metavar="N",
        help="Morris: trajectories; Sobol': base samples, a power of 2 "
        "(default: the spec's [morris] or [sobol] n, else 20 or 512)",
    )
    parser.add_argument(
        "--replicates",
        type=_positive_int,
        metavar="R",
        help="replicates per parameter set (default: the spec's, else 5)",
    )
    parser.add_argument(
        "-s",
        "--seed",
        type=_non_negative_int,
        metavar="S",
        help="master seed of the samples and the replicates (default: the spec's, else 20241)",
    )
    parser.add_argument(
        "-w",
        "--workers",
        type=_positive_int,
        metavar="W",
        help=f"worker processes (1: this process) (default: all cores, {os.cpu_count() or 1})",
    )
    parser.add_argument(
        "--scheduler",
        type=_scheduler,
        metavar="ADDR",
        help="run on Dask: 'local' or tcp://HOST:PORT (its workers need peersim installed)",
    )
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        metavar="DIR",
        help="output folder; must not exist or be empty "
        "(default: a new results/<spec name>-<method>-<UTC time>)",
    )
    parser.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="continue the interrupted analysis whose output folder is DIR (its samples "
        "and finished runs are in DIR.partial), as it was started",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="show a progress bar with rate and ETA (default: on a terminal)",
    )


@dataclass
class _Plan:
    design: Design
    out: Path
    partial: Path
    record: dict[str, Any]
    resumed: bool


def run_sensitivity_command(args: argparse.Namespace, command: list[str]) -> int:
    """The ``peersim sensitivity`` handler; returns the exit status."""
    from simulation.executors import ExecutorSpec
    from simulation.runner import auto_spec

    plan = _resume_plan(args) if args.resume is not None else _new_plan(args, command)
    design = plan.design
    s = design.settings
    spec = auto_spec(ExecutorSpec(workers=args.workers, scheduler=args.scheduler), design.n_runs)
    return drive_sweep(
        spec,
        announce=lambda backend: (
            f"{'resuming' if plan.resumed else 'running'} {s.method} sensitivity analysis "
            f"{design.spec.name!r}: {design.n_samples} parameter sets x {s.replicates} "
            f"replicates = {design.n_runs} runs (seed {s.seed}, {_describe(backend)})"
        ),
        execute=lambda backend: _execute(plan, backend, args.progress, command),
        partial=plan.partial,
        resume_hint=f"{PROG} sensitivity --resume {plan.out}",
    )


def _new_plan(args: argparse.Namespace, command: list[str]) -> _Plan:
    from analysis.sensitivity import SpecError, load_spec, make_design
    from simulation.outputs import git_state

    if args.spec is None:
        raise UsageError("give a SPEC file, or --resume DIR (see 'peersim sensitivity --help')")
    try:
        spec = load_spec(args.spec)
    except SpecError as e:
        raise UsageError(str(e)) from None
    method = args.method or spec.method
    settings = spec.method_settings[method]
    overrides = {"n": args.n, "replicates": args.replicates, "seed": args.seed}
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    problems = [
        f"{_FLAGS[key]} {text}" if overrides.get(key) is not None else f"{args.spec}: {key}: {text}"
        for key, text in settings.problems()
    ]
    if problems:
        raise UsageError("; ".join(problems))
    out = args.out if args.out is not None else _default_out(f"{spec.name}-{method}")
    _check_out(out)
    partial = _partial(out)
    if partial.exists():
        raise UsageError(
            f"--out {out}: {partial} holds an interrupted analysis; continue it with "
            f"'{PROG} sensitivity --resume {out}' or delete it"
        )
    try:
        design = make_design(spec, settings)
    except SpecError as e:
        raise UsageError(str(e)) from None
    record = {
        "format": _RECORD_FORMAT,
        "spec_path": str(args.spec.resolve()),
        "spec": _json_safe(spec.resolved_raw()),
        "origins": {p.path: p.origin for p in spec.parameters if p.origin},
        "scenario_path": str(spec.base_path) if spec.base_path is not None else None,
        "scenario": spec.base.model_dump(mode="json"),
        "settings": asdict(settings),
        "started_utc": datetime.now(UTC).isoformat(),
        "command": command,
        "git": git_state(),
        "resumed": [],
    }
    return _Plan(design, out, partial, record, resumed=False)


def _resume_plan(args: argparse.Namespace) -> _Plan:
    import pandas as pd
    from pydantic import ValidationError

    from analysis.sensitivity import Settings, SpecError, make_design, parse_spec
    from simulation import Scenario

    out: Path = args.resume
    given = [
        flag
        for flag, value in [
            ("SPEC", args.spec),
            ("--method", args.method),
            ("--n", args.n),
            ("--replicates", args.replicates),
            ("--seed", args.seed),
            ("--out", args.out),
        ]
        if value is not None
    ]
    if given:
        raise UsageError(
            f"--resume {out} continues the analysis as it was started; leave out {', '.join(given)}"
        )
    partial = _partial(out)
    record_path = partial / _RECORD
    if not record_path.is_file():
        if out.is_dir() and (out / "manifest.json").is_file():
            raise UsageError(f"--resume {out}: that analysis is already complete")
        raise UsageError(f"--resume {out}: no interrupted analysis there ({record_path} not found)")
    _check_out(out)
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if record.get("format") != _RECORD_FORMAT:
            raise ValueError(f"unknown format {record.get('format')!r}")
        base = Scenario.model_validate(record["scenario"])
        spec = parse_spec(record["spec"], Path(record["spec_path"]), base=base)
        if record.get("scenario_path"):
            spec = replace(spec, base_path=Path(record["scenario_path"]))
        origins = record.get("origins", {})
        parameters = tuple(replace(p, origin=origins.get(p.path, "")) for p in spec.parameters)
        spec = replace(spec, parameters=parameters)
        settings = Settings(**record["settings"])
        samples = pd.read_parquet(partial / _SAMPLES)
        if list(samples.columns) != ["sample", *spec.names]:
            raise ValueError(f"{_SAMPLES} does not hold the spec's parameters")
        design = make_design(spec, settings, samples[spec.names].to_numpy(dtype="float64"))
    except (OSError, ValueError, KeyError, TypeError, ValidationError, SpecError) as e:
        first_line = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(f"--resume {out}: cannot continue from {partial}: {first_line}") from None
    return _Plan(design, out, partial, record, resumed=True)


def _execute(plan: _Plan, backend: Backend, progress: bool | None, command: list[str]) -> int:
    from analysis.sensitivity import EvaluationError, analyze, evaluate
    from analysis.sensitivity_report import format_summary, write_results
    from simulation.outputs import OutputExistsError, atomic_directory, write_manifest

    design = plan.design
    if plan.resumed:
        plan.record["resumed"].append(
            {"utc": datetime.now(UTC).isoformat(timespec="seconds"), "command": command}
        )
    else:
        plan.partial.mkdir(parents=True, exist_ok=True)
        # The samples first: a resumed analysis reuses them rather than sampling again.
        design.samples_frame().to_parquet(plan.partial / _SAMPLES, index=False)
    _write_json(plan.partial / _RECORD, plan.record)
    try:
        runs = evaluate(
            design, plan.partial / "sweep", executor=backend, progress=progress, resume=True
        )
    except EvaluationError as e:
        _report_failures(plan, e.failures)
        return EXIT_FAILURE
    analysis = analyze(design, runs)
    try:
        with atomic_directory(plan.out) as tmp:
            write_results(tmp, design, runs, analysis)
            write_manifest(tmp, _manifest(plan, backend))
    except OutputExistsError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        _error(f"cannot write results to {plan.out}: {e}")
        return EXIT_FAILURE
    shutil.rmtree(plan.partial, ignore_errors=True)
    print(format_summary(design, analysis))
    print(f"\nResults written to {plan.out}")
    return EXIT_OK


def _manifest(plan: _Plan, backend: Backend) -> dict[str, Any]:
    from analysis.sensitivity import salib_seed
    from simulation.outputs import _version, build_manifest

    design, record = plan.design, plan.record
    spec, s = design.spec, design.settings
    manifest = build_manifest(
        spec.base,
        spec.base_path,
        master_seed=s.seed,
        n_replicates=s.replicates,
        workers=backend.slots,
        started=datetime.fromisoformat(record["started_utc"]),
        finished=datetime.now(UTC),
        command=record["command"],
    )
    canonical = json.dumps(record["spec"], sort_keys=True, separators=(",", ":"))
    manifest["sensitivity"] = {
        "spec_path": record["spec_path"],
        "spec_sha256": hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        "spec": record["spec"],
        "settings": asdict(s),
        "parameters": [
            {
                "path": p.path,
                "mode": p.mode,
                "low": p.low,
                "high": p.high,
                "integer": p.integer,
                "origin": p.origin,
            }
            for p in spec.parameters
        ],
        "outputs": list(spec.outputs),
        "n_samples": design.n_samples,
        "n_runs": design.n_runs,
        "salib_sampler_seed": salib_seed(s.seed, 0),
        "salib_bootstrap_seed": salib_seed(s.seed, 1),
    }
    manifest["versions"].update({pkg: _version(pkg) for pkg in ("salib", "scipy")})
    manifest["executor"] = {"kind": backend.kind, "description": backend.description}
    manifest["resumed"] = record["resumed"]
    if plan.resumed:
        manifest["git_at_start"] = record.get("git")
    return manifest


def _report_failures(plan: _Plan, failures: pd.DataFrame) -> None:
    _error(
        f"{len(failures)} of {plan.design.n_runs} runs failed "
        f"(details in {plan.partial / 'sweep' / 'failures.parquet'}):"
    )
    for row in failures.head(_MAX_FAILURES_LISTED).itertuples(index=False):
        message = (str(row.error_message).splitlines() or [""])[0]
        print(
            f"  sample {row.sample} replicate {row.replicate}: {row.error_type}: {message}",
            file=sys.stderr,
        )
    if len(failures) > _MAX_FAILURES_LISTED:
        print(f"  ... and {len(failures) - _MAX_FAILURES_LISTED} more", file=sys.stderr)
    print(
        f"{PROG}: the other runs are saved in {plan.partial}; once the cause is fixed, "
        f"run the failed ones with: {PROG} sensitivity --resume {plan.out}",
        file=sys.stderr,
    )


def _json_safe(value: Any) -> Any:
    """A TOML value as JSON (dates and times as ISO text)."""
    return json.loads(json.dumps(value, default=str))


def _write_json(path: Path, record: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
