"""A regression whose mean is kept as a deterministic site, as NumPyro's examples do with
``numpyro.deterministic``: the site is recorded, not inferred."""

import numpy as np
import numpyro
import numpyro.distributions as dist
from sizes import options

import ppl_suite

rng = np.random.default_rng(2)
x = rng.normal(size=25)
y = 0.3 + 1.5 * x + rng.normal(size=25)


def model(x, y=None):
    alpha = numpyro.sample("alpha", dist.Normal(0.0, 2.0))
    beta = numpyro.sample("beta", dist.Normal(0.0, 2.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0))
    mu = numpyro.deterministic("mu", alpha + beta * x)
    numpyro.sample("y", dist.Normal(mu, sigma).to_event(1), obs=y)


result = ppl_suite.check(model, kwargs={"x": x, "y": y}, **options())
print(result.table.drop(columns="key").to_string())
