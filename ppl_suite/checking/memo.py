"""The memo of a whole check: checking again with nothing changed answers from the results folder,
without importing the user's files (so without JAX or torch), with the result a full re-check returns.

A check that finishes (status ``ok`` or ``checks failed``: every cell finished, so a re-check would
rerun none) writes ``kept/check/memo.json`` in its results folder, under the folder's lock: JSON data
only, never code,

    {"digest": digest of the call (below),
     "results": {file: sha256} of every file of the results folder (the memo, the lock and temporary
                files aside), "report": the same of the report folder (null: no report),
     "outcome": the runner's status, failed checks and report files (relative to the report folder),
     "matrix": the expanded plan (cells, problem units, skipped combinations, config)}

    digest = sha256(JSON of {the suite's code (sha256 of every file of the ppl_suite package),
                             the installed versions of the suite's requirements and numerical packages
                             (importlib.metadata), Python's version and platform,
                             the call: every argument that changes the outcome (models, guides, data,
                             backends, name, params, seeds, steps, estimators, NUTS settings, jobs,
                             results and report folders; files named by absolute path),
                             {file: sha256} of the user's files given (models, guides, data) and of
                             the user's own modules they import, {distribution: version} of the
                             installed distributions they import from (``checking.local_modules``:
                             an import it cannot account for, no memo)})

The next check validates the folders and caches as the full check does (``runner.folder_problems``; a
problem: the full check runs and refuses it), then computes the digest (reading files, importing none of
them); when it equals the memo's, and every file of the results folder and of the report folder is still
the one recorded (nothing added, removed, changed, nor any symbolic link inside), it returns the
recorded outcome: the cell table and the problem units are read from the folder as the runner reads
them, the report is not rewritten, and with ``progress`` the same lines are printed as by a re-check
that reuses every cell. Such a hit writes no results: only the results folder's lock, held while the
folders are compared (so that a folder being written is not read), creates its lock file and writes and
removes the holder file, and the validation creates and removes a probe file. Both folders are hashed
whole (the draws' NetCDF files too): the hit's cost grows with them (``docs/api.md``). Any other memo
(missing, damaged, unreadable, another digest, a changed file) means the check runs in full and writes
the memo again.

A memo applies to a call whose inputs are all files or plain values: models and guides named
``FILE.py:NAME`` (not the running script's own file), data a file, a dict of NumPy arrays, numbers and
strings, or none; ``args``/``kwargs`` of such values. Any other call (a function given, a DataFrame,
a tensor) runs in full (its cells still reused). What the digest cannot see: modules imported from a
computed name (``importlib.import_module(name)``, ``exec``) and files the user's code reads (a CSV
read by a data function): after changing those, check with ``recheck=True`` (``--recheck``), which
runs in full (cells and reference reused where they match) and rewrites the memo; ``fresh=True``
refits too. The reference cache is not consulted by a memo hit: the numbers are the results folder's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ppl_suite import paths
from ppl_suite.checking.local_modules import SUITE, Unaccounted, local_sources
from ppl_suite.checking.sources import DATA_SUFFIXES, in_process, running_main
from ppl_suite.store import HOLDER, LOCK, NUMERICAL_PACKAGES, TEMPORARY, FolderBusy, ResultsStore

if TYPE_CHECKING:
    from ppl_suite.runner import OnEvent, Outcome

STUDY = "check"
MEMO = "memo.json"
FORMAT = 1
PACKAGES = ("ppl-suite", *NUMERICAL_PACKAGES, "xarray", "h5netcdf", "netCDF4", "cloudpickle")
SKIPPED = {LOCK, HOLDER}  # files of the results folder that a re-check may change without meaning


class NotMemoizable(Exception):
    """An input the digest cannot cover without running it (a function, a DataFrame, a tensor)."""


@dataclass(frozen=True)
class Call:
    """A check's call as the memo sees it: its digest, results folder and report folder (None: no
    report), named as the call names them."""

    digest: str
    out: Path
    report: Path | None
    jobs: int | None = None


@cache
def code_hash() -> str:
    """sha256 of every file of the ppl_suite package (its modules and profiles; bytecode aside)."""
    digest = hashlib.sha256()
    for folder, subfolders, files in os.walk(SUITE):
        subfolders[:] = sorted(name for name in subfolders if name != "__pycache__")
        for name in sorted(files):
            path = Path(folder, name)
            digest.update(f"{path.relative_to(SUITE).as_posix()}\0".encode() + path.read_bytes())
    return digest.hexdigest()


@cache
def versions() -> dict[str, str]:
    """Installed versions of the suite's requirements and of the numerical packages ("absent": none)."""
    names = set(PACKAGES)
    try:
        requirements = metadata.requires("ppl-suite") or []
    except metadata.PackageNotFoundError:
        requirements = []
    for requirement in requirements:
        if "extra ==" not in requirement and (found := re.match(r"[A-Za-z0-9_.-]+", requirement)):
            names.add(found.group())
    found = {}
    for name in sorted(names):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def _code_file(text: Any, files: list[Path]) -> str | None:
    """``FILE.py:NAME`` with the file made absolute (and added to ``files``); a name (a guide
    family) as it is."""
    if text is None:
        return None
    if not isinstance(text, str) or in_process(text):
        raise NotMemoizable
    path, colon, name = text.rpartition(":")
    if not colon or not path.endswith(".py"):
        return text  # a guide family's name, or a text the full check refuses
    file = Path(path)
    if not file.is_file() or running_main(file) is not None:
        raise NotMemoizable
    files.append(file)
    return f"{file.resolve()}:{name}"


def _value(value: Any) -> Any:
    """A JSON value standing for a numeric argument: an array by dtype, shape and sha256."""
    if isinstance(value, np.ndarray | np.generic) and value.dtype.kind in "biufc":
        array = np.ascontiguousarray(value)
        return {"array": array.dtype.str, "shape": list(array.shape), "sha256": _sha256(array.tobytes())}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_value(item) for item in value]
    if isinstance(value, Mapping) and all(isinstance(key, str) for key in value):
        return {"mapping": {key: _value(item) for key, item in value.items()}}
    raise NotMemoizable


def _data(data: Any, files: list[Path]) -> Any:
    if isinstance(data, str) and data.endswith(DATA_SUFFIXES):
        files.append(Path(data))
        return str(Path(data).resolve())
    if isinstance(data, str) and ".py:" in data:
        return _code_file(data, files)
    return _value(data)


def describe(arguments: Mapping[str, Any], name_of: Callable[[dict[str, str]], str]) -> Call | None:
    """The memo's view of a check called with ``arguments`` (``check``'s parameters by name); None
    where some input cannot be hashed without running it, or names a missing file (the full check
    says what is wrong). ``name_of``: the check's default name of its models' texts."""
    files: list[Path] = []
    try:
        models = {
            library: _code_file(arguments[library], files)
            for library in ("numpyro", "pyro", "model")
            if arguments[library] is not None
        }
        call = {
            **models,
            "guides": [_code_file(g, files) for g in arguments["guides"]] if arguments["guides"] else None,
            "data": _data(arguments["data"], files),
            "args": _value(arguments["args"]),
            "kwargs": _value(arguments["kwargs"]),
            **{
                key: _value(arguments[key])
                for key in ("backend", "backends", "name", "params", "seeds", "steps", "estimators", "nuts")
            },
            "jobs": _value(arguments["jobs"]),
        }
        sources = local_sources(*files)
    except (NotMemoizable, Unaccounted, OSError):
        return None
    if not models or not all(isinstance(text, str) for text in models.values()):
        return None
    given, report = arguments["name"], arguments["report"]
    if given is not None and not (isinstance(given, str) and given.isidentifier()):
        return None  # the full check refuses it: no memo path is built from it
    if not isinstance(arguments["out"], str | Path | None) or not isinstance(
        report, str | Path | bool | None
    ):
        return None
    name = given or name_of(dict(models))
    out = Path(arguments["out"]) if arguments["out"] is not None else Path("results") / f"check-{name}"
    if report is False:
        folder = None
    else:
        folder = Path("reports") / f"check-{name}" if report in (None, True) else Path(report)
    call |= {"out": str(out.resolve()), "report": str(folder.resolve()) if folder else None}
    payload = {
        "memo": FORMAT, "code": code_hash(), "versions": versions(),
        "python": [sys.version, platform.machine(), platform.system()], "call": call,
        "files": sources.files, "distributions": sources.distributions,
    }  # fmt: skip
    jobs = arguments["jobs"] if isinstance(arguments["jobs"], int) else None
    return Call(_sha256(json.dumps(payload, sort_keys=True).encode()), out, folder, jobs)


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def folder_files(folder: Path, skipped: frozenset[str] = frozenset()) -> dict[str, str] | None:
    """{relative name: sha256} of every regular file under ``folder`` (``skipped`` names and temporary
    files aside); None when something in it is a symbolic link or not a regular file or folder (the
    memo follows no link), or cannot be read. An absent folder has no files."""
    if not folder.is_dir():
        return {}
    found = {}
    try:
        for place, subfolders, names in os.walk(folder):
            for name in [*subfolders, *names]:
                path = Path(place, name)
                if path.is_symlink() or not (path.is_dir() or paths.is_own_file(path)):
                    return None
            for name in names:
                relative = Path(place, name).relative_to(folder).as_posix()
                if relative not in skipped and not TEMPORARY.fullmatch(name):
                    found[relative] = _sha256(Path(place, name).read_bytes())
    except OSError:
        return None
    return dict(sorted(found.items()))


def _results_files(store: ResultsStore) -> dict[str, str] | None:
    """The results folder's files but the memo, the lock and the lock's holder."""
    memo = store.kept_path(STUDY, MEMO).relative_to(store.path).as_posix()
    return folder_files(store.path, frozenset({*SKIPPED, memo}))


def _tuples(value: Any) -> Any:
    """Lists back to the tuples a frozen Cell holds."""
    return tuple(_tuples(item) for item in value) if isinstance(value, list | tuple) else value


def _matrix_json(matrix: Any) -> dict[str, Any]:
    return {
        "cells": [dataclasses.asdict(cell) for cell in matrix.cells],
        "problems": [dataclasses.asdict(unit) for unit in matrix.problems],
        "skipped": list(matrix.skipped),
        "config": matrix.config,
    }


def _matrix(values: Mapping[str, Any]) -> Any:
    from ppl_suite.backends import SVIConfig
    from ppl_suite.cell import Cell, ProblemUnit
    from ppl_suite.matrix import Matrix

    def unit(kind: type, fields: Mapping[str, Any]) -> Any:
        tuples = {key: _tuples(fields[key]) for key in ("overrides", "estimators") if key in fields}
        svi = {"svi": SVIConfig(**fields["svi"])} if "svi" in fields else {}
        return kind(**{**fields, **tuples, **svi})

    return Matrix(
        cells=[unit(Cell, fields) for fields in values["cells"]],
        skipped=[str(reason) for reason in values["skipped"]],
        config=dict(values["config"]),
        problems=[unit(ProblemUnit, fields) for fields in values["problems"]],
    )


def remember(
    call: Call, folder: Path, model: str, report_files: Mapping[str, Path], outcome: Outcome | None
) -> None:
    """Write the memo of a check that ran in full (its results ``folder``, ``model`` name, report files
    and the runner's outcome) into its results folder (under the folder's lock), or remove a memo
    there when the check left something to rerun. A memo that cannot be written is no error: the next
    check runs in full."""
    from ppl_suite import runner

    store = ResultsStore(folder)
    files = {kind: Path(path) for kind, path in report_files.items()}
    memorable = (
        Path(folder) == call.out and outcome is not None
        and outcome.status in (runner.OK, runner.CHECKS_FAILED)  # every cell done: nothing to rerun
        and outcome.matrix is not None and not outcome.matrix.studies and not outcome.study_tables
        and all(call.report is not None and path.parent == call.report for path in files.values())
    )  # fmt: skip
    try:
        with store.locked():
            results = _results_files(store) if memorable else None
            report = folder_files(call.report) if memorable and call.report is not None else None
            if results is None or (call.report is not None and report is None):
                store.remove_kept(STUDY, MEMO)
                return
            memo = {
                "memo": FORMAT, "digest": call.digest, "results": results, "report": report,
                "outcome": {
                    "status": outcome.status, "failed_checks": list(outcome.failed_checks),
                    "report_files": {kind: path.name for kind, path in files.items()}, "model": model,
                },
                "matrix": _matrix_json(outcome.matrix),
            }  # fmt: skip
            text = json.dumps(memo, indent=1)
            store.write_kept(STUDY, (MEMO,), lambda path: path.write_text(text))
    except (OSError, FolderBusy, paths.OutsideFolder, TypeError, ValueError):
        return


def _read(store: ResultsStore, call: Call) -> dict[str, Any] | None:
    """The memo of ``call`` when the folder holds one of its digest (no other check)."""
    try:
        found = store.kept_file(STUDY, MEMO)
        memo = json.loads(found.read_bytes()) if found is not None else None
    except (OSError, ValueError, paths.OutsideFolder):
        return None
    if not isinstance(memo, dict) or memo.get("memo") != FORMAT or memo.get("digest") != call.digest:
        return None
    return memo


def recall(call: Call, on_event: OnEvent | None = None) -> tuple[Outcome, str] | None:
    """The runner's outcome and the model's name that a full re-check of ``call`` would return, from
    its memo (module docstring), the events of such a re-check told to ``on_event``; None where the
    memo does not hold them."""
    store = ResultsStore(call.out)
    memo = _read(store, call)
    if memo is None:
        return None
    try:
        with store.locked():
            if memo["results"] != _results_files(store):
                return None
            if call.report is not None and memo["report"] != folder_files(call.report):
                return None
            outcome, events = _outcome(store, call, memo)
            model = str(memo["outcome"]["model"])
    except (FolderBusy, paths.OutsideFolder, OSError, KeyError, TypeError, ValueError, AttributeError):
        return None
    for event in events if on_event is not None else ():
        on_event(event)
    return outcome, model


def _outcome(store: ResultsStore, call: Call, memo: Mapping[str, Any]) -> tuple[Any, list[Any]]:
    """The runner's Outcome recorded in ``memo`` (the tables read from the folder as the runner
    reads them) and the events of a re-check that reuses every cell."""
    from ppl_suite import runner
    from ppl_suite.report.render import ReportFiles
    from ppl_suite.report.rows import units
    from ppl_suite.report.run_tables import failures_table
    from ppl_suite.store import ESTIMATES, ROWS

    recorded = memo["outcome"]
    expanded = _matrix(memo["matrix"])
    rows, problem_rows = store.rows(), store.problems()
    named = recorded["report_files"].items() if call.report is not None else ()
    report_files = ReportFiles(
        {kind: paths.inside(call.report, name) for kind, name in named}, rewritten=False
    )
    outcome = runner.Outcome(
        str(recorded["status"]), matrix=expanded, rows=rows, problem_rows=problem_rows,
        failed_checks=[str(line) for line in recorded["failed_checks"]],
        failures=failures_table(units(rows, problem_rows)), report_files=report_files,
    )  # fmt: skip
    return outcome, list(_events(store, call, expanded, outcome, (ROWS, ESTIMATES)))


def _events(
    store: ResultsStore, call: Call, expanded: Any, outcome: Any, tables: tuple[str, str]
) -> Iterator[Any]:
    """The events ``runner.run`` sends when every unit is stored and the report unchanged."""
    from ppl_suite import runner

    if call.jobs is not None and call.jobs > runner.cores():
        yield runner.JobsCapped(call.jobs, runner.cores())
    for reason in expanded.skipped:
        yield runner.Skipped(reason)
    if expanded.cells or expanded.problems:
        yield runner.Reusing(len(expanded.cells), len(expanded.problems), 0, 0, store.path)
    yield runner.Finalizing(tables)
    yield runner.Finalized(outcome.rows, outcome.problem_rows, tuple(store.path / table for table in tables))
    if call.report is not None:
        yield runner.ReportStarted(call.report)
        yield runner.ReportWritten(outcome.report_files)
    yield runner.Finished(outcome)
