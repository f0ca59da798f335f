"""Gaussian mixture in Pyro (see spec.py for the maths); z is enumerable under TraceEnum_ELBO."""

import pyro
import pyro.distributions as dist
import torch


def model(data, params):
    logits = pyro.param("logits", lambda: torch.as_tensor(params["logits"], dtype=torch.float64))
    means = torch.as_tensor(params["means"], dtype=torch.float64)
    with pyro.plate("data", data["x"].shape[0]):
        z = pyro.sample("z", dist.Categorical(logits=logits), infer={"enumerate": "parallel"})
        pyro.sample("x", dist.Normal(means[z], params["scale"]), obs=data["x"])
