"""Per-image importance sampling with a diagonal Gaussian proposal q_i = N(loc_i, diag(scale_i^2)) (the
encoder's q(z | x_i), or any other): the ELBO, the IWAE bound and PSIS k-hat of each image.

    log w_ik = log p(z_ik) + log p_theta(x_i | z_ik) - log q_i(z_ik),   z_ik ~ q_i,  k = 1..K
    ELBO_i   = (1/K) sum_k log w_ik,              SE = sd_k(log w_ik) / sqrt(K)
    IWAE_i   = log (1/K) sum_k exp(log w_ik),     SE = sd_k(w_ik) / (sqrt(K) mean_k(w_ik))  (delta method)
    k-hat_i  = the generalized Pareto shape of the largest w_ik (``ppl_suite.estimators.weights``)

Burda, Grosse and Salakhutdinov (2016), "Importance weighted autoencoders", ICLR (E[IWAE_K] <= log p,
rising with K); Vehtari et al. (2024), "Pareto smoothed importance sampling", JMLR 25. The weights are
drawn in blocks of images, jitted and vectorized over images x draws.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ppl_suite.estimators.weights import pareto_smoothed
from ppl_suite.vae.image_ais import PerImage
from ppl_suite.vae.latent import LatentModel, Params, log_normal_diag

BLOCK_DRAWS = 200_000  # images x draws per compiled call: bounds the memory (~ 200 MB at 64 hidden units)


class ImageWeights:
    """The compiled log-weight function of a ``LatentModel``: (theta, x (b, D), loc (b, d), scale (b, d),
    key, draws K) -> log w (b, K)."""

    def __init__(self, model: LatentModel) -> None:
        def log_weights(theta, x, loc, scale, key, draws):
            eps = jax.random.normal(key, (x.shape[0], draws, model.dim))
            z = loc[:, None, :] + scale[:, None, :] * eps
            log_q = log_normal_diag(z, loc[:, None, :], scale[:, None, :])
            return model.log_joint(theta, z, x[:, None, :]) - log_q

        self._log_weights = jax.jit(log_weights, static_argnums=5)

    def __call__(
        self, theta: Params, x: np.ndarray, loc: np.ndarray, scale: np.ndarray, draws: int, key: jax.Array
    ) -> np.ndarray:
        """log w (n, K) for every image, in blocks of at most BLOCK_DRAWS weights (the last block padded)."""
        n = x.shape[0]
        block = max(1, min(n, BLOCK_DRAWS // draws))
        out = []
        for start, key_block in zip(range(0, n, block), jax.random.split(key, -(-n // block)), strict=True):
            part = [np.asarray(a[start : start + block]) for a in (x, loc, scale)]
            pad = block - part[0].shape[0]
            part = [np.concatenate([a, np.repeat(a[-1:], pad, axis=0)]) if pad else a for a in part]
            log_w = self._log_weights(theta, *map(jnp.asarray, part), key_block, draws)
            out.append(np.asarray(log_w)[: block - pad])
        return np.concatenate(out)


@dataclass(frozen=True)
class ProposalEstimates:
    """Per image (n,): the ELBO with its SE, the IWAE bound with its SE and k-hat; the cost."""

    elbo: np.ndarray
    elbo_se: np.ndarray
    iwae: np.ndarray
    iwae_se: np.ndarray
    khat: np.ndarray
    draws: int
    seconds: float


def elbo_per_image(log_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean_k log w_ik, sd_k / sqrt(K)) per image."""
    return log_w.mean(axis=1), log_w.std(axis=1, ddof=1) / np.sqrt(log_w.shape[1])


def proposal_estimates(
    weights: ImageWeights,
    theta: Params,
    x: np.ndarray,
    loc: np.ndarray,
    scale: np.ndarray,
    draws: int,
    key: jax.Array,
) -> ProposalEstimates:
    """ELBO, IWAE-K and k-hat of every image from K = ``draws`` draws of its q (module docstring)."""
    start = time.perf_counter()
    log_w = weights(theta, x, loc, scale, draws, key)
    elbo, elbo_se = elbo_per_image(log_w)
    iwae = PerImage.of(log_w)
    khat = np.array([pareto_smoothed(row)[1] for row in log_w])
    return ProposalEstimates(elbo, elbo_se, iwae.value, iwae.se, khat, draws, time.perf_counter() - start)


def elbo_estimates(
    weights: ImageWeights,
    theta: Params,
    x: np.ndarray,
    loc: np.ndarray,
    scale: np.ndarray,
    draws: int,
    key: jax.Array,
) -> tuple[np.ndarray, np.ndarray]:
    """(ELBO_i, SE_i) of every image from ``draws`` fresh draws of its q."""
    return elbo_per_image(weights(theta, x, loc, scale, draws, key))
