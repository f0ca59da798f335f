"""The VAE in Pyro: the decoder's weights are ``pyro.param`` sites of the model, the encoder's of the
guide, both started at given NumPy weights (``network.init_weights``), float64.

Both take the training images ``x`` (N, 64) as a tensor and optional minibatch indices ``batch``
(a LongTensor (B,)): ``pyro.plate("data", N, subsample=batch)`` uses exactly those indices and
scales every site in the plate by N / B, so -loss = (N / B) sum_{n in batch} [log p(x_n, z_n) -
log q(z_n | x_n)], an unbiased estimate of the full-data ELBO. Without ``batch`` the plate is the
whole data set, scale 1.

``network`` is written over an array module; ``TORCH`` is the torch namespace it needs (torch's
``logaddexp`` takes tensors only, so the constant 0 is made one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import SimpleNamespace

import numpy as np
import pyro
import pyro.distributions as dist
import torch

from models.vae_digits import network

PLATE = "data"
TORCH = SimpleNamespace(
    tanh=torch.tanh,
    log=torch.log,
    sum=torch.sum,
    logaddexp=lambda a, b: torch.logaddexp(torch.as_tensor(a, dtype=b.dtype), b),
)


def _params(names: tuple[str, ...], init: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    # a copy of each initial array: pyro.param trains its initial tensor in place
    return {
        name: pyro.param(name, lambda v=init[name]: torch.tensor(v, dtype=torch.float64)) for name in names
    }


def make_model(init: Mapping[str, np.ndarray]) -> Callable:
    """model(x, batch=None): z_n ~ N(0, I), x_n ~ Bernoulli(logits = decoder(z_n)) in the data plate."""
    latent_dim = np.shape(init["dec_w1"])[0]

    def model(x: torch.Tensor, batch: torch.Tensor | None = None) -> None:
        weights = _params(network.DECODER, init)
        prior = dist.Normal(torch.zeros(latent_dim, dtype=torch.float64), 1.0).to_event(1)
        with pyro.plate(PLATE, x.shape[0], subsample=batch) as index:
            z = pyro.sample("z", prior)
            logits = network.decoder_logits(weights, z, TORCH)
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x[index])

    return model


def make_guide(init: Mapping[str, np.ndarray]) -> Callable:
    """guide(x, batch=None): z_n ~ N(loc(x_n), diag(scale(x_n)^2)) in the data plate (amortized)."""

    def guide(x: torch.Tensor, batch: torch.Tensor | None = None) -> None:
        weights = _params(network.ENCODER, init)
        with pyro.plate(PLATE, x.shape[0], subsample=batch) as index:
            loc, scale = network.encode(weights, x[index], TORCH)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    return guide
