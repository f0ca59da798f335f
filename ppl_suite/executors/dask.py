"""Dask distributed executor: cells as tasks on a scheduler (``tcp://HOST:PORT``), or on a
``LocalCluster`` of ``jobs`` single-threaded worker processes when no address is given.

Cells are handed out as the local executor hands them out (``AffinityQueue``): each worker has one
cell at a time, and a worker that finishes gets the next cell of the problem it holds, so a worker
compiles a problem's programs once instead of every worker compiling every problem. A task is
pinned to its worker loosely (``allow_other_workers``): if that worker leaves the cluster, the
scheduler runs the cell elsewhere. Workers that join during the run are given cells too.

A worker runs one cell at a time whatever its thread count (Pyro's parameter store is one per
process), so a cluster for the suite has single-threaded workers, one per core.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence

from ppl_suite.cell import Cell
from ppl_suite.executors import OnRecord
from ppl_suite.executors.affinity import AffinityQueue
from ppl_suite.executors.worker import failed_record, run_cell


class DaskExecutor:
    def __init__(self, scheduler: str | None = None, jobs: int | None = None, plugins: Sequence[str] = ()):
        self.scheduler = scheduler
        self.jobs = jobs or os.cpu_count() or 1
        self.plugins = tuple(plugins)

    def run(self, cells: Sequence[Cell], on_record: OnRecord) -> None:
        from dask.distributed import Client, LocalCluster, as_completed

        cluster = None
        if self.scheduler is None:
            os.environ.setdefault(
                "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
            )
            cluster = LocalCluster(
                n_workers=self.jobs, threads_per_worker=1, processes=True, dashboard_address=None
            )
        client = Client(cluster if cluster is not None else self.scheduler)
        queue = AffinityQueue(cells)
        running: dict = {}  # future -> (worker address, cell)
        done = as_completed()
        task_numbers = itertools.count()

        def feed() -> None:
            """One cell for every worker of the cluster that has none running."""
            busy = {worker for worker, _ in running.values()}
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
                running[future] = (worker, cell)
                done.add(future)

        try:
            client.wait_for_workers(1)
            feed()
            for future in done:
                _, cell = running.pop(future)
                try:
                    record = future.result()
                except Exception as error:  # the worker died or was lost: record it, go on
                    record = failed_record(cell, error)
                on_record(cell, record)
                feed()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def make(scheduler: str | None = None, jobs: int | None = None, plugins: Sequence[str] = (), **_):
    return DaskExecutor(scheduler, jobs, plugins)
