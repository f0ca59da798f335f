"""A fitted guide as a GuideDensity, whichever backend fitted it, rendered in torch.

Whichever backend fitted it (Pyro, NumPyro, hand-rolled), a guide is its family name and its
parameters phi as NumPy arrays; here it becomes batched ``sample`` and ``log_q`` functions over
constrained latents, one call per batch, in float64, and a closed-form ``kl_to`` a posterior that
factors over sites:

    KL(q || p) = sum over sites of KL(q_site || p_site)      (q and p both factor over the sites)

with each term from Pyro's KL registry (torch's, extended by ``pyro.distributions``).

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
    def distributions(self) -> dict[str, Any]:
        """q(z_site) per site as Pyro (torch) distributions; argument checks off, as in training."""
        with pyro.validation_enabled(False):
            return guides.get(self.family).distributions(
                as_torch(self.params), self.problem.sites, as_torch(self.problem.data), guides.torch_ops()
            )

    @property
    def samples_nothing(self) -> bool:
        """True when q has no sampled site (the library summed every latent out by enumeration)."""
        if self.autoguide is not None:
            return self.autoguide.samples_nothing
        return not self.distributions

    def sample(self, seed: int, n: int) -> Latents:
        """n independent draws z ~ q, each site an array of shape (n, *event_shape); the same seed
        gives the same draws (torch's global generator is forked, seeded and restored)."""
        if self.autoguide is not None:
            return self.autoguide.sample(seed, n)
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            return {name: q.sample((n,)).numpy() for name, q in self.distributions.items()}

    def log_q(self, latents: Latents) -> np.ndarray:
        """log q(z) for a batch of latents, shape (n,)."""
        if self.autoguide is not None:
            return self.autoguide.log_q(latents)
        with torch.no_grad():
            return sum(
                q.log_prob(torch.as_tensor(latents[name])) for name, q in self.distributions.items()
            ).numpy()

    def kl_to(self, factors: dict[str, DistSpec]) -> float | None:
        """KL(q || p) in closed form, p = prod_sites factors[site]; None when some site has no factor
        or Pyro's registry knows no closed form for the pair."""
        if self.autoguide is not None:
            return self.autoguide.kl_to(factors)
        total = 0.0
        with torch.no_grad():
            for name, q in self.distributions.items():
                if name not in factors:
                    return None
                spec = factors[name]
                p = getattr(dist, spec.family)(
                    **{k: torch.as_tensor(v, dtype=torch.float64) for k, v in spec.params.items()}
                )
                try:
                    total += float(torch.sum(kl_divergence(q, p.to_event(spec.event_dims))))
                except NotImplementedError:
                    return None
        return total
