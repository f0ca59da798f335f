"""A fitted guide as a GuideDensity, whichever backend fitted it, rendered in torch.

Whichever backend fitted it (Pyro, NumPyro, hand-rolled), a guide is its family name and its
parameters phi as NumPy arrays; here it becomes batched ``sample`` and ``log_q`` functions over
constrained latents, one call per batch, in float64, and a closed-form ``kl_to`` a posterior that
factors over sites:

    KL(q || p) = sum over sites of KL(q_site || p_site)      (q and p both factor over the sites)

with each term from Pyro's KL registry (torch's, extended by ``pyro.distributions``). A family that
correlates sites (``guides.joint.JointQ``) draws u ~ q_u and maps it to the sites; its log q(z) is
log q_u(T^-1(z)) - sum_site log |det dT_site/du_site|, and its closed-form KL is the Gaussian one over
every coordinate where q_u is Gaussian, every site real (u = z) and the posterior's factors Gaussian:

    KL(N(m_q, S_q) || N(m_p, S_p)) = 0.5 (tr(S_p^-1 S_q) + (m_p - m_q)^T S_p^-1 (m_p - m_q) - d
                                          + log det S_p - log det S_q)

(torch's registered MultivariateNormal pair), S_p block-diagonal over the sites.

A library autoguide (``guides.autoguides``) is rendered by the library that fitted it: every method
passes to its ``AutoGuideDensity``.

The rendering uses the same guide-family code as the Pyro backend (``guides.torch_ops``). Torch runs
these few vectorized operations eagerly with no compilation; JAX compiles every eager operation for
each new shape, which on the shipped models cost more than the estimators' arithmetic itself.
Sampling forks torch's global generator and seeds the fork, so draws depend on the seed alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pyro
import pyro.distributions as dist  # importing Pyro's distributions adds its KL rules to torch's
import torch
from torch.distributions import kl_divergence

from ppl_suite import guides
from ppl_suite.backends.pyro import as_torch
from ppl_suite.guides.joint import JointQ
from ppl_suite.problem import Problem
from ppl_suite.spec import DistSpec, Latents
from ppl_suite.targets.autoguide_density import AutoGuideDensity


@dataclass(frozen=True)
class FittedGuide:
    """q_phi of guide family ``family`` with parameters ``params`` (phi) on ``problem``'s sites."""

    problem: Problem
    family: str
    params: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        if self.autoguide is not None:
            return  # checked by AutoGuideDensity
        expected = guides.get(self.family).init_params(
            self.problem.sites, self.problem.data, self.problem.params
        )
        wrong = sorted(
            name
            for name in set(expected) | set(self.params)
            if name not in self.params
            or name not in expected
            or np.shape(self.params[name]) != expected[name].shape
        )
        if wrong:
            raise ValueError(
                f"parameters {wrong} do not fit guide {self.family!r} of model "
                f"{self.problem.spec.name!r} (expected {sorted(expected)} with their shapes)"
            )

    @cached_property
    def autoguide(self) -> AutoGuideDensity | None:
        """The density of a library autoguide family, None for the suite's own families."""
        if not guides.is_autoguide(self.family):
            return None
        return AutoGuideDensity(self.problem, self.family, self.params)

    @cached_property
    def distributions(self) -> dict[str, Any] | JointQ:
        """q(z_site) per site as Pyro (torch) distributions, or the family's ``JointQ``; argument
        checks off, as in training."""
        with pyro.validation_enabled(False):
            return guides.get(self.family).distributions(
                as_torch(self.params), self.problem.sites, as_torch(self.problem.data), guides.torch_ops()
            )

    @property
    def samples_nothing(self) -> bool:
        """True when q has no sampled site (the library summed every latent out by enumeration)."""
        if self.autoguide is not None:
            return self.autoguide.samples_nothing
        return not isinstance(self.distributions, JointQ) and not self.distributions

    def sample(self, seed: int, n: int) -> Latents:
        """n independent draws z ~ q, each site an array of shape (n, *event_shape); the same seed
        gives the same draws (torch's global generator is forked, seeded and restored)."""
        if self.autoguide is not None:
            return self.autoguide.sample(seed, n)
        q = self.distributions
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            if isinstance(q, JointQ):
                return {name: site.value.numpy() for name, site in q.split(q.u.sample((n,))).items()}
            return {name: q_site.sample((n,)).numpy() for name, q_site in q.items()}

    def log_q(self, latents: Latents) -> np.ndarray:
        """log q(z) for a batch of latents, shape (n,)."""
        if self.autoguide is not None:
            return self.autoguide.log_q(latents)
        q = self.distributions
        with torch.no_grad():
            if isinstance(q, JointQ):
                z = {s.name: torch.as_tensor(latents[s.name], dtype=torch.float64) for s in q.sites}
                n = next(iter(z.values())).shape[0]
                return q.log_q_at(q.unconstrain(z, n)).numpy()
            return sum(q_site.log_prob(torch.as_tensor(latents[name])) for name, q_site in q.items()).numpy()

    def kl_to(self, factors: dict[str, DistSpec]) -> float | None:
        """KL(q || p) in closed form, p = prod_sites factors[site]; None when some site has no factor
        or Pyro's registry knows no closed form for the pair."""
        if self.autoguide is not None:
            return self.autoguide.kl_to(factors)
        q = self.distributions
        if any(name not in factors for name in ([s.name for s in q.sites] if isinstance(q, JointQ) else q)):
            return None
        p = {name: _torch_distribution(spec) for name, spec in factors.items()}
        with torch.no_grad():
            if isinstance(q, JointQ):
                return _joint_gaussian_kl(q, p)
            try:
                return sum(float(torch.sum(kl_divergence(q_site, p[name]))) for name, q_site in q.items())
            except NotImplementedError:
                return None


def _torch_distribution(spec: DistSpec) -> Any:
    """The Pyro distribution of a posterior factor, its site's whole shape as event."""
    arguments = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in spec.params.items()}
    return getattr(dist, spec.family)(**arguments).to_event(spec.event_dims)


def _joint_gaussian_kl(q: JointQ, p: dict[str, Any]) -> float | None:
    """KL(q_u || prod_site p_site) as one Gaussian pair over every coordinate (module docstring), or
    None unless q_u is Gaussian, every site real and every factor Normal or MultivariateNormal."""
    means, covariances = [], []
    for site in q.sites:
        base = p[site.name].base_dist if isinstance(p[site.name], dist.Independent) else p[site.name]
        if site.support != "real" or not isinstance(base, dist.Normal | dist.MultivariateNormal):
            return None
        if isinstance(base, dist.Normal):
            means.append(base.mean.expand(site.shape).reshape(-1))
            covariances.append(torch.diag(base.variance.expand(site.shape).reshape(-1)))
        else:  # a batch of MultivariateNormals over the site's last axis: one block each
            batch = base.expand(site.shape[:-1]) if site.shape[:-1] else base
            means.append(batch.mean.reshape(-1))
            covariances.extend(batch.covariance_matrix.reshape(-1, *base.event_shape * 2))
    if not isinstance(q.u, dist.MultivariateNormal):
        return None
    p_u = dist.MultivariateNormal(torch.cat(means), covariance_matrix=torch.block_diag(*covariances))
    return float(kl_divergence(q.u, p_u))
