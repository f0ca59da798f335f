"""Dask distributed executor: cells as tasks on a scheduler (``tcp://HOST:PORT``), or on a
``LocalCluster`` of ``jobs`` single-threaded worker processes when no address is given."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ppl_suite.cell import Cell
from ppl_suite.executors import OnRecord
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
        try:
            futures = {
                client.submit(run_cell, cell, self.plugins, pure=False, key=f"cell-{i}"): cell
                for i, cell in enumerate(cells)
            }
            for future in as_completed(futures):
                cell = futures[future]
                try:
                    record = future.result()
                except Exception as error:  # the worker died or was lost: record it, go on
                    record = failed_record(cell, error)
                on_record(cell, record)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def make(scheduler: str | None = None, jobs: int | None = None, plugins: Sequence[str] = (), **_):
    return DaskExecutor(scheduler, jobs, plugins)
