"""Normal-inverse-gamma in NumPyro (see spec.py for the maths)."""

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist


def model(data, params):
    sigma2 = numpyro.sample("sigma2", dist.InverseGamma(params["prior_concentration"], params["prior_rate"]))
    mu = numpyro.sample("mu", dist.Normal(params["prior_loc"], jnp.sqrt(sigma2 / params["prior_kappa"])))
    with numpyro.plate("data", data["x"].shape[0]):
        numpyro.sample("x", dist.Normal(mu, jnp.sqrt(sigma2)), obs=data["x"])
