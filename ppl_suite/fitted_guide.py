"""A fitted guide in backend-neutral form, rendered in torch for the estimators.

Whichever backend fitted it (Pyro, NumPyro, hand-rolled), a guide is its family name and its
parameters phi as NumPy arrays; here it becomes batched ``sample`` and ``log_density`` functions over
constrained latents, one call per batch, in float64.

The rendering uses the same guide-family code as the Pyro backend (``guides.torch_ops``). Torch runs
these few vectorized operations eagerly with no compilation; JAX compiles every eager operation for
each new shape, which on the shipped models cost more than the estimators' arithmetic itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pyro
import torch

from ppl_suite import guides
from ppl_suite.backends.pyro import as_torch
from ppl_suite.problem import Problem
from ppl_suite.spec import Latents


@dataclass(frozen=True)
class FittedGuide:
    problem: Problem
    family: str
    phi: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        expected = guides.get(self.family).init_params(
            self.problem.sites, self.problem.data, self.problem.params
        )
        wrong = sorted(
            name
            for name in set(expected) | set(self.phi)
            if name not in self.phi
            or name not in expected
            or np.shape(self.phi[name]) != expected[name].shape
        )
        if wrong:
            raise ValueError(
                f"parameters {wrong} do not fit guide {self.family!r} of model "
                f"{self.problem.spec.name!r} (expected {sorted(expected)} with their shapes)"
            )

    @cached_property
    def distributions(self) -> dict[str, Any]:
        """q(z_site) per site as Pyro (torch) distributions; argument checks off, as in training."""
        with pyro.validation_enabled(False):
            return guides.get(self.family).distributions(
                as_torch(self.phi), self.problem.sites, as_torch(self.problem.data), guides.torch_ops()
            )

    def sample(self, seed: int, n: int) -> Latents:
        """n independent draws z ~ q, each site an array of shape (n, *event_shape); the same seed
        gives the same draws (torch's global generator is forked, seeded and restored)."""
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            return {name: q.sample((n,)).numpy() for name, q in self.distributions.items()}

    def log_density(self, latents: Latents) -> np.ndarray:
        """log q(z) for a batch of latents, shape (n,)."""
        with torch.no_grad():
            return sum(
                q.log_prob(torch.as_tensor(latents[name])) for name, q in self.distributions.items()
            ).numpy()
