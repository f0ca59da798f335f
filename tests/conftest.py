"""Shared test set-up: float64 everywhere, one thread, a compilation cache of the session's own (shared
with the runs the tests start), and helpers over the model registry."""

import os
import tempfile

os.environ.setdefault("PPL_SUITE_XLA_CACHE", tempfile.mkdtemp(prefix="ppl-suite-tests-xla-"))

from ppl_suite.compilation_cache import enable_compilation_cache
from ppl_suite.numerics import setup

setup()  # the numerics of every worker: float64 in torch and JAX, one thread
enable_compilation_cache()
