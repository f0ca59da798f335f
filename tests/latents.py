"""Random latent values for contract tests, in constrained space, with their unconstrained pre-images."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to

from ppl_suite.guides.base import unconstrained_shape
from ppl_suite.spec import Latents, Site


def transform(site: Site):
    return biject_to(getattr(constraints, site.support))


def random_latents(sites: tuple[Site, ...], rng: np.random.Generator, n: int, spread: float = 1.0) -> Latents:
    """n draws: unconstrained N(0, spread^2) pushed onto each site's support; integers uniform."""
    out = {}
    for site in sites:
        if site.support == "integer":
            out[site.name] = rng.integers(0, site.cardinality, size=(n, *site.shape))
        else:
            u = rng.normal(0.0, spread, size=(n, *unconstrained_shape(site)))
            out[site.name] = np.asarray(transform(site)(jnp.asarray(u)))
    return out


def take(latents: Latents, i: int) -> Latents:
    return {name: value[i] for name, value in latents.items()}
