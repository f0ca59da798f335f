"""Mean-field Gaussian in unconstrained space (Pyro's and NumPyro's AutoNormal family).

q(z) = prod_sites T_site#N(u_site; loc_site, diag(exp(log_scale_site))^2), where T_site is the
library bijection from R^d onto the site's support (identity, exp, sigmoid, stick-breaking): a
Normal on real sites, LogNormal on positive ones, logit-Normal on (0, 1), logistic-Normal on simplices.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ppl_suite.guides.base import ArrayOps, constraint, unconstrained_shape
from ppl_suite.spec import Data, Params, Site

INIT_SCALE = 0.1


class MeanField:
    name = "mean_field"
    description = "independent Normal per unconstrained coordinate, pushed onto each site's support"
    elbo = "trace"

    def unsupported(self, sites: tuple[Site, ...]) -> str | None:
        discrete = [s.name for s in sites if s.support == "integer"]
        return f"discrete sites {discrete} have no reparameterized Normal" if discrete else None

    def init_params(self, sites: tuple[Site, ...], data: Data, params: Params) -> dict[str, np.ndarray]:
        phi = {}
        for site in sites:
            shape = unconstrained_shape(site)
            phi[f"{site.name}.loc"] = np.zeros(shape)
            phi[f"{site.name}.log_scale"] = np.full(shape, np.log(INIT_SCALE))
        return phi

    def distributions(
        self, phi: Mapping[str, Any], sites: tuple[Site, ...], data: Mapping[str, Any], ops: ArrayOps
    ) -> dict[str, Any]:
        out = {}
        for site in sites:
            base = ops.dist.Normal(phi[f"{site.name}.loc"], ops.exp(phi[f"{site.name}.log_scale"]))
            base = base.to_event(len(unconstrained_shape(site)))
            if site.support != "real":
                base = ops.dist.TransformedDistribution(base, ops.biject_to(constraint(site, ops)))
            out[site.name] = base
        return out
