"""The densities the VAE evaluation reads: a standard Normal prior over z in R^d, a decoder's
log-likelihood, and a diagonal Gaussian q(z | x), all pure JAX functions of arrays.

    p(z) = N(z; 0, I_d)        log p(x | z) = decoder(theta, z, x)        q(z | x) = N(z; loc, diag(scale^2))

The estimators of this package take a ``LatentModel`` and the decoder's weights theta (a dict of
arrays), and the encoder's output (loc, scale) per image: they know no PPL and no network.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

Params = dict[str, Any]
LogLikelihood = Callable[
    [Params, jax.Array, jax.Array], jax.Array
]  # (theta, z (..., d), x (..., D)) -> (...)
Simulator = Callable[
    [Params, jax.Array, jax.Array], jax.Array
]  # (theta, key, z (n, d)) -> x (n, D) ~ p(x | z)

LOG_2PI = math.log(2.0 * math.pi)


def log_prior(z: jax.Array) -> jax.Array:
    """log N(z; 0, I), summed over the last axis."""
    return -0.5 * jnp.sum(z**2 + LOG_2PI, axis=-1)


def log_normal_diag(z: jax.Array, loc: jax.Array, scale: jax.Array) -> jax.Array:
    """log N(z; loc, diag(scale^2)), summed over the last axis."""
    return -0.5 * jnp.sum(((z - loc) / scale) ** 2 + LOG_2PI, axis=-1) - jnp.sum(jnp.log(scale), axis=-1)


@dataclass(frozen=True)
class LatentModel:
    """A latent-variable model p(z) p_theta(x | z) with p(z) = N(0, I_dim), and a sampler of x | z."""

    dim: int
    log_likelihood: LogLikelihood
    simulate: Simulator

    def log_joint(self, theta: Params, z: jax.Array, x: jax.Array) -> jax.Array:
        """log p(z) + log p_theta(x | z)."""
        return log_prior(z) + self.log_likelihood(theta, z, x)


def as_jax(weights: dict[str, Any], names: tuple[str, ...] | None = None) -> Params:
    """The named weights (all when ``names`` is None) as float64 JAX arrays."""
    chosen = weights if names is None else {name: weights[name] for name in names}
    return {name: jnp.asarray(value, dtype=jnp.float64) for name, value in chosen.items()}
