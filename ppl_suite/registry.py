"""Models by name: discovery of the ``models`` package and registration of user models.

A discovered model is a folder ``models/<name>/`` with ``spec.py`` defining ``SPEC`` and, optionally,
``pyro_impl.py`` and ``numpyro_impl.py`` each defining ``model(data, params)``. Implementations are
imported only when a backend asks for them, so listing models never imports torch or JAX.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Callable
from typing import Any

from ppl_suite.spec import ModelSpec

IMPLEMENTATION_MODULES = {"pyro": "pyro_impl", "numpyro": "numpyro_impl"}

_specs: dict[str, ModelSpec] = {}
_implementations: dict[tuple[str, str], Callable[..., Any] | None] = {}
_discovered = False


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    import models

    for info in sorted(pkgutil.iter_modules(models.__path__), key=lambda m: m.name):
        if not info.ispkg or importlib.util.find_spec(f"models.{info.name}.spec") is None:
            continue  # a folder that is not (yet) a model
        module = importlib.import_module(f"models.{info.name}.spec")
        spec = getattr(module, "SPEC", None)
        if isinstance(spec, ModelSpec) and spec.name not in _specs:
            _specs[spec.name] = spec


def register(
    spec: ModelSpec,
    pyro_model: Callable[..., Any] | None = None,
    numpyro_model: Callable[..., Any] | None = None,
) -> ModelSpec:
    """Add a model defined outside the ``models`` package; returns the spec.

    Registering a name twice is an error, so a user model cannot silently replace a shipped one.
    """
    _discover()
    if spec.name in _specs:
        raise ValueError(f"a model named {spec.name!r} is already registered")
    _specs[spec.name] = spec
    _implementations[(spec.name, "pyro")] = pyro_model
    _implementations[(spec.name, "numpyro")] = numpyro_model
    return spec


def names() -> list[str]:
    """Registered model names, sorted."""
    _discover()
    return sorted(_specs)


def get(name: str) -> ModelSpec:
    """The spec registered under ``name``; an unknown name is an error listing the valid ones."""
    _discover()
    try:
        return _specs[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; valid: {', '.join(names())}") from None


def implementation(name: str, backend: str) -> Callable[..., Any] | None:
    """The model function of ``name`` for ``backend`` (``pyro`` or ``numpyro``), or None if absent."""
    key = (name, backend)
    if key not in _implementations:
        spec = get(name)
        module_name = f"{spec.module}.{IMPLEMENTATION_MODULES[backend]}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            _implementations[key] = None
        else:
            _implementations[key] = module.model
    return _implementations[key]
