"""Local executor: a process pool of ``jobs`` workers (spawned, one thread each); jobs=1 runs in-process."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from ppl_suite.execute import Cell
from ppl_suite.executors import OnRecord
from ppl_suite.executors.worker import configure, failed_record, run_cell


class LocalExecutor:
    def __init__(self, jobs: int | None = None, plugins: Sequence[str] = ()) -> None:
        self.jobs = jobs or os.cpu_count() or 1
        self.plugins = tuple(plugins)

    def run(self, cells: Sequence[Cell], on_record: OnRecord) -> None:
        if self.jobs == 1:
            for cell in cells:
                on_record(cell, run_cell(cell, self.plugins))
            return
        context = multiprocessing.get_context("spawn")  # JAX and torch must not be forked
        pool = ProcessPoolExecutor(
            self.jobs, mp_context=context, initializer=configure, initargs=(self.plugins,)
        )
        try:
            pending = {pool.submit(run_cell, cell, self.plugins): cell for cell in cells}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    cell = pending.pop(future)
                    try:
                        record = future.result()
                    except BrokenProcessPool as error:  # a worker died (e.g. killed): record, go on
                        record = failed_record(cell, error)
                    on_record(cell, record)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


def make(jobs: int | None = None, plugins: Sequence[str] = (), **_: object) -> LocalExecutor:
    return LocalExecutor(jobs, plugins)
