"""The experiment runner (``simulation.runner``): same numbers on every executor, sweeps
that survive Ctrl-C, ``kill -9`` and dying workers, failures recorded as data.

Every comparison here is exact (``assert_frame_equal`` with its default dtype and
value checks): the runner promises the same results bit for bit, not close ones.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from analysis.cli import main
from simulation import Results, Scenario, replicate_seed, run, run_batch
from simulation.executors import Backend, ExecutorSpec, open_executor
from simulation.runner import (
    Job,
    LazyJobs,
    SweepError,
    SweepResult,
    job_keys,
    replicate_jobs,
    run_jobs,
)

REPO = Path(__file__).resolve().parent.parent
SEED = 20241
N_REPLICATES = 12  # per scenario in the two-scenario sweep
TABLES = ("trial", "site_weeks", "participants")


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def variant(scenario: Scenario) -> Scenario:
    """ENRICH with more supervision at every site: a second scenario for mixed sweeps."""
    data = scenario.model_dump()
    data["name"] = "more_supervision"
    for site in data["sites"].values():
        site["supervisor_h_per_week"] = min(site["supervisor_h_per_week"] + 4.0, 40.0)
    return Scenario.model_validate(data)


@pytest.fixture(scope="module")
def jobs(scenario: Scenario, variant: Scenario) -> list[Job]:
    """Two scenarios, interleaved (so grouping by scenario and re-ordering are exercised),
    with a str, an int and a float tag."""
    return [
        Job(
            f"{sc.name}/{i}",
            sc,
            replicate_seed(SEED, i),
            {"scenario": sc.name, "replicate": i, "weight": 0.5 * i},
        )
        for i in range(N_REPLICATES)
        for sc in (scenario, variant)
    ]


@pytest.fixture(scope="module")
def expected(jobs: list[Job]) -> dict[str, pd.DataFrame]:
    """The tables the slow, obvious way: each job alone through ``simulation.run``,
    its tables with the tags in front, stacked in job order."""
    results = [run(job.scenario, job.seed) for job in jobs]
    return {name: _stack(jobs, results, name) for name in TABLES}


def _stack(jobs: Sequence[Job], results: Sequence[Results], name: str) -> pd.DataFrame:
    frames = []
    for job, result in zip(jobs, results, strict=True):
        frame = (result.trial_frame if name == "trial" else getattr(result, name)).copy()
        for position, (tag, value) in enumerate(job.tags.items()):
            frame.insert(position, tag, value)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[Backend]:
    """One local Dask cluster (2 single-threaded worker processes) for the module."""
    with open_executor(ExecutorSpec(scheduler="local", workers=2)) as backend:
        assert backend.slots == 2, f"the cluster should have 2 worker threads: {backend.slots}"
        yield backend


@pytest.fixture(scope="module")
def pool() -> Iterator[Backend]:
    """One pool of 2 worker processes, shared by the tests that do not test start-up."""
    with open_executor(ExecutorSpec(workers=2)) as backend:
        yield backend


def _assert_tables(sweep: SweepResult, expected: dict[str, pd.DataFrame], how: str) -> None:
    for name in TABLES:
        assert_frame_equal(
            sweep.table(name), expected[name], obj=f"{name} table {how} vs one job at a time"
        )
        # Streamed a piece at a time (what ``peersim run`` writes its files from), in
        # small pieces so that jobs of several parts, interleaved, meet in one piece.
        pieces = list(sweep.iter_table(name, max_rows=700))
        assert all(not piece.empty for piece in pieces), f"{name}: no empty pieces"
        assert_frame_equal(
            pd.concat(pieces, ignore_index=True),
            expected[name],
            obj=f"{name} table {how}, streamed, vs one job at a time",
        )


# --- the same numbers whatever runs them ----------------------------------------------


def test_tables_equal_running_each_job_alone(
    jobs: list[Job], expected: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    """In this process, with side-by-side batches and bulk-built tables, the tables
    equal running every job alone and stacking its tables in job order."""
    sweep = run_jobs(jobs, tmp_path / "sweep", executor=ExecutorSpec(workers=1))
    assert sweep.complete, f"every job should succeed:\n{sweep.failures}"
    _assert_tables(sweep, expected, "in this process")
    parts = pd.concat(list(sweep.iter_parts("trial")), ignore_index=True)
    by_job = parts.sort_values(["replicate", "scenario"], ignore_index=True)
    assert_frame_equal(
        by_job,
        expected["trial"].sort_values(["replicate", "scenario"], ignore_index=True),
        obj="trial shards read one at a time, sorted",
    )
    assert_frame_equal(
        sweep.table("trial", columns=["replicate", "itt_or"]),
        expected["trial"][["replicate", "itt_or"]],
        obj="trial table, two columns only",
    )


@pytest.mark.slow
@pytest.mark.subprocess
def test_process_pools_and_dask_give_identical_tables(
    jobs: list[Job],
    expected: dict[str, pd.DataFrame],
    pool: Backend,
    dask_cluster: Backend,
    tmp_path: Path,
) -> None:
    """A pool of 1 and of 2 worker processes and a local Dask cluster of 2 workers
    give identical tables (and identical to one job at a time)."""
    with _pool_of_one() as pool_of_one:
        one = run_jobs(jobs, tmp_path / "pool1", executor=pool_of_one)
    two = run_jobs(jobs, tmp_path / "pool2", executor=pool)
    dask = run_jobs(jobs, tmp_path / "dask", executor=dask_cluster)
    for sweep, how in [(one, "pool of 1"), (two, "pool of 2"), (dask, "Dask, 2 workers")]:
        assert sweep.complete, f"{how}: every job should succeed:\n{sweep.failures}"
        _assert_tables(sweep, expected, how)


def _pool_of_one() -> ProcessPoolExecutor:
    """A real one-process pool (``workers=1`` alone would run in this process)."""
    return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))


@pytest.mark.slow
@pytest.mark.subprocess
def test_table_functions_run_on_the_workers(
    jobs: list[Job], expected: dict[str, pd.DataFrame], pool: Backend, tmp_path: Path
) -> None:
    """A table given as a function of ``Results`` is computed per job, tags in front;
    ``None`` in the mapping is the built-in table."""
    sweep = run_jobs(
        jobs[:6],
        tmp_path / "sweep",
        tables={"engaged": engaged_by_site, "trial": None},
        executor=pool,
    )
    engaged = sweep.table("engaged")
    assert list(engaged.columns) == ["scenario", "replicate", "weight", "site", "engaged"], (
        f"tags, then the function's columns, expected: {list(engaged.columns)}"
    )
    n_sites = len(jobs[0].scenario.sites)
    assert len(engaged) == 6 * n_sites, f"one row per job and site: {len(engaged)}"
    assert_frame_equal(sweep.table("trial"), expected["trial"].iloc[:6], obj="built-in trial")


def engaged_by_site(results: Results) -> pd.DataFrame:
    """Participants engaged, per site (a summary computed on the worker)."""
    people = results.participants
    return (
        people.groupby("site", observed=False)["engaged"]
        .sum()
        .astype("int64")
        .reset_index()
        .assign(site=lambda f: f["site"].astype(str))
    )


# --- nothing lost: resume, failures, dying workers ---------------------------------------


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="needs POSIX process groups")
@pytest.mark.slow
@pytest.mark.subprocess
def test_run_killed_part_way_resumes_to_the_uninterrupted_result(
    scenario: Scenario, tmp_path: Path
) -> None:
    """``peersim run`` killed with SIGKILL (parent and workers) after some tasks were
    committed, then ``--resume``d, writes exactly the tables of an uninterrupted run:
    no replicate missing, none twice."""
    n = 150  # 15 tasks of 10, about 1 s on 2 workers: the kill lands part-way
    out = tmp_path / "killed"
    commits = tmp_path / "killed.partial" / "sweep" / "shards" / "_commits"
    process = subprocess.Popen(
        [sys.executable, "-m", "analysis.cli", "run", "-n", str(n), "-w", "2", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        start_new_session=True,
    )
    try:
        _wait_for(lambda: commits.is_dir() and len(list(commits.glob("part-*.json"))) >= 2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    n_committed = len(list(commits.glob("part-*.json")))
    assert not out.exists(), "a killed run must not leave an output folder"
    assert 2 <= n_committed < n // 10, f"the kill should land part-way: {n_committed} commits"

    assert _quiet_main(["run", "--resume", str(out), "-w", "1"]) == 0, "resume should succeed"
    reference = run_jobs(
        replicate_jobs(scenario, SEED, n), tmp_path / "uninterrupted", executor=ExecutorSpec(1)
    )
    for name in TABLES:
        assert_frame_equal(
            pd.read_parquet(out / f"{name}.parquet"),
            reference.table(name),
            obj=f"{name}.parquet resumed vs uninterrupted",
        )
    trial = pd.read_parquet(out / "trial.parquet")
    assert trial["replicate"].tolist() == list(range(n)), "each replicate exactly once, in order"
    assert not (tmp_path / "killed.partial").exists(), "the partial folder should be gone"
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["resumed"]) == 1, f"the resume should be recorded: {manifest['resumed']}"


def test_resume_removes_uncommitted_shards_and_duplicates_nothing(
    jobs: list[Job], expected: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    """Shards whose commit record was never written (a kill between the two) and
    temporary files are removed on resume; finished jobs are not rerun."""
    out = tmp_path / "sweep"
    calls = tmp_path / "calls"
    first = run_jobs(jobs[:10], out, executor=ExecutorSpec(workers=1))
    assert first.complete, "the first half should succeed"
    # A kill after a task wrote its shard but before its commit record:
    orphan = out / "shards" / "trial" / "part-00099.parquet"
    orphan.write_bytes((out / "shards" / "trial" / "part-00000.parquet").read_bytes())
    (out / "shards" / "trial" / ".part-00100.parquet.123.tmp").write_bytes(b"half")
    counting = functools.partial(_counting_run_batch, calls)
    resumed = run_jobs(jobs, out, executor=ExecutorSpec(workers=1), resume=True, simulate=counting)
    assert not orphan.exists(), "the uncommitted shard should be removed"
    assert not list(out.rglob("*.tmp")), "temporary files should be removed"
    simulated = calls.read_text().split()
    assert sorted(simulated) == sorted(str(job.seed.spawn_key[0]) for job in jobs[10:]), (
        f"only the unfinished jobs should run again, ran replicates {simulated}"
    )
    _assert_tables(resumed, expected, "resumed")
    committed = [
        key
        for record in (out / "shards" / "_commits").glob("part-*.json")
        for key in json.loads(record.read_text())["ok"]
    ]
    assert sorted(committed) == sorted(job.key for job in jobs), (
        "every job should be committed exactly once"
    )
    again = run_jobs(jobs, out, resume=True, simulate=counting)
    assert again.complete, "a finished sweep stays complete"
    assert len(calls.read_text().split()) == len(simulated), "resuming it runs nothing"


def _counting_run_batch(log: Path, scenario: Scenario, seeds: Sequence[object]) -> list[Results]:
    with log.open("a") as handle:
        handle.write(" ".join(str(s.spawn_key[0]) for s in seeds) + " ")  # type: ignore[attr-defined]
    return run_batch(scenario, seeds)  # type: ignore[arg-type]


def test_resume_refuses_a_different_sweep(jobs: list[Job], tmp_path: Path) -> None:
    """Resuming with a job whose key is done but whose seed differs, or with other
    tables, is refused before anything runs; so is a non-empty folder without resume."""
    out = tmp_path / "sweep"
    run_jobs(jobs[:2], out, executor=ExecutorSpec(workers=1), tables=("trial",))
    changed = [Job(jobs[0].key, jobs[0].scenario, 12345, jobs[0].tags)]
    with pytest.raises(SweepError, match="another scenario, seed or tags"):
        run_jobs(changed, out, resume=True, tables=("trial",))
    with pytest.raises(SweepError, match="resume with the same tables"):
        run_jobs(jobs[:2], out, resume=True)
    with pytest.raises(SweepError, match="not empty"):
        run_jobs(jobs[:2], out, tables=("trial",))
    with pytest.raises(SweepError, match="duplicate job key"):
        run_jobs([jobs[0], jobs[0]], tmp_path / "other")
    assert not (tmp_path / "other").exists(), "a refused job list writes nothing"


# --- jobs made when needed ------------------------------------------------------------


def test_lazy_jobs_are_made_as_needed_and_give_the_tables_of_a_list(
    scenario: Scenario, tmp_path: Path
) -> None:
    """A sweep of jobs made on demand (``replicate_jobs``) holds a bounded number of
    jobs at a time, not all of them, and gives the tables of the same jobs as a list."""
    n, batch = 60, 5
    made = replicate_jobs(scenario, SEED, n)
    refs: list[weakref.ref[Job]] = []
    most_alive = 0

    def make(i: int) -> Job:
        nonlocal most_alive
        job = made[i]
        refs.append(weakref.ref(job))
        most_alive = max(most_alive, sum(ref() is not None for ref in refs))
        return job

    lazy = LazyJobs(n, make, made.key)
    sweep = run_jobs(
        lazy,
        tmp_path / "lazy",
        executor=ExecutorSpec(workers=1),
        batch_size=batch,
        tables=("trial",),
    )
    # in process: one task in flight (batch jobs), one gathering, the one being made
    assert most_alive <= 2 * batch + 1, (
        f"expected at most {2 * batch + 1} of {n} jobs alive at once, saw {most_alive}"
    )
    listed = run_jobs(
        list(made),
        tmp_path / "list",
        executor=ExecutorSpec(workers=1),
        batch_size=batch,
        tables=("trial",),
    )
    assert list(sweep.keys) == list(listed.keys) == [f"replicate-{i}" for i in range(n)], (
        "expected the keys in job order, the same from a lazy sequence and a list"
    )
    assert_frame_equal(sweep.table("trial"), listed.table("trial"), obj="lazy vs listed jobs")


def test_lazy_jobs_index_slice_and_concatenate_like_lists(scenario: Scenario) -> None:
    first = replicate_jobs(scenario, SEED, 3, key_prefix="a/")
    second = replicate_jobs(scenario, SEED, 2, key_prefix="b/")
    both = LazyJobs.concat([first, list(second)])
    keys = ["a/replicate-0", "a/replicate-1", "a/replicate-2", "b/replicate-0", "b/replicate-1"]
    assert [job.key for job in both] == keys, f"expected {keys}"
    assert list(job_keys(both)) == keys, "expected the keys without making the jobs"
    assert both[-1].key == keys[-1], "expected a negative index to count from the end"
    assert [j.key for j in both[1:4:2]] == keys[1:4:2], "expected a slice as on a list"
    assert both[3].seed.spawn_key == (0,), "expected the second part's own seeds"
    assert both[3].tags == {"replicate": 0}, "expected the second part's own tags"
    with pytest.raises(IndexError):
        both[5]
    assert [job.key for job in list(second) + first] == [*keys[3:], *keys[:3]], (
        "expected + to join a list and lazy jobs in order"
    )


FAILING_REPLICATE = 3


def fail_on_replicate(scenario: Scenario, seeds: Sequence[np.random.SeedSequence]) -> list[Results]:
    """``simulation.run_batch``, except that replicate 3 raises (a stand-in for a model bug)."""
    if any(seed.spawn_key == (FAILING_REPLICATE,) for seed in seeds):
        raise ValueError(f"model broke on replicate {FAILING_REPLICATE}")
    return run_batch(scenario, seeds)


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_failing_job_is_recorded_and_the_others_complete(
    scenario: Scenario, pool: Backend, tmp_path: Path
) -> None:
    """A job that raises inside a side-by-side batch on a worker is recorded with its
    key, tags, seed, scenario and error; the other jobs of its batch and sweep
    complete; resuming (with the cause fixed) runs just that job."""
    jobs = replicate_jobs(scenario, SEED, 12)
    out = tmp_path / "sweep"
    sweep = run_jobs(jobs, out, executor=pool, simulate=fail_on_replicate)
    failures = sweep.failures
    assert len(failures) == 1, f"exactly one failure expected:\n{failures}"
    row = failures.iloc[0]
    assert row["key"] == f"replicate-{FAILING_REPLICATE}", f"failure key: {row['key']}"
    assert row["replicate"] == FAILING_REPLICATE, "the job's tags should be recorded"
    assert row["seed"] == f"{SEED}/{FAILING_REPLICATE}", f"seed recorded as text: {row['seed']}"
    assert row["scenario_name"] == scenario.name, "the scenario's name should be recorded"
    assert len(row["scenario_sha256"]) == 64, "the scenario's hash should be recorded"
    assert (row["error_type"], row["error_message"]) == ("ValueError", "model broke on replicate 3")
    assert "fail_on_replicate" in row["traceback"], "the traceback should show where it broke"
    assert_frame_equal(pd.read_parquet(out / "failures.parquet"), failures, obj="failures.parquet")
    assert sweep.n_ok == 11, f"the other 11 jobs should complete, {sweep.n_ok} did"
    ok_replicates = sweep.table("trial")["replicate"].tolist()
    assert ok_replicates == [i for i in range(12) if i != FAILING_REPLICATE], ok_replicates

    fixed = run_jobs(jobs, out, executor=pool, resume=True)
    assert fixed.complete, f"resume should retry the failed job:\n{fixed.failures}"
    assert not (out / "failures.parquet").exists(), "no failures file once none remain"
    reference = run_jobs(jobs, tmp_path / "reference", executor=ExecutorSpec(workers=1))
    assert_frame_equal(fixed.table("trial"), reference.table("trial"), obj="fixed vs clean")


def test_cli_names_failed_replicates_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``peersim run`` with a replicate that raises exits 1, names the replicate, its
    seed and error, keeps the others in DIR.partial, and writes no output folder."""
    import simulation.runner

    monkeypatch.setattr(simulation.runner, "simulate_side_by_side", fail_on_replicate)
    out = tmp_path / "out"
    status = main(["run", "-n", "5", "-w", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 1, f"a failed replicate should exit 1, got {status}:\n{err}"
    assert "1 of 5 replicates failed" in err, f"stderr should count the failures:\n{err}"
    assert f"replicate 3 (seed {SEED}/3): ValueError: model broke on replicate 3" in err, err
    assert f"peersim run --resume {out}" in err, f"stderr should say how to retry:\n{err}"
    assert "Traceback" not in err, f"no traceback on stderr:\n{err}"
    assert not out.exists(), "no output folder while replicates are missing"
    assert (tmp_path / "out.partial" / "sweep" / "failures.parquet").is_file(), (
        "failures should be saved"
    )


def die_once(marker: Path, scenario: Scenario, seeds: Sequence[object]) -> list[Results]:
    """``simulation.run_batch``, except that the first worker to reach replicate 5
    dies on the spot (``os._exit``), as if killed or out of memory."""
    if any(s.spawn_key == (5,) for s in seeds):  # type: ignore[attr-defined]
        try:
            marker.touch(exist_ok=False)
        except FileExistsError:
            pass
        else:
            os._exit(1)
    return run_batch(scenario, seeds)  # type: ignore[arg-type]


@pytest.mark.parametrize("where", ["process pool", "Dask"])
@pytest.mark.slow
@pytest.mark.subprocess
def test_a_worker_that_dies_loses_nothing(
    where: str,
    jobs: list[Job],
    expected: dict[str, pd.DataFrame],
    pool: Backend,
    dask_cluster: Backend,
    tmp_path: Path,
) -> None:
    """A worker process that dies mid-sweep: its tasks run again elsewhere (a new
    local pool; Dask's retry on another worker) and the sweep completes, equal to
    an undisturbed one."""
    marker = tmp_path / "died"
    executor = dask_cluster if where == "Dask" else pool
    sweep = run_jobs(
        jobs, tmp_path / "sweep", executor=executor, simulate=functools.partial(die_once, marker)
    )
    assert marker.exists(), "a worker should have died"
    assert sweep.complete, f"every job should complete despite the dead worker:\n{sweep.failures}"
    _assert_tables(sweep, expected, f"{where} with a dead worker")


# --- the command line -------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.subprocess
def test_cli_on_a_dask_cluster_equals_one_process(
    dask_cluster: Backend, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``peersim run --scheduler tcp://...`` writes the same tables as ``--workers 1``."""
    address = dask_cluster.scheduler_address
    assert address is not None, "the Dask back end should know its scheduler's address"
    dask_out, local_out = tmp_path / "dask", tmp_path / "local"
    assert _quiet_main(["run", "-n", "12", "--scheduler", address, "--out", str(dask_out)]) == 0
    assert _quiet_main(["run", "-n", "12", "-w", "1", "--out", str(local_out)]) == 0
    for name in TABLES:
        assert_frame_equal(
            pd.read_parquet(dask_out / f"{name}.parquet"),
            pd.read_parquet(local_out / f"{name}.parquet"),
            obj=f"{name}.parquet on Dask vs in one process",
        )
    manifest = json.loads((dask_out / "manifest.json").read_text())
    assert manifest["executor"]["kind"] == "dask", f"executor recorded: {manifest['executor']}"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["--scheduler", "nowhere"], ["--scheduler", "tcp://HOST:PORT"], id="bad-addr"),
        pytest.param(["--resume", "{dir}/absent"], ["no interrupted run"], id="nothing-to-resume"),
        pytest.param(
            ["--resume", "{dir}/absent", "-n", "5"], ["leave out --replicates"], id="resume-and-n"
        ),
        pytest.param(
            ["--scheduler", "tcp://127.0.0.1:9"],
            ["nothing answered as a Dask scheduler"],
            id="no-scheduler",
        ),
    ],
)
def test_cli_runner_mistakes_exit_2_with_one_clear_message(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    expected: list[str],
) -> None:
    """Bad --scheduler or --resume: one line, exit 2, nothing written."""
    import simulation.executors

    monkeypatch.setattr(simulation.executors, "_CONNECT_TIMEOUT_S", 1.0)  # nothing listens there
    argv = ["run", *(a.replace("{dir}", str(tmp_path)) for a in args)]
    if "--resume" not in args:
        argv += ["--out", str(tmp_path / "out")]
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, f"peersim {' '.join(argv)} should exit 2, got {status}:\n{err}"
    assert err.startswith("peersim: error: "), f"one 'peersim: error:' line expected:\n{err}"
    assert len(err.strip().splitlines()) == 1, f"one line expected:\n{err}"
    for part in expected:
        assert part in err, f"stderr should contain {part!r}:\n{err}"
    assert list(tmp_path.iterdir()) == [], "nothing should be written for a mistake"


def test_cli_refuses_to_start_over_an_interrupted_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--out DIR`` when DIR.partial holds an interrupted run points to --resume."""
    out = tmp_path / "out"
    (tmp_path / "out.partial").mkdir()
    status = main(["run", "-n", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2, f"exit 2 expected, got {status}:\n{err}"
    assert f"peersim run --resume {out}" in err, f"should point to --resume:\n{err}"


def test_progress_bar_shows_rate_and_eta(
    jobs: list[Job], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With ``progress=True`` a bar on stderr counts runs with their rate and ETA."""
    run_jobs(jobs[:4], tmp_path / "s", executor=ExecutorSpec(workers=1), progress=True)
    err = capsys.readouterr().err
    assert "4/4" in err, f"the bar should count runs:\n{err}"
    assert "run/s" in err or "s/run" in err, f"the bar should show the rate:\n{err}"
    assert "<" in err, f"the bar should show elapsed<remaining:\n{err}"


# --- helpers -----------------------------------------------------------------------------


def _quiet_main(args: list[str]) -> int:
    with contextlib.redirect_stdout(io.StringIO()):
        return main(args)


def _wait_for(condition: Callable[[], bool], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    pytest.fail(f"condition not met within {timeout_s} s")
