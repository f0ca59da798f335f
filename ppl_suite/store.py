"""The results folder: the only writer of results, and the cache of finished units of work.

    RESULTS/
      manifest.json            what was run: schema version, config, this run's cells and problem
                               units with their digests, versions, commit, host, times; a folder is a
                               results folder by this file
      cells/<digest>.json      one row per cell, written atomically (temp file + rename)
      traces/<digest>.npy      the cell's training loss (-ELBO estimate) per SVI step
      artifacts/<digest>.npz   the cell's named arrays: fitted phi and theta, draws, curves
      problems/<digest>.json   one row per problem unit (guide-free estimators, once per problem)
      estimates/<digest>.json  the unit's rows of the long estimates table
      rows.parquet             this run's cells as one table (``schema.CELL_COLUMNS``)
      estimates.parquet        this run's estimates, cells' and problem units' (``schema.ESTIMATE_COLUMNS``)
      problems.parquet         this run's problem units (``schema.PROBLEM_COLUMNS``)
      run.lock                 held by the run writing the folder (one run per folder)
      run.holder.json          the PID, host and start time of that run
      logs/error-<time>.log    the traceback of an internal error
      kept/<study>/...         files a study keeps (``ppl-suite check``'s draws), written through
                               ``write_kept`` (temp file + rename) and read through ``kept_file``

Every path is resolved through ``ppl_suite.paths`` (no ``..``, no symbolic link followed), and every
file read is checked against its schema: a damaged file is named (``DamagedFile`` for the manifest,
a damaged unit is rerun), a manifest of a newer schema is refused, never rewritten.

``digest`` hashes everything that changes a unit's numbers: its definition, the versions of the
numerical packages and the source of the code it runs (its model, guide family, the backends, the
estimators and the evaluation). A rerun reuses a stored unit only when its digest matches and it
finished ok; anything else is run again. Nothing but the files named above is ever written or
removed, so a user's own files in the folder are left alone: a temporary file of an interrupted write
is removed only when its name carries the suite's marker (``.<name>.XXXXXXXX.ppl-suite-partial``).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import io
import json
import os
import platform
import re
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ppl_suite import paths, schema, studies
from ppl_suite.cell import Cell, Record, Unit
from ppl_suite.cell_columns import cell_rows
from ppl_suite.errors import InputProblem
from ppl_suite.schema import SCHEMA_VERSION

MANIFEST = "manifest.json"
ROWS = "rows.parquet"
ESTIMATES = "estimates.parquet"
PROBLEMS = "problems.parquet"
TABLES = (ROWS, ESTIMATES, PROBLEMS)
LOCK = "run.lock"
HOLDER = "run.holder.json"
LOGS = "logs"
KEPT = "kept"  # kept/<study>/...: the files a study keeps beside the runs' (``write_kept``)
KEPT_NAME = re.compile(r"[a-z_]+(\.(nc|json|npz))?")  # the names write_kept gives: --fresh removes these
# the studies' (``ppl_suite.studies``): their tables as <folder>/<table>.parquet, their kept work as
# <folder>/parts/<digest>.<kind>.<suffix>, each file claimed by one study (``Study.owns_part``)
VAE = "vae"  # the VAE and VQ-VAE studies' folder, for the vae_* methods (their names from before plug-ins)
STUDY_PART = re.compile(r"[0-9a-f]{16}\.[a-z_]+\.(parquet|npz)")  # <digest>.<kind>.<suffix>
# folder -> suffix of <digest>.<suffix>; the row's file (the first) is written last
CELL_FILES = {"cells": "json", "traces": "npy", "artifacts": "npz", "estimates": "json"}
PROBLEM_FILES = {"problems": "json", "estimates": "json"}
UNIT_FILES = CELL_FILES | PROBLEM_FILES
DIGEST = re.compile(r"[0-9a-f]{16}")
PROBE = "ppl-suite-probe"  # the writability probe's name (``unwritable``), a temporary file of its own
PARTIAL = ".ppl-suite-partial"  # the marker of a temporary file: a name only _atomic_write gives
TEMPORARY = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}" + re.escape(PARTIAL))  # .<name>.XXXXXXXX<PARTIAL>
ROW_FILE = re.compile(DIGEST.pattern + r"\.json")  # <digest>.json: a unit's row, or its estimates
ERROR_LOG = re.compile(r"error-[0-9T:+-]+\.log")

NUMERICAL_PACKAGES = ("torch", "pyro-ppl", "jax", "jaxlib", "numpyro", "numpy", "scipy", "arviz")
# The code every cell runs: the evaluation (and what it imports), and the packages of plug-ins, whose
# modules are chosen by name at run time (so following imports cannot tell which one runs): all count.
EVALUATION_MODULES = ("ppl_suite.execute", "ppl_suite.executors.worker")
PLUGIN_PACKAGES = ("ppl_suite.backends", "ppl_suite.estimators", "ppl_suite.targets")


# ------------------------------------------------------------------------------------------ the digest
@functools.cache
def package_versions(packages: tuple[str, ...] = NUMERICAL_PACKAGES) -> dict[str, str]:
    """Installed versions of ``packages`` ("absent" when not installed); by default those that
    compute a cell's numbers."""
    found = {}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "absent"
    return found


_module_files: dict[str, Path] = {}


def _module_file(name: str) -> Path | None:
    """The source file of module ``name`` when its top-level package (or module) is imported, found
    by path so that nothing is imported: a module of the project, of the models or of a plug-in."""
    if name not in _module_files and (path := _find_module_file(name)) is not None:
        _module_files[name] = path
    return _module_files.get(name)


def _find_module_file(name: str) -> Path | None:
    top, *rest = name.split(".")
    module = sys.modules.get(top)
    origin = getattr(module, "__file__", None)
    if origin is None:
        return None
    origin = Path(origin)
    if not rest:
        return origin if origin.is_file() else None  # '<stdin>': a script read from standard input
    if origin.name != "__init__.py":  # a plain module has no submodules
        return None
    base = origin.parent.joinpath(*rest)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def _source(path: Path, module: str) -> tuple[str, tuple[str, ...]]:
    """sha256 of a source file and the modules it imports (anywhere in it, relative ones resolved)."""
    text = path.read_bytes()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    imported: list[str] = []
    for node in _import_statements(ast.parse(text).body):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            imported += [base, *(f"{base}.{alias.name}" for alias in node.names)]  # a name may be a module
    return hashlib.sha256(text).hexdigest(), tuple(imported)


def _import_statements(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements of a block and of every block nested in it (functions, ifs, trys...)."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        for block in ("body", "orelse", "finalbody", "handlers", "cases"):
            yield from _import_statements(getattr(node, block, []))


def _package_modules(package: str) -> list[str]:
    """Every module of an imported package's folder (not its subpackages')."""
    init = _module_file(package)
    if init is None or init.name != "__init__.py":
        return [package]
    return [package] + [
        f"{package}.{p.stem}" for p in sorted(init.parent.glob("*.py")) if p.stem != "__init__"
    ]


@functools.cache
def source_hash(roots: tuple[str, ...], through: tuple[str, ...] = ()) -> str:
    """sha256 of the source of ``roots`` and of every module they import that lives in their own
    top-level packages or beside them (a user's helper module in the folder of the top-level module
    importing it: ``priors.py`` beside ``model.py``), followed transitively; third-party modules count
    through their versions. ``through``: modules whose imports are followed but whose own text is not
    hashed (a script defining a function kept by its content digest: ``functions_source_hash``)."""
    follow = {root.partition(".")[0] for root in roots}
    beside = {folder for name in (*roots, *through) if (folder := _top_folder(name)) is not None}
    seen: dict[str, str] = {}
    files = {name: path for name in through if (path := _module_file(name)) is not None}
    pending = list(roots) + [imported for name, path in files.items() for imported in _source(path, name)[1]]
    while pending:
        name = pending.pop()
        top = name.partition(".")[0]
        if name in seen or (top not in follow and _top_folder(top) not in beside):
            continue
        path = _module_file(name)
        if path is None:
            continue
        follow.add(top)
        seen[name], imported = _source(path, name)
        parents = [name.rsplit(".", depth)[0] for depth in range(1, name.count(".") + 1)]
        pending += [*imported, *parents]
    return hashlib.sha256(json.dumps(sorted(seen.items())).encode()).hexdigest()


def _top_folder(name: str) -> Path | None:
    """The folder holding the top-level module (or package) ``name``, when it is imported and has a
    file; None for a submodule's name."""
    if "." in name or (path := _module_file(name)) is None:
        return None
    return path.parent.parent if path.name == "__init__.py" else path.parent


def functions_source_hash(functions: Iterable[Any]) -> str:
    """sha256 of the source defining ``functions`` (the callables of a model registered by a
    plug-in): their modules (``source_hash``). A function carrying a ``content_digest`` (one kept in
    this process, ``checking.sources.function_text``: the digest covers its code, closure and the
    globals it reads) counts by that digest and by the user's modules its module imports beside it,
    not by the rest of its module: an edit elsewhere in the script defining it changes nothing."""
    found = [f for f in functions if callable(f) and getattr(f, "__module__", None)]
    digests = sorted({str(f.content_digest) for f in found if getattr(f, "content_digest", None)})
    kept = sorted({f.__module__ for f in found if getattr(f, "content_digest", None)})
    modules = sorted({f.__module__ for f in found if not getattr(f, "content_digest", None)})
    text = source_hash(tuple(modules), tuple(kept)) + "".join(digests)
    return hashlib.sha256(text.encode()).hexdigest()


def model_source_hash(model: str) -> str:
    """sha256 of the source defining a model: the modules of its folder, or, for a model registered by
    a plug-in, of its spec's functions and of its implementations (``functions_source_hash``)."""
    from ppl_suite import registry

    try:
        spec = registry.get(model)
    except KeyError:
        return source_hash(())
    if spec.module:
        return source_hash(tuple(_package_modules(spec.module)))
    functions = [getattr(spec, f.name) for f in fields(spec)]
    functions += [registry.implementation(model, backend) for backend in registry.IMPLEMENTATION_MODULES]
    return functions_source_hash(functions)


def _guide_modules(guide: str | None) -> list[str]:
    from ppl_suite import guides

    if guide is None:
        return []
    try:
        return [type(guides.get(guide)).__module__]
    except KeyError:
        return []


@functools.cache
def code_hash(model: str, guide: str | None) -> str:
    """sha256 of the source a unit of ``model`` fitted with ``guide`` (None: a problem unit, no guide)
    runs: the model's modules, the guide family's, the evaluation with everything it imports, every
    backend and every estimator."""
    common = [*EVALUATION_MODULES, *(m for package in PLUGIN_PACKAGES for m in _package_modules(package))]
    parts = (source_hash(tuple(common)), model_source_hash(model), source_hash(tuple(_guide_modules(guide))))
    return hashlib.sha256("".join(parts).encode()).hexdigest()


def digest(unit: Unit) -> str:
    """sha256 of the unit's definition, the numerical packages' versions and the code's source, 16 hex
    digits: a change of any of them is a different unit."""
    if isinstance(unit, Cell):
        definition, guide = {"cell": asdict(unit)}, unit.guide
    else:
        definition, guide = {"problem": asdict(unit)}, None
    payload = {
        **definition,
        "versions": package_versions(),
        "code": code_hash(unit.model, guide),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------- the files
@functools.cache
def _file_mode() -> int:
    """Permissions of a new results file: 0o666 less the user's umask (mkstemp alone gives 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _atomic_write(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=PARTIAL)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), _file_mode())
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def unwritable(path: Path) -> str | None:
    """Why a folder cannot be created or written at ``path`` (a sentence), or None when it can.

    Tried, not guessed from permission bits (which say nothing of read-only file systems, ``/proc``
    or network mounts): a probe file is created and removed in ``path``, or, when ``path`` does not
    exist yet, in the nearest folder above it that does (``path`` itself is not created)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        return f"{path} is a file, not a folder"
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"cannot create {path}: {existing} is a file"
    try:
        # created, then removed on leaving; one left by a killed process is a temporary file the
        # suite removes (``temporary_files``) and never a reason to call the folder foreign
        with tempfile.NamedTemporaryFile(dir=existing, prefix=f".{PROBE}.", suffix=PARTIAL):
            pass
    except OSError as error:
        why = error.strerror or type(error).__name__
        return f"{path} is not writable ({why})" if existing == path else f"cannot create {path} ({why})"
    return None


class FolderBusy(Exception):
    """Another run holds the folder's lock; the message names it."""


class DamagedFile(InputProblem):
    """A file of a results folder that does not hold what its schema says (the message names it and
    why), or that a newer version of the suite wrote."""


# every name the suite reads or writes in a results folder (the studies' folders added where it is
# asked, ``_study_folders``): none may be a symbolic link, nor lie under one
SUITE_NAMES = (MANIFEST, LOCK, HOLDER, *TABLES, LOGS, *UNIT_FILES, KEPT)
MANIFEST_LISTS = {  # the manifest's lists, and the pattern of their entries (None: any string)
    schema.MANIFEST_CELLS: None,
    schema.MANIFEST_PROBLEMS: None,
    schema.MANIFEST_DIGESTS: DIGEST,
    schema.MANIFEST_PROBLEM_DIGESTS: DIGEST,
}
CELL_ROW_KEYS = (
    schema.KEY,
    schema.STATUS,
    schema.DIGEST,
    schema.VERSION,
    schema.MODEL,
    schema.BACKEND,
    schema.GUIDE,
)
PROBLEM_ROW_KEYS = (schema.KEY, schema.STATUS, schema.DIGEST, schema.VERSION, schema.MODEL)


def manifest_damage(value: Any) -> str | None:
    """Why a parsed manifest does not follow its schema (a phrase), or None: an object with an integer
    schema version and, where present, lists of keys and of digests (16 hex digits)."""
    if not isinstance(value, dict):
        return f"a JSON {type(value).__name__} where an object is expected"
    if schema.VERSION not in value:
        return f"no {schema.VERSION!r}: not a manifest of ppl-suite"
    version = value[schema.VERSION]
    if isinstance(version, bool) or not isinstance(version, int):
        return f"{schema.VERSION!r} is {version!r}, not an integer"
    for key, pattern in MANIFEST_LISTS.items():
        entries = value.get(key, [])
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            return f"{key!r} is not a list of strings"
        if pattern is not None and (bad := [e for e in entries if not pattern.fullmatch(e)]):
            return f"{key!r} holds {bad[0]!r}, not 16 hex digits"
    return None


def row_damage(row: Any, name: str, cell: bool) -> str | None:
    """Why a stored unit row (``cells/<name>.json`` or ``problems/<name>.json``) does not follow its
    schema (a phrase), or None: an object with the identity and status keys, its own digest, this
    suite's schema version at most and, for a finished cell, the file of its fitted parameters."""
    if not isinstance(row, dict):
        return f"a JSON {type(row).__name__} where an object is expected"
    missing = [key for key in (CELL_ROW_KEYS if cell else PROBLEM_ROW_KEYS) if key not in row]
    if cell and row.get(schema.STATUS) == schema.OK and schema.FITTED_PARAMS not in row:
        missing.append(schema.FITTED_PARAMS)
    if missing:
        return f"no {', '.join(missing)}"
    if row[schema.DIGEST] != name:
        return f"its digest {row[schema.DIGEST]!r} is not its name's"
    version = row[schema.VERSION]
    if isinstance(version, bool) or not isinstance(version, int) or version > SCHEMA_VERSION:
        return f"schema version {version!r}; this suite writes {SCHEMA_VERSION}"
    if not isinstance(row[schema.KEY], str) or not isinstance(row[schema.STATUS], str):
        return "its key or status is not a string"
    if cell and (
        wrong := [
            key
            for key in schema.NUMERIC_CELL_COLUMNS
            if row.get(key) is not None
            and (isinstance(row[key], bool) or not isinstance(row[key], int | float))
        ]
    ):
        return f"{', '.join(wrong)} not a number"
    return None


@dataclass(frozen=True)
class StoredCell:
    """What the folder holds for a cell: the stored row's status (None when it holds no row) and, when
    its files cannot be used, why (``damage``)."""

    digest: str
    status: str | None
    damage: str | None = None

    @property
    def reusable(self) -> bool:
        return self.status == schema.OK and self.damage is None


class ResultsStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # ------------------------------------------------------------------------------------ the folder
    def file(self, *parts: str) -> Path:
        """The path of ``parts`` inside the folder, refusing one that leaves it (``paths.inside``)."""
        return paths.inside(self.path, *parts)

    def is_results_folder(self) -> bool:
        """True when the folder holds a manifest.json (which ``manifest`` reads and checks)."""
        return paths.is_own_file(self.path / MANIFEST)

    def problem(self, exports: Sequence[str] = ()) -> str | None:
        """Why a run cannot write this folder (a sentence), or None: it must be a results folder (its
        manifest whole and not newer), an empty or missing folder, and writable, and none of the
        names the suite writes in it a symbolic link. ``exports``: files a command writes at its top
        besides (``ppl-suite calibrate``'s CSVs): never links; a folder of only these is taken as new."""
        reason = unwritable(self.path)
        if reason is None and self.path.is_dir():
            names = (*SUITE_NAMES, *self._study_folders(), *exports)
            reason = "; ".join(paths.links(self.path, names)) or None
        if reason is not None or not self.path.exists():
            return reason
        if (self.path / MANIFEST).exists():
            try:
                self.manifest()
            except DamagedFile as error:
                return str(error)
            return None
        own = {LOCK, HOLDER, *exports} | {p.name for p in self.temporary_files()}
        foreign = sorted(
            p.name
            for p in self.path.iterdir()
            if p.name not in own or (p.name in exports and not paths.is_own_file(p))
        )
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            return (
                f"{self.path} is not empty ({shown}) and is not a results folder (no {MANIFEST}); "
                "choose a new or empty folder for --out"
            )
        return None

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder's lock (an OS file lock, released by the kernel if the process dies, so a
        killed run leaves no stale lock); raises FolderBusy naming the holder when another run has it."""
        from filelock import FileLock, Timeout

        self.path.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.file(LOCK), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise FolderBusy(f"{self.path} is in use by another run ({self._holder()})") from None
        try:
            holder = {"pid": os.getpid(), "host": platform.node(), "started": now()}
            _atomic_write(self.file(HOLDER), json.dumps(holder).encode())
            yield
        finally:
            paths.remove(self.path, HOLDER)
            lock.release()

    def _holder(self) -> str:
        try:
            holder = json.loads(self.file(HOLDER).read_text())
            if not isinstance(holder, dict):
                raise ValueError
        except (OSError, ValueError, InputProblem):
            return "its PID is not known yet"
        return f"PID {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"

    def _own_files(self) -> Iterator[Path]:
        """Unit files named by a digest, the tables, error logs, kept files and temporary files of
        interrupted writes: the files a fresh start removes."""
        for folder, suffix in UNIT_FILES.items():
            yield from paths.files(self.path, folder, re.compile(DIGEST.pattern + re.escape(f".{suffix}")))
        yield from self.temporary_files()
        yield from (self.file(table) for table in TABLES)
        yield from paths.files(self.path, LOGS, ERROR_LOG)
        yield from self._study_files()
        yield from self._kept_files(KEPT_NAME)

    def _kept_files(self, pattern: re.Pattern[str]) -> Iterator[Path]:
        """The regular files under kept/ (at any depth, no link followed) whose names match ``pattern``."""
        top = self.file(KEPT)
        for folder, subfolders, names in os.walk(top):  # os.walk enters no linked folder
            subfolders[:] = sorted(name for name in subfolders if not Path(folder, name).is_symlink())
            found = (Path(folder, name) for name in sorted(names) if pattern.fullmatch(name))
            yield from (path for path in found if paths.is_own_file(path))

    def _study_files(self, chosen: list[str] | None = None) -> Iterator[Path]:
        """The tables and kept parts of the ``chosen`` studies (default: every study), temporary files
        of their killed writes apart."""
        for name in studies.names() if chosen is None else chosen:
            study = studies.get(name)
            yield from (self.file(study.folder, f"{table}.parquet") for table in study.tables)
            parts = paths.files(self.path, f"{study.folder}/{studies.PARTS}", STUDY_PART)
            yield from (path for path in parts if study.owns_part(path.name))

    @staticmethod
    def _study_folders() -> list[str]:
        """The studies' folders and their parts folders, relative to the results folder."""
        return [place for folder in studies.folders() for place in (folder, f"{folder}/{studies.PARTS}")]

    def temporary_files(self) -> list[Path]:
        """Temporary files left by writes that were killed: ``.<name>.XXXXXXXX.ppl-suite-partial``
        (a name only ``_atomic_write`` and ``write_kept`` give) beside a file the suite writes (a unit
        file, the manifest, a table, the holder file, a kept file at any depth of kept/, no link
        followed); a user's look-alike (``.manifest.json.original``) is not."""
        found = []
        for relative in ("", *self._study_folders(), *UNIT_FILES):
            for path in paths.files(self.path, relative, TEMPORARY):
                match = TEMPORARY.fullmatch(path.name)
                if match and self._is_own_name(path.parent, match["name"]):
                    found.append(path)
        kept = self._kept_files(TEMPORARY)  # beside a kept file (``write_kept``)
        return found + [path for path in kept if KEPT_NAME.fullmatch(TEMPORARY.fullmatch(path.name)["name"])]

    def _is_own_name(self, folder: Path, name: str) -> bool:
        if folder == self.path:
            return name in {MANIFEST, HOLDER, PROBE, *TABLES}
        relative = folder.relative_to(self.path).as_posix()
        if relative in studies.folders():
            return name in {f"{table}.parquet" for table in studies.table_names(relative)}
        if relative in self._study_folders():
            return STUDY_PART.fullmatch(name) is not None
        stem, _, suffix = name.partition(".")
        return DIGEST.fullmatch(stem) is not None and suffix == UNIT_FILES[folder.name]

    def clean_temporary(self) -> int:
        """Remove temporary files of killed writes; returns how many there were."""
        found = self.temporary_files()
        return sum(paths.remove(self.path, str(path.relative_to(self.path))) for path in found)

    def discard(self, *, vae_only: bool = False, only: list[str] | None = None) -> int:
        """Remove every unit file, table, error log, kept file (named as ``write_kept`` names them:
        ``KEPT_NAME``) and temporary file of the suite (``--fresh``), and the suite's subfolders when
        that leaves them empty; nothing else. ``only``: only these studies' tables and kept parts
        (``ppl-suite vae --fresh``), and the temporary files in their folders; ``vae_only``: every
        study's. Returns the file count."""
        if vae_only or only is not None:
            own = {self.file(folder) for folder in self._study_folders()}
            temporary = [path for path in self.temporary_files() if path.parent in own]
            found = [*self._study_files(only), *temporary]
        else:
            found = list(self._own_files())
        removed = sum(paths.remove(self.path, str(path.relative_to(self.path))) for path in found)
        kept = [] if vae_only or only is not None else list(os.walk(self.file(KEPT), topdown=False))
        folders = [Path(folder).relative_to(self.path).as_posix() for folder, _, _ in kept]
        for folder in (*UNIT_FILES, LOGS, *reversed(self._study_folders()), *folders):
            place = self.file(folder)
            if place.is_dir() and not any(place.iterdir()):
                place.rmdir()
        return removed

    def log_error(self, text: str) -> Path:
        """Write an internal error's traceback to logs/error-<time>.log; returns the file. Raises
        OSError when it cannot (logs/ a link included), so a caller falls back to another place."""
        try:
            path = self.file(LOGS, f"error-{datetime.now(UTC).strftime('%Y-%m-%dT%H-%M-%S')}.log")
        except paths.OutsideFolder as error:
            raise OSError(str(error)) from None
        _atomic_write(path, text.encode())
        return path

    # ---------------------------------------------------------------------------------- the manifest
    def write_manifest(self, manifest: dict[str, Any]) -> None:
        payload = {schema.VERSION: SCHEMA_VERSION, **manifest}
        _atomic_write(self.file(MANIFEST), json.dumps(payload, indent=2, default=str).encode())

    def manifest(self) -> dict[str, Any]:
        """The manifest, checked against its schema (``manifest_damage``); raises FileNotFoundError
        when there is none, DamagedFile naming it and why when it is damaged or of a newer schema."""
        path = self.file(MANIFEST)
        try:
            value = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as error:
            raise DamagedFile(f"{path} is damaged: {_reason(error)}") from None
        if (damage := manifest_damage(value)) is not None:
            raise DamagedFile(f"{path} is damaged: {damage}")
        if value[schema.VERSION] > SCHEMA_VERSION:
            raise DamagedFile(
                f"{path} has schema version {value[schema.VERSION]}, newer than this suite's "
                f"{SCHEMA_VERSION}: read and write it with the newer ppl-suite that wrote it"
            )
        return value

    # ------------------------------------------------------------------------------------- the units
    def stored(self, unit: Unit) -> StoredCell:
        """The stored state of a unit: its row's status, and whether its files are whole."""
        name = digest(unit)
        row_folder, *array_folders = _files(unit)
        path = self.file(row_folder, f"{name}.json")
        if not path.exists():
            return StoredCell(name, None)
        try:
            row = json.loads(path.read_bytes())
        except (OSError, ValueError) as error:
            return StoredCell(name, None, f"{row_folder}/{name}.json is unreadable ({type(error).__name__})")
        if (damage := row_damage(row, name, isinstance(unit, Cell))) is not None:
            return StoredCell(name, None, f"{row_folder}/{name}.json is damaged ({damage})")
        status = row[schema.STATUS]
        if status != schema.OK:
            return StoredCell(name, status)
        for folder in array_folders:
            relative = f"{folder}/{name}.{UNIT_FILES[folder]}"
            try:
                _read_file(self.file(relative))
            except FileNotFoundError:
                return StoredCell(name, status, f"{relative} is missing")
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
                return StoredCell(name, status, f"{relative} is unreadable ({type(error).__name__})")
        return StoredCell(name, status)

    def write(self, unit: Unit, record: Record) -> None:
        """The unit's files, its row last: a row on disk always has its arrays and estimates. A cell's
        row says where its fitted parameters are (``schema.FITTED_PARAMS``)."""
        name = digest(unit)
        row = {k: v for k, v in record.row.items() if k not in schema.EVALUATION_COLUMNS}  # in estimates
        row |= {schema.DIGEST: name, schema.VERSION: SCHEMA_VERSION}
        if isinstance(unit, Cell):
            buffer = io.BytesIO()
            np.save(buffer, np.asarray(record.losses, dtype=float))
            _atomic_write(self.file("traces", f"{name}.npy"), buffer.getvalue())
            buffer = io.BytesIO()
            np.savez(buffer, **record.artifacts)
            _atomic_write(self.file("artifacts", f"{name}.npz"), buffer.getvalue())
            row[schema.FITTED_PARAMS] = f"artifacts/{name}.npz"
        _atomic_write(self.file("estimates", f"{name}.json"), _json(record.estimates))
        _atomic_write(self.file(_files(unit)[0], f"{name}.json"), _json(row))

    def unit_file(self, folder: str, digest_: str) -> Path:
        """``folder/<digest>.<suffix>`` (``UNIT_FILES``), refusing a digest that is not 16 hex digits."""
        if not isinstance(digest_, str) or not DIGEST.fullmatch(digest_):
            raise DamagedFile(f"{digest_!r} in {self.path} is not a digest (16 hex digits)")
        return self.file(folder, f"{digest_}.{UNIT_FILES[folder]}")

    def trace(self, digest_: str) -> np.ndarray:
        return np.load(self.unit_file("traces", digest_), allow_pickle=False)

    def artifacts(self, digest_: str) -> dict[str, np.ndarray]:
        with np.load(self.unit_file("artifacts", digest_), allow_pickle=False) as arrays:
            return dict(arrays)

    def _digests(self, kind: str) -> list[str] | None:
        """The digests of the folder's last run (its manifest's ``kind``: "digests" for cells,
        "problem_digests" for problem units), or None when the manifest lists none."""
        try:
            return self.manifest().get(kind)
        except FileNotFoundError:
            return None

    def _records(self, folder: str, kind: str) -> list[Any]:
        """The JSON of every file of the last run's units in ``folder`` (every stored one where the
        manifest lists no digests); files not (or not wholly) written are left out."""
        names = self._digests(kind)
        if names is None:
            names = [p.stem for p in paths.files(self.path, folder, ROW_FILE)]
        found = []
        for name in names:
            try:
                row = json.loads(self.unit_file(folder, name).read_bytes())
            except (OSError, ValueError):
                continue  # this unit is missing from the table
            if row_damage(row, name, folder == "cells") is None:
                found.append(row)
        return found

    def rows(self) -> pd.DataFrame:
        """The cell table of the last run (each cell of its manifest that has a readable row), sorted by
        key, with its evaluation columns (``cell_columns.cell_rows``); in a folder whose manifest lists
        no digests, every stored row."""
        return _table(cell_rows(self._records("cells", schema.MANIFEST_DIGESTS), self.estimates()))

    def problems(self) -> pd.DataFrame:
        """The problem-unit table of the last run, sorted by key."""
        return _table(self._records("problems", schema.MANIFEST_PROBLEM_DIGESTS))

    def estimates(self) -> pd.DataFrame:
        """The long estimates table (``schema.ESTIMATE_COLUMNS``) of the last run's cells and problem
        units; in a folder whose manifest lists no digests, of every stored unit."""
        records = []
        for folder, kind in (
            ("cells", schema.MANIFEST_DIGESTS),
            ("problems", schema.MANIFEST_PROBLEM_DIGESTS),
        ):
            names = self._digests(kind)
            if names is None:
                names = [p.stem for p in paths.files(self.path, folder, ROW_FILE)]
            for name in names:
                try:
                    found = json.loads(self.unit_file("estimates", name).read_bytes())
                except (OSError, ValueError):
                    continue  # not (or not wholly) written: its estimates are missing from the table
                if isinstance(found, list) and all(isinstance(record, dict) for record in found):
                    records += found
        return schema.estimates_frame(records)

    # ------------------------------------------------------------------------------- the studies
    def write_study_table(self, study: str, name: str, frame: pd.DataFrame) -> None:
        """Write table ``name`` of ``study`` (``ppl_suite.studies``) as <its folder>/<name>.parquet,
        atomically."""
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        _atomic_write(self.file(studies.get(study).folder, f"{name}.parquet"), buffer.getvalue())

    def study_tables(self, folder: str) -> dict[str, pd.DataFrame]:
        """The tables the studies keep in ``folder``, by name ({} when the results folder holds none)."""
        files = {name: self.file(folder, f"{name}.parquet") for name in studies.table_names(folder)}
        return {name: pd.read_parquet(path) for name, path in files.items() if path.exists()}

    def write_part(self, study: str, digest_: str, kind: str, payload: bytes) -> None:
        """Write one part of ``study``'s kept work as <its folder>/parts/<digest>.<kind>, atomically."""
        _atomic_write(self._part_path(study, digest_, kind), payload)

    def part(self, study: str, digest_: str, kind: str) -> bytes | None:
        """The bytes of a part ``study`` kept (``write_part``), or None when it is not stored."""
        path = self._part_path(study, digest_, kind)
        return path.read_bytes() if paths.is_own_file(path) else None

    def _part_path(self, study: str, digest_: str, kind: str) -> Path:
        name = f"{digest_}.{kind}"
        if not STUDY_PART.fullmatch(name):
            raise ValueError(f"a study's part is <16 hex digits>.<kind>.<parquet|npz>, got {name!r}")
        return self.file(studies.get(study).folder, studies.PARTS, name)

    def write_vae_table(self, name: str, frame: pd.DataFrame) -> None:
        """Write one table of the VAE or the VQ-VAE study as vae/<name>.parquet, atomically."""
        study = next(s for s in studies.names() if name in studies.get(s).tables)
        self.write_study_table(study, name, frame)

    def write_vae_part(self, digest_: str, kind: str, payload: bytes) -> None:
        """Write one part of a VAE or VQ-VAE run's kept work as vae/parts/<digest>.<kind>, atomically."""
        self.write_part("vae", digest_, kind, payload)

    def vae_part(self, digest_: str, kind: str) -> bytes | None:
        """The bytes of a part kept under vae/parts/ (``write_vae_part``), or None when it is not stored."""
        return self.part("vae", digest_, kind)

    def vae_tables(self) -> dict[str, pd.DataFrame]:
        """The VAE and VQ-VAE studies' tables by name ({} when the folder holds none)."""
        return self.study_tables(VAE)

    # ------------------------------------------------------------------------ a study's kept files
    def kept_path(self, study: str, *parts: str) -> Path:
        """kept/<study>/<parts>: where a study keeps a file of its own (``paths.inside``: no ``..``,
        no link on the way)."""
        return self.file(KEPT, study, *parts)

    def write_kept(self, study: str, parts: Sequence[str], write: Callable[[Path], None]) -> Path:
        """``write(temporary)`` (a file beside kept/<study>/<parts>), then rename the temporary file
        there: a reader never sees half a file, a killed write leaves only a temporary file (removed
        by the next run). The file's name is ``KEPT_NAME`` (``--fresh`` removes such files under kept/,
        and only them). Returns the file."""
        path = self.kept_path(study, *parts)
        if not KEPT_NAME.fullmatch(path.name):
            raise ValueError(f"a kept file's name is {KEPT_NAME.pattern}, got {path.name!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=PARTIAL)
        os.close(fd)
        try:
            write(Path(tmp))
            os.chmod(tmp, _file_mode())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def kept_file(self, study: str, *parts: str) -> Path | None:
        """kept/<study>/<parts> when it is a regular file (``write_kept``'s), else None."""
        path = self.kept_path(study, *parts)
        return path if paths.is_own_file(path) else None

    def remove_kept(self, study: str, *parts: str) -> bool:
        """Remove the regular file kept/<study>/<parts>; returns whether there was one."""
        return paths.remove(self.path, KEPT, study, *parts)

    def finalize(self) -> pd.DataFrame:
        """Write rows.parquet, estimates.parquet and problems.parquet from the last run (each removed
        when it would be empty); return the cell table."""
        rows = self.rows()
        for table, frame in ((ROWS, rows), (ESTIMATES, self.estimates()), (PROBLEMS, self.problems())):
            if frame.empty:
                paths.remove(self.path, table)
            else:
                buffer = io.BytesIO()
                frame.to_parquet(buffer, index=False)
                _atomic_write(self.file(table), buffer.getvalue())
        return rows


def _files(unit: Unit) -> list[str]:
    """The folders of a unit's files, its row's first."""
    return list(CELL_FILES if isinstance(unit, Cell) else PROBLEM_FILES)


def _json(value: Any) -> bytes:
    return json.dumps(value, default=schema.plain).encode()


def _table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    return frame.sort_values(schema.KEY, kind="stable").reset_index(drop=True) if rows else frame


def _read_file(path: Path) -> None:
    """Read a .npy, every array of a .npz or a .json, raising if the file is missing, truncated or corrupt."""
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            dict(arrays)
    elif path.suffix == ".json":
        json.loads(path.read_bytes())
    else:
        np.load(path, allow_pickle=False)


def _reason(error: Exception) -> str:
    """A read error as a phrase: what was wrong with the bytes."""
    if isinstance(error, UnicodeDecodeError):
        return f"not UTF-8 text (byte {error.start})"
    if isinstance(error, json.JSONDecodeError):
        return f"not JSON ({error.msg} at line {error.lineno} column {error.colno})"
    return f"{type(error).__name__}: {error}"


def now() -> str:
    """The time in UTC, ISO 8601 to the second: the manifest's and the holder file's timestamps."""
    return datetime.now(UTC).isoformat(timespec="seconds")
