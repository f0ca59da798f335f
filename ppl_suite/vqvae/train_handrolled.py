"""Training the VQ-VAE by hand in JAX: the objective's minibatch loss (``ppl_suite.vqvae.losses``),
its gradient by autodiff, Adam written out (``ppl_suite.backends.handrolled.adam_step`` at the
constant step lr), scanned in compiled segments (``ppl_suite.vae.jax_segments``)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ppl_suite.vae.train_handrolled import fit_by_hand
from ppl_suite.vae.training import TrainedVAE
from ppl_suite.vqvae import losses
from ppl_suite.vqvae.training import VQTrainingSettings


def minibatch_loss(objective: str, settings: VQTrainingSettings):
    """loss(weights, x, batch, key) of ``objective`` (the key is used by the score function only)."""
    if objective == "enumerated":
        return lambda weights, x, batch, key: losses.enumerated_loss(weights, x, batch, settings.temperature)
    if objective == "score_function":
        return lambda weights, x, batch, key: losses.score_function_loss(
            weights, x, batch, key, settings.temperature, settings.particles
        )
    return lambda weights, x, batch, key: losses.vq_loss(weights, x, batch, settings.beta)


def fit(
    x: np.ndarray,
    init: Mapping[str, np.ndarray],
    batches: np.ndarray,
    settings: VQTrainingSettings,
    objective: str,
) -> TrainedVAE:
    return fit_by_hand(minibatch_loss(objective, settings), x, init, batches, settings)
