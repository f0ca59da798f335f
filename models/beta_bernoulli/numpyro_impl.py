"""Beta-Bernoulli in NumPyro (see spec.py for the maths)."""

import numpyro
import numpyro.distributions as dist


def model(data, params):
    p = numpyro.sample("p", dist.Beta(params["prior_concentration1"], params["prior_concentration0"]))
    with numpyro.plate("data", data["x"].shape[0]):
        numpyro.sample("x", dist.Bernoulli(p), obs=data["x"])
