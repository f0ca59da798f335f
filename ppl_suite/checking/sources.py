"""A user's model and data, named on the command line or given to the Python API.

Conventions (``docs/api.md``):

- a model is named ``FILE.py:NAME``: the function ``NAME`` of the Python file ``FILE.py``, imported
  as a module of its own (its folder is not put on ``sys.path``);
- a model function takes ``model(data)`` or ``model(data, params)``: ``data`` is a dict of arrays
  (NumPy arrays become JAX arrays in NumPyro, torch tensors in Pyro; a 0-d array becomes a Python
  number, so it can size a plate), ``params`` the fixed values given with ``--set NAME=VALUE`` (the
  suite's own models take ``(data, params)``);
- data are a ``.npz`` file, a ``.json`` object of arrays and numbers, or ``FILE.py:FUNCTION``, a
  function of no arguments returning such a dict.

Every problem is a sentence naming the file, name or key and what is valid; callers collect them
and refuse the input at once (exit 2).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import inspect
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ppl_suite.errors import InputProblem

MODULE_PREFIX = "ppl_suite_user_"  # user files are imported as top-level modules with this prefix
DATA_SUFFIXES = (".npz", ".json")


def split_reference(text: str, what: str) -> tuple[Path, str]:
    """(file, name) of ``FILE.py:NAME``."""
    path, colon, name = text.rpartition(":")
    if not colon or not path.endswith(".py") or not name.isidentifier():
        raise InputProblem(f"{what} {text!r}: expected FILE.py:NAME (a Python file and a function in it)")
    file = Path(path)
    if not file.is_file():
        raise InputProblem(f"{what} {text!r}: no such file {file}")
    return file, name


def module_name(file: Path) -> str:
    """The module name a user file is imported under: the same for the same path and content (in every
    process), another once the file changes, so an edited model is imported anew."""
    digest = hashlib.sha256(str(file.resolve()).encode() + b"\0" + file.read_bytes()).hexdigest()[:12]
    stem = "".join(c if c.isalnum() else "_" for c in file.stem)
    return f"{MODULE_PREFIX}{stem}_{digest}"


def import_file(file: Path) -> ModuleType:
    """The module of a Python file, imported once per process and content under ``module_name(file)``
    (in ``sys.modules``, so the results store finds its source and hashes it into cell digests)."""
    name = module_name(file)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise InputProblem(f"cannot import {file}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        raise InputProblem(f"cannot import {file}: {type(error).__name__}: {error}") from None
    return module


def load_function(text: str, what: str) -> Callable[..., Any]:
    """The function named by ``FILE.py:NAME``."""
    file, name = split_reference(text, what)
    module = import_file(file)
    function = getattr(module, name, None)
    if not callable(function):
        found = sorted(
            k for k, v in vars(module).items() if inspect.isfunction(v) and v.__module__ == module.__name__
        )
        raise InputProblem(
            f"{what} {text!r}: {file} defines no function {name!r}; "
            f"its functions: {', '.join(found) or 'none'}"
        )
    return function


def with_params(function: Callable[..., Any], what: str) -> Callable[..., Any]:
    """The model as the suite calls it, ``model(data, params)``: a ``model(data)`` ignores params. The
    wrapper keeps the function's module, so the store hashes the user's source."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return function
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    if len(required) > 2 or not positional:
        raise InputProblem(
            f"{what} {function.__name__!r} must take (data) or (data, params), "
            f"takes {len(required)} arguments"
        )
    if len(positional) >= 2:
        return function

    @functools.wraps(function)
    def model(data: Mapping[str, Any], params: Mapping[str, Any]) -> Any:
        return function(data)

    return model


def _plain(name: str, value: Any, origin: str) -> Any:
    """A data value as the suite passes it: a 0-d array as a Python number, else a numeric NumPy array."""
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise InputProblem(
            f"data {origin}: {name!r} is not numeric (dtype {array.dtype}); "
            "data must be numbers or arrays of numbers"
        )
    if array.ndim == 0:
        return array.item()
    return array.astype(float) if array.dtype.kind == "f" else array


def load_data(source: str | Mapping[str, Any]) -> dict[str, Any]:
    """The data of ``source``: a mapping, a ``.npz`` or ``.json`` file, or ``FILE.py:FUNCTION``."""
    if isinstance(source, Mapping):
        raw, origin = dict(source), "given"
    elif source.endswith(DATA_SUFFIXES):
        raw, origin = _read_file(Path(source)), source
    elif ".py:" in source:
        function = load_function(source, "--data")
        try:
            raw = function()
        except Exception as error:
            raise InputProblem(f"--data {source!r} raised {type(error).__name__}: {error}") from None
        if not isinstance(raw, Mapping):
            raise InputProblem(f"--data {source!r} returned {type(raw).__name__}, not a dict of arrays")
        origin = source
    else:
        raise InputProblem(
            f"--data {source!r}: expected a .npz or .json file, or FILE.py:FUNCTION returning a dict"
        )
    bad = [key for key in raw if not isinstance(key, str) or not key.isidentifier()]
    if bad:
        raise InputProblem(f"data {origin}: keys {bad} are not names (letters, digits, underscores)")
    return {name: _plain(name, value, origin) for name, value in raw.items()}


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputProblem(f"--data {path}: no such file")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as arrays:
                return dict(arrays)
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputProblem(f"--data {path}: cannot read it ({error})") from None
    if not isinstance(loaded, dict):
        raise InputProblem(f"--data {path}: the JSON must be an object of arrays and numbers")
    return loaded


def data_digest(data: Mapping[str, Any]) -> str:
    """16 hex digits of sha256 over the data's names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for name in sorted(data):
        array = np.ascontiguousarray(data[name])
        digest.update(f"{name}{array.dtype.str}{array.shape}".encode() + array.tobytes())
    return digest.hexdigest()[:16]
