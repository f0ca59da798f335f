"""The three training objectives of the VQ-VAE as minibatch losses in JAX (``ppl_suite.vqvae.training``
states them), for the hand-rolled backend (all three) and NumPyro (the vq one).

    enumerated:      -(N / B) sum_n sum_z q(z | x_n) [log p(x_n, z) - log q(z | x_n)]
    score function:  -(N / B) sum_n (1/P) sum_p [f_np + sg(f_np) (log q_np - sg(log q_np))],
                     f = log p(x, z) - log q(z | x), z_np ~ q(. | x_n), q_np = q(z_np | x_n): its
                     value is -ELBO's estimate, its gradient -(grad f + f grad log q), the
                     score-function estimator Pyro's Trace_ELBO takes (sg: stop_gradient)
    vq:              (N / B) sum_n network.vq_loss(x_n)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from models.vqvae_digits import network


def enumerated_loss(weights, x, batch, temperature: float):
    """-(N / B) sum over the batch of the exact ELBO (a sum over every code)."""
    n, b = x.shape[0], batch.shape[0]
    log_joint, log_q = network.enumerated(weights, x[batch], temperature, jnp)
    return -(n / b) * jnp.sum(jnp.exp(log_q) * (log_joint - log_q))


def score_function_loss(weights, x, batch, key, temperature: float, particles: int):
    """The score-function surrogate of -(N / B) sum over the batch of the ELBO (module docstring)."""
    n, b = x.shape[0], batch.shape[0]
    images = x[batch]
    codes, positions = network.sizes(weights)
    logits = network.encoder_logits(weights, images, temperature, jnp)  # (B, L, K)
    z = jax.random.categorical(key, jax.lax.stop_gradient(logits), shape=(particles, *logits.shape[:-1]))
    log_q_positions = jnp.broadcast_to(network.log_softmax(logits, jnp), (particles, *logits.shape))
    log_q = jnp.sum(jnp.take_along_axis(log_q_positions, z[..., None], -1)[..., 0], -1)  # (P, B)
    decoded = network.decoder_logits(weights, [z[..., p] for p in range(positions)], jnp)
    log_joint = network.log_prior(codes, positions) + network.bernoulli_log_mass(decoded, images, jnp)
    f = log_joint - log_q
    score = log_q - jax.lax.stop_gradient(log_q)  # 0 in value, grad log q in gradient
    return -(n / b) * jnp.sum(jnp.mean(f + jax.lax.stop_gradient(f) * score, axis=0))


def vq_loss(weights, x, batch, beta: float):
    """(N / B) sum over the batch of the VQ-VAE loss."""
    n, b = x.shape[0], batch.shape[0]
    return (n / b) * jnp.sum(network.vq_loss(weights, x[batch], beta, jax.lax.stop_gradient, jnp))
