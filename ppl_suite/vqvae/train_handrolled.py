"""Training the VQ-VAE by hand in JAX: the objective's minibatch loss (``ppl_suite.vqvae.losses``),
its gradient by autodiff, Adam written out (``ppl_suite.backends.handrolled.adam_step`` at the
constant step lr), scanned in compiled segments (``ppl_suite.vae.jax_segments``)."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ppl_suite.backends.base import SVIConfig
from ppl_suite.backends.handrolled import adam_step
from ppl_suite.numerics import enable_float64
from ppl_suite.vae.jax_segments import run_segments
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
    enable_float64()
    adam = adam_step(SVIConfig(steps=settings.steps, lr=settings.lr, final_lr=settings.lr, hold=0.0))
    value_and_grad = jax.value_and_grad(minibatch_loss(objective, settings))

    def update(state, x, batch):
        weights, m, v, key, t = state
        key, sub = jax.random.split(key)
        loss, grads = value_and_grad(weights, x, batch, sub)
        weights, m, v = adam(weights, grads, m, v, t)
        return (weights, m, v, key, t + 1), loss

    weights = {name: jnp.asarray(value) for name, value in init.items()}
    zeros = jax.tree.map(jnp.zeros_like, weights)
    state = (weights, zeros, zeros, jax.random.PRNGKey(settings.noise), jnp.asarray(0))
    run = run_segments(update, lambda state: state[0], state, x, batches, settings.checkpoints)
    return run.trained("handrolled", settings)
