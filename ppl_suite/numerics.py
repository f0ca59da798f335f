"""Numerical settings and stable reductions shared by the engine.

``setup`` is the one place that sets the numerics every computation runs under: float64 in JAX and
torch, one thread per process for XLA and torch. Workers, the Python API and the tests call it, so a
number computed in a test is computed exactly as in production. ``kept_session`` saves those settings
(and NumPyro's and Pyro's validation, JAX's compilation-cache options) and restores them, so the
Python API leaves the caller's session as it found it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np
from scipy.special import logsumexp

XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def enable_float64() -> None:
    """Evaluate JAX in float64 (must run before JAX creates arrays that matter)."""
    import jax

    jax.config.update("jax_enable_x64", True)


def setup(one_thread: bool = True, own_process: bool = True) -> None:
    """float64 in JAX and torch (torch's default dtype, so Pyro's priors are float64 too) and, with
    ``one_thread``, one thread each for XLA and torch (no oversubscription when workers share cores).

    XLA reads its flags when its CPU client starts, so this must run before JAX computes anything;
    an ``XLA_FLAGS`` already set by the user is kept. ``XLA_FLAGS`` is set only in a process of the
    suite's own (``own_process``): in the caller's process it would outlive the call, in ``os.environ``
    and in every subprocess the caller starts later."""
    if one_thread and own_process:
        os.environ.setdefault("XLA_FLAGS", XLA_ONE_THREAD)
    import torch

    enable_float64()
    torch.set_default_dtype(torch.float64)
    if one_thread:
        torch.set_num_threads(1)


JAX_CACHE_OPTIONS = (
    "jax_compilation_cache_dir",
    "jax_persistent_cache_min_compile_time_secs",
    "jax_compilation_cache_max_size",
)


@contextlib.contextmanager
def kept_session() -> Iterator[None]:
    """Run the body, then restore what ``setup``, ``worker.configure`` and the backends change in this
    process: torch's default dtype and thread count, JAX's x64 flag and compilation-cache options,
    ``XLA_FLAGS`` in ``os.environ``, NumPyro's and Pyro's validation; also after an error.

    JAX's x64 flag is restored at the end only: JAX arrays made inside keep their float64 dtype, but
    computing on them afterwards runs in the caller's precision, so the API returns NumPy data."""
    import jax
    import pyro
    import torch
    from numpyro.distributions.distribution import Distribution
    from pyro.poutine.util import is_validation_enabled

    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    jax_options = {name: getattr(jax.config, name) for name in ("jax_enable_x64", *JAX_CACHE_OPTIONS)}
    xla_flags = os.environ.get("XLA_FLAGS")
    numpyro_validation, pyro_validation = Distribution._validate_args, is_validation_enabled()
    try:
        yield
    finally:
        torch.set_default_dtype(dtype)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        for name, value in jax_options.items():
            if getattr(jax.config, name) != value:
                jax.config.update(name, value)
        if xla_flags is None:
            os.environ.pop("XLA_FLAGS", None)
        else:
            os.environ["XLA_FLAGS"] = xla_flags
        Distribution.set_default_validate_args(numpyro_validation)
        pyro.enable_validation(pyro_validation)


def log_mean_exp(log_w: np.ndarray, axis: int = -1) -> np.ndarray:
    """log((1/K) sum_k exp(log_w_k)), stable for weights spanning any range (max-shifted)."""
    log_w = np.asarray(log_w, dtype=float)
    return logsumexp(log_w, axis=axis) - np.log(log_w.shape[axis])
