"""Robust linear regression in NumPyro (see spec.py for the maths)."""

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist


def model(data, params):
    X = data["X"]
    beta = numpyro.sample("beta", dist.Normal(jnp.zeros(X.shape[-1]), params["prior_scale"]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(params["scale_prior_scale"]))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.StudentT(params["nu"], X @ beta, sigma), obs=data["y"])
