"""Dask distributed executor: cells as tasks on a scheduler (``tcp://HOST:PORT``), or on a
``LocalCluster`` of ``jobs`` single-threaded worker processes when no address is given.

Cells are handed out as the local executor hands them out (``AffinityQueue``), one per worker of
the cluster: a run holds one slot per worker, each slot has at most one cell in flight, and a slot
whose cell finished takes the next cell of the problem it holds. No task is pinned to a worker
address (a pinned task outlives its worker and is never run by the one that replaces it): the
scheduler gives each new task to the worker that is idle, which is the one that just finished, so a
worker still tends to compile a problem's programs once instead of every worker compiling every
problem. Workers that join during the run add slots.

A worker that dies while it runs a cell loses that cell: on the executor's own ``LocalCluster`` the
scheduler allows no retry (``allowed-failures`` 0), so the cell is recorded at once as failed,
"worker lost", as on the local executor, and the next cell goes to the worker the nanny starts in
its place; on a cluster given by address the scheduler reruns the cell elsewhere up to its own
``allowed-failures`` and then it is recorded so.

A cell still running ``cell_timeout`` seconds after it was handed out is recorded as timed out, its
task is cancelled (so the scheduler does not run it again) and its worker restarted through its
nanny, so the hung cell does not keep it.

Workers of the executor's own ``LocalCluster`` are guarded like local workers (``worker.guard``:
SIGINT ignored, gone when this process dies). On any exception in this process during ``run``
(KeyboardInterrupt included) they are stopped (SIGTERM, then SIGKILL after a short grace) before the
exception propagates; on a cluster given by address, the run's tasks are cancelled.

A worker runs one cell at a time whatever its thread count (Pyro's parameter store is one per
process), so a cluster for the suite has single-threaded workers, one per core.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Sequence

import dask
from distributed import Client, Future, LocalCluster, WorkerPlugin, wait

from ppl_suite.cell import Cell
from ppl_suite.executors import OnRecord
from ppl_suite.executors.affinity import AffinityQueue
from ppl_suite.executors.stop import stop_groups
from ppl_suite.executors.worker import guard, lost_record, run_cell, timeout_record
from ppl_suite.numerics import XLA_ONE_THREAD

RESTART_SECONDS = 30  # a nanny's limit for stopping a timed-out worker and starting a fresh one
WORKER_WAIT_SECONDS = 60  # how long cells left to run wait for a worker when the cluster has none


class Guard(WorkerPlugin):
    """Runs ``worker.guard`` in every worker of the executor's own cluster as it starts."""

    name = "ppl-suite-guard"

    def setup(self, worker) -> None:
        guard()


class DaskExecutor:
    def __init__(
        self,
        scheduler: str | None = None,
        jobs: int | None = None,
        plugins: Sequence[str] = (),
        cell_timeout: float | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.jobs = jobs or os.cpu_count() or 1
        self.plugins = tuple(plugins)
        self.cell_timeout = cell_timeout

    def run(self, cells: Sequence[Cell], on_record: OnRecord) -> None:
        with contextlib.ExitStack() as closing:  # the client, then the cluster, closed on the way out
            cluster = None
            if self.scheduler is None:
                os.environ.setdefault("XLA_FLAGS", XLA_ONE_THREAD)
                with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                    cluster = LocalCluster(
                        n_workers=self.jobs, threads_per_worker=1, processes=True, dashboard_address=None
                    )
                closing.enter_context(cluster)
            client = closing.enter_context(Client(cluster if cluster is not None else self.scheduler))
            running: dict[Future, tuple[int, Cell, float]] = {}  # future -> (slot, cell, handed out at)
            try:
                if cluster is not None:
                    client.register_plugin(Guard())
                self._run(client, cells, on_record, running, own_cluster=cluster is not None)
            except BaseException:
                if cluster is not None:
                    stop_cluster_workers(cluster)
                else:  # the cluster's workers are not ours to stop
                    client.cancel(list(running), force=True)
                raise

    def _run(
        self,
        client: Client,
        cells: Sequence[Cell],
        on_record: OnRecord,
        running: dict[Future, tuple[int, Cell, float]],
        own_cluster: bool = True,
    ) -> None:
        queue = AffinityQueue(cells)
        task_numbers = itertools.count()

        def feed() -> None:
            """One cell for every slot without one, a slot per worker the cluster has now."""
            workers = len(client.scheduler_info(n_workers=-1)["workers"])
            busy = {slot for slot, _, _ in running.values()}
            for slot in (slot for slot in range(max(workers, len(busy))) if slot not in busy):
                if len(running) >= workers:
                    return
                cell = queue.next_for(slot)
                if cell is None:
                    return
                key = f"cell-{next(task_numbers)}"
                future = client.submit(run_cell, cell, self.plugins, pure=False, key=key)
                running[future] = (slot, cell, time.monotonic())

        client.wait_for_workers(1)
        feed()
        while running or len(queue):
            if not running:  # cells are left but the cluster has no worker (one is being replaced)
                try:
                    client.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
                except TimeoutError:  # none came back: the cells left cannot run, each is recorded
                    reason = f"the cluster has had no worker for {WORKER_WAIT_SECONDS} s"
                    for cell in queue.drain():
                        on_record(cell, lost_record(cell, reason, 0.0))
                    return
                feed()
                continue
            try:
                deadline = self._seconds_to_first_deadline(running)
                finished = wait(list(running), timeout=deadline, return_when="FIRST_COMPLETED").done
            except TimeoutError:
                finished = set()
            now = time.monotonic()
            for future in finished:
                _, cell, started = running.pop(future)
                try:
                    record = future.result()
                except Exception as error:  # the worker died or was lost: record it, go on
                    record = lost_record(cell, f"{type(error).__name__}: {error}", now - started)
                on_record(cell, record)
            self._stop_late(client, running, queue, on_record, now, own_cluster)
            feed()

    def _stop_late(
        self,
        client: Client,
        running: dict[Future, tuple[int, Cell, float]],
        queue: AffinityQueue,
        on_record: OnRecord,
        now: float,
        own_cluster: bool,
    ) -> None:
        """Record every cell running past ``cell_timeout`` as timed out, cancel it, restart its worker
        (of this executor's own cluster only) and free its slot."""
        late = [
            (future, slot, cell, started)
            for future, (slot, cell, started) in running.items()
            if self.cell_timeout is not None and now - started >= self.cell_timeout
        ]
        if not late:
            return
        holders = {key: worker for worker, keys in client.processing().items() for key in keys}
        for future, slot, cell, started in late:
            del running[future]
            client.cancel([future], force=True)  # first, so that the scheduler does not rerun it
            worker = holders.get(future.key)  # None: its worker left, there is nothing to stop
            with contextlib.suppress(KeyError):  # it left since: the scheduler knows it no more
                if worker is not None and own_cluster:  # another cluster's workers are not ours
                    client.restart_workers([worker], timeout=RESTART_SECONDS, raise_for_error=False)
            queue.release(slot)
            on_record(cell, timeout_record(cell, self.cell_timeout, now - started))

    def _seconds_to_first_deadline(self, running: dict[Future, tuple[int, Cell, float]]) -> float | None:
        if self.cell_timeout is None:
            return None
        first = min(started for _, _, started in running.values()) + self.cell_timeout
        return max(first - time.monotonic(), 0.0)


def stop_cluster_workers(cluster: LocalCluster) -> None:
    """Stop the worker processes of a LocalCluster now: their nannies are told not to restart them,
    then each process group gets SIGTERM and, after a short grace, SIGKILL."""
    nannies = list(cluster.workers.values())
    for nanny in nannies:
        cluster.loop.add_callback(nanny.close_gracefully, reason="ppl-suite run stopped")
    pids = [nanny.pid for nanny in nannies if nanny.pid]
    stop_groups(pids, _exists)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def make(
    scheduler: str | None = None,
    jobs: int | None = None,
    plugins: Sequence[str] = (),
    cell_timeout: float | None = None,
    **_: object,
) -> DaskExecutor:
    return DaskExecutor(scheduler, jobs, plugins, cell_timeout)
