"""Do a user's NumPyro and Pyro versions of one model define the same density? Compared site by site.

At each draw z_i (reference draws: where the posterior lives), every sample site's log density
(latent and observed) in each library:

    d_site = max_i |log p_numpyro(site | z_i) - log p_pyro(site | z_i)|
    d      = max_i |log p_numpyro(x, z_i) - log p_pyro(x, z_i)|

A difference d above the project's tolerance (``checks.LOG_JOINT_TOLERANCE``, 1e-6 nats) refuses the
check, naming d and the site with the largest d_site: the one whose distribution differs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ppl_suite.checks import LOG_JOINT_TOLERANCE
from ppl_suite.spec import Latents

DRAWS = 16  # draws compared: the Pyro side traces the model once per draw


@dataclass(frozen=True)
class Agreement:
    """The largest difference of the two log joints, the site with the largest difference of its
    own log density, that site's difference, and how many draws were compared."""

    max_difference: float
    worst_site: str
    worst_site_difference: float
    draws: int

    @property
    def ok(self) -> bool:
        return self.max_difference <= LOG_JOINT_TOLERANCE

    def problem(self) -> str:
        return (
            f"the NumPyro and Pyro models' log joints differ by up to {self.max_difference:.6g} nats at "
            f"{self.draws} reference draws (tolerance {LOG_JOINT_TOLERANCE:g}); the site that causes it: "
            f"{self.worst_site!r}, whose log density differs by up to {self.worst_site_difference:.6g} nats"
        )


def numpyro_site_log_probs(
    model: Callable[..., Any], data: Mapping[str, Any], params: Mapping[str, Any], latents: Latents
) -> dict[str, np.ndarray]:
    """log p(site | z_i) summed over each site's elements, per sample site, shape (n,)."""
    from numpyro.infer.util import compute_log_probs

    n = len(next(iter(latents.values())))
    out: dict[str, list[float]] = {}
    for i in range(n):
        log_probs, _ = compute_log_probs(
            model, (dict(data), dict(params)), {}, {k: v[i] for k, v in latents.items()}
        )
        for name, value in log_probs.items():
            out.setdefault(name, []).append(float(np.sum(value)))
    return {name: np.asarray(values) for name, values in out.items()}


def pyro_site_log_probs(
    model: Callable[..., Any], data: Mapping[str, Any], params: Mapping[str, Any], latents: Latents
) -> dict[str, np.ndarray]:
    """log p(site | z_i) per sample site of the Pyro model conditioned on each draw, shape (n,)."""
    import pyro
    import pyro.poutine as poutine
    import torch

    from ppl_suite.backends.pyro import as_torch

    tensors, fixed = as_torch(dict(data)), as_torch(dict(params))
    values = as_torch({k: np.asarray(v) for k, v in latents.items()})
    n = len(next(iter(values.values())))
    out: dict[str, list[float]] = {}
    with pyro.get_param_store().scope(), torch.no_grad(), pyro.validation_enabled(False):
        for i in range(n):
            pyro.get_param_store().clear()
            conditioned = poutine.condition(model, data={k: v[i] for k, v in values.items()})
            trace = poutine.trace(conditioned).get_trace(tensors, fixed)
            trace.compute_log_prob()
            for name, site in trace.nodes.items():
                if site["type"] == "sample":
                    out.setdefault(name, []).append(float(site["log_prob_sum"]))
    return {name: np.asarray(values) for name, values in out.items()}


def compare(
    numpyro_model: Callable[..., Any],
    pyro_model: Callable[..., Any],
    data: Mapping[str, Any],
    params: Mapping[str, Any],
    latents: Latents,
) -> Agreement:
    """Both models' log joints and per-site log densities at the first DRAWS of ``latents``. A site
    only one model has counts with its whole log density (the other's is 0)."""
    latents = {k: np.asarray(v)[:DRAWS] for k, v in latents.items()}
    left = numpyro_site_log_probs(numpyro_model, data, params, latents)
    right = pyro_site_log_probs(pyro_model, data, params, latents)
    n = len(next(iter(latents.values())))
    zero = np.zeros(n)
    per_site = {
        name: float(np.max(np.abs(left.get(name, zero) - right.get(name, zero)), initial=0.0))
        for name in sorted(set(left) | set(right))
    }
    total = np.abs(sum(left.values(), zero) - sum(right.values(), zero))
    worst = max(per_site, key=lambda name: (np.nan_to_num(per_site[name], nan=np.inf), name))
    max_difference = float(np.inf if np.isnan(total).any() else total.max(initial=0.0))
    return Agreement(max_difference, worst, per_site[worst], n)
