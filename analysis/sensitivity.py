"""Global sensitivity analysis of peersim with SALib: which conditions drive the outputs.

``peersim sensitivity SPEC`` (``analysis.cli.sensitivity``) is a thin shell around
this pipeline::

    spec = load_spec("analysis/sensitivity_enrich.toml")    # analysis.sensitivity_spec
    design = make_design(spec, spec.settings)               # SALib's samples, validated
    runs = evaluate(design, "out/sweep")                    # the model, on the runner
    analysis = analyze(design, runs)                        # SALib's indices + noise
    write_results(folder, design, runs, analysis)           # analysis.sensitivity_report

Sampling and analysis use SALib's ``ProblemSpec`` (``sample_morris`` /
``sample_sobol``, ``analyze_morris`` / ``analyze_sobol``), seeded from the master
seed (``salib_seed``). Each sample's scenario is the base's ``with_values`` of
the sampled values (validated afresh), so the scenario's rules
(bounds, stratum shares summing to at most 1) are checked for every sample
before anything runs.

Stochastic models
-----------------
Each sample runs ``R`` replicates; replicate ``r`` uses ``replicate_seed(seed, r)``
in every sample (common random numbers: two samples differ only where their
parameters act, so a parameter with no path to an output gets indices of exactly
0). SALib analyses the mean over replicates. ``noise_table`` reports per output
the replicate noise left in those means, ``noise_share``: the residual variance
of the sample x replicate layout (what common random numbers do not cancel; a
shift shared by all samples changes no index) divided by R, over the variance of
the sample means. Outputs with ``noise_share > NOISE_SHARE_FLAG`` are flagged:
their indices partly measure noise. For Morris, each elementary effect is also
computed per replicate, giving its standard error; ``ee_noise_se`` is their root
mean square per parameter and a ``mu_star`` at most ``NOISE_FLOOR_SE`` times it
is marked ``within_noise``. For Sobol, indices at N/2 (the first half of the
Saltelli sample, itself a valid sample) are compared with those at N; an index
whose two estimates differ by more than the sum of their confidence half-widths
is marked not ``converged`` and warned about.

Evaluation, and how the known-answer tests use it
-------------------------------------------------
``evaluate`` makes one ``simulation.runner.Job`` per (sample, replicate), tagged
``sample`` and ``replicate``, and runs them with ``run_jobs`` (local pool or
Dask, resumable by job key, progress bar); the replicates of one sample share a
scenario, so the runner simulates them side by side. The table it asks for,
``OutputTable``, computes the spec's outputs from each ``Results`` on the
workers, so only those numbers travel back. Its ``simulate`` argument is passed
to ``run_jobs``, which calls it instead of ``simulation.run_batch``: the tests
evaluate the Ishigami function and others as fake models that read sampled
scenario fields and return ``Results`` carrying the function's value, so spec,
sampling, scenario building, runner, output table, replicate means, SALib and
reporting are all the code a real analysis goes through.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from analysis.sensitivity_spec import (
    METHODS,
    OUTPUTS,
    Method,
    Parameter,
    Settings,
    Spec,
    SpecError,
    load_spec,
    output_description,
    output_names,
    parse_spec,
)
from simulation import Results, Scenario, replicate_seed
from simulation.outcomes import (
    FIDELITY_DOMAINS,
    OUTCOMES,
    SENSITIVITY_SITE_OUTPUTS,
    canonical,
    note,
    outcome,
)

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from simulation.executors import Backend, ExecutorSpec
    from simulation.runner import Job, SimulateFn

__all__ = [
    "FIDELITY_DOMAINS",
    "METHODS",
    "OUTPUTS",
    "Analysis",
    "Design",
    "EvaluationError",
    "OutputTable",
    "Parameter",
    "Settings",
    "Spec",
    "SpecError",
    "analyze",
    "evaluate",
    "jobs",
    "load_spec",
    "make_design",
    "noise_table",
    "output_description",
    "output_names",
    "output_unit",
    "parse_spec",
    "sample_scenarios",
    "sensitivity_outputs",
]

# An output whose replicate noise is more than this share of its variance is flagged.
NOISE_SHARE_FLAG = 0.2
# A Morris mu* below this many standard errors of its elementary effects is noise.
NOISE_FLOOR_SE = 2.0
# Seeds of SALib's sampler and bootstrap: spawn keys of two numbers, so they can never
# coincide with a replicate's seed (one number: replicate_seed(seed, r)).
_SALIB_STREAM = 0x53414C  # "SAL"


class EvaluationError(RuntimeError):
    """Some runs raised; ``failures`` (the runner's table) says which and why."""

    def __init__(self, failures: pd.DataFrame, out_dir: Path) -> None:
        first = failures.iloc[0]
        super().__init__(
            f"{len(failures)} run(s) failed, first sample {first['sample']} replicate "
            f"{first['replicate']}: {first['error_type']}: {first['error_message']}"
        )
        self.failures = failures
        self.out_dir = out_dir


# --- sampling ------------------------------------------------------------------------


@dataclass(frozen=True)
class Design:
    """A spec, the settings it runs with and SALib's samples (one row per sample)."""

    spec: Spec
    settings: Settings
    X: np.ndarray
    scenarios: tuple[Scenario, ...] = field(repr=False)  # one per sample, validated

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_runs(self) -> int:
        return self.n_samples * self.settings.replicates

    def samples_frame(self) -> pd.DataFrame:
        """The samples as a table: ``sample`` then one column per parameter path."""
        frame = pd.DataFrame(self.X, columns=self.spec.names)
        frame.insert(0, "sample", np.arange(self.n_samples, dtype=np.int64))
        return frame


def salib_seed(seed: int, purpose: int) -> int:
    """A non-zero seed for SALib, from ``seed``; ``purpose`` 0 samples, 1 bootstraps.

    Non-zero because SALib's Sobol' analysis treats seed 0 as "no seed" and then
    draws from numpy's global generator.
    """
    state = np.random.SeedSequence(seed, spawn_key=(_SALIB_STREAM, purpose)).generate_state(1)
    return int(state[0]) + 1


def n_samples(spec: Spec, settings: Settings) -> int:
    """How many parameter sets ``settings`` samples for ``spec``."""
    d = len(spec.parameters)
    if settings.method == "morris":
        return settings.n * (d + 1)
    return settings.n * (2 * d + 2 if settings.second_order else d + 2)


def make_design(spec: Spec, settings: Settings, X: np.ndarray | None = None) -> Design:
    """Sample the parameters with SALib (or take the samples ``X`` of an earlier run).

    Raises ``SpecError`` if the settings are invalid or some sample gives an
    invalid scenario (a cross-field rule broken), before anything runs.
    """
    problems = [f"{spec.path}: {key}: {text}" for key, text in settings.problems()]
    if problems:
        raise SpecError(spec.path, problems)
    for name in spec.outputs:
        if (spelling := note(name)) is not None:
            warnings.warn(f"{spec.path}: outputs: {spelling}", FutureWarning, stacklevel=2)
    if X is None:
        problem = spec.problem()
        seed = salib_seed(settings.seed, 0)
        if settings.method == "morris":
            problem.sample_morris(settings.n, num_levels=settings.levels, seed=seed)
        else:
            problem.sample_sobol(
                settings.n, calc_second_order=settings.second_order, scramble=True, seed=seed
            )
        X = np.asarray(problem.samples, dtype=np.float64)
    expected = (n_samples(spec, settings), len(spec.parameters))
    if X.shape != expected:
        raise ValueError(f"samples have shape {X.shape}, expected {expected}")
    return Design(spec, settings, X, tuple(sample_scenarios(spec, X)))


def sample_scenarios(spec: Spec, X: np.ndarray) -> list[Scenario]:
    """The scenario of each sample: the base with the sample's values set, validated;
    ``SpecError`` naming the first samples that break a rule of the ``Scenario``."""
    out: list[Scenario] = []
    problems: list[str] = []
    for k, x in enumerate(X):
        assigned: dict[str, float | int] = {}
        for parameter, value in zip(spec.parameters, x, strict=True):
            assigned.update(parameter.assignments(float(value)))
        try:
            out.append(spec.base.with_values(assigned))
        except ValidationError as e:
            first = e.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            values = ", ".join(f"{n} = {v:g}" for n, v in zip(spec.names, x, strict=True))
            problems.append(
                f"{spec.path}: sample {k} ({values}) gives an invalid scenario: "
                f"{where}: {first['msg'].removeprefix('Value error, ')}"
            )
            if len(problems) >= 3:
                break
    if problems:
        problems.append(f"{spec.path}: narrow the ranges so that every combination is valid")
        raise SpecError(spec.path, problems)
    return out


# --- evaluation on the runner ------------------------------------------------------------


def output_unit(name: str) -> str:
    """The unit of an output (a per-site output's is its outcome's); "" if unknown."""
    for base in SENSITIVITY_SITE_OUTPUTS:
        if name.startswith(f"{base}_") and canonical(name) not in OUTCOMES:
            return outcome(base).unit_for()
    found = OUTCOMES.get(canonical(name))
    return found.unit_for() if found is not None else ""


def sensitivity_outputs(results: Results) -> pd.DataFrame:
    """Every output of ``OUTPUTS`` and per site, for one run: a one-row table.

    Computed on the runner's workers (module-level, so it pickles), by the outcome
    registry (``simulation.outcomes``): fidelity is read at the end of delivery (the
    last simulated week); means over sites are unweighted; the site gap is the best
    site's value minus the worst's, sites without peer support participants left out.
    """
    row = {name: outcome(name).of_trial(results) for name in OUTPUTS}
    per_site = {name: outcome(name).of_sites(results) for name in SENSITIVITY_SITE_OUTPUTS}
    for k, s in enumerate(results.site_names):
        for name, values in per_site.items():
            row[f"{name}_{s}"] = float(values[k])
    return pd.DataFrame([row])


@dataclass(frozen=True)
class OutputTable:
    """The runner's table function for a spec: ``sensitivity_outputs`` cut to the
    spec's outputs, so only those travel back (fewer columns: faster shards)."""

    outputs: tuple[str, ...]

    def __call__(self, results: Results) -> pd.DataFrame:
        # An old spelling in the spec reads the output under its current name.
        table = sensitivity_outputs(results)[[canonical(o) for o in self.outputs]]
        return table.set_axis(list(self.outputs), axis=1)


def jobs(design: Design) -> list[Job]:
    """One job per (sample, replicate); replicate r has the same seed in every sample."""
    from simulation.runner import Job

    settings = design.settings
    seeds = [replicate_seed(settings.seed, r) for r in range(settings.replicates)]
    width = len(str(design.n_samples - 1))
    return [
        Job(f"s{k:0{width}d}/r{r}", scenario, seeds[r], {"sample": k, "replicate": r})
        for k, scenario in enumerate(design.scenarios)
        for r in range(settings.replicates)
    ]


def evaluate(
    design: Design,
    sweep_dir: str | Path,
    *,
    executor: ExecutorSpec | Backend | Executor | None = None,
    progress: bool | None = None,
    resume: bool = False,
    simulate: SimulateFn | None = None,
) -> pd.DataFrame:
    """Run every (sample, replicate) on the runner; one row per run, in job order:
    ``sample``, ``replicate`` and the spec's outputs.

    ``sweep_dir`` holds the runner's shards, so ``resume=True`` continues an
    interrupted evaluation. ``simulate`` replaces ``simulation.run_batch`` (see the
    module docstring). Raises ``EvaluationError`` if any run failed (the finished
    ones stay in ``sweep_dir``) and the runner's ``SweepInterrupted`` on Ctrl-C.
    """
    from simulation.runner import run_jobs

    extra: dict[str, Any] = {} if simulate is None else {"simulate": simulate}
    sweep = run_jobs(
        jobs(design),
        sweep_dir,
        tables={"outputs": OutputTable(design.spec.outputs)},
        executor=executor,
        progress=progress,
        resume=resume,
        desc=f"{design.spec.name} ({design.settings.method})",
        **extra,
    )
    if not sweep.complete:
        raise EvaluationError(sweep.failures, Path(sweep_dir))
    columns = ["sample", "replicate", *design.spec.outputs]
    return sweep.table("outputs", columns=columns)


# --- analysis ------------------------------------------------------------------------


@dataclass(frozen=True)
class Analysis:
    """Indices, noise and warnings of one sensitivity analysis.

    ``indices``: one row per (output, parameter), ranked within each output
    (Morris: ``mu_star``, ``mu_star_conf``, ``mu``, ``sigma``, ``ee_noise_se``,
    ``within_noise``; Sobol: ``S1``, ``S1_conf``, ``ST``, ``ST_conf``, the same at
    N/2 and ``converged``), with the output's ``noise_share`` alongside.
    ``second_order``: Sobol S2 per (output, parameter pair), if asked for.
    ``noise``: one row per output. ``means``: the replicate means SALib analysed.
    """

    method: Method
    indices: pd.DataFrame
    noise: pd.DataFrame
    means: pd.DataFrame
    second_order: pd.DataFrame | None
    warnings: tuple[str, ...]

    def top(self, output: str, k: int = 3) -> pd.DataFrame:
        """The ``k`` highest-ranked parameters for ``output``."""
        rows = self.indices[self.indices["output"] == output]
        return rows.sort_values("rank").head(k)


def replicate_array(design: Design, runs: pd.DataFrame) -> np.ndarray:
    """The runs as an array of shape (samples, replicates, outputs)."""
    settings, outputs = design.settings, list(design.spec.outputs)
    ordered = runs.sort_values(["sample", "replicate"], kind="stable")
    expected = design.n_samples * settings.replicates
    if len(ordered) != expected:
        raise ValueError(f"{len(ordered)} runs, expected {expected}")
    values = ordered[outputs].to_numpy(dtype=np.float64)
    return values.reshape(design.n_samples, settings.replicates, len(outputs))


def noise_table(design: Design, Yr: np.ndarray) -> pd.DataFrame:
    """Per output: how much of the variance of the replicate means is replicate noise.

    Columns: ``mean``; ``variance`` of the sample means (what SALib decomposes);
    ``within_variance``, the mean over samples of the variance between one
    sample's replicates; ``residual_variance``, the part of it not shared by all
    samples (see below); ``noise_variance = residual_variance / R``, the noise left
    in a sample mean; ``noise_share = noise_variance / variance``; ``noisy`` if
    that is above ``NOISE_SHARE_FLAG``.

    Common random numbers make replicate r luckier or unluckier in every sample
    alike; a shift shared by all samples changes no index, so only the rest
    counts: the residual of the two-way layout sample x replicate (sample and
    replicate effects removed), with (K-1)(R-1) degrees of freedom. Without
    common random numbers it equals the within-sample variance. NaN with one
    replicate.
    """
    K, R = Yr.shape[0], Yr.shape[1]
    means = Yr.mean(axis=1)
    rows = []
    for j, output in enumerate(design.spec.outputs):
        y = Yr[:, :, j]
        total = float(np.var(means[:, j], ddof=1)) if K > 1 else math.nan
        if not _varies(means[:, j]):
            total = 0.0 if np.all(np.isfinite(means[:, j])) else math.nan
        within = residual = math.nan
        if R > 1 and K > 1:
            within = float(np.mean(np.var(y, axis=1, ddof=1)))
            resid = y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + y.mean()
            residual = float(np.sum(resid**2) / ((K - 1) * (R - 1)))
            if not _varies(resid.ravel(), scale=y):
                residual = 0.0
        noise = residual / R
        share = noise / total if total > 0 else (0.0 if noise == 0 else math.nan)
        rows.append(
            {
                "output": output,
                "mean": float(np.mean(means[:, j])),
                "variance": total,
                "within_variance": within,
                "residual_variance": residual,
                "noise_variance": noise,
                "noise_share": share,
                "noisy": bool(share > NOISE_SHARE_FLAG) if math.isfinite(share) else False,
            }
        )
    return pd.DataFrame(rows)


def analyze(design: Design, runs: pd.DataFrame) -> Analysis:
    """SALib's indices of the replicate means, with noise and convergence checks."""
    Yr = replicate_array(design, runs)
    Y = Yr.mean(axis=1)
    noise = noise_table(design, Yr)
    means = pd.DataFrame(Y, columns=list(design.spec.outputs))
    means.insert(0, "sample", np.arange(design.n_samples, dtype=np.int64))
    warnings: list[str] = []
    for row in noise.itertuples(index=False):
        if row.noisy:
            warnings.append(
                f"{row.output}: replicate noise is {row.noise_share:.0%} of its variance "
                f"(over {NOISE_SHARE_FLAG:.0%}); its indices partly measure noise: "
                "use more replicates"
            )
        elif not math.isfinite(row.variance) or row.variance == 0:
            warnings.append(f"{row.output}: does not vary across samples; no indices")
    if design.settings.replicates == 1:
        warnings.append("one replicate per sample: replicate noise cannot be told from sensitivity")
    second: pd.DataFrame | None = None
    if design.settings.method == "morris":
        indices = _morris(design, Y, Yr)
        key = "mu_star"
    else:
        indices, second, converged = _sobol(design, Y)
        warnings += converged
        key = "ST"
    indices = indices.merge(noise[["output", "noise_share"]], on="output", how="left")
    indices["rank"] = (
        indices.groupby("output", sort=False)[key]
        .rank(ascending=False, method="min", na_option="bottom")
        .astype(np.int64)
    )
    order = {o: i for i, o in enumerate(design.spec.outputs)}
    indices = indices.sort_values(
        ["output", "rank"], key=lambda c: c.map(order) if c.name == "output" else c
    ).reset_index(drop=True)
    return Analysis(design.settings.method, indices, noise, means, second, tuple(warnings))


def _varies(column: np.ndarray, scale: np.ndarray | None = None) -> bool:
    """True if ``column`` is finite and varies by more than rounding error (relative
    to the magnitude of ``scale``, default the column itself)."""
    if not np.all(np.isfinite(column)):
        return False
    size = float(np.max(np.abs(column if scale is None else scale), initial=0.0))
    return bool(np.ptp(column) > _RELATIVE_TOLERANCE * max(size, 1e-300))


# Differences below this share of an output's magnitude are floating-point rounding.
_RELATIVE_TOLERANCE = 1e-12


def _salib_analyze(
    design: Design, X: np.ndarray, Y: np.ndarray, **options: Any
) -> list[dict[str, np.ndarray] | None]:
    """SALib's analysis (``ProblemSpec.analyze_morris`` or ``analyze_sobol``) of each
    output column of ``Y``; None for an output that does not vary (or has NaN)."""
    spec, method = design.spec, design.settings.method
    varying = [j for j in range(Y.shape[1]) if _varies(Y[:, j])]
    out: list[dict[str, np.ndarray] | None] = [None] * Y.shape[1]
    if not varying:
        return out
    names = [spec.outputs[j] for j in varying]
    problem = spec.problem(outputs=names)
    problem.set_samples(X)
    problem.set_results(Y[:, varying] if len(varying) > 1 else Y[:, varying[0]])
    # One integer seed, not a generator: each output's bootstrap is then the same
    # whatever outputs the spec lists.
    seed = salib_seed(design.settings.seed, 1)
    if method == "morris":
        problem.analyze_morris(num_levels=design.settings.levels, seed=seed, **options)
    else:
        problem.analyze_sobol(seed=seed, **options)
    analysis = problem.analysis if len(varying) > 1 else {names[0]: problem.analysis}
    for j, name in zip(varying, names, strict=True):
        out[j] = {
            k: np.asarray(v, dtype=np.float64) for k, v in analysis[name].items() if k != "names"
        }
    return out


def _morris(design: Design, Y: np.ndarray, Yr: np.ndarray) -> pd.DataFrame:
    spec, settings = design.spec, design.settings
    names = spec.names
    noise_se = _morris_noise(design, Yr)
    results = _salib_analyze(
        design, design.X, Y, num_resamples=settings.resamples, conf_level=settings.conf_level
    )
    frames = []
    for j, output in enumerate(spec.outputs):
        result = results[j]
        if result is not None:
            columns = {c: result[c] for c in _MORRIS_COLUMNS}
        else:  # constant: every elementary effect is 0; NaN if undefined
            fill = 0.0 if np.all(np.isfinite(Y[:, j])) else math.nan
            columns = {c: np.full(len(names), fill) for c in _MORRIS_COLUMNS}
        frame = pd.DataFrame({"output": output, "parameter": names, **columns})
        frame["ee_noise_se"] = noise_se[:, j]
        frame["within_noise"] = frame["mu_star"] <= NOISE_FLOOR_SE * frame["ee_noise_se"]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


_MORRIS_COLUMNS: tuple[str, ...] = ("mu_star", "mu_star_conf", "mu", "sigma")
_SOBOL_KEYS_1: tuple[str, ...] = ("S1", "S1_conf", "ST", "ST_conf")


def _morris_noise(design: Design, Yr: np.ndarray) -> np.ndarray:
    """Per (parameter, output): root mean square over a parameter's steps of the
    standard error of the elementary effect, from its per-replicate values.

    With common random numbers the replicates of neighbouring points share their
    random draws, so this is the noise the Morris effects actually carry.
    """
    spec = design.spec
    d, R = len(spec.parameters), Yr.shape[1]
    n_outputs = Yr.shape[2]
    if R < 2:
        return np.full((d, n_outputs), math.nan)
    width = np.array([p.high - p.low for p in spec.parameters])
    sum_sq = np.zeros((d, n_outputs))
    count = np.zeros(d)
    X = design.X
    for t in range(design.settings.n):
        rows = slice(t * (d + 1), (t + 1) * (d + 1))
        steps = np.diff(X[rows], axis=0) / width  # (d, d): one changed parameter a row
        changed = np.argmax(np.abs(steps), axis=1)
        delta = steps[np.arange(d), changed]
        ee = np.diff(Yr[rows], axis=0) / delta[:, None, None]  # (d, R, outputs)
        np.add.at(sum_sq, changed, np.var(ee, axis=1, ddof=1) / R)
        np.add.at(count, changed, 1)
    return np.sqrt(sum_sq / np.maximum(count, 1)[:, None])


def _sobol(design: Design, Y: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame | None, list[str]]:
    """S1 and ST (and S2) at N and, for the convergence check, at N/2."""
    spec, settings = design.spec, design.settings
    names, d = spec.names, len(spec.parameters)
    options = {
        "calc_second_order": settings.second_order,
        "num_resamples": settings.resamples,
        "conf_level": settings.conf_level,
    }
    full = _salib_analyze(design, design.X, Y, **options)
    # Saltelli rows come in blocks of one base sample each: the first half is the
    # sample SALib would have drawn with N/2.
    half_rows = design.n_samples // 2
    half = _salib_analyze(design, design.X[:half_rows], Y[:half_rows], **options)
    frames, second_frames, warnings = [], [], []
    for j, output in enumerate(spec.outputs):
        fill = 0.0 if np.all(np.isfinite(Y[:, j])) else math.nan
        blank = {k: np.full(d, fill) for k in _SOBOL_KEYS_1}
        blank |= {"S2": np.full((d, d), fill), "S2_conf": np.full((d, d), fill)}
        f = full[j] or blank
        h = half[j] or blank
        frame = pd.DataFrame({"output": output, "parameter": names})
        for key in _SOBOL_KEYS_1:
            frame[key] = f[key]
        for key in _SOBOL_KEYS_1:
            frame[key.replace("_conf", "") + "_half" + ("_conf" if "_conf" in key else "")] = h[key]
        agree = np.ones(d, dtype=bool)
        for index in ("S1", "ST"):
            gap = np.abs(frame[index] - frame[f"{index}_half"]).to_numpy()
            allowed = (frame[f"{index}_conf"] + frame[f"{index}_half_conf"]).to_numpy()
            ok = ~(gap > allowed)  # NaN compares False: no verdict, no warning
            for i in np.flatnonzero(~ok):
                warnings.append(
                    f"{output}: {names[i]}: {index} is {frame[index][i]:.3f} "
                    f"(±{frame[f'{index}_conf'][i]:.3f}) at N={settings.n} but "
                    f"{frame[f'{index}_half'][i]:.3f} (±{frame[f'{index}_half_conf'][i]:.3f}) "
                    f"at N={settings.n // 2}: not converged, increase --n"
                )
            agree &= ok
        frame["converged"] = agree
        frames.append(frame)
        if settings.second_order:
            pairs = [(a, b) for a in range(d) for b in range(a + 1, d)]
            second_frames.append(
                pd.DataFrame(
                    {
                        "output": output,
                        "parameter_1": [names[a] for a, _ in pairs],
                        "parameter_2": [names[b] for _, b in pairs],
                        "S2": [f["S2"][a, b] for a, b in pairs],
                        "S2_conf": [f["S2_conf"][a, b] for a, b in pairs],
                    }
                )
            )
    second = pd.concat(second_frames, ignore_index=True) if second_frames else None
    return pd.concat(frames, ignore_index=True), second, warnings
