"""The VAE in NumPyro: the decoder's weights are ``numpyro.param`` sites of the model, the encoder's
of the guide, both started at given NumPy weights (``network.init_weights``).

Both take the training images ``x`` (N, 64) and optional minibatch indices ``batch`` (B,). With
``batch`` the data plate is ``numpyro.plate("data", N, subsample_size=B)`` whose indices are set to
``batch`` (a ``substitute`` of the plate site; NumPyro would otherwise draw its own with the
guide's random key, and ``Trace_ELBO`` replays the guide's indices into the model); NumPyro then
scales every site in the plate by N / B, so -loss = (N / B) sum_{n in batch} [log p(x_n, z_n) -
log q(z_n | x_n)], an unbiased estimate of the full-data ELBO. Without ``batch`` the plate is the
whole data set, scale 1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro import handlers

from models.vae_digits import network

PLATE = "data"


def data_plate(size: int, batch=None) -> numpyro.plate:
    """The data plate over ``size`` images; subsampled at the indices ``batch`` when given."""
    if batch is None:
        return numpyro.plate(PLATE, size)
    with handlers.substitute(data={PLATE: jnp.asarray(batch)}):
        return numpyro.plate(PLATE, size, subsample_size=jnp.shape(batch)[0])


def _params(names: tuple[str, ...], init: Mapping[str, np.ndarray]) -> dict:
    return {name: numpyro.param(name, jnp.asarray(init[name])) for name in names}


def make_model(init: Mapping[str, np.ndarray]) -> Callable:
    """model(x, batch=None): z_n ~ N(0, I), x_n ~ Bernoulli(logits = decoder(z_n)) in the data plate."""
    latent_dim = np.shape(init["dec_w1"])[0]

    def model(x, batch=None):
        weights = _params(network.DECODER, init)
        with data_plate(jnp.shape(x)[0], batch) as index:
            z = numpyro.sample("z", dist.Normal(jnp.zeros(latent_dim), 1.0).to_event(1))
            logits = network.decoder_logits(weights, z, jnp)
            numpyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x[index])

    return model


def make_guide(init: Mapping[str, np.ndarray]) -> Callable:
    """guide(x, batch=None): z_n ~ N(loc(x_n), diag(scale(x_n)^2)) in the data plate (amortized)."""

    def guide(x, batch=None):
        weights = _params(network.ENCODER, init)
        with data_plate(jnp.shape(x)[0], batch) as index:
            loc, scale = network.encode(weights, x[index], jnp)
            numpyro.sample("z", dist.Normal(loc, scale).to_event(1))

    return guide
