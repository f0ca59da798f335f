"""A fitted library autoguide as a GuideDensity: q_u from the library that fitted it, each site's
bijection in torch.

An autoguide is a distribution q_u on the packed unconstrained vector u (``guides.autoguides``); the
latents are z_site = T_site(u_site), T_site the bijection of the site's support, so (Kucukelbir et al.,
2017, "Automatic differentiation variational inference")

    log q(z) = log q_u(u) - sum_sites log |det dT_site/du_site|,   u = T^-1(z).

q_u is rebuilt by the library that fitted the guide (``backends.pyro.autoguide_posterior``,
``backends.numpyro.autoguide_posterior``) from the family and phi alone, so a stored fit can be
evaluated again. The transforms are torch's, the same functions of u as the libraries' (identity, exp,
sigmoid, stick-breaking); the tests check log q against each library's own density of its guide.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch
from torch.distributions import biject_to, constraints

from ppl_suite import guides
from ppl_suite.guides.autoguides import FlatPosterior, library_of
from ppl_suite.guides.base import unconstrained_shape
from ppl_suite.problem import Problem
from ppl_suite.spec import DistSpec, Latents, Site


@dataclass(frozen=True)
class AutoGuideDensity:
    """q of the autoguide family ``family`` with the library's fitted parameters ``params`` (phi)."""

    problem: Problem
    family: str
    params: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        if not guides.is_autoguide(self.family):
            raise ValueError(f"guide family {self.family!r} is not a library autoguide")
        library_of(self.params)

    @cached_property
    def posterior(self) -> FlatPosterior:
        """q_u, rebuilt by the library named in phi."""
        backend = importlib.import_module(f"ppl_suite.backends.{library_of(self.params)}")
        return backend.autoguide_posterior(self.problem, guides.get(self.family), dict(self.params))

    @cached_property
    def _layout(self) -> list[tuple[Site, Any, slice]]:
        """Each site with its bijection T and its slice of u, in the library's packing order."""
        by_name = {site.name: site for site in self.problem.sites}
        layout, start = [], 0
        for name in self.posterior.order:
            site = by_name[name]
            size = int(np.prod(unconstrained_shape(site), dtype=int))
            layout.append((site, biject_to(getattr(constraints, site.support)), slice(start, start + size)))
            start += size
        return layout

    @property
    def samples_nothing(self) -> bool:
        return False

    def sample(self, seed: int, n: int) -> Latents:
        """n independent draws z = T(u), u ~ q_u; the same seed gives the same draws."""
        u = torch.as_tensor(self.posterior.sample(seed, n))
        with torch.no_grad():
            return {
                site.name: transform(u[:, part].reshape(n, *unconstrained_shape(site))).numpy()
                for site, transform, part in self._layout
            }

    def log_q(self, latents: Latents) -> np.ndarray:
        """log q(z) = log q_u(T^-1(z)) - sum_sites log|det dT/du| for a batch of latents, shape (n,)."""
        parts, log_det = [], 0.0
        with torch.no_grad():
            for site, transform, _ in self._layout:
                z = torch.as_tensor(np.asarray(latents[site.name], dtype=float))
                u = transform.inv(z)
                log_det = log_det + transform.log_abs_det_jacobian(u, z).reshape(len(z), -1).sum(1)
                parts.append(u.reshape(len(z), -1))
            u = torch.cat(parts, dim=1)
        return self.posterior.log_prob(u.numpy()) - np.asarray(log_det)

    def kl_to(self, factors: dict[str, DistSpec]) -> float | None:
        """None: q_u couples the sites, so no per-site closed form applies (KL by Monte Carlo)."""
        return None
