"""Numerical settings and stable reductions shared by the engine.

``setup`` is the one place that sets the numerics every computation runs under: float64 in JAX and
torch, one thread per process for XLA and torch. Workers, the Python API and the tests call it, so a
number computed in a test is computed exactly as in production.
"""

from __future__ import annotations

import os

import numpy as np
from scipy.special import logsumexp

XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def enable_float64() -> None:
    """Evaluate JAX in float64 (must run before JAX creates arrays that matter)."""
    import jax

    jax.config.update("jax_enable_x64", True)


def setup(one_thread: bool = True) -> None:
    """float64 in JAX and torch (torch's default dtype, so Pyro's priors are float64 too) and, with
    ``one_thread``, one thread each for XLA and torch (no oversubscription when workers share cores).

    XLA reads its flags when its CPU client starts, so this must run before JAX computes anything;
    an ``XLA_FLAGS`` already set by the user is kept."""
    if one_thread:
        os.environ.setdefault("XLA_FLAGS", XLA_ONE_THREAD)
    import torch

    enable_float64()
    torch.set_default_dtype(torch.float64)
    if one_thread:
        torch.set_num_threads(1)


def log_mean_exp(log_w: np.ndarray, axis: int = -1) -> np.ndarray:
    """log((1/K) sum_k exp(log_w_k)), stable for weights spanning any range (max-shifted)."""
    log_w = np.asarray(log_w, dtype=float)
    return logsumexp(log_w, axis=axis) - np.log(log_w.shape[axis])
