"""``peersim compare``: what-if scenarios against a baseline, paired replicate by replicate.

Every scenario runs the same replicates with the same seeds (common random
numbers, ``analysis.compare``), through the experiment runner
(``simulation.runner.run_jobs``). The output folder is written like ``peersim
run``'s: all at once when complete, never over existing results; until then the
finished replicates are kept in ``DIR.partial`` and ``--resume DIR`` continues.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import math
import shutil
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.cli.main import (
    DEFAULT_SEED,
    EXIT_FAILURE,
    EXIT_OK,
    POSTERIOR_HELP,
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
    _write_record,
    drive_sweep,
    load_checked_posterior,
)
from simulation.outputs import is_free

if TYPE_CHECKING:  # kept out of the import so that --help answers at once
    import pandas as pd

    from simulation import Scenario
    from simulation.executors import Backend

DEFAULT_REPLICATES = 20
MIN_REPLICATES = 2  # an interval needs at least two paired differences
_RECORD = "compare.json"
_RECORD_FORMAT = "peersim-compare/1"
_MAX_FAILURES_LISTED = 10
_MAX_SITES_NAMED = 5
# The outcomes printed per site (all of them are in comparison.csv).
_SITE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("met_share", "met"),
    ("engaged_share", "engaged"),
    ("fidelity", "fidelity"),
    ("readmit_ps", "readmitted (peer support arm)"),
)

COMPARE_DESCRIPTION = f"""\
Compare what-if scenarios with a baseline. Every scenario runs the same
replicates: replicate i of each uses seed (SEED, i), and inside a replicate each
random decision has its own stream per site, so the what-if meets the same
participants and the same chance events as the baseline wherever its change
does not reach (common random numbers). The paired difference per replicate
then reflects the change, not noise; its mean and 95% confidence interval
(Student's t over the replicates) are reported for each outcome, for the whole
trial and per site:
  met and engaged shares of the peer support arm; fidelity (mean of the four
  domains) and each domain, at the end of delivery; readmission per arm and in
  the peer support group with 2+ sessions; the ITT odds ratio (whole trial).
The comparison is printed and written, with the replicates, into a new folder:
  comparison.csv, comparison.parquet   one row per what-if, outcome and scope:
                          whatif, outcome, scope, base_mean, whatif_mean,
                          diff_mean, diff_sd, diff_lo, diff_hi, n
  replicates/*.parquet    per scenario and replicate: outcomes, trial,
                          site_weeks, readmission_counts (for reanalysis)
  figures/forest_<whatif>.png        differences with 95% CIs, overall and by site
  figures/trajectories_<whatif>.png  baseline vs what-if per site over the weeks
  manifest.json           as for '{PROG} run', with every scenario's path and hash
Scenarios are labelled by file name. The folder appears only when complete; a
comparison stopped by Ctrl-C or a crash continues with --resume DIR.
"""

COMPARE_EPILOG = f"""\
examples:
  {PROG} compare scenarios/enrich_trial.toml scenarios/whatif_honorary_contracts.toml
  {PROG} compare scenarios/enrich_trial.toml scenarios/whatif_*.toml -n 100 -w 4
  {PROG} compare base.toml more_supervision.toml --out results/supervision --seed 7
  {PROG} compare --resume results/supervision    continue an interrupted comparison
"""


def register(commands: Any) -> None:
    """Add the ``compare`` subcommand to ``peersim``'s subparsers."""
    parser = commands.add_parser(
        "compare",
        help="compare what-if scenarios with a baseline, paired by common random numbers",
        description=COMPARE_DESCRIPTION,
        epilog=COMPARE_EPILOG,
        usage=f"{PROG} compare [options] BASE WHATIF [WHATIF ...]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=compare)
    parser.add_argument("base", nargs="?", type=Path, metavar="BASE", help="baseline scenario")
    parser.add_argument(
        "whatifs",
        nargs="*",
        type=Path,
        metavar="WHATIF",
        help="what-if scenario files, each compared with BASE",
    )
    parser.add_argument(
        "-n",
        "--replicates",
        type=_positive_int,
        metavar="N",
        help=f"replicates per scenario, at least {MIN_REPLICATES} (default: "
        f"{DEFAULT_REPLICATES}); more replicates, narrower intervals",
    )
    parser.add_argument(
        "-s",
        "--seed",
        type=_non_negative_int,
        metavar="S",
        help=f"master seed, a whole number >= 0 (default: {DEFAULT_SEED})",
    )
    parser.add_argument(
        "-w",
        "--workers",
        type=_positive_int,
        metavar="W",
        help="worker processes (1: this process); results are identical for any W "
        "(default: all cores)",
    )
    parser.add_argument(
        "--scheduler",
        type=_scheduler,
        metavar="ADDR",
        help="run on Dask: 'local' or tcp://HOST:PORT, as for 'peersim run'",
    )
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        metavar="DIR",
        help="output folder; must not exist or be empty "
        "(default: a new results/compare-<BASE>-<UTC time>)",
    )
    parser.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="continue the interrupted comparison whose output folder is DIR, with the "
        "scenarios, seed and replicates it was started with",
    )
    parser.add_argument(
        "--posterior",
        type=Path,
        metavar="DIR",
        help=POSTERIOR_HELP + "; replicate i of every scenario uses the same draw, and a "
        "what-if that changes a calibrated parameter is refused",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="show a progress bar with rate and ETA (default: on a terminal)",
    )


@dataclass
class _Plan:
    """What a comparison is to do, from the command line or an interrupted one's record."""

    labels: list[str]  # the baseline first
    scenarios: dict[str, Scenario]
    paths: dict[str, Path | None]
    seed: int
    n: int
    out: Path
    partial: Path
    record: dict[str, Any]
    resumed: bool
    posterior: Path | None = None

    @property
    def base(self) -> str:
        return self.labels[0]

    @property
    def whatifs(self) -> list[str]:
        return self.labels[1:]


def compare(args: argparse.Namespace, command: list[str]) -> int:
    """The ``compare`` subcommand; returns the exit status."""
    from simulation.executors import ExecutorSpec
    from simulation.runner import auto_spec

    plan = _resume_plan(args) if args.resume is not None else _new_plan(args, command)
    n_jobs = plan.n * len(plan.labels)
    spec = auto_spec(ExecutorSpec(workers=args.workers, scheduler=args.scheduler), n_jobs)
    return drive_sweep(
        spec,
        announce=lambda backend: (
            f"{'resuming' if plan.resumed else 'comparing'} {len(plan.whatifs)} what-if(s) "
            f"with {plan.base!r}, {plan.n} paired replicates each (seed {plan.seed}, "
            f"{_describe(backend)})"
        ),
        execute=lambda backend: _run_plan(plan, backend, args.progress, command),
        partial=plan.partial,
        resume_hint=f"{PROG} compare --resume {plan.out}",
    )


def _new_plan(args: argparse.Namespace, command: list[str]) -> _Plan:
    from analysis.compare import OVERALL, scenario_labels
    from scenarios import ScenarioError, load_scenario
    from simulation.outputs import git_state

    if args.base is None or not args.whatifs:
        raise UsageError(
            f"give a BASE scenario and at least one WHATIF scenario (see '{PROG} compare --help')"
        )
    n = DEFAULT_REPLICATES if args.replicates is None else args.replicates
    if n < MIN_REPLICATES:
        raise UsageError(
            f"argument -n/--replicates: must be at least {MIN_REPLICATES} for a paired "
            f"interval, got {n}"
        )
    paths: list[Path] = [args.base, *args.whatifs]
    seen: dict[Path, Path] = {}
    for path in paths:
        resolved = path.resolve()
        if resolved in seen:
            raise UsageError(
                f"{path}: given twice (as {seen[resolved]}); to check the pairing, compare "
                "with a copy of the file under another name"
            )
        seen[resolved] = path
    labels = scenario_labels(paths)
    scenarios: dict[str, Scenario] = {}
    for label, path in zip(labels, paths, strict=True):
        try:
            scenarios[label] = load_scenario(path)
        except ScenarioError as e:
            raise UsageError(str(e)) from None
        if OVERALL in scenarios[label].sites:
            raise UsageError(
                f"{path}: a site named {OVERALL!r} would be confused with the whole trial "
                "in the comparison; rename it"
            )
    posterior = None
    if args.posterior is not None:
        base_scenario = scenarios[labels[0]]
        checked = load_checked_posterior(args.posterior, base_scenario)
        for label, path in zip(labels[1:], paths[1:], strict=True):
            load_checked_posterior(args.posterior, scenarios[label])
            overridden = checked.overridden(base_scenario, scenarios[label])
            if overridden:
                raise UsageError(
                    f"{path}: changes calibrated parameter(s) {', '.join(overridden)}, which "
                    f"--posterior {args.posterior} would overwrite; compare without "
                    "--posterior or leave them as in the baseline"
                )
        posterior = args.posterior.resolve()
    out = args.out if args.out is not None else _default_out(f"compare-{labels[0]}")
    _check_out(out)
    partial = _partial(out)
    if partial.exists():
        raise UsageError(
            f"--out {out}: {partial} holds an interrupted comparison; continue it with "
            f"'{PROG} compare --resume {out}' or delete it"
        )
    seed = DEFAULT_SEED if args.seed is None else args.seed
    record = {
        "format": _RECORD_FORMAT,
        "scenarios": [
            {
                "label": label,
                "path": str(path.resolve()),
                "scenario": scenarios[label].model_dump(mode="json"),
            }
            for label, path in zip(labels, paths, strict=True)
        ],
        "master_seed": seed,
        "replicates": n,
        "started_utc": datetime.now(UTC).isoformat(),
        "command": command,
        "git": git_state(),
        "resumed": [],
        "posterior": str(posterior) if posterior is not None else None,
    }
    resolved_paths: dict[str, Path | None] = {
        label: path.resolve() for label, path in zip(labels, paths, strict=True)
    }
    return _Plan(labels, scenarios, resolved_paths, seed, n, out, partial, record, False, posterior)


def _resume_plan(args: argparse.Namespace) -> _Plan:
    from pydantic import ValidationError

    from simulation import Scenario

    out: Path = args.resume
    given = [
        name
        for name, value in [
            ("BASE", args.base),
            ("WHATIF", args.whatifs or None),
            ("--replicates", args.replicates),
            ("--seed", args.seed),
            ("--out", args.out),
            ("--posterior", args.posterior),
        ]
        if value is not None
    ]
    if given:
        raise UsageError(
            f"--resume {out} continues the comparison as it was started; "
            f"leave out {', '.join(given)}"
        )
    partial = _partial(out)
    record_path = partial / _RECORD
    if not record_path.is_file():
        if out.is_dir() and (out / "manifest.json").is_file():
            raise UsageError(f"--resume {out}: that comparison is already complete")
        raise UsageError(
            f"--resume {out}: no interrupted comparison there ({record_path} not found)"
        )
    if not is_free(out):
        raise UsageError(f"--resume {out}: folder exists and is not empty")
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if record.get("format") != _RECORD_FORMAT:
            raise ValueError(f"unknown format {record.get('format')!r}")
        entries = record["scenarios"]
        labels = [str(e["label"]) for e in entries]
        scenarios = {str(e["label"]): Scenario.model_validate(e["scenario"]) for e in entries}
        paths: dict[str, Path | None] = {
            str(e["label"]): Path(e["path"]) if e.get("path") else None for e in entries
        }
        seed, n = int(record["master_seed"]), int(record["replicates"])
    except (OSError, ValueError, KeyError, TypeError, ValidationError) as e:
        first_line = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(f"--resume {out}: cannot read {record_path}: {first_line}") from None
    posterior = Path(record["posterior"]) if record.get("posterior") else None
    if posterior is not None:
        load_checked_posterior(posterior, scenarios[labels[0]])
    return _Plan(labels, scenarios, paths, seed, n, out, partial, record, True, posterior)


def _run_plan(plan: _Plan, backend: Backend, progress: bool | None, command: list[str]) -> int:
    from analysis.compare import (
        COMPARE_TABLES,
        comparison_jobs,
        paired_differences,
        replicate_outcomes,
    )
    from analysis.compare_figures import make_comparison_figures
    from analysis.figures import save_figures
    from simulation.outputs import OutputExistsError, atomic_directory
    from simulation.runner import run_jobs

    if plan.resumed:
        plan.record["resumed"].append(
            {"utc": datetime.now(UTC).isoformat(timespec="seconds"), "command": command}
        )
    plan.partial.mkdir(parents=True, exist_ok=True)
    _write_record(plan.partial / _RECORD, plan.record)
    if plan.posterior is not None:
        from calibration.posterior import load_posterior

        posterior = load_posterior(plan.posterior)
        jobs = [
            job
            for label, scenario in plan.scenarios.items()
            for job in posterior.jobs(
                scenario, plan.seed, plan.n, tags={"scenario": label}, key_prefix=f"{label}/"
            )
        ]
    else:
        jobs = comparison_jobs(plan.scenarios, plan.seed, plan.n)
    sweep = run_jobs(
        jobs,
        plan.partial / "sweep",
        tables=COMPARE_TABLES,
        executor=backend,
        progress=progress,
        resume=True,  # the folder is this comparison's own: continue whatever it holds
        desc="compare",
    )
    if not sweep.complete:
        _report_failures(plan, sweep.failures)
        return EXIT_FAILURE
    tables = {name: sweep.table(name) for name in COMPARE_TABLES}
    outcomes = replicate_outcomes(
        plan.scenarios, tables["trial"], tables["site_weeks"], tables["readmission_counts"]
    )
    comparison = paired_differences(outcomes, plan.base, plan.whatifs)
    try:
        with atomic_directory(plan.out) as tmp:
            comparison.to_csv(tmp / "comparison.csv", index=False)
            comparison.to_parquet(tmp / "comparison.parquet", index=False)
            replicates = tmp / "replicates"
            replicates.mkdir()
            outcomes.to_parquet(replicates / "outcomes.parquet", index=False)
            for name, frame in tables.items():
                frame.to_parquet(replicates / f"{name}.parquet", index=False)
            figures = make_comparison_figures(
                comparison, tables["site_weeks"], plan.base, plan.whatifs, plan.n
            )
            save_figures(figures, tmp / "figures")
            _write_manifest(tmp, plan, backend)
    except OutputExistsError as e:  # appeared while we were running
        raise UsageError(str(e)) from None
    except OSError as e:
        _error(f"cannot write results to {plan.out}: {e}")
        return EXIT_FAILURE
    shutil.rmtree(plan.partial, ignore_errors=True)
    print(format_comparison(comparison, plan.base, plan.whatifs, plan.n, plan.seed))
    print(f"\nResults written to {plan.out}")
    return EXIT_OK


def _write_manifest(directory: Path, plan: _Plan, backend: Backend) -> None:
    from simulation.outputs import build_manifest, scenario_sha256, write_manifest

    manifest = build_manifest(
        plan.scenarios[plan.base],
        plan.paths[plan.base],
        master_seed=plan.seed,
        n_replicates=plan.n,
        workers=backend.slots,
        started=datetime.fromisoformat(plan.record["started_utc"]),
        finished=datetime.now(UTC),
        command=plan.record["command"],
    )
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):  # the t quantiles
        manifest["versions"]["scipy"] = importlib.metadata.version("scipy")
    manifest["comparison"] = {
        "baseline": plan.base,
        "whatifs": plan.whatifs,
        "pairing": "common random numbers: replicate i of every scenario runs with "
        "numpy.random.SeedSequence(master_seed, spawn_key=(i,))",
        "interval": "95% confidence interval of the mean paired difference (Student's t)",
    }
    manifest["scenarios"] = [
        {
            "label": label,
            "role": "baseline" if label == plan.base else "whatif",
            "name": plan.scenarios[label].name,
            "path": str(plan.paths[label]) if plan.paths[label] is not None else None,
            "sha256": scenario_sha256(plan.scenarios[label]),
            "scenario": plan.scenarios[label].model_dump(mode="json"),
        }
        for label in plan.labels
    ]
    manifest["executor"] = {"kind": backend.kind, "description": backend.description}
    manifest["resumed"] = plan.record["resumed"]
    manifest["posterior"] = str(plan.posterior) if plan.posterior is not None else None
    if plan.resumed:
        manifest["git_at_start"] = plan.record.get("git")
    write_manifest(directory, manifest)


def _report_failures(plan: _Plan, failures: pd.DataFrame) -> None:
    _error(
        f"{len(failures)} of {plan.n * len(plan.labels)} runs failed "
        f"(details in {plan.partial / 'sweep' / 'failures.parquet'}):"
    )
    for row in failures.head(_MAX_FAILURES_LISTED).itertuples(index=False):
        message = (str(row.error_message).splitlines() or [""])[0]
        print(
            f"  {row.scenario} replicate {row.replicate} (seed {row.seed}): "
            f"{row.error_type}: {message}",
            file=sys.stderr,
        )
    if len(failures) > _MAX_FAILURES_LISTED:
        print(f"  ... and {len(failures) - _MAX_FAILURES_LISTED} more", file=sys.stderr)
    print(
        f"{PROG}: the other runs are saved in {plan.partial}; once the cause is fixed, "
        f"run the failed ones with: {PROG} compare --resume {plan.out}",
        file=sys.stderr,
    )


# --- the printed table ---------------------------------------------------------------


def format_comparison(
    comparison: pd.DataFrame, base: str, whatifs: list[str], n_replicates: int, seed: int
) -> str:
    """The comparison as ``peersim compare`` prints it: per what-if, the whole
    trial's outcomes, then the main outcomes per site."""
    from analysis.compare import OVERALL, paired_sites
    from analysis.summary import align_columns as _align
    from simulation.outcomes import COMPARED, outcome, units_line

    lines = [
        f"Baseline {base!r} vs {len(whatifs)} what-if(s), {n_replicates} paired replicates, "
        f"master seed {seed}.",
        f"Differences are paired: replicate i of every scenario uses seed ({seed}, i) "
        "(common random numbers),",
        "so they show the change, not chance. Difference = mean of (what-if - baseline) "
        "[95% confidence interval];",
        "n = replicates in which both values are defined; 0 (identical) = exactly equal in "
        "every replicate.",
    ]
    printed = [k for k in COMPARED if k != "log_itt_or"]
    for whatif in whatifs:
        rows = comparison[comparison["whatif"] == whatif]
        overall = {str(r.outcome): r for r in rows[rows["scope"] == OVERALL].itertuples()}
        table = [
            [
                outcome(key).heading(),
                _number(overall[key].base_mean),
                _number(overall[key].whatif_mean),
                _difference(overall[key]),
                str(overall[key].n),
            ]
            for key in printed
            if key in overall
        ]
        lines += [
            "",
            f"What-if {whatif!r} vs baseline {base!r}: whole trial",
            _align(["outcome", "baseline", "what-if", "difference [95% CI]", "n"], table),
        ]
        sites = paired_sites(rows)
        cells = {(str(r.outcome), str(r.scope)): r for r in rows.itertuples()}
        site_rows = [
            [site, *(_difference(cells.get((key, site))) for key, _ in _SITE_COLUMNS)]
            for site in sites
        ]
        if site_rows:
            lines += [
                "",
                f"What-if {whatif!r} vs baseline {base!r}: difference [95% CI] by site",
                _align(["site", *(heading for _, heading in _SITE_COLUMNS)], site_rows),
                units_line(_SITE_COLUMNS),
            ]
        unpaired = [s for s in _unique(rows["scope"]) if s != OVERALL and s not in sites]
        if unpaired:
            named = ", ".join(unpaired[:_MAX_SITES_NAMED])
            more = len(unpaired) - _MAX_SITES_NAMED
            lines.append(
                f"{len(unpaired)} site(s) only one of the two scenarios has, so not paired: "
                f"{named}{f' and {more} more' if more > 0 else ''} (their means are in "
                "comparison.csv)"
            )
    lines += [
        "",
        "comparison.csv has every outcome for the whole trial and each site, with the SD "
        "of the differences.",
    ]
    return "\n".join(lines)


def _unique(values: pd.Series) -> list[str]:
    """Distinct values as text, in order of first appearance."""
    return list(dict.fromkeys(values.astype(str)))


def _number(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.3f}"


def _difference(row: Any) -> str:
    if row is None or not math.isfinite(row.diff_mean):
        return "n/a"
    if row.diff_mean == 0 and row.diff_sd == 0:
        return "0 (identical)"  # every replicate gave exactly the same value
    if not (math.isfinite(row.diff_lo) and math.isfinite(row.diff_hi)):
        return f"{row.diff_mean:+.3f}"
    return f"{row.diff_mean:+.3f} [{row.diff_lo:+.3f}, {row.diff_hi:+.3f}]"
