"""Eight schools, non-centered, in Pyro (see spec.py for the maths)."""

import pyro
import pyro.distributions as dist


def model(data, params):
    y, sigma = data["y"], data["sigma"]
    mu = pyro.sample("mu", dist.Normal(0.0, params["mu_prior_scale"]))
    tau = pyro.sample("tau", dist.HalfCauchy(params["tau_prior_scale"]))
    eta = pyro.sample("eta", dist.Normal(0.0, 1.0).expand((y.shape[-1],)).to_event(1))
    # mu and tau may carry batch axes (vectorized particles): the school axis is appended to them
    theta = pyro.deterministic("theta", mu[..., None] + tau[..., None] * eta, event_dim=1)
    pyro.sample("y", dist.Normal(theta, sigma).to_event(1), obs=y)
