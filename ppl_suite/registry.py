"""Models by name: discovery of the ``models`` package, of installed packages' entry points, and
registration of user models, through the suite's one registry mechanism (``plugin_registry.Registry``,
``MODELS``), which every plug-in kind shares: estimators (``estimators.ESTIMATORS``), guide families
(``guides.FAMILIES``), backends (``backends.BACKENDS``), executors (``executors.EXECUTORS``), report
sections (``report.document.SECTIONS``), reference sources (``references.reparametrized.SOURCES``).

A discovered model is a folder ``models/<name>/`` with ``spec.py`` defining ``SPEC`` and, optionally,
``pyro_impl.py`` and ``numpyro_impl.py`` each defining ``model(data, params)``. Implementations are
imported only when a backend asks for them, so listing models never imports torch or JAX.

An installed package adds models without ``--plugins`` or ``PYTHONPATH`` through the entry-point group
``ppl_suite.models``: each entry point names a model's ``spec`` module (defining ``SPEC``) or the
``ModelSpec`` itself, in a folder laid out as the zoo's (``SPEC.module`` names the package holding
``pyro_impl`` and ``numpyro_impl``). In ``pyproject.toml``:

    [project.entry-points."ppl_suite.models"]
    my_model = "my_package.my_model.spec"

The zoo is loaded from its folder beside ``ppl_suite``, so a user's own ``models.py`` or ``models/``
in the working directory cannot stand in for it. An entry point that fails to load, or whose name is
taken, is skipped with a warning naming it: one broken package does not hide the other models.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from ppl_suite.plugin_registry import Registry
from ppl_suite.spec import ModelSpec

IMPLEMENTATION_MODULES = {"pyro": "pyro_impl", "numpyro": "numpyro_impl"}
ENTRY_POINT_GROUP = "ppl_suite.models"
ZOO_PACKAGE = "models"
ZOO = Path(__file__).resolve().parent.parent / ZOO_PACKAGE

_implementations: dict[tuple[str, str], Callable[..., Any] | None] = {}


def _zoo() -> ModuleType:
    """The suite's ``models`` package, imported from ``ZOO`` whatever ``sys.path`` finds first under
    that name; an unrelated module already imported as ``models`` is an ImportError naming both."""
    loaded = sys.modules.get(ZOO_PACKAGE)
    if loaded is not None:
        if ZOO in [Path(p).resolve() for p in getattr(loaded, "__path__", [])]:
            return loaded
        raise ImportError(
            f"a module named {ZOO_PACKAGE!r} ({getattr(loaded, '__file__', None) or loaded}) was imported "
            f"before the suite's model package ({ZOO}); rename it, or import ppl_suite's models first"
        )
    spec = importlib.util.spec_from_file_location(
        ZOO_PACKAGE, ZOO / "__init__.py", submodule_search_locations=[str(ZOO)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[ZOO_PACKAGE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[ZOO_PACKAGE]
        raise
    return module


def _entry_point_spec(loaded: object) -> ModelSpec:
    """The ModelSpec an entry point names: a ``spec`` module's ``SPEC``, or the spec itself."""
    spec = getattr(loaded, "SPEC", None) if isinstance(loaded, ModuleType) else loaded
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"it names {type(loaded).__name__}, not a spec module (with SPEC) or a ModelSpec")
    return spec


def _zoo_specs() -> Iterator[ModelSpec]:
    """The zoo's models: every folder of ``models/`` with a ``spec`` module defining ``SPEC``."""
    zoo = _zoo()
    for info in sorted(pkgutil.iter_modules(zoo.__path__), key=lambda m: m.name):
        if not info.ispkg or importlib.util.find_spec(f"{ZOO_PACKAGE}.{info.name}.spec") is None:
            continue  # a folder that is not (yet) a model
        spec = getattr(importlib.import_module(f"{ZOO_PACKAGE}.{info.name}.spec"), "SPEC", None)
        if isinstance(spec, ModelSpec):
            yield spec


MODELS: Registry[ModelSpec] = Registry(
    "model", discover=_zoo_specs, entry_points=ENTRY_POINT_GROUP, load=_entry_point_spec
)


def register(
    spec: ModelSpec,
    pyro_model: Callable[..., Any] | None = None,
    numpyro_model: Callable[..., Any] | None = None,
    *,
    replace: bool = False,
) -> ModelSpec:
    """Add a model defined outside the ``models`` package; returns the spec.

    Registering a taken name is an error, so a user model cannot silently replace a shipped one;
    with ``replace`` a model added earlier by ``register`` (never a discovered one) is replaced.
    """
    if not replace and spec.name in MODELS and MODELS.get(spec.name) is spec:  # the same spec twice too
        raise ValueError(f"a model named {spec.name!r} is already registered")
    MODELS.register(spec, replace=replace)
    _implementations[(spec.name, "pyro")] = pyro_model
    _implementations[(spec.name, "numpyro")] = numpyro_model
    return spec


def plugin_problems(modules: Sequence[str]) -> list[str]:
    """Import the user's modules (which register models) in this process; one problem per module that
    cannot be imported, whatever it raised."""
    problems = []
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as error:
            problems.append(f"cannot import plugin module {module!r}: {type(error).__name__}: {error}")
    return problems


def names() -> list[str]:
    """Registered model names, sorted."""
    return MODELS.names()


def get(name: str) -> ModelSpec:
    """The spec registered under ``name``; an unknown name is an error listing the valid ones."""
    return MODELS.get(name)


def has_implementation(name: str, backend: str) -> bool:
    """Whether ``name`` has a model function for ``backend``, without importing it (nor its library):
    one registered with the model, or the module ``<spec.module>.pyro_impl`` / ``numpyro_impl``."""
    key = (name, backend)
    if key in _implementations:
        return _implementations[key] is not None
    try:
        return importlib.util.find_spec(f"{get(name).module}.{IMPLEMENTATION_MODULES[backend]}") is not None
    except ModuleNotFoundError:  # its package is missing
        return False


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
