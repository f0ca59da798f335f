"""Full-rank Gaussian in unconstrained space, one block per site.

q(z) = prod_sites T_site#N(u_site; loc_site, L_site L_site^T), with
L = tril(raw, -1) + diag(exp(log_diag)) over the flattened site (a matrix site, or a vector site
sampled in a plate, is flattened in row-major order and reshaped back before T_site). Sites are
independent of each other (block-diagonal covariance); within a site every pair of coordinates is
correlated, the elements of a site's plates included (as AutoMultivariateNormal's are). For a model with a
single vector site (Bayesian linear regression) this is the whole full-rank family; for a model with
several sites it cannot hold correlations between them (eight schools' tau and theta): the libraries'
AutoMultivariateNormal (``autoguides``) can. A scalar site is a vector of length 1 (its 1 x 1 Cholesky
factor is its scale, so q is a Normal on it, as in ``mean_field``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ppl_suite.guides.base import ArrayOps, constraint, unconstrained_shape
from ppl_suite.guides.mean_field import INIT_SCALE
from ppl_suite.spec import Data, Params, Site


def _size(site: Site) -> int:
    return int(np.prod(unconstrained_shape(site), dtype=int))


class FullRank:
    name = "full_rank"
    description = "multivariate Normal per site in unconstrained space (Cholesky-parametrized)"
    elbo = "trace"

    def unsupported(self, sites: tuple[Site, ...]) -> str | None:
        discrete = [s.name for s in sites if s.support == "integer"]
        return f"discrete sites {discrete} have no reparameterized Normal" if discrete else None

    def init_params(self, sites: tuple[Site, ...], data: Data, params: Params) -> dict[str, np.ndarray]:
        phi = {}
        for site in sites:
            d = _size(site)
            phi[f"{site.name}.loc"] = np.zeros(d)
            phi[f"{site.name}.log_diag"] = np.full(d, np.log(INIT_SCALE))
            phi[f"{site.name}.tril"] = np.zeros((d, d))
        return phi

    def distributions(
        self, phi: Mapping[str, Any], sites: tuple[Site, ...], data: Mapping[str, Any], ops: ArrayOps
    ) -> dict[str, Any]:
        out = {}
        for site in sites:
            d, loc, log_diag = _size(site), phi[f"{site.name}.loc"], phi[f"{site.name}.log_diag"]
            if site.shape == ():
                base = ops.dist.Normal(loc[0], ops.exp(log_diag[0]))
            else:
                strict_lower, eye = ops.asarray(np.tril(np.ones((d, d)), -1)), ops.asarray(np.eye(d))
                scale_tril = phi[f"{site.name}.tril"] * strict_lower + eye * ops.exp(log_diag)
                base = ops.dist.MultivariateNormal(loc, scale_tril=scale_tril)
            if len(unconstrained_shape(site)) > 1:
                base = ops.dist.TransformedDistribution(base, ops.reshape((d,), unconstrained_shape(site)))
            if site.support != "real":
                base = ops.dist.TransformedDistribution(base, ops.biject_to(constraint(site, ops)))
            out[site.name] = base
        return out
