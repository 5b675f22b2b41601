"""``peersim compare``: what-if scenarios against a baseline, paired replicate by replicate.

Every scenario runs the same replicates with the same seeds (common random
numbers, ``analysis.compare``), through the experiment runner
(``simulation.runner.run_jobs``). The output folder is written like ``peersim
run``'s: all at once when complete, never over existing results; until then the
finished replicates are kept in ``DIR.partial`` and ``--resume DIR`` continues.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.cli import common
from analysis.cli.common import EXIT_OK, PROG, Command, Resumable, UsageError, Workspace
from simulation.rng import DEFAULT_SEED

if TYPE_CHECKING:  # kept out of the import so that --help answers at once
    import pandas as pd

    from analysis.comparison_run import Money
    from scenarios.costs import Costs
    from simulation import Scenario
    from simulation.executors import Backend

DEFAULT_REPLICATES = 20
DEFAULT_DISCOUNT_RATE = 0.035  # a year; analysis.economics.DEFAULT_DISCOUNT_RATE
MIN_REPLICATES = 2  # an interval needs at least two paired differences
RESUMABLE = Resumable("compare", "comparison", "comparing", "compare.json", "peersim-compare/1")
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
Resources are compared the same way, in hours and events over delivery and
follow-up: peer worker hours by use (contact, travel, supervision, team, admin,
unused), posts (FTE), coordinator hours by use, sessions, peer workers starting,
participants engaged, readmissions. With --costs FILE (your unit costs, each
with its source) they are priced: incremental cost, readmissions and bed-days
avoided, cost per readmission avoided, the chance of saving money and the budget
impact per year, discounted at --discount-rate (default 3.5% a year, the NICE
reference case; the rate is printed with the money).
The comparison is printed and written, with the replicates, into a new folder:
  comparison.csv, comparison.parquet   one row per what-if, outcome and scope:
                          whatif, outcome, scope, base_mean, whatif_mean,
                          diff_mean, diff_sd, diff_lo, diff_hi, n (resource and
                          money outcomes carry their unit in the name)
  economics.csv           with --costs: one row per what-if, units in the names
  brief.md                the question and the answer in people, hours and money
  replicates/*.parquet    per scenario and replicate: outcomes, trial,
                          site_weeks, readmission_counts, resources (per site
                          and year), resource_values (for reanalysis)
  figures/forest_<whatif>.png        differences with 95% CIs, overall and by site
  figures/trajectories_<whatif>.png  baseline vs what-if per site over the weeks
  figures/ce_plane.png, figures/acceptability.png   with --costs
  manifest.json           as for '{PROG} run', with every scenario's path and hash
Scenarios are labelled by file name. The folder appears only when complete; a
comparison stopped by Ctrl-C or a crash continues with --resume DIR.
"""

COMPARE_EPILOG = f"""\
examples:
  {PROG} compare scenarios/enrich_trial.toml scenarios/whatif_honorary_contracts.toml
  {PROG} compare scenarios/enrich_trial.toml scenarios/whatif_*.toml -n 100 -w 4
  {PROG} compare base.toml more_supervision.toml --out results/supervision --seed 7
  {PROG} compare base.toml more_supervision.toml --costs my_costs.toml --discount-rate 0.015
  {PROG} compare --resume results/supervision    continue an interrupted comparison
"""


HELP = "compare what-if scenarios with a baseline, paired by common random numbers"


COMMAND = Command(
    "compare",
    HELP,
    COMPARE_DESCRIPTION,
    COMPARE_EPILOG,
    positionals=(("base", "BASE"), ("whatifs", "WHATIF")),
    usage=f"{PROG} compare [options] BASE WHATIF [WHATIF ...]",
)


def register(commands: Any) -> None:
    """Add the ``compare`` subcommand to ``peersim``'s subparsers."""
    options = common.sweep_options(
        RESUMABLE,
        "results/compare-<BASE>-<UTC time>",
        resume=" (the same scenarios, seed and replicates)",
        posterior="; replicate i of every scenario uses the same draw, and a what-if "
        "that changes a calibrated parameter is refused",
    )
    parser = COMMAND.add(commands, compare, options)
    parser.add_argument("base", nargs="?", type=Path, metavar="BASE", help="baseline scenario")
    parser.add_argument(
        "whatifs",
        nargs="*",
        type=Path,
        metavar="WHATIF",
        help="what-if scenario files, each compared with BASE",
    )
    parser.add_argument(
        "--costs",
        type=Path,
        metavar="FILE",
        help="a unit costs file (TOML; see scenarios/costs_example.toml, illustrative "
        "only): adds money to the resources, economics.csv and the cost-effectiveness "
        "figures; without it resources are in hours and events",
    )
    parser.add_argument(
        "--discount-rate",
        type=float,
        metavar="R",
        help=f"discount rate a year on costs, 0 to below 1 (default: {DEFAULT_DISCOUNT_RATE}, "
        "the NICE reference case); needs --costs",
    )
    parser.add_argument(
        "-n",
        "--replicates",
        type=common.positive_int,
        metavar="N",
        help=f"replicates per scenario, at least {MIN_REPLICATES} (default: "
        f"{DEFAULT_REPLICATES}); more replicates, narrower intervals",
    )


@dataclass
class _Plan:
    """What a comparison is to do, from the command line or an interrupted one's record."""

    labels: list[str]  # the baseline first
    scenarios: dict[str, Scenario]
    paths: dict[str, Path | None]
    seed: int
    n: int
    ws: Workspace
    posterior: Path | None = None
    costs: Costs | None = None
    discount_rate: float = DEFAULT_DISCOUNT_RATE

    def describe(self) -> tuple[str, str]:
        n_whatifs = len(self.whatifs)
        return (
            f"{n_whatifs} what-if(s) with {self.base!r}, {self.n} paired replicates each",
            f"seed {self.seed}",
        )

    def n_jobs(self) -> int:
        return self.n * len(self.labels)

    def execute(self, backend: Backend, progress: bool | None, command: list[str]) -> int:
        return _run_plan(self, backend, progress, command)

    @property
    def base(self) -> str:
        return self.labels[0]

    @property
    def whatifs(self) -> list[str]:
        return self.labels[1:]


def compare(args: argparse.Namespace, command: list[str]) -> int:
    """The ``compare`` subcommand; returns the exit status."""
    return RESUMABLE.run(args, command, _new_plan, _resume_plan)


def _new_plan(args: argparse.Namespace, command: list[str]) -> _Plan:
    from analysis.compare import scenario_labels

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
    common.refuse_repeated_files(
        paths, "; to check the pairing, compare with a copy of the file under another name"
    )
    labels = scenario_labels(paths)
    scenarios = _load_scenarios(labels, paths)
    posterior = None
    if args.posterior is not None:
        _check_posterior(args.posterior, scenarios, paths)
        posterior = args.posterior.resolve()
    costs, rate = _costs_options(args)
    seed = DEFAULT_SEED if args.seed is None else args.seed
    ws = RESUMABLE.start(
        args.out,
        f"compare-{labels[0]}",
        command,
        scenarios=common.scenario_records(labels, paths, scenarios),
        master_seed=seed,
        replicates=n,
        posterior=str(posterior) if posterior is not None else None,
        costs=costs.to_record() if costs is not None else None,
        discount_rate=rate,
    )
    resolved_paths: dict[str, Path | None] = {
        label: path.resolve() for label, path in zip(labels, paths, strict=True)
    }
    return _Plan(labels, scenarios, resolved_paths, seed, n, ws, posterior, costs, rate)


def _costs_options(args: argparse.Namespace) -> tuple[Costs | None, float]:
    """The costs file, checked, and the discount rate (before anything is written)."""
    from scenarios.costs import CostsError, load_costs

    rate = DEFAULT_DISCOUNT_RATE if args.discount_rate is None else args.discount_rate
    if args.discount_rate is not None:
        if args.costs is None:
            raise UsageError(
                "argument --discount-rate: discounts costs, so it needs --costs FILE "
                "(resources in hours and events are not discounted)"
            )
        if not (math.isfinite(rate) and 0 <= rate < 1):
            raise UsageError(
                f"argument --discount-rate: value {args.discount_rate}: out of range, "
                "allowed: a number, 0 to below 1 (a rate a year: 0.035 is 3.5%)"
            )
    if args.costs is None:
        return None, rate
    try:
        costs = load_costs(args.costs)
    except CostsError as e:
        raise UsageError(str(e)) from None
    return costs, rate


def _load_scenarios(labels: list[str], paths: list[Path]) -> dict[str, Scenario]:
    """The scenarios, all of the baseline's mode."""
    scenarios = common.load_labelled_scenarios(labels, paths)
    base_mode = scenarios[labels[0]].mode
    for label, path in zip(labels, paths, strict=True):
        if scenarios[label].mode != base_mode:
            raise UsageError(
                f"{path}: mode {scenarios[label].mode!r}, but the baseline {paths[0]} is "
                f"mode {base_mode!r}: compare scenarios of one mode (a trial's arms and a "
                "service's paired readmissions are not the same outcomes)"
            )
    return scenarios


def _check_posterior(directory: Path, scenarios: dict[str, Scenario], paths: list[Path]) -> None:
    """Refuse a posterior that does not fit every scenario, and what-ifs that change a
    parameter the posterior would overwrite (the change would silently vanish)."""
    base, *whatifs = scenarios.values()
    checked = common.load_checked_posterior(directory, base)
    for scenario, path in zip(whatifs, paths[1:], strict=True):
        common.load_checked_posterior(directory, scenario)
        overridden = checked.overridden(base, scenario)
        if overridden:
            raise UsageError(
                f"{path}: changes calibrated parameter(s) {', '.join(overridden)}, which "
                f"--posterior {directory} would overwrite; compare without "
                "--posterior or leave them as in the baseline"
            )


def _resume_plan(args: argparse.Namespace) -> _Plan:
    ws = RESUMABLE.reopen(args)
    with RESUMABLE.reading(ws):
        entries = ws.record["scenarios"]
        labels = [str(e["label"]) for e in entries]
        scenarios = {
            str(e["label"]): common.restore_scenario(e["scenario"], e.get("path")) for e in entries
        }
        paths: dict[str, Path | None] = {
            str(e["label"]): Path(e["path"]) if e.get("path") else None for e in entries
        }
        seed, n = int(ws.record["master_seed"]), int(ws.record["replicates"])
    posterior = Path(ws.record["posterior"]) if ws.record.get("posterior") else None
    if posterior is not None:
        common.load_checked_posterior(posterior, scenarios[labels[0]])
    from scenarios.costs import Costs

    record = ws.record.get("costs")
    costs = Costs.from_record(record) if record else None
    rate = float(ws.record.get("discount_rate", DEFAULT_DISCOUNT_RATE))
    return _Plan(labels, scenarios, paths, seed, n, ws, posterior, costs, rate)


def _run_plan(plan: _Plan, backend: Backend, progress: bool | None, command: list[str]) -> int:
    import pandas as pd

    from analysis.compare import COMPARE_TABLES, comparison_jobs
    from analysis.comparison_run import comparison_figures, outcome_comparison
    from analysis.figures import save_figures
    from simulation.outputs import write_manifest
    from simulation.runner import LazyJobs, run_jobs

    ws = plan.ws
    RESUMABLE.save(ws, command)
    if plan.posterior is not None:
        from calibration.posterior import load_posterior

        posterior = load_posterior(plan.posterior)
        jobs = LazyJobs.concat(
            [
                posterior.jobs(
                    scenario, plan.seed, plan.n, tags={"scenario": label}, key_prefix=f"{label}/"
                )
                for label, scenario in plan.scenarios.items()
            ]
        )
    else:
        jobs = comparison_jobs(plan.scenarios, plan.seed, plan.n)
    sweep = run_jobs(
        jobs,
        ws.sweep_dir,
        tables=COMPARE_TABLES,
        executor=backend,
        progress=progress,
        resume=True,
        desc="compare",
    )
    if not sweep.complete:
        return RESUMABLE.report_failures(
            plan.ws,
            sweep.failures,
            plan.n * len(plan.labels),
            "runs",
            lambda row: f"{row.scenario} replicate {row.replicate} (seed {row.seed})",
        )
    tables = {name: sweep.table(name) for name in COMPARE_TABLES}
    outcomes, comparison = outcome_comparison(plan.scenarios, plan.base, plan.whatifs, tables)
    money = _economics(plan, tables["resources"])

    def write(folder: Path) -> None:
        full = pd.concat([comparison, money.comparison], ignore_index=True)
        full.to_csv(folder / "comparison.csv", index=False)
        full.to_parquet(folder / "comparison.parquet", index=False)
        if money.table is not None:
            money.table.to_csv(folder / "economics.csv", index=False)
        (folder / "brief.md").write_text(money.brief, encoding="utf-8")
        replicates = folder / "replicates"
        replicates.mkdir()
        outcomes.to_parquet(replicates / "outcomes.parquet", index=False)
        money.values.to_parquet(replicates / "resource_values.parquet", index=False)
        for name, frame in tables.items():
            frame.to_parquet(replicates / f"{name}.parquet", index=False)
        figures = comparison_figures(
            comparison, money, tables["site_weeks"], plan.base, plan.whatifs, n=plan.n
        )
        save_figures(figures, folder / "figures")
        write_manifest(folder, _manifest(plan, backend))

    status = RESUMABLE.write_output(plan.ws, write)
    if status == EXIT_OK:
        service = plan.scenarios[plan.base].mode == "service"
        whole = "whole service" if service else "whole trial"
        print(
            format_comparison(comparison, plan.base, plan.whatifs, plan.n, plan.seed, whole=whole)
        )
        print(money.printed)
        print(f"\nResults written to {plan.ws.out}")
    return status


def _economics(plan: _Plan, resources: pd.DataFrame) -> Money:
    from analysis.comparison_run import money_comparison

    return money_comparison(
        plan.scenarios,
        plan.base,
        plan.whatifs,
        resources,
        n=plan.n,
        seed=plan.seed,
        costs=plan.costs,
        rate=plan.discount_rate,
        posterior=plan.posterior is not None,
    )


def _manifest(plan: _Plan, backend: Backend) -> dict[str, Any]:
    from simulation.outputs import scenario_sha256

    manifest = common.sweep_manifest(
        plan.scenarios[plan.base],
        plan.paths[plan.base],
        plan.ws,
        backend,
        seed=plan.seed,
        replicates=plan.n,
        versions=("scipy",),  # the t quantiles
    )
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
    manifest["posterior"] = str(plan.posterior) if plan.posterior is not None else None
    manifest["costs"] = (
        {**plan.costs.to_record(), "discount_rate_per_year": plan.discount_rate}
        if plan.costs is not None
        else None
    )
    return manifest


# --- the printed table ---------------------------------------------------------------


def format_comparison(
    comparison: pd.DataFrame,
    base: str,
    whatifs: list[str],
    n_replicates: int,
    seed: int,
    *,
    whole: str = "whole trial",
) -> str:
    """The comparison as ``peersim compare`` prints it: per what-if, the whole
    trial's outcomes, then the main outcomes per site."""
    from analysis.compare import OVERALL, paired_sites
    from analysis.summary import align_columns
    from simulation.outcomes import COMPARED, SERVICE_COMPARED, outcome, units_line

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
    printed = [k for k in (*COMPARED, *SERVICE_COMPARED) if k != "log_itt_or"]
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
            f"What-if {whatif!r} vs baseline {base!r}: {whole}",
            align_columns(["outcome", "baseline", "what-if", "difference [95% CI]", "n"], table),
        ]
        sites = paired_sites(rows)
        cells = {(str(r.outcome), str(r.scope)): r for r in rows.itertuples()}
        # Only the outcomes with values per site (a service's readmission is paired
        # within the people, not by arm, so it has no per-site arm column).
        columns = [c for c in _SITE_COLUMNS if any((c[0], site) in cells for site in sites)]
        site_rows = [
            [site, *(_difference(cells.get((key, site))) for key, _ in columns)] for site in sites
        ]
        if site_rows:
            lines += [
                "",
                f"What-if {whatif!r} vs baseline {base!r}: difference [95% CI] by site",
                align_columns(["site", *(heading for _, heading in columns)], site_rows),
                units_line(columns),
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
        "comparison.csv has every outcome for the whole trial (or service) and each site, "
        "with the SD of the differences.",
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
