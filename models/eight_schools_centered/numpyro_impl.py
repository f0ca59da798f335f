"""Eight schools, centered, in NumPyro (see spec.py for the maths)."""

import numpyro
import numpyro.distributions as dist


def model(data, params):
    y, sigma = data["y"], data["sigma"]
    mu = numpyro.sample("mu", dist.Normal(0.0, params["mu_prior_scale"]))
    tau = numpyro.sample("tau", dist.HalfCauchy(params["tau_prior_scale"]))
    prior = dist.Normal(mu[..., None], tau[..., None]).expand((*mu.shape, y.shape[-1]))
    theta = numpyro.sample("theta", prior.to_event(1))
    numpyro.sample("y", dist.Normal(theta, sigma).to_event(1), obs=y)
