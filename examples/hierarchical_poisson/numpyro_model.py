"""Hierarchical Poisson regression with varying intercepts (centered: about 14 counts per site make
the data informative enough that NUTS meets the reference's gates without divergences), in NumPyro.

    mu ~ N(0, 2^2), tau ~ HalfNormal(1), theta_j ~ N(mu, tau^2)       j = 1..J sites
    y_i ~ Poisson(exposure_i exp(theta_{site_i}))
"""

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist


def model(data):
    sites = data["sites"]  # a number: a plate size must not depend on the values of traced arrays
    mu = numpyro.sample("mu", dist.Normal(0.0, 2.0))
    tau = numpyro.sample("tau", dist.HalfNormal(1.0))
    # the site intercepts as one latent site (an event of length J), not a plate of scalar sites
    theta = numpyro.sample("theta", dist.Normal(mu, tau).expand([sites]).to_event(1))
    rate = data["exposure"] * jnp.exp(theta[..., data["site"]])
    # the counts as one event, so that batch axes of the latents (particles) stay on the left
    numpyro.sample("y", dist.Poisson(rate).to_event(1), obs=data["y"])
