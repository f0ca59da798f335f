"""Bayesian linear regression with known noise, called with positional arguments as in NumPyro's
examples: ``model(X, y)``. Conjugate Gaussian, so log p(y | X) has a closed form:
y ~ Normal(0, PRIOR_SCALE^2 X X^T + NOISE^2 I)."""

import numpy as np
import numpyro
import numpyro.distributions as dist
from sizes import options

import ppl_suite

PRIOR_SCALE, NOISE = 1.0, 0.5
rng = np.random.default_rng(1)
X = np.column_stack([np.ones(30), rng.normal(size=(30, 2))])
y = X @ np.array([0.5, -1.0, 2.0]) + NOISE * rng.normal(size=30)


def model(X, y=None):
    w = numpyro.sample("w", dist.Normal(0.0, PRIOR_SCALE).expand([X.shape[1]]).to_event(1))
    numpyro.sample("y", dist.Normal(X @ w, NOISE).to_event(1), obs=y)


result = ppl_suite.check(model, args=(X, y), **options())
print(result.table.drop(columns="key").to_string())
