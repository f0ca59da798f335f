"""The prior's own family, with free parameters: the exact family for conjugate models.

q(z_site) = F_site(theta_site), where F_site is the class of the site's declared prior
(Beta, Gamma, Dirichlet, Normal...). An argument named ``loc`` is real and stored as it is; every
other argument (scale, rate, concentration) is positive and stored as its log (theta = exp(phi)).
phi_0 is the prior's own parameters, so optimization starts from q = prior.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ppl_suite.guides.base import ArrayOps
from ppl_suite.spec import Data, Params, Site


class Conjugate:
    name = "conjugate"
    description = "the prior's distribution family with free parameters, started at the prior"

    def unsupported(self, sites: tuple[Site, ...]) -> str | None:
        missing = [s.name for s in sites if s.prior is None]
        return f"sites {missing} declare no standard prior family" if missing else None

    def init_params(self, sites: tuple[Site, ...], data: Data, params: Params) -> dict[str, np.ndarray]:
        phi = {}
        for site in sites:
            for arg, value in site.prior.params.items():
                value = np.broadcast_to(np.asarray(value, dtype=float), site.shape).copy()
                positive = _is_positive(arg)
                phi[f"{site.name}.{'log_' if positive else ''}{arg}"] = np.log(value) if positive else value
        return phi

    def distributions(
        self, phi: Mapping[str, Any], sites: tuple[Site, ...], data: Mapping[str, Any], ops: ArrayOps
    ) -> dict[str, Any]:
        out = {}
        for site in sites:
            args = {}
            for arg in site.prior.params:
                if _is_positive(arg):
                    args[arg] = ops.exp(phi[f"{site.name}.log_{arg}"])
                else:
                    args[arg] = phi[f"{site.name}.{arg}"]
            d = getattr(ops.dist, site.prior.family)(**args)
            out[site.name] = d.to_event(len(site.shape) - len(d.event_shape))
        return out


def _is_positive(arg: str) -> bool:
    return arg != "loc"
