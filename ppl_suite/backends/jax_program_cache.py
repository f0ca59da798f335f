"""The suite's traced JAX programs kept on disk between processes and runs (``jax.export``).

JAX's persistent compilation cache (``compilation_cache``) keeps XLA's executables, but finding one
takes the program's StableHLO, so each process would still trace the model and guide through NumPyro
first: about a fifth of a quick-profile JAX cell with a warm cache. ``programs.compiled`` keeps each
program of a model of the suite's own folders as an exported function (``jax.export``, JAX's stable
serialization) under a key of what it is traced from (``traced_from``), and a later process
deserializes it (a few ms) instead of tracing.

What a program is traced from, and so its key: the model's, guide family's, backends' and
estimators' source (``store.code_hash``), the numerical packages' versions, the data and fixed
parameters (values, not only shapes: a guide's initial values and a model's parameters are constants
of the program), the program's own key (``programs.program_key``: the SVI settings...), JAX's settings
and NumPyro's argument validation. A model defined outside a file of its own (a user's model checked
from a script or a notebook) is traced in every process: its source may read globals no hash covers.

The programs are the files ``<key>.jaxexport`` of the folder ``exported`` inside the compilation
cache's folder (``kept_programs``), at most MAX_BYTES of them; each holds its program's constants.
Like the compilation cache, the folder is trusted input: a deserialized program may call any of
jaxlib's registered custom calls. ``keep`` never raises.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Hashable
from importlib import metadata
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


def traced_from(problem: Problem, guide: str | None) -> str | None:
    """What the programs of ``problem`` fitted with ``guide`` (None: the model's own programs) are
    traced from beyond their keys (module docstring), or None for a model defined outside a folder
    of its own, whose programs are not kept."""
    from ppl_suite import store

    if not problem.spec.module:
        return None
    versions = dict(store.package_versions())
    for package in TRACING_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "absent"
    return json.dumps(
        {
            "code": store.code_hash(problem.spec.name, guide),
            "versions": versions,
            "data": {name: fixed_value(value) for name, value in sorted(problem.data.items())},
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


def settings() -> dict[str, str]:
    """JAX's settings (``jax.config``) but those of its compilation cache, its backend, and NumPyro's
    argument validation (it adds masks to log densities): what a traced program depends on beyond
    its source (float64, the PRNG's implementation, matmul precision...)."""
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
    """Whether programs are kept (the compilation cache is on)."""
    return kept_programs.folder(FOLDER) is not None


def load(name: str) -> jax.export.Exported | None:
    """The program kept as ``name``, or None (none kept, or a file JAX cannot deserialize: damaged,
    or from a JAX that serializes differently). Loading marks it recently used."""
    payload = kept_programs.read(FOLDER, name, SUFFIX)
    try:
        return None if payload is None else jax.export.deserialize(bytearray(payload))
    except Exception:
        return None


def keep(name: str, serialized: bytes) -> None:
    """Keep a serialized program (``Exported.serialize()``) as ``name``. Never raises."""
    kept_programs.write(FOLDER, name, SUFFIX, bytes(serialized), MAX_BYTES)
