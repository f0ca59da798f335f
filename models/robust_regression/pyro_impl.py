"""Robust linear regression in Pyro (see spec.py for the maths)."""

import pyro
import pyro.distributions as dist
import torch


def model(data, params):
    X = data["X"]
    scale = torch.full((X.shape[-1],), float(params["prior_scale"]), dtype=X.dtype)
    beta = pyro.sample("beta", dist.Normal(torch.zeros_like(scale), scale).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfNormal(params["scale_prior_scale"]))
    # (X * beta).sum(-1) rather than X @ beta: beta may carry batch axes (vectorized particles), and
    # the broadcast keeps the data axis last, where the plate expects it.
    with pyro.plate("data", X.shape[0]):
        pyro.sample("y", dist.StudentT(params["nu"], (X * beta).sum(-1), sigma), obs=data["y"])
