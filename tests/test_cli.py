"""``peersim run`` end to end: user mistakes exit 2 with one clear line and no output
folder; a small run writes every file; results do not depend on --workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from analysis.cli import main
from simulation.outputs import atomic_directory
from simulation.rng import DEFAULT_SEED

REPO = Path(__file__).resolve().parent.parent

TINY = """\
name = "tiny"
description = "two small sites, for fast tests"

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

[sites.rural]
host = "not_for_profit"
geography = "rural"
dur_travel_min = 60.0
n_supervisors = 1
supervisor_h_per_week = 4.0
team_preparation = 0.3
share_records_access = 0.0
n_peer_workers = 2
n_caseload_cap = 10
n_participants = 30
"""

SITE_WEEK_COLUMNS = [
    "replicate", "site", "week", "met_share", "engaged_share", "contacts_mean", "fidelity",
    "fid_relationships", "fid_reciprocity", "fid_leadership", "fid_strengths",
    "supervision_hours", "ward_relationship", "caseload_mean", "pw_morale",
]  # fmt: skip
PARTICIPANT_COLUMNS = [
    "replicate", "participant", "site", "arm", "diagnosis", "week_recruited",
    "week_discharged", "contacts_ward", "contacts_community", "first_contact_min",
    "rb_activities", "engaged", "readmitted_12m", "weeks_to_readmission",
]  # fmt: skip
TRIAL_COLUMNS = [
    "replicate", "readmit_ps", "readmit_uc", "itt_or", "itt_or_lo", "itt_or_hi",
    "readmit_2plus", "met_share", "engaged_share", "engaged_share_urban", "fidelity_rural",
]  # fmt: skip
MANIFEST_KEYS = [
    "peersim_version", "git", "scenario", "scenario_sha256", "scenario_path", "master_seed",
    "replicates", "workers", "versions", "started_utc", "finished_utc", "command",
]  # fmt: skip
OUTPUT_FILES = [
    "manifest.json", "site_weeks.parquet", "participants.parquet", "trial.parquet",
    "figures/trajectories.png", "figures/readmission.png", "figures/fidelity_domains.png",
]  # fmt: skip
N_REPLICATES = 3


@pytest.fixture(scope="module")
def tiny_toml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "tiny.toml"
    path.write_text(TINY, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def runs(tiny_toml: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Path, str]]:
    """The tiny scenario run with 1 and with 2 workers: output folder and stdout each."""
    base = tmp_path_factory.mktemp("runs")
    done = {}
    for workers in (1, 2):
        out = base / f"workers{workers}"
        args = ["run", str(tiny_toml), "-n", str(N_REPLICATES), "-w", str(workers), "-o", str(out)]
        stdout = _run_main(args)
        done[workers] = (out, stdout)
    return done


def _run_main(args: list[str]) -> str:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main(args)
    assert status == 0, f"peersim {' '.join(args)} should succeed, got exit status {status}"
    return buffer.getvalue()


# --- a successful run ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.subprocess
def test_run_writes_every_file(runs: dict[int, tuple[Path, str]]) -> None:
    out, _ = runs[1]
    for name in OUTPUT_FILES:
        path = out / name
        assert path.is_file(), f"{name} should be written"
        assert path.stat().st_size > 0, f"{name} should not be empty"
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == [], f"no temporary folders should remain: {leftovers}"


@pytest.mark.slow
@pytest.mark.subprocess
def test_tables_have_the_required_columns_with_replicate_first(
    runs: dict[int, tuple[Path, str]],
) -> None:
    out, _ = runs[1]
    for name, required in [
        ("site_weeks", SITE_WEEK_COLUMNS),
        ("participants", PARTICIPANT_COLUMNS),
        ("trial", TRIAL_COLUMNS),
    ]:
        table = pd.read_parquet(out / f"{name}.parquet")
        missing = sorted(set(required) - set(table.columns))
        assert missing == [], f"{name}.parquet lacks columns {missing}"
        assert table.columns[0] == "replicate", f"{name}: 'replicate' should be the first column"
        assert sorted(table["replicate"].unique()) == list(range(N_REPLICATES)), (
            f"{name}: replicates 0..{N_REPLICATES - 1} expected"
        )
    trial = pd.read_parquet(out / "trial.parquet")
    assert len(trial) == N_REPLICATES, f"trial.parquet: one row per replicate, got {len(trial)}"
    sites = pd.read_parquet(out / "site_weeks.parquet")["site"]
    assert set(sites.astype(str)) == {"urban", "rural"}, "site_weeks should name both sites"


@pytest.mark.slow
@pytest.mark.subprocess
def test_manifest_records_how_the_run_was_made(
    runs: dict[int, tuple[Path, str]], tiny_toml: Path
) -> None:
    out, _ = runs[2]
    manifest = json.loads((out / "manifest.json").read_text())
    missing = [key for key in MANIFEST_KEYS if key not in manifest]
    assert missing == [], f"manifest.json lacks {missing}"
    assert manifest["master_seed"] == DEFAULT_SEED, "default seed should be recorded"
    assert manifest["replicates"] == N_REPLICATES, "replicate count should be recorded"
    assert manifest["workers"] == 2, "worker count should be recorded"
    assert manifest["scenario"]["name"] == "tiny", "the resolved scenario should be embedded"
    assert manifest["scenario"]["trial"]["dur_support_after_discharge_weeks"] == 16, (
        "the embedded scenario should include defaults the file left out"
    )
    assert manifest["scenario_path"] == str(tiny_toml.resolve()), "scenario path recorded"
    assert len(manifest["scenario_sha256"]) == 64, "scenario hash should be a sha256 hex digest"
    assert manifest["started_utc"] <= manifest["finished_utc"], "start should precede end"
    assert manifest["started_utc"].endswith("+00:00"), "times should be ISO-8601 UTC"
    for package in ("python", "numpy", "mesa", "pandas"):
        assert manifest["versions"].get(package), f"version of {package} should be recorded"
    assert manifest["command"][:2] == ["peersim", "run"], "command line should be recorded"


@pytest.mark.slow
@pytest.mark.subprocess
def test_results_do_not_depend_on_worker_count(runs: dict[int, tuple[Path, str]]) -> None:
    one, two = runs[1][0], runs[2][0]
    for name in ("site_weeks", "participants", "trial"):
        assert_frame_equal(
            pd.read_parquet(one / f"{name}.parquet"),
            pd.read_parquet(two / f"{name}.parquet"),
            obj=f"{name}.parquet with --workers 1 vs --workers 2",
        )
    hashes = {json.loads((o / "manifest.json").read_text())["scenario_sha256"] for o in (one, two)}
    assert len(hashes) == 1, "the same scenario should hash the same"


@pytest.mark.slow
@pytest.mark.subprocess
def test_summary_is_printed_with_where_results_went(runs: dict[int, tuple[Path, str]]) -> None:
    out, stdout = runs[1]
    for part in ("urban", "rural", "ITT odds ratio", "engaged share", "fidelity"):
        assert part in stdout, f"summary should mention {part!r}:\n{stdout}"
    assert f"Results written to {out}" in stdout, f"the output folder should be named:\n{stdout}"


def test_default_output_folder_is_new_and_named_for_the_scenario(
    tiny_toml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _run_main(["run", str(tiny_toml), "-n", "1"])
    _run_main(["run", str(tiny_toml), "-n", "1"])
    folders = sorted(p.name for p in (tmp_path / "results").iterdir())
    assert len(folders) == 2, f"two runs should make two folders, never reuse one: {folders}"
    assert all(f.startswith("tiny-") for f in folders), f"named <scenario>-<time>: {folders}"


# --- user mistakes: exit 2, one message, nothing written ---------------------------------

BAD_SCENARIO = TINY.replace("n_peer_workers = 2", "n_peer_workers = 0", 1)


@pytest.mark.parametrize(
    ("args", "scenario_text", "expected"),
    [
        pytest.param(
            ["run", "{toml}"],
            BAD_SCENARIO,
            ["{toml}", "sites.urban.n_peer_workers", "value 0", "1 to 500"],
            id="out-of-range",
        ),
        pytest.param(
            ["run", "{toml}"],
            TINY.replace("[trial]", "[trial]\ndur_recruitmnt_weeks = 4"),
            ["{toml}", "trial.dur_recruitmnt_weeks", "value 4", "did you mean"],
            id="unknown-key",
        ),
        pytest.param(
            ["run", "{toml}"],
            TINY.replace('host = "nhs"', "host = nhs"),
            ["{toml}", "line 9, column 8", "invalid TOML"],
            id="malformed-toml",
        ),
        pytest.param(
            ["run", "{dir}/absent.toml"],
            None,
            ["absent.toml", "no such scenario file"],
            id="no-file",
        ),
        pytest.param(["run", "-n", "-1"], None, ["--replicates", "'-1'", ">= 1"], id="neg-reps"),
        pytest.param(["run", "-n", "0"], None, ["--replicates", "'0'", ">= 1"], id="zero-reps"),
        pytest.param(["run", "-n", "ten"], None, ["--replicates", "'ten'"], id="text-reps"),
        pytest.param(["run", "-w", "-2"], None, ["--workers", "'-2'", ">= 1"], id="neg-workers"),
        pytest.param(["run", "-s", "-5"], None, ["--seed", "'-5'", ">= 0"], id="neg-seed"),
        pytest.param(["run", "--frobnicate"], None, ["--frobnicate"], id="unknown-option"),
        pytest.param(["walk"], None, ["'walk'"], id="unknown-command"),
    ],
)
def test_user_mistakes_exit_2_with_one_clear_message(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    scenario_text: str | None,
    expected: list[str],
) -> None:
    toml = tmp_path / "scenario.toml"
    if scenario_text is not None:
        toml.write_text(scenario_text, encoding="utf-8")
    out = tmp_path / "out"
    fill = {"{toml}": str(toml), "{dir}": str(tmp_path)}
    argv = [_fill(a, fill) for a in args]
    if argv[0] == "run":
        argv += ["--out", str(out)]
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, f"peersim {' '.join(argv)} should exit 2, got {status}; stderr:\n{err}"
    assert err.startswith("peersim: error: "), f"stderr should start 'peersim: error:':\n{err}"
    for part in expected:
        assert _fill(part, fill) in err, f"stderr should contain {_fill(part, fill)!r}:\n{err}"
    assert "Traceback" not in err, f"no traceback for a user mistake:\n{err}"
    assert not out.exists(), "no output folder should be created for a user mistake"


def _fill(text: str, values: dict[str, str]) -> str:
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


def test_existing_output_folder_is_never_overwritten(
    tiny_toml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("earlier results")
    status = main(["run", str(tiny_toml), "-n", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2, f"a non-empty --out should exit 2, got {status}"
    assert f"--out {out}" in err, f"message should name the folder:\n{err}"
    assert "not empty" in err, f"message should say why:\n{err}"
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"], "earlier files must be kept"


def test_help_explains_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == 0, "--help should exit 0"
    text = capsys.readouterr().out
    for part in ("SCENARIO", "--replicates", "default: 10", "--seed", "--workers", "examples:"):
        assert part in text, f"'peersim run --help' should mention {part!r}"


# --- interruption: nothing half written ---------------------------------------------


@pytest.mark.slow
def test_interrupt_while_writing_keeps_only_the_resumable_partial_folder(
    tiny_toml: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ctrl-C after the replicates finished: no half-written output folder, only
    DIR.partial with the finished replicates, and --resume DIR completes the run."""
    import analysis.figures

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    # The tables are already in the temporary folder when the figures are drawn.
    monkeypatch.setattr(analysis.figures, "make_figures", interrupted)
    out = tmp_path / "deep" / "out"
    status = main(["run", str(tiny_toml), "-n", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 130, f"Ctrl-C should exit 130, got {status}"
    assert "interrupted" in err, f"stderr should say it was interrupted:\n{err}"
    assert f"peersim run --resume {out}" in err, f"stderr should say how to resume:\n{err}"
    assert "Traceback" not in err, f"no traceback on Ctrl-C:\n{err}"
    left = sorted(p.name for p in out.parent.iterdir())
    assert left == ["out.partial"], f"only the resumable out.partial should remain: {left}"
    monkeypatch.undo()
    _run_main(["run", "--resume", str(out)])
    assert (out / "trial.parquet").is_file(), "--resume should complete the run"
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"], "out.partial should go"


def test_atomic_directory_removes_partial_output_on_error(tmp_path: Path) -> None:
    dest = tmp_path / "a" / "b"

    def fail_half_way() -> None:
        with atomic_directory(dest) as partial:
            (partial / "half.parquet").write_text("x")
            raise RuntimeError("failed half way")

    with pytest.raises(RuntimeError, match="half way"):
        fail_half_way()
    assert list(tmp_path.iterdir()) == [], "a failed write should leave nothing behind"
    with atomic_directory(dest) as partial:
        (partial / "whole.parquet").write_text("x")
    assert [p.name for p in dest.iterdir()] == ["whole.parquet"], "success renames into place"


# --- real processes: exit codes as a shell sees them --------------------------------


def _peersim(*args: str) -> list[str]:
    return [sys.executable, "-m", "analysis.cli", *args]


@pytest.mark.slow
@pytest.mark.subprocess
def test_subprocess_bad_scenario_exits_2_without_traceback(tmp_path: Path) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text(BAD_SCENARIO, encoding="utf-8")
    out = tmp_path / "out"
    done = subprocess.run(
        _peersim("run", str(toml), "--out", str(out)),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 2, f"exit status 2 expected, got {done.returncode}:\n{done.stderr}"
    assert done.stderr.startswith(f"peersim: error: {toml}: sites.urban.n_peer_workers"), (
        f"stderr should name the file and key:\n{done.stderr}"
    )
    assert "Traceback" not in done.stderr, f"no traceback expected:\n{done.stderr}"
    assert done.stdout == "", f"nothing on stdout for an error:\n{done.stdout}"
    assert not out.exists(), "no output folder should be created"


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="needs POSIX process groups")
@pytest.mark.slow
@pytest.mark.subprocess
def test_subprocess_ctrl_c_with_workers_exits_130_and_keeps_only_the_partial_folder(
    tiny_toml: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    process = subprocess.Popen(
        _peersim("run", str(tiny_toml), "-n", "100000", "-w", "2", "--out", str(out)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        start_new_session=True,  # its own process group, as a terminal would make
    )
    assert process.stderr is not None
    started = process.stderr.readline()  # printed once the scenario is loaded
    assert "running 100000 replicates" in started, f"run should have started: {started!r}"
    _wait_for_workers(process.pid)
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole group
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130, f"Ctrl-C should exit 130, got {process.returncode}:{err}"
    assert "Traceback" not in err, f"no tracebacks from parent or workers:\n{err}"
    assert f"--resume {out}" in err, f"stderr should say how to resume:\n{err}"
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["out.partial"], f"only the resumable out.partial should remain: {left}"


def _wait_for_workers(pid: int, timeout_s: float = 20.0) -> None:
    """Wait until the worker processes exist, so Ctrl-C also reaches them."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        children = Path(f"/proc/{pid}/task/{pid}/children")
        if not children.exists():
            time.sleep(3.0)  # no /proc: give the workers time to start
            return
        if len(children.read_text().split()) >= 2:
            time.sleep(1.0)  # let them get into their imports
            return
        time.sleep(0.1)
    pytest.fail("worker processes did not start")


# --- posterior-ensemble mode ----------------------------------------------------------

POSTERIOR_DIR = REPO / "docs" / "calibration"


@pytest.mark.slow
def test_posterior_run_draws_parameters_per_replicate_reproducibly(
    tiny_toml: Path, tmp_path: Path
) -> None:
    tables = []
    for name in ("first", "second"):
        out = tmp_path / name
        _run_main(
            ["run", str(tiny_toml), "--posterior", str(POSTERIOR_DIR), "-n", "3", "-w", "1",
             "--out", str(out)]
        )  # fmt: skip
        tables.append(pd.read_parquet(out / "trial.parquet"))
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["posterior"] == str(POSTERIOR_DIR.resolve())
    trial = tables[0]
    assert "particle" in trial.columns, "each replicate should record the particle it drew"
    assert trial["particle"].nunique() > 1, "replicates should draw different parameter sets"
    assert_frame_equal(tables[0], tables[1])


def test_posterior_run_with_a_bad_folder_exits_2_and_writes_nothing(
    tiny_toml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = ["run", str(tiny_toml), "--posterior", str(tmp_path / "missing"), "-w", "1"]
    assert main([*args, "--out", str(out)]) == 2
    assert "--posterior" in capsys.readouterr().err
    assert not out.exists()
    assert not (tmp_path / "out.partial").exists()
