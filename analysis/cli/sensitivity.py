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
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.cli import common
from analysis.cli.common import EXIT_OK, PROG, Command, Resumable, UsageError, Workspace

if TYPE_CHECKING:
    from analysis.sensitivity import Design
    from simulation.executors import Backend

RESUMABLE = Resumable(
    "sensitivity", "analysis", "running", "sensitivity.json", "peersim-sensitivity/1"
)
_SAMPLES = "samples.parquet"
# Command-line flags of the settings the command line can override.
_FLAGS = {"n": "--n", "replicates": "--replicates", "seed": "--seed"}

HELP = "global sensitivity analysis of a scenario (Morris or Sobol', with SALib)"
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


COMMAND = Command("sensitivity", HELP, DESCRIPTION, EPILOG, positionals=(("spec", "SPEC"),))


def register(commands: Any) -> None:
    """Add the ``sensitivity`` subcommand to ``peersim``'s subparsers."""
    out = "results/<spec name>-<method>-<UTC time>"
    parser = COMMAND.add(commands, run_sensitivity_command, common.sweep_options(RESUMABLE, out))
    parser.add_argument("spec", nargs="?", type=Path, metavar="SPEC", help="spec TOML file")
    parser.add_argument(
        "--method",
        choices=("morris", "sobol"),
        help="morris (screening: mu*, sigma) or sobol (S1, ST with intervals) "
        "(default: the spec's, else morris)",
    )
    parser.add_argument(
        "--n",
        type=common.positive_int,
        metavar="N",
        help="Morris: trajectories; Sobol': base samples, a power of 2 "
        "(default: the spec's [morris] or [sobol] n, else 20 or 512)",
    )
    parser.add_argument(
        "--replicates",
        type=common.positive_int,
        metavar="R",
        help="replicates per parameter set (default: the spec's, else 5)",
    )


@dataclass
class _Plan:
    design: Design
    ws: Workspace

    def describe(self) -> tuple[str, str]:
        design, s = self.design, self.design.settings
        return (
            f"{s.method} sensitivity analysis {design.spec.name!r}: {design.n_samples} "
            f"parameter sets x {s.replicates} replicates = {design.n_runs} runs",
            f"seed {s.seed}",
        )

    def n_jobs(self) -> int:
        return self.design.n_runs

    def execute(self, backend: Backend, progress: bool | None, command: list[str]) -> int:
        return _execute(self, backend, progress, command)


def run_sensitivity_command(args: argparse.Namespace, command: list[str]) -> int:
    """The ``peersim sensitivity`` handler; returns the exit status."""
    return RESUMABLE.run(args, command, _new_plan, _resume_plan)


def _new_plan(args: argparse.Namespace, command: list[str]) -> _Plan:
    from analysis.sensitivity import SpecError, load_spec, make_design

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
    ws = RESUMABLE.start(
        args.out,
        f"{spec.name}-{method}",
        command,
        spec_path=str(args.spec.resolve()),
        spec=_json_safe(spec.resolved_raw()),
        origins={p.path: p.origin for p in spec.parameters if p.origin},
        scenario_path=str(spec.base_path) if spec.base_path is not None else None,
        scenario=spec.base.model_dump(mode="json"),
        settings=asdict(settings),
    )
    try:
        design = make_design(spec, settings)
    except SpecError as e:
        raise UsageError(str(e)) from None
    return _Plan(design, ws)


def _resume_plan(args: argparse.Namespace) -> _Plan:
    import pandas as pd

    from analysis.sensitivity import Settings, SpecError, make_design, parse_spec
    from simulation import Scenario

    ws = RESUMABLE.reopen(args)
    record = ws.record
    with RESUMABLE.reading(ws, ws.partial, SpecError):
        base = Scenario.model_validate(record["scenario"])
        spec = parse_spec(record["spec"], Path(record["spec_path"]), base=base)
        if record.get("scenario_path"):
            spec = replace(spec, base_path=Path(record["scenario_path"]))
        origins = record.get("origins", {})
        parameters = tuple(replace(p, origin=origins.get(p.path, "")) for p in spec.parameters)
        spec = replace(spec, parameters=parameters)
        settings = Settings(**record["settings"])
        samples = pd.read_parquet(ws.partial / _SAMPLES)
        if list(samples.columns) != ["sample", *spec.names]:
            raise ValueError(f"{_SAMPLES} does not hold the spec's parameters")
        design = make_design(spec, settings, samples[spec.names].to_numpy(dtype="float64"))
    return _Plan(design, ws)


def _execute(plan: _Plan, backend: Backend, progress: bool | None, command: list[str]) -> int:
    from analysis.sensitivity import EvaluationError, analyze, evaluate
    from analysis.sensitivity_report import format_summary, write_results
    from simulation.outputs import write_manifest

    design = plan.design
    ws = plan.ws
    if not ws.resumed:
        ws.partial.mkdir(parents=True, exist_ok=True)
        # The samples first: a resumed analysis reuses them rather than sampling again.
        design.samples_frame().to_parquet(ws.partial / _SAMPLES, index=False)
    RESUMABLE.save(ws, command)
    try:
        runs = evaluate(design, ws.sweep_dir, executor=backend, progress=progress, resume=True)
    except EvaluationError as e:
        return RESUMABLE.report_failures(
            ws,
            e.failures,
            design.n_runs,
            "runs",
            lambda row: f"sample {row.sample} replicate {row.replicate}",
        )
    analysis = analyze(design, runs)

    def write(folder: Path) -> None:
        write_results(folder, design, runs, analysis)
        write_manifest(folder, _manifest(plan, backend))

    status = RESUMABLE.write_output(ws, write)
    if status == EXIT_OK:
        print(format_summary(design, analysis))
        print(f"\nResults written to {ws.out}")
    return status


def _manifest(plan: _Plan, backend: Backend) -> dict[str, Any]:
    from analysis.sensitivity import salib_seed

    design, record = plan.design, plan.ws.record
    spec, s = design.spec, design.settings
    manifest = common.sweep_manifest(
        spec.base,
        spec.base_path,
        plan.ws,
        backend,
        seed=s.seed,
        replicates=s.replicates,
        versions=("salib", "scipy"),
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
    return manifest


def _json_safe(value: Any) -> Any:
    """A TOML value as JSON (dates and times as ISO text)."""
    return json.loads(json.dumps(value, default=str))
