"""The VQ-VAE's networks and densities, written once over an array module ``xp`` (numpy or jax.numpy;
Pyro passes a small torch namespace with the functions used here).

    z = (z_1..z_L),  z_l ~ Uniform{1..K}                  prior, log p(z) = -L log K
    h = tanh(b1 + sum_l e_{z_l} W1_l);  a = h W2 + b2     decoder (theta, codebook e_1..e_K included)
    x_j | z ~ Bernoulli(sigmoid(a_j)),  j = 1..64
    g = tanh(x V1 + c1);  u_l = g V2_l + c2_l             encoder (phi): one vector u_l per position
    q(z_l = k | x) = softmax_k(-|u_l - e_k|^2 / T)        positions independent given x

The encoder is the distance-based one of van den Oord, Vinyals and Kavukcuoglu (2017), "Neural
discrete representation learning", NeurIPS, kept stochastic at temperature T; its deterministic limit
(T -> 0) puts all of q on the nearest code z*_l = argmin_k |u_l - e_k|. The Bernoulli log mass is
x_j a_j - softplus(a_j), softplus(a) = logaddexp(0, a).

Weights are plain dicts of arrays named as in ``DECODER`` (the codebook first) and ``ENCODER``. The
decoder takes the L positions' codes as a sequence of index arrays (or of code vectors), each
broadcasting its own leading axes, so the libraries' parallel enumeration (one axis per position)
passes through unchanged.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

PIXELS = 64
DECODER = ("codebook", "dec_w1", "dec_b1", "dec_w2", "dec_b2")
ENCODER = ("enc_w1", "enc_b1", "enc_w2", "enc_b2")


def shapes(codes: int, positions: int, code_dim: int, hidden: int) -> dict[str, tuple[int, ...]]:
    """Every weight's shape, decoder then encoder (the order ``init_weights`` draws them in)."""
    k, n_pos, d, h = codes, positions, code_dim, hidden
    return {
        "codebook": (k, d), "dec_w1": (n_pos, d, h), "dec_b1": (h,), "dec_w2": (h, PIXELS),
        "dec_b2": (PIXELS,), "enc_w1": (PIXELS, h), "enc_b1": (h,), "enc_w2": (n_pos, h, d),
        "enc_b2": (n_pos, d),
    }  # fmt: skip


def init_weights(
    seed: int, codes: int = 16, positions: int = 2, code_dim: int = 2, hidden: int = 64
) -> dict[str, np.ndarray]:
    """Initial weights, identical for every backend, drawn in ``shapes`` order from
    ``np.random.default_rng(seed)``: the codebook N(0, 1); each weight matrix Glorot-normal,
    N(0, 2 / (fan_in + fan_out)) (Glorot and Bengio, 2010), with fan_in L d for W1 (the L codes
    together) and fan_out L d for V2; biases 0."""
    rng = np.random.default_rng(seed)
    fans = {
        "dec_w1": (positions * code_dim, hidden),
        "dec_w2": (hidden, PIXELS),
        "enc_w1": (PIXELS, hidden),
        "enc_w2": (hidden, positions * code_dim),
    }
    weights = {}
    for name, shape in shapes(codes, positions, code_dim, hidden).items():
        if name == "codebook":
            weights[name] = rng.normal(0.0, 1.0, size=shape)
        elif name in fans:
            weights[name] = rng.normal(0.0, math.sqrt(2.0 / sum(fans[name])), size=shape)
        else:
            weights[name] = np.zeros(shape)
    return weights


def sizes(weights) -> tuple[int, int]:
    """(K, L): the number of codes and of positions of a weight set."""
    return int(np.shape(weights["codebook"])[0]), int(np.shape(weights["dec_w1"])[0])


def softplus(a, xp: Any = np):
    """log(1 + e^a), stable for any a."""
    return xp.logaddexp(0.0, a)


def decoder_logits_of_vectors(weights, vectors: Sequence[Any], xp: Any = np):
    """Bernoulli logits (..., 64) of one code vector per position (each (..., d), broadcasting):
    tanh(b1 + sum_l v_l W1_l) W2 + b2."""
    pre = weights["dec_b1"]
    for position, vector in enumerate(vectors):
        pre = pre + vector @ weights["dec_w1"][position]
    return xp.tanh(pre) @ weights["dec_w2"] + weights["dec_b2"]


def decoder_logits(weights, codes: Sequence[Any], xp: Any = np):
    """Bernoulli logits (..., 64) of the codes z_1..z_L (integer arrays, broadcasting): the decoder of
    the code vectors e_{z_l}."""
    return decoder_logits_of_vectors(weights, [weights["codebook"][z] for z in codes], xp)


def bernoulli_log_mass(logits, x, xp: Any = np):
    """sum_j [x_j a_j - softplus(a_j)] of logits a (..., 64) and images x (..., 64); shape (...)."""
    return xp.sum(x * logits - softplus(logits, xp), axis=-1)


def encoder_vectors(weights, x, xp: Any = np):
    """The encoder's vectors u (..., L, d) of images x (..., 64): u_l = tanh(x V1 + c1) V2_l + c2_l."""
    hidden = xp.tanh(x @ weights["enc_w1"] + weights["enc_b1"])
    return (hidden[..., None, None, :] @ weights["enc_w2"])[..., 0, :] + weights["enc_b2"]


def squared_distances(weights, vectors):
    """|u_l - e_k|^2, shape (..., L, K), of vectors u (..., L, d) to every code e_k."""
    difference = vectors[..., None, :] - weights["codebook"]
    return (difference * difference).sum(-1)


def encoder_logits(weights, x, temperature: float, xp: Any = np):
    """q(z_l | x)'s unnormalized logits -|u_l - e_k|^2 / T, shape (..., L, K)."""
    return -squared_distances(weights, encoder_vectors(weights, x, xp)) / temperature


def log_softmax(logits, xp: Any = np):
    """logits - log sum_k exp(logits_k) over the last axis (numpy or jax.numpy)."""
    top = xp.max(logits, axis=-1, keepdims=True)
    return logits - top - xp.log(xp.sum(xp.exp(logits - top), axis=-1, keepdims=True))


def all_codes(codes: int, positions: int) -> np.ndarray:
    """Every z in {0..K-1}^L, (K^L, L), in lexicographic order (the last position fastest)."""
    return np.array(list(itertools.product(range(codes), repeat=positions)), dtype=np.int64).reshape(
        codes**positions, positions
    )


def log_prior(codes: int, positions: int) -> float:
    """log p(z) = -L log K, the same for every z."""
    return -positions * math.log(codes)


def vq_loss(weights, x, beta: float, stop_gradient, xp: Any = np):
    """The VQ-VAE loss per image, shape (...) (van den Oord et al. 2017, eq. 3):

        -log p_theta(x | z_q) + sum_l |sg(u_l) - e_{z*_l}|^2 + beta sum_l |u_l - sg(e_{z*_l})|^2,
        z*_l = argmin_k |u_l - e_k|^2,  z_q,l = u_l + sg(e_{z*_l} - u_l)  (straight-through),

    the reconstruction through the nearest codes, the codebook loss and the commitment loss. It is
    -ELBO of the one-hot q at z* (whose KL(q || p(z)) = L log K) less that constant, plus the two
    losses that train the codebook and the encoder, which the straight-through reconstruction alone
    does not. ``stop_gradient``: the array library's (jax.lax.stop_gradient, Tensor.detach)."""
    vectors = encoder_vectors(weights, x, xp)
    nearest = xp.argmin(squared_distances(weights, stop_gradient(vectors)), axis=-1)
    chosen = weights["codebook"][nearest]  # (..., L, d)
    through = vectors + stop_gradient(chosen - vectors)
    n_positions = vectors.shape[-2]
    logits = decoder_logits_of_vectors(weights, [through[..., p, :] for p in range(n_positions)], xp)
    codebook = stop_gradient(vectors) - chosen
    commitment = vectors - stop_gradient(chosen)
    return (
        -bernoulli_log_mass(logits, x, xp)
        + (codebook * codebook).sum(-1).sum(-1)
        + beta * (commitment * commitment).sum(-1).sum(-1)
    )


def enumerated(weights, x, temperature: float, xp: Any = np):
    """(log p_theta(x, z), log q_phi(z | x)) for every image and every code z of ``all_codes``, each
    (n, K^L), for images x (n, 64) (numpy or jax.numpy): the decoder runs once per code."""
    codes, positions = sizes(weights)
    table = all_codes(codes, positions)
    logits = decoder_logits(weights, [table[:, p] for p in range(positions)], xp)  # (K^L, 64)
    log_likelihood = x @ logits.T - xp.sum(softplus(logits, xp), axis=-1)
    log_q_positions = log_softmax(encoder_logits(weights, x, temperature, xp), xp)  # (n, L, K)
    log_q = sum(log_q_positions[:, p, table[:, p]] for p in range(positions))
    return log_prior(codes, positions) + log_likelihood, log_q


def code_index(z, codes: int):
    """The row of ``all_codes`` holding z (..., L): sum_l z_l K^(L-1-l)."""
    positions = z.shape[-1]
    return sum(z[..., p] * codes ** (positions - 1 - p) for p in range(positions))
