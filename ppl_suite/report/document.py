"""What a report is made of: blocks, the context sections read, and the section protocol.

A section is a plug-in (``plugin_registry``): an object with a ``title`` and ``build(context) ->
list[Block]``, registered with ``register`` by its module (or named by an entry point of group
``ppl_suite.report_sections``); ``order.sections()`` finds every module of this package and puts the
sections in report order. A section also declares ``headline(context) -> list[Block]``: what it adds to
the report's first screen (the opening gathers every section's headline, in report order);
``summary(context) -> str``: a phrase naming what of its own data this run holds (the first screen's
line on the run, for a study whose data are not cells); and ``cost(context) -> list[Block]``: the time
its study took (the cost section gathers them); ``SectionDefaults`` gives each a default (nothing). The
renderer turns the blocks into Markdown or HTML;
sections never format for one output. A section with nothing to say builds no block: it is left out
of the report and of its contents; a part of a section whose data are absent says so in a ``Text``
block (``words.absent``). Sections draw
figures through ``Context.draw``, which may hand the drawing to other processes: a figure's PNG
exists once ``Context.drawn`` has returned.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ppl_suite import paths
from ppl_suite.plugin_registry import Registry
from ppl_suite.report.digest import figure_key
from ppl_suite.store import ResultsStore


@dataclass(frozen=True)
class Heading:
    """A sub-heading inside a section (level 3 or 4); the section title itself is level 2."""

    text: str
    level: int = 3


@dataclass(frozen=True)
class Text:
    """A paragraph of plain text; `backticks` mark code. ``note`` renders it as a quiet remark."""

    text: str
    note: bool = False


@dataclass(frozen=True)
class Code:
    """Preformatted text (a formula, a traceback)."""

    text: str


@dataclass(frozen=True)
class Table:
    """A DataFrame with per-column formats (format string or callable), shown as a table.

    ``pm`` joins a value column with its SE column as ``value ± SE`` (the SE column is dropped).
    """

    frame: pd.DataFrame
    caption: str = ""
    formats: Mapping[str, str | Callable[[Any], str]] = field(default_factory=dict)
    pm: Mapping[str, str] = field(default_factory=dict)
    details: bool = False  # folded (HTML <details>) under its caption: a long table a reader opens


@dataclass(frozen=True)
class Image:
    """A PNG drawn by a section's figure function, with its caption (which says what it shows) and its
    alternative text (what it shows, for a reader who cannot see it)."""

    path: Path
    caption: str
    alt: str = ""


@dataclass(frozen=True)
class Links:
    """Files a reader opens, one line per item: its label and its (name, path) links. Paths are
    rendered relative to the report's folder, so the links work wherever the two folders move together."""

    items: tuple[tuple[str, tuple[tuple[str, Path], ...]], ...]
    caption: str = ""


Block = Heading | Text | Code | Table | Image | Links


# figures to draw from which a report hands them to its pool of spawned processes: a spawned process's
# start-up (its imports) costs the CPU of about five figures; with the example check's 7 figures on a
# loaded 2-core machine the pool took 19 s of wall time against 11 s without it
POOL_FIGURES = 8


@dataclass
class Context:
    """What sections read: the results folder (cells, estimates, problem units, manifest, traces,
    artifacts) and where to draw.

    With a ``pool`` (an executor of processes), figures are drawn there while the sections go on, and
    by this process too once they are done (``drawn``); the pool is used only once POOL_FIGURES
    figures are to be drawn (fewer are drawn here: a spawned process's start-up costs more). With
    ``code`` (``digest.code_digest``), each figure gets its key (``digest.figure_key``, in ``keys``),
    and one whose key is its ``reusable`` one (the last report's figure, still intact) is not drawn
    again."""

    store: ResultsStore
    figure_dir: Path
    pool: Executor | None = None
    code: str | None = None
    reusable: Mapping[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # figure file name -> key, of every keyed figure
    _arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    _drawing: list[tuple[Future[Path], Callable[[], Path]]] = field(default_factory=list, repr=False)
    _waiting: list[Callable[[], Path]] = field(default_factory=list, repr=False)  # not yet handed to the pool
    figures: list[Path] = field(default_factory=list, repr=False)  # every figure this report shows
    reused: list[Path] = field(default_factory=list, repr=False)  # those kept as the last report drew them

    @cached_property
    def rows(self) -> pd.DataFrame:
        """The cell table (``schema.CELL_COLUMNS``)."""
        return self.store.rows()

    @cached_property
    def estimates(self) -> pd.DataFrame:
        """The long estimates table of cells and problem units (``schema.ESTIMATE_COLUMNS``)."""
        return self.store.estimates()

    @cached_property
    def problems(self) -> pd.DataFrame:
        """The problem units, one row each (``schema.PROBLEM_COLUMNS``)."""
        return self.store.problems()

    @cached_property
    def manifest(self) -> dict[str, Any]:
        try:
            return self.store.manifest()
        except FileNotFoundError:
            return {}

    def trace(self, digest: str) -> np.ndarray | None:
        """The cell's training loss per SVI step, or None when the store has none."""
        try:
            return self.store.trace(digest)
        except FileNotFoundError:
            return None

    def artifacts(self, digest: str) -> dict[str, np.ndarray]:
        """The cell's named arrays ({} when it has none), read once per report."""
        if digest not in self._arrays:
            try:
                self._arrays[digest] = self.store.artifacts(digest)
            except FileNotFoundError:
                self._arrays[digest] = {}
        return self._arrays[digest]

    def figure(self, name: str) -> Path:
        """Path of a new figure file, named from ``name`` (made safe for file systems and URLs)."""
        return paths.inside(self.figure_dir, f"{slug(name)}.png")  # never a link followed out

    def draw(
        self,
        name: str,
        function: Callable[..., Path],
        *args: Any,
        prepare: Callable[..., tuple[Any, ...]] | None = None,
    ) -> Path:
        """The path of figure ``name``, drawn by ``function(*args, path)``: here and now, or handed to
        the pool (``function`` and ``args`` then travel by pickle, so ``function`` is a module-level
        one) and written by the time ``drawn`` returns; or kept as the last report drew it, when its
        key (``digest.figure_key``, of ``args``) is the reusable one. ``prepare`` computes what the
        figure shows from ``args`` (a density from draws, say), here and only when the figure is drawn:
        ``function(*prepare(*args), path)``; drawing code then computes nothing."""
        path = self.figure(name)
        self.figures.append(path)
        key = figure_key(self.code, function, args) if self.code is not None else None
        if key is not None:
            self.keys[path.name] = key
            if self.reusable.get(path.name) == key:
                self.reused.append(path)
                return path
        if prepare is not None:
            args = prepare(*args)
        if self.pool is None:
            return function(*args, path)
        self._waiting.append(partial(function, *args, path))
        if len(self._drawing) + len(self._waiting) >= POOL_FIGURES:
            waiting, self._waiting = self._waiting, []
            self._drawing += [(self.pool.submit(draw.func, *draw.args), draw) for draw in waiting]
        return path

    def drawn(self) -> None:
        """Wait until every figure handed to the pool is written. Meanwhile this process draws those the
        pool has not started on, from the last one back while the pool works from the first one on; a
        figure's error is raised here."""
        drawing, self._drawing = self._drawing, []
        waiting, self._waiting = self._waiting, []
        for draw in waiting:
            draw()
        for future, draw in reversed(drawing):
            if future.cancel():
                draw()
        for future, _ in drawing:
            if not future.cancelled():
                future.result()


class Section(Protocol):
    """A report section: a title, and blocks built from the context (none: the section has nothing to
    say and is left out). Its capabilities, declared by every section (``SectionDefaults`` gives the
    defaults: nothing): ``headline(context) -> list[Block]``: a few sentences (and at most a small
    figure or table) with this run's numbers, shown on the report's first screen; ``summary(context)
    -> str``: what of its data this run holds, in a phrase ("" when nothing); ``cost(context) ->
    list[Block]``: the time its study took, shown under the cost section; ``without_cells``: its
    headline reads no cell (shown for a folder without cells too)."""

    title: str
    without_cells: bool

    def build(self, context: Context) -> list[Block]: ...

    def headline(self, context: Context) -> list[Block]: ...

    def summary(self, context: Context) -> str: ...

    def cost(self, context: Context) -> list[Block]: ...


class SectionDefaults:
    """What a section says where it has nothing to add: no headline, no summary, no cost; its headline
    (none) needs cells. A section inherits these and defines what it has."""

    without_cells: bool = False

    def headline(self, context: Context) -> list[Block]:
        return []

    def summary(self, context: Context) -> str:
        return ""

    def cost(self, context: Context) -> list[Block]:
        return []


CAPABILITIES = ("title", "without_cells", "build", "headline", "summary", "cost")


def _follows_the_protocol(section: Section) -> str | None:
    """Why ``section`` is not a Section (the capabilities it does not declare), or None."""
    missing = [name for name in CAPABILITIES if not hasattr(section, name)]
    if missing:
        return (
            f"report section {type(section).__name__} does not declare {', '.join(missing)} "
            "(inherit document.SectionDefaults for the defaults)"
        )
    return None


SECTIONS: Registry[Section] = Registry(
    "report section",
    key=lambda section: section.title,
    entry_points="ppl_suite.report_sections",
    check=_follows_the_protocol,
    ordered=True,
)


def register(section: Section) -> Section:
    """Add a section at the end of the report (a second section with the same title replaces it)."""
    return SECTIONS.register(section, replace=True)


def registered() -> list[Section]:
    """The sections registered so far, in registration order (``order.sections`` puts them in report
    order, after importing every module of this package)."""
    return SECTIONS.plugins()


def slug(text: str) -> str:
    """Lower-case letters, digits and single hyphens: a safe file name and HTML anchor."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"
