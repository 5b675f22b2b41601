"""Where a sweep's tasks run: this process, a local process pool, or a Dask cluster.

Every back end is driven through the ``concurrent.futures.Executor`` interface, so
the runner (``simulation.runner``) has one code path for all of them:

- ``ExecutorSpec(workers=1)``: in this process (``InlineExecutor``), no pickling;
- ``ExecutorSpec(workers=W)`` (``W=None``: all cores): a pool of W worker
  processes started by "spawn";
- ``ExecutorSpec(scheduler="local", workers=W)``: a local Dask cluster of W
  single-threaded worker processes, started here and closed afterwards;
- ``ExecutorSpec(scheduler="tcp://HOST:PORT")``: an existing Dask distributed
  cluster; its workers must have peersim installed (they import
  ``simulation.runner`` to run tasks).

``open_executor(spec)`` is a context manager yielding a ``Backend``: the executor
plus what the runner needs to know about it (how many tasks run at once, how to
recover when a local worker process dies, how to stop at once on Ctrl-C). Hold
one open across several ``run_jobs`` calls (calibration rounds, say) to pay the
start-up of workers once.

Dask's ``Client.get_executor()`` is used for both Dask cases. A worker that dies
mid-task (killed, out of memory) makes the scheduler rerun its tasks on another
worker (up to ``distributed.scheduler.allowed-failures`` times, default 3); the
runner's tasks are pure, so a rerun returns the same bytes. A local process pool
whose worker dies is broken for good (``BrokenProcessPool``); its ``Backend``
starts a new pool and the runner resubmits the unfinished tasks.

Workers die with the process that started them, however it ends (Ctrl-C, SIGTERM,
``kill -9``, the out-of-memory killer): every local worker, pool or Dask, runs
``watch_parent`` first (``_worker_init``, ``dask_setup``), so none is left
orphaned, blocked on a queue whose other end is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

# How many times a local pool is replaced after worker processes died, per open executor.
MAX_POOL_RESTARTS = 3
_SCHEDULER_ADDRESS = re.compile(r"^(tcp|tls|ucx|ws|wss|inproc)://\S+$")
# A remote scheduler's connection, handshake and first reply, together (probe_scheduler).
_CONNECT_TIMEOUT_S = 10.0
# Where a local Dask cluster (scheduler, workers, dashboard) listens.
LOCAL_HOST = "127.0.0.1"
# Linux prctl(2) option: the signal a process gets when its parent (thread) ends.
_PR_SET_PDEATHSIG = 1
# Where prctl is missing: how often a worker checks that its parent still lives.
_PARENT_POLL_S = 1.0
# Exit status of a worker that outlived its parent.
_ORPHAN_EXIT = 70


class ExecutorError(Exception):
    """An executor could not be started or reached (bad address, no scheduler there)."""


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, turned by ``stop_signals_interrupt`` into what Ctrl-C raises,
    so every sweep stops the same way for all three; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


# The signals handled like Ctrl-C, where the platform has them.
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def interrupt_signal(interrupt: BaseException) -> int:
    """The signal behind a ``KeyboardInterrupt``: SIGINT (Ctrl-C) unless it is
    ``Stopped`` (or carries the ``signum`` of one)."""
    return int(getattr(interrupt, "signum", None) or signal.SIGINT)


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """For the block, SIGTERM and SIGHUP raise ``Stopped`` in the main thread, as
    Ctrl-C raises ``KeyboardInterrupt``; the previous handlers come back afterwards.
    Does nothing outside the main thread (only it may set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise Stopped(signum)

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def interrupts_ignored() -> Iterator[None]:
    """Ignore Ctrl-C, SIGTERM and SIGHUP for the block: a clean-up under way (stopping
    workers) finishes before the process ends. Main thread only, else nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, *STOP_SIGNALS)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@dataclass(frozen=True)
class ExecutorSpec:
    """What to run a sweep on.

    ``workers``: worker processes (None: all cores, ``os.cpu_count()``); 1 without
    a scheduler runs in this process. ``scheduler``: None for local processes,
    ``"local"`` to start a local Dask cluster of ``workers`` processes, or the
    address of a running Dask scheduler (``tcp://HOST:PORT``); ``workers`` is then
    ignored, the cluster has what it has.
    """

    workers: int | None = None
    scheduler: str | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and (
            isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1
        ):
            raise ValueError(f"workers must be a whole number >= 1 or None (got {self.workers!r})")
        if self.scheduler is not None:
            check_scheduler(self.scheduler)

    @property
    def n_workers(self) -> int:
        """The worker count, with None resolved to the number of cores."""
        return self.workers if self.workers is not None else default_workers()


def default_workers() -> int:
    """All cores of this machine."""
    return os.cpu_count() or 1


def check_scheduler(address: str) -> str:
    """``address`` if it is ``"local"`` or looks like a Dask scheduler address."""
    if address == "local" or _SCHEDULER_ADDRESS.match(address):
        return address
    raise ValueError(
        f"scheduler must be 'local' or a Dask scheduler address such as "
        f"tcp://HOST:PORT (got {address!r})"
    )


class InlineExecutor(Executor):
    """Runs each task at once, in this process, when it is submitted."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        try:
            result = fn(*args, **kwargs)
        except Exception as e:  # KeyboardInterrupt and the like propagate at once
            future.set_exception(e)
        else:
            future.set_result(result)
        return future


class Backend:
    """An open executor and what the runner needs to know about it.

    ``slots``: tasks that run at once (the runner keeps about twice that many
    submitted, so memory stays flat however long the sweep). ``kind``:
    ``"in-process"``, ``"process-pool"``, ``"dask"`` or ``"executor"`` (one passed in).
    ``scheduler_address``: the Dask scheduler's address (None for local processes).
    """

    def __init__(
        self,
        executor: Executor,
        slots: int,
        kind: str,
        description: str,
        scheduler_address: str | None = None,
    ) -> None:
        self.executor = executor
        self.slots = max(1, slots)
        self.kind = kind
        self.description = description
        self.scheduler_address = scheduler_address

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        return self.executor.submit(fn, *args)

    def recover(self) -> bool:
        """After worker processes died: make the executor usable again if possible."""
        return False

    def abort(self) -> None:
        """Stop running tasks now and drop queued ones (Ctrl-C); best effort."""


class _PoolBackend(Backend):
    """A local process pool that can replace itself after a worker died."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self.restarts = 0
        self.pool = self._new_pool()
        super().__init__(self.pool, workers, "process-pool", f"{workers} local processes")

    def _new_pool(self) -> ProcessPoolExecutor:
        # "spawn": a fresh interpreter per worker, the same on every OS and safe with the
        # threads tqdm, pandas and pyarrow may have started.
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=watch_parent,
            initargs=(os.getpid(),),
        )

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        # Workers start during submit; started with SIGINT blocked they inherit the block,
        # so Ctrl-C (sent to the whole process group) reaches only this process.
        with sigint_deferred():
            return self.pool.submit(fn, *args)

    def recover(self) -> bool:
        if self.restarts >= MAX_POOL_RESTARTS:
            return False
        self.restarts += 1
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self.executor = self._new_pool()
        return True

    def abort(self) -> None:
        # Python 3.12 has no public way to stop busy workers (3.14 adds terminate_workers).
        # Terminate before shutdown, which forgets the worker processes.
        for process in list((getattr(self.pool, "_processes", None) or {}).values()):
            process.terminate()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


class _DaskBackend(Backend):
    def abort(self) -> None:
        self.executor.shutdown(wait=False)  # cancels its futures on the cluster


@contextlib.contextmanager
def open_executor(spec: ExecutorSpec | None = None) -> Iterator[Backend]:
    """Start (or connect to) what ``spec`` names; stop it again on leaving the block.

    Raises ``ExecutorError`` if a Dask scheduler cannot be reached or a local
    cluster cannot start. A pool is shut down on leaving; after an exception
    (Ctrl-C included) its running tasks are stopped first.
    """
    spec = spec or ExecutorSpec()
    if spec.scheduler is not None:
        with _dask_backend(spec.scheduler, spec.n_workers) as dask:
            try:
                yield dask
            except BaseException:
                dask.abort()
                raise
        return
    workers = spec.n_workers
    if workers == 1:
        yield Backend(InlineExecutor(), 1, "in-process", "this process")
        return
    pool = _PoolBackend(workers)
    try:
        yield pool
    except BaseException:
        pool.abort()
        raise
    pool.close()


def as_backend(executor: Executor) -> Backend:
    """Wrap an executor made elsewhere; the caller keeps it (and shuts it down)."""
    if isinstance(executor, InlineExecutor):
        return Backend(executor, 1, "in-process", "this process")
    slots = getattr(executor, "_max_workers", None)
    client = getattr(executor, "_client", None)
    if client is not None:  # distributed's ClientExecutor
        with contextlib.suppress(Exception):
            slots = sum(client.nthreads().values())
    return Backend(executor, int(slots or default_workers()), "executor", type(executor).__name__)


@contextlib.contextmanager
def _dask_backend(address: str, workers: int) -> Iterator[Backend]:
    """A client of the cluster at ``address`` (``"local"``: a new local cluster of
    ``workers`` processes), closed again on leaving.

    A local cluster listens on 127.0.0.1 only, its dashboard (and metrics page)
    included: it is nobody else's business, and it has no authentication. A cluster
    to share is one started on purpose (``dask scheduler``) and named by address.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as e:  # pragma: no cover - a dependency of peersim
        raise ExecutorError(f"--scheduler needs the 'distributed' package: {e}") from None
    with contextlib.ExitStack() as stack:
        try:
            if address == "local":
                cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    host=LOCAL_HOST,
                    dashboard_address=f"{LOCAL_HOST}:0",  # any free port, never 8787
                    silence_logs=logging.ERROR,
                    preload=[__name__],  # each worker runs dask_setup below
                )
                stack.callback(cluster.close)
                client = Client(cluster, set_as_default=False)
                description = f"a local Dask cluster of {workers} processes"
            else:
                probe_scheduler(address, _CONNECT_TIMEOUT_S)
                client = Client(address, timeout=_CONNECT_TIMEOUT_S, set_as_default=False)
                description = f"the Dask cluster at {address}"
        except (OSError, RuntimeError, ValueError, TypeError) as e:
            raise ExecutorError(f"cannot start or reach Dask scheduler {address!r}: {e}") from None
        # A lost scheduler is reported by the runner in one line (SweepAborted); the
        # client's own "Failed to reconnect" and the traceback of its reconnection,
        # cancelled by close(), would come on top. Restored after close().
        client_log = logging.getLogger("distributed.client")
        stack.callback(client_log.setLevel, client_log.level)
        client_log.setLevel(logging.CRITICAL)
        stack.callback(client.close)
        slots = sum(client.nthreads().values())
        # pure=False: no hashing of arguments to name tasks. The tasks are pure anyway
        # (same inputs, same output), so the scheduler's reruns on a lost worker are harmless.
        executor = client.get_executor(pure=False)
        scheduler_address = str(getattr(client.scheduler, "address", address))
        yield _DaskBackend(executor, slots, "dask", description, scheduler_address)


def probe_scheduler(address: str, timeout_s: float) -> None:
    """Check that a Dask scheduler answers at ``address`` within ``timeout_s``, or raise
    ``ExecutorError`` with one line saying what is there instead.

    ``Client(address, timeout=...)`` bounds the connection, not the handshake: a port
    that accepts but never answers as Dask does (another server, a stuck proxy) made it
    wait for ever. Here the connection, the handshake and one ``identity`` call
    together get ``timeout_s``, on an event loop of their own. ``tls://`` uses the
    TLS settings of the Dask configuration (``distributed.comm.tls``), as ``Client``.
    """
    import asyncio

    from distributed.comm import connect
    from distributed.security import Security

    connection_args = Security().get_connection_args("client")
    if address.startswith("tls://") and connection_args.get("ssl_context") is None:
        raise ExecutorError(
            "a tls:// scheduler needs Dask's TLS settings (certificates under "
            "distributed.comm.tls in the Dask configuration); none are set"
        )
    connected = False

    async def identity() -> object:
        nonlocal connected
        comm = await connect(address, timeout=timeout_s, **connection_args)
        connected = True
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    async def bounded() -> object:
        return await asyncio.wait_for(identity(), timeout_s)

    try:
        reply = asyncio.run(bounded())
    except TimeoutError:
        raise ExecutorError(
            f"nothing answered as a Dask scheduler within {timeout_s:g} s "
            "(is it a Dask scheduler's address and port?)"
        ) from None
    except Exception as e:  # refused, reset, garbage in reply
        if not isinstance(e, OSError):  # what came back is no Dask message
            raise ExecutorError("something answered, but not as a Dask scheduler") from None
        if connected:
            raise ExecutorError(
                f"something answered, but not as a Dask scheduler ({_one_line(e)})"
            ) from None
        raise ExecutorError(f"cannot connect: {_one_line(e)}") from None
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        raise ExecutorError("something answered, but not as a Dask scheduler")


def _one_line(e: BaseException, limit: int = 160) -> str:
    text = str(e).strip()
    line = f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def dask_setup(worker: object) -> None:
    """Dask preload hook, run in each worker process of a local cluster on start-up
    (restarts included): Ctrl-C in the terminal reaches the whole process group, but
    it is for the parent, which stops the sweep and closes the cluster itself; a
    worker that caught it would only print a traceback. (A signal mask, as for the
    process pool, does not hold: Dask starts workers from its own threads.)"""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A local cluster's workers are children of this process's nannies, which run in
    # the process that started the cluster: they must die with it too.
    watch_parent(os.getppid())


def watch_parent(parent_pid: int) -> None:
    """Make this (worker) process exit as soon as ``parent_pid``, its parent, is gone.

    A worker's parent can die without a word (``kill -9``, the out-of-memory killer);
    the worker would then wait forever on a queue nobody writes to. On Linux the
    kernel sends a signal at once (``prctl(PR_SET_PDEATHSIG)``); as it also sends it
    when the *thread* that started the worker ends (pyabc's sampler threads submit
    tasks and so start workers), the handler exits only if the parent process is
    really gone. Elsewhere a daemon thread checks every ``_PARENT_POLL_S``. Runs in
    the main thread of the worker (a pool's initialiser, Dask's preload hook).
    """
    if threading.current_thread() is threading.main_thread() and sys.platform == "linux":

        def exit_if_orphaned(signum: int, frame: object) -> None:
            if os.getppid() != parent_pid:
                os._exit(_ORPHAN_EXIT)

        previous = signal.signal(signal.SIGUSR1, exit_if_orphaned)
        if _parent_death_signal():
            if os.getppid() != parent_pid:  # died before the kernel was asked
                os._exit(_ORPHAN_EXIT)
            return
        signal.signal(signal.SIGUSR1, previous)
    if os.getppid() != parent_pid:
        os._exit(_ORPHAN_EXIT)

    def poll() -> None:
        while os.getppid() == parent_pid:
            time.sleep(_PARENT_POLL_S)
        os._exit(_ORPHAN_EXIT)

    threading.Thread(target=poll, name="peersim-watch-parent", daemon=True).start()


def _parent_death_signal() -> bool:
    """Ask Linux to send SIGUSR1 when the parent ends; False if that failed."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGUSR1), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold back SIGINT in this thread (and in processes it starts) for the block."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no signal masks
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)  # a held-back Ctrl-C fires now
