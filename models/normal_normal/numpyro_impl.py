"""Normal-Normal in NumPyro (see spec.py for the maths)."""

import numpyro
import numpyro.distributions as dist


def model(data, params):
    mu = numpyro.sample("mu", dist.Normal(params["prior_loc"], params["prior_scale"]))
    with numpyro.plate("data", data["x"].shape[0]):
        numpyro.sample("x", dist.Normal(mu, params["noise_scale"]), obs=data["x"])
