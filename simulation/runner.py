"""The experiment runner: every batch of simulation runs goes through ``run_jobs``.

``peersim run`` uses it, and so should anything that runs many simulations
(comparisons, calibration, sensitivity analysis). One job is one call of the
model, ``simulation.run(scenario, seed)``::

    from simulation.runner import ExecutorSpec, Job, run_jobs

    jobs = [
        Job(f"{name}/{i}", scenario, replicate_seed(seed, i), {"scenario": name, "replicate": i})
        for name, scenario in scenarios.items()
        for i in range(100)
    ]
    sweep = run_jobs(jobs, "out/compare", executor=ExecutorSpec(workers=4))
    trial = sweep.table("trial")  # one row per job, tag columns first, in job order
    sweep.failures                # one row per failed job (empty if none)

The API
-------
``Job(key, scenario, seed, tags)``
    ``key`` names the job uniquely within a sweep (resume skips finished keys);
    ``seed`` is a ``numpy.random.SeedSequence`` or an int; ``tags`` (str, int or
    float values; the same names in every job) become the leading columns of
    every output row. ``replicate_jobs`` makes the jobs of ``n`` replicates, as a
    ``LazyJobs`` sequence whose jobs are made when asked for (``LazyJobs(n, make,
    key)`` for others, ``LazyJobs.concat`` to join several).
``run_jobs(jobs, out_dir, *, tables, executor, progress, resume, batch_size, simulate, desc)``
    Runs the jobs and streams each finished task's rows to Parquet shards in
    ``out_dir``; returns a ``SweepResult``. ``tables`` names the built-in tables
    (``"trial"``, ``"site_weeks"``, ``"participants"``) or maps names to
    functions ``Results -> DataFrame`` computed on the workers (module-level, so
    they can be pickled; ``None`` for a built-in table, which is built faster
    than by a function): calibration can ship back a handful of summary
    statistics instead of whole tables. ``executor`` is an ``ExecutorSpec``
    (local processes by default, all cores; ``scheduler="local"`` or
    ``"tcp://HOST:PORT"`` for Dask), an open ``Backend`` from ``open_executor``
    (reuse one across many calls to start workers once), or any
    ``concurrent.futures.Executor``. ``simulate`` (default
    ``simulation.run_batch``) is called as ``simulate(scenario, seeds)`` and must
    be picklable too; tests use it to make jobs fail.
``SweepResult``
    ``.table(name, columns=None)`` reads the shards into one DataFrame sorted by
    job order (and, within a job, in the model's row order), so it is the same
    whatever the executor, worker count, completion order or interruptions;
    ``.iter_parts(name)`` yields the shards one at a time (unordered) for
    summaries that must not hold everything in memory; ``.failures``, ``.n_ok``,
    ``.n_failed``, ``.complete``.
``open_executor(spec)``, ``ExecutorSpec`` (from ``simulation.executors``)
    Start workers once and pass the open ``Backend`` to several ``run_jobs``.

Guarantees
----------
- Same numbers whatever runs them: each job's result depends only on its
  scenario and seed; jobs of one scenario are simulated side by side (up to
  ``batch_size`` per model via ``simulation.run_batch``, which equals running
  them one by one), so batching never changes a number.
- Memory stays flat: jobs given as a ``LazyJobs`` (``replicate_jobs`` and the
  other job makers return one) are made as they are needed, at most about twice
  as many tasks as there are workers are in flight, and workers turn their
  results into Parquet bytes, the parent only writes them. What grows with the
  number of jobs is 17 bytes a job while they run (a hash of each key, to find
  duplicates) and, reading the results, the record of where each job's rows are
  (about 135 bytes a job).
- Nothing lost. Layout of ``out_dir``::

      sweep.json                          format and tables of the sweep
      shards/<table>/part-NNNNN.parquet   rows of the jobs of one task
      shards/_commits/part-NNNNN.json     the commit record of that task
      failures.parquet                    failed jobs, written at the end (if any)

  Every file is written under a temporary name and renamed. A task's shards
  count only once its commit record exists, and the record is written last, so a
  sweep stopped at any moment (Ctrl-C, ``kill -9``, a lost machine) resumes with
  ``resume=True``: finished jobs are skipped, half-written shards are removed, no
  job's rows appear twice. A resumed job must have the same scenario, seed and
  tags as before (checked by fingerprint). Failed jobs are retried on resume.
- A job that raises is recorded (key, tags, seed, scenario name and hash, error
  type, message and traceback) and the others go on; if a side-by-side batch
  raises, its jobs are rerun one by one so only the failing ones are lost.
  A local worker process that dies is replaced (up to 3 times) and its tasks
  rerun; Dask reruns the tasks of a lost worker itself.
- What the sweep cannot get past (an ``OSError`` while saving, such as a full disk;
  workers that keep dying; a lost Dask scheduler) raises ``SweepAborted``, with
  what finished saved for a resume.
- Ctrl-C raises ``SweepInterrupted`` (a ``KeyboardInterrupt``) after stopping the
  workers; finished shards stay and the sweep resumes. So do SIGTERM and SIGHUP
  inside ``simulation.executors.stop_signals_interrupt()`` (the command line sets
  it), with their ``signum``. Workers never outlive this process, however it ends
  (``simulation.executors.watch_parent``).

``run_replicates`` (replicates of one scenario gathered into a ``ReplicateSet``
in memory) is a convenience on top, for small runs and tests.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import io
import itertools
import json
import math
import operator
import os
import re
import sys
import tempfile
import traceback
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, CancelledError, Executor, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, overload

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from simulation import Results, Scenario, replicate_seed
from simulation import run_batch as simulate_side_by_side
from simulation.executors import (
    Backend,
    ExecutorSpec,
    as_backend,
    interrupt_signal,
    open_executor,
)
from simulation.outputs import scenario_sha256

__all__ = [
    "BUILT_IN_TABLES",
    "ExecutorSpec",
    "Job",
    "LazyJobs",
    "ReplicateSet",
    "ReplicatesFailedError",
    "SweepAborted",
    "SweepError",
    "SweepInterrupted",
    "SweepResult",
    "auto_spec",
    "job_keys",
    "open_executor",
    "replicate_jobs",
    "run_jobs",
    "run_replicates",
]

Seed = np.random.SeedSequence | int
TagValue = str | int | float
TableFn = Callable[[Results], pd.DataFrame]
SimulateFn = Callable[[Scenario, Sequence[Seed]], Sequence[Results]]

BUILT_IN_TABLES: tuple[str, ...] = ("trial", "site_weeks", "participants")
# Service mode's built-in table too (asked for by name: a trial has no rows of it).
SERVICE_TABLES: tuple[str, ...] = (*BUILT_IN_TABLES, "site_years")
_STACKED_ARRAYS = {
    "site_weeks": "site_week_arrays",
    "participants": "participant_arrays",
    "site_years": "site_year_arrays",
}
# Replicates one model simulates side by side; the speed-up levels off by about 10.
SIDE_BY_SIDE = 10
# Tasks kept submitted per worker: enough to keep workers busy, few enough for flat memory.
_IN_FLIGHT_PER_SLOT = 2
# Rows in one piece of ``SweepResult.iter_table`` (about 3-4 MB of ENRICH participants).
PIECE_ROWS = 1 << 15
# Below this many jobs a progress bar is more noise than help.
_PROGRESS_MIN_JOBS = 4
_FORMAT = "peersim-sweep/1"
_KEY_COLUMN = "_job_key"
_COMMITS = "_commits"
_PART = re.compile(r"^part-(\d+)\.(parquet|json)$")
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_TAG_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_FAILURE_COLUMNS = (
    "key",
    "seed",
    "scenario_name",
    "scenario_sha256",
    "error_type",
    "error_message",
    "traceback",
)


class SweepError(Exception):
    """A sweep that cannot run as asked: a clash with what ``out_dir`` already holds,
    duplicate keys, inconsistent tags. Nothing has been run or written."""


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, SIGHUP: ``signum``) during a sweep; finished jobs are saved
    in ``out_dir`` and resume."""

    def __init__(self, out_dir: Path, n_done: int, n_jobs: int, signum: int | None = None) -> None:
        super().__init__(f"interrupted with {n_done} of {n_jobs} jobs saved in {out_dir}")
        self.out_dir = out_dir
        self.n_done = n_done
        self.n_jobs = n_jobs
        self.signum = signum


class SweepAborted(Exception):
    """The sweep cannot go on: the disk is full or unwritable (an ``OSError`` while
    saving), worker processes kept dying, or the Dask scheduler was lost. What
    finished is saved in ``out_dir`` and resumes once the cause is fixed; ``reason``
    says what happened, in one line."""

    def __init__(self, reason: str, out_dir: Path, n_done: int, n_jobs: int) -> None:
        super().__init__(f"{reason}; {n_done} of {n_jobs} jobs are saved in {out_dir}")
        self.reason = reason
        self.out_dir = out_dir
        self.n_done = n_done
        self.n_jobs = n_jobs


class _ExecutorLost(Exception):
    """Raised inside ``_drive`` when the workers are gone for good."""


def os_error_text(e: OSError) -> str:
    """An ``OSError`` in one line: what failed on which file, and why."""
    why = e.strerror or str(e) or type(e).__name__
    return f"cannot write {e.filename}: {why}" if e.filename else why


@dataclass(frozen=True)
class Job:
    """One simulation run: ``simulation.run(scenario, seed)``, labelled by ``tags``."""

    key: str
    scenario: Scenario
    seed: Seed
    tags: Mapping[str, TagValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise ValueError(f"a job key must be a non-empty string (got {self.key!r})")
        if not isinstance(self.scenario, Scenario):
            raise ValueError(f"job {self.key!r}: scenario must be a Scenario")
        _check_seed(self.key, self.seed)
        tags: dict[str, TagValue] = {}
        for name, value in self.tags.items():
            if not isinstance(name, str) or not _TAG_NAME.match(name):
                raise ValueError(
                    f"job {self.key!r}: tag name {name!r} must be letters, digits and _, "
                    "starting with a letter"
                )
            tags[name] = _tag_value(self.key, name, value)
        object.__setattr__(self, "tags", tags)


class LazyJobs(Sequence[Job]):
    """A sequence of jobs made one at a time when asked for: ``make(i)`` gives job
    ``i`` and ``key(i)`` its key alone. ``run_jobs`` holds only the jobs it is
    working on, so a sweep's memory does not grow with its length; a list of jobs
    works too, held whole."""

    __slots__ = ("_key", "_make", "_n")

    def __init__(self, n: int, make: Callable[[int], Job], key: Callable[[int], str]) -> None:
        if n < 0:
            raise ValueError(f"a sequence of jobs cannot have {n} jobs")
        self._n, self._make, self._key = n, make, key

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> Job: ...
    @overload
    def __getitem__(self, i: slice) -> list[Job]: ...
    def __getitem__(self, i: int | slice) -> Job | list[Job]:
        if isinstance(i, slice):
            return [self._make(k) for k in range(*i.indices(self._n))]
        return self._make(self._position(i))

    def __add__(self, other: Sequence[Job]) -> LazyJobs:
        return LazyJobs.concat([self, other])

    def __radd__(self, other: Sequence[Job]) -> LazyJobs:
        return LazyJobs.concat([other, self])

    def __repr__(self) -> str:
        return f"LazyJobs({self._n} jobs)"

    def key(self, i: int) -> str:
        """The key of job ``i``, without making the job."""
        return self._key(self._position(i))

    def _position(self, i: int) -> int:
        k = operator.index(i)
        k = k + self._n if k < 0 else k
        if not 0 <= k < self._n:
            raise IndexError(f"job {i} of {self._n}")
        return k

    @classmethod
    def concat(cls, parts: Sequence[Sequence[Job]]) -> LazyJobs:
        """The jobs of ``parts``, one after another, still made when asked for."""
        starts = list(itertools.accumulate((len(p) for p in parts), initial=0))

        def locate(i: int) -> tuple[Sequence[Job], int]:
            k = bisect.bisect_right(starts, i) - 1
            return parts[k], i - starts[k]

        def make(i: int) -> Job:
            part, j = locate(i)
            return part[j]

        def key(i: int) -> str:
            part, j = locate(i)
            return part.key(j) if isinstance(part, LazyJobs) else part[j].key

        return cls(starts[-1], make, key)


def job_keys(jobs: Sequence[Job]) -> Sequence[str]:
    """The jobs' keys in order: a view that makes no job where ``jobs`` is lazy."""
    if isinstance(jobs, LazyJobs):
        return _Keys(jobs)
    return tuple(job.key for job in jobs)


class _Keys(Sequence[str]):
    __slots__ = ("_jobs",)

    def __init__(self, jobs: LazyJobs) -> None:
        self._jobs = jobs

    def __len__(self) -> int:
        return len(self._jobs)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self._jobs.key(k) for k in range(*i.indices(len(self._jobs)))]
        return self._jobs.key(i)


def replicate_jobs(
    scenario: Scenario,
    master_seed: int,
    n_replicates: int,
    *,
    tags: Mapping[str, TagValue] | None = None,
    key_prefix: str = "",
) -> LazyJobs:
    """Jobs for replicates ``0 .. n_replicates - 1`` of ``scenario``, made when asked for.

    Replicate ``i`` runs with ``replicate_seed(master_seed, i)``, is keyed
    ``f"{key_prefix}replicate-{i}"`` and tagged ``{**tags, "replicate": i}``.
    """
    if n_replicates < 1:
        raise ValueError(f"n_replicates must be at least 1 (got {n_replicates})")
    if master_seed < 0:
        raise ValueError(f"master_seed must be >= 0 (got {master_seed})")
    base = dict(tags or {})

    def key(i: int) -> str:
        return f"{key_prefix}replicate-{i}"

    def make(i: int) -> Job:
        return Job(key(i), scenario, replicate_seed(master_seed, i), {**base, "replicate": i})

    return LazyJobs(n_replicates, make, key)


# --- running -----------------------------------------------------------------------


def run_jobs(
    jobs: Iterable[Job],
    out_dir: str | os.PathLike[str],
    *,
    tables: Sequence[str] | Mapping[str, TableFn | None] = BUILT_IN_TABLES,
    executor: ExecutorSpec | Backend | Executor | None = None,
    progress: bool | None = None,
    resume: bool = False,
    batch_size: int = SIDE_BY_SIDE,
    simulate: SimulateFn | None = None,
    desc: str | None = None,
) -> SweepResult:
    """Run ``jobs``, streaming their tables to Parquet shards in ``out_dir``.

    ``out_dir`` must not exist or be empty unless ``resume`` is true; with
    ``resume`` an existing sweep there is continued (and a missing one started).
    ``progress=None`` shows a bar (rate and ETA) on an interactive stderr.
    ``ExecutorSpec()`` (the default) uses all cores; a sweep of at most
    ``batch_size`` jobs then runs in this process, as starting workers would cost
    more than it saves (the numbers are the same either way).

    Failed jobs do not raise: see ``SweepResult.failures``. Raises ``SweepError``
    before running anything if ``out_dir`` or the jobs do not fit, and
    ``SweepInterrupted`` on Ctrl-C.
    """
    job_list: Sequence[Job] = jobs if isinstance(jobs, Sequence) else list(jobs)
    table_spec = _table_spec(tables)
    if simulate is None:  # looked up now, not at import, so tests can patch it
        simulate = simulate_side_by_side
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1 (got {batch_size})")
    identity = _Identity()
    tag_names, counts = _check_jobs(job_list, identity)  # before anything is written
    out = Path(out_dir)
    with _SweepStore.open(out, tuple(table_spec), resume=resume) as store:
        if store.commits:  # resuming: finished jobs are skipped, the others counted again
            counts = _pending_counts(job_list, identity, store)
            store.commits.clear()  # checked; kept no longer (store.done says what is done)
        n_pending = sum(counts.values())
        n_done = len(job_list) - n_pending
        spec = executor if executor is not None else ExecutorSpec()
        if not n_pending:  # a finished sweep: nothing to start workers for
            spec = ExecutorSpec(workers=1)
        elif isinstance(spec, ExecutorSpec):
            spec = auto_spec(spec, n_pending, batch_size)
        show = _show_progress(progress, n_pending)
        with (
            tqdm(
                total=len(job_list),
                initial=n_done,
                unit="run",
                desc=desc,
                disable=not show,
                file=sys.stderr,
                smoothing=0.05,
            ) as bar,
            _backend(spec) as backend,
        ):
            tasks = _tasks(
                job_list,
                store.done,
                counts,
                identity,
                tag_names=tag_names,
                tables=table_spec,
                simulate=simulate,
                batch_size=batch_size,
                slots=backend.slots,
            )
            try:
                _drive(backend, tasks, store=store, identity=identity, bar=bar)
            except KeyboardInterrupt as e:
                signum = interrupt_signal(e)
                n_ok = n_done + store.n_ok_new
                raise SweepInterrupted(out, n_ok, len(job_list), signum) from None
            except (OSError, _ExecutorLost) as e:
                reason = os_error_text(e) if isinstance(e, OSError) else str(e)
                n_ok = n_done + store.n_ok_new
                raise SweepAborted(reason, out, n_ok, len(job_list)) from e
        result = SweepResult(out, job_keys(job_list), tuple(table_spec))
        store.write_failures(result.failures)
    return result


def auto_spec(spec: ExecutorSpec, n_jobs: int, batch_size: int = SIDE_BY_SIDE) -> ExecutorSpec:
    """``spec``, except that "all cores" (``workers=None``, no scheduler) for at most
    ``batch_size`` jobs means this process: starting workers would cost more than
    they save; and that a local pool or cluster never gets more workers than there
    are jobs (``--workers 1000`` for 10 runs starts 10). Otherwise an explicit
    worker count is honoured."""
    if spec.workers is None and spec.scheduler is None and n_jobs <= batch_size:
        return ExecutorSpec(workers=1)
    if spec.scheduler in (None, "local") and spec.n_workers > max(1, n_jobs):
        return ExecutorSpec(workers=max(1, n_jobs), scheduler=spec.scheduler)
    return spec


def _drive(
    backend: Backend,
    tasks: Iterator[_Task],
    *,
    store: _SweepStore,
    identity: _Identity,
    bar: tqdm,
) -> None:
    """Keep about two tasks per worker submitted, taking them from ``tasks`` only
    as they are needed; commit each as it finishes."""
    retry: deque[_Task] = deque()  # the tasks of a lost pool, first in line again
    window = 1 if backend.kind == "in-process" else backend.slots * _IN_FLIGHT_PER_SLOT
    in_flight: dict[Future[_TaskOutput], _Task] = {}
    n_failed = 0
    try:
        while True:
            _submit(backend, in_flight, window, retry, tasks)
            if not in_flight:
                return
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            lost: list[_Task] = []
            for future in sorted(finished, key=lambda f: in_flight[f].index):
                task = in_flight.pop(future)
                output = _task_output(future, task, backend)
                if output is None:
                    lost.append(task)
                    continue
                store.commit(output, task, identity)
                n_failed += len(output.failed)
                bar.update(len(task.keys))
                if n_failed:
                    bar.set_postfix(failed=n_failed, refresh=False)
            if lost:
                # Every task still in flight dies with the pool: resubmit all, in job order.
                lost += in_flight.values()
                in_flight.clear()
                retry.extendleft(sorted(lost, key=lambda t: t.index, reverse=True))
                if not backend.recover():
                    raise _ExecutorLost("worker processes kept dying")
    except BaseException:
        for future in in_flight:
            future.cancel()
        raise


def _submit(
    backend: Backend,
    in_flight: dict[Future[_TaskOutput], _Task],
    window: int,
    retry: deque[_Task],
    tasks: Iterator[_Task],
) -> None:
    """Submit tasks, those to retry first, until ``window`` are in flight or none is left."""
    while len(in_flight) < window:
        task = retry.popleft() if retry else next(tasks, None)
        if task is None:
            return
        in_flight[backend.submit(run_task, task)] = task


def _task_output(future: Future[_TaskOutput], task: _Task, backend: Backend) -> _TaskOutput | None:
    """What a finished task gave; None if its worker died (the pool is then unusable).

    A task never raises by itself (``run_task`` records its jobs' errors), so a
    cancelled future (nobody here cancels one still waited for) or a connection error
    means the executor is gone, a Dask scheduler lost say: ``_ExecutorLost``, which
    stops the sweep for a resume, rather than a failure of every job still to come."""
    try:
        return future.result()
    except BrokenProcessPool:
        return None
    except (CancelledError, OSError) as e:
        raise _ExecutorLost(f"lost {backend.description} ({type(e).__name__})") from e
    except Exception as e:  # the task could not run at all: record its jobs as failed
        return _all_failed(task, e)


@contextlib.contextmanager
def _backend(spec: ExecutorSpec | Backend | Executor) -> Iterator[Backend]:
    if isinstance(spec, ExecutorSpec):
        with open_executor(spec) as backend:
            yield backend
    elif isinstance(spec, Backend):
        yield spec
    else:
        yield as_backend(spec)


def _show_progress(progress: bool | None, n_jobs: int) -> bool:
    if progress is not None:
        return progress
    return n_jobs >= _PROGRESS_MIN_JOBS and sys.stderr.isatty()


# --- jobs and tasks ---------------------------------------------------------------


class _Identity:
    """Scenario hashes (one per scenario object, computed once) and job fingerprints:
    a job's identity is its scenario's hash, its seed and its tags."""

    # Scenarios whose hash is kept: jobs made on demand may make a scenario per job.
    _N_KEPT = 4096

    def __init__(self) -> None:
        # by id(), keeping each scenario alive while its hash is kept, so that no
        # other object takes its id meanwhile; the least recently used goes first
        self._hashes: OrderedDict[int, tuple[Scenario, str]] = OrderedDict()

    def scenario_hash(self, scenario: Scenario) -> str:
        known = self._hashes.get(id(scenario))
        if known is None:
            known = self._hashes[id(scenario)] = (scenario, scenario_sha256(scenario))
            if len(self._hashes) > self._N_KEPT:
                self._hashes.popitem(last=False)
        else:
            self._hashes.move_to_end(id(scenario))
        return known[1]

    def fingerprint(self, scenario: Scenario, seed: Seed, tags: Mapping[str, TagValue]) -> str:
        # pool_size is part of a SeedSequence's identity; a plain int seed has none.
        pool = seed.pool_size if isinstance(seed, np.random.SeedSequence) else None
        text = f"{self.scenario_hash(scenario)}|{seed_label(seed)}|{pool}|{sorted(tags.items())!r}"
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def seed_label(seed: Seed) -> str:
    """A seed as text: ``"ENTROPY"`` or ``"ENTROPY/K1/K2"`` for ``SeedSequence(ENTROPY,
    spawn_key=(K1, K2))`` (replicate ``i`` of master seed ``s`` is ``"s/i"``)."""
    if isinstance(seed, np.random.SeedSequence):
        entropy = seed.entropy
        text = str(entropy) if not isinstance(entropy, Sequence) else ",".join(map(str, entropy))
        return "/".join([text, *(str(k) for k in seed.spawn_key)])
    return str(int(seed))


@dataclass(frozen=True)
class _Task:
    """Jobs of one scenario, simulated side by side on one worker: the unit of work."""

    index: int  # position of its first job: tasks are submitted in job order
    scenario: Scenario
    keys: tuple[str, ...]
    seeds: tuple[Seed, ...]
    tag_names: tuple[str, ...]
    tag_values: tuple[tuple[TagValue, ...], ...]
    tables: Mapping[str, TableFn | None]
    simulate: SimulateFn


@dataclass(frozen=True)
class _JobFailure:
    key: str
    error_type: str
    error_message: str
    traceback: str


@dataclass(frozen=True)
class _TaskOutput:
    """What a worker sends back: Parquet bytes per table, and which jobs failed."""

    shards: dict[str, bytes]
    ok: tuple[str, ...]
    failed: tuple[_JobFailure, ...]


def _tasks(
    jobs: Sequence[Job],
    done: set[str],
    counts: Mapping[str, int],
    identity: _Identity,
    *,
    tag_names: tuple[str, ...],
    tables: Mapping[str, TableFn | None],
    simulate: SimulateFn,
    batch_size: int,
    slots: int,
) -> Iterator[_Task]:
    """The pending jobs (not in ``done``) as tasks, made as they are asked for: jobs
    of one scenario (equal scenarios hash the same) go together, up to
    ``batch_size`` a task; a scenario with too few pending jobs (``counts``) to
    give every worker a full task is spread over the workers. Held at once: at
    most one task's jobs per scenario, whatever the number of jobs."""
    size = {h: max(1, min(batch_size, math.ceil(n / slots))) for h, n in counts.items()}
    gathering: dict[str, list[tuple[int, Job]]] = {}

    def task(members: list[tuple[int, Job]]) -> _Task:
        chunk = [job for _, job in members]
        return _Task(
            index=members[0][0],
            scenario=chunk[0].scenario,
            keys=tuple(job.key for job in chunk),
            seeds=tuple(job.seed for job in chunk),
            tag_names=tag_names,
            tag_values=tuple(tuple(job.tags[n] for n in tag_names) for job in chunk),
            tables=tables,
            simulate=simulate,
        )

    keys = job_keys(jobs)
    for i in range(len(jobs)):
        if done and keys[i] in done:
            continue
        job = jobs[i]
        digest = identity.scenario_hash(job.scenario)
        members = gathering.setdefault(digest, [])
        members.append((i, job))
        if len(members) == size[digest]:
            yield task(members)
            gathering[digest] = []
    for members in sorted((m for m in gathering.values() if m), key=lambda m: m[0][0]):
        yield task(members)


def _check_jobs(jobs: Sequence[Job], identity: _Identity) -> tuple[tuple[str, ...], dict[str, int]]:
    """The tag names all jobs share, and the number of jobs per scenario hash.

    Raises ``SweepError`` on duplicate keys or tags that differ in name or type
    between jobs. One pass, holding 8 bytes a job (a hash of its key) however the
    jobs are made."""
    if not jobs:
        raise SweepError("no jobs to run")
    first = jobs[0]
    if not isinstance(first, Job):
        raise SweepError(f"expected Job objects, got {type(first).__name__}")
    names = tuple(first.tags)
    types = {n: type(v) for n, v in first.tags.items()}
    counts: dict[str, int] = {}
    key_hashes = np.empty(len(jobs), dtype=np.uint64)
    for i, job in enumerate(jobs):
        if not isinstance(job, Job):
            raise SweepError(f"expected Job objects, got {type(job).__name__}")
        key_hashes[i] = _key_hash(job.key)
        _check_tags(job, first, names, types)
        digest = identity.scenario_hash(job.scenario)
        counts[digest] = counts.get(digest, 0) + 1
    _check_unique(jobs, key_hashes)
    return names, counts


def _check_tags(job: Job, first: Job, names: tuple[str, ...], types: Mapping[str, type]) -> None:
    if tuple(job.tags) != names:
        raise SweepError(
            f"job {job.key!r} has tags {list(job.tags)}, job {first.key!r} has "
            f"{list(names)}: every job needs the same tag names, in the same order"
        )
    for name, value in job.tags.items():
        if type(value) is not types[name]:
            raise SweepError(
                f"job {job.key!r}: tag {name!r} is {type(value).__name__}, "
                f"in job {first.key!r} it is {types[name].__name__}"
            )


def _check_unique(jobs: Sequence[Job], key_hashes: np.ndarray) -> None:
    """``SweepError`` naming a key given twice; ``key_hashes``: ``_key_hash`` of each."""
    key_hashes = np.sort(key_hashes)
    repeated = key_hashes[1:][key_hashes[1:] == key_hashes[:-1]]
    if not repeated.size:
        return
    suspects = set(repeated.tolist())  # most likely a key given twice: compare the keys
    seen: set[str] = set()
    for key in job_keys(jobs):
        if _key_hash(key) in suspects:
            if key in seen:
                raise SweepError(f"duplicate job key {key!r}: keys must be unique in a sweep")
            seen.add(key)


def _key_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


def _pending_counts(jobs: Sequence[Job], identity: _Identity, store: _SweepStore) -> dict[str, int]:
    """Resuming: the number of jobs still to run per scenario hash. Raises
    ``SweepError`` if a job recorded in ``store`` had another scenario, seed or tags."""
    recorded = store.fingerprints()
    counts: dict[str, int] = {}
    for job in jobs:
        before = recorded.get(job.key)
        if before is not None and before != identity.fingerprint(job.scenario, job.seed, job.tags):
            raise SweepError(
                f"job {job.key!r} in {store.root} was run with another scenario, seed or "
                "tags; resume only the same sweep, or use a new folder"
            )
        if job.key not in store.done:
            digest = identity.scenario_hash(job.scenario)
            counts[digest] = counts.get(digest, 0) + 1
    return counts


def _table_spec(
    tables: Sequence[str] | Mapping[str, TableFn | None],
) -> dict[str, TableFn | None]:
    """Table name -> function, None meaning a built-in table (built in bulk)."""
    spec: dict[str, TableFn | None] = {}
    if isinstance(tables, Mapping):
        items: list[tuple[str, TableFn | None]] = list(tables.items())
    elif isinstance(tables, str):
        raise ValueError(f"tables must be a sequence of names, not the string {tables!r}")
    else:
        items = [(name, None) for name in tables]
    for name, fn in items:
        if not isinstance(name, str) or not _TABLE_NAME.match(name):
            raise ValueError(f"table name {name!r} must be letters, digits and _")
        if fn is None and name not in SERVICE_TABLES:
            raise ValueError(f"unknown table {name!r}; built-in tables are {list(SERVICE_TABLES)}")
        if name in spec:
            raise ValueError(f"table {name!r} is named twice")
        spec[name] = fn
    return spec


def _check_seed(key: str, seed: object) -> None:
    if isinstance(seed, np.random.SeedSequence):
        return
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(
            f"job {key!r}: seed must be a SeedSequence or a whole number >= 0 (got {seed!r})"
        )


def _tag_value(key: str, name: str, value: object) -> TagValue:
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"job {key!r}: tag {name!r} must be str, int or float, not bool")
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value)
    if isinstance(value, str):
        return value
    raise ValueError(
        f"job {key!r}: tag {name!r} must be str, int or float (got {type(value).__name__})"
    )


# --- the task, on a worker ----------------------------------------------------------


def run_task(task: _Task) -> _TaskOutput:
    """Simulate a task's jobs and return their tables as Parquet bytes.

    Pure: the same task gives the same bytes, so rerunning it (Dask does, when a
    worker is lost) is harmless. A job that raises becomes a failure record.
    """
    results: dict[int, Results] = {}
    failed: dict[int, _JobFailure] = {}
    try:
        batch = list(task.simulate(task.scenario, list(task.seeds)))
        if len(batch) != len(task.seeds):
            raise RuntimeError(f"simulate returned {len(batch)} results for {len(task.seeds)}")
        results = dict(enumerate(batch))
    except Exception as batch_error:
        if len(task.seeds) == 1:
            failed[0] = _failure(task.keys[0], batch_error)
        else:  # rerun one by one, so only the jobs that fail are lost
            for j, seed in enumerate(task.seeds):
                try:
                    (results[j],) = task.simulate(task.scenario, [seed])
                except Exception as e:
                    failed[j] = _failure(task.keys[j], e)
    ok = sorted(results)
    try:
        shards = _shards(task, ok, [results[j] for j in ok]) if ok else {}
    except Exception as e:  # a table function or a tag clashing with a column
        failed.update({j: _failure(task.keys[j], e) for j in ok})
        ok, shards = [], {}
    return _TaskOutput(
        shards=shards,
        ok=tuple(task.keys[j] for j in ok),
        failed=tuple(failed[j] for j in sorted(failed)),
    )


def _failure(key: str, error: BaseException) -> _JobFailure:
    return _JobFailure(
        key=key,
        error_type=type(error).__name__,
        error_message=str(error),
        traceback="".join(traceback.format_exception(error)),
    )


def _all_failed(task: _Task, error: BaseException) -> _TaskOutput:
    return _TaskOutput({}, (), tuple(_failure(key, error) for key in task.keys))


def _shards(task: _Task, ok: list[int], results: list[Results]) -> dict[str, bytes]:
    shards = {}
    keys = np.array([task.keys[j] for j in ok], dtype=object)
    for name, fn in task.tables.items():
        frame, rows = _stacked(name, results) if fn is None else _concatenated(fn, results)
        for position, tag in reversed(list(enumerate(task.tag_names))):
            if tag in frame.columns:
                raise ValueError(f"tag {tag!r} clashes with a column of table {name!r}")
            values = [task.tag_values[j][position] for j in ok]
            frame.insert(0, tag, _repeat(values, rows))
        frame[_KEY_COLUMN] = pd.Categorical(np.repeat(keys, rows))
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
        shards[name] = sink.getvalue()
    return shards


def _repeat(values: list[TagValue], rows: np.ndarray) -> Any:
    if isinstance(values[0], int):
        return np.repeat(np.asarray(values, dtype=np.int64), rows)
    if isinstance(values[0], float):
        return np.repeat(np.asarray(values, dtype=np.float64), rows)
    return pd.array(np.repeat(np.asarray(values, dtype=object), rows), dtype="str")


def _stacked(name: str, results: list[Results]) -> tuple[pd.DataFrame, np.ndarray]:
    """A built-in table of several results, built in one go.

    ``Results`` turns its column arrays into a table element by element, so one
    ``Results`` holding the concatenated arrays of several gives exactly their
    stacked tables, at a fraction of the cost (tested against the one-by-one way).
    """
    if name == "trial":
        return pd.DataFrame([r.trial for r in results]), np.ones(len(results), dtype=np.int64)
    attr = _STACKED_ARRAYS[name]
    arrays = [getattr(r, attr) for r in results]
    if not arrays[0]:  # a trial's site_years: no rows
        return getattr(results[0], name), np.zeros(len(results), dtype=np.int64)
    rows = np.array([len(next(iter(a.values()))) for a in arrays], dtype=np.int64)
    first = results[0]
    same = all(r.site_names == first.site_names for r in results) and all(
        a.keys() == arrays[0].keys() for a in arrays
    )
    if not same:  # not expected within one scenario; stay correct anyway
        return _concatenated(lambda r: getattr(r, name), results)
    joined = {c: np.concatenate([a[c] for a in arrays]) for c in arrays[0]}
    parts: dict[str, dict[str, np.ndarray]] = {a: {} for a in _STACKED_ARRAYS.values()}
    parts[attr] = joined
    combined = Results(first.site_names, {}, **parts)
    return getattr(combined, name), rows


def _concatenated(fn: TableFn, results: list[Results]) -> tuple[pd.DataFrame, np.ndarray]:
    frames = [fn(r) for r in results]
    for frame in frames:
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"a table function must return a DataFrame, not {type(frame)}")
    rows = np.array([len(f) for f in frames], dtype=np.int64)
    return pd.concat(frames, ignore_index=True), rows


# --- the output folder --------------------------------------------------------------


class _SweepStore:
    """The sweep's folder: shards, commit records, and the lock that keeps one writer."""

    def __init__(self, root: Path, tables: tuple[str, ...]) -> None:
        self.root = root
        self.tables = tables
        # As found on opening; commits made since are counted, not kept (flat memory).
        self.commits = _read_commits(root)
        self.done = {key for commit in self.commits.values() for key in commit["ok"]}
        self.n_ok_new = 0
        self.next_part = _next_part(root)

    @classmethod
    @contextlib.contextmanager
    def open(cls, root: Path, tables: tuple[str, ...], *, resume: bool) -> Iterator[_SweepStore]:
        if root.exists() and not root.is_dir():
            raise SweepError(f"{root} is a file, not a folder")
        started = root.exists() and any(p.name != ".lock" for p in root.iterdir())
        if started and not resume:
            raise SweepError(
                f"{root} exists and is not empty; resume the sweep there or use a new folder"
            )
        root.mkdir(parents=True, exist_ok=True)
        with _locked(root):
            record = root / "sweep.json"
            if record.exists():
                recorded = _read_record(record, "the sweep's record")
                if recorded.get("format") != _FORMAT:
                    raise SweepError(f"{root} does not hold a peersim sweep ({record})")
                if tuple(recorded.get("tables", ())) != tables:
                    raise SweepError(
                        f"{root} holds a sweep of tables {recorded.get('tables')}, "
                        f"not {list(tables)}; resume with the same tables"
                    )
            elif started:
                raise SweepError(f"{root} is not empty and holds no sweep.json")
            else:
                _write_atomic(record, json.dumps({"format": _FORMAT, "tables": list(tables)}))
            _remove_uncommitted(root)
            store = cls(root, tables)
            store.verify()  # before any new work, not after it
            yield store

    def verify(self) -> None:
        """Check that every committed shard is there, whole: its size and SHA-256 as
        its commit record gives them (records before checksums: that it exists).
        Raises ``SweepError`` naming the first damaged one and what to delete."""
        for part, commit in self.commits.items():
            if not commit["ok"]:
                continue
            sums: dict[str, dict[str, Any]] = commit.get("shards", {})
            for table in self.tables:
                path = self.root / "shards" / table / f"part-{part:05d}.parquet"
                problem = _shard_problem(path, sums.get(table))
                if problem is not None:
                    record = self.root / "shards" / _COMMITS / f"part-{part:05d}.json"
                    raise SweepError(
                        f"{path} is {problem}; delete {record} to run its "
                        f"{len(commit['ok'])} jobs again"
                    )

    def fingerprints(self) -> dict[str, str]:
        """The fingerprint of every job recorded on opening, finished or failed."""
        return {
            k: fp for commit in self.commits.values() for k, fp in commit["fingerprints"].items()
        }

    def commit(self, output: _TaskOutput, task: _Task, identity: _Identity) -> None:
        part = self.next_part
        self.next_part += 1
        name = f"part-{part:05d}"
        for table in self.tables if output.ok else ():
            _write_atomic(self.root / "shards" / table / f"{name}.parquet", output.shards[table])
        position = {key: j for j, key in enumerate(task.keys)}

        def tags(j: int) -> dict[str, TagValue]:
            return dict(zip(task.tag_names, task.tag_values[j], strict=True))

        failed = []
        for failure in output.failed:
            j = position[failure.key]
            failed.append(
                {
                    "key": failure.key,
                    "tags": tags(j),
                    "seed": seed_label(task.seeds[j]),
                    "scenario_name": task.scenario.name,
                    "scenario_sha256": identity.scenario_hash(task.scenario),
                    "error_type": failure.error_type,
                    "error_message": failure.error_message,
                    "traceback": failure.traceback,
                }
            )
        keys = [*output.ok, *(f.key for f in output.failed)]
        commit = {
            "ok": list(output.ok),
            "failed": failed,
            "fingerprints": {
                key: identity.fingerprint(task.scenario, task.seeds[j], tags(j))
                for key in keys
                for j in (position[key],)
            },
            # What resume checks each shard against (verify).
            "shards": {
                table: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                for table, data in (output.shards.items() if output.ok else ())
            },
        }
        # Written last: the shards above count only once this record exists.
        _write_atomic(self.root / "shards" / _COMMITS / f"{name}.json", json.dumps(commit))
        self.n_ok_new += len(output.ok)

    def write_failures(self, failures: pd.DataFrame) -> None:
        path = self.root / "failures.parquet"
        if failures.empty:
            path.unlink(missing_ok=True)
            return
        sink = io.BytesIO()
        failures.to_parquet(sink, index=False)
        _write_atomic(path, sink.getvalue())


def _read_commits(root: Path, *, whole: bool = True) -> dict[int, dict[str, Any]]:
    """The commit records by part; ``whole=False`` keeps only which jobs finished and
    which failed (what reading the results needs: a third of the memory)."""
    commits = {}
    folder = root / "shards" / _COMMITS
    if folder.is_dir():
        for path in folder.iterdir():
            match = _PART.match(path.name)
            if match and match.group(2) == "json":
                commit = _read_record(path, "a commit record", delete_hint=True)
                if not isinstance(commit.get("ok"), list) or not isinstance(
                    commit.get("failed"), list
                ):
                    raise SweepError(
                        f"cannot read a commit record {path}: it lacks 'ok' or 'failed'; "
                        "delete it to run its jobs again"
                    )
                if not whole:
                    commit = {"ok": commit["ok"], "failed": commit["failed"]}
                commits[int(match.group(1))] = commit
    return dict(sorted(commits.items()))


def _read_record(path: Path, what: str, *, delete_hint: bool = False) -> dict[str, Any]:
    """A JSON object from the sweep's folder, or ``SweepError`` in one line (a record
    emptied or cut short by a crash of the machine, a disk error, a hand edit)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        reason = "it is empty" if path.is_file() and path.stat().st_size == 0 else str(e)
        hint = "; delete it to run its jobs again" if delete_hint else ""
        raise SweepError(f"cannot read {what} {path}: {reason}{hint}") from None
    if not isinstance(record, dict):
        raise SweepError(f"cannot read {what} {path}: not a JSON object")
    return record


def _shard_problem(path: Path, expected: dict[str, Any] | None) -> str | None:
    """What is wrong with a committed shard ("missing", "damaged ..."), or None."""
    try:
        size = path.stat().st_size
    except OSError:
        return "missing"
    if expected is None:  # a record written before checksums
        return None
    if size != expected.get("bytes"):
        return f"damaged ({size} bytes, its commit record says {expected.get('bytes')})"
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected.get("sha256"):
        return "damaged (its SHA-256 differs from its commit record's)"
    return None


def _next_part(root: Path) -> int:
    parts = [-1]
    shards = root / "shards"
    if shards.is_dir():
        for folder in shards.iterdir():
            if folder.is_dir():
                parts += [int(m.group(1)) for p in folder.iterdir() if (m := _PART.match(p.name))]
    return max(parts) + 1


def _remove_uncommitted(root: Path) -> None:
    """Delete temporary files and shards whose task never wrote its commit record."""
    committed = set(_read_commits(root, whole=False))
    shards = root / "shards"
    if not shards.is_dir():
        return
    for folder in shards.iterdir():
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            match = _PART.match(path.name)
            if path.name.startswith(".") or (match and int(match.group(1)) not in committed):
                path.unlink(missing_ok=True)


def _write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` under a temporary name in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(data, str):
        tmp.write_text(data, encoding="utf-8")
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One process at a time per sweep folder; the lock dies with its process."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks here
        yield
        return
    with open(root / ".lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SweepError(f"another process is running the sweep in {root}") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- reading a sweep ------------------------------------------------------------------


@dataclass(frozen=True)
class SweepResult:
    """The outcome of ``run_jobs``: tables are read from ``out_dir`` when asked, never
    held in memory. Which jobs finished is read once, on first use."""

    out_dir: Path
    keys: Sequence[str]  # the jobs, in order (``job_keys``)
    table_names: tuple[str, ...]

    def table(self, name: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """All rows of table ``name`` (tags first), sorted by job order.

        ``columns`` reads only those columns (tags included only if named). The
        jobs that failed have no rows. Empty if no job succeeded.
        """
        if name not in self.table_names:
            raise ValueError(f"no table {name!r} in this sweep; it has {list(self.table_names)}")
        position = {key: i for i, key in enumerate(self.keys)}
        pieces = []
        for part, owned, all_owned in self._owned_parts():
            wanted = None if columns is None else [*columns, _KEY_COLUMN]
            path = self.out_dir / "shards" / name / f"part-{part:05d}.parquet"
            piece = pq.read_table(path, columns=wanted)
            if not all_owned:
                piece = piece.filter(pc.is_in(piece[_KEY_COLUMN], pa.array(sorted(owned))))
            pieces.append((min(position[k] for k in owned), piece))
        if not pieces:
            return pd.DataFrame()
        # In job order, so categories of different scenarios unite in a fixed order.
        pieces.sort(key=lambda item: item[0])
        joined = pa.concat_tables([p for _, p in pieces], promote_options="default")
        job_keys = joined[_KEY_COLUMN].to_pandas().astype(str)
        codes = pd.Categorical(job_keys, categories=list(self.keys)).codes
        order = np.argsort(codes, kind="stable")
        frame = joined.drop_columns([_KEY_COLUMN]).take(pa.array(order)).to_pandas()
        return frame.reset_index(drop=True)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {name: self.table(name) for name in self.table_names}

    def iter_table(
        self, name: str, columns: Sequence[str] | None = None, *, max_rows: int = PIECE_ROWS
    ) -> Iterator[pd.DataFrame]:
        """The rows of ``table(name, columns)``, in the same order, a piece at a time:
        for writing or summarising a table bigger than memory.

        Each piece holds whole jobs, in job order, and about ``max_rows`` rows (more
        only where one job has more). Held at once: one part's shard (the rows of one
        task, at most ``batch_size`` jobs) and the piece being gathered, whatever the
        number of jobs. Concatenated, the pieces equal ``table(name, columns)``.
        """
        if name not in self.table_names:
            raise ValueError(f"no table {name!r} in this sweep; it has {list(self.table_names)}")
        wanted = None if columns is None else [*columns, _KEY_COLUMN]
        part_of = self._status()[0]
        cached: tuple[int, pa.Table] | None = None
        gathered: list[pa.Table] = []
        n_rows = 0
        for part, keys in _segments(self.keys, part_of):
            if cached is None or cached[0] != part:
                path = self.out_dir / "shards" / name / f"part-{part:05d}.parquet"
                cached = (part, pq.read_table(path, columns=wanted))
            piece = _rows_of(cached[1], keys)
            gathered.append(piece)
            n_rows += piece.num_rows
            if n_rows >= max_rows:
                yield _joined(gathered)
                gathered, n_rows = [], 0
                release_arrow_memory()
        if gathered:
            yield _joined(gathered)

    def iter_parts(self, name: str) -> Iterator[pd.DataFrame]:
        """The table one shard at a time, in no particular order: for summaries that
        must not hold the whole table in memory."""
        for part, owned, all_owned in self._owned_parts():
            piece = pq.read_table(self.out_dir / "shards" / name / f"part-{part:05d}.parquet")
            if not all_owned:
                piece = piece.filter(pc.is_in(piece[_KEY_COLUMN], pa.array(sorted(owned))))
            yield piece.drop_columns([_KEY_COLUMN]).to_pandas()

    @property
    def n_ok(self) -> int:
        return len(self._status()[0])

    @property
    def n_failed(self) -> int:
        return len(self._status()[1])

    @property
    def complete(self) -> bool:
        """True if every job succeeded."""
        return self.n_ok == len(self.keys)

    @property
    def failures(self) -> pd.DataFrame:
        """One row per failed job, in job order: tags, key, seed, scenario name and
        hash, error type, message and traceback."""
        failed = self._status()[1]
        if not failed:
            return pd.DataFrame(columns=list(_FAILURE_COLUMNS))
        position = {key: i for i, key in enumerate(self.keys)}
        records = sorted(failed.values(), key=lambda r: position[r["key"]])
        rows = [{**r["tags"], **{c: r[c] for c in _FAILURE_COLUMNS}} for r in records]
        return pd.DataFrame(rows, columns=None if rows else list(_FAILURE_COLUMNS))

    def _status(self) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
        """Per job of this sweep: the part holding its rows, or its latest failure."""
        return self._state[1], self._state[2]

    @cached_property
    def _state(
        self,
    ) -> tuple[dict[int, dict[str, Any]], dict[str, int], dict[str, dict[str, Any]]]:
        """The commit records (read once), and from them ``_status``."""
        commits = _read_commits(self.out_dir, whole=False)
        wanted = set(self.keys)
        ok: dict[str, int] = {}
        failed: dict[str, dict[str, Any]] = {}
        for part, commit in commits.items():
            for key in commit["ok"]:
                if key in wanted and key not in ok:  # the first commit of a key counts
                    ok[key] = part
                    failed.pop(key, None)
            for record in commit["failed"]:
                if record["key"] in wanted and record["key"] not in ok:
                    failed[record["key"]] = record
        return commits, ok, failed

    def _owned_parts(self) -> Iterator[tuple[int, set[str], bool]]:
        """Parts holding rows of this sweep's jobs: (part, its keys that count, all?)."""
        by_part: dict[int, set[str]] = {}
        for key, part in self._status()[0].items():
            by_part.setdefault(part, set()).add(key)
        commits = self._state[0]
        for part in sorted(by_part):
            owned = by_part[part]
            yield part, owned, len(owned) == len(commits[part]["ok"])


def _segments(keys: Sequence[str], part_of: Mapping[str, int]) -> Iterator[tuple[int, list[str]]]:
    """Runs of consecutive finished jobs (in job order) whose rows are in one part."""
    run: list[str] = []
    current = -1
    for key in keys:
        part = part_of.get(key)
        if part is None:  # failed: no rows
            continue
        if part != current and run:
            yield current, run
            run = []
        current = part
        run.append(key)
    if run:
        yield current, run


def _rows_of(shard: pa.Table, keys: list[str]) -> pa.Table:
    """The rows of jobs ``keys`` in ``shard``, in the order of ``keys`` (within a job,
    in the model's row order), without the key column."""
    where = {key: i for i, key in enumerate(keys)}
    column = shard[_KEY_COLUMN].combine_chunks()
    if pa.types.is_dictionary(column.type):  # as the runner writes it: a few keys, coded
        of_entry = np.array([where.get(k, -1) for k in column.dictionary.to_pylist()] or [-1])
        codes = of_entry[column.indices.to_numpy(zero_copy_only=False)]
    else:
        codes = np.array([where.get(k, -1) for k in column.to_pylist()], dtype=np.int64)
    shard = shard.drop_columns([_KEY_COLUMN])
    if (codes < 0).any():  # rows of other jobs (resumed sweeps): leave them out
        shard = shard.filter(pa.array(codes >= 0))
        codes = codes[codes >= 0]
    if np.all(codes[1:] >= codes[:-1]):  # already in order: the usual case
        return shard
    return shard.take(pa.array(np.argsort(codes, kind="stable")))


def release_arrow_memory() -> None:
    """Give the memory Arrow's allocator holds free back to the system. Its default
    pool (mimalloc) keeps what it freed for reuse, in several threads' heaps: reading
    1,000 replicates' shards a piece at a time, that grew to 40 MB more than reading
    100; released after each piece it stays flat."""
    pa.default_memory_pool().release_unused()


def _joined(pieces: list[pa.Table]) -> pd.DataFrame:
    joined = pa.concat_tables(pieces, promote_options="default") if len(pieces) > 1 else pieces[0]
    return joined.to_pandas()


# --- replicates of one scenario, in memory ---------------------------------------------


@dataclass(frozen=True)
class ReplicateSet:
    """The replicates of one scenario, as tidy tables with ``replicate`` first."""

    scenario: Scenario
    master_seed: int
    n_replicates: int
    site_weeks: pd.DataFrame
    participants: pd.DataFrame
    trial: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        """The three tables by the file stem they are written under."""
        return {
            "site_weeks": self.site_weeks,
            "participants": self.participants,
            "trial": self.trial,
        }

    @classmethod
    def from_sweep(cls, scenario: Scenario, master_seed: int, sweep: SweepResult) -> ReplicateSet:
        """The tables of a complete sweep made by ``replicate_jobs`` (tag ``replicate``)."""
        if not sweep.complete:
            raise ValueError(f"{sweep.n_failed} of {len(sweep.keys)} replicates failed")
        return cls(
            scenario=scenario,
            master_seed=master_seed,
            n_replicates=len(sweep.keys),
            site_weeks=sweep.table("site_weeks"),
            participants=sweep.table("participants"),
            trial=sweep.table("trial"),
        )


class ReplicatesFailedError(RuntimeError):
    """Some replicates raised; ``failures`` says which and why."""

    def __init__(self, failures: pd.DataFrame) -> None:
        first = failures.iloc[0]
        super().__init__(
            f"{len(failures)} replicate(s) failed, first replicate {first['replicate']}: "
            f"{first['error_type']}: {first['error_message']}"
        )
        self.failures = failures


def run_replicates(
    scenario: Scenario,
    master_seed: int,
    n_replicates: int,
    *,
    workers: int = 1,
    progress: bool | None = None,
    executor: ExecutorSpec | Backend | Executor | None = None,
) -> ReplicateSet:
    """Run replicates ``0 .. n_replicates - 1`` of ``scenario`` and gather their tables.

    A convenience on ``run_jobs`` with the shards in a temporary folder: for
    runs small enough to hold in memory. ``workers == 1`` runs in this process;
    ``executor``, if given, is used instead of ``workers``. Raises
    ``ReplicatesFailedError`` if any replicate raised.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1 (got {workers})")
    jobs = replicate_jobs(scenario, master_seed, n_replicates)
    with tempfile.TemporaryDirectory(prefix="peersim-replicates-") as tmp:
        sweep = run_jobs(
            jobs,
            Path(tmp) / "sweep",
            executor=executor if executor is not None else ExecutorSpec(workers=workers),
            progress=progress,
            desc=scenario.name,
        )
        if not sweep.complete:
            raise ReplicatesFailedError(sweep.failures)
        return ReplicateSet.from_sweep(scenario, master_seed, sweep)
