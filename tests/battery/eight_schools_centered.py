"""Eight schools in the centered form, as NumPyro's getting-started page writes it."""

import numpy as np
import numpyro
import numpyro.distributions as dist
from sizes import options

import ppl_suite

J = 8
y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
sigma = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def eight_schools(J, sigma, y=None):
    mu = numpyro.sample("mu", dist.Normal(0, 5))
    tau = numpyro.sample("tau", dist.HalfCauchy(5))
    with numpyro.plate("J", J):
        theta = numpyro.sample("theta", dist.Normal(mu, tau))
        numpyro.sample("obs", dist.Normal(theta, sigma), obs=y)


result = ppl_suite.check(eight_schools, args=(J, sigma), kwargs={"y": y}, **options())
print(result.table.drop(columns="key").to_string())
