"""The suite's traced JAX programs kept on disk between processes and runs (``jax.export``).

JAX's persistent compilation cache (``compilation_cache``) keeps XLA's executables, but finding one
takes the program's StableHLO, so each process would still trace the model and guide through NumPyro
first: about a fifth of a quick-profile JAX cell with a warm cache. ``programs.compiled`` keeps each
program of a model with a folder of its own (the zoo's, a plug-in package's) as an exported function
(``jax.export``, JAX's stable serialization) under a key of what it is traced from
(``traced_from``), and a later process deserializes it (a few ms) instead of tracing.

What a program is traced from, and so its key: the model's, guide family's, backends' and
estimators' source (``store.code_hash``), the numerical packages' versions, the data's values, the
program's own key (``programs.program_key``: the model's fixed parameters, the SVI settings, an SVI
loop's guide's initial values...), JAX's settings and NumPyro's argument validation. The in-process
store shares a program between data sets of the same shapes (the suite's programs take the data as
arguments, and an SVI loop's key holds the guide's initial values, the constants it starts from); a
kept file is held to the data it was traced with all the same. A model whose NumPyro implementation
lives outside its folder (a user's model checked from a script or a notebook, or registered beside a
copied spec) is traced in every process: its source may read globals no hash covers.

The programs are the files ``<key>.jaxexport`` of the folder ``exported`` inside the compilation
cache's folder (``kept_programs``), at most MAX_BYTES of them; each holds its program's constants and
begins with the sha256 of the rest, checked on loading. Like the compilation cache, the folder is
trusted input: a deserialized program may call any of jaxlib's registered custom calls. ``keep``
never raises.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Hashable, Mapping
from typing import Any

import jax
import numpy as np

from ppl_suite.backends import kept_programs
from ppl_suite.problem import Problem

FOLDER = "exported"
SUFFIX = ".jaxexport"
MAX_BYTES = 256 * 1024**2
# used by the traced programs beyond store.NUMERICAL_PACKAGES: TraceEnum_ELBO's and einsum's paths
TRACING_PACKAGES = ("funsor", "opt_einsum")
_CHECKSUM = 32  # bytes of sha256 before each serialized program


def traced_from(problem: Problem, guide: str | None) -> str | None:
    """What the programs of ``problem`` fitted with ``guide`` (None: the model's own programs) are
    traced from beyond their keys (module docstring), or None for a model whose NumPyro
    implementation lives outside its folder, whose programs are not kept."""
    from ppl_suite import registry, store

    folder = problem.spec.module
    implementation = registry.implementation(problem.spec.name, "numpyro")
    if not folder or not getattr(implementation, "__module__", "").startswith(f"{folder}."):
        return None
    return json.dumps(
        {
            "code": store.code_hash(problem.spec.name, guide),
            "versions": {**store.package_versions(), **store.package_versions(TRACING_PACKAGES)},
            "data": dict(fixed_values(problem.data)),
        },
        sort_keys=True,
    )


def fixed_value(value: Any) -> str:
    """A value a program holds as a constant, as its key spells it: an array by its shape, dtype and
    the sha256 of its bytes (its repr elides the middle of a large one), anything else by its repr."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        array = np.ascontiguousarray(np.asarray(value))
        return f"array{array.shape}:{array.dtype.str}:{hashlib.sha256(array.tobytes()).hexdigest()}"
    return repr(value)


def fixed_values(values: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """``fixed_value`` of each of ``values``, by name in sorted order."""
    return tuple((name, fixed_value(value)) for name, value in sorted(values.items()))


def settings() -> dict[str, str]:
    """What a traced program depends on beyond its source: JAX's settings (``jax.config``: float64,
    the PRNG's implementation, matmul precision...) except its compilation cache's, plus JAX's
    default backend and NumPyro's argument validation (it adds masks to log densities)."""
    from numpyro.distributions import Distribution

    chosen = {name: repr(value) for name, value in jax.config.values.items() if "cache" not in name}
    return {
        **chosen,
        "backend": jax.default_backend(),
        "numpyro validation": repr(Distribution._validate_args),
    }


def file_key(key: Hashable, source: str) -> str:
    """The file name (less SUFFIX) of the program ``key`` traced from ``source`` under the present
    settings."""
    return kept_programs.file_key({"program": repr(key), "source": source, "settings": settings()})


def enabled() -> bool:
    """Whether programs are kept: ``PPL_SUITE_XLA_CACHE`` is not ``off`` (``compilation_cache``)."""
    return kept_programs.folder(FOLDER) is not None


def load(name: str) -> jax.export.Exported | None:
    """The program kept as ``name``, or None (none kept, a file whose checksum does not match, or
    one JAX cannot deserialize: damaged, or from a JAX that serializes differently). Loading marks
    it recently used."""
    payload = kept_programs.read(FOLDER, name, SUFFIX)
    if payload is None or hashlib.sha256(payload[_CHECKSUM:]).digest() != payload[:_CHECKSUM]:
        return None
    try:
        return jax.export.deserialize(bytearray(payload[_CHECKSUM:]))
    except Exception:
        return None


def keep(name: str, serialized: bytes) -> None:
    """Keep a serialized program (``Exported.serialize()``) as ``name``, behind its sha256. Never
    raises."""
    serialized = bytes(serialized)
    payload = hashlib.sha256(serialized).digest() + serialized
    kept_programs.write(FOLDER, name, SUFFIX, payload, MAX_BYTES)
