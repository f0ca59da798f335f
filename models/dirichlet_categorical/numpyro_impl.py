"""Dirichlet-Categorical in NumPyro (see spec.py for the maths)."""

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist


def model(data, params):
    pi = numpyro.sample("pi", dist.Dirichlet(jnp.full(int(params["k"]), float(params["alpha"]))))
    with numpyro.plate("data", data["x"].shape[0]):
        numpyro.sample("x", dist.Categorical(probs=pi), obs=data["x"])
