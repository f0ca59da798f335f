"""The VQ-VAE in Pyro: the decoder's weights (the codebook included) are ``pyro.param`` sites of the
model, the encoder's of the guide (which reads the codebook too: q's logits are distances to it),
all started at given NumPy weights (``network.init_weights``), float64.

One categorical site per position, ``z_0 .. z_{L-1}``, inside the data plate: the decoder couples
the positions, so they are not a plate. ``enumerated=True`` marks the guide's sites for parallel
enumeration (``config_enumerate``): with ``TraceEnum_ELBO`` the ELBO is then the exact sum over q.
The data plate is subsampled at ``batch`` as in ``models/vae_digits/pyro_impl.py`` (scale N / B).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import SimpleNamespace

import numpy as np
import pyro
import pyro.distributions as dist
import torch

from models.vqvae_digits import network

PLATE = "data"
TORCH = SimpleNamespace(
    tanh=torch.tanh,
    log=torch.log,
    sum=torch.sum,
    argmin=lambda a, axis: torch.argmin(a, dim=axis),
    logaddexp=lambda a, b: torch.logaddexp(torch.as_tensor(a, dtype=b.dtype), b),
)


def site(position: int) -> str:
    """The name of position ``position``'s code: z_0, z_1, ..."""
    return f"z_{position}"


def params(names: tuple[str, ...], init: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The ``pyro.param`` sites ``names``, each started at a float64 copy of its initial array."""
    return {
        name: pyro.param(name, lambda v=init[name]: torch.tensor(v, dtype=torch.float64)) for name in names
    }


def make_model(init: Mapping[str, np.ndarray]) -> Callable:
    """model(x, batch=None): z_nl ~ Uniform{0..K-1}, x_n ~ Bernoulli(logits = decoder(z_n))."""
    codes, positions = network.sizes(init)

    def model(x: torch.Tensor, batch: torch.Tensor | None = None) -> None:
        weights = params(network.DECODER, init)
        uniform = dist.Categorical(logits=torch.zeros(codes, dtype=torch.float64))
        with pyro.plate(PLATE, x.shape[0], subsample=batch) as index:
            z = [pyro.sample(site(p), uniform) for p in range(positions)]
            logits = network.decoder_logits(weights, z, TORCH)
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x[index])

    return model


def _infer(enumerated: bool) -> dict:
    # a new dict per site: the libraries write each site's enumeration dims into it
    return {"enumerate": "parallel"} if enumerated else {}


def make_guide(init: Mapping[str, np.ndarray], temperature: float, enumerated: bool) -> Callable:
    """guide(x, batch=None): z_nl ~ Categorical(logits = -|u_l(x_n) - e_k|^2 / T), amortized."""
    _, positions = network.sizes(init)

    def guide(x: torch.Tensor, batch: torch.Tensor | None = None) -> None:
        weights = params(("codebook", *network.ENCODER), init)
        with pyro.plate(PLATE, x.shape[0], subsample=batch) as index:
            logits = network.encoder_logits(weights, x[index], temperature, TORCH)
            for p in range(positions):
                pyro.sample(site(p), dist.Categorical(logits=logits[..., p, :]), infer=_infer(enumerated))

    return guide
