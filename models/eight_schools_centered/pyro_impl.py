"""Eight schools, centered, in Pyro (see spec.py for the maths)."""

import pyro
import pyro.distributions as dist


def model(data, params):
    y, sigma = data["y"], data["sigma"]
    mu = pyro.sample("mu", dist.Normal(0.0, params["mu_prior_scale"]))
    tau = pyro.sample("tau", dist.HalfCauchy(params["tau_prior_scale"]))
    # theta is one vector site; mu and tau may carry batch axes (vectorized particles), so the school
    # axis is appended to them rather than taken from a plate.
    prior = dist.Normal(mu[..., None], tau[..., None]).expand((*mu.shape, y.shape[-1]))
    theta = pyro.sample("theta", prior.to_event(1))
    pyro.sample("y", dist.Normal(theta, sigma).to_event(1), obs=y)
