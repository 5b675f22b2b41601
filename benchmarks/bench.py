"""Time ``simulation.run`` on the ENRICH scenario and on a ten-times-larger copy.

Prints one JSON line:
``{"ms_per_replicate": ..., "ms_per_replicate_x10": ..., "ratio_x10": ...,
"ms_per_replicate_batched": ..., ...}``.
Each figure is the median wall time of one replicate over ``--replicates``
replicates (default 20) in this one process, after a warm-up run, so import and
first-call costs are excluded. ``ms_per_replicate_batched`` is the same with ten
replicates simulated side by side in one model, as the experiment runner does. Run it right after
``python ../shared/bench/naive_reference.py`` in the same shell to compare.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from scenarios.loader import load_scenario
from simulation import Scenario, replicate_seed, run, run_batch


def scaled(scenario: Scenario, factor: int) -> Scenario:
    """The scenario with every site copied ``factor`` times (names suffixed ``-1``...)."""
    sites = {
        f"{name}-{k}": site for k in range(1, factor + 1) for name, site in scenario.sites.items()
    }
    # Re-validate rather than model_copy(update=...), which would skip validation.
    data = scenario.model_dump()
    data["sites"] = {name: site.model_dump() for name, site in sites.items()}
    data["site_configurations"] = None  # its options name the original sites
    data["name"] = f"{scenario.name}-x{factor}"
    return Scenario.model_validate(data)


def median_ms(scenario: Scenario, replicates: int, master_seed: int = 0) -> float:
    run(scenario, replicate_seed(master_seed, replicates))  # warm-up, outside the timed set
    times = []
    for i in range(replicates):
        seed = replicate_seed(master_seed, i)
        t0 = time.perf_counter()
        run(scenario, seed)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def batched_ms(scenario: Scenario, replicates: int, side_by_side: int = 10) -> float:
    """Median per-replicate time when ``side_by_side`` replicates share one model,
    as the experiment runner does (same results as one at a time)."""
    run_batch(scenario, [replicate_seed(1, i) for i in range(side_by_side)])  # warm-up
    times = []
    for start in range(0, max(replicates, side_by_side), side_by_side):
        seeds = [replicate_seed(0, start + i) for i in range(side_by_side)]
        t0 = time.perf_counter()
        run_batch(scenario, seeds)
        times.append((time.perf_counter() - t0) * 1000 / side_by_side)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=20, help="timed replicates per size")
    args = parser.parse_args()
    if args.replicates < 1:
        parser.error(f"--replicates must be >= 1 (got {args.replicates})")

    base = load_scenario(None)
    x10 = scaled(base, 10)
    ms1 = median_ms(base, args.replicates)
    ms10 = median_ms(x10, args.replicates)
    ms_batched = batched_ms(base, max(args.replicates, 50))
    print(
        json.dumps(
            {
                "ms_per_replicate": round(ms1, 2),
                "ms_per_replicate_x10": round(ms10, 2),
                "ratio_x10": round(ms10 / ms1, 2),
                "ms_per_replicate_batched": round(ms_batched, 2),
                "replicates": args.replicates,
                "participants": base.n_participants,
                "participants_x10": x10.n_participants,
            }
        )
    )


if __name__ == "__main__":
    main()
