"""Backends by name: light descriptors (``BackendInfo``: name, where its ``Backend`` lives, how the
report draws it, the model implementations its cells rely on), so that listing backends or drawing
the report never imports torch or JAX; the ``Backend`` itself is imported only when asked for.

A backend is a plug-in like any other (``plugin_registry``): an installed package adds one through
the entry-point group ``ppl_suite.backends`` naming its ``BackendInfo``, a user's module with
``register``. The shipped ones come first, in the order the report shows them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ppl_suite.backends.base import Backend, Fit, SVIConfig
from ppl_suite.plugin_registry import Registry

if TYPE_CHECKING:
    from ppl_suite.spec import ModelSpec, Site


@dataclass(frozen=True)
class BackendInfo:
    """A backend's identity. ``description``: who fits q, in a phrase (the report's glossary);
    ``module``/``cls``: where its ``Backend`` lives (built with no arguments);
    ``color`` and ``line_style``: how every figure draws it (matplotlib colour and line style: lines
    tell backends apart in grey too); ``implementations``: the model implementations (``pyro``,
    ``numpyro``) its cells rely on besides the NumPy oracle, whose log joints must agree
    (``conformance``); ``library_elbo``: the function of ``module`` giving its library's own ELBO of a
    fixed guide, ``library_elbo(problem, family, phi, n, seed) -> Estimate`` (None: it has none);
    ``support``: ``"module:function"`` answering ``Backend.unsupported`` without importing the
    backend's library (None: the backend itself is asked)."""

    name: str
    description: str
    module: str
    cls: str
    color: str
    line_style: str
    implementations: tuple[str, ...]
    library_elbo: str | None = None
    support: str | None = None

    def load(self) -> Backend:
        """The backend itself (imports its library)."""
        return getattr(importlib.import_module(self.module), self.cls)()

    def load_library_elbo(self) -> Callable[..., Any] | None:
        """Its ``library_elbo`` function (imports its library), or None when it declares none."""
        if self.library_elbo is None:
            return None
        return getattr(importlib.import_module(self.module), self.library_elbo)

    def unsupported(self, spec: ModelSpec, sites: tuple[Site, ...], guide: str) -> str | None:
        """Why this backend cannot fit ``guide`` to ``spec`` (``Backend.unsupported``), or None;
        imports no library when the backend declares its ``support``."""
        if self.support is None:
            return self.load().unsupported(spec, sites, guide)
        module, function = self.support.split(":")
        return getattr(importlib.import_module(module), function)(spec, sites, guide)


SHIPPED = (
    BackendInfo(
        "pyro",
        "Pyro's SVI, torch",
        f"{__name__}.pyro",
        "PyroBackend",
        "#d9541e",
        "-",
        ("numpyro", "pyro"),
        library_elbo="library_elbo",
        support=f"{__name__}.support:pyro",
    ),
    BackendInfo(
        "numpyro",
        "NumPyro's SVI, JAX",
        f"{__name__}.numpyro",
        "NumPyroBackend",
        "#1f6fb4",
        "--",
        ("numpyro",),
        library_elbo="library_elbo",
        support=f"{__name__}.support:numpyro",
    ),
    BackendInfo(
        "handrolled",
        "the suite's own JAX implementation of the model's log joint and of the ELBO's gradient, no PPL",
        f"{__name__}.handrolled",
        "HandRolledBackend",
        "#2e9e44",
        ":",
        ("numpyro",),
        support=f"{__name__}.support:handrolled",
    ),
)
BACKENDS: Registry[BackendInfo] = Registry(
    "backend", discover=lambda: SHIPPED, entry_points="ppl_suite.backends", ordered=True
)


def register(backend: BackendInfo) -> BackendInfo:
    """Add a backend defined outside this package; a taken name is an error."""
    return BACKENDS.register(backend)


def names() -> list[str]:
    """The backends' names: the shipped ones first, in the report's order."""
    return BACKENDS.names()


def info(name: str) -> BackendInfo:
    """The backend ``name``'s descriptor (imports nothing heavy); unknown names are a KeyError."""
    return BACKENDS.get(name)


def get(name: str) -> Backend:
    """The backend ``name`` itself; unknown names are a KeyError listing the valid ones."""
    return BACKENDS.get(name).load()


__all__ = ["BACKENDS", "Backend", "BackendInfo", "Fit", "SVIConfig", "get", "info", "names", "register"]
