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
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ppl_suite.cell import Cell, Record
from ppl_suite.plugin_registry import Registry

OnRecord = Callable[[Cell, Record], None]


class Executor(Protocol):
    def run(self, cells: Sequence[Cell], on_record: OnRecord) -> None:
        """Execute every cell, calling ``on_record`` in this process as each one finishes (or times
        out, or loses its worker)."""


@runtime_checkable
class StartsAhead(Executor, Protocol):
    """An executor whose workers can be started before ``run`` (the local one): ``start_ahead(count)``
    starts that many (at most its jobs) to set up while the caller works; ``run`` takes them;
    ``stop_ahead()`` stops those it did not take."""

    def start_ahead(self, count: int) -> None: ...

    def stop_ahead(self) -> None: ...


@dataclass(frozen=True)
class ExecutorInfo:
    """An executor's name and the module whose ``make(**options)`` builds it (imported when asked for)."""

    name: str
    module: str

    def make(self, **options: Any) -> Executor:
        return importlib.import_module(self.module).make(**options)


EXECUTORS: Registry[ExecutorInfo] = Registry(
    "executor",
    discover=lambda: (ExecutorInfo("local", f"{__name__}.local"), ExecutorInfo("dask", f"{__name__}.dask")),
    entry_points="ppl_suite.executors",
    ordered=True,
)


def register(executor: ExecutorInfo) -> ExecutorInfo:
    """Add an executor defined outside this package; a taken name is an error."""
    return EXECUTORS.register(executor)


def names() -> list[str]:
    return EXECUTORS.names()


def get(name: str, **options: Any) -> Executor:
    """The executor ``name`` built with ``options``; an unknown name is a KeyError listing the valid ones."""
    return EXECUTORS.get(name).make(**options)
