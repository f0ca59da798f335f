"""Varying-intercept regression written as in NumPyro's tutorials: group intercepts in a plate,
``y=None`` for prediction."""

import numpy as np
import numpyro
import numpyro.distributions as dist
from sizes import options

import ppl_suite

rng = np.random.default_rng(3)
n_groups, n = 6, 60
group = rng.integers(0, n_groups, n)
x = rng.normal(size=n)
y = 1.0 + 0.5 * x + rng.normal(0.0, 0.7, n_groups)[group] + rng.normal(size=n)


def model(x, group, n_groups, y=None):
    mu_a = numpyro.sample("mu_a", dist.Normal(0.0, 5.0))
    sigma_a = numpyro.sample("sigma_a", dist.HalfNormal(2.0))
    b = numpyro.sample("b", dist.Normal(0.0, 5.0))
    with numpyro.plate("groups", n_groups):
        a = numpyro.sample("a", dist.Normal(mu_a, sigma_a))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0))
    with numpyro.plate("data", len(x)):
        numpyro.sample("y", dist.Normal(a[group] + b * x, sigma), obs=y)


result = ppl_suite.check(model, args=(x, group, n_groups), kwargs={"y": y}, **options())
print(result.table.drop(columns="key").to_string())
