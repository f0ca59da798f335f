"""A module imported on its first use, so that a light command (``ppl-suite list``, validation) that
only names a model never loads the numerical library its functions call.

    stats = lazy_module("scipy.stats")   # nothing imported yet
    stats.norm.logpdf(0.0)               # imports scipy.stats here, once
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule(ModuleType):
    """Stands for the module ``name`` and imports it on the first attribute asked for; from then on
    it holds the module's attributes (a plain attribute look-up)."""

    def __getattr__(self, attribute: str) -> Any:
        module = importlib.import_module(self.__name__)
        self.__dict__.update(vars(module))
        return getattr(module, attribute)


def lazy_module(name: str) -> ModuleType:
    """The module ``name``, imported when one of its attributes is first used."""
    return LazyModule(name)
