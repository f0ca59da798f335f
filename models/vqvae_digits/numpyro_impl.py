"""The VQ-VAE in NumPyro: the decoder's weights (the codebook included) are ``numpyro.param`` sites of
the model, the encoder's of the guide (which reads the codebook too), all started at given NumPy
weights. One categorical site per position, ``z_0 .. z_{L-1}``, in the data plate; ``enumerated=True``
marks the guide's sites for parallel enumeration (``TraceEnum_ELBO`` then sums over q exactly). The
data plate is the VAE's (``models.vae_digits.numpyro_impl.data_plate``: subsampled at ``batch``,
scale N / B).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from models.vae_digits.numpyro_impl import data_plate
from models.vqvae_digits import network
from models.vqvae_digits.pyro_impl import site


def params(names: tuple[str, ...], init: Mapping[str, np.ndarray]) -> dict:
    """The ``numpyro.param`` sites ``names``, each started at its initial array."""
    return {name: numpyro.param(name, jnp.asarray(init[name])) for name in names}


def make_model(init: Mapping[str, np.ndarray]) -> Callable:
    """model(x, batch=None): z_nl ~ Uniform{0..K-1}, x_n ~ Bernoulli(logits = decoder(z_n))."""
    codes, positions = network.sizes(init)

    def model(x, batch=None):
        weights = params(network.DECODER, init)
        with data_plate(jnp.shape(x)[0], batch) as index:
            z = [numpyro.sample(site(p), dist.Categorical(logits=jnp.zeros(codes))) for p in range(positions)]
            logits = network.decoder_logits(weights, z, jnp)
            numpyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x[index])

    return model


def _infer(enumerated: bool) -> dict:
    # a new dict per site: the libraries write each site's enumeration dims into it
    return {"enumerate": "parallel"} if enumerated else {}


def make_guide(init: Mapping[str, np.ndarray], temperature: float, enumerated: bool) -> Callable:
    """guide(x, batch=None): z_nl ~ Categorical(logits = -|u_l(x_n) - e_k|^2 / T), amortized."""
    _, positions = network.sizes(init)

    def guide(x, batch=None):
        weights = params(("codebook", *network.ENCODER), init)
        with data_plate(jnp.shape(x)[0], batch) as index:
            logits = network.encoder_logits(weights, x[index], temperature, jnp)
            for p in range(positions):
                numpyro.sample(site(p), dist.Categorical(logits=logits[..., p, :]), infer=_infer(enumerated))

    return guide
