"""Numerical settings and stable reductions shared by the engine."""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp


def enable_float64() -> None:
    """Evaluate JAX in float64 (must run before JAX creates arrays that matter)."""
    import jax

    jax.config.update("jax_enable_x64", True)


def log_mean_exp(log_w: np.ndarray, axis: int = -1) -> np.ndarray:
    """log((1/K) sum_k exp(log_w_k)), stable for weights spanning any range (max-shifted)."""
    log_w = np.asarray(log_w, dtype=float)
    return logsumexp(log_w, axis=axis) - np.log(log_w.shape[axis])
