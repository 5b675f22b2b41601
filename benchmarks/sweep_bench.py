"""Sweep benchmark: ENRICH replicates through the experiment runner (``run_jobs``).

Runs ``--runs`` replicates (default 1,000) with 1 worker (in this process, what
``--workers 1`` does) and with ``--workers`` worker processes (default 2), and
``--small`` replicates (default 250) with each, every configuration in a fresh
Python process so its peak memory is its own, and ``--repeat`` times (default 3;
the fastest sweep counts, the least disturbed by other work on the machine).
Prints one JSON line:

- ``runs_per_second``: with ``--workers`` workers, ``--runs`` replicates;
- ``runs_per_second_1_worker``;
- ``parallel_efficiency``: ``t1 / (workers * tW)``, 1.0 is perfect scaling;
- ``peak_rss_mb``: per configuration, the parent's and the largest worker's peak
  resident memory (``getrusage`` ``RUSAGE_SELF`` and ``RUSAGE_CHILDREN``); equal
  figures for ``--small`` and ``--runs`` replicates show memory is flat in the
  number of runs;
- ``startup_s``: starting the workers and a warm-up sweep, excluded from the
  timings above (a long sweep pays it once);
- ``seconds`` (fastest), ``seconds_median`` and ``parent_cpu_s``: wall time of
  each configuration's sweeps and the CPU time the parent process spent on the
  fastest (with workers: receiving and writing shards);
- ``workers_cpu_s`` and ``cpu_efficiency``: CPU seconds of the worker processes,
  and the 1-worker sweep's CPU time over the total CPU time (parent and workers)
  of the same sweep with workers: the runner's parallel overhead, unaffected by
  other work competing for the cores (which lowers ``parallel_efficiency``);
- ``load_average_1min`` before and after: other work on the machine skews timings.

Every run writes its Parquet shards to a temporary folder, removed afterwards.
``uv run python benchmarks/sweep_bench.py`` from the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED = 20241


def measure(n_runs: int, workers: int, repeat: int) -> dict[str, float]:
    """Time ``repeat`` sweeps of ``n_runs`` ENRICH replicates (the fastest counts);
    this process's and its workers' peak memory."""
    from scenarios.loader import load_scenario
    from simulation.executors import ExecutorSpec, open_executor
    from simulation.runner import replicate_jobs, run_jobs

    scenario = load_scenario(None)
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
        t0 = time.perf_counter()
        with open_executor(ExecutorSpec(workers=workers)) as backend:
            # Warm-up: start the workers and let each import the model and run once.
            warm = replicate_jobs(scenario, SEED + 1, 20 * workers)
            run_jobs(warm, Path(tmp) / "warm-up", executor=backend, progress=False)
            startup = time.perf_counter() - t0
            times, cpu_times, worker_cpu_times = [], [], []
            for k in range(repeat):
                jobs = replicate_jobs(scenario, SEED, n_runs)
                t1, cpu1, wcpu1 = time.perf_counter(), time.process_time(), workers_cpu(backend)
                sweep = run_jobs(jobs, Path(tmp) / f"sweep{k}", executor=backend, progress=False)
                times.append(time.perf_counter() - t1)
                cpu_times.append(time.process_time() - cpu1)
                worker_cpu_times.append(workers_cpu(backend) - wcpu1)
                if not sweep.complete:
                    raise SystemExit(f"{sweep.n_failed} runs failed:\n{sweep.failures}")
                n_rows = len(sweep.table("trial", columns=["replicate"]))
                if n_rows != n_runs:
                    raise SystemExit(f"expected {n_runs} trial rows, found {n_rows}")
                shutil.rmtree(Path(tmp) / f"sweep{k}")
    best = min(range(repeat), key=lambda k: times[k])
    seconds, parent_cpu, worker_cpu = times[best], cpu_times[best], worker_cpu_times[best]
    to_mb = 1 / 1024 if sys.platform != "darwin" else 1 / 1024**2  # KiB on Linux, B on macOS
    return {
        "runs": n_runs,
        "workers": workers,
        "seconds": seconds,
        "seconds_median": statistics.median(times),
        "startup_s": startup,
        "parent_cpu_s": parent_cpu,
        "workers_cpu_s": worker_cpu,
        "parent_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * to_mb,
        "worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * to_mb,
    }


def workers_cpu(backend: object) -> float:
    """CPU seconds used so far by the worker processes of a local pool (0 in-process)."""
    import psutil  # installed with Dask distributed

    pool = getattr(backend, "pool", None)
    processes = getattr(pool, "_processes", None) or {}
    total = 0.0
    for process in processes.values():
        times = psutil.Process(process.pid).cpu_times()
        total += times.user + times.system
    return total


def in_fresh_process(n_runs: int, workers: int, repeat: int) -> dict[str, float]:
    child = ["--child", "--runs", str(n_runs), "--workers", str(workers), "--repeat", str(repeat)]
    done = subprocess.run(
        [sys.executable, __file__, *child],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise SystemExit(f"benchmark child failed ({done.returncode}):\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def per_config(results: dict[tuple[int, int], dict[str, float]], key: str) -> dict[str, float]:
    return {label(config): round(r[key], 2) for config, r in results.items()}


def label(config: tuple[int, int]) -> str:
    n, workers = config
    return f"{n} runs, {workers} worker{'s' if workers > 1 else ''}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="replicates per sweep")
    parser.add_argument("--small", type=int, default=250, help="replicates of the small sweep")
    parser.add_argument("--workers", type=int, default=2, help="worker processes to compare")
    parser.add_argument("--repeat", type=int, default=3, help="sweeps per configuration")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.runs, args.workers, args.repeat)))
        return
    if args.runs < 1 or args.small < 1 or args.repeat < 1 or args.workers < 2:
        parser.error("--runs, --small and --repeat must be >= 1, --workers >= 2")
    load_before = os.getloadavg()[0]

    results = {
        (n, w): in_fresh_process(n, w, args.repeat)
        for n in (args.small, args.runs)
        for w in (1, args.workers)
    }
    one, many = results[(args.runs, 1)], results[(args.runs, args.workers)]
    print(
        json.dumps(
            {
                "runs": args.runs,
                "workers": args.workers,
                "runs_per_second": round(args.runs / many["seconds"], 1),
                "runs_per_second_1_worker": round(args.runs / one["seconds"], 1),
                "parallel_efficiency": round(one["seconds"] / (args.workers * many["seconds"]), 3),
                "seconds": per_config(results, "seconds"),
                "seconds_median": per_config(results, "seconds_median"),
                "startup_s": per_config(results, "startup_s"),
                "parent_cpu_s": per_config(results, "parent_cpu_s"),
                "workers_cpu_s": per_config(results, "workers_cpu_s"),
                "cpu_efficiency": round(
                    one["parent_cpu_s"] / (many["parent_cpu_s"] + many["workers_cpu_s"]), 3
                ),
                "peak_rss_mb": {
                    label((n, w)): {
                        "parent": round(r["parent_peak_rss_mb"]),
                        "worker": round(r["worker_peak_rss_mb"]) if w > 1 else None,
                    }
                    for (n, w), r in results.items()
                },
                "cpu_count": os.cpu_count(),
                "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            }
        )
    )


if __name__ == "__main__":
    main()
