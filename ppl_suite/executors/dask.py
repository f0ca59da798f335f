"""Dask distributed executor: cells as tasks on a scheduler (``tcp://HOST:PORT``), or on a
``LocalCluster`` of ``jobs`` single-threaded worker processes when no address is given.

Cells are handed out as the local executor hands them out (``AffinityQueue``): each worker has one
cell at a time, and a worker that finishes gets the next cell of the problem it holds, so a worker
compiles a problem's programs once instead of every worker compiling every problem. A task is
pinned to its worker loosely (``allow_other_workers``): if that worker leaves the cluster, the
scheduler runs the cell elsewhere (up to its ``allowed-failures``; after that the cell is recorded
as failed, "worker lost"). Workers that join during the run are given cells too.

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

from distributed import Client, Future, LocalCluster, WorkerPlugin, wait

from ppl_suite.cell import Cell
from ppl_suite.executors import OnRecord
from ppl_suite.executors.affinity import AffinityQueue
from ppl_suite.executors.stop import stop_groups
from ppl_suite.executors.worker import guard, lost_record, run_cell, timeout_record
from ppl_suite.numerics import XLA_ONE_THREAD

RESTART_SECONDS = 30  # a nanny's limit for stopping a timed-out worker and starting a fresh one


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
                cluster = LocalCluster(
                    n_workers=self.jobs, threads_per_worker=1, processes=True, dashboard_address=None
                )
                closing.enter_context(cluster)
            client = closing.enter_context(Client(cluster if cluster is not None else self.scheduler))
            running: dict[Future, tuple[str, Cell, float]] = {}  # future -> (worker, cell, handed out at)
            try:
                if cluster is not None:
                    client.register_plugin(Guard())
                self._run(client, cells, on_record, running)
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
        running: dict[Future, tuple[str, Cell, float]],
    ) -> None:
        queue = AffinityQueue(cells)
        task_numbers = itertools.count()

        def feed() -> None:
            """One cell for every worker of the cluster that has none running."""
            busy = {worker for worker, _, _ in running.values()}
            for worker in client.scheduler_info(n_workers=-1)["workers"]:
                if worker in busy:
                    continue
                cell = queue.next_for(worker)
                if cell is None:
                    return
                future = client.submit(
                    run_cell,
                    cell,
                    self.plugins,
                    pure=False,
                    key=f"cell-{next(task_numbers)}",
                    workers=[worker],
                    allow_other_workers=True,
                )
                running[future] = (worker, cell, time.monotonic())

        client.wait_for_workers(1)
        feed()
        while running:
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
            for future, (worker, cell, started) in list(running.items()):
                if self.cell_timeout is not None and now - started >= self.cell_timeout:
                    del running[future]
                    client.cancel([future], force=True)  # first, so that the scheduler does not rerun it
                    client.restart_workers([worker], timeout=RESTART_SECONDS, raise_for_error=False)
                    queue.release(worker)
                    on_record(cell, timeout_record(cell, self.cell_timeout, now - started))
            feed()

    def _seconds_to_first_deadline(self, running: dict[Future, tuple[str, Cell, float]]) -> float | None:
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
