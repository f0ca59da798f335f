"""A model's call, as the suite keeps it and makes it.

``model(*args, **kwargs)``, as ``MCMC.run`` and ``SVI.run`` call a model (the *call form*), or the
older ``model(data)`` / ``model(data, params)`` with a dict of arrays (the *data form*). ``resolve``
tells which from what a check was given (``args``/``kwargs``, or ``data``: ``sources.read_source``),
``bind`` binds the arguments to the model's parameters by name (``inspect.Signature.bind``) into
plain data: numeric values as NumPy arrays (``sources.as_value``), strings as fixed values, the names
given None; ``calling`` rebuilds the call from them, the one place the suite calls a user's model or
guide.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ppl_suite.checking.sources import Option, as_value, closest, load_data, python_option, read_source
from ppl_suite.errors import InputProblem

DATA_FORM = "data"  # model(data) / model(data, params)
CALL_FORM = "call"  # model(*args, **kwargs), the arguments kept by the model's parameter names


def takes_data(function: Callable[..., Any]) -> bool:
    """Whether a function can be called in the data form: one or two positional parameters, the
    others optional."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return True
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [
        p for p in parameters if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    return bool(positional) and len(required) <= 2 and all(p in positional[:2] for p in required)


def calling(function: Callable[..., Any], form: str, nones: Sequence[str] = ()) -> Callable[..., Any]:
    """The model (or guide) as the suite calls it, ``f(data, params)``: in the data form ``function(data)``
    or ``function(data, params)``; in the call form ``function(*args, **kwargs)`` rebuilt from the
    arguments kept by name in ``data`` and ``params`` (and ``nones``, the names given None). The
    wrapper keeps the function's module, so the store hashes the user's source; a function kept in
    this process carries its ``content_digest`` too (``function_text``: the reference's key hashes it)."""
    if form == DATA_FORM:
        positional = _positional(function)
        takes_params = positional is None or len(positional) >= 2

        @functools.wraps(function)
        def data_form(data: Mapping[str, Any], params: Mapping[str, Any]) -> Any:
            return function(data, params) if takes_params else function(data)

        return data_form
    first = _positional_only(function)

    @functools.wraps(function)
    def called(data: Mapping[str, Any], params: Mapping[str, Any]) -> Any:
        values = {**params, **data, **dict.fromkeys(nones)}
        return function(*[values.pop(name) for name in first if name in values], **values)

    return called


def _positional(function: Callable[..., Any]) -> list[str] | None:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _positional_only(function: Callable[..., Any]) -> list[str]:
    parameters = inspect.signature(function).parameters.values()
    return [p.name for p in parameters if p.kind == p.POSITIONAL_ONLY]


@dataclass(frozen=True)
class Bound:
    """A model's arguments as the suite keeps them: the ``form`` of the call (``DATA_FORM`` or
    ``CALL_FORM``), the numeric arrays by name (``data``: in the data form the dict itself), other
    values by name (``params``: strings, and in the data form the dict passed as params) and the
    names given None (``nones``)."""

    form: str
    data: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    nones: tuple[str, ...] = ()


def bind(
    function: Callable[..., Any], args: Sequence[Any] | None, kwargs: Mapping[str, Any] | None, what: str
) -> Bound:
    """``model(*args, **kwargs)`` bound to the model's parameters (``inspect.Signature.bind``); the
    data form when ``args`` is ``(data,)`` or ``(data, params)`` with dicts and the model takes
    ``(data)``/``(data, params)``. A call that does not bind is one problem naming the model's
    parameters and what was given (the closest valid name for a misspelt one)."""
    if args is not None and not isinstance(args, tuple | list):
        raise InputProblem(
            f"args is a {type(args).__name__}: args is the tuple of positional arguments, args=(x,) for one"
        )
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise InputProblem(f"kwargs is a {type(kwargs).__name__}: kwargs is a dict, kwargs={{'y': y}}")
    args, kwargs = tuple(args or ()), dict(kwargs or {})
    dicts = not kwargs and 1 <= len(args) <= 2 and all(isinstance(a, Mapping) for a in args)
    if dicts and takes_data(function) and not _binds_as_keywords(function, args[0]):
        return Bound(DATA_FORM, load_data(args[0]), dict(args[1]) if len(args) == 2 else {})
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        raise InputProblem(f"{what}: its signature cannot be read; pass it as a Python function") from None
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as error:
        raise InputProblem(_mismatch(function, signature, args, kwargs, error, what)) from None
    data, params, nones, problems = {}, {}, [], []
    for name, value in bound.arguments.items():
        parameter = signature.parameters[name]
        if parameter.kind == parameter.VAR_POSITIONAL:
            if value:
                problems.append(f"{what}: its *{name} arguments cannot be kept by name; give them by name")
            continue
        named = value.items() if parameter.kind == parameter.VAR_KEYWORD else [(name, value)]
        for key, item in named:
            if item is None:
                if parameter.default is not None:
                    nones.append(key)  # a None its default is already passes as the default does
            elif isinstance(item, str):
                params[key] = item
            else:
                try:
                    data[key] = as_value(key, _array(key, item), "given")
                except InputProblem as error:
                    problems += [f"{what}: {problem}" for problem in error.problems]
    if problems:
        raise InputProblem(*problems)
    return Bound(CALL_FORM, data, params, tuple(nones))


def _binds_as_keywords(function: Callable[..., Any], values: Mapping[str, Any]) -> bool:
    try:
        inspect.signature(function).bind(**values)
    except (TypeError, ValueError):
        return False
    return True


def _array(name: str, value: Any) -> np.ndarray:
    """A numeric argument as a NumPy array: torch tensors detached, JAX arrays and pandas columns read;
    a dict is a problem naming the fix."""
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    if hasattr(value, "to_numpy"):  # a pandas Series or DataFrame
        value = value.to_numpy()
    if isinstance(value, Mapping):
        raise InputProblem(
            f"argument {name!r} is a dict: pass its arrays as keyword arguments (kwargs={{...}})"
        )
    return np.asarray(value)


def _mismatch(
    function: Callable[..., Any],
    signature: inspect.Signature,
    args: tuple,
    kwargs: dict[str, Any],
    error: TypeError,
    what: str,
) -> str:
    """One sentence: the model's parameters, what was given and, for a misspelt name, the closest."""
    names = [p.name for p in signature.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    unknown = [k for k in kwargs if k not in signature.parameters]
    hints = "".join(f"; {k!r}{closest(k, names)}" for k in unknown if closest(k, names))
    given = f"{len(args)} positional argument(s)" + (f" and keyword(s) {', '.join(kwargs)}" if kwargs else "")
    name = getattr(function, "__name__", repr(function))
    return f"{what}: {name}{signature} cannot be called with {given}: {error}{hints}"


def resolve(
    function: Callable[..., Any],
    data: Any,
    args: Sequence[Any] | None,
    kwargs: Mapping[str, Any] | None,
    what: str,
    option: Option = python_option,
) -> Bound:
    """The arguments of a check bound to its model (``bind``): ``args``/``kwargs``, or ``data`` (a dict,
    a DataFrame, a file or ``FILE.py:FUNCTION``: ``read_source``, its messages naming ``option``). A
    dict whose names are the model's parameters is its keyword arguments; otherwise a model taking
    ``(data)``/``(data, params)`` gets it whole (the data form)."""
    if args is not None or kwargs is not None:
        if data is not None:
            raise InputProblem("give the model's arguments as args=/kwargs= or as data=, not both")
        return bind(function, args, kwargs, what)
    if data is None:
        raise InputProblem(
            "no data given: args=(...) and/or kwargs={...} as the model takes them, a dict of arrays, "
            "a DataFrame, a .npz or .json file, or FILE.py:FUNCTION"
        )
    given = read_source(data, option)
    if isinstance(given, tuple):
        return bind(function, *given, what)
    if _binds_as_keywords(function, given) or not takes_data(function):
        return bind(function, (), given, what)
    return Bound(DATA_FORM, load_data(given))
