"""Studies by name: the plug-ins a run may add after its cells (the VAE, the VQ-VAE).

A study declares, through the ``Study`` protocol, everything the core needs of it: its settings section
(a profile's ``[name]`` table, checked by ``settings``), its tables (columns by name, stored as
``<results>/<folder>/<table>.parquet``), its kept work (``owns_part``: which files of
``<results>/<folder>/parts/`` are its own), its manifest entry, its report section (``report``: a
module that registers it) and its step (``run``). ``matrix``, ``store``, ``runner`` and the report
ask this registry; none of them imports a study.

A study is found by discovery: every package ``ppl_suite/<name>/`` with a ``plugin.py`` is imported
(it calls ``register``), and so is every entry point of the group ``ppl_suite.studies``. ``names()``
is sorted, so the order studies run and report in never depends on the order they registered in.
"""

from __future__ import annotations

import importlib
import pkgutil
import warnings
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pandas as pd

ENTRY_POINT_GROUP = "ppl_suite.studies"
PLUGIN_MODULE = "plugin"  # ppl_suite/<package>/plugin.py declares a study
PARTS = "parts"  # the subfolder of a study's folder holding its kept work

Log = Callable[[str], None]


@runtime_checkable
class Study(Protocol):
    """A study as the core sees it. ``name``: its settings section and its name in events; ``title``:
    how a person calls it ("VAE"); ``folder``: its subfolder of a results folder (studies may share
    one); ``tables``: its tables' columns by table name; ``runs_table``: the table with one row per run
    and its ``status``; ``manifest_key``: its entry in a manifest; ``report``: the module registering
    its report section (None: none)."""

    name: str
    title: str
    folder: str
    tables: Mapping[str, Sequence[str]]
    runs_table: str
    manifest_key: str
    report: str | None

    def settings(self, table: Any, config: Mapping[str, Any]) -> Any:
        """Its settings from its section ``table`` of ``config``; ``InputProblem`` lists every problem."""
        ...

    def owns_part(self, name: str) -> bool:
        """Whether ``name`` (``<digest>.<kind>``, a file of ``<folder>/parts/``) is its kept work."""
        ...

    def run(self, settings: Any, folder: Path, log: Log) -> dict[str, pd.DataFrame]:
        """Run into the results folder ``folder`` (held locked by the caller); its tables by name."""
        ...

    def failed(self, tables: Mapping[str, pd.DataFrame]) -> bool:
        """Whether some part of it failed (a row of ``runs_table`` not ok)."""
        ...

    def summary_lines(self, tables: Mapping[str, pd.DataFrame]) -> list[str]:
        """What a terminal shows when it finished: its main table, flagged disagreements."""
        ...

    def outcome(self, tables: Mapping[str, pd.DataFrame]) -> str:
        """Its outcome in a phrase: '2 of 3 backends ok'."""
        ...


_studies: dict[str, Study] = {}
_discovered = False


def register(study: Study) -> Study:
    """Add ``study`` under its name (a name already taken by another study is a ValueError)."""
    if not isinstance(study, Study):
        raise TypeError(f"{study!r} does not have the Study protocol's attributes")
    known = _studies.get(study.name)
    if known is not None and known is not study and type(known) is not type(study):
        raise ValueError(f"study name {study.name!r} is taken")
    _studies[study.name] = study
    return study


def _discover() -> None:
    """Import every ``ppl_suite/<package>/plugin.py`` and every entry point of ``ENTRY_POINT_GROUP``."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    import ppl_suite

    for module in pkgutil.iter_modules(ppl_suite.__path__):
        place = getattr(module.module_finder, "path", None)  # the package's folder (a file system path)
        if module.ispkg and place and (Path(place) / module.name / f"{PLUGIN_MODULE}.py").is_file():
            importlib.import_module(f"ppl_suite.{module.name}.{PLUGIN_MODULE}")
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry_point.load()
            if not isinstance(loaded, ModuleType):  # a module registers its study when imported
                register(loaded)
        except Exception as error:  # one broken package does not hide the other studies
            warnings.warn(f"study entry point {entry_point.name!r} skipped: {error}", stacklevel=2)


def names() -> list[str]:
    """Every study's name, sorted."""
    _discover()
    return sorted(_studies)


def get(name: str) -> Study:
    """The study called ``name`` (KeyError naming the valid ones)."""
    _discover()
    try:
        return _studies[name]
    except KeyError:
        raise KeyError(f"unknown study {name!r}; valid: {', '.join(names())}") from None


def folders() -> list[str]:
    """The results folder's subfolders that hold studies' tables, each once."""
    return list(dict.fromkeys(get(name).folder for name in names()))


def table_names(folder: str) -> list[str]:
    """The tables stored in ``folder`` by every study that uses it."""
    return [table for name in names() if get(name).folder == folder for table in get(name).tables]


def owns_part(folder: str, name: str, studies: Sequence[str] | None = None) -> bool:
    """Whether ``name`` in ``<folder>/parts/`` is kept work of one of ``studies`` (default: any)."""
    chosen = names() if studies is None else studies
    return any(get(study).folder == folder and get(study).owns_part(name) for study in chosen)
