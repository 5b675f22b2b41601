"""Fault injection (issue 10, "Hardening"): each test provokes one fault a hostile or
unlucky user meets and checks the documented outcome: no orphaned processes, a hang
turned into an error within its timeout, one-line errors with the resume command,
``.partial`` folders that resume to the same results.

The tests that start the command line in a fresh interpreter are ``slow`` and
``subprocess`` (each such interpreter imports numpy, pandas and Mesa: seconds).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from analysis.cli import main

REPO = Path(__file__).resolve().parent.parent
POSIX_ONLY = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc to find the processes"
)

TINY = """\
name = "tiny"

[trial]
dur_recruitment_weeks = 8
dur_followup_weeks = 12

[sites.urban]
host = "nhs"
geography = "urban"
dur_travel_min = 20.0
n_supervisors = 1
supervisor_h_per_week = 8.0
team_preparation = 1.0
share_records_access = 1.0
n_peer_workers = 2
n_caseload_cap = 10
n_participants = 30
"""


@pytest.fixture
def tiny_toml(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY, encoding="utf-8")
    return path


# --- processes --------------------------------------------------------------------------


def _peersim(*args: str) -> list[str]:
    return [sys.executable, "-m", "analysis.cli", *args]


def _session(sid: int) -> list[tuple[int, str]]:
    """Live (not zombie) processes of session ``sid``: (pid, command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            found.append((int(entry.name), cmdline.strip()))
    return found


Starter = Callable[[list[str]], "subprocess.Popen[str]"]


@pytest.fixture
def start() -> Iterator[Starter]:
    """Start the command line in its own session (as a terminal or a job system would),
    so that everything it starts can be found by session id; whatever happens in the
    test, every process of those sessions is killed at the end."""
    started: list[subprocess.Popen[str]] = []

    def start_one(args: list[str]) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            _peersim(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
            start_new_session=True,
        )
        started.append(process)
        return process

    yield start_one
    for process in started:
        for pid, _ in _session(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.communicate(timeout=10)


def _wait_until_running(process: subprocess.Popen[str], n_children: int) -> str:
    """The announcement line, once ``n_children`` worker processes run and have had
    time to reach their task loop (their imports take seconds)."""
    assert process.stderr is not None
    started = process.stderr.readline()
    assert "running" in started, f"the command should have started: {started!r}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if len(_session(process.pid)) > n_children:  # the command itself and its children
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"{n_children} worker processes did not start")
    time.sleep(1.0)  # the workers arm their parent watch first thing; the sweep starts
    return started


def _wait_for_sweep(out: Path, timeout_s: float = 60) -> None:
    """Until the sweep into ``out`` has begun (its record in ``out.partial``): before
    that nothing is saved, and a stopped command rightly says so instead."""
    record = out.with_name(f"{out.name}.partial") / "sweep" / "sweep.json"
    deadline = time.monotonic() + timeout_s
    while not record.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"the sweep did not start: no {record}")
        time.sleep(0.05)


def _wait_for_no_survivors(sid: int, timeout_s: float) -> list[tuple[int, str]]:
    deadline = time.monotonic() + timeout_s
    while (left := _session(sid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def _listening(pids: list[int]) -> list[str]:
    """The TCP addresses (``HOST:PORT``) on which any of ``pids`` listens."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    found = []
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A: LISTEN
                host, port = local.split(":")
                found.append(f"{_ip(host, width)}:{int(port, 16)}")
    return sorted(found)


def _ip(hex_host: str, width: int) -> str:
    import ipaddress

    raw = bytes.fromhex(hex_host)
    # /proc writes each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.IPv4Address(words) if width == 8 else ipaddress.IPv6Address(words))


@POSIX_ONLY
@pytest.mark.slow
@pytest.mark.subprocess
def test_pool_workers_die_with_a_parent_killed_by_sigkill(
    start: Starter, tiny_toml: Path, tmp_path: Path
) -> None:
    """Item 1: ``kill -9`` of the command left its pool workers and the resource tracker
    blocked forever. Now they exit within seconds of their parent."""
    out = tmp_path / "out"
    process = start(["run", str(tiny_toml), "-n", "20000", "-w", "2", "--out", str(out)])
    _wait_until_running(process, n_children=2)
    before = _session(process.pid)
    assert len(before) >= 3, f"the command and its 2 workers should run: {before}"
    process.kill()
    process.wait(timeout=10)
    left = _wait_for_no_survivors(process.pid, timeout_s=10)
    assert left == [], f"no process of the killed command should survive 10 s: {left}"


@POSIX_ONLY
@pytest.mark.slow
@pytest.mark.subprocess
def test_local_dask_cluster_listens_on_loopback_only_and_dies_with_its_parent(
    start: Starter, tiny_toml: Path, tmp_path: Path
) -> None:
    """Items 4 and 1: ``--scheduler local`` opened its unauthenticated dashboard on every
    interface. Now the scheduler, workers and dashboard listen on 127.0.0.1 only
    (what ``ss -ltn`` shows, read from /proc); and after ``kill -9`` of the command
    none of its processes survives."""
    out = tmp_path / "out"
    args = ["run", str(tiny_toml), "-n", "20000", "-w", "1", "--scheduler", "local"]
    process = start([*args, "--out", str(out)])
    _wait_until_running(process, n_children=1)
    session = [pid for pid, _ in _session(process.pid)]
    listening = _listening(session)
    assert len(listening) >= 2, f"the scheduler and dashboard should listen: {listening}"
    outside = [address for address in listening if not address.startswith("127.0.0.1:")]
    assert outside == [], f"nothing should listen outside 127.0.0.1: {listening}"
    process.kill()
    process.wait(timeout=10)
    left = _wait_for_no_survivors(process.pid, timeout_s=10)
    assert left == [], f"no process of the killed command should survive 10 s: {left}"


@POSIX_ONLY
@pytest.mark.slow
@pytest.mark.subprocess
def test_sigterm_is_handled_like_ctrl_c(start: Starter, tiny_toml: Path, tmp_path: Path) -> None:
    """Item 1: SIGTERM exited 143 with no message and no resume hint. Now it stops the
    workers, says how many replicates are saved and how to resume, and exits 143."""
    out = tmp_path / "out"
    process = start(["run", str(tiny_toml), "-n", "20000", "-w", "2", "--out", str(out)])
    _wait_until_running(process, n_children=2)
    _wait_for_sweep(out)
    process.send_signal(signal.SIGTERM)  # to the command only, as `kill PID` does
    _, err = process.communicate(timeout=30)
    assert process.returncode == 143, f"SIGTERM should exit 143, got {process.returncode}:{err}"
    assert "Traceback" not in err, f"no traceback expected:\n{err}"
    last = err.strip().splitlines()[-1]
    assert last.startswith("peersim: error: stopped by SIGTERM; "), f"one clear line: {last!r}"
    assert f"continue with: peersim run --resume {out}" in last, f"a resume hint: {last!r}"
    left = _wait_for_no_survivors(process.pid, timeout_s=10)
    assert left == [], f"no worker should outlive the stopped command: {left}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.partial", "tiny.toml"], (
        "only the resumable out.partial should be left"
    )


@POSIX_ONLY
@pytest.mark.slow
@pytest.mark.subprocess
def test_sighup_is_handled_like_ctrl_c(start: Starter, tiny_toml: Path, tmp_path: Path) -> None:
    """Item 1: SIGHUP (the terminal closed) is handled like Ctrl-C too: exit 129 and the
    resume command. (In a subprocess: a signal raised into pytest's own process can
    land while a lock is held, tqdm's say, and hang the tests that follow.)"""
    out = tmp_path / "out"
    process = start(["run", str(tiny_toml), "-n", "20000", "-w", "1", "--out", str(out)])
    _wait_until_running(process, n_children=0)
    _wait_for_sweep(out)
    process.send_signal(signal.SIGHUP)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 129, f"SIGHUP should exit 129, got {process.returncode}:{err}"
    assert "Traceback" not in err, f"no traceback expected:\n{err}"
    last = err.strip().splitlines()[-1]
    assert last.startswith("peersim: error: stopped by SIGHUP; "), f"names the signal: {last!r}"
    assert last.endswith(f"continue with: peersim run --resume {out}"), f"resume hint: {last!r}"


# --- Dask: what answers at a scheduler's address ------------------------------------------


@contextlib.contextmanager
def _server(reply: bytes | None) -> Iterator[int]:
    """A TCP server on a free loopback port that accepts every connection and then
    sends ``reply`` and closes it, or (``None``) holds it open saying nothing."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed: the test is over
                return
            if reply is None:
                held.append(conn)
            else:
                with contextlib.suppress(OSError):
                    conn.recv(1024)
                    conn.sendall(reply)
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for conn in held:
            conn.close()


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (None, "nothing answered as a Dask scheduler within 1 s"),
        (b"HTTP/1.0 400 Bad Request\r\n\r\n", "something answered, but not as a Dask scheduler"),
    ],
    ids=["silent", "http"],
)
def test_a_port_that_is_not_dask_is_one_line_within_the_timeout(
    reply: bytes | None,
    expected: str,
    tiny_toml: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Item 2: a port that accepts but is not Dask hung for more than 10 minutes. Now the
    connection, handshake and first reply together get the timeout (here 1 s)."""
    monkeypatch.setattr("simulation.executors._CONNECT_TIMEOUT_S", 1.0)
    out = tmp_path / "out"
    with _server(reply) as port:
        address = f"tcp://127.0.0.1:{port}"
        t0 = time.monotonic()
        status = main(["run", str(tiny_toml), "-n", "2", "--scheduler", address, "-o", str(out)])
        elapsed = time.monotonic() - t0
    err = capsys.readouterr().err
    assert status == 2, f"exit status 2 expected, got {status}:\n{err}"
    assert elapsed < 10, f"the error should come within the 1 s timeout, took {elapsed:.1f} s"
    assert err.strip() == f"peersim: error: --scheduler {address}: {expected}" + (
        " (is it a Dask scheduler's address and port?)" if reply is None else ""
    ), f"one line naming the address:\n{err}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.toml"], "nothing written"


def test_a_tls_scheduler_without_tls_settings_is_one_line(
    tiny_toml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 5: ``tls://`` ended in a TypeError traceback from deep inside Dask."""
    with _server(None) as port:
        address = f"tls://127.0.0.1:{port}"
        status = main(["run", str(tiny_toml), "--scheduler", address, "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert status == 2, f"exit status 2 expected, got {status}:\n{err}"
    assert err.strip() == (
        f"peersim: error: --scheduler {address}: a tls:// scheduler needs Dask's TLS "
        "settings (certificates under distributed.comm.tls in the Dask configuration); "
        "none are set"
    ), f"one line saying what is missing:\n{err}"


# --- resuming from a damaged .partial folder -------------------------------------------


def _assert_uninterrupted(out: Path, toml: Path, n: int, scratch: Path) -> None:
    """The tables ``peersim run`` wrote into ``out`` are exactly those of ``n``
    replicates of ``toml`` at the default seed, run at once."""
    import pandas as pd
    from pandas.testing import assert_frame_equal

    from scenarios import load_scenario
    from simulation.executors import ExecutorSpec
    from simulation.rng import DEFAULT_SEED
    from simulation.runner import replicate_jobs, run_jobs

    jobs = replicate_jobs(load_scenario(toml), DEFAULT_SEED, n)
    reference = run_jobs(jobs, scratch, executor=ExecutorSpec(workers=1))
    for table in ("trial", "site_weeks", "participants"):
        assert_frame_equal(
            pd.read_parquet(out / f"{table}.parquet"),
            reference.table(table),
            obj=f"{table}.parquet resumed vs uninterrupted",
        )


def _quiet(argv: list[str]) -> int:
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return main(argv)


@pytest.mark.slow  # three runs of the command, figures and all
def test_resume_after_a_broken_final_write_and_an_empty_commit_record(
    tiny_toml: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Item 7: an empty commit record gave a JSONDecodeError traceback, and the hidden
    temporary folder of a final write killed half-way was never removed. Now the record
    is one line naming it and what to do; once it is deleted the resume removes the dead
    writer's folder (not a live one's) and gives the results of an uninterrupted run."""

    import simulation.outputs

    out = tmp_path / "out"
    run = ["run", str(tiny_toml), "-n", "4", "-w", "1"]

    def killed(*args: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:  # interrupted while writing the results
        patch.setattr(simulation.outputs, "write_tables", killed)
        assert _quiet([*run, "-o", str(out)]) == 130, "an interrupted write should exit 130"
    partial = tmp_path / "out.partial"
    commits = sorted((partial / "sweep" / "shards" / "_commits").glob("part-*.json"))
    assert commits, f"the finished replicates should be committed in {partial}"
    dead = tmp_path / ".out.partial-2147483646-abandoned"  # beyond any pid: its writer is gone
    live = tmp_path / f".out.partial-{os.getpid()}-writing"  # this process: still writing
    for folder in (dead, live):
        folder.mkdir()
        (folder / "trial.parquet").write_bytes(b"half a file")
    commits[0].write_bytes(b"")  # a record emptied by a crash of the machine
    capsys.readouterr()

    assert _quiet(["run", "--resume", str(out)]) == 2, "an unreadable record is exit 2"
    err = capsys.readouterr().err
    assert "Traceback" not in err, f"no traceback expected:\n{err}"
    assert err.strip().splitlines()[-1] == (
        f"peersim: error: cannot read a commit record {commits[0]}: it is empty; "
        "delete it to run its jobs again"
    ), f"one line naming the record and what to do:\n{err}"

    commits[0].unlink()
    assert _quiet(["run", "--resume", str(out)]) == 0, "the resume should then succeed"
    assert not dead.exists(), f"the dead writer's temporary folder should be removed: {dead}"
    assert live.exists(), f"a live writer's temporary folder must be kept: {live}"
    _assert_uninterrupted(out, tiny_toml, 4, tmp_path / "reference")


@pytest.mark.parametrize("damage", ["truncated", "missing", "same size"])
def test_a_damaged_shard_is_found_before_any_new_work(
    damage: str, tiny_toml: Path, tmp_path: Path
) -> None:
    """Item 7: a truncated shard was found only after the whole remaining sweep. Now
    commit records carry each shard's size and SHA-256, checked on resume first."""
    from scenarios import load_scenario
    from simulation.executors import ExecutorSpec
    from simulation.runner import SweepError, replicate_jobs, run_jobs

    jobs = replicate_jobs(load_scenario(tiny_toml), 7, 4)
    out = tmp_path / "sweep"
    run_jobs(jobs[:2], out, executor=ExecutorSpec(workers=1), batch_size=1)
    shard = out / "shards" / "participants" / "part-00001.parquet"
    data = shard.read_bytes()
    if damage == "truncated":
        shard.write_bytes(data[: len(data) // 2])
    elif damage == "missing":
        shard.unlink()
    else:  # a flipped byte in the middle
        middle = len(data) // 2
        shard.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :])

    def never(*args: object) -> object:
        raise AssertionError("no job should run before the shards are checked")

    with pytest.raises(SweepError) as raised:
        run_jobs(jobs, out, executor=ExecutorSpec(workers=1), resume=True, simulate=never)
    message = str(raised.value)
    what = {"truncated": "damaged (", "missing": "missing", "same size": "damaged (its SHA-256"}
    assert message.startswith(f"{shard} is {what[damage]}"), f"names the shard: {message}"
    assert message.endswith(
        f"delete {out / 'shards' / '_commits' / 'part-00001.json'} to run its 1 jobs again"
    ), f"says what to delete: {message}"


# --- sizes: replicates and workers ---------------------------------------------------------


def test_a_run_that_cannot_fit_in_memory_is_refused_at_once(
    tiny_toml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 3: ``-n 1000000000`` died with a MemoryError traceback after 142 s. Now the
    memory it would need is estimated first and the run refused in one line."""
    out = tmp_path / "out"
    t0 = time.monotonic()
    status = main(["run", str(tiny_toml), "-n", "1000000000", "-w", "1", "-o", str(out)])
    elapsed = time.monotonic() - t0
    err = capsys.readouterr().err
    assert status == 2, f"exit status 2 expected, got {status}:\n{err}"
    assert elapsed < 30, f"the refusal should come at once, took {elapsed:.0f} s"
    line = err.strip()
    assert line.startswith("peersim: error: 1000000000 replicates need about "), line
    assert line.endswith("available; run fewer replicates"), f"says what to do: {line}"
    assert "\n" not in line, f"one line expected:\n{err}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.toml"], "nothing written"


def test_too_many_workers_for_the_memory_are_refused_before_any_starts(
    tiny_toml: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Item 3: nothing limited ``--workers`` (1000 started an interpreter per task).
    Now they are capped at the number of jobs (here 50), a warning says when they
    outnumber the cores, and workers that cannot fit in memory (here 1 GB) are
    refused before any is started."""
    import analysis.cli.common

    monkeypatch.setattr(analysis.cli.common, "available_memory", lambda: 10**9)
    status = main(["run", str(tiny_toml), "-n", "50", "-w", "1000", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert status == 2, f"exit status 2 expected, got {status}:\n{err}"
    warning, error = err.strip().splitlines()
    assert warning.startswith("peersim: warning: --workers 1000 is more than the "), warning
    assert "and 50 worker processes of about " in error, f"capped at the 50 jobs: {error}"
    assert error.endswith("run fewer replicates or fewer workers"), error


def test_workers_are_capped_at_the_job_count() -> None:
    from simulation.executors import ExecutorSpec
    from simulation.runner import auto_spec

    assert auto_spec(ExecutorSpec(workers=1000), 40) == ExecutorSpec(workers=40), (
        "a local pool gets at most one worker per job"
    )
    assert auto_spec(ExecutorSpec(workers=8, scheduler="local"), 3) == ExecutorSpec(
        workers=3, scheduler="local"
    ), "so does a local Dask cluster"
    remote = ExecutorSpec(workers=8, scheduler="tcp://10.0.0.5:8786")
    assert auto_spec(remote, 3) == remote, "a remote cluster has what it has"
    assert auto_spec(ExecutorSpec(workers=4), 40) == ExecutorSpec(workers=4), (
        "fewer workers than jobs are kept"
    )


# --- operating-system faults ----------------------------------------------------------------


@pytest.mark.slow  # three runs of the command, figures and all
def test_a_full_disk_mid_sweep_is_one_line_with_the_resume_command(
    tiny_toml: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Item 5: a full disk during a sweep ended in a traceback. Now (ENOSPC from the
    6th file the sweep writes: its record, then 3 shards and a commit record a task)
    it is one line saying what failed, how much is saved and how to resume; the
    resume then gives the results of an uninterrupted run."""
    import errno

    import simulation.runner

    real_write = simulation.runner._write_atomic
    writes = []

    def filling_up(path: Path, data: str | bytes) -> None:
        writes.append(path)
        if len(writes) >= 6:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write(path, data)

    out = tmp_path / "out"
    run = ["run", str(tiny_toml), "-n", "30", "-w", "1"]
    with monkeypatch.context() as patch:
        patch.setattr(simulation.runner, "_write_atomic", filling_up)
        status = _quiet([*run, "-o", str(out)])
    err = capsys.readouterr().err
    assert status == 1, f"exit status 1 expected, got {status}:\n{err}"
    assert "Traceback" not in err, f"no traceback expected:\n{err}"
    last = err.strip().splitlines()[-1]
    assert last == (
        f"peersim: error: cannot write {writes[-1]}: No space left on device; 10 of 30 "
        f"replicates are saved in {tmp_path / 'out.partial'}; once that is fixed, "
        f"continue with: peersim run --resume {out}"
    ), f"one line: what, how much is saved, how to resume:\n{err}"

    assert _quiet(["run", "--resume", str(out)]) == 0, "the resume should succeed"
    _assert_uninterrupted(out, tiny_toml, 30, tmp_path / "reference")


def test_a_full_disk_while_writing_the_results_keeps_the_partial_folder(
    tiny_toml: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import errno

    import simulation.outputs

    def full(directory: Path, tables: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory / "trial.parquet"))

    monkeypatch.setattr(simulation.outputs, "write_tables", full)
    out = tmp_path / "out"
    status = _quiet(["run", str(tiny_toml), "-n", "2", "-w", "1", "-o", str(out)])
    err = capsys.readouterr().err
    assert status == 1, f"exit status 1 expected, got {status}:\n{err}"
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"peersim: error: cannot write results to {out}: cannot write "), last
    assert last.endswith(
        f"No space left on device; the finished replicates are saved in "
        f"{tmp_path / 'out.partial'}; once that is fixed, continue with: "
        f"peersim run --resume {out}"
    ), f"the resume command is given: {last}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.partial", "tiny.toml"], (
        "the finished work stays, the half-written results do not"
    )


@pytest.mark.parametrize("where", ["/proc/peersim-faults/out", "/sys/peersim-faults"])
def test_an_output_folder_that_cannot_be_made_is_refused_before_running(
    where: str, tiny_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 5: an output folder that cannot be created ended in a traceback (root passes
    every access() check, and /proc and /sys refuse new folders)."""
    if not Path(where).parent.parent.exists():
        pytest.skip(f"no {Path(where).parent.parent} here")
    status = main(["run", str(tiny_toml), "-n", "2", "-w", "1", "-o", where])
    err = capsys.readouterr().err
    assert status == 2, f"exit status 2 expected, got {status}:\n{err}"
    assert err.startswith(f"peersim: error: --out {where}: cannot create folders in "), err
    assert len(err.strip().splitlines()) == 1, f"one line expected:\n{err}"


class _LostScheduler:
    """An executor whose first two tasks run and whose later ones are cancelled, as a
    Dask client's are when its scheduler dies."""

    def __init__(self) -> None:
        self.n = 0

    def submit(self, fn: Callable[..., object], *args: object) -> object:
        from concurrent.futures import Future

        self.n += 1
        future: Future[object] = Future()
        if self.n <= 2:
            future.set_result(fn(*args))
        else:
            future.cancel()
            future.set_running_or_notify_cancel()
        return future


def test_a_lost_scheduler_stops_the_sweep_for_a_resume_not_as_failures(
    tiny_toml: Path, tmp_path: Path
) -> None:
    """Item 5: the tasks a dying Dask scheduler cancelled were recorded as failed
    replicates. Now the sweep stops (``SweepAborted``) with the finished ones saved
    and no failure recorded, and a resume completes it."""
    from scenarios import load_scenario
    from simulation.executors import Backend, ExecutorSpec
    from simulation.runner import SweepAborted, replicate_jobs, run_jobs

    jobs = replicate_jobs(load_scenario(tiny_toml), 7, 5)
    out = tmp_path / "sweep"
    lost = Backend(_LostScheduler(), 1, "dask", "the Dask cluster at tcp://gone:8786")  # type: ignore[arg-type]  # a fake
    with pytest.raises(SweepAborted) as raised:
        run_jobs(jobs, out, executor=lost, batch_size=1)
    assert raised.value.reason == "lost the Dask cluster at tcp://gone:8786 (CancelledError)"
    assert raised.value.n_done == 2, f"the 2 finished jobs are saved: {raised.value}"
    resumed = run_jobs(jobs, out, executor=ExecutorSpec(workers=1), resume=True)
    assert resumed.complete, f"the resume should finish every job: {resumed.failures}"
    assert resumed.failures.empty, "no job should be recorded as failed"


# --- edge inputs ---------------------------------------------------------------------------

SECRETS = 'password = "hunter2"\n[db]\nuser = "admin"\ntoken = "s3cr3t"\n'
ENRICH = REPO / "scenarios" / "enrich_trial.toml"


def _problems(path: Path) -> list[str]:
    from scenarios import ScenarioError, load_scenario

    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    return raised.value.problems


def test_a_long_extends_chain_is_one_clear_problem(tmp_path: Path) -> None:
    """Item 8: a chain of about 500 files gave a RecursionError. Now at most 32 parents
    are followed, and a longer chain is one problem naming both ends."""
    from scenarios import load_scenario
    from scenarios.loader import MAX_EXTENDS_DEPTH

    (tmp_path / "f0.toml").write_text(f'extends = "{ENRICH}"\n', encoding="utf-8")
    for i in range(1, 501):
        (tmp_path / f"f{i}.toml").write_text(f'extends = "f{i - 1}.toml"\n', encoding="utf-8")
    deepest_allowed = tmp_path / f"f{MAX_EXTENDS_DEPTH - 1}.toml"  # + f0 + ENRICH
    assert load_scenario(deepest_allowed).name == deepest_allowed.stem, "32 parents load"
    problems = _problems(tmp_path / "f500.toml")
    assert len(problems) == 1, f"one problem expected: {problems}"
    assert (
        f"more than {MAX_EXTENDS_DEPTH} parents in a row ({tmp_path / 'f500.toml'} -> ..."
        in (problems[0])
    ), f"names the chain's start: {problems[0]}"


def test_a_file_that_is_no_scenario_never_has_its_values_shown(tmp_path: Path) -> None:
    """Item 6: ``extends`` of a file that is no scenario listed its string values (here
    a password and a token) in the errors. Now it is one line naming a few of its keys."""
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(SECRETS, encoding="utf-8")
    child = tmp_path / "child.toml"
    child.write_text('extends = "secrets.toml"\n', encoding="utf-8")
    for path in (secrets, child):
        problems = _problems(path)
        assert problems == [
            f"{secrets}: not a scenario file: none of its top-level keys (password, db) is "
            "one a scenario file has"
        ], f"one line without values, loading {path.name}: {problems}"


def test_a_spec_or_calibration_file_naming_a_secrets_file_never_shows_its_values(
    tmp_path: Path,
) -> None:
    """Item 6: the same for a sensitivity spec's ``scenario =`` and ``priors =`` and for
    a targets or priors file given directly."""
    from analysis.sensitivity_spec import SpecError, load_spec
    from calibration.files import PriorsError, TargetsError
    from calibration.priors import load_priors
    from calibration.targets import load_targets

    secrets = tmp_path / "secrets.toml"
    secrets.write_text(SECRETS, encoding="utf-8")
    spec = tmp_path / "spec.toml"
    spec.write_text(
        'scenario = "secrets.toml"\npriors = "secrets.toml"\n'
        '[parameters]\n"engagement.logit_intercept" = [-3.0, -1.0]\n'
        '"ward.w_preparation" = [0.0, 1.0]\n',
        encoding="utf-8",
    )
    checks: list[tuple[type[Exception], Callable[[], object], str]] = [
        (SpecError, lambda: load_spec(spec), "scenario"),
        (PriorsError, lambda: load_priors(secrets), "priors"),
        (TargetsError, lambda: load_targets(secrets), "targets"),
    ]
    for error, load, kind in checks:
        with pytest.raises(error) as raised:
            load()
        message = str(raised.value)
        for value in ("hunter2", "admin", "s3cr3t"):
            assert value not in message, f"{value!r} shown loading as {kind}:\n{message}"
        assert f"not a {kind} file" in message, f"says it is no {kind} file:\n{message}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dur_support_after_discharge_weeks = 26\n", "belongs in [trial])"),
        (
            "n_peer_workers = 6\n",
            "belongs in [sites.NAME], or in [sites_where.set] for several sites)",
        ),
        (
            "[trial]\nn_peer_workers = 6\n",
            "belongs in [sites.NAME], or in [sites_where.set] for several sites)",
        ),
        ("[trial]\nlogit_intercept = -2.0\n", "(logit_intercept belongs in [engagement])"),
        ("[sites.A]\nlogit_intercept = -2.0\n", "(logit_intercept belongs in [engagement])"),
    ],
    ids=["global-at-top", "site-at-top", "site-in-trial", "wrong-group", "global-in-site"],
)
def test_a_key_in_the_wrong_table_says_where_it_belongs(
    text: str, expected: str, tmp_path: Path
) -> None:
    """Item 8: a key written in the wrong table got only "unknown key"."""
    path = tmp_path / "whatif.toml"
    path.write_text(f'extends = "{ENRICH}"\n{text}', encoding="utf-8")
    problems = _problems(path)
    assert len(problems) == 1, f"one problem expected: {problems}"
    assert problems[0].startswith(f"{path}: "), f"blames the what-if: {problems[0]}"
    assert problems[0].endswith(expected), f"says where it belongs: {problems[0]}"


def test_removing_every_site_blames_the_file_that_did_it(tmp_path: Path) -> None:
    """Item 8: removing every site blamed the parent, in pydantic's words."""
    path = tmp_path / "empty.toml"
    path.write_text(
        f'extends = "{ENRICH}"\nsites_remove = ["A", "B", "C", "D", "E", "F", "G"]\n',
        encoding="utf-8",
    )
    assert _problems(path) == [
        f"{path}: sites: no site left: a scenario needs at least one (sites_remove removed "
        "every site of the parent)"
    ], "one problem, naming the what-if"


class _DyingPool:
    """An executor whose every task fails as a process pool's does when a worker dies."""

    def submit(self, fn: Callable[..., object], *args: object) -> object:
        from concurrent.futures import Future
        from concurrent.futures.process import BrokenProcessPool

        future: Future[object] = Future()
        future.set_exception(BrokenProcessPool("a child process terminated abruptly"))
        return future


def test_workers_that_keep_dying_stop_the_sweep_for_a_resume(
    tiny_toml: Path, tmp_path: Path
) -> None:
    """Item 5: workers that kept dying ended in a RuntimeError traceback. Now, once the
    pool cannot be replaced again, the sweep stops with ``SweepAborted``, whose reason
    the command prints with the resume command."""
    from scenarios import load_scenario
    from simulation.executors import Backend
    from simulation.runner import SweepAborted, replicate_jobs, run_jobs

    jobs = replicate_jobs(load_scenario(tiny_toml), 7, 3)
    dying = Backend(_DyingPool(), 2, "process-pool", "2 local processes")  # type: ignore[arg-type]  # a fake; recover() says no
    with pytest.raises(SweepAborted) as raised:
        run_jobs(jobs, tmp_path / "sweep", executor=dying)
    assert raised.value.reason == "worker processes kept dying", f"the reason: {raised.value}"
    assert (raised.value.n_done, raised.value.n_jobs) == (0, 3), f"nothing saved: {raised.value}"
