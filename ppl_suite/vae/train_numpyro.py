"""Training the VAE with NumPyro: ``SVI`` with ``Trace_ELBO`` over the data plate subsampled at the
shared minibatch indices (``models/vae_digits/numpyro_impl.py``: the library scales the minibatch by
N / B), ``numpyro.optim.Adam``, ``svi.update`` scanned in compiled segments."""

from __future__ import annotations

from collections.abc import Mapping

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
    optimizer = numpyro.optim.Adam(step_size=settings.lr, b1=ADAM_BETAS[0], b2=ADAM_BETAS[1], eps=ADAM_EPS)
    svi = SVI(
        numpyro_impl.make_model(init),
        numpyro_impl.make_guide(init),
        optimizer,
        Trace_ELBO(num_particles=settings.particles),
    )
    state = svi.init(jax.random.PRNGKey(settings.noise), x, batches[0])
    run = run_segments(svi.update, svi.get_params, state, x, batches, settings.checkpoints)
    return run.trained("numpyro", settings)
