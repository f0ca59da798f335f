"""Gamma-Poisson in Pyro (see spec.py for the maths)."""

import pyro
import pyro.distributions as dist


def model(data, params):
    lam = pyro.sample("lambda", dist.Gamma(params["prior_concentration"], params["prior_rate"]))
    with pyro.plate("data", data["x"].shape[0]):
        pyro.sample("x", dist.Poisson(lam), obs=data["x"])
