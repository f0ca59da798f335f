"""What writing a report imports, imported ahead: while a run's workers start.

A report's first seconds are imports, not its own work: matplotlib with the Agg backend (``drawing``),
ArviZ (the posterior tables and densities, with SciPy and xarray) and the report's section modules
(``order``): 2.4 s of one core, of the 3.9 s the quick profile's report took where its figures were
kept (``benchmarks/quick_profile_timeline.py``). A run's own process has nothing to do while its
workers start (their set-up, torch and JAX, takes 3-5 s: ``benchmarks/worker_set_up.py``), so the
runner calls ``load`` then, in its one thread, and the report finds them loaded. Nothing is read,
drawn or computed ahead: the report stays a function of the results folder alone.
"""

from __future__ import annotations

import importlib

MODULES = ("ppl_suite.report.drawing", "arviz")


def load() -> None:
    """Import the report's section modules and MODULES. A module that fails to import is left to the
    report, which imports it again where its error is told with the report's."""
    try:
        from ppl_suite.report.order import sections

        sections()
        for name in MODULES:
            importlib.import_module(name)
    except Exception:  # told by the report's own import, not here
        return
