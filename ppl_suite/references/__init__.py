"""Reference posteriors and evidence for models without a closed form: NumPyro NUTS (on the NumPyro
model, or on a Pyro-only model's density through the torch bridge of ``targets.pyro_target``), gated by
posteriordb's rules (R-hat, bulk and tail ESS, divergences), with the suite's AIS evidence, stored
as ArviZ InferenceData in an on-disk cache (``cache``). See ``reference`` for the summary's shape.

The names below are imported on first use (PEP 562), so that reading a stored summary (``cache``)
imports neither JAX, NumPyro nor ArviZ, and reading a stored reference's draws (``stored_posterior``)
no ArviZ."""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "GateResult": "ppl_suite.references.gates",
    "ReferenceGateError": "ppl_suite.references.gates",
    "Reference": "ppl_suite.references.reference",
    "reference_for": "ppl_suite.references.reference",
    "stored_reference": "ppl_suite.references.reference",
    "StoredPosterior": "ppl_suite.references.posterior_group",
    "stored_posterior": "ppl_suite.references.posterior_group",
    "ReferenceFrom": "ppl_suite.references.reparametrized",
    "reference_from": "ppl_suite.references.reparametrized",
    "register_reference_from": "ppl_suite.references.reparametrized",
    "NUTSSettings": "ppl_suite.references.settings",
    "ReferenceProgress": "ppl_suite.references.progress",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
