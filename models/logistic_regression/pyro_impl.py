"""Bayesian logistic regression in Pyro (see spec.py for the maths)."""

import pyro
import pyro.distributions as dist
import torch


def model(data, params):
    X = data["X"]
    scale = torch.full((X.shape[-1] + 1,), float(params["prior_scale"]), dtype=X.dtype)
    beta = pyro.sample("beta", dist.Normal(torch.zeros_like(scale), scale).to_event(1))
    # beta may carry batch axes (vectorized particles: shape (P, 1, d + 1)): (X * beta[..., 1:]).sum(-1)
    # rather than X @ beta[1:] keeps the data axis last, where the plate expects it, and the intercept
    # beta[..., 0] (shape (P, 1)) broadcasts along it.
    logits = beta[..., 0] + (X * beta[..., 1:]).sum(-1)
    with pyro.plate("data", X.shape[0]):
        pyro.sample("y", dist.Bernoulli(logits=logits), obs=data["y"])
