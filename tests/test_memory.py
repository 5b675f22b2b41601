"""Memory that does not grow with the replicate count (issue 10, "Hardening").

``peersim run`` used to gather every replicate's tables in the parent before writing
them (ENRICH: parent 332 MB at 100 replicates, 574 MB at 1,000). Now the tables go
from the shards to the files a piece at a time (``SweepResult.iter_table``,
``simulation.outputs.write_tables``) and the summary and the figures come from
aggregates read back from those files (``analysis.aggregates``). The tests here check
that the streamed path gives exactly what the in-memory one gave, and that the
parent's peak memory is flat between 100 and 1,000 replicates.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from pandas.testing import assert_frame_equal

from analysis.aggregates import RunAggregates
from analysis.summary import format_summary
from simulation import Scenario
from simulation.executors import ExecutorSpec
from simulation.outputs import write_tables
from simulation.runner import ReplicateSet, replicate_jobs, run_jobs

REPO = Path(__file__).resolve().parent.parent
SEED = 20241
# At least MIN_REPLICATES_FOR_PERCENTILES, so the bands are 5-95% quantiles.
N_REPLICATES = 25
# Parent peak at 1,000 replicates over the peak at 100: at most this (measured after
# the change: 1.07-1.08 with 2 workers; before it: 1.73).
FLAT_TOLERANCE = 1.10


@pytest.fixture(scope="module")
def streamed(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A sweep of ENRICH replicates, its tables written both ways: streamed in small
    pieces, as ``peersim run`` does, and whole from ``SweepResult.table``."""
    root = tmp_path_factory.mktemp("streamed")
    sweep = run_jobs(
        replicate_jobs(scenario, SEED, N_REPLICATES),
        root / "sweep",
        executor=ExecutorSpec(workers=1),
        batch_size=4,  # several parts
    )
    assert sweep.complete, f"every replicate should succeed:\n{sweep.failures}"
    pieces, whole = root / "pieces", root / "whole"
    pieces.mkdir()
    whole.mkdir()
    write_tables(pieces, {n: sweep.iter_table(n, max_rows=1000) for n in sweep.table_names})
    write_tables(whole, {n: sweep.table(n) for n in sweep.table_names})
    return {
        "sweep": sweep,
        "pieces": pieces,
        "whole": whole,
        "replicates": ReplicateSet.from_sweep(scenario, SEED, sweep),
    }


def test_tables_written_piece_by_piece_equal_whole_tables(streamed: dict[str, object]) -> None:
    """Same rows, columns, types and pandas metadata as ``DataFrame.to_parquet`` of the
    whole table (only the row groups differ), so users' code reads the same frames."""
    pieces, whole = Path(str(streamed["pieces"])), Path(str(streamed["whole"]))
    for name in ("trial", "site_weeks", "participants"):
        a, b = pieces / f"{name}.parquet", whole / f"{name}.parquet"
        assert pq.read_schema(a).equals(pq.read_schema(b), check_metadata=True), (
            f"{name}: the schema (with its pandas metadata) should be that of to_parquet"
        )
        assert pq.read_table(a).equals(pq.read_table(b)), f"{name}: the same Arrow table"
        assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b), obj=f"{name} read by pandas")
    assert pq.ParquetFile(pieces / "participants.parquet").metadata.num_row_groups > 1, (
        "the participants should have been written in several pieces"
    )


@pytest.mark.parametrize("band_values", [1 << 18, 1000], ids=["one pass", "many passes"])
def test_aggregates_from_the_files_equal_those_in_memory(
    streamed: dict[str, object], scenario: Scenario, band_values: int
) -> None:
    """The summary's and the figures' inputs read back from the files, a batch at a
    time (with a budget small enough for one (column, site) pair a pass, too), are
    exactly those of the tables in memory; so is the printed summary."""
    pieces = Path(str(streamed["pieces"]))
    replicates = streamed["replicates"]
    assert isinstance(replicates, ReplicateSet)
    memory = RunAggregates.from_replicates(replicates)
    files = RunAggregates.from_files(
        scenario,
        SEED,
        pieces / "site_weeks.parquet",
        pieces / "trial.parquet",
        band_values=band_values,
    )
    assert files.n_replicates == memory.n_replicates == N_REPLICATES, "replicate count"
    assert files.sites == memory.sites, f"sites in order: {files.sites} vs {memory.sites}"
    assert files.site_order == memory.site_order, "sites in category order"
    assert_frame_equal(files.trial, memory.trial, obj="trial table")
    assert_frame_equal(files.end, memory.end, obj="end-of-delivery rows")
    assert files.bands.keys() == memory.bands.keys(), "the same trajectory columns"
    for column, by_site in memory.bands.items():
        assert files.bands[column].keys() == by_site.keys(), f"{column}: the same sites"
        for site, band in by_site.items():
            assert_frame_equal(files.bands[column][site], band, obj=f"band {column}, {site}")
    assert format_summary(files) == format_summary(replicates), "the same printed summary"


_PEAK = """
import contextlib, io, json, resource, sys
from analysis.cli import main

if __name__ == "__main__":
    with contextlib.redirect_stdout(io.StringIO()):
        status = main(sys.argv[1:])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"status": status, "peak_mb": peak_mb}))
"""


def _parent_peak_mb(n: int, tmp_path: Path) -> float:
    """Peak resident memory of ``peersim run -n N`` (2 worker processes), in a fresh
    interpreter: of the parent alone (``RUSAGE_SELF`` leaves the workers out)."""
    script = tmp_path / "peak.py"
    script.write_text(_PEAK, encoding="utf-8")
    out = tmp_path / f"run-{n}"
    args = ["run", "scenarios/enrich_trial.toml", "-n", str(n), "-w", "2", "--no-progress"]
    done = subprocess.run(
        [sys.executable, str(script), *args, "-o", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"peersim run -n {n} failed:\n{done.stderr}"
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"] == 0, f"peersim run -n {n} exited {report['status']}"
    assert (out / "participants.parquet").is_file(), "the run should write its tables"
    return float(report["peak_mb"])


@pytest.mark.slow
@pytest.mark.subprocess
def test_parent_memory_is_flat_from_100_to_1000_replicates(tmp_path: Path) -> None:
    """Issue 10: "flat parent memory between 100 and 1,000 replicates (within 10%)".
    Before the tables were streamed this ratio was 1.73 (332 and 574 MB)."""
    small = _parent_peak_mb(100, tmp_path)
    large = _parent_peak_mb(1000, tmp_path)
    assert large <= FLAT_TOLERANCE * small, (
        f"parent peak {large:.0f} MB at 1,000 replicates, {small:.0f} MB at 100: "
        f"more than {FLAT_TOLERANCE:.2f} times"
    )
