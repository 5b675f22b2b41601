"""What every ``peersim`` command shares: exit codes, one-line errors, argument types,
the common options (as argparse parents) and the life of a resumable command.

A command that sweeps (run, compare, sensitivity, calibrate) works in ``DIR.partial``
beside its output folder, with a JSON record of how it was started; ``--resume DIR``
continues from that record, and ``DIR`` appears, whole, only at the end
(:class:`Resumable`). User mistakes raise :class:`UsageError`: one
``peersim: error: ...`` line, exit status 2, nothing written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from simulation.outputs import is_free, remove_abandoned
from simulation.rng import DEFAULT_SEED

if TYPE_CHECKING:  # kept out of the import so that --help answers at once
    import pandas as pd

    from calibration.posterior import Posterior
    from simulation import Scenario
    from simulation.executors import Backend, ExecutorSpec

PROG = "peersim"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# Stopped by a signal: 128 + its number, as a shell reports it (Ctrl-C 130, SIGTERM 143,
# SIGHUP 129), after the same clean-up and resume hint for all three.
_SIGNAL_EXIT_BASE = 128
DEFAULT_RESULTS_DIR = Path("results")
MAX_FAILURES_LISTED = 10
POSTERIOR_HELP = (
    "posterior-ensemble mode: each replicate draws its parameters from the calibration "
    "posterior in DIR (e.g. docs/calibration, written by 'peersim calibrate'), "
    "propagating calibration uncertainty into the results"
)


class UsageError(Exception):
    """A mistake on the command line or in its inputs: exit status 2, no traceback."""


class Parser(argparse.ArgumentParser):
    """argparse would print the usage block and exit; we want one line and control of
    the exit status."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def error(message: str) -> None:
    """Print ``peersim: error: message`` on stderr."""
    print(f"{PROG}: error: {message}", file=sys.stderr)


def interrupted(interrupt: BaseException) -> tuple[str, int]:
    """What stopped the command, for its last line ("interrupted", "stopped by
    SIGTERM"), and its exit status: 128 + the signal's number."""
    from simulation.executors import interrupt_signal

    signum = interrupt_signal(interrupt)
    if signum == signal.SIGINT:
        return "interrupted", EXIT_INTERRUPTED
    return f"stopped by {signal.Signals(signum).name}", _SIGNAL_EXIT_BASE + signum


def warn(message: str) -> None:
    """Print ``peersim: warning: message`` on stderr."""
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def first_line(e: BaseException) -> str:
    """The first line of an exception's message, or its type's name if it has none."""
    return str(e).splitlines()[0] if str(e) else type(e).__name__


# --- argument types ------------------------------------------------------------------


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def positive_int(text: str) -> int:
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    value = whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def scheduler(text: str) -> str:
    from simulation.executors import check_scheduler

    try:
        return check_scheduler(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# --- the common options, as argparse parents -----------------------------------------


def _parent() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False)


def seed_option(default: str = str(DEFAULT_SEED)) -> argparse.ArgumentParser:
    """``-s/--seed``; ``default`` says what an absent seed means."""
    parent = _parent()
    parent.add_argument(
        "-s",
        "--seed",
        type=non_negative_int,
        metavar="S",
        help=f"master seed, a whole number >= 0 (default: {default})",
    )
    return parent


def executor_options() -> argparse.ArgumentParser:
    """``-w/--workers`` and ``--scheduler``."""
    parent = _parent()
    parent.add_argument(
        "-w",
        "--workers",
        type=positive_int,
        metavar="W",
        help="worker processes (1: this process); results are identical for any W "
        f"(default: all cores, {os.cpu_count() or 1} here)",
    )
    parent.add_argument(
        "--scheduler",
        type=scheduler,
        metavar="ADDR",
        help="run on Dask: 'local' starts a cluster of W processes on this machine, "
        "tcp://HOST:PORT uses a running cluster (its workers need peersim installed)",
    )
    return parent


def output_options(
    resumable: Resumable, default_out: str, resume: str = ""
) -> argparse.ArgumentParser:
    """``-o/--out`` (``default_out`` says where results go without it) and ``--resume``
    (``resume`` adds what else a resumed command keeps or may change)."""
    parent = _parent()
    parent.add_argument(
        "-o",
        "--out",
        type=Path,
        metavar="DIR",
        help=f"output folder; must not exist or be empty (default: a new {default_out})",
    )
    parent.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help=f"continue the interrupted {resumable.noun} whose output folder is DIR (its "
        f"finished work is in DIR.partial), as it was started{resume}",
    )
    return parent


def progress_option() -> argparse.ArgumentParser:
    """``--progress/--no-progress``."""
    parent = _parent()
    parent.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="show a progress bar with rate and ETA (default: on a terminal)",
    )
    return parent


def posterior_option(extra: str = "") -> argparse.ArgumentParser:
    """``--posterior DIR``, posterior-ensemble mode."""
    parent = _parent()
    parent.add_argument("--posterior", type=Path, metavar="DIR", help=POSTERIOR_HELP + extra)
    return parent


def sweep_options(
    resumable: Resumable, default_out: str, *, resume: str = "", posterior: str | None = None
) -> list[argparse.ArgumentParser]:
    """The options of every command that sweeps: seed, executor, output folder and
    resume, progress, and (with ``posterior``, extra help for it) ``--posterior``."""
    parents = [seed_option(), executor_options(), output_options(resumable, default_out, resume)]
    if posterior is not None:
        parents.append(posterior_option(posterior))
    return [*parents, progress_option()]


@dataclass(frozen=True)
class Command:
    """A subcommand's words: its name, one-line help, description and examples
    (``epilog``), and the names of its positional arguments (by dest) in messages."""

    name: str
    help: str
    description: str
    epilog: str
    positionals: tuple[tuple[str, str], ...] = ()
    usage: str | None = None

    def add(
        self,
        commands: Any,
        handler: Callable[[argparse.Namespace, list[str]], int],
        parents: Sequence[argparse.ArgumentParser] = (),
    ) -> argparse.ArgumentParser:
        """Add it to ``peersim``'s subparsers ``commands``, with the options of
        ``parents``; ``handler(args, command_line)`` returns the exit status."""
        parser: argparse.ArgumentParser = commands.add_parser(
            self.name,
            help=self.help,
            description=self.description,
            epilog=self.epilog,
            usage=self.usage,
            parents=list(parents),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.set_defaults(handler=handler, positionals=dict(self.positionals))
        return parser


# --- output folders --------------------------------------------------------------------


def partial_path(out: Path) -> Path:
    """Where a command writing into ``out`` keeps its finished work until it completes."""
    path = Path(os.path.normpath(out))
    if path.name in ("", ".", ".."):
        path = Path(os.path.abspath(path))
    return path.with_name(f"{path.name}.partial")


def default_out(name: str) -> Path:
    """A new folder ``results/<name>-<UTC time>`` that no run uses yet."""
    safe_name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "scenario"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = DEFAULT_RESULTS_DIR / f"{safe_name}-{stamp}"
    suffix = 1
    # Two runs in the same second: never reuse a folder (or its interrupted run).
    while not is_free(out) or partial_path(out).exists():
        suffix += 1
        out = DEFAULT_RESULTS_DIR / f"{safe_name}-{stamp}-{suffix}"
    return out


def check_out(out: Path) -> None:
    """Fail before running, not after, if the results could not be written."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file, not a folder")
    if not is_free(out):
        raise UsageError(
            f"--out {out}: folder exists and is not empty; results are never overwritten"
        )
    existing = next(p for p in [out, *out.absolute().parents] if p.exists())
    if not existing.is_dir():
        raise UsageError(f"--out {out}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: no permission to write in {existing}")
    try:  # access() says yes to root everywhere, and knows nothing of /proc or a full disk
        Path(tempfile.mkdtemp(prefix=".peersim-check-", dir=existing)).rmdir()
    except OSError as e:
        raise UsageError(
            f"--out {out}: cannot create folders in {existing}: {e.strerror or e}"
        ) from None


def write_json(path: Path, record: dict[str, Any]) -> None:
    """Write ``record`` to ``path`` atomically (a reader sees the old or the new one)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- a resumable command ------------------------------------------------------------------

# Options a resumed command may be given again: where and how it runs, not what.
_MAY_CHANGE_ON_RESUME = frozenset(
    {"handler", "positionals", "command", "resume", "workers", "scheduler", "progress"}
)


@dataclass
class Workspace:
    """Where a resumable command works (``partial``, with its record) and delivers
    (``out``), and whether this process continues an interrupted start."""

    out: Path
    partial: Path
    record: dict[str, Any]
    resumed: bool

    @property
    def sweep_dir(self) -> Path:
        """The runner's shards: this command's own, so a run continues whatever is
        there (``resume=True``), interrupted or not."""
        return self.partial / "sweep"


class SweepPlan(Protocol):
    """What a resumable command is to do, from its command line or its record."""

    ws: Workspace

    def describe(self) -> tuple[str, str]:
        """What it does and, for the brackets, its details (seed, sizes)."""
        ...

    def n_jobs(self) -> int | None:
        """Its jobs, if few enough to run in this process (None: use workers anyway)."""
        ...

    def execute(self, backend: Backend, progress: bool | None, command_line: list[str]) -> int:
        """Do it on ``backend``; returns the exit status."""
        ...


@dataclass(frozen=True)
class Resumable:
    """The on-disk life of a command whose work survives an interruption.

    ``peersim COMMAND`` keeps a record (``record_name``, JSON with a ``format`` key)
    and its finished work in ``DIR.partial``; ``--resume DIR`` reads the record back,
    and :meth:`write_output` turns the results into ``DIR`` all at once. A command's
    positional arguments are named for messages by ``set_defaults(positionals=...)``.
    """

    command: str  # the subcommand, for hints: "compare"
    noun: str  # what it makes, for messages: "comparison"
    verb: str  # what it says it is doing: "comparing"
    record_name: str  # the record's file name in DIR.partial
    record_format: str  # its "format" value, checked on resume
    unit: str = "runs"  # what its jobs are called in messages
    count_done: bool = True  # whether "N of M jobs are saved" means something to the user

    def resume_hint(self, out: Path) -> str:
        return f"{PROG} {self.command} --resume {out}"

    def start(
        self, out: Path | None, default_name: str, command_line: list[str], **fields: Any
    ) -> Workspace:
        """A new start into ``out`` (or a new default folder), recording ``fields`` and
        when, how and from which commit; ``UsageError`` if results could not be
        written there."""
        from simulation.outputs import git_state

        out = out if out is not None else default_out(default_name)
        check_out(out)
        partial = partial_path(out)
        if partial.exists():
            raise UsageError(
                f"--out {out}: {partial} holds an interrupted {self.noun}; continue it with "
                f"'{self.resume_hint(out)}' or delete it"
            )
        record = {
            "format": self.record_format,
            **fields,
            "started_utc": now_utc(),
            "command": command_line,
            "git": git_state(),
            "resumed": [],
        }
        return Workspace(out, partial, record, resumed=False)

    def reopen(self, args: argparse.Namespace) -> Workspace:
        """The interrupted command into ``args.resume``, with its record; refuses the
        options that would change what it does."""
        out: Path = args.resume
        names: dict[str, str] = getattr(args, "positionals", {})
        repeated = [
            names.get(dest, f"--{dest.replace('_', '-')}")
            for dest, value in vars(args).items()
            if dest not in _MAY_CHANGE_ON_RESUME
            and not (value is None or value is False or value == [])
        ]
        if repeated:
            raise UsageError(
                f"--resume {out} continues the {self.noun} as it was started; "
                f"leave out {', '.join(repeated)}"
            )
        partial = partial_path(out)
        record_path = partial / self.record_name
        if not record_path.is_file():
            if out.is_dir() and (out / "manifest.json").is_file():
                raise UsageError(f"--resume {out}: that {self.noun} is already complete")
            raise UsageError(
                f"--resume {out}: no interrupted {self.noun} there ({record_path} not found)"
            )
        if not is_free(out):
            raise UsageError(f"--resume {out}: folder exists and is not empty")
        remove_abandoned(out)  # an interrupted final write of the results
        ws = Workspace(out, partial, {}, resumed=True)
        with self.reading(ws):
            record = json.loads(record_path.read_text(encoding="utf-8"))
            if not isinstance(record, dict) or record.get("format") != self.record_format:
                found = record.get("format") if isinstance(record, dict) else record
                raise ValueError(f"unknown format {found!r}")
        ws.record = record
        return ws

    @contextlib.contextmanager
    def reading(
        self, ws: Workspace, where: Path | None = None, *errors: type[Exception]
    ) -> Iterator[None]:
        """Turn a failure to read an interrupted command's files (``where``, default its
        record; also ``errors``) into one ``UsageError`` line."""
        from pydantic import ValidationError

        where = where if where is not None else ws.partial / self.record_name
        caught: tuple[type[Exception], ...] = (
            OSError,
            ValueError,
            KeyError,
            TypeError,
            ValidationError,
            *errors,
        )
        try:
            yield
        except caught as e:
            raise UsageError(f"--resume {ws.out}: cannot read {where}: {first_line(e)}") from None

    def save(self, ws: Workspace, command_line: list[str]) -> None:
        """Write the record into the partial folder (made if need be), noting a resume."""
        if ws.resumed:
            ws.record["resumed"].append({"utc": now_utc(), "command": command_line})
        ws.partial.mkdir(parents=True, exist_ok=True)
        write_json(ws.partial / self.record_name, ws.record)

    def run(
        self,
        args: argparse.Namespace,
        command_line: list[str],
        new_plan: Callable[[argparse.Namespace, list[str]], SweepPlan],
        resume_plan: Callable[[argparse.Namespace], SweepPlan],
    ) -> int:
        """The whole of a resumable command: a plan from the command line (or from the
        record of the interrupted one ``--resume`` names), run on the executor asked for."""
        plan = resume_plan(args) if args.resume is not None else new_plan(args, command_line)
        what, detail = plan.describe()
        progress: bool | None = getattr(args, "progress", None)
        # Optional: what each job's results cost in this process once gathered (run).
        gathered: Callable[[], int] | None = getattr(plan, "gathered_bytes_per_job", None)
        return self.sweep(
            args,
            plan.ws,
            what=what,
            detail=detail,
            execute=lambda backend: plan.execute(backend, progress, command_line),
            n_jobs=plan.n_jobs(),
            gathered_bytes_per_job=gathered,
        )

    def sweep(
        self,
        args: argparse.Namespace,
        ws: Workspace,
        *,
        what: str,
        detail: str,
        execute: Callable[[Backend], int],
        n_jobs: int | None = None,
        gathered_bytes_per_job: Callable[[], int] | None = None,
    ) -> int:
        """Run ``execute`` on the executor ``args`` ask for (this process, where
        ``n_jobs`` is too few to pay for workers; never more local workers than jobs),
        announcing ``what`` it does (and in brackets ``detail`` and the executor).

        Before starting: a warning if more local workers than cores were asked for,
        and ``UsageError`` if the sweep clearly cannot fit in the memory available
        (``check_memory``; ``gathered_bytes_per_job`` says what each job's results
        cost here once gathered, measured only for big sweeps)."""
        from simulation.executors import ExecutorSpec, default_workers
        from simulation.runner import auto_spec

        spec = ExecutorSpec(workers=args.workers, scheduler=args.scheduler)
        if n_jobs is not None:
            spec = auto_spec(spec, n_jobs)
        local = spec.scheduler in (None, "local")
        workers = spec.n_workers if local else 0
        if local and args.workers is not None and args.workers > default_workers():
            warn(
                f"--workers {args.workers} is more than the {default_workers()} cores here: "
                "the workers share them, which costs memory and gains no speed"
            )
        if n_jobs is not None:
            gathered = 0
            if gathered_bytes_per_job is not None and n_jobs >= _MEASURE_FROM_JOBS:
                gathered = gathered_bytes_per_job()
            check_memory(
                n_jobs=n_jobs,
                unit=self.unit,
                workers=workers if workers > 1 else 0,
                gathered_bytes_per_job=gathered,
            )
        return drive_sweep(
            spec,
            announce=lambda backend: (
                f"{'resuming' if ws.resumed else self.verb} {what} "
                f"({detail}, {describe_backend(backend)})"
            ),
            execute=execute,
            resume_hint=self.resume_hint(ws.out),
            partial=ws.partial,
            unit=self.unit,
            count_done=self.count_done,
        )

    def report_failures(
        self,
        ws: Workspace,
        failures: pd.DataFrame,
        n_runs: int,
        unit: str,
        describe: Callable[[Any], str],
    ) -> int:
        """List failed runs (``describe`` names one row of ``failures``) and say how to
        run them again; returns the exit status."""
        error(
            f"{len(failures)} of {n_runs} {unit} failed "
            f"(details in {ws.sweep_dir / 'failures.parquet'}):"
        )
        for row in failures.head(MAX_FAILURES_LISTED).itertuples(index=False):
            message = (str(row.error_message).splitlines() or [""])[0]
            print(f"  {describe(row)}: {row.error_type}: {message}", file=sys.stderr)
        if len(failures) > MAX_FAILURES_LISTED:
            print(f"  ... and {len(failures) - MAX_FAILURES_LISTED} more", file=sys.stderr)
        print(
            f"{PROG}: the other {unit} are saved in {ws.partial}; once the cause is fixed, "
            f"run the failed ones with: {self.resume_hint(ws.out)}",
            file=sys.stderr,
        )
        return EXIT_FAILURE

    def write_output(self, ws: Workspace, write: Callable[[Path], None]) -> int:
        """Build the results with ``write(folder)`` and move them to ``ws.out`` at once,
        then drop the partial folder; returns the exit status."""
        from simulation.outputs import OutputExistsError, atomic_directory

        try:
            with atomic_directory(ws.out) as tmp:
                write(tmp)
        except OutputExistsError as e:  # appeared while we were running
            raise UsageError(str(e)) from None
        except OSError as e:
            from simulation.runner import os_error_text

            error(
                f"cannot write results to {ws.out}: {os_error_text(e)}; the finished "
                f"{self.unit} are saved in {ws.partial}; once that is fixed, continue "
                f"with: {self.resume_hint(ws.out)}"
            )
            return EXIT_FAILURE
        shutil.rmtree(ws.partial, ignore_errors=True)
        return EXIT_OK


def sweep_manifest(
    scenario: Scenario,
    scenario_path: Path | None,
    ws: Workspace,
    backend: Backend,
    *,
    seed: int,
    replicates: int,
    versions: Sequence[str] = (),
) -> dict[str, Any]:
    """The manifest of a resumable command's results: ``simulation.outputs``'s, plus
    the executor, the resumes and the versions of ``versions``."""
    from simulation.outputs import build_manifest, package_version

    manifest = build_manifest(
        scenario,
        scenario_path,
        master_seed=seed,
        n_replicates=replicates,
        workers=backend.slots,
        started=datetime.fromisoformat(ws.record["started_utc"]),
        finished=datetime.now(UTC),
        command=ws.record["command"],
    )
    manifest["versions"].update({package: package_version(package) for package in versions})
    manifest["executor"] = {"kind": backend.kind, "description": backend.description}
    manifest["resumed"] = ws.record["resumed"]
    if ws.record["resumed"]:
        manifest["git_at_start"] = ws.record.get("git")
    return manifest


# --- memory --------------------------------------------------------------------------------

# What one job costs this process, whatever its results. Jobs are made as they are
# needed (simulation.runner.LazyJobs): while the sweep runs, 17 bytes a job (a hash of
# its key, when the jobs are checked); reading the results back, the record of which
# part holds each job, 135 bytes a job (294 at the peak, while the records are parsed);
# resuming, the records found, 480 at the peak. Measured with tracemalloc over 100,000
# and 1,500 ENRICH replicate jobs (2026-12-02); rounded up.
_BYTES_PER_JOB = 512
# Below this many jobs a sweep's gathered results are not worth measuring (a replicate
# of region_50_sites, the biggest shipped scenario, gathers about 2 MB: 200 MB here).
_MEASURE_FROM_JOBS = 100


def check_memory(*, n_jobs: int, unit: str, workers: int, gathered_bytes_per_job: int) -> None:
    """``UsageError`` if a sweep clearly cannot fit in the memory available: this
    process as it is now, plus per job ``_BYTES_PER_JOB`` and what its gathered
    results cost (``gathered_bytes_per_job``), plus ``workers`` worker processes
    each the size of this one (they import the same libraries). An estimate, to
    refuse at once what would end in a MemoryError or the out-of-memory killer
    hours later; nothing is checked where the memory available is unknown."""
    available = available_memory()
    if available is None:
        return
    base = resident_memory()
    per_job = _BYTES_PER_JOB + gathered_bytes_per_job
    need = base + n_jobs * per_job + workers * base
    if need <= available:
        return
    on_workers = f" and {workers} worker processes of about {_size(base)} each" if workers else ""
    raise UsageError(
        f"{n_jobs} {unit} need about {_size(need)} of memory (about {_size(per_job)} a "
        f"{unit.rstrip('s')} held in this process{on_workers}), more than the "
        f"{_size(available)} available; run fewer {unit}" + (" or fewer workers" if workers else "")
    )


def available_memory() -> int | None:
    """Bytes this process could still use: the kernel's MemAvailable, or less where a
    control group (a container, a job system) caps the memory; None if unknown."""
    limits = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    with contextlib.suppress(OSError, ValueError):
        group = Path("/sys/fs/cgroup")
        cap = (group / "memory.max").read_text().strip()
        if cap != "max":
            limits.append(int(cap) - int((group / "memory.current").read_text()))
    return min(limits) if limits else None


def resident_memory() -> int:
    """This process's resident memory in bytes (its peak where /proc is missing)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _size(n_bytes: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n_bytes < 1000 or unit == "TB":
            return f"{n_bytes:,.0f} {unit}" if unit == "bytes" else f"{n_bytes:,.1f} {unit}"
        n_bytes /= 1000
    raise AssertionError("unreachable")


# --- running a sweep ----------------------------------------------------------------------


def describe_backend(backend: Backend) -> str:
    if backend.kind == "in-process":
        return "1 worker"
    if backend.kind == "process-pool":
        return f"{backend.slots} workers"
    return backend.description


def drive_sweep(
    spec: ExecutorSpec,
    *,
    announce: Callable[[Backend], str],
    execute: Callable[[Backend], int],
    resume_hint: str,
    partial: Path,
    unit: str = "runs",
    count_done: bool = True,
) -> int:
    """Open the executor, say what will run, run it: the shared ending of every command
    that sweeps.

    A bad or unreachable scheduler and a sweep folder that does not fit are user
    mistakes (exit 2). Ctrl-C stops the workers (leaving the ``with`` block does; a
    second Ctrl-C, which ``uv run`` forwards too, is ignored meanwhile so that the
    clean-up finishes), then says where the finished work is and how to resume (130).
    SIGTERM and SIGHUP do the same (exit 143 and 129; ``commands.main`` turns them
    into interrupts).
    ``count_done``: say how many of the sweep's jobs are done (False where the sweep
    is not what the user counts, as in a calibration's generations).
    """
    from simulation.executors import ExecutorError, interrupts_ignored, open_executor
    from simulation.runner import SweepAborted, SweepError, SweepInterrupted, os_error_text

    try:
        with contextlib.ExitStack() as stack, open_executor(spec) as backend:
            print(f"{PROG}: {announce(backend)}", file=sys.stderr)
            try:
                return execute(backend)
            except KeyboardInterrupt:  # SweepInterrupted and Stopped are ones
                stack.enter_context(interrupts_ignored())
                raise  # through open_executor, which stops the running tasks
    except ExecutorError as e:
        raise UsageError(f"--scheduler {spec.scheduler}: {e}") from None
    except SweepError as e:
        raise UsageError(str(e)) from None
    except SweepAborted as e:  # a full disk, dying workers, a lost scheduler
        saved = (
            f"{e.n_done} of {e.n_jobs} {unit} are saved in {partial}"
            if count_done
            else f"the finished {unit} are saved in {partial}"
        )
        error(f"{e.reason}; {saved}; once that is fixed, continue with: {resume_hint}")
        return EXIT_FAILURE
    except OSError as e:  # outside the sweep's own saving: the record, the results
        if not partial.exists():
            raise UsageError(os_error_text(e)) from None
        error(
            f"{os_error_text(e)}; the finished {unit} are saved in {partial}; once that "
            f"is fixed, continue with: {resume_hint}"
        )
        return EXIT_FAILURE
    except KeyboardInterrupt as stop:
        if isinstance(stop, SweepInterrupted) and count_done:
            saved = f"{stop.n_done} of {stop.n_jobs} {unit} are saved in {partial}"
        elif partial.exists():
            saved = f"the finished {unit} are saved in {partial}"
        else:
            raise
        reason, status = interrupted(stop)
        error(f"{reason}; {saved}; continue with: {resume_hint}")
        return status


# --- the scenario files of a comparison ------------------------------------------------


def refuse_repeated_files(paths: Sequence[Path], why: str = "") -> None:
    """``UsageError`` naming a file given twice (by any path); ``why`` follows it."""
    seen: dict[Path, Path] = {}
    for path in paths:
        resolved = path.resolve()
        if resolved in seen:
            raise UsageError(f"{path}: given twice (as {seen[resolved]}){why}")
        seen[resolved] = path


def load_labelled_scenarios(labels: Sequence[str], paths: Sequence[Path]) -> dict[str, Scenario]:
    """The scenarios by label, each file's problem as a one-line ``UsageError``; a site
    named like the whole (``analysis.compare.OVERALL``) is refused, as its rows would
    be taken for the whole trial's."""
    from analysis.compare import OVERALL
    from scenarios import ScenarioError, load_scenario

    scenarios: dict[str, Scenario] = {}
    for label, path in zip(labels, paths, strict=True):
        try:
            scenarios[label] = load_scenario(path)
        except ScenarioError as e:
            raise UsageError(str(e)) from None
        if OVERALL in scenarios[label].sites:
            raise UsageError(
                f"{path}: a site named {OVERALL!r} would be confused with the whole trial "
                "in the comparison; rename it"
            )
    return scenarios


def scenario_records(
    labels: Sequence[str], paths: Sequence[Path], scenarios: dict[str, Scenario]
) -> list[dict[str, Any]]:
    """What a resumable comparison's record keeps of its scenarios (``restore_scenario``
    reads each back)."""
    return [
        {
            "label": label,
            "path": str(path.resolve()),
            "scenario": scenarios[label].model_dump(mode="json"),
        }
        for label, path in zip(labels, paths, strict=True)
    ]


def restore_scenario(saved: dict[str, Any], path: str | os.PathLike[str] | None) -> Scenario:
    """The scenario a resumed run recorded. If it offers site configurations and its
    file still loads to exactly it, the loaded one (which can be made under another
    configuration, as posterior ensembles and calibration need); otherwise the
    record's, which cannot."""
    from scenarios.inputs import InputError
    from scenarios.loader import load_scenario
    from simulation import Scenario

    scenario = Scenario.model_validate(saved)
    if scenario.site_configurations is None or not path:
        return scenario
    try:
        loaded = load_scenario(Path(path))
    except InputError:
        return scenario
    return loaded if loaded.model_dump() == scenario.model_dump() else scenario


def load_checked_posterior(directory: Path, scenario: Scenario) -> Posterior:
    """The posterior in ``directory``, checked against ``scenario``; ``UsageError`` if
    not usable."""
    from pydantic import ValidationError

    from calibration.posterior import PosteriorError, load_posterior

    try:
        posterior = load_posterior(directory)
        posterior.median_scenario(scenario)
        applies = posterior.check_configurations(scenario)
    except (PosteriorError, KeyError, ValidationError, ValueError) as e:
        raise UsageError(f"--posterior {directory}: {first_line(e)}") from None
    if not applies and not posterior.configuration_shares().empty:
        print(
            f"{PROG}: note: --posterior {directory} draws the site configuration, which "
            f"scenario {scenario.name!r} does not offer (it states its sites' host and "
            "geography itself): its replicates take the other calibrated values only",
            file=sys.stderr,
        )
    return posterior
