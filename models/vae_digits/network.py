"""The VAE's networks and densities, written once over an array module ``xp`` (numpy or jax.numpy;
Pyro passes a small torch namespace with the same four functions: tanh, logaddexp, log, sum).

    z ~ Normal(0, I_d)                                   prior, d = latent_dim
    h = tanh(z W1 + b1);  l = h W2 + b2                  decoder (theta), l: 64 Bernoulli logits
    x_j | z ~ Bernoulli(sigmoid(l_j)),  j = 1..64
    q(z | x) = Normal(loc(x), diag(scale(x)^2))          encoder (phi), amortized:
    g = tanh(x V1 + c1);  loc = g V_loc + c_loc;  scale = softplus(g V_scale + c_scale)

The Bernoulli log mass is written in logits, log p(x_j | z) = x_j l_j - softplus(l_j), with
softplus(a) = log(1 + e^a) = logaddexp(0, a), stable for any a. The scale has no floor: softplus is
positive for every finite input (it underflows to 0 only below about -745, which training never
reaches), and a floor would bias q away from the family the libraries' Normal guide spans.
Kingma and Welling (2014), "Auto-encoding variational Bayes", ICLR.

Weights are plain dicts of arrays named as in ``DECODER`` and ``ENCODER``; every function broadcasts
leading axes: z (..., d) with x (..., 64).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

PIXELS = 64
DECODER = ("dec_w1", "dec_b1", "dec_w2", "dec_b2")
ENCODER = ("enc_w1", "enc_b1", "enc_w_loc", "enc_b_loc", "enc_w_scale", "enc_b_scale")
LOG_2PI = math.log(2 * math.pi)


def shapes(latent_dim: int, hidden: int) -> dict[str, tuple[int, ...]]:
    """Every weight's shape, decoder then encoder (the order ``init_weights`` draws them in)."""
    d, h = latent_dim, hidden
    return {
        "dec_w1": (d, h), "dec_b1": (h,), "dec_w2": (h, PIXELS), "dec_b2": (PIXELS,),
        "enc_w1": (PIXELS, h), "enc_b1": (h,), "enc_w_loc": (h, d), "enc_b_loc": (d,),
        "enc_w_scale": (h, d), "enc_b_scale": (d,),
    }  # fmt: skip


def init_weights(seed: int, latent_dim: int = 2, hidden: int = 64) -> dict[str, np.ndarray]:
    """Initial weights, identical for every backend: each matrix (fan_in, fan_out) Glorot-normal,
    N(0, 2 / (fan_in + fan_out)) (Glorot and Bengio, 2010), drawn in ``shapes`` order from
    ``np.random.default_rng(seed)``; biases 0 (so the encoder's scale starts at softplus(0) = log 2)."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in shapes(latent_dim, hidden).items():
        if len(shape) == 2:
            weights[name] = rng.normal(0.0, math.sqrt(2.0 / sum(shape)), size=shape)
        else:
            weights[name] = np.zeros(shape)
    return weights


def softplus(a, xp: Any = np):
    """log(1 + e^a), stable for any a."""
    return xp.logaddexp(0.0, a)


def decoder_logits(weights, z, xp: Any = np):
    """Bernoulli logits (..., 64) of z (..., d): tanh(z W1 + b1) W2 + b2."""
    hidden = xp.tanh(z @ weights["dec_w1"] + weights["dec_b1"])
    return hidden @ weights["dec_w2"] + weights["dec_b2"]


def encode(weights, x, xp: Any = np):
    """q(z | x)'s (loc, scale), each (..., d), of images x (..., 64)."""
    hidden = xp.tanh(x @ weights["enc_w1"] + weights["enc_b1"])
    loc = hidden @ weights["enc_w_loc"] + weights["enc_b_loc"]
    scale = softplus(hidden @ weights["enc_w_scale"] + weights["enc_b_scale"], xp)
    return loc, scale


def log_likelihood(weights, z, x, xp: Any = np):
    """log p_theta(x | z) = sum_j [x_j l_j - softplus(l_j)], l = decoder_logits(z); shape (...)."""
    logits = decoder_logits(weights, z, xp)
    return xp.sum(x * logits - softplus(logits, xp), axis=-1)


def log_prior(z, xp: Any = np):
    """log N(z; 0, I_d) = -(|z|^2 + d log 2 pi) / 2; shape (...)."""
    return -0.5 * (xp.sum(z * z, axis=-1) + z.shape[-1] * LOG_2PI)


def log_joint(weights, z, x, xp: Any = np):
    """log p_theta(x, z) = log p(z) + log p_theta(x | z), per image; shape (...)."""
    return log_prior(z, xp) + log_likelihood(weights, z, x, xp)


def log_guide(weights, z, x, xp: Any = np):
    """log q_phi(z | x) = sum_k log N(z_k; loc_k(x), scale_k(x)^2); shape (...)."""
    loc, scale = encode(weights, x, xp)
    standardized = (z - loc) / scale
    return -xp.sum(0.5 * standardized * standardized + xp.log(scale), axis=-1) - 0.5 * z.shape[-1] * LOG_2PI


def reparametrize(weights, x, eps, xp: Any = np):
    """z = loc(x) + scale(x) * eps: a draw of q(z | x) for eps ~ N(0, I_d) (eps (..., d))."""
    loc, scale = encode(weights, x, xp)
    return loc + scale * eps


def elbo_terms(weights, x, eps, xp: Any = np):
    """Single-draw ELBO terms log p_theta(x, z) - log q_phi(z | x), z = reparametrize(x, eps), whose
    mean over eps ~ N(0, I) is ELBO(x) = E_q[log p_theta(x, z) - log q_phi(z | x)] <= log p_theta(x).
    log q is evaluated at z as Pyro's and NumPyro's Trace_ELBO evaluate it (gradients flow through z
    and through (loc, scale)): the same pathwise estimator. Shape: x and eps broadcast, minus the
    last axis."""
    z = reparametrize(weights, x, eps, xp)
    return log_joint(weights, z, x, xp) - log_guide(weights, z, x, xp)
