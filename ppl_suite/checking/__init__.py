"""Bring your own model: ``check`` a NumPyro and/or Pyro model on its data against its NUTS reference.

    import ppl_suite
    result = ppl_suite.check(model, args=(x, group, n_groups), kwargs={"y": y})

``api`` (``check``, ``CheckResult``), ``command`` (``ppl-suite check``), ``sources`` (files, functions
and data), ``calls`` (a model's call: its arguments by name), ``main_module`` and ``in_process`` (no
worker re-runs the user's script), ``sites`` (latent sites from a trace), ``user_model`` (the spec
built on the fly), ``agreement`` (NumPyro vs Pyro, site by site), ``user_guide`` (a user's own guide
as a guide family), ``draws`` (InferenceData of any cell, written as NetCDF), ``stored`` (what a check
keeps in its results folder), ``table`` (the headline table), ``memo`` (a re-check with nothing
changed answered from the results folder) and ``local_modules`` (the user's modules a file imports,
found without running it). Names are imported on first use, so
that ``import ppl_suite`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "check": "ppl_suite.checking.api",
    "CheckResult": "ppl_suite.checking.api",
    "CheckFailed": "ppl_suite.errors",
    "CheckStopped": "ppl_suite.checking.api",
    "InputProblem": "ppl_suite.checking.sources",
    "cell_draws": "ppl_suite.checking.draws",
    "CellDraws": "ppl_suite.checking.draws",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
