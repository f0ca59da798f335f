"""Executors run cells and hand each Record back as it finishes; the store (in the calling process)
is the only writer. Local process pool and Dask distributed give the same Records for the same cells.

Both are built by ``get(name, jobs=..., scheduler=..., plugins=..., cell_timeout=SECONDS or None)``
and keep the same promises: cells run in worker processes, never in the caller; a cell still running
after ``cell_timeout`` seconds is recorded with status "timeout" and its worker replaced; a worker
that dies records its cell as failed ("worker lost: ..."); on any exception in the caller during
``run`` (KeyboardInterrupt included) the workers are stopped, even when hung in native code, before
it propagates; workers ignore SIGINT and die with the caller.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Protocol

from ppl_suite.cell import Cell, Record

OnRecord = Callable[[Cell, Record], None]
_EXECUTORS = {"local": "ppl_suite.executors.local", "dask": "ppl_suite.executors.dask"}


class Executor(Protocol):
    def run(self, cells: Sequence[Cell], on_record: OnRecord) -> None:
        """Execute every cell, calling ``on_record`` in this process as each one finishes (or times
        out, or loses its worker)."""


def names() -> list[str]:
    return list(_EXECUTORS)


def get(name: str, **options) -> Executor:
    if name not in _EXECUTORS:
        raise KeyError(f"unknown executor {name!r}; valid: {', '.join(names())}")
    return importlib.import_module(_EXECUTORS[name]).make(**options)
