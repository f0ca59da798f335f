"""Dirichlet-Categorical in Pyro (see spec.py for the maths)."""

import pyro
import pyro.distributions as dist
import torch


def model(data, params):
    concentration = torch.full((int(params["k"]),), float(params["alpha"]), dtype=torch.float64)
    pi = pyro.sample("pi", dist.Dirichlet(concentration))
    with pyro.plate("data", data["x"].shape[0]):  # labels arrive as a long tensor, as Categorical needs
        pyro.sample("x", dist.Categorical(probs=pi), obs=data["x"])
