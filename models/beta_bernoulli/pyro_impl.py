"""Beta-Bernoulli in Pyro (see spec.py for the maths)."""

import pyro
import pyro.distributions as dist


def model(data, params):
    p = pyro.sample("p", dist.Beta(params["prior_concentration1"], params["prior_concentration0"]))
    with pyro.plate("data", data["x"].shape[0]):
        pyro.sample("x", dist.Bernoulli(p), obs=data["x"])
