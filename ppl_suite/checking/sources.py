"""A user's model and data, named on the command line or given to the Python API.

Conventions (``docs/api.md``):

- a model is a function, called as ``MCMC.run`` and ``SVI.run`` call it: ``model(*args, **kwargs)``
  (the *call form*), or, the older convention, ``model(data)`` / ``model(data, params)`` with ``data``
  a dict of arrays (the *data form*): ``checking.calls``;
- numeric arguments (NumPy arrays, lists of numbers, numbers, torch tensors, JAX arrays, pandas
  columns) are kept as NumPy arrays, named after the model's parameters; each library gets its own
  arrays (JAX arrays in NumPyro, torch float64 tensors in Pyro), a 0-d array as a Python number (so it
  can size a plate); strings are fixed values (``params``); ``None`` is passed as ``None`` (``y=None``:
  the site is latent);
- on the command line a model is named ``FILE.py:NAME``: the function ``NAME`` of the Python file
  ``FILE.py``, imported as a module of its own (its folder is not put on ``sys.path``), or, for a
  file of a package that ``sys.path`` finds, by its module name (relative imports work); given to the
  API as a function, a top-level function of an importable module is named so too, any other (defined
  in a script or a notebook, a closure, a lambda) is kept in this process under a text naming its
  content digest (``function_text``) and is never imported from a file;
- data are a ``.npz`` file or a ``.json`` object (keyword arguments, or the data form's dict), or
  ``FILE.py:FUNCTION``, a function of no arguments returning ``(args, kwargs)``, a dict of keyword
  arguments or the data form's dict.

Every problem is a sentence naming the file, name or key and what is valid; callers collect them
and refuse the input at once (exit 2).
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import inspect
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ppl_suite.errors import InputProblem

Option = Callable[..., str]  # how a front end's messages name an option: ``name=``, ``--name``
_NO_VALUE = object()
COMMAND_FLAGS = {"params": "set", "backend": "backends"}  # the Python parameters the flags spell otherwise


def python_option(key: str, value: Any = _NO_VALUE) -> str:
    """An option as the Python API's messages name it: the parameter, ``backends=`` or
    ``backends=['numpyro']``."""
    return f"{key}=" if value is _NO_VALUE else f"{key}={value!r}"


def command_option(key: str, value: Any = _NO_VALUE) -> str:
    """An option as the command line's messages name it: the flag, ``--backends`` or
    ``--backends numpyro``."""
    flag = f"--{COMMAND_FLAGS.get(key, key).replace('_', '-')}"
    if value is _NO_VALUE:
        return flag
    return " ".join([flag, *map(str, value if isinstance(value, list | tuple) else [value])])


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


def running_main(file: Path) -> ModuleType | None:
    """The running ``__main__`` module when ``file`` is its file (a script naming itself as
    ``f"{__file__}:model"``), else None."""
    main = sys.modules.get("__main__")
    origin = getattr(main, "__file__", None)
    if origin and Path(origin).is_file() and Path(origin).resolve() == file.resolve():
        return main
    return None


def import_file(file: Path) -> ModuleType:
    """The module of a Python file, imported once per process and content under ``module_name(file)``
    (in ``sys.modules``, so the results store finds its source and hashes it into cell digests); a
    file of a package that ``sys.path`` finds, by its name (``_packaged``: relative imports work). The
    running script's own file is never imported again (that would re-run the script, and its
    ``ppl_suite.check`` call): its ``__main__`` module is returned."""
    main = running_main(file)
    if main is not None:
        return main
    packaged = _packaged(file)
    if packaged is not None:
        return packaged
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
        hint = ""
        if isinstance(error, ImportError) and "relative import" in str(error):
            hint = (
                "; a package's module is imported by its name: add the folder holding its package to sys.path"
            )
        raise InputProblem(f"cannot import {file}: {type(error).__name__}: {error}{hint}") from None
    return module


def _packaged(file: Path) -> ModuleType | None:
    """The module of a file inside a package (its folder holds an ``__init__.py``), imported by its
    name, ``pkg.models``, when ``sys.path`` finds it there (so its relative imports work, in worker
    processes too: spawn passes ``sys.path``); None otherwise."""
    file = file.resolve()
    parts, folder = [file.stem], file.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    if len(parts) == 1 or not all(part.isidentifier() for part in parts):
        return None
    name = ".".join(parts)
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if found is None or found.origin is None or Path(found.origin).resolve() != file:
        return None
    try:
        return importlib.import_module(name)
    except Exception as error:
        raise InputProblem(f"cannot import {file} as {name}: {type(error).__name__}: {error}") from None


IN_PROCESS = "<in-process "  # how function_text names a function kept in this process


def function_text(function: Callable[..., Any]) -> str:
    """How a check names a model or guide given as a function: ``FILE.py:NAME`` for a top-level
    function of an importable module with a source file (worker processes import it from there); any
    other (defined in ``__main__``, a script or a notebook, a closure, a lambda) is kept in this process
    only, named ``<in-process QUALNAME sha256:DIGEST>:NAME`` with the digest of its content (its code,
    the values it captures and the globals it reads: ``function_digest``); it is never imported."""
    module = inspect.getmodule(inspect.unwrap(function))
    name = getattr(function, "__name__", "")
    file = getattr(module, "__file__", None) or ""
    if (
        module is not None
        and module.__name__ != "__main__"
        and file.endswith(".py")
        and name.isidentifier()
        and getattr(module, name, None) is function
    ):
        return f"{Path(file).resolve()}:{name}"
    qualname = getattr(function, "__qualname__", type(function).__name__)
    short = name if name.isidentifier() else "model"
    text = f"{IN_PROCESS}{qualname} sha256:{function_digest(function)}>:{short}"
    _in_process[text] = function
    return text


_in_process: dict[str, Callable[..., Any]] = {}


def shown(text: str) -> str:
    """A model's or guide's text as messages name it: ``FILE.py:NAME``, or ``QUALNAME (defined in
    this process)`` for a function kept here."""
    if in_process(text):
        return f"{text[len(IN_PROCESS) :].partition(' sha256:')[0]} (defined in this process)"
    return text


def in_process(text: str) -> bool:
    """Whether a model's or guide's text names a function kept in this process (``function_text``)."""
    return text.startswith(IN_PROCESS)


def function_digest(function: Callable[..., Any]) -> str:
    """16 hex digits of sha256 over the function as cloudpickle writes it by value (its code, closure,
    defaults and the globals it reads), or over its source when it cannot be pickled."""
    import cloudpickle

    try:
        payload = cloudpickle.dumps(function)
    except Exception:
        try:
            payload = inspect.getsource(function).encode()
        except (OSError, TypeError):
            payload = repr(function).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def load_function(text: str, what: str) -> Callable[..., Any]:
    """The function named by ``FILE.py:NAME`` or kept in this process under ``text``."""
    if text in _in_process:
        return _in_process[text]
    if in_process(text):
        raise InputProblem(
            f"{what} {text}: a function given to ppl_suite.check in another process is never imported "
            "from a file; call ppl_suite.check with it in this process"
        )
    file, name = split_reference(text, what)
    module = import_file(file)
    function = getattr(module, name, None)
    if not callable(function):
        found = sorted(
            k for k, v in vars(module).items() if inspect.isfunction(v) and v.__module__ == module.__name__
        )
        raise InputProblem(
            f"{what} {text!r}: {file} defines no function {name!r}{closest(name, found)}; "
            f"its functions: {', '.join(found) or 'none'}"
        )
    return function


def closest(name: str, valid: Iterable[str]) -> str:
    """`` (did you mean 'NAME'?)`` naming the valid name closest to a misspelt one, or ``""``."""
    found = difflib.get_close_matches(name, list(valid), n=1)
    return f" (did you mean {found[0]!r}?)" if found else ""


def as_value(name: str, value: Any, origin: str) -> Any:
    """A data value as the suite passes it: a 0-d array as a Python number, else a numeric NumPy array."""
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise InputProblem(
            f"data {origin}: {name!r} is not numeric (dtype {array.dtype}); data must be numbers or arrays "
            "of numbers (labels: code them as integers, e.g. pandas.factorize)"
        )
    if array.ndim == 0:
        return array.item()
    return array.astype(float) if array.dtype.kind == "f" else array


def load_data(source: str | Mapping[str, Any]) -> dict[str, Any]:
    """The data form's dict of ``source`` (a mapping, a ``.npz`` or ``.json`` file, or
    ``FILE.py:FUNCTION``), each value as the suite passes it (a number or a numeric array)."""
    raw = read_source(source)
    origin = source if isinstance(source, str) else "given"
    if isinstance(raw, tuple):
        raise InputProblem(f"data {origin}: (args, kwargs) are given to a model taking a dict (data)")
    bad = [key for key in raw if not isinstance(key, str) or not key.isidentifier()]
    if bad:
        raise InputProblem(f"data {origin}: keys {bad} are not names (letters, digits, underscores)")
    return {name: as_value(name, value, origin) for name, value in raw.items()}


def read_source(
    source: Any, option: Option = python_option
) -> dict[str, Any] | tuple[Sequence[Any], Mapping[str, Any]]:
    """What ``data`` holds: a dict (keyword arguments, or the data form's dict) or ``(args, kwargs)``.
    A DataFrame is its columns; a list, a tuple or an array is a problem naming ``args=``. ``option``
    names the data option in messages (``data=``, ``--data``)."""
    if hasattr(source, "columns") and hasattr(source, "to_numpy"):  # a pandas DataFrame
        return {str(column): source[column].to_numpy() for column in source.columns}
    if isinstance(source, Mapping):
        return dict(source)
    if isinstance(source, str) and source.endswith(DATA_SUFFIXES):
        return _read_file(Path(source), option("data"))
    if isinstance(source, str) and ".py:" in source:
        return _called(source, option("data"))
    if isinstance(source, str | Path):
        raise InputProblem(
            f"{option('data')} {source!r}: expected a .npz or .json file, or FILE.py:FUNCTION returning "
            "(args, kwargs) or a dict"
        )
    raise InputProblem(
        f"data is a {type(source).__name__}: pass the model's positional arguments as args=(...) and its "
        "keyword arguments as kwargs={...} (or data= a dict of named arrays, or a DataFrame)"
    )


def _called(source: str, what: str) -> dict[str, Any] | tuple[Sequence[Any], Mapping[str, Any]]:
    """What ``FILE.py:FUNCTION`` returns: ``(args, kwargs)``, a dict or a DataFrame."""
    function = load_function(source, what)
    try:
        value = function()
    except Exception as error:
        raise InputProblem(f"{what} {source!r} raised {type(error).__name__}: {error}") from None
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], Mapping):
        return tuple(value[0]), dict(value[1])
    if isinstance(value, Mapping) or hasattr(value, "columns"):
        return read_source(value)
    raise InputProblem(
        f"{what} {source!r} returned {type(value).__name__}: return (args, kwargs), a dict of keyword "
        "arguments or a dict of arrays"
    )


def _read_file(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise InputProblem(f"{what} {path}: no such file")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as arrays:
                return dict(arrays)
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputProblem(f"{what} {path}: cannot read it ({error})") from None
    if not isinstance(loaded, dict):
        raise InputProblem(f"{what} {path}: the JSON must be an object of arrays and numbers")
    return loaded


def data_digest(data: Mapping[str, Any]) -> str:
    """16 hex digits of sha256 over the data's names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for name in sorted(data):
        array = np.ascontiguousarray(data[name])
        digest.update(f"{name}{array.dtype.str}{array.shape}".encode() + array.tobytes())
    return digest.hexdigest()[:16]
