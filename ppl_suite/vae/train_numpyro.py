"""Training the VAE with NumPyro: ``SVI`` with ``Trace_ELBO`` over the data plate subsampled at the
shared minibatch indices (``models/vae_digits/numpyro_impl.py``: the library scales the minibatch by
N / B), ``numpyro.optim.Adam``, ``svi.update`` scanned in compiled segments."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
import numpyro
from numpyro.infer import SVI, Trace_ELBO

from models.vae_digits import numpyro_impl
from ppl_suite.backends.base import ADAM_BETAS, ADAM_EPS
from ppl_suite.numerics import enable_float64
from ppl_suite.vae.jax_segments import run_segments
from ppl_suite.vae.training import TrainedVAE, TrainingSettings


def fit(
    x: np.ndarray, init: Mapping[str, np.ndarray], batches: np.ndarray, settings: TrainingSettings
) -> TrainedVAE:
    enable_float64()
    svi = SVI(
        numpyro_impl.make_model(init),
        numpyro_impl.make_guide(init),
        adam(settings),
        Trace_ELBO(num_particles=settings.particles),
    )
    return fit_svi(svi, x, batches, settings)


def adam(settings: Any) -> numpyro.optim.Adam:
    """NumPyro's Adam at the constant step ``settings.lr`` (``ADAM_BETAS``, ``ADAM_EPS``)."""
    return numpyro.optim.Adam(step_size=settings.lr, b1=ADAM_BETAS[0], b2=ADAM_BETAS[1], eps=ADAM_EPS)


def fit_svi(svi: SVI, x: np.ndarray, batches: np.ndarray, settings: Any) -> TrainedVAE:
    """``svi`` initialized at the key ``settings.noise``, updated over ``batches`` in compiled segments;
    the weights kept at ``settings.checkpoints``."""
    state = svi.init(jax.random.PRNGKey(settings.noise), x, batches[0])
    run = run_segments(svi.update, svi.get_params, state, x, batches, settings.checkpoints)
    return run.trained("numpyro", settings)
