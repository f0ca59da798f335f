"""A guide of one's own for the hierarchical Poisson example, in NumPyro: ``ppl-suite check ...
--guide examples/hierarchical_poisson/numpyro_guide.py:guide``.

The site intercepts regressed on the population parameters, which the mean-field family cannot hold
(full_rank, one Gaussian over (mu, log tau, theta), holds it among d(d + 1)/2 covariance parameters;
this guide has 4 J + 4 parameters):

    mu ~ N(m, s^2),  tau ~ LogNormal(l, r^2),
    theta_j | mu, tau ~ N(a_j + w_j mu + c_j log tau, b_j^2)          j = 1..J

With w = c = 0 it is the mean-field family (where it starts), so its best KL is at most mean_field's.
"""

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints


def guide(data):
    sites = data["sites"]
    positive = constraints.positive
    mu_loc = numpyro.param("mu_loc", 0.0)
    mu_scale = numpyro.param("mu_scale", 0.1, constraint=positive)
    log_tau_loc = numpyro.param("log_tau_loc", 0.0)
    log_tau_scale = numpyro.param("log_tau_scale", 0.1, constraint=positive)
    offset = numpyro.param("theta_offset", jnp.zeros(sites))
    on_mu = numpyro.param("theta_on_mu", jnp.zeros(sites))
    on_log_tau = numpyro.param("theta_on_log_tau", jnp.zeros(sites))
    scale = numpyro.param("theta_scale", jnp.full(sites, 0.1), constraint=positive)
    mu = numpyro.sample("mu", dist.Normal(mu_loc, mu_scale))
    tau = numpyro.sample("tau", dist.LogNormal(log_tau_loc, log_tau_scale))
    loc = offset + on_mu * mu[..., None] + on_log_tau * jnp.log(tau)[..., None]
    numpyro.sample("theta", dist.Normal(loc, scale).to_event(1))
