"""The conjugate linear regression of ``glm_positional.py`` written in Pyro only, as Pyro's examples
write it: ``model(X, y)``, no NumPyro twin. Its NUTS reference and AIS log p(x) run on the Pyro
model's density (torch, through the suite's JAX bridge); log p(y | X) has the closed form
y ~ Normal(0, PRIOR_SCALE^2 X X^T + NOISE^2 I)."""

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from sizes import options

import ppl_suite

PRIOR_SCALE, NOISE = 1.0, 0.5
rng = np.random.default_rng(1)
X = np.column_stack([np.ones(30), rng.normal(size=(30, 2))])
y = X @ np.array([0.5, -1.0, 2.0]) + NOISE * rng.normal(size=30)


def model(X, y=None):
    w = pyro.sample("w", dist.Normal(0.0, PRIOR_SCALE).expand([X.shape[1]]).to_event(1))
    pyro.sample("y", dist.Normal(X @ w, NOISE).to_event(1), obs=y)


result = ppl_suite.check(model, args=(torch.tensor(X), torch.tensor(y)), **options())
print(result.table.drop(columns="key").to_string())
