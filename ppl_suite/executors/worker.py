"""What runs inside a worker process: guards, one-time set-up, then ``execute``; and the rows of cells
that a worker did not finish (timed out, or the worker was lost)."""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import multiprocessing
import multiprocessing.connection
import multiprocessing.resource_tracker
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence

import numpy as np

from ppl_suite import schema
from ppl_suite.cell import Cell, Record, Unit

_configured: tuple[str, ...] | None = None
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
PARENT_GONE_EXIT_CODE = 70  # os.EX_SOFTWARE: the worker ended itself because its parent died


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """SIGINT blocked (left pending, not lost) in this thread for the body. A process started within
    inherits the mask through spawn's fork and exec, so a Ctrl-C that comes while it is still starting
    (Python's start-up, the imports before ``guard``) waits until ``guard`` ignores it, instead of
    interrupting its start-up with a traceback on the terminal. SIGTERM is not held: its default action
    ends a starting process quietly, and a process that hangs before ``guard`` must stay stoppable.
    Python's own multiprocessing resource tracker is started the same way."""
    if not hasattr(signal, "pthread_sigmask"):  # not POSIX: nothing to hold
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class HeldSpawnProcess(multiprocessing.context.SpawnProcess):
    """A spawned process started with ``interrupts_held``: its target must begin with ``guard``. A
    Ctrl-C or stop that reaches this process while it starts one (raised when the hold ends, before
    the caller has recorded the new process) stops the new process too, then goes on."""

    def start(self) -> None:
        # spawning starts multiprocessing's resource tracker on first use, which unblocks SIGINT when
        # it is started (not restoring the mask it found): started first, outside the hold
        multiprocessing.resource_tracker.ensure_running()
        try:
            with interrupts_held():
                super().start()
        except BaseException:
            if self._popen is not None:  # started, but nobody will know it: stop it here
                self.kill()
                self.join()
            raise


class HeldSpawnContext(multiprocessing.context.SpawnContext):
    """The spawn context whose processes start with ``interrupts_held`` (for ``ProcessPoolExecutor``,
    whose initializer is then ``guard``)."""

    Process = HeldSpawnProcess


def guard() -> None:
    """Make this process a worker that never outlives its parent and stays quiet on Ctrl-C:

    - its own process group, so the parent can stop it together with anything it started
      (``os.killpg``), and a terminal's Ctrl-C (sent to the foreground group) does not reach it;
    - SIGINT ignored: the parent handles interrupts and stops its workers; SIGINT then unblocked, for
      a process started with ``interrupts_held`` (``HeldSpawnContext``), which holds it back during
      its start-up;
    - on Linux the kernel sends it SIGKILL when its parent dies (``PR_SET_PDEATHSIG``), which works
      even while it hangs in native code holding the GIL (strictly, when the parent's thread that
      started it ends: the executors start workers from threads that outlive them);
    - everywhere, a daemon thread waits on the parent's sentinel (a pipe the parent holds open) and
      ends the process when the parent is gone: no polling, so the normal path pays nothing.
    """
    with contextlib.suppress(OSError):  # already a group or session leader
        os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # started with ``interrupts_held``: a pending SIGINT is
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # now ignored
    parent = multiprocessing.parent_process()
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if parent is not None and os.getppid() != parent.pid:  # the parent died before prctl
            os._exit(PARENT_GONE_EXIT_CODE)
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(parent_sentinel: int) -> None:
    multiprocessing.connection.wait([parent_sentinel])
    os._exit(PARENT_GONE_EXIT_CODE)


def configure(plugins: Sequence[str] = (), own_process: bool = True) -> None:
    """One thread per worker for XLA and torch (no oversubscription when workers share cores),
    float64 in JAX, the persistent compilation cache, NumPyro's argument and support checks off, and
    the user's plugin modules imported so their models are registered.

    The checks are off for the reason Pyro's are (the Pyro backend turns them off too): every value
    the suite evaluates is a draw of a guide or of an exact posterior, in support by construction,
    and each model's log joint is tested against its NumPy oracle. In compiled programs the checks
    are extra masking operations, about a tenth of the compile time. In the caller's process
    (``own_process`` False; ``checking.in_process``) ``XLA_FLAGS`` is left alone."""
    global _configured
    if _configured == tuple(plugins):
        return
    from ppl_suite.numerics import setup

    setup(own_process=own_process)
    import numpyro

    from ppl_suite.compilation_cache import enable_compilation_cache

    numpyro.enable_validation(False)
    enable_compilation_cache()
    for module in plugins:
        importlib.import_module(module)
    _configured = tuple(plugins)


@contextlib.contextmanager
def configured_here() -> Iterator[None]:
    """Configure this process (the caller's, not a worker) for the body, then restore its settings
    (``numerics.kept_session``) and forget the configuration, so the next call configures again."""
    global _configured
    from ppl_suite.numerics import kept_session

    remembered = _configured
    try:
        with kept_session():
            configure(own_process=False)
            yield
    finally:
        _configured = remembered


def set_up(plugins: Sequence[str] = ()) -> str | None:
    """Configure this worker (``configure``) and load what runs a cell (torch and JAX: in the workers,
    not the parent); None, or what failed, with its traceback."""
    try:
        configure(plugins)
        import ppl_suite.execute  # noqa: F401
    except Exception as error:
        return f"worker set-up failed: {type(error).__name__}: {error}\n{traceback.format_exc()}"
    return None


def run_cell(cell: Cell, plugins: Sequence[str] = ()) -> Record:
    """``execute(cell)`` in a configured worker; a set-up error fails the cell, not the worker."""
    start = time.perf_counter()
    failure = set_up(plugins)
    if failure is not None:
        return _unfinished_row(cell, schema.FAILED, failure, time.perf_counter() - start)
    from ppl_suite.execute import execute

    return execute(cell)


def serve(connection: multiprocessing.connection.Connection, plugins: Sequence[str]) -> None:
    """A local worker's main loop: set up before the first cell comes (a worker started ahead of its
    run, ``LocalExecutor.start_ahead``, loads its libraries while the parent works), then receive a
    cell, send back its Record, until the parent closes the connection. A failed set-up fails every
    cell with its first traceback (a plug-in imported again after a failure halfway would tell
    another error, such as a model registered twice)."""
    guard()
    failure = set_up(plugins)
    while True:
        try:
            cell = connection.recv()
        except EOFError:
            return
        if failure is not None:
            connection.send(_unfinished_row(cell, schema.FAILED, failure, 0.0))
        else:
            connection.send(run_cell(cell, plugins))


def _unfinished_row(unit: Unit, status: str, error: str, seconds: float) -> Record:
    """The row of any unit of work (cell or problem unit) that did not finish: its identity columns,
    status, error and seconds."""
    row = {**unit.identity(), schema.STATUS: status, schema.ERROR: error, schema.WALL_SECONDS: seconds}
    return Record(row, np.empty(0))


def lost_record(cell: Cell, reason: str, seconds: float) -> Record:
    """The row of a cell whose worker died before returning (killed, out of memory, lost)."""
    return _unfinished_row(cell, schema.FAILED, f"worker lost: {reason}", seconds)


def timeout_record(cell: Cell, limit: float, seconds: float) -> Record:
    """The row of a cell stopped at the per-cell time limit; ``seconds`` is how long it ran."""
    error = f"timed out: still running after the cell timeout of {limit:g} s; its worker was stopped"
    return _unfinished_row(cell, schema.TIMEOUT, error, seconds)
