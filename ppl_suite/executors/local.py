"""Local executor: ``jobs`` worker processes (spawned, one thread each), each running one cell at a time.

The executor chooses which worker runs which cell: an ``AffinityQueue`` keeps cells of one problem on
one worker, where its compiled programs are warm. Cells always run in worker processes, also with
jobs=1, so that any cell can be stopped: a cell still running after ``cell_timeout`` seconds is
recorded as timed out and its worker is killed and replaced; a worker that dies (killed, out of
memory) records its cell as failed ("worker lost") and is replaced. The run goes on either way.

``start_ahead(count)`` starts workers ahead of ``run``, so that their set-up (torch, JAX, the
plug-ins: seconds each) overlaps what the caller does before its cells (``check``'s NUTS reference,
the report's imports of a run: ``runner.execute``); ``stop_ahead`` stops those no ``run`` took.

On any exception in this process during ``run`` (KeyboardInterrupt included) every worker is stopped
(SIGTERM, then SIGKILL after a short grace) before the exception propagates. Workers ignore SIGINT
and die with this process (``worker.guard``).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from collections.abc import Iterable, Iterator, Sequence

from ppl_suite import schema
from ppl_suite.cell import Cell, Record
from ppl_suite.executors import OnRecord
from ppl_suite.executors.affinity import AffinityQueue
from ppl_suite.executors.stop import stop_groups
from ppl_suite.executors.worker import HeldSpawnContext, lost_record, serve, timeout_record

# A fixed string-hash seed for the workers (unless the user set one): NumPyro's Trace_ELBO sums its
# sites' terms over a set of their names, so with Python's per-process hash seed the compiled SVI
# program (its text, the persistent XLA cache's key, and the last bits of its loss) changed from one
# worker process to the next.
HASH_SEED = "0"


@contextlib.contextmanager
def _hash_seed() -> Iterator[None]:
    """``PYTHONHASHSEED`` set for a process started within (spawn reads the environment), then restored."""
    previous = os.environ.get("PYTHONHASHSEED")
    os.environ["PYTHONHASHSEED"] = previous or HASH_SEED
    try:
        yield
    finally:
        if previous is None:
            del os.environ["PYTHONHASHSEED"]


class _Worker:
    """One worker process, this side of its connection, and the cell it runs (None when idle)."""

    def __init__(self, plugins: Sequence[str]) -> None:
        context = HeldSpawnContext()  # spawned: JAX and torch must not be forked
        self.connection, child_end = context.Pipe()
        self.process = context.Process(target=serve, args=(child_end, tuple(plugins)))
        with _hash_seed():
            self.process.start()
        child_end.close()
        self.cell: Cell | None = None
        self.started = 0.0

    def give(self, cell: Cell) -> None:
        self.cell, self.started = cell, time.monotonic()
        with contextlib.suppress(BrokenPipeError):  # it died since its last cell: lost, as if mid-cell
            self.connection.send(cell)

    def outcome(self, ready: list, now: float, limit: float | None) -> Record | None:
        """The Record of its cell if it came back, a lost or timeout row if it never will, else None."""
        assert self.cell is not None
        if self.connection in ready or self.process.sentinel in ready:
            try:
                if self.connection.poll():
                    return self.connection.recv()
            except (EOFError, OSError):
                pass
            self.process.join()
            return lost_record(self.cell, _exit_reason(self.process.exitcode), now - self.started)
        if limit is not None and now - self.started >= limit:
            return timeout_record(self.cell, limit, now - self.started)
        return None


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is None or exitcode >= 0:
        return f"its process exited with code {exitcode}"
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:  # a signal without a name (real-time signals)
        name = f"signal {-exitcode}"
    return f"its process was killed by {name}"


def stop(workers: Sequence[_Worker]) -> None:
    """Close the connections (an idle worker then exits on its own) and stop every process group."""
    for worker in workers:
        worker.connection.close()
    processes = {worker.process.pid: worker.process for worker in workers}
    stop_groups(list(processes), lambda pid: processes[pid].is_alive())
    for process in processes.values():
        process.join()


class LocalExecutor:
    def __init__(
        self, jobs: int | None = None, plugins: Sequence[str] = (), cell_timeout: float | None = None
    ) -> None:
        self.jobs = jobs or os.cpu_count() or 1
        self.plugins = tuple(plugins)
        self.cell_timeout = cell_timeout
        self._ahead: list[_Worker] = []  # started by ``start_ahead``, not yet taken by ``run``

    def start_ahead(self, count: int) -> None:
        """Start ``count`` workers (at most ``jobs``) now: each loads its libraries and plug-ins while
        the caller goes on, and ``run`` gives them its first cells; ``stop_ahead`` stops those it never
        took."""
        while len(self._ahead) < min(count, self.jobs):
            self._ahead.append(_Worker(self.plugins))

    def stop_ahead(self) -> None:
        """Stop the workers started ahead that no ``run`` took."""
        ahead, self._ahead = self._ahead, []
        stop(ahead)

    def run(self, cells: Sequence[Cell], on_record: OnRecord) -> None:
        queue = AffinityQueue(cells)
        workers: dict[int, _Worker] = {}  # slot -> its current worker process

        def give_next(slot: int) -> None:
            cell = queue.next_for(slot)
            if cell is None:
                return
            if slot not in workers:
                workers[slot] = _Worker(self.plugins)
            workers[slot].give(cell)

        try:
            workers.update(enumerate(self._ahead))  # those started ahead first
            self._ahead = []
            for slot in range(self.jobs):
                give_next(slot)
            while busy := {slot: w for slot, w in workers.items() if w.cell is not None}:
                ready = multiprocessing.connection.wait(
                    [handle for w in busy.values() for handle in (w.connection, w.process.sentinel)],
                    timeout=self._seconds_to_first_deadline(busy.values()),
                )
                now = time.monotonic()
                for slot, worker in busy.items():
                    record = worker.outcome(ready, now, self.cell_timeout)
                    if record is None:
                        continue
                    cell, worker.cell = worker.cell, None
                    if record.row[schema.STATUS] == schema.TIMEOUT or not worker.process.is_alive():
                        stop([workers.pop(slot)])  # replaced by a fresh worker for the next cell
                    on_record(cell, record)
                    give_next(slot)
        finally:
            stop(list(workers.values()))

    def _seconds_to_first_deadline(self, busy: Iterable[_Worker]) -> float | None:
        if self.cell_timeout is None:
            return None
        first = min(worker.started for worker in busy) + self.cell_timeout
        return max(first - time.monotonic(), 0.0)


def make(
    jobs: int | None = None, plugins: Sequence[str] = (), cell_timeout: float | None = None, **_: object
) -> LocalExecutor:
    return LocalExecutor(jobs, plugins, cell_timeout)
