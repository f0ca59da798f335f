"""A fitted guide in backend-neutral form, rendered in JAX for the estimators.

Whichever backend fitted it (Pyro, NumPyro, hand-rolled), a guide is its family name and its
parameters phi as NumPy arrays; here it becomes batched ``sample`` and ``log_density`` functions over
constrained latents, one call per batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ppl_suite import guides
from ppl_suite.numerics import enable_float64
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
        enable_float64()
        ops = guides.jax_ops()
        phi = {k: jnp.asarray(v) for k, v in self.phi.items()}
        data = {k: jnp.asarray(v) for k, v in self.problem.data.items()}
        return guides.get(self.family).distributions(phi, self.problem.sites, data, ops)

    def sample(self, seed: int, n: int) -> Latents:
        """n independent draws z ~ q, each site an array of shape (n, *event_shape)."""
        keys = jax.random.split(jax.random.PRNGKey(seed), len(self.distributions))
        return {
            name: np.asarray(q.sample(key, (n,)))
            for (name, q), key in zip(self.distributions.items(), keys, strict=True)
        }

    def log_density(self, latents: Latents) -> np.ndarray:
        """log q(z) for a batch of latents, shape (n,)."""
        return np.asarray(
            sum(q.log_prob(jnp.asarray(latents[name])) for name, q in self.distributions.items())
        )
