"""Shared test set-up: float64 everywhere, one thread, a compilation cache of the session's own (shared
with the runs the tests start), and helpers over the model registry."""

import os
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("PPL_SUITE_XLA_CACHE", tempfile.mkdtemp(prefix="ppl-suite-tests-xla-"))

import jax
import torch

from ppl_suite.compilation_cache import enable_compilation_cache

jax.config.update("jax_enable_x64", True)
enable_compilation_cache()
torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)
