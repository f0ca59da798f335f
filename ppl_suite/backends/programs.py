"""Compiled JAX programs kept per process, so cells that differ only in data values share them.

A program (the whole SVI loop, or the library's ELBO evaluation) takes the data arrays as arguments
instead of baking them in as constants; what it still depends on (the model, the guide family, the
model's fixed parameters, the SVI settings, the data shapes and dtypes) is its key. The second seed
of a model/guide/backend in a worker then skips tracing and XLA compilation, which cost seconds on
small models: more than the optimization itself.

Across processes, JAX's persistent compilation cache (``compilation_cache``) keeps the executables,
but finding one takes the program's StableHLO, so each process would still trace the model and guide
through NumPyro: about a fifth of a quick-profile JAX cell with a warm cache. A program given the
``source`` it is traced from (``traced_from``) is therefore also kept as an exported function
(``jax.export``, JAX's stable serialization) under a key of everything it is traced from, and a later
process, or a later run, deserializes it (a few ms) instead of tracing. The program first compiled is
the exported one too, so the numbers are the same whichever process traced it. The exported programs
are the files ``<key>.jaxexport`` of the folder ``exported`` inside the compilation cache's folder
(``kept_programs``), at most MAX_KEPT_BYTES of them. Like the compilation cache, the folder is trusted
input: a deserialized program may call any of jaxlib's registered custom calls.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import jax
import numpy as np

from ppl_suite.backends import kept_programs
from ppl_suite.problem import Problem

MAX_PROGRAMS = 64  # least recently used programs beyond this are dropped
KEPT_FOLDER, KEPT_SUFFIX = "exported", ".jaxexport"  # the exported programs kept on disk
MAX_KEPT_BYTES = 256 * 1024**2

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
    params = tuple((k, fixed_value(v)) for k, v in sorted(problem.params.items()))
    return problem.spec.name, params, shapes, *parts


def fixed_value(value: Any) -> str:
    """A value a program holds as a constant, as its key spells it: an array by its shape, dtype and
    the sha256 of its bytes (its repr elides the middle of a large one), anything else by its repr."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        array = np.ascontiguousarray(np.asarray(value))
        return f"array{array.shape}:{array.dtype.str}:{hashlib.sha256(array.tobytes()).hexdigest()}"
    return repr(value)


def traced_from(model: str, guide: str | None) -> str:
    """What the programs of ``model`` fitted with ``guide`` (None: the model's own) are traced from
    beyond their keys, as a cell's digest has it (``store.digest``): the source the cell runs (the
    model's, the guide family's, every backend's and estimator's: ``store.code_hash``) and the
    numerical packages' versions."""
    from ppl_suite import store

    return json.dumps(
        {"code": store.code_hash(model, guide), "versions": store.package_versions()}, sort_keys=True
    )


def _tracing_settings() -> dict[str, str]:
    """JAX's settings (``jax.config``) but those of its compilation cache, and its backend: what else
    a traced program depends on (float64, the PRNG's implementation, matmul precision...)."""
    settings = {name: repr(value) for name, value in jax.config.values.items() if "cache" not in name}
    return {**settings, "backend": jax.default_backend()}


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
    (``traced_from``); given, the traced program is kept on disk."""
    global _compiler_options_known
    here = (key, optimize)  # the same function compiled both ways is two programs
    if here in _programs:
        _programs.move_to_end(here)
        return _programs[here], 0.0
    start = time.perf_counter()
    lowered = _lowered(key, build, args, source)
    try:
        program = lowered.compile(options(optimize))
    except jax.errors.JaxRuntimeError as error:
        if not _compiler_options_known or _UNKNOWN_OPTION not in str(error):
            raise
        _compiler_options_known = False
        program = lowered.compile(options(optimize))
    seconds = time.perf_counter() - start
    _programs[here] = program
    while len(_programs) > MAX_PROGRAMS:
        _programs.popitem(last=False)
    return program, seconds


def _lowered(key: Hashable, build: Callable[[], Callable], args: tuple, source: str | None) -> Any:
    """``build()`` lowered for ``args``: traced here, or, given its ``source`` and a program folder,
    the exported program kept under ``key`` and ``source`` (traced, exported and kept first when there
    is none). A program JAX cannot export is traced here each time."""
    if source is None or kept_programs.folder(KEPT_FOLDER) is None:
        return jax.jit(build()).lower(*args)
    kept_key = kept_programs.program_key({"program": repr(key), "source": source, "jax": _tracing_settings()})
    exported = _load_exported(kept_key)
    if exported is None:
        try:
            serialized = jax.export.export(jax.jit(build()))(*args).serialize()
            exported = jax.export.deserialize(serialized)
        except Exception:  # e.g. a host callback, which export refuses: traced here
            return jax.jit(build()).lower(*args)
        kept_programs.write(KEPT_FOLDER, kept_key, KEPT_SUFFIX, bytes(serialized), MAX_KEPT_BYTES)
    return jax.jit(exported.call).lower(*args)


def _load_exported(key: str) -> jax.export.Exported | None:
    """The exported program kept under ``key``, or None (none kept, or a file JAX cannot deserialize:
    damaged, or from a JAX that serializes differently). Loading marks it recently used."""
    payload = kept_programs.read(KEPT_FOLDER, key, KEPT_SUFFIX)
    try:
        return None if payload is None else jax.export.deserialize(bytearray(payload))
    except Exception:
        return None
