"""Gaussian mixture in NumPyro (see spec.py for the maths); z is enumerable under TraceEnum_ELBO."""

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist


def model(data, params):
    logits = numpyro.param("logits", jnp.asarray(params["logits"], dtype=jnp.float64))
    means = jnp.asarray(params["means"], dtype=jnp.float64)
    with numpyro.plate("data", data["x"].shape[0]):
        z = numpyro.sample("z", dist.Categorical(logits=logits), infer={"enumerate": "parallel"})
        numpyro.sample("x", dist.Normal(means[z], params["scale"]), obs=data["x"])
