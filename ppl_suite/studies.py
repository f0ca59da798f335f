"""Studies by name: the plug-ins a run may add after its cells (the VAE, the VQ-VAE).

A study declares, through the ``Study`` protocol, everything the core needs of it: its settings section
(a profile's ``[name]`` table, checked by ``settings``), its tables (columns by name, stored as
``<results>/<folder>/<table>.parquet``), its kept work (``owns_part``: which files of
``<results>/<folder>/parts/`` are its own), its manifest entry, its report section (``report``: a
module that registers it) and its step (``run``). ``matrix``, ``store``, ``runner`` and the report
ask this registry; none of them imports a study.

The registry is the suite's one mechanism (``ppl_suite.plugin_registry.Registry``): the shipped studies
are the ``STUDY`` of each module in ``SHIPPED``; an installed package adds one through the entry-point
group ``ppl_suite.studies`` (a Study, or a module with a ``STUDY``); ``register`` adds one by hand.
``names()`` is sorted, so the order studies run and report in never depends on the order they
registered in.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ppl_suite.plugin_registry import Registry

if TYPE_CHECKING:
    import pandas as pd

ENTRY_POINT_GROUP = "ppl_suite.studies"
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


SHIPPED = ("ppl_suite.vae.plugin", "ppl_suite.vqvae.plugin", "ppl_suite.calibration.plugin")


def _shipped() -> Iterator[Study]:
    for module in SHIPPED:
        yield importlib.import_module(module).STUDY


def _study(loaded: Any) -> Study:
    """What an entry point names: a Study, or a module declaring one as ``STUDY``."""
    return loaded.STUDY if isinstance(loaded, ModuleType) else loaded


def _not_a_study(plugin: Any) -> str | None:
    return None if isinstance(plugin, Study) else f"{plugin!r} does not have the Study protocol's attributes"


STUDIES: Registry[Study] = Registry(
    "study", discover=_shipped, entry_points=ENTRY_POINT_GROUP, load=_study, check=_not_a_study
)


def register(study: Study, *, replace: bool = False) -> Study:
    """Add ``study`` under its name (a name taken by another study is a ValueError)."""
    return STUDIES.register(study, replace=replace)


def names() -> list[str]:
    """Every study's name, sorted."""
    return STUDIES.names()


def get(name: str) -> Study:
    """The study called ``name`` (KeyError naming the valid ones)."""
    return STUDIES.get(name)


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
