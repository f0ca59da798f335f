"""Shared test set-up: float64 everywhere, one thread, a compilation cache of the session's own (shared
with the runs the tests start), and helpers over the model registry."""

import os
import tempfile

os.environ.setdefault("PPL_SUITE_XLA_CACHE", tempfile.mkdtemp(prefix="ppl-suite-tests-xla-"))

from ppl_suite.compilation_cache import enable_compilation_cache
from ppl_suite.numerics import setup

setup()  # the numerics of every worker: float64 in torch and JAX, one thread
enable_compilation_cache()


import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _registries_as_they_were():
    """The models and guide families a test module registers (a user's model through ``check`` or
    ``diagnose``, a stand-in model) are gone after it, so a later module that lists every registered
    model (the references profile, ``ppl-suite list``) sees the suite's own."""
    from ppl_suite import guides, registry
    from ppl_suite.checking import user_guide, user_model

    registry.names()  # the zoo found first: its models register guide families, which must be kept
    kept = [(registry, "MODELS", registry.MODELS.copy()), (guides, "FAMILIES", guides.FAMILIES.copy())]
    tables = [registry._implementations, user_model._registered, user_guide._registered]
    saved = [dict(table) for table in tables]
    yield
    for module, name, registry_copy in kept:
        setattr(module, name, registry_copy)
    for table, before in zip(tables, saved, strict=True):
        table.clear()
        table.update(before)
