"""Hierarchical Poisson regression with varying intercepts, centered, in Pyro (the same model as
numpyro_model.py)."""

import pyro
import pyro.distributions as dist
import torch


def model(data):
    sites = data["sites"]  # a number: a plate size must not depend on the values of traced arrays
    mu = pyro.sample("mu", dist.Normal(0.0, 2.0))
    tau = pyro.sample("tau", dist.HalfNormal(1.0))
    # the site intercepts as one latent site (an event of length J), not a plate of scalar sites;
    # mu and tau may carry batch axes on their left (Pyro's vectorized particles): index from the right
    prior = dist.Normal(mu[..., None], tau[..., None]).expand((*mu.shape, sites))
    theta = pyro.sample("theta", prior.to_event(1))
    rate = data["exposure"] * torch.exp(theta[..., data["site"]])
    # the counts as one event, so that batch axes of the latents (particles) stay on the left
    pyro.sample("y", dist.Poisson(rate).to_event(1), obs=data["y"])
