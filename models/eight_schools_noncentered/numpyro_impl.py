"""Eight schools, non-centered, in NumPyro (see spec.py for the maths)."""

import numpyro
import numpyro.distributions as dist


def model(data, params):
    y, sigma = data["y"], data["sigma"]
    mu = numpyro.sample("mu", dist.Normal(0.0, params["mu_prior_scale"]))
    tau = numpyro.sample("tau", dist.HalfCauchy(params["tau_prior_scale"]))
    eta = numpyro.sample("eta", dist.Normal(0.0, 1.0).expand((y.shape[-1],)).to_event(1))
    theta = numpyro.deterministic("theta", mu[..., None] + tau[..., None] * eta)
    numpyro.sample("y", dist.Normal(theta, sigma).to_event(1), obs=y)
