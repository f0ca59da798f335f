"""A user's model bound to its arguments, as the libraries call it: ``model(*args, **kwargs)``.

The suite's targets and references call a model as ``model(data, params)`` with the data as NumPy
arrays (``ppl_suite.spec``). A bound model keeps the user's call in that form: every array among the
arguments (NumPy arrays, torch tensors, JAX arrays; inside a dict too, the data-dict convention) is
one entry of ``data``, every other value (sizes, flags, None) one entry of ``params``, and the
wrapper rebuilds ``model(*args, **kwargs)`` from them; the targets hand arrays to NumPyro as JAX
arrays and to Pyro as torch tensors (floats in float64, integers kept for indexing).

The model is registered under a name that carries a digest of its code (its source where Python can
read it, else its byte code, and the values its closure captures), so a reference cached for one
version of a model is never reused for another: the reference's key hashes the data, the fixed
values and the NUTS settings, and the name the rest.
"""

from __future__ import annotations

import hashlib
import inspect
import marshal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ppl_suite import registry
from ppl_suite.checking import sites as sites_module
from ppl_suite.errors import InputProblem
from ppl_suite.problem import Problem
from ppl_suite.spec import ModelSpec, Site


@dataclass(frozen=True)
class Slot:
    """Where one argument's value lies: ``data[key]`` or ``params[key]``."""

    key: str


def _as_array(value: Any) -> np.ndarray | None:
    """A NumPy copy of an array of any library (floats as float64), None for anything else."""
    if isinstance(value, np.ndarray):
        array = value
    elif type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        array = value.detach().cpu().numpy()
    elif type(value).__module__.startswith("jax"):
        array = np.asarray(value)
    else:
        return None
    return array.astype(np.float64) if array.dtype.kind == "f" else np.array(array)


def _split(name: str, value: Any, data: dict, fixed: dict, problems: list[str]) -> Any:
    """The template of one argument (its arrays and other values filed under ``name``)."""
    if isinstance(value, Mapping):
        return {k: _split(f"{name}.{k}", v, data, fixed, problems) for k, v in value.items()}
    array = _as_array(value)
    if array is not None:
        if array.dtype.kind not in "biuf":
            problems.append(f"argument {name}: an array of {array.dtype}; arrays must hold numbers")
        data[name] = array
    elif isinstance(value, np.generic):
        fixed[name] = value.item()
    elif value is None or isinstance(value, bool | int | float | str):
        fixed[name] = value
    elif isinstance(value, list | tuple):
        problems.append(
            f"argument {name}: a {type(value).__name__}; pass an array (np.asarray(...)) as the libraries do"
        )
        return None
    else:
        problems.append(
            f"argument {name}: a {type(value).__name__}; valid: arrays (NumPy, torch, JAX), numbers, "
            "strings, None, and dicts of those"
        )
        return None
    return Slot(name)


def _fill(template: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(template, Slot):
        return values[template.key]
    return {k: _fill(v, values) for k, v in template.items()}


def code_digest(function: Callable[..., Any]) -> str:
    """sha256 of the function's source (else its byte code) and of the values its closure captures."""
    function = inspect.unwrap(function)
    target = function if inspect.isfunction(function) else type(function)
    digest = hashlib.sha256()
    try:
        digest.update(inspect.getsource(target).encode())
    except (OSError, TypeError):
        code = getattr(target, "__code__", None)
        digest.update(marshal.dumps(code) if code is not None else repr(target).encode())
    for cell in getattr(function, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        array = _as_array(value)
        digest.update(array.tobytes() if array is not None else repr(value).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class BoundModel:
    """A model with its arguments, registered as a problem (module docstring)."""

    library: str
    function: Callable[..., Any]
    problem: Problem
    arg_templates: tuple[Any, ...]
    kwarg_templates: dict[str, Any]

    @property
    def sites(self) -> tuple[Site, ...]:
        return self.problem.sites

    def arguments(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """(args, kwargs) as the model's library receives them: JAX arrays for NumPyro, torch tensors
        (floats in float64) for Pyro."""
        if self.library == "numpyro":
            from ppl_suite.backends.numpyro import as_jax as convert
        else:
            from ppl_suite.backends.pyro import as_torch as convert
        values = {**convert(self.problem.data), **self.problem.params}
        return tuple(_fill(t, values) for t in self.arg_templates), {
            k: _fill(t, values) for k, t in self.kwarg_templates.items()
        }


def library_of(model: Callable[..., Any]) -> str | None:
    """``numpyro`` or ``pyro``: the library the model's module imports (``checking.sites``), else the
    one the function itself names (an import inside it); None when not exactly one."""
    function = inspect.unwrap(model)
    found = sites_module.library_of(function)
    code = getattr(function, "__code__", None)
    if found is None and code is not None:
        named = [name for name in sites_module.LIBRARIES if name in {*code.co_names, *code.co_varnames}]
        found = named[0] if len(named) == 1 else None
    return found


def bind(
    model: Callable[..., Any],
    args: tuple = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    library: str,
    reference_settings: Mapping[str, Any] | None = None,
) -> BoundModel:
    """The model bound to ``args`` and ``kwargs``, its latent sites read from one trace and registered;
    raises InputProblem naming every argument or site that cannot be used."""
    if not callable(model):
        raise InputProblem(f"model: a {type(model).__name__}, not a function")
    problems: list[str] = []
    data: dict[str, np.ndarray] = {}
    fixed: dict[str, Any] = {}
    arg_templates = [_split(f"args[{i}]", value, data, fixed, problems) for i, value in enumerate(args)]
    kwarg_templates = {k: _split(k, v, data, fixed, problems) for k, v in dict(kwargs or {}).items()}
    try:
        inspect.signature(model).bind(*args, **dict(kwargs or {}))
    except TypeError as error:
        names = ", ".join(inspect.signature(model).parameters)
        problems.append(
            f"model {getattr(model, '__name__', model)}({names}) cannot take the arguments given: {error}"
        )
    except ValueError:
        pass  # no signature to read (a builtin or C function): the trace below says what fails
    if problems:
        raise InputProblem(*problems)

    def bound(data: Mapping[str, Any], params: Mapping[str, Any]) -> Any:
        values = {**data, **params}
        return model(
            *(_fill(t, values) for t in arg_templates),
            **{k: _fill(t, values) for k, t in kwarg_templates.items()},
        )

    bound.__module__ = getattr(model, "__module__", __name__)
    what = f"{library} model {getattr(model, '__name__', repr(model))}"
    sites = sites_module.trace_sites(bound, library, data, fixed, what)
    base = (
        "".join(c if c.isalnum() else "_" for c in getattr(model, "__name__", "model")).strip("_") or "model"
    )
    name = f"diagnose_{base}_{code_digest(model)[:12]}"
    size = int(sum(v.size for v in data.values()) + sum(s.size for s in sites))
    spec = ModelSpec(
        name=name,
        description=f"a {library} model given to ppl_suite.diagnose ({getattr(model, '__qualname__', base)})",
        defaults={},
        sites=lambda params: sites,
        problem_size=lambda params: size,
        generate_data=lambda rng, params: {k: v.copy() for k, v in data.items()},
        guides=(),
        fixed_data=True,
        reference_settings=dict(reference_settings or {}),
    )
    registry.register(spec, **{f"{library}_model": bound}, replace=True)
    problem = Problem(spec, fixed, data, 0)
    return BoundModel(library, model, problem, tuple(arg_templates), kwarg_templates)
