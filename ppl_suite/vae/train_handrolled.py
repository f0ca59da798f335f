"""Training the VAE by hand in JAX: the minibatch ELBO written out with ``network.elbo_terms``,

    loss = -(N / B) sum_{n in batch} (1/P) sum_p [log p_theta(x_n, z_np) - log q_phi(z_np | x_n)],
    z_np = loc_phi(x_n) + scale_phi(x_n) eps_np,

differentiated through the draws (the pathwise gradient Trace_ELBO takes), and Adam written out
(``ppl_suite.backends.handrolled.adam_step`` at the constant step lr), scanned in compiled segments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from models.vae_digits import network
from ppl_suite.backends.base import SVIConfig
from ppl_suite.backends.handrolled import adam_step
from ppl_suite.numerics import enable_float64
from ppl_suite.vae.jax_segments import run_segments
from ppl_suite.vae.training import TrainedVAE, TrainingSettings


def minibatch_loss(weights, x, batch, key, particles: int):
    """-ELBO_B: the minibatch's ELBO terms averaged over particles, summed, scaled by N / B."""
    n, b = x.shape[0], batch.shape[0]
    eps = jax.random.normal(key, (particles, b, weights["enc_b_loc"].shape[0]))
    return -(n / b) * jnp.sum(jnp.mean(network.elbo_terms(weights, x[batch], eps, jnp), axis=0))


def fit(
    x: np.ndarray, init: Mapping[str, np.ndarray], batches: np.ndarray, settings: TrainingSettings
) -> TrainedVAE:
    particles = settings.particles
    return fit_by_hand(
        lambda weights, x, batch, key: minibatch_loss(weights, x, batch, key, particles),
        x,
        init,
        batches,
        settings,
    )


def fit_by_hand(
    loss: Callable[..., Any],
    x: np.ndarray,
    init: Mapping[str, np.ndarray],
    batches: np.ndarray,
    settings: Any,
) -> TrainedVAE:
    """Minimize ``loss(weights, x, batch, key)`` from ``init`` over ``batches`` with Adam written out at
    the constant step ``settings.lr`` (a fresh key per step, split from ``settings.noise``'s), scanned in
    compiled segments; the weights kept at ``settings.checkpoints``."""
    enable_float64()
    # SVIConfig's schedule with final_lr = lr is the constant step lr
    adam = adam_step(SVIConfig(steps=settings.steps, lr=settings.lr, final_lr=settings.lr, hold=0.0))
    value_and_grad = jax.value_and_grad(loss)

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
