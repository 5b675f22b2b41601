"""Write a run's output directory all at once or not at all.

Everything is built in a hidden temporary directory beside the destination (so on
the same filesystem) and renamed into place at the end. On any error, including
Ctrl-C, the temporary directory is removed: a reader never sees half a result.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # kept out of the import so the CLI can check paths before loading the model
    import pandas as pd

    from simulation import Scenario

# Source that decides the numbers: a change here makes a checkout "dirty".
_SOURCE_PATHS = ("simulation", "scenarios", "analysis", "calibration", "pyproject.toml", "uv.lock")
_REPO_ROOT = Path(__file__).resolve().parent.parent
_GIT_TIMEOUT_S = 5.0


class OutputExistsError(Exception):
    """The destination already holds files; runs never overwrite results."""


def is_free(dest: Path) -> bool:
    """True if ``dest`` does not exist or is an empty directory."""
    if not dest.exists():
        return True
    return dest.is_dir() and not any(dest.iterdir())


@contextlib.contextmanager
def atomic_directory(dest: Path) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``dest`` if the block succeeds.

    ``dest`` must not exist or be empty. Parent directories created here are
    removed again on failure, so a failed run leaves the filesystem as it was.
    """
    dest = Path(dest)
    if not is_free(dest):
        raise OutputExistsError(f"{dest} already exists and is not empty")
    created = _make_parents(dest.parent)
    try:
        prefix = f"{_temporary_prefix(dest)}{os.getpid()}-"  # whose it is: see below
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=dest.parent))
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; results are not
    except BaseException:
        _remove_empty(created)
        raise
    try:
        yield tmp
        if not is_free(dest):  # someone else wrote there meanwhile
            raise OutputExistsError(f"{dest} already exists and is not empty")
        if dest.exists():
            dest.rmdir()  # an empty directory: replace it
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        raise


def _temporary_prefix(dest: Path) -> str:
    return f".{dest.name}.partial-"


def remove_abandoned(dest: Path) -> list[Path]:
    """Delete the temporary folders that ``atomic_directory(dest)`` left behind when its
    process was killed mid-write (``kill -9``, a lost machine); returns them.

    Each is named ``.<dest>.partial-<pid>-<random>``: one whose process still runs is
    kept (it may be writing now), as is anything not a folder. A name without a pid
    (written before this release) counts as abandoned.
    """
    removed = []
    prefix = _temporary_prefix(dest)
    with contextlib.suppress(OSError):
        for path in Path(dest).parent.iterdir():
            if not path.name.startswith(prefix) or not path.is_dir() or path.is_symlink():
                continue
            owner = path.name[len(prefix) :].split("-", 1)[0]
            if owner.isdigit() and _alive(int(owner)):
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def write_tables(
    directory: Path, tables: Mapping[str, pd.DataFrame | Iterable[pd.DataFrame]]
) -> list[Path]:
    """Write each table as ``<name>.parquet``; returns the files written.

    A table is a DataFrame, or its rows as an iterable of DataFrames (pieces of one
    table, in order, such as ``SweepResult.iter_table`` gives), written piece by
    piece (a row group each) so that only one piece is in memory. Either way the
    file holds the same rows, columns, types and pandas metadata as
    ``DataFrame.to_parquet(index=False)`` of the whole table would write.
    """
    paths = []
    for name, frames in tables.items():
        path = directory / f"{name}.parquet"
        if hasattr(frames, "to_parquet"):
            frames.to_parquet(path, engine="pyarrow", index=False)
        else:
            _write_pieces(path, frames)
        paths.append(path)
    return paths


def _write_pieces(path: Path, frames: Iterable[pd.DataFrame]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    try:
        for frame in frames:
            # What DataFrame.to_parquet(index=False) does, a piece at a time, every
            # piece converted to the first one's schema.
            schema = None if writer is None else writer.schema
            table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            del table
            pa.default_memory_pool().release_unused()  # see runner.release_arrow_memory
        if writer is None:  # no rows at all: what an empty DataFrame gives
            import pandas as pd

            pd.DataFrame().to_parquet(path, engine="pyarrow", index=False)
    finally:
        if writer is not None:
            writer.close()


def write_manifest(directory: Path, manifest: dict[str, Any]) -> Path:
    path = directory / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def build_manifest(
    scenario: Scenario,
    scenario_path: Path | None,
    *,
    master_seed: int,
    n_replicates: int,
    workers: int,
    started: datetime,
    finished: datetime,
    command: Sequence[str],
) -> dict[str, Any]:
    """Everything needed to reproduce (and trust) a run's output."""
    resolved = scenario.model_dump(mode="json")
    return {
        "peersim_version": package_version("peersim"),
        "git": git_state(),
        "scenario_name": scenario.name,
        "scenario_path": str(scenario_path) if scenario_path is not None else None,
        "scenario_sha256": scenario_sha256(scenario),
        "master_seed": master_seed,
        "replicates": n_replicates,
        "workers": workers,
        "started_utc": started.astimezone(UTC).isoformat(timespec="seconds"),
        "finished_utc": finished.astimezone(UTC).isoformat(timespec="seconds"),
        "command": list(command),
        "versions": {
            "python": platform.python_version(),
            **{pkg: package_version(pkg) for pkg in ("numpy", "mesa", "pandas", "pyarrow")},
        },
        "scenario": resolved,
    }


def scenario_sha256(scenario: Scenario) -> str:
    """Hash of the resolved scenario's canonical JSON: equal hashes, equal inputs."""
    canonical = json.dumps(
        scenario.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), allow_nan=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def git_state(repo: Path = _REPO_ROOT) -> dict[str, Any] | None:
    """Commit and dirty flag of the checkout the code runs from; None outside git."""
    top = _git(repo, "rev-parse", "--show-toplevel")
    # An installed copy (e.g. in a .venv inside some checkout) is not that checkout.
    if top is None or Path(top).resolve() != repo.resolve():
        return None
    commit = _git(repo, "rev-parse", "--verify", "--quiet", "HEAD")  # None before a commit
    status = _git(repo, "status", "--porcelain", "--", *_SOURCE_PATHS)
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _git(repo: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None  # no git, not a checkout, no commits yet: provenance is optional
    return done.stdout.strip()


def package_version(package: str) -> str | None:
    """The installed version of ``package``, or None if it is not installed."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _umask() -> int:
    # The only way to read the umask is to set it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _make_parents(directory: Path) -> list[Path]:
    """Create ``directory`` and missing parents; return those created, deepest first."""
    missing = []
    for candidate in [directory, *directory.parents]:
        if candidate.exists():
            break
        missing.append(candidate)
    directory.mkdir(parents=True, exist_ok=True)
    return missing


def _remove_empty(directories: list[Path]) -> None:
    for directory in directories:
        with contextlib.suppress(OSError):
            directory.rmdir()
