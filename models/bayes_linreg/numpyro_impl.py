"""Bayesian linear regression in NumPyro (see spec.py for the maths)."""

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist


def model(data, params):
    X = data["X"]
    w = numpyro.sample("w", dist.Normal(jnp.zeros(X.shape[-1]), params["prior_scale"]).to_event(1))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Normal(X @ w, params["noise_scale"]), obs=data["y"])
