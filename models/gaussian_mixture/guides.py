"""Guide families for discrete latents: per-point categoricals, and exact enumeration in the model.

- ``categorical``: q(z) = prod_sites prod_i Categorical(z_i; softmax(phi_i)), phi of shape
  (*site shape, cardinality), started at 0 (uniform). Its gradients are score-function
  (REINFORCE) estimates, grad E_q[f] = E_q[f(z) grad log q(z)], since z has no reparameterization.
  Williams (1992); Ranganath, Gerrish and Blei (2014), "Black box variational inference".
- ``enumerate``: the guide samples nothing; the model's discrete sites carry
  infer={"enumerate": "parallel"} and TraceEnum_ELBO sums them out, so the objective is
  log p(x) itself and the implied q(z) is the exact posterior p(z | x).
  Obermeyer et al. (2019), "Tensor variable elimination for plated factor graphs".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ppl_suite.guides.base import ArrayOps
from ppl_suite.spec import Data, Params, Site


def _not_discrete(sites: tuple[Site, ...]) -> str | None:
    continuous = [s.name for s in sites if s.support != "integer"]
    return f"sites {continuous} are not discrete" if continuous else None


class CategoricalFamily:
    name = "categorical"
    description = "independent categorical per discrete coordinate, softmax-parametrized (score-function)"
    # NumPyro's Trace_ELBO has no score-function term (its surrogate is log p - log q, whose gradient
    # through a non-reparameterized draw is only -grad log q(z), zero in expectation), so both libraries
    # use TraceEnum_ELBO: with z drawn by the guide nothing is enumerated and the gradient is the
    # Dice score-function estimator (Foerster et al., 2018), the same in Pyro and NumPyro.
    elbo = "trace_enum"

    def unsupported(self, sites: tuple[Site, ...]) -> str | None:
        return _not_discrete(sites)

    def init_params(self, sites: tuple[Site, ...], data: Data, params: Params) -> dict[str, np.ndarray]:
        return {f"{s.name}.logits": np.zeros((*s.shape, s.cardinality)) for s in sites}

    def distributions(
        self, phi: Mapping[str, Any], sites: tuple[Site, ...], data: Mapping[str, Any], ops: ArrayOps
    ) -> dict[str, Any]:
        # probs, not logits: NumPyro's KL registry has a closed form for CategoricalProbs pairs only.
        out = {}
        for site in sites:
            probs = ops.dist.Categorical(logits=phi[f"{site.name}.logits"]).probs  # softmax
            out[site.name] = ops.dist.Categorical(probs=probs).to_event(len(site.shape))
        return out


class EnumerateFamily:
    name = "enumerate"
    description = "no guide sites: discrete latents summed out in the model by TraceEnum_ELBO (exact)"
    elbo = "trace_enum"

    def unsupported(self, sites: tuple[Site, ...]) -> str | None:
        return _not_discrete(sites)

    def init_params(self, sites: tuple[Site, ...], data: Data, params: Params) -> dict[str, np.ndarray]:
        return {}

    def distributions(
        self, phi: Mapping[str, Any], sites: tuple[Site, ...], data: Mapping[str, Any], ops: ArrayOps
    ) -> dict[str, Any]:
        return {}


CATEGORICAL = CategoricalFamily()
ENUMERATE = EnumerateFamily()
