"""Plug-ins of one kind by name: the suite's one registry mechanism (models, estimators, guide families,
backends, executors, report sections; a study's own kinds take it the same way).

A ``Registry`` finds its plug-ins in three ways, in this order, on first use:
1. discovery in the suite's own package (``discover``: e.g. every module of a package and the tuple
   each declares, ``declared(package, "ESTIMATORS")``, or modules that register themselves on import,
   ``import_modules(package)``);
2. the entry points of installed packages (``entry_points``: a group such as ``ppl_suite.estimators``),
   each loaded and turned into a plug-in by ``load``; one that fails to load, fails its ``check``, or
   whose name is taken is skipped with a warning naming it, so one broken package hides nothing else;
3. ``register(plugin)`` from a user's module (``--plugins``) or a plug-in's own module.

Capabilities are declared on each kind's protocol (attributes every plug-in has), never probed; the
kind's ``check`` refuses a plug-in that does not declare what its protocol asks. Registration order
never changes output: ``names()`` is sorted unless the kind has a meaningful order of its own
(backends, report sections: registration order, the shipped ones first).

    from ppl_suite.plugin_registry import Registry
    THINGS: Registry[Thing] = Registry("thing", discover=lambda: declared("my_package", "THINGS"))
    THINGS.register(my_thing); THINGS.names(); THINGS.get("my_thing")
"""

from __future__ import annotations

import importlib
import pkgutil
import warnings
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from types import ModuleType
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def _name(plugin: Any) -> str:
    return plugin.name


def _article(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


class Registry(Generic[T]):
    """Plug-ins of one kind, keyed by ``key(plugin)`` (default: its ``name``).

    ``kind`` names the kind in messages ("model", "estimator"...); ``discover`` yields the suite's own
    plug-ins (the first of a name wins); ``entry_points`` is the group installed packages add to;
    ``load`` turns what an entry point names into a plug-in (default: as it is); ``check`` says why a
    plug-in does not follow its protocol (None when it does); ``ordered``: ``names`` in registration
    order instead of sorted."""

    def __init__(
        self,
        kind: str,
        *,
        key: Callable[[T], str] = _name,
        discover: Callable[[], Iterable[T]] | None = None,
        entry_points: str | None = None,
        load: Callable[[Any], T] | None = None,
        check: Callable[[T], str | None] | None = None,
        ordered: bool = False,
    ) -> None:
        self.kind = kind
        self.entry_points = entry_points
        self._key, self._discover, self._load, self._check = key, discover, load, check
        self._ordered = ordered
        self._items: dict[str, T] = {}
        self._registered: set[str] = set()  # names added by ``register`` (those ``replace`` may replace)
        self._discovered = False

    def _ready(self) -> None:
        if self._discovered:
            return
        self._discovered = True  # first: a module found here may call ``register`` while imported
        for plugin in self._discover() if self._discover is not None else ():
            self._items.setdefault(self._key(plugin), plugin)
        if self.entry_points is not None:
            self._add_entry_points(self.entry_points)

    def _add_entry_points(self, group: str) -> None:
        for entry_point in sorted(metadata.entry_points(group=group), key=lambda e: e.name):
            where = f"entry point {entry_point.name!r} = {entry_point.value!r} of group {group!r}"
            try:
                loaded = entry_point.load()
                plugin = self._load(loaded) if self._load is not None else loaded
                problem = self._check(plugin) if self._check is not None else None
                if problem is not None:
                    raise ValueError(problem)
            except Exception as error:
                warnings.warn(f"{where} skipped: {type(error).__name__}: {error}", stacklevel=4)
                continue
            name = self._key(plugin)
            if name in self._items:
                warnings.warn(
                    f"{where} skipped: {_article(self.kind)} named {name!r} is already registered",
                    stacklevel=4,
                )
                continue
            self._items[name] = plugin

    def register(self, plugin: T, *, name: str | None = None, replace: bool = False) -> T:
        """Add ``plugin`` under its key (or ``name``, for a kind keyed by what the plug-in serves, such
        as a reference source by its model); returns it. A name taken by another plug-in is an error;
        with ``replace`` a plug-in added earlier by ``register`` (never a discovered one) is replaced,
        in its place."""
        self._ready()
        name = self._key(plugin) if name is None else name
        present = self._items.get(name, plugin)
        if present is not plugin and not (replace and name in self._registered):
            raise ValueError(f"{_article(self.kind)} named {name!r} is already registered")
        problem = self._check(plugin) if self._check is not None else None
        if problem is not None:
            raise ValueError(problem)
        self._items[name] = plugin
        self._registered.add(name)
        return plugin

    def names(self) -> list[str]:
        """The registered names: sorted, or in registration order for an ``ordered`` kind."""
        self._ready()
        return list(self._items) if self._ordered else sorted(self._items)

    def get(self, name: str) -> T:
        """The plug-in registered under ``name``; an unknown name is a KeyError listing the valid ones."""
        self._ready()
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}") from None

    def plugins(self) -> list[T]:
        """Every registered plug-in, in ``names()`` order."""
        return [self._items[name] for name in self.names()]

    def fresh(self) -> Registry[T]:
        """A registry of the same kind with nothing found yet (its discovery runs again on first use)."""
        return Registry(
            self.kind,
            key=self._key,
            discover=self._discover,
            entry_points=self.entry_points,
            load=self._load,
            check=self._check,
            ordered=self._ordered,
        )

    def copy(self) -> Registry[T]:
        """A registry with the same plug-ins, to add to and drop (a scope that must leave this one as it
        was, such as a test)."""
        copied = self.fresh()
        copied._items, copied._registered = dict(self._items), set(self._registered)
        copied._discovered = self._discovered
        return copied

    def __contains__(self, name: object) -> bool:
        self._ready()
        return name in self._items


def import_modules(package: str) -> Iterator[ModuleType]:
    """Every module of ``package`` (by name), imported: the discovery of plug-ins that register
    themselves, or declare themselves in a module attribute (``declared``)."""
    home = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(home.__path__), key=lambda m: m.name):
        yield importlib.import_module(f"{package}.{info.name}")


def declared(package: str, attribute: str) -> Iterator[Any]:
    """The plug-ins every module of ``package`` declares in its tuple ``attribute`` (e.g. ESTIMATORS).

    A module without it declares none (the one place a module attribute is optional: helpers live
    beside plug-ins in a package)."""
    for module in import_modules(package):
        yield from vars(module).get(attribute, ())
