"""The cells of a check run in the calling process, one after another.

A model or guide defined in a script or a notebook (a closure, a lambda) cannot reach a worker
process by name: a spawned worker would import it by re-running the user's script, whose
``ppl_suite.check(...)`` call then runs again (without an ``if __name__ == "__main__":`` guard), and
a notebook cell has no file at all. So ``ppl_suite.check`` runs such a model's cells here, through
the worker's own ``run_cell`` (the same set-up and the same Records); the model, registered in this
process, is never imported. The user's Pyro parameter store is kept: every fit clears the store
inside a scope that restores it, and the process's numerical settings are restored after the cells
(``worker.configured_here``). No per-cell timeout holds here (a compiled NumPyro fit cannot be
interrupted in the calling process): ``check`` names this executor ``in_process`` in the manifest,
whose ``cell_timeout`` is then null (``runner.run``: an executor given records none); Ctrl-C stops
the run as the runner handles it (finished cells kept).
"""

from __future__ import annotations

from collections.abc import Sequence

from ppl_suite.cell import Cell
from ppl_suite.executors import OnRecord


class InProcessExecutor:
    """An executor (``ppl_suite.executors.Executor``) running every cell in this process."""

    def run(self, cells: Sequence[Cell], on_record: OnRecord) -> None:
        import pyro

        from ppl_suite.executors.worker import configured_here, run_cell

        with configured_here(), pyro.get_param_store().scope():
            for cell in cells:
                on_record(cell, run_cell(cell))
