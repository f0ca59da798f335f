"""Shared test set-up: float64 everywhere, one thread, and helpers over the model registry."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import jax
import torch

jax.config.update("jax_enable_x64", True)
torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)
