"""Run many replicates of one scenario, in-process or across worker processes.

Replicate ``i`` always runs with ``replicate_seed(master_seed, i)`` and the tables
are ordered by replicate, so results do not depend on the worker count or on the
order in which batches finish. Any ``concurrent.futures.Executor`` can be passed
in; that is the seam for other back ends (Dask, resumable sweeps).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import pandas as pd
from tqdm import tqdm

from simulation import Results, Scenario, replicate_seed
from simulation import run_batch as simulate_side_by_side

# Below this many replicates a progress bar is more noise than help.
_PROGRESS_MIN_REPLICATES = 4
# Batches per worker: enough to balance uneven replicates, few enough to amortise pickling.
_BATCHES_PER_WORKER = 4
# Largest batch, so the progress bar moves and a Ctrl-C loses little finished work.
_MAX_BATCH_REPLICATES = 25
# Replicates one model simulates side by side; the speed-up levels off by about 10.
_SIDE_BY_SIDE = 10


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


def run_replicates(
    scenario: Scenario,
    master_seed: int,
    n_replicates: int,
    workers: int = 1,
    progress: bool | None = None,
    executor: Executor | None = None,
) -> ReplicateSet:
    """Run replicates ``0 .. n_replicates - 1`` of ``scenario`` and gather their tables.

    ``workers == 1`` runs in this process; more starts a process pool of that size.
    A given ``executor`` is used as is (and not shut down); ``workers`` then only
    sets the batch size. ``progress=None`` shows a bar on an interactive stderr.
    Pool workers start by "spawn", so a script calling this with ``workers > 1``
    needs the usual ``if __name__ == "__main__":`` guard.
    """
    if n_replicates < 1:
        raise ValueError(f"n_replicates must be at least 1 (got {n_replicates})")
    if workers < 1:
        raise ValueError(f"workers must be at least 1 (got {workers})")
    if master_seed < 0:
        raise ValueError(f"master_seed must be >= 0 (got {master_seed})")
    show = _show_progress(progress, n_replicates)
    with tqdm(
        total=n_replicates, unit="replicate", desc=scenario.name, disable=not show, file=sys.stderr
    ) as bar:
        if executor is None and workers == 1:
            results = _run_in_process(scenario, master_seed, n_replicates, bar.update)
        elif executor is not None:
            results = _run_on(executor, scenario, master_seed, n_replicates, workers, bar.update)
        else:
            results = _run_in_pool(scenario, master_seed, n_replicates, workers, bar.update)
    return _gather(scenario, master_seed, results)


def batches(n_replicates: int, workers: int) -> list[range]:
    """Split replicate numbers into contiguous batches, a few per worker."""
    n_batches = min(n_replicates, workers * _BATCHES_PER_WORKER)
    size = min(math.ceil(n_replicates / n_batches), _MAX_BATCH_REPLICATES)
    return [range(start, min(start + size, n_replicates)) for start in range(0, n_replicates, size)]


def run_batch(scenario: Scenario, master_seed: int, replicates: Sequence[int]) -> list[Results]:
    """Run the given replicates in order; the unit of work sent to an executor.

    Results equal running each replicate alone (``simulation.run_batch`` keeps
    replicates independent), so batching never changes a number.
    """
    seeds = [replicate_seed(master_seed, i) for i in replicates]
    results: list[Results] = []
    for k in range(0, len(seeds), _SIDE_BY_SIDE):
        results.extend(simulate_side_by_side(scenario, seeds[k : k + _SIDE_BY_SIDE]))
    return results


def _show_progress(progress: bool | None, n_replicates: int) -> bool:
    if progress is not None:
        return progress
    return n_replicates >= _PROGRESS_MIN_REPLICATES and sys.stderr.isatty()


def _run_in_process(
    scenario: Scenario, master_seed: int, n_replicates: int, advance: Callable[[int], object]
) -> list[Results]:
    results: list[Results] = []
    for batch in batches(n_replicates, 1):
        results.extend(run_batch(scenario, master_seed, batch))
        advance(len(batch))
    return results


def _run_in_pool(
    scenario: Scenario,
    master_seed: int,
    n_replicates: int,
    workers: int,
    advance: Callable[[int], object],
) -> list[Results]:
    # "spawn": a fresh interpreter per worker, the same on every OS and safe with the
    # threads tqdm and pandas may have started; it costs an import of the model per worker.
    pool = ProcessPoolExecutor(
        max_workers=min(workers, n_replicates), mp_context=multiprocessing.get_context("spawn")
    )
    try:
        # Workers start during submit; started with SIGINT blocked they inherit the block,
        # so Ctrl-C (sent to the whole process group) reaches only this process.
        with _sigint_deferred():
            futures = _submit(pool, scenario, master_seed, n_replicates, workers)
        results = _collect(futures, advance)
    except BaseException:
        # Ctrl-C or a failed replicate: stop running batches now (before shutdown, which
        # forgets the workers) and drop queued ones.
        _terminate_workers(pool)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results


def _run_on(
    executor: Executor,
    scenario: Scenario,
    master_seed: int,
    n_replicates: int,
    workers: int,
    advance: Callable[[int], object],
) -> list[Results]:
    return _collect(_submit(executor, scenario, master_seed, n_replicates, workers), advance)


def _submit(
    executor: Executor, scenario: Scenario, master_seed: int, n_replicates: int, workers: int
) -> dict[Future[list[Results]], range]:
    return {
        executor.submit(run_batch, scenario, master_seed, batch): batch
        for batch in batches(n_replicates, workers)
    }


def _collect(
    futures: dict[Future[list[Results]], range], advance: Callable[[int], object]
) -> list[Results]:
    """Wait for every batch; return the results in replicate order."""
    done: dict[int, list[Results]] = {}
    try:
        for future in as_completed(futures):
            batch = futures[future]
            done[batch.start] = future.result()
            advance(len(batch))
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    return [result for start in sorted(done) for result in done[start]]


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold back SIGINT in this thread (and in processes it starts) for the block."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no signal masks
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)  # a held-back Ctrl-C fires now


def _terminate_workers(pool: ProcessPoolExecutor) -> None:
    # Python 3.12 has no public way to stop busy workers (3.14 adds terminate_workers).
    processes = getattr(pool, "_processes", None) or {}
    for process in list(processes.values()):
        process.terminate()


def _gather(scenario: Scenario, master_seed: int, results: list[Results]) -> ReplicateSet:
    def stacked(table: Callable[[Results], pd.DataFrame]) -> pd.DataFrame:
        return pd.concat(list(_numbered(results, table)), ignore_index=True)

    return ReplicateSet(
        scenario=scenario,
        master_seed=master_seed,
        n_replicates=len(results),
        site_weeks=stacked(lambda r: r.site_weeks),
        participants=stacked(lambda r: r.participants),
        trial=stacked(lambda r: r.trial_frame),
    )


def _numbered(
    results: list[Results], table: Callable[[Results], pd.DataFrame]
) -> Iterator[pd.DataFrame]:
    for i, result in enumerate(results):
        frame = table(result).copy()
        frame.insert(0, "replicate", pd.Series(i, index=frame.index, dtype="int64"))
        yield frame
