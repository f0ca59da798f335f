"""Probabilistic PCA in NumPyro (see spec.py for the maths, and for why there is no plate over N)."""

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist


def model(data, params):
    W = numpyro.param("W", jnp.asarray(params["W"], dtype=jnp.float64))
    mu = numpyro.param("mu", jnp.asarray(params["mu"], dtype=jnp.float64))
    log_sigma = numpyro.param("log_sigma", jnp.asarray(params["log_sigma"], dtype=jnp.float64))
    x = data["x"]
    z = numpyro.sample("z", dist.Normal(jnp.zeros((x.shape[0], W.shape[1])), 1.0).to_event(2))
    numpyro.sample("x", dist.Normal(z @ W.T + mu, jnp.exp(log_sigma)).to_event(2), obs=x)
