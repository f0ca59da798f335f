"""The varying-intercept regression in Pyro, indexing the group intercepts from the left
(``a[group]``) as Pyro's tutorials do, checked with its NumPyro twin: the NUTS reference (and so
log p(x) and KL) runs on NumPyro, and check compares the two versions' log joints at its draws."""

import numpy as np
import numpyro
import numpyro.distributions as ndist
import pyro
import pyro.distributions as dist
import torch
from sizes import options

import ppl_suite

rng = np.random.default_rng(3)
n_groups, n = 6, 60
group = rng.integers(0, n_groups, n)
x = rng.normal(size=n)
y = 1.0 + 0.5 * x + rng.normal(0.0, 0.7, n_groups)[group] + rng.normal(size=n)


def model(x, group, n_groups, y=None):
    mu_a = pyro.sample("mu_a", dist.Normal(0.0, 5.0))
    sigma_a = pyro.sample("sigma_a", dist.HalfNormal(2.0))
    b = pyro.sample("b", dist.Normal(0.0, 5.0))
    with pyro.plate("groups", n_groups):
        a = pyro.sample("a", dist.Normal(mu_a, sigma_a))
    sigma = pyro.sample("sigma", dist.HalfNormal(2.0))
    with pyro.plate("data", len(x)):
        pyro.sample("y", dist.Normal(a[group] + b * x, sigma), obs=y)


def numpyro_model(x, group, n_groups, y=None):
    mu_a = numpyro.sample("mu_a", ndist.Normal(0.0, 5.0))
    sigma_a = numpyro.sample("sigma_a", ndist.HalfNormal(2.0))
    b = numpyro.sample("b", ndist.Normal(0.0, 5.0))
    with numpyro.plate("groups", n_groups):
        a = numpyro.sample("a", ndist.Normal(mu_a, sigma_a))
    sigma = numpyro.sample("sigma", ndist.HalfNormal(2.0))
    with numpyro.plate("data", len(x)):
        numpyro.sample("y", ndist.Normal(a[group] + b * x, sigma), obs=y)


arguments = (torch.tensor(x), torch.tensor(group), n_groups)
result = ppl_suite.check(pyro=model, numpyro=numpyro_model, args=arguments, kwargs={"y": y}, **options())
print(result.table.drop(columns="key").to_string())
