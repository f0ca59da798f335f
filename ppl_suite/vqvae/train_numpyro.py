"""Training the VQ-VAE with NumPyro: ``SVI`` over the data plate subsampled at the shared minibatch
indices with ``TraceEnum_ELBO`` (the guide's sites enumerated: the exact ELBO) or ``TraceGraph_ELBO``
(the score-function estimator NumPyro offers for discrete sites); the vq objective, which no ELBO
class computes, is ``ppl_suite.vqvae.losses.vq_loss`` with ``numpyro.optim.Adam``. Each update is
scanned in compiled segments (``ppl_suite.vae.jax_segments``)."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import SVI, TraceEnum_ELBO, TraceGraph_ELBO

from models.vqvae_digits import numpyro_impl
from ppl_suite.numerics import enable_float64
from ppl_suite.vae.jax_segments import run_segments
from ppl_suite.vae.train_numpyro import adam, fit_svi
from ppl_suite.vae.training import TrainedVAE
from ppl_suite.vqvae import losses
from ppl_suite.vqvae.training import VQTrainingSettings


def elbo(objective: str, settings: VQTrainingSettings):
    """NumPyro's ELBO class of ``objective`` (enumerated or score_function)."""
    if objective == "enumerated":
        return TraceEnum_ELBO(max_plate_nesting=1)
    return TraceGraph_ELBO(num_particles=settings.particles)


def fit(
    x: np.ndarray,
    init: Mapping[str, np.ndarray],
    batches: np.ndarray,
    settings: VQTrainingSettings,
    objective: str,
) -> TrainedVAE:
    enable_float64()
    optimizer = adam(settings)
    if objective == "vq":
        value_and_grad = jax.value_and_grad(losses.vq_loss)

        def update(state, x, batch):
            loss, grads = value_and_grad(optimizer.get_params(state), x, batch, settings.beta)
            return optimizer.update(grads, state), loss

        state = optimizer.init({name: jnp.asarray(value) for name, value in init.items()})
        run = run_segments(update, optimizer.get_params, state, x, batches, settings.checkpoints)
        return run.trained("numpyro", settings)
    enumerated = objective == "enumerated"
    svi = SVI(
        numpyro_impl.make_model(init),
        numpyro_impl.make_guide(init, settings.temperature, enumerated),
        optimizer,
        elbo(objective, settings),
    )
    return fit_svi(svi, x, batches, settings)
