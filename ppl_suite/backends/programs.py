"""Compiled JAX programs kept per process, so cells that differ only in data values share them.

A program (the whole SVI loop, or the library's ELBO evaluation) takes the data arrays as arguments
instead of baking them in as constants; what it still depends on (the model, the guide family, the
model's fixed parameters, the SVI settings, the data shapes and dtypes, an SVI loop's guide's initial
values) is its key. The second seed of a model/guide/backend in a worker then skips tracing and XLA
compilation, which cost seconds on small models: more than the optimization itself.

Across processes, a program of a model with a folder of its own is kept on disk as an exported
function (``jax_program_cache``): a later process, or a later run, deserializes it instead of tracing
the model and guide again. Every process compiles the exported form, whether it traced it or loaded
it, so the numbers are the same whichever process traced it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import jax
import numpy as np

from ppl_suite.backends import jax_program_cache
from ppl_suite.backends.jax_program_cache import fixed_value, fixed_values
from ppl_suite.problem import Problem

MAX_PROGRAMS = 64  # least recently used programs beyond this are dropped

# XLA's options for every program compiled here. XLA:CPU's MLIR fusion emitters (its default) took
# 1.25-1.6x as long to compile the quick profile's SVI loops and evaluations as its elemental
# emitters, which run them as fast (benchmarks/xla_fusion_emitters.py). The two emitters order some
# reductions differently, so their numbers agree to rounding (2e-10 SE), not bitwise. Options given
# here override the same flags in XLA_FLAGS. XLA is retiring the elemental emitters: on a jaxlib that
# rejects the option the programs compile with XLA's defaults (``options``), and tests/test_programs.py
# fails once the option no longer changes the compiled program.
COMPILER_OPTIONS: dict[str, Any] = {"xla_cpu_use_fusion_emitters": False}
UNOPTIMIZED: dict[str, Any] = {"xla_backend_optimization_level": 0}
_UNKNOWN_OPTION = "No such compile option"  # XLA's error for an option this jaxlib does not have
_compiler_options_known = True  # False once this jaxlib rejected COMPILER_OPTIONS

_programs: OrderedDict[Hashable, Any] = OrderedDict()


def data_arguments(problem: Problem) -> tuple[dict[str, Any], dict[str, Any]]:
    """The data split into arrays (a program's arguments, as JAX arrays) and any other values (fixed
    in the program and part of its key)."""
    arrays = {k: jax.numpy.asarray(v) for k, v in problem.data.items() if isinstance(v, np.ndarray)}
    return arrays, {k: v for k, v in problem.data.items() if k not in arrays}


def program_key(problem: Problem, *parts: Hashable) -> Hashable:
    """What a program of ``problem`` depends on besides its array arguments, plus ``parts``."""
    shapes = tuple(
        (k, v.shape, v.dtype.str) if isinstance(v, np.ndarray) else (k, fixed_value(v))
        for k, v in sorted(problem.data.items())
    )
    return problem.spec.name, fixed_values(problem.params), shapes, *parts


def options(optimize: bool = True) -> dict[str, Any]:
    """XLA's options for a program: COMPILER_OPTIONS (unless this jaxlib rejected them), plus
    UNOPTIMIZED for a program compiled with ``optimize=False``."""
    chosen = dict(COMPILER_OPTIONS) if _compiler_options_known else {}
    return chosen if optimize else {**chosen, **UNOPTIMIZED}


def compiled(
    key: Hashable,
    build: Callable[[], Callable],
    *args: Any,
    optimize: bool = True,
    source: str | None = None,
) -> tuple[Callable, float]:
    """The compiled program for ``key`` and the seconds this call spent tracing and compiling it
    (0 when it was already here); ``build()`` makes the function, lowered for ``args``' shapes.

    ``optimize=False`` is for a program that runs once per cell and briefly (an evaluation, not an
    optimization loop): LLVM's optimization level 0 compiles it faster and costs little at run time.
    The numbers agree to rounding. ``source``: what the program is traced from beyond ``key``
    (``jax_program_cache.traced_from``); given, and the compilation cache on, the exported program
    is kept on disk and loaded from there, unless JAX cannot export it."""
    in_process = (key, optimize, tuple(sorted(jax_program_cache.settings().items())))
    if in_process in _programs:  # compiled both ways, or under other settings: two programs
        _programs.move_to_end(in_process)
        return _programs[in_process], 0.0
    start = time.perf_counter()
    program = _compiled_program(key, build, args, optimize, source)
    seconds = time.perf_counter() - start
    _programs[in_process] = program
    while len(_programs) > MAX_PROGRAMS:
        _programs.popitem(last=False)
    return program, seconds


def _compiled_program(
    key: Hashable, build: Callable[[], Callable], args: tuple, optimize: bool, source: str | None
) -> Any:
    """``build()`` compiled for ``args``: traced here, or, given its ``source`` and the cache on, the
    exported program kept for ``key`` and ``source`` (traced, exported and kept first when none is,
    or when the kept one does not compile for ``args``). A program JAX cannot export, or whose
    exported form does not compile, is traced and compiled here, and not kept."""
    if source is None or not jax_program_cache.enabled():
        return _compile(jax.jit(build()).lower(*args), optimize)
    name = jax_program_cache.file_key(key, source)
    exported = jax_program_cache.load(name)
    if exported is not None:
        try:
            return _compile(jax.jit(exported.call).lower(*args), optimize)
        except Exception:  # a damaged file that deserialized, or another program: traced afresh
            pass
    try:
        serialized = jax.export.export(jax.jit(build()))(*args).serialize()
        program = _compile(jax.jit(jax.export.deserialize(serialized).call).lower(*args), optimize)
    except Exception:  # e.g. a host callback, which export refuses; a model's own error is raised below
        program = None
    if program is None:
        return _compile(jax.jit(build()).lower(*args), optimize)
    jax_program_cache.keep(name, serialized)
    return program


def _compile(lowered: Any, optimize: bool) -> Any:
    """``lowered`` compiled with ``options(optimize)``, or with XLA's defaults where this jaxlib
    rejects COMPILER_OPTIONS (then for every later program too)."""
    global _compiler_options_known
    try:
        return lowered.compile(options(optimize))
    except jax.errors.JaxRuntimeError as error:
        if not _compiler_options_known or _UNKNOWN_OPTION not in str(error):
            raise
        _compiler_options_known = False
        return lowered.compile(options(optimize))
