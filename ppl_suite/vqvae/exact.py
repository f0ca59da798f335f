"""Every term of the VQ-VAE's evidence decomposition, exact: sums over the K^L codes, per image,
float64 (no estimator, no draw).

    log p_theta(x)       = logsumexp_z [log p(z) + log p_theta(x | z)]
    p_theta(z | x)       = p_theta(x, z) / p_theta(x)
    ELBO(q, theta)       = sum_z q(z | x) [log p_theta(x, z) - log q(z | x)]
    KL(q || p_theta(z|x)) = sum_z q(z | x) [log q(z | x) - log p_theta(z | x)]
    log p_theta(x)       = ELBO + KL                         (the identity; checked per image)

and the deterministic limit of the same encoder, the one-hot q at the nearest codes z*:

    ELBO(one-hot at z*)  = log p_theta(x, z*) = log p_theta(x | z*) - L log K
    KL(one-hot || p_theta(z|x)) = -log p_theta(z* | x),   log p_theta(x) = ELBO* + (-log p_theta(z* | x))

The vq objective drops the constant L log K = KL(one-hot || p(z)) from its ELBO*. Terms where
q(z | x) = 0 in float64 add nothing (0 x finite).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from models.vqvae_digits import network


@dataclass(frozen=True)
class ExactTerms:
    """Per image (n,): log p_theta(x), the ELBO and KL of the stochastic q at temperature T, and the
    ELBO and KL (= -log p_theta(z* | x)) of the one-hot q at the nearest codes."""

    log_evidence: np.ndarray
    elbo: np.ndarray
    kl: np.ndarray
    elbo_nearest: np.ndarray
    kl_nearest: np.ndarray

    def identity_residual(self) -> np.ndarray:
        """log p - (ELBO + KL) per image: zero up to float64 rounding."""
        return self.log_evidence - (self.elbo + self.kl)


def nearest_codes(weights, x: np.ndarray) -> np.ndarray:
    """z* (n, L): each position's nearest code to the encoder's vector, argmin_k |u_l - e_k|^2."""
    vectors = network.encoder_vectors(weights, np.asarray(x, dtype=np.float64))
    return np.argmin(network.squared_distances(weights, vectors), axis=-1)


def exact_terms(weights, x: np.ndarray, temperature: float) -> ExactTerms:
    """The module docstring's terms for images x (n, 64) at the weights ``weights``."""
    weights = {name: np.asarray(value, dtype=np.float64) for name, value in weights.items()}
    x = np.asarray(x, dtype=np.float64)
    log_joint, log_q = network.enumerated(weights, x, temperature, np)
    log_evidence = logsumexp(log_joint, axis=1)
    log_posterior = log_joint - log_evidence[:, None]
    q = np.exp(log_q)
    elbo = np.sum(q * (log_joint - log_q), axis=1)
    kl = np.sum(q * (log_q - log_posterior), axis=1)
    codes, _ = network.sizes(weights)
    star = network.code_index(nearest_codes(weights, x), codes)
    rows = np.arange(x.shape[0])
    return ExactTerms(log_evidence, elbo, kl, log_joint[rows, star], -log_posterior[rows, star])
