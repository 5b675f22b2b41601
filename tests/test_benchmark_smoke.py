"""The benchmark script runs and prints the one JSON line the README promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Runs benchmarks/bench.py in a fresh interpreter.
pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

ROOT = Path(__file__).resolve().parents[1]


def test_bench_prints_one_json_line_with_the_timings():
    done = subprocess.run(
        [sys.executable, "benchmarks/bench.py", "--replicates", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"bench.py exited {done.returncode}:\n{done.stderr}"
    lines = done.stdout.splitlines()
    assert len(lines) == 1, f"expected one line of output, got {lines}"
    result = json.loads(lines[0])
    for key in ("ms_per_replicate", "ms_per_replicate_x10", "ratio_x10"):
        assert result[key] > 0, f"{key} should be a positive time or ratio, got {result[key]}"
    assert result["participants_x10"] == 10 * result["participants"], (
        f"the x10 scenario should have ten times the participants: {result}"
    )


def test_startup_bench_prints_one_json_line_with_the_timings():
    done = subprocess.run(
        [
            sys.executable,
            "benchmarks/startup_bench.py",
            "--repeat",
            "1",
            "--modes",
            "bytecode",
            "--commands",
            "help",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"startup_bench.py exited {done.returncode}:\n{done.stderr}"
    lines = done.stdout.splitlines()
    assert len(lines) == 1, f"expected one line of output, got {lines}"
    timing = json.loads(lines[0])["bytecode"]["help"]
    assert 0 < timing["fastest_s"] <= timing["median_s"], (
        f"the fastest and median wall times should be positive and ordered: {timing}"
    )


def test_service_bench_prints_one_json_line_with_the_timing():
    done = subprocess.run(
        [sys.executable, "benchmarks/service_bench.py", "--replicates", "1", "--no-memory"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"service_bench.py exited {done.returncode}:\n{done.stderr}"
    lines = done.stdout.splitlines()
    assert len(lines) == 1, f"expected one line of output, got {lines}"
    result = json.loads(lines[0])
    assert result["s_per_replicate"] > 0, f"a positive time expected: {result}"
    # 60,000 a year for 3 years less the 12-week ramp-up's shortfall (5.5 weeks).
    expected = 60_000 * (3 - 5.5 / 52)
    assert abs(result["referrals"] - expected) < 5 * expected**0.5, (
        f"about {expected:.0f} referrals expected (Poisson): {result}"
    )
