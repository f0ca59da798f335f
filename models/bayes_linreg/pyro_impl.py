"""Bayesian linear regression in Pyro (see spec.py for the maths)."""

import pyro
import pyro.distributions as dist
import torch


def model(data, params):
    X = data["X"]
    scale = torch.full((X.shape[-1],), float(params["prior_scale"]), dtype=X.dtype)
    w = pyro.sample("w", dist.Normal(torch.zeros_like(scale), scale).to_event(1))
    # w may carry batch axes (vectorized particles: shape (P, 1, d)); w @ X^T is then (P, 1, n), squeezed
    # to (P, n) so that the data axis is last, where the plate expects it. A matrix product, not the
    # broadcast (X * w).sum(-1), which builds a (P, n, d) tensor.
    mean = X @ w if w.dim() == 1 else (w @ X.mT).squeeze(-2)
    with pyro.plate("data", X.shape[0]):
        pyro.sample("y", dist.Normal(mean, params["noise_scale"]), obs=data["y"])
