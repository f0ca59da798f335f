"""Recorded torch programs kept on disk between processes and runs, as JAX's persistent compilation
cache keeps XLA programs (``compilation_cache``).

The Pyro backend records its whole SVI step once per fit (``pyro_recorded_step``: make_fx and
TorchScript, 0.2-0.7 s of one core). The recording is saved with ``torch.jit.save`` under a key of
everything it was recorded from, and a later fit of the same model, guide, data and code loads it
instead (a few ms). A loaded program is used only after the checks a fresh recording passes (it
equals the eager step at two points of the fit's own state), so a stale or damaged file costs a
recording, never a wrong number. A program holds a copy of the model's data (its constants).

The programs are the files ``<key>.pt`` (64 hex digits) of the folder ``torch`` inside the
compilation cache's folder (JAX manages only its own top-level ``*-cache`` and ``*-atime`` files
there); ``PPL_SUITE_XLA_CACHE=off`` turns both off. The folder is bounded to MAX_BYTES of programs,
least recently used dropped first; only files named as this module names them are counted or
removed, and deleting the folder is always safe. ``keep`` never raises: a folder that cannot be
written costs a recording next time, nothing else.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from ppl_suite.compilation_cache import cache_dir

FOLDER = "torch"
SUFFIX = ".pt"
PARTIAL = ".partial-"  # a program being written; one left by a killed process is removed once stale
STALE_SECONDS = 3600.0
MAX_BYTES = 256 * 1024**2
PROGRAM = re.compile(r"[0-9a-f]{64}\.pt")


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
    used programs past MAX_BYTES. Never raises."""
    place = folder()
    if place is None:
        return
    try:
        # serialized in memory: torch's own file writer aborts the process on a full disk
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.save(program, buffer)
        payload = buffer.getvalue()
        if len(payload) > MAX_BYTES:  # it would push out every other program, then itself
            return
        place.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=place, prefix=PARTIAL, suffix=SUFFIX)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(payload)
            os.replace(temporary, place / f"{key}{SUFFIX}")
        finally:
            Path(temporary).unlink(missing_ok=True)
        _bound(place)
    except Exception:  # a read-only or full disk, a program torch cannot save: the next fit records again
        return


def _bound(place: Path) -> None:
    """Remove the least recently used programs until the folder holds at most MAX_BYTES of them, and
    partial files left by killed processes; nothing else in the folder is touched."""
    now, kept = time.time(), []
    for path in place.iterdir():
        if path.is_symlink() or not path.is_file():
            continue
        status = path.stat()
        if path.name.startswith(PARTIAL) and path.name.endswith(SUFFIX):
            if now - status.st_mtime > STALE_SECONDS:
                path.unlink(missing_ok=True)
        elif PROGRAM.fullmatch(path.name):
            kept.append((status.st_mtime, status.st_size, path))
    total = sum(size for _, size, _ in kept)
    for _, size, path in sorted(kept):
        if total <= MAX_BYTES:
            break
        path.unlink(missing_ok=True)
        total -= size
