"""The amortized guide family of probabilistic PCA: a linear Gaussian encoder shared across data points.

    q(z | X) = prod_n N(z_n; A x_n + b, L L^T),  L = tril(tril_raw, -1) + diag(exp(log_diag))

with A (k, d), b (k,) and one full k x k Cholesky factor L shared by every n. Parameters
``z.A``, ``z.b``, ``z.log_diag``, ``z.tril``, the same in every backend; started at the prior
(A = 0, b = 0, L = I), whatever the data.

The exact PPCA posterior is of this form, p(z_n | x_n) = N(M^-1 W^T (x_n - mu), sigma^2 M^-1) with
M = W^T W + sigma^2 I: A = M^-1 W^T, b = -M^-1 W^T mu, L L^T = sigma^2 M^-1. So the family is exact
for every theta: its best KL is 0, there is no amortization gap, and maximizing the ELBO over
(phi, theta) is maximum likelihood (the EM fixed points of Tipping and Bishop, 1999).
Kingma and Welling (2014), "Auto-encoding variational Bayes", for amortized inference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ppl_suite.guides.base import ArrayOps
from ppl_suite.spec import Data, Params, Site


class LinearEncoder:
    name = "amortized"
    description = "linear Gaussian encoder q(z_n | x_n) = N(A x_n + b, L L^T), one full L shared over n"
    elbo = "trace"

    def unsupported(self, sites: tuple[Site, ...]) -> str | None:
        ok = len(sites) == 1 and sites[0].support == "real" and sites[0].local and len(sites[0].shape) == 2
        return None if ok else "needs a single real local site of shape (N, k) and data 'x' of shape (N, d)"

    def init_params(self, sites: tuple[Site, ...], data: Data, params: Params) -> dict[str, np.ndarray]:
        (site,) = sites
        k, d = site.shape[1], np.shape(data["x"])[1]
        return {
            f"{site.name}.A": np.zeros((k, d)),
            f"{site.name}.b": np.zeros(k),
            f"{site.name}.log_diag": np.zeros(k),
            f"{site.name}.tril": np.zeros((k, k)),
        }

    def distributions(
        self, phi: Mapping[str, Any], sites: tuple[Site, ...], data: Mapping[str, Any], ops: ArrayOps
    ) -> dict[str, Any]:
        (site,) = sites
        k = site.shape[1]
        strict_lower = ops.asarray(np.tril(np.ones((k, k)), -1))
        eye = ops.asarray(np.eye(k))
        scale_tril = phi[f"{site.name}.tril"] * strict_lower + eye * ops.exp(phi[f"{site.name}.log_diag"])
        loc = data["x"] @ phi[f"{site.name}.A"].T + phi[f"{site.name}.b"]
        return {site.name: ops.dist.MultivariateNormal(loc, scale_tril=scale_tril).to_event(1)}


AMORTIZED = LinearEncoder()
