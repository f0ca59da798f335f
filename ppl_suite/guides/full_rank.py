"""Full-rank Gaussian over every unconstrained coordinate of every site (the family of Pyro's and
NumPyro's AutoMultivariateNormal):

    u = concat over sites (declaration order) of the site's unconstrained coordinates, row-major
    u ~ N(loc, L L^T),  L = tril(raw, -1) + diag(exp(log_diag))      (d x d, d = size of u)
    z_site = T_site(reshape(u[block_site])),  T_site = biject_to(site support)
    log q(z) = log N(u; loc, L L^T) - sum_site log |det dT_site/du_site|

so every pair of coordinates is correlated, across sites (eight schools' tau and theta) and across
the elements of a site's plates. Its parameters are ``_joint.loc`` (d), ``_joint.log_diag`` (d) and
``_joint.tril`` (d x d, strictly lower part used), phi_0 = (0, log 0.1, 0) as ``mean_field``'s.
q is a ``guides.joint.JointQ``: the guide programs draw u at one auxiliary site and read the sites
from it (``guides.plates``). (Before this form the family was block-diagonal, one Gaussian per site:
cells fitted with it have another code digest and are rerun, not reread.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ppl_suite.guides.base import ArrayOps
from ppl_suite.guides.joint import JOINT_SITE, JointQ, size
from ppl_suite.guides.mean_field import INIT_SCALE
from ppl_suite.spec import Data, Params, Site

LOC, LOG_DIAG, TRIL = (f"{JOINT_SITE}.{name}" for name in ("loc", "log_diag", "tril"))


class FullRank:
    name = "full_rank"
    description = "one multivariate Normal over every unconstrained coordinate (Cholesky-parametrized)"
    elbo = "trace"

    def unsupported(self, sites: tuple[Site, ...]) -> str | None:
        discrete = [s.name for s in sites if s.support == "integer"]
        return f"discrete sites {discrete} have no reparameterized Normal" if discrete else None

    def init_params(self, sites: tuple[Site, ...], data: Data, params: Params) -> dict[str, np.ndarray]:
        d = size(sites)
        return {LOC: np.zeros(d), LOG_DIAG: np.full(d, np.log(INIT_SCALE)), TRIL: np.zeros((d, d))}

    def distributions(
        self, phi: Mapping[str, Any], sites: tuple[Site, ...], data: Mapping[str, Any], ops: ArrayOps
    ) -> JointQ:
        d = size(sites)
        strict_lower, eye = ops.asarray(np.tril(np.ones((d, d)), -1)), ops.asarray(np.eye(d))
        scale_tril = phi[TRIL] * strict_lower + eye * ops.exp(phi[LOG_DIAG])
        return JointQ(ops.dist.MultivariateNormal(phi[LOC], scale_tril=scale_tril), sites, ops)
