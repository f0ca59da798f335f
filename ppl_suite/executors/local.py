"""Local executor: ``jobs`` worker processes (spawned, one thread each); jobs=1 runs in-process.

Each worker is its own one-process pool, so the executor chooses which worker runs which cell: an
``AffinityQueue`` keeps cells of one problem on one worker, where its compiled programs are warm. A
worker that dies (killed, out of memory) records its cell as failed and is replaced by a fresh one.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from ppl_suite.cell import Cell
from ppl_suite.executors import OnRecord
from ppl_suite.executors.affinity import AffinityQueue
from ppl_suite.executors.worker import configure, failed_record, run_cell


class LocalExecutor:
    def __init__(self, jobs: int | None = None, plugins: Sequence[str] = ()) -> None:
        self.jobs = jobs or os.cpu_count() or 1
        self.plugins = tuple(plugins)

    def run(self, cells: Sequence[Cell], on_record: OnRecord) -> None:
        queue = AffinityQueue(cells)
        if self.jobs == 1:
            while (cell := queue.next_for(0)) is not None:
                on_record(cell, run_cell(cell, self.plugins))
            return
        workers: dict[int, ProcessPoolExecutor] = {}
        running: dict[Future, tuple[int, Cell]] = {}

        def start(worker: int) -> None:
            cell = queue.next_for(worker)
            if cell is None:
                return
            if worker not in workers:
                workers[worker] = ProcessPoolExecutor(
                    1,
                    mp_context=multiprocessing.get_context("spawn"),  # JAX and torch must not be forked
                    initializer=configure,
                    initargs=(self.plugins,),
                )
            running[workers[worker].submit(run_cell, cell, self.plugins)] = (worker, cell)

        try:
            for worker in range(self.jobs):
                start(worker)
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    worker, cell = running.pop(future)
                    try:
                        record = future.result()
                    except BrokenProcessPool as error:  # the worker died: record the cell, replace it
                        record = failed_record(cell, error)
                        workers.pop(worker).shutdown(wait=False)
                    on_record(cell, record)
                    start(worker)
        finally:
            for pool in workers.values():
                pool.shutdown(wait=False, cancel_futures=True)


def make(jobs: int | None = None, plugins: Sequence[str] = (), **_: object) -> LocalExecutor:
    return LocalExecutor(jobs, plugins)
