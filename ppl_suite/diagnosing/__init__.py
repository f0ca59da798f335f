"""Is this fit right? ``diagnose`` a variational fit the user made, against the model's NUTS reference.

    import ppl_suite
    diagnosis = ppl_suite.diagnose(model, guide, svi_result.params, args=(x,), kwargs={"y": y})
    diagnosis.kl, diagnosis.kl_se, diagnosis.k_hat, diagnosis.k_hat_verdict
    diagnosis.report("reports/my-fit")

``bound_model`` (the model called as the libraries call it, ``model(*args, **kwargs)``, registered as a
problem), ``traced_guide`` (q from the user's guide and parameters: draws with their log densities read
from the guide's own trace), ``api`` (``diagnose``), ``diagnosis`` (the result, plain data) and
``report`` (its Markdown and HTML page). Names are imported on first use, so that ``import ppl_suite``
stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "diagnose": "ppl_suite.diagnosing.api",
    "Diagnosis": "ppl_suite.diagnosing.diagnosis",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
