"""The prior's own family, with free parameters: the exact family for conjugate models.

q(z_site) = F_site(theta_site), where F_site is the class of the site's declared prior. Parameters
are stored in a well-conditioned unconstrained form, so one Adam setting fits every family (storing
plain log-parameters leaves Gamma and Beta optima at the bottom of long, narrow valleys):

    Normal(loc, scale)                   phi = (loc, log scale)
    Gamma(concentration, rate)           phi = (log concentration, log(rate / concentration))
    InverseGamma(concentration, rate)    phi = (log concentration, log(rate / concentration))
    Beta(concentration1, concentration0) phi = (logit mean, log total),
                                         mean = c1 / (c1 + c0), total = c1 + c0
    any other family (Dirichlet...)      phi = log of each (positive) argument

so log(rate / concentration) is minus the log mean of a Gamma (the log mean of 1/z for an
InverseGamma). phi_0 is the prior's own parameters, so optimization starts from q = prior.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ppl_suite.guides.base import ArrayOps
from ppl_suite.spec import Data, Params, Site

SHAPE_RATE = {"Gamma", "InverseGamma"}


def to_phi(family: str, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Distribution arguments -> the stored unconstrained parameters (NumPy)."""
    p = {k: np.asarray(v, dtype=float) for k, v in params.items()}
    if family == "Normal":
        return {"loc": p["loc"], "log_scale": np.log(p["scale"])}
    if family in SHAPE_RATE:
        c = p["concentration"]
        return {"log_concentration": np.log(c), "log_rate_per_concentration": np.log(p["rate"] / c)}
    if family == "Beta":
        total = p["concentration1"] + p["concentration0"]
        return {"logit_mean": np.log(p["concentration1"] / p["concentration0"]), "log_total": np.log(total)}
    return {f"log_{k}": np.log(v) for k, v in p.items()}


def from_phi(family: str, phi: Mapping[str, Any], ops: ArrayOps, names: tuple[str, ...]) -> dict[str, Any]:
    """The stored parameters -> distribution arguments (in the backend's arrays, differentiably)."""
    if family == "Normal":
        return {"loc": phi["loc"], "scale": ops.exp(phi["log_scale"])}
    if family in SHAPE_RATE:
        c = ops.exp(phi["log_concentration"])
        return {"concentration": c, "rate": c * ops.exp(phi["log_rate_per_concentration"])}
    if family == "Beta":
        total, mean = ops.exp(phi["log_total"]), 1 / (1 + ops.exp(-phi["logit_mean"]))
        return {"concentration1": total * mean, "concentration0": total * (1 - mean)}
    return {k: ops.exp(phi[f"log_{k}"]) for k in names}


class Conjugate:
    name = "conjugate"
    description = "the prior's distribution family with free parameters, started at the prior"
    elbo = "trace"

    def unsupported(self, sites: tuple[Site, ...]) -> str | None:
        missing = [s.name for s in sites if s.prior is None]
        return f"sites {missing} declare no standard prior family" if missing else None

    def init_params(self, sites: tuple[Site, ...], data: Data, params: Params) -> dict[str, np.ndarray]:
        phi = {}
        for site in sites:
            full = {
                k: np.broadcast_to(np.asarray(v, float), site.shape) for k, v in site.prior.params.items()
            }
            phi |= {f"{site.name}.{k}": v.copy() for k, v in to_phi(site.prior.family, full).items()}
        return phi

    def distributions(
        self, phi: Mapping[str, Any], sites: tuple[Site, ...], data: Mapping[str, Any], ops: ArrayOps
    ) -> dict[str, Any]:
        out = {}
        for site in sites:
            prefix = f"{site.name}."
            own = {k.removeprefix(prefix): v for k, v in phi.items() if k.startswith(prefix)}
            args = from_phi(site.prior.family, own, ops, tuple(site.prior.params))
            d = getattr(ops.dist, site.prior.family)(**args)
            out[site.name] = d.to_event(len(site.shape) - len(d.event_shape))
        return out
