"""Backends by name, imported only when asked for (listing them never imports torch or JAX)."""

from __future__ import annotations

import importlib

from ppl_suite.backends.base import Backend, Fit, SVIConfig

_BACKENDS = {
    "pyro": ("ppl_suite.backends.pyro", "PyroBackend"),
    "numpyro": ("ppl_suite.backends.numpyro", "NumPyroBackend"),
    "handrolled": ("ppl_suite.backends.handrolled", "HandRolledBackend"),
}


def names() -> list[str]:
    return list(_BACKENDS)


def get(name: str) -> Backend:
    try:
        module, cls = _BACKENDS[name]
    except KeyError:
        raise KeyError(f"unknown backend {name!r}; valid: {', '.join(names())}") from None
    return getattr(importlib.import_module(module), cls)()


__all__ = ["Backend", "Fit", "SVIConfig", "get", "names"]
