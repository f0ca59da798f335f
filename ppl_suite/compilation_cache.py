"""JAX's persistent compilation cache: compiled XLA programs kept on disk between processes and runs.

Every worker process of a run, and every later run, loads a program it has compiled before instead of
compiling it again; on the shipped models compilation costs more than the optimization itself. A
loaded program is the same executable, so results are unchanged. The environment variable
``PPL_SUITE_XLA_CACHE`` sets the folder, or turns the cache off with ``off``; by default it is
``$XDG_CACHE_HOME/ppl-suite/xla`` (``~/.cache/ppl-suite/xla``). The folder is bounded to MAX_BYTES,
least recently used programs dropped first; deleting it is always safe.
"""

from __future__ import annotations

import os
from pathlib import Path

VARIABLE = "PPL_SUITE_XLA_CACHE"
OFF = {"off", "0", "false", "no", "none"}
MAX_BYTES = 2 * 1024**3


def cache_dir() -> Path | None:
    """The cache folder chosen by the environment, or None when the cache is off."""
    setting = os.environ.get(VARIABLE, "").strip()
    if setting.lower() in OFF:
        return None
    if setting:
        return Path(setting).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ppl-suite" / "xla"


def enable_compilation_cache() -> Path | None:
    """Point JAX at the cache folder (before its first compilation) and cache every program, however
    quick to compile: a worker compiles hundreds of small ones. Returns the folder, or None if off."""
    import jax

    path = cache_dir()
    if path is None:
        return None
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return path
