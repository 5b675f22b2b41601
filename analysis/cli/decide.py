"""``peersim decide``: which what-if wins over everything we do not know, where it
fails, and which unknown to measure first (``analysis.decide``).

The runs go through the experiment runner (``simulation.runner.run_jobs``) like
every sweep; the output folder is written all at once when complete, never over
existing results; until then the finished runs are kept in ``DIR.partial`` and
``--resume DIR`` continues.
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
    from analysis.decide import Ensemble
    from calibration.priors import PriorSet
    from simulation import Scenario
    from simulation.executors import Backend

# Kept here as well as in analysis.decide, which --help must not import.
DEFAULT_N_SETS = 64
MIN_SETS = 8
DEFAULT_REPLICATES = 2
FALLBACK_OUTCOME = "engaged_share"
RESUMABLE = Resumable("decide", "decision analysis", "deciding", "decide.json", "peersim-decide/1")

DESCRIPTION = f"""\
Decide under uncertainty: run a baseline and what-ifs over an ensemble of
parameter sets and say how often, and by how much, each what-if beats the
baseline and the others, under which assumptions it fails, and which unknown
would most narrow the answer if it were measured.

The ensemble: N parameter sets (--n-sets, default {DEFAULT_N_SETS}) drawn from the
calibration posterior in --posterior DIR (particles drawn by weight) or, without
it, from the priors (--priors FILE, default calibration/priors/enrich.toml; a
Latin hypercube through each prior), or uniformly from a sensitivity spec's
ranges (--spec FILE; its scenario is replaced by BASE). The site configuration
(which sites are not-for-profit hosted and which rural) is drawn with the rest
where the priors or posterior make it free. Set k of every scenario runs R
replicates (-n, default {DEFAULT_REPLICATES}) with the same seeds (common random
numbers), so that in each set a difference between scenarios is the lever, given
those parameters, not chance. A scenario's value in a set is the mean over its
replicates of the whole trial's outcome.

Per outcome (--outcome NAME, repeatable; default: the outcomes the what-ifs'
[claim]s name, else {FALLBACK_OUTCOME}), with "better" the outcome's direction:
  robustness   P(improvement): the share of sets where the what-if is strictly
               better than the baseline, and than each other what-if; the
               expected difference and its 10th and 90th percentiles; regret
               (the best option's value in the set minus the option's), its mean
               and 90th percentile; a rank by expected value
  failures     PRIM (ema_workbench) finds the box of parameter ranges and site
               configurations where the what-if fails to improve on the baseline,
               with coverage (share of all failures in the box) and density
               (share of the sets in the box that fail)
  information  per parameter, the share of the variance of each what-if's
               effect that knowing it would remove (first-order variance share,
               binned), and the expected value of partial perfect information
               (EVPPI, binned; Strong & Oakley 2013) of the choice
It prints a summary and writes a new folder:
  report.md                 the findings in plain words, with the tables
  ensemble.csv, .parquet    one row per set, scenario and outcome: value (mean of
                            the set's replicates), n_replicates, the parameters
  decisions.csv             per outcome and option: mean, diff_mean, diff_p10,
                            diff_p90, p_improve, p_worse, regret_mean,
                            regret_p90, noise_share, rank
  pairwise.csv              per outcome and ordered pair: p_better, p_worse
  value_of_information.csv  per outcome, what-if and parameter: variance_share
  evppi.csv                 per outcome and parameter: evppi, share_of_evpi
  prim_boxes.csv            per outcome and what-if: the box's coverage,
                            density, mass and limits per restricted parameter
  prim_trajectories.csv     PRIM's peeling trajectories
  figures/                  effects_<outcome>.png, voi_<outcome>.png,
                            prim_<outcome>_<whatif>.png
  manifest.json             as for '{PROG} run', with every scenario's path and hash
The methods and their references: docs/decisions/README.md. The folder appears
only when complete; an analysis stopped by Ctrl-C or a crash continues with
--resume DIR.
"""

EPILOG = f"""\
examples:
  {PROG} decide scenarios/enrich_trial.toml scenarios/whatif_nhs_hosting.toml \\
      scenarios/whatif_honorary_contracts.toml
  {PROG} decide base.toml a.toml b.toml --posterior docs/calibration --outcome fidelity
  {PROG} decide base.toml a.toml --n-sets 256 -n 1 -w 4 --out results/decision
  {PROG} decide --resume results/decision    continue an interrupted analysis
"""

HELP = "which what-if wins over the unknowns, where it fails, what to measure first"

COMMAND = Command(
    "decide",
    HELP,
    DESCRIPTION,
    EPILOG,
    positionals=(("base", "BASE"), ("whatifs", "WHATIF")),
    usage=f"{PROG} decide [options] BASE WHATIF [WHATIF ...]",
)


def register(commands: Any) -> None:
    """Add the ``decide`` subcommand to ``peersim``'s subparsers."""
    options = common.sweep_options(
        RESUMABLE,
        "results/decide-<BASE>-<UTC time>",
        resume=" (the same scenarios, ensemble, seed and replicates)",
        posterior="; the ensemble's sets are particles drawn by weight, and a what-if that "
        "changes a calibrated parameter is refused",
    )
    parser = COMMAND.add(commands, decide, options)
    parser.add_argument("base", nargs="?", type=Path, metavar="BASE", help="baseline scenario")
    parser.add_argument(
        "whatifs", nargs="*", type=Path, metavar="WHATIF", help="what-if scenario files"
    )
    parser.add_argument(
        "--priors",
        type=Path,
        metavar="FILE",
        help="draw the ensemble from these priors (default without --posterior: the "
        "shipped ENRICH priors); a what-if that changes one of their parameters is refused",
    )
    parser.add_argument(
        "--spec",
        type=Path,
        metavar="FILE",
        help="draw the ensemble uniformly from a sensitivity spec's parameter ranges "
        "(e.g. analysis/sensitivity_enrich.toml; its scenario is replaced by BASE)",
    )
    parser.add_argument(
        "--outcome",
        action="append",
        metavar="NAME",
        help="an outcome of the registry to decide on (repeat for more; default: the "
        f"what-ifs' claimed outcomes, else {FALLBACK_OUTCOME})",
    )
    parser.add_argument(
        "--n-sets",
        type=common.non_negative_int,
        metavar="N",
        help=f"parameter sets in the ensemble, at least {MIN_SETS} (default: {DEFAULT_N_SETS})",
    )
    parser.add_argument(
        "-n",
        "--replicates",
        type=common.positive_int,
        metavar="R",
        help=f"replicates per set and scenario (default: {DEFAULT_REPLICATES}); more "
        "replicates, less replicate noise in each set's value",
    )


@dataclass
class _Plan:
    """What an analysis is to do, from the command line or an interrupted one's record."""

    labels: list[str]  # the baseline first
    scenarios: dict[str, Scenario]
    paths: dict[str, Path | None]
    ensemble: Ensemble
    outcomes: list[str]
    seed: int
    n_replicates: int
    ws: Workspace

    def describe(self) -> tuple[str, str]:
        return (
            f"{len(self.labels) - 1} what-if(s) with {self.labels[0]!r} over "
            f"{self.ensemble.n_sets} parameter sets from the {self.ensemble.kind}, "
            f"{self.n_replicates} replicate(s) each",
            f"seed {self.seed}",
        )

    def n_jobs(self) -> int:
        return len(self.labels) * self.ensemble.n_sets * self.n_replicates

    def execute(self, backend: Backend, progress: bool | None, command: list[str]) -> int:
        return _run_plan(self, backend, progress, command)


def decide(args: argparse.Namespace, command: list[str]) -> int:
    """The ``decide`` subcommand; returns the exit status."""
    return RESUMABLE.run(args, command, _new_plan, _resume_plan)


def _new_plan(args: argparse.Namespace, command: list[str]) -> _Plan:
    from analysis.compare import scenario_labels
    from analysis.decide import DEFAULT_N_SETS as N_SETS
    from analysis.decide import MIN_SETS as LEAST

    assert (N_SETS, LEAST) == (DEFAULT_N_SETS, MIN_SETS), "keep the two modules' numbers equal"
    if args.base is None or not args.whatifs:
        raise UsageError(
            f"give a BASE scenario and at least one WHATIF scenario (see '{PROG} decide --help')"
        )
    given = [
        f"{option} {value}"
        for option, value in (
            ("--posterior", args.posterior),
            ("--priors", args.priors),
            ("--spec", args.spec),
        )
        if value is not None
    ]
    if len(given) > 1:
        raise UsageError(
            f"{' and '.join(given)}: give one source of the ensemble, not both "
            "(--posterior DIR, --priors FILE or --spec FILE)"
        )
    n_sets = DEFAULT_N_SETS if args.n_sets is None else args.n_sets
    if n_sets < MIN_SETS:
        empty = "the ensemble would be empty" if n_sets == 0 else "too few for the analysis"
        raise UsageError(
            f"argument --n-sets: {n_sets} parameter sets: {empty}; give at least {MIN_SETS} "
            "(the value of information bins the sets and PRIM peels them)"
        )
    n_replicates = DEFAULT_REPLICATES if args.replicates is None else args.replicates
    paths: list[Path] = [args.base, *args.whatifs]
    common.refuse_repeated_files(
        paths, "; a what-if equal to another option cannot win or lose against it"
    )
    labels = scenario_labels(paths)
    scenarios = _load_scenarios(labels, paths)
    _distinct_contents(labels, paths, scenarios)
    outcomes = _outcomes(args.outcome, paths[1:])
    seed = DEFAULT_SEED if args.seed is None else args.seed
    ensemble = _ensemble(args, scenarios, paths, n_sets, seed)
    ws = RESUMABLE.start(
        args.out,
        f"decide-{labels[0]}",
        command,
        scenarios=common.scenario_records(labels, paths, scenarios),
        ensemble=ensemble.record(),
        outcomes=outcomes,
        master_seed=seed,
        replicates=n_replicates,
    )
    resolved: dict[str, Path | None] = {
        label: path.resolve() for label, path in zip(labels, paths, strict=True)
    }
    return _Plan(labels, scenarios, resolved, ensemble, outcomes, seed, n_replicates, ws)


def _load_scenarios(labels: list[str], paths: list[Path]) -> dict[str, Scenario]:
    scenarios = common.load_labelled_scenarios(labels, paths)
    for path, scenario in zip(paths, scenarios.values(), strict=True):
        if scenario.mode == "service":
            # The ensemble's priors and outcomes are the trial's (calibrated on it).
            raise UsageError(
                f"{path}: mode 'service'; {PROG} decide takes trial scenarios only for now "
                f"(compare services with '{PROG} compare', --posterior included)"
            )
    return scenarios


def _distinct_contents(
    labels: list[str], paths: list[Path], scenarios: dict[str, Scenario]
) -> None:
    """Refuse a what-if whose resolved scenario equals the baseline's or another
    what-if's (the same content hash): every difference would be exactly zero."""
    from simulation.outputs import scenario_sha256

    seen: dict[str, Path] = {}
    for label, path in zip(labels, paths, strict=True):
        digest = scenario_sha256(scenarios[label])
        if digest in seen:
            raise UsageError(
                f"{path}: the same scenario as {seen[digest]} (sha256 {digest[:12]}...): "
                "it cannot win or lose against it; give what-ifs that change something"
            )
        seen[digest] = path


def _outcomes(given: list[str] | None, whatifs: list[Path]) -> list[str]:
    """The outcomes to decide on: those given (checked against the registry), or the
    what-ifs' claimed ones, or the fallback."""
    from analysis.decide import DECISION_OUTCOMES
    from scenarios import ScenarioError, load_claim
    from simulation.names import suggest_among
    from simulation.outcomes import canonical

    if given:
        names = []
        for name in given:
            name = canonical(name)
            if name not in DECISION_OUTCOMES:
                raise UsageError(
                    f"--outcome {name}: not an outcome a decision can be taken on (a registry "
                    "outcome of the whole trial with a better direction); "
                    + suggest_among(name, DECISION_OUTCOMES, "allowed")
                )
            names.append(name)
        return list(dict.fromkeys(names))
    claimed = []
    for path in whatifs:
        try:
            claim = load_claim(path)
        except ScenarioError as e:
            raise UsageError(str(e)) from None
        if claim is not None and claim.outcome in DECISION_OUTCOMES:
            claimed.append(claim.outcome)
    return list(dict.fromkeys(claimed)) or [FALLBACK_OUTCOME]


def _ensemble(
    args: argparse.Namespace,
    scenarios: dict[str, Scenario],
    paths: list[Path],
    n_sets: int,
    seed: int,
) -> Ensemble:
    """The ensemble, checked against every scenario; what-ifs changing one of its
    parameters are refused (the ensemble's value would silently undo the change)."""
    from analysis.decide import (
        changed_parameters,
        posterior_ensemble,
        prior_ensemble,
        spec_ensemble,
    )

    base, *whatifs = scenarios.values()
    offered = base.site_configurations
    options = tuple(offered.names) if offered is not None else ()
    if args.posterior is not None:
        posterior = common.load_checked_posterior(args.posterior, base)
        for scenario in whatifs:
            common.load_checked_posterior(args.posterior, scenario)
        source = f"--posterior {args.posterior}"
        parameters: list[str] = list(posterior.parameters)
        ensemble = posterior_ensemble(posterior, n_sets, seed, options)
    elif args.spec is not None:
        from analysis.sensitivity_spec import SpecError, load_spec

        try:
            spec = load_spec(args.spec, base=base)
        except SpecError as e:
            raise UsageError(str(e)) from None
        source = f"--spec {args.spec}"
        ensemble = spec_ensemble(spec, n_sets, seed, str(args.spec))
        parameters = ensemble.targets
    else:
        priors = _load_priors(args.priors, scenarios)
        source = f"--priors {args.priors}" if args.priors is not None else "the shipped priors"
        parameters = priors.parameters
        shipped = "calibration/priors/enrich.toml (shipped)"
        ensemble = prior_ensemble(priors, n_sets, seed, options, str(args.priors or shipped))
    for scenario, path in zip(whatifs, paths[1:], strict=True):
        changed = changed_parameters(base, scenario, parameters)
        if changed:
            raise UsageError(
                f"{path}: changes {', '.join(changed)}, which the ensemble ({source}) draws "
                "and would overwrite; leave them as in the baseline or draw from priors "
                "without them (--priors FILE)"
            )
    _check_sets(ensemble, scenarios, paths)
    return ensemble


def _load_priors(given: Path | None, scenarios: dict[str, Scenario]) -> PriorSet:
    """The priors, checked against every scenario; ``UsageError`` if not usable."""
    from calibration.files import CalibrationFileError
    from calibration.priors import load_priors

    try:
        priors = load_priors(given)
        for scenario in scenarios.values():
            priors.check_scenario(scenario)
    except CalibrationFileError as e:
        raise UsageError(str(e)) from None
    return priors


def _check_sets(ensemble: Ensemble, scenarios: dict[str, Scenario], paths: list[Path]) -> None:
    """Every set makes a valid scenario of every file, before anything runs."""
    from pydantic import ValidationError

    for scenario, path in zip(scenarios.values(), paths, strict=True):
        for k in range(ensemble.n_sets):
            try:
                ensemble.scenario(scenario, k)
            except (ValidationError, ValueError) as e:
                raise UsageError(
                    f"{path}: parameter set {k} of the ensemble makes no valid scenario: "
                    f"{common.first_line(e)}"
                ) from None


def _resume_plan(args: argparse.Namespace) -> _Plan:
    from analysis.decide import Ensemble

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
        ensemble = Ensemble.from_record(ws.record["ensemble"])
        outcomes = [str(o) for o in ws.record["outcomes"]]
        seed, n = int(ws.record["master_seed"]), int(ws.record["replicates"])
    return _Plan(labels, scenarios, paths, ensemble, outcomes, seed, n, ws)


def _run_plan(plan: _Plan, backend: Backend, progress: bool | None, command: list[str]) -> int:
    from analysis.decide import decision_jobs, set_values
    from analysis.levers import LEVER_TABLES
    from simulation.runner import run_jobs

    ws = plan.ws
    try:
        jobs = decision_jobs(plan.scenarios, plan.ensemble, plan.seed, plan.n_replicates)
    except ValueError as e:  # a resumed record whose files changed since
        raise UsageError(f"cannot make the ensemble's scenarios: {common.first_line(e)}") from None
    RESUMABLE.save(ws, command)
    sweep = run_jobs(
        jobs,
        ws.sweep_dir,
        tables=LEVER_TABLES,
        executor=backend,
        progress=progress,
        resume=True,
        desc="decide",
    )
    if not sweep.complete:
        return RESUMABLE.report_failures(
            ws,
            sweep.failures,
            len(jobs),
            "runs",
            lambda row: f"{row.scenario} set {row.set} replicate {row.replicate}",
        )
    raw = sweep.table("outcomes")
    values = set_values(raw, plan.outcomes)
    results = _analyse(plan, values, raw)

    def write(folder: Path) -> None:
        from analysis.decide_report import write_outputs
        from simulation.outputs import write_manifest

        write_outputs(
            folder,
            plan.ensemble,
            values=values,
            results=results,
            labels=plan.labels,
            n_replicates=plan.n_replicates,
        )
        write_manifest(folder, _manifest(plan, backend))

    status = RESUMABLE.write_output(ws, write)
    if status == EXIT_OK:
        from analysis.decide_report import summary

        print(summary(results, plan.labels, plan.ensemble, plan.n_replicates, plan.seed))
        print(f"\nResults written to {ws.out}")
    return status


def _analyse(plan: _Plan, values: Any, raw: Any) -> list[Any]:
    from analysis.decide import analyse, replicate_noise, wide_values
    from simulation.outcomes import OUTCOMES

    x = plan.ensemble.frame()
    base, whatifs = plan.labels[0], plan.labels[1:]
    results = []
    for name in plan.outcomes:
        wide = wide_values(values, name, plan.labels)
        noise = replicate_noise(raw, name, base, whatifs)
        try:
            results.append(
                analyse(
                    x,
                    wide,
                    base,
                    whatifs,
                    outcome=name,
                    better=OUTCOMES[name].better,
                    noise_var=noise,
                )
            )
        except ValueError as e:
            raise UsageError(f"--outcome {name}: {e}") from None
    return results


def _manifest(plan: _Plan, backend: Backend) -> dict[str, Any]:
    from analysis.decide import ENSEMBLE_STREAM
    from simulation.outputs import scenario_sha256

    base = plan.labels[0]
    manifest = common.sweep_manifest(
        plan.scenarios[base],
        plan.paths[base],
        plan.ws,
        backend,
        seed=plan.seed,
        replicates=plan.n_replicates,
        versions=("scipy", "ema_workbench"),
    )
    manifest["decision"] = {
        "baseline": base,
        "whatifs": plan.labels[1:],
        "outcomes": plan.outcomes,
        "ensemble": {
            "kind": plan.ensemble.kind,
            "source": plan.ensemble.source,
            "n_sets": plan.ensemble.n_sets,
            "parameters": plan.ensemble.parameters,
            "draw": f"stream {ENSEMBLE_STREAM!r} of numpy.random.SeedSequence(master_seed)"
            + {
                "priors": ": a Latin hypercube through each prior's quantile function",
                "posterior": ": particles drawn by weight, with replacement",
                "spec": ": a Latin hypercube, uniform on each range of the spec",
            }[plan.ensemble.kind],
        },
        "pairing": "common random numbers: replicate r of set k of every scenario runs with "
        "numpy.random.SeedSequence(master_seed, spawn_key=(k, r))",
        "replicates_per_set": plan.n_replicates,
    }
    manifest["scenarios"] = [
        {
            "label": label,
            "role": "baseline" if label == base else "whatif",
            "name": plan.scenarios[label].name,
            "path": str(plan.paths[label]) if plan.paths[label] is not None else None,
            "sha256": scenario_sha256(plan.scenarios[label]),
        }
        for label in plan.labels
    ]
    return manifest
