"""ppl-suite: what SVI optimizes, checked across Pyro, NumPyro and hand-rolled estimators.

log p(x) = ELBO(q) + KL(q(z) || p(z | x))

The public Python API (``docs/api.md``), imported on first use so that ``import ppl_suite`` stays
light:

    ppl_suite.check(model, args=(...), kwargs={...}) -> CheckResult: model(*args, **kwargs) checked
    ppl_suite.cell_draws(results_folder, key) -> CellDraws (InferenceData of q and the reference)
    ppl_suite.results.load(results_folder) -> pandas DataFrame of cells

Errors: ``InputProblem`` (bad input, every problem named, nothing run), ``CheckFailed`` (a correctness
check failed; ``ReferenceGateError``, a reference that failed its gates, is one), ``CheckStopped`` (a
KeyboardInterrupt: SIGINT or SIGTERM stopped a check, its finished cells kept).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_HOMES = {
    "check": "ppl_suite.checking",
    "CheckResult": "ppl_suite.checking",
    "CheckFailed": "ppl_suite.errors",
    "ReferenceGateError": "ppl_suite.references",
    "CheckStopped": "ppl_suite.checking",
    "InputProblem": "ppl_suite.checking",
    "cell_draws": "ppl_suite.checking",
    "CellDraws": "ppl_suite.checking",
    "diagnose": "ppl_suite.diagnosing",
}
__all__ = ["__version__", *sorted(_HOMES)]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
