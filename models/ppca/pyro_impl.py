"""Probabilistic PCA in Pyro (see spec.py for the maths, and for why there is no plate over N)."""

import pyro
import pyro.distributions as dist
import torch


def _init(value):
    # A copy: the optimizer updates parameters in place and must not write into the caller's arrays.
    return lambda: torch.as_tensor(value, dtype=torch.float64).clone()


def model(data, params):
    W = pyro.param("W", _init(params["W"]))
    mu = pyro.param("mu", _init(params["mu"]))
    log_sigma = pyro.param("log_sigma", _init(params["log_sigma"]))
    x = data["x"]
    prior = dist.Normal(torch.zeros(x.shape[0], W.shape[1], dtype=torch.float64), 1.0)
    z = pyro.sample("z", prior.to_event(2))
    pyro.sample("x", dist.Normal(z @ W.T + mu, torch.exp(log_sigma)).to_event(2), obs=x)
