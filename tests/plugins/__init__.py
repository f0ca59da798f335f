"""Plug-in modules of models with injected faults, which test runs load with ``--plugins``."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

FAULTY = "tests.plugins.faulty_models"  # models with injected faults (its docstring)


@contextlib.contextmanager
def imported_afresh(module: str) -> Iterator[None]:
    """A plug-in module imported by a run in this process registers its models again (the registries
    are restored after each test module: a module kept in ``sys.modules`` would not)."""
    sys.modules.pop(module, None)
    try:
        yield
    finally:
        sys.modules.pop(module, None)
