"""ABC-SMC with pyabc: sampling the posterior of the free parameters.

``run_abc(problem, settings, db_path, backend)`` runs (or, with ``resume=True``,
continues) pyabc's ABC-SMC for ``problem`` and returns the last generation as a
weighted posterior sample. The pieces:

- **model**: each particle runs ``calibration.problem.simulate_summary`` (R
  replicates side by side, the targets' statistics, their summary) on the
  ``simulation.executors`` backend: this process, a local process pool or Dask.
  pyabc itself (proposals, distances, acceptance) stays in this process: a few
  threads hand particles to the backend and wait for them, so workers never
  import pyabc (which takes longer than many simulations).
- **distance and epsilon**: ``calibration.distance`` (adaptive, in sampling
  errors, plus pattern penalties; epsilon floored at the 95% threshold, where the
  run stops after ``Settings.refine`` more generations at the floor).
- **proposals**: pyabc's multivariate normal kernel around the last generation's
  particles, with twice its default covariance (``KERNEL_SCALING``).
- **storage**: pyabc's SQLite database ``db_path``. pyabc writes each generation
  when it completes, so an interrupted run resumes from its last complete
  generation (the generation under way is sampled again).
- **progress**: one line per generation on ``report`` (epsilon, acceptance rate,
  time, an estimate of the time left).

Reproducibility: each particle's simulated statistics depend only on its
parameter values and the master seed (``calibration.problem.particle_seeds``),
so any posterior particle can be re-simulated exactly. pyabc's own draws
(proposals from the prior and the perturbation kernel) come from NumPy's legacy
global generator, which pyabc reseeds from the operating system's entropy in
every job; our code may not seed it (lint rule NPY002). Two calibrations with the
same settings therefore give different, statistically equivalent posterior
samples; everything downstream of a posterior sample (the calibrated scenario,
the fit report's simulations, posterior-ensemble runs) is reproducible from the
files written.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np
import pandas as pd
import pyabc
from pyabc.weighted_statistics import effective_sample_size

from calibration.distance import FlooredMedianEpsilon, TargetDistance, acceptance_threshold
from calibration.problem import Problem, simulate_summary
from calibration.settings import Settings, duration_text
from simulation.executors import Backend

DB_NAME = "abc.db"
# Particles handed to the backend at once, per worker slot: enough to keep workers busy
# while this process does pyabc's bookkeeping.
_IN_FLIGHT_PER_SLOT = 2
# The perturbation kernel's covariance, as a multiple of pyabc's default (Silverman's rule
# on the weighted particles). Most free parameters stay close to their (flat) priors, and a
# wider kernel fits such posteriors better, which keeps importance weights even: in trial
# runs of the ENRICH calibration (300 particles) the effective sample size of the last
# generations was 120-190 with 2, 5-40 with pyabc's 1 and 7-20 with 0.5.
KERNEL_SCALING = 2.0
_ETA_GROWTH_MAX = 1.3
_ETA_GROWTH_DEFAULT = 1.15

Report = Callable[[str], None]


@dataclass(frozen=True)
class AbcResult:
    """The last generation as a weighted posterior sample, and how the run went.

    ``posterior``: one row per particle, a column per parameter (natural scale),
    ``weight`` (summing to 1) and ``distance``. ``generations``: one row per
    generation (``generation``, ``epsilon``, ``particles``, ``simulations``,
    ``acceptance_rate``, ``ess``, ``wall_time_s``). ``scales``: the sampling error
    each quantitative target was measured in, last generation.
    """

    posterior: pd.DataFrame
    generations: pd.DataFrame
    epsilon_floor: float
    stop_reason: str
    reached_floor: bool
    scales: dict[str, float]


def epsilon_floor(problem: Problem, settings: Settings) -> float:
    if settings.min_epsilon is not None:
        return settings.min_epsilon
    return acceptance_threshold(problem.targets)


def run_abc(
    problem: Problem,
    settings: Settings,
    db_path: Path,
    backend: Backend,
    *,
    resume: bool = False,
    report: Report | None = None,
) -> AbcResult:
    """Run ABC-SMC into ``db_path`` (a new database), or continue the run there
    (``resume``; a missing database starts afresh) until epsilon has reached its
    floor and ``settings.refine`` more generations have run there, or
    ``settings.generations`` generations exist."""
    if settings.replicates != problem.replicates or settings.seed != problem.seed:
        raise ValueError("settings and problem disagree on replicates or seed")
    if not resume and db_path.exists():
        raise FileExistsError(f"{db_path} exists: resume it, or start in a new place")
    say = report or (lambda message: None)
    floor = epsilon_floor(problem, settings)
    model = _Model(problem, backend)
    db = f"sqlite:///{db_path.resolve()}"
    fresh = not db_path.exists()
    used = TargetDistance(problem.targets, problem.replicates)  # the last one that ran
    with _sampler(backend, settings, floor, say, model) as sampler, _quiet_pyabc():
        while True:
            # A new ABCSMC for every run, continuing from the database: one ABCSMC object
            # run twice would recalibrate its distance and epsilon on its first run's
            # prior sample, which it caches.
            distance = TargetDistance(problem.targets, problem.replicates)
            abc = pyabc.ABCSMC(
                model,
                problem.priors.distribution(),
                distance,
                population_size=settings.population,
                sampler=sampler,
                eps=FlooredMedianEpsilon(floor),
                transitions=pyabc.MultivariateNormalTransition(scaling=KERNEL_SCALING),
            )
            history = abc.new(db, problem.targets.observed()) if fresh else abc.load(db, 1)
            fresh = False
            todo = _generations_to_run(history, floor, settings)
            if todo == 0:
                break
            # Down to the floor in one run; then each refining generation on its own, at
            # the floor (pyabc stops a run once epsilon is at its minimum).
            abc.run(minimum_epsilon=floor, max_nr_populations=todo)
            used = distance
    return _result(history, problem, used, floor, settings)


def _generations_to_run(history: Any, floor: float, settings: Settings) -> int:
    """How many generations the next ``abc.run`` may add: until epsilon reaches its
    floor, then one at a time for ``settings.refine`` more at the floor (each an
    importance-sampling step towards the same posterior, raising its effective
    sample size), never beyond ``settings.generations`` in all."""
    done = history.max_t + 1
    left = settings.generations - done
    if left <= 0:
        return 0
    if done == 0:
        return left
    epsilons = history.get_all_populations().query("t >= 0")["epsilon"].to_numpy(float)
    at_floor = int((epsilons <= floor).sum())
    if at_floor == 0:
        return left
    return 1 if at_floor <= settings.refine else 0


def _result(
    history: Any, problem: Problem, distance: TargetDistance, floor: float, settings: Settings
) -> AbcResult:
    t = history.max_t
    if t < 0:
        raise RuntimeError("the run has no complete generation yet")
    population = history.get_population(t=t)
    rows = []
    for particle in population.particles:
        row = problem.priors.from_abc(particle.parameter)
        row["weight"] = float(particle.weight)
        row["distance"] = float(particle.distance)
        rows.append(row)
    posterior = pd.DataFrame(rows)
    posterior["weight"] /= posterior["weight"].sum()
    pops = history.get_all_populations().query("t >= 0").reset_index(drop=True)
    ess = [effective_sample_size(history.get_weighted_distances(t=int(g))["w"]) for g in pops["t"]]
    generations = pd.DataFrame(
        {
            "generation": pops["t"].astype(int),
            "epsilon": pops["epsilon"].astype(float),
            "particles": pops["particles"].astype(int),
            "simulations": pops["samples"].astype(int),
            "acceptance_rate": pops["particles"] / pops["samples"],
            "ess": np.asarray(ess, dtype=float),
            "wall_time_s": pops["wall_time"].astype(float) if "wall_time" in pops else math.nan,
        }
    )
    reached = bool(generations["epsilon"].iloc[-1] <= floor)
    if reached:
        first = int((generations["epsilon"] <= floor).to_numpy().argmax()) + 1
        reason = (
            f"epsilon reached its floor {floor:.3g} (every target within sampling error) "
            f"in generation {first}"
        )
        if t + 1 > first:
            reason += f", refined by {t + 1 - first} more at the floor"
    else:
        reason = (
            f"stopped after {t + 1} of at most {settings.generations} generation(s) with "
            f"epsilon {generations['epsilon'].iloc[-1]:.3g} still above its floor {floor:.3g}: "
            "the posterior is wider than the targets alone would allow (more generations "
            "would tighten it)"
        )
    scales = distance.scales.get(max(distance.scales), {}) if distance.scales else {}
    return AbcResult(posterior, generations, floor, reason, reached, scales)


class _Model:
    """pyabc's model: one particle's summary, simulated on the backend.

    Called from the sampler's threads; each call waits for its simulation. A local
    process pool whose worker died is restarted (as ``simulation.runner`` does) and
    the particle resubmitted."""

    def __init__(self, problem: Problem, backend: Backend) -> None:
        self.problem = problem
        self.backend = backend
        self.stopping = False  # set when the run ends with an error: no pool restarts
        self._lock = threading.Lock()

    def __call__(self, parameter: Mapping[str, float]) -> dict[str, float]:
        values = self.problem.priors.from_abc(parameter)
        while True:
            executor = self.backend.executor
            try:
                return self.backend.submit(simulate_summary, self.problem, values).result()
            except BrokenProcessPool:
                with self._lock:
                    if self.stopping:
                        raise
                    if self.backend.executor is executor and not self.backend.recover():
                        raise


class _Progress:
    """Mixed into a pyabc sampler: one line per generation on ``report``."""

    report: Report
    generations: int
    floor: float
    refine: int
    times: list[float]
    epsilons: list[float]

    def _setup_progress(self, report: Report, settings: Settings, floor: float) -> None:
        self.report = report
        self.generations = settings.generations
        self.refine = settings.refine
        self.floor = floor
        self.times = []
        self.epsilons = []

    def sample_until_n_accepted(
        self,
        n: int,
        simulate_one: Callable,
        t: int,
        *,
        max_eval: float = np.inf,
        all_accepted: bool = False,
        ana_vars: Any = None,
    ) -> Any:
        start = perf_counter()
        sample = super().sample_until_n_accepted(  # type: ignore[misc]
            n, simulate_one, t, max_eval=max_eval, all_accepted=all_accepted, ana_vars=ana_vars
        )
        elapsed = perf_counter() - start
        evaluations = self.nr_evaluations_  # type: ignore[attr-defined]
        if t < 0 or all_accepted:
            self.report(
                f"prior sample (sets the distance's scales): {evaluations} simulations, "
                f"{duration_text(elapsed)}"
            )
            return sample
        eps = float(ana_vars.eps(t)) if ana_vars is not None else math.nan
        self.times.append(elapsed)
        self.epsilons.append(eps)
        ess = effective_sample_size(np.array([p.weight for p in sample.accepted_particles]))
        line = (
            f"generation {t + 1} of at most {self.generations}: epsilon {eps:.3g} "
            f"(floor {self.floor:.3g}), accepted {n} of {evaluations} "
            f"({n / max(evaluations, 1):.0%}), ESS {ess:.0f}, {duration_text(elapsed)}"
        )
        expected = self._generations_expected(self.generations - (t + 1))
        if expected > 0:
            line += f"; about {duration_text(self._eta(expected))} to go"
        self.report(line)
        return sample

    def _generations_expected(self, left: int) -> int:
        """Generations still to come: at the floor, the refining ones left; above it,
        as many as epsilon needs to reach the floor shrinking as it last did, plus
        the refining ones (never more than ``left``)."""
        eps = self.epsilons[-1]
        if eps <= self.floor:
            at_floor = sum(e <= self.floor for e in self.epsilons)
            return max(0, min(left, self.refine + 1 - at_floor))
        if len(self.epsilons) > 1 and 0 < eps < self.epsilons[-2] and self.floor > 0:
            ratio = eps / self.epsilons[-2]
            steps = math.ceil(math.log(self.floor / eps) / math.log(ratio))
            return min(left, steps + self.refine)
        return left

    def _eta(self, generations: int) -> float:
        """Generations take longer as acceptance falls: assume each still to come
        takes as much longer than the last as the last did than the one before
        (between 1 and ``_ETA_GROWTH_MAX`` times)."""
        last = self.times[-1]
        growth = _ETA_GROWTH_DEFAULT
        if len(self.times) > 1 and self.times[-2] > 0:
            growth = min(max(last / self.times[-2], 1.0), _ETA_GROWTH_MAX)
        return sum(last * growth**k for k in range(1, generations + 1))


class _ThreadSampler(_Progress, pyabc.ConcurrentFutureSampler):
    pass


class _SingleCoreSampler(_Progress, pyabc.SingleCoreSampler):
    pass


class _SamplerContext:
    """The sampler for ``backend``: pyabc's single-core sampler in this process, or
    threads handing particles to the backend's workers; on leaving with an error
    (Ctrl-C) the threads are dropped without waiting for their particles."""

    def __init__(
        self, backend: Backend, settings: Settings, floor: float, report: Report, model: _Model
    ) -> None:
        self.model = model
        self.threads: ThreadPoolExecutor | None = None
        self.sampler: _ThreadSampler | _SingleCoreSampler
        if backend.kind == "in-process":
            self.sampler = _SingleCoreSampler()
        else:
            in_flight = backend.slots * _IN_FLIGHT_PER_SLOT
            self.threads = ThreadPoolExecutor(in_flight, thread_name_prefix="peersim-abc")
            self.sampler = _ThreadSampler(
                cfuture_executor=self.threads, client_max_jobs=in_flight, default_pickle=False
            )
        self.sampler._setup_progress(report, settings, floor)

    def __enter__(self) -> _ThreadSampler | _SingleCoreSampler:
        return self.sampler

    def __exit__(self, *exc: object) -> None:
        failed = exc[0] is not None
        self.model.stopping = failed
        if self.threads is not None:
            self.threads.shutdown(wait=not failed, cancel_futures=True)


def _sampler(
    backend: Backend, settings: Settings, floor: float, report: Report, model: _Model
) -> _SamplerContext:
    return _SamplerContext(backend, settings, floor, report, model)


@contextlib.contextmanager
def _quiet_pyabc() -> Iterator[None]:
    """pyabc logs every generation at INFO; our progress lines replace that."""
    logger = logging.getLogger("ABC")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
