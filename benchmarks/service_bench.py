"""Time one replicate of a national service: 50 sites, 3 years, 60,000 referrals a year.

The scenario is ``scenarios/region_50_sites.toml`` (a 3-year service, 80 referrals
a year per site, 4-5 peer workers) with every site's referrals, peer workers,
coordinators and coordinator hours multiplied by 15: 1,200 referrals a year per
site, 60,000 in all, staffed as the region is. Prints one JSON line with the
median wall time of ``--replicates`` replicates (after a warm-up), and the peak
memory traced (``tracemalloc``) while one replicate runs, at 25 and 50 sites and
1, 2 and 3 years, to show how it grows. Run it right after
``python ../shared/bench/naive_reference.py`` in the same shell to compare.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import tracemalloc

from scenarios.loader import library, load_scenario
from simulation import Scenario, replicate_seed, run

FACTOR = 15  # 80 -> 1,200 referrals a year per site


def national(sites: int = 50, years: int = 3) -> Scenario:
    """The region scaled to 60,000 referrals a year (``sites`` of its 50, ``years``)."""
    region = load_scenario(library()["region_50_sites"])
    data = region.model_dump()
    kept = list(data["sites"])[:sites]
    data["sites"] = {name: data["sites"][name] for name in kept}
    for site in data["sites"].values():
        site["referrals_per_year"] *= FACTOR
        site["n_peer_workers"] *= FACTOR
        site["n_supervisors"] *= FACTOR
        site["supervisor_h_per_week"] *= FACTOR
    data["service"]["horizon_years"] = years
    data["name"] = f"national-{sites}-sites-{years}-years"
    return Scenario.model_validate(data)


def median_s(scenario: Scenario, replicates: int) -> tuple[float, int]:
    run(scenario, replicate_seed(1, 999))  # warm-up, outside the timed set
    times, n = [], 0
    for i in range(replicates):
        t0 = time.perf_counter()
        result = run(scenario, replicate_seed(1, i))
        times.append(time.perf_counter() - t0)
        n = int(result.trial["n_referrals"])
    return statistics.median(times), n


def peak_mb(scenario: Scenario) -> float:
    tracemalloc.start()
    run(scenario, replicate_seed(1, 0))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=3, help="timed replicates")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory scaling")
    args = parser.parse_args()
    if args.replicates < 1:
        parser.error(f"--replicates must be >= 1 (got {args.replicates})")
    seconds, referrals = median_s(national(), args.replicates)
    out: dict[str, object] = {
        "s_per_replicate": round(seconds, 2),
        "referrals": referrals,
        "sites": 50,
        "years": 3,
        "replicates": args.replicates,
    }
    if not args.no_memory:
        out["peak_mb"] = {
            f"{sites}_sites_{years}_years": round(peak_mb(national(sites, years)), 1)
            for sites, years in ((25, 3), (50, 1), (50, 2), (50, 3))
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
