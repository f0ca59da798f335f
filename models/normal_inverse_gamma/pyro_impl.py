"""Normal-inverse-gamma in Pyro (see spec.py for the maths)."""

import pyro
import pyro.distributions as dist


def model(data, params):
    sigma2 = pyro.sample("sigma2", dist.InverseGamma(params["prior_concentration"], params["prior_rate"]))
    mu = pyro.sample("mu", dist.Normal(params["prior_loc"], (sigma2 / params["prior_kappa"]).sqrt()))
    with pyro.plate("data", data["x"].shape[0]):
        pyro.sample("x", dist.Normal(mu, sigma2.sqrt()), obs=data["x"])
