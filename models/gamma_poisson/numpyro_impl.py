"""Gamma-Poisson in NumPyro (see spec.py for the maths)."""

import numpyro
import numpyro.distributions as dist


def model(data, params):
    lam = numpyro.sample("lambda", dist.Gamma(params["prior_concentration"], params["prior_rate"]))
    with numpyro.plate("data", data["x"].shape[0]):
        numpyro.sample("x", dist.Poisson(lam), obs=data["x"])
