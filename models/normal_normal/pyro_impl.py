"""Normal-Normal in Pyro (see spec.py for the maths)."""

import pyro
import pyro.distributions as dist


def model(data, params):
    mu = pyro.sample("mu", dist.Normal(params["prior_loc"], params["prior_scale"]))
    with pyro.plate("data", data["x"].shape[0]):
        pyro.sample("x", dist.Normal(mu, params["noise_scale"]), obs=data["x"])
