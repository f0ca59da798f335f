"""The inference-gap decomposition of one image (or an average over images), with standard errors.

    log p_theta(x) - ELBO[encoder] = (log p_theta(x) - ELBO[q*]) + (ELBO[q*] - ELBO[encoder])
                     KL(q || p(z|x))   approximation gap            amortization gap

Cremer, Li and Duvenaud (2018), "Inference suboptimality in variational autoencoders", ICML. The three
estimates (AIS log p, ELBO[q*] and ELBO[encoder], each from its own draws) are independent, so each
difference's SE is the root sum of squares of its terms' SEs. The two gaps share ELBO[q*] and are
therefore negatively correlated; their sum, the KL, does not contain it: its SE is that of log p and
ELBO[encoder]. The two gaps add up to the KL exactly, as numbers and not only in expectation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Gaps:
    """KL = log p - ELBO[encoder], the approximation and amortization gaps, each with its SE (arrays)."""

    kl: np.ndarray
    kl_se: np.ndarray
    approximation: np.ndarray
    approximation_se: np.ndarray
    amortization: np.ndarray
    amortization_se: np.ndarray


def decompose(
    log_p: np.ndarray,
    log_p_se: np.ndarray,
    elbo_best: np.ndarray,
    elbo_best_se: np.ndarray,
    elbo_encoder: np.ndarray,
    elbo_encoder_se: np.ndarray,
) -> Gaps:
    """The decomposition of the module docstring, elementwise."""
    return Gaps(
        kl=log_p - elbo_encoder,
        kl_se=np.hypot(log_p_se, elbo_encoder_se),
        approximation=log_p - elbo_best,
        approximation_se=np.hypot(log_p_se, elbo_best_se),
        amortization=elbo_best - elbo_encoder,
        amortization_se=np.hypot(elbo_best_se, elbo_encoder_se),
    )
