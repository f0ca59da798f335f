"""Where references are stored, and the key that says when a stored one may be reused.

The folder is ``PPL_SUITE_REFERENCE_CACHE``, by default ``$XDG_CACHE_HOME/ppl-suite/references``
(``~/.cache/ppl-suite/references``); deleting it is always safe. A reference is one NetCDF file
``<model>-<key>.nc`` and a copy of its summary, ``<model>-<key>.json`` (read by ``stored_summary``
without importing ArviZ, JAX or NumPyro), each written to a temporary file and renamed (a reader never
sees half a file), the summary last, under a file lock ``<model>-<key>.lock`` so that two processes do
not build the same reference at once.

The key hashes everything that can change a reference's numbers: the model's source (every file of
its folder, and of the folder of the model it is mapped from), its data arrays and parameters, the
NUTS settings, the numerical packages' versions and the source of the code that builds it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from filelock import FileLock

from ppl_suite import registry, schema, store
from ppl_suite.errors import InputProblem
from ppl_suite.problem import Problem
from ppl_suite.references.reparametrized import reference_from
from ppl_suite.references.settings import NUTSSettings, key_fields
from ppl_suite.store import package_versions, source_hash

VARIABLE = "PPL_SUITE_REFERENCE_CACHE"
SUMMARY_FILE = "reference.json"  # a model folder's committed summary: not part of its source
# The code that builds a reference: this package and what it imports, and the estimators it runs
# (found by discovery, so not reached by following imports).
CODE_ROOTS = ("ppl_suite.references.reference", "ppl_suite.estimators.ais", "ppl_suite.estimators.bdmc")


def cache_dir() -> Path:
    """The cache folder chosen by the environment; raises InputProblem when it names a file."""
    setting = os.environ.get(VARIABLE, "").strip()
    if setting:
        folder = Path(setting).expanduser()
        if folder.exists() and not folder.is_dir():
            raise InputProblem(f"{VARIABLE}={setting}: {folder} is a file, not a folder; name a folder")
        return folder
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ppl-suite" / "references"


def model_source_hash(model: str) -> str:
    """sha256 of every file of the model's folder (its committed reference summary and bytecode
    aside), or, for a model registered by a plug-in, ``store.model_source_hash``: the modules of its
    functions, and the ``content_digest`` of each function that has one (a checked function kept in a
    process: its script's other lines do not count)."""
    spec = registry.get(model)
    found = importlib.util.find_spec(spec.module) if spec.module else None
    if found is None or not found.submodule_search_locations:
        return store.model_source_hash(model)  # its functions' modules, or their content digests
    folder = Path(next(iter(found.submodule_search_locations)))
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.name != SUMMARY_FILE:
            digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _array_hash(values: dict) -> dict[str, str]:
    out = {}
    for name, value in sorted(values.items()):
        array = np.ascontiguousarray(value)
        out[name] = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode() + array.tobytes()).hexdigest()
    return out


def reference_key(problem: Problem, settings: NUTSSettings, models: tuple[str, ...]) -> str:
    """16 hex digits of sha256 over what can change the reference (module docstring); ``models``: the
    model sampled and the model whose reference it is."""
    payload = {
        "model": problem.spec.name,
        "models": {name: model_source_hash(name) for name in models},
        "data": _array_hash(dict(problem.data)),
        "params": json.dumps(dict(problem.params), sort_keys=True, default=schema.plain),
        "settings": key_fields(settings),
        "versions": package_versions(),
        "code": source_hash(CODE_ROOTS),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def reference_path(problem: Problem, settings: NUTSSettings, folder: Path | None = None) -> Path:
    """Where the reference of ``problem`` under ``settings`` is stored (``folder``: the cache folder,
    by default ``cache_dir()``); its key covers the model it is mapped from, when there is one."""
    source = reference_from(problem.spec.name)
    models = (problem.spec.name,) + ((source.model,) if source else ())
    key = reference_key(problem, settings, models)
    return (folder or cache_dir()) / f"{problem.spec.name}-{key}.nc"


def summary_path(path: Path) -> Path:
    """The JSON copy of the summary of the reference stored at ``path``."""
    return path.with_suffix(".json")


def netcdf_damage(path: Path) -> str | None:
    """Why the NetCDF (HDF5) file at ``path`` cannot be opened (a phrase), None when it can: a
    truncated file is told by HDF5 from the end-of-file address its superblock records."""
    import h5py  # h5netcdf's, light: no ArviZ, JAX or NumPyro

    try:
        with h5py.File(path, "r"):
            return None
    except OSError as error:
        return str(error)


def summary_damage(path: Path) -> str | None:
    """Why the summary copy at ``path`` is not a JSON object (a phrase), None when it is one."""
    try:
        value = json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        return f"{type(error).__name__}: {error}"
    return None if isinstance(value, dict) else f"a JSON {type(value).__name__}, not an object"


def stored_summary(path: Path) -> dict | None:
    """The summary of the reference stored at ``path``, or None when none is stored or when either
    file is damaged (``reference_for`` then names the file and rebuilds what it must)."""
    summary = summary_path(path)
    if not (summary.is_file() and path.is_file()):
        return None
    if summary_damage(summary) is not None or netcdf_damage(path) is not None:
        return None
    return json.loads(summary.read_bytes())


@contextmanager
def building(path: Path) -> Iterator[None]:
    """Hold the lock of the reference file ``path`` (one builder at a time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.with_suffix(".lock"))):
        yield


def write_atomically(path: Path, write) -> None:
    """``write(temporary_path)``, then rename it to ``path`` (same folder, so the rename is atomic)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
