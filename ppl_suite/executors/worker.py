"""What runs inside a worker process: one-time set-up, then ``execute``."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import numpy as np

from ppl_suite.cell import Cell, Record

_configured: tuple[str, ...] | None = None


def configure(plugins: Sequence[str] = ()) -> None:
    """One thread per worker for XLA and torch (no oversubscription when workers share cores),
    float64 in JAX, the persistent compilation cache, NumPyro's argument and support checks off, and
    the user's plugin modules imported so their models are registered.

    The checks are off for the reason Pyro's are (the Pyro backend turns them off too): every value
    the suite evaluates is a draw of a guide or of an exact posterior, in support by construction,
    and each model's log joint is tested against its NumPy oracle. In compiled programs the checks
    are extra masking operations, about a tenth of the compile time."""
    global _configured
    if _configured == tuple(plugins):
        return
    from ppl_suite.numerics import setup

    setup()
    import numpyro

    from ppl_suite.compilation_cache import enable_compilation_cache

    numpyro.enable_validation(False)
    enable_compilation_cache()
    for module in plugins:
        importlib.import_module(module)
    _configured = tuple(plugins)


def run_cell(cell: Cell, plugins: Sequence[str] = ()) -> Record:
    configure(plugins)
    from ppl_suite.execute import execute  # torch and JAX: loaded in the workers, not in the parent

    return execute(cell)


def failed_record(cell: Cell, error: BaseException) -> Record:
    """The row of a cell whose worker died before returning (killed, out of memory, lost)."""
    row = {
        "key": cell.key,
        "model": cell.model,
        "backend": cell.backend,
        "guide": cell.guide,
        "data_seed": cell.data_seed,
        "seed": cell.seed,
        "status": "failed",
        "error": f"worker lost: {type(error).__name__}: {error}",
        "wall_seconds": float("nan"),
    }
    return Record(row, np.empty(0))
