"""Recorded torch programs kept on disk between processes and runs, as JAX's persistent compilation
cache keeps XLA programs (``compilation_cache``).

The Pyro backend records its whole SVI step once per fit (``pyro_recorded_step``: make_fx and
TorchScript, 0.2-0.7 s of one core, and ~1.2 s of imports the first time in a process). The recording
is saved with ``torch.jit.save`` under a key of everything it was recorded from, and a later fit of
the same model, guide, data and code loads it instead (a few ms). A loaded program is used only after
the checks a fresh recording passes (it equals the eager step at two points of the fit's own state),
so a stale or damaged file costs a recording, never a wrong number.

The programs are the files ``<key>.pt`` of the folder ``torch`` inside the compilation cache's folder
(JAX manages only its own top-level ``*-cache`` and ``*-atime`` files there); ``PPL_SUITE_XLA_CACHE=off``
turns both off. The folder is bounded to MAX_BYTES, least recently used programs dropped first;
deleting it is always safe. A folder that cannot be written costs a recording next time, nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from ppl_suite.compilation_cache import cache_dir

FOLDER = "torch"
SUFFIX = ".pt"
MAX_BYTES = 256 * 1024**2


def program_key(payload: dict[str, Any]) -> str:
    """sha256 (hex) of a JSON-able description of what a program was recorded from."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def folder() -> Path | None:
    """The programs' folder, or None when the compilation cache is off."""
    root = cache_dir()
    return None if root is None else root / FOLDER


def load(key: str) -> torch.jit.ScriptModule | None:
    """The program kept under ``key``, or None (none kept, the cache off, or a file torch cannot
    load). Loading marks it recently used."""
    place = folder()
    path = None if place is None else place / f"{key}{SUFFIX}"
    if path is None or not path.is_file() or path.is_symlink():
        return None
    try:
        with warnings.catch_warnings():  # TorchScript's deprecation notice: the format is what it records
            warnings.simplefilter("ignore", DeprecationWarning)
            program = torch.jit.load(str(path))
        os.utime(path)
    except Exception:  # damaged, from another torch, unreadable: record again
        return None
    return program


def keep(key: str, program: torch.jit.ScriptModule) -> None:
    """Save ``program`` under ``key`` (written whole or not at all), then drop the least recently
    used programs past MAX_BYTES."""
    place = folder()
    if place is None:
        return
    try:
        place.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=place, prefix=".partial-", suffix=SUFFIX)
        os.close(handle)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.jit.save(program, temporary)
            os.replace(temporary, place / f"{key}{SUFFIX}")
        finally:
            Path(temporary).unlink(missing_ok=True)
        _bound(place)
    except OSError:  # a read-only or full disk: the next fit records again
        return


def _bound(place: Path) -> None:
    """Remove the least recently used programs until the folder holds at most MAX_BYTES of them."""
    kept = sorted(
        (path.stat().st_mtime, path.stat().st_size, path)
        for path in place.glob(f"*{SUFFIX}")
        if path.is_file() and not path.is_symlink() and not path.name.startswith(".")
    )
    total = sum(size for _, size, _ in kept)
    for _, size, path in kept:
        if total <= MAX_BYTES:
            break
        path.unlink(missing_ok=True)
        total -= size
