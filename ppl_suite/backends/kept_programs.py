"""Traced programs kept on disk between processes and runs, one file per key, beside JAX's persistent
compilation cache (``compilation_cache``): Pyro's recorded SVI steps (``torch_program_cache``) and the
suite's exported JAX programs (``programs``).

Each kind has its own folder inside the compilation cache's folder (JAX manages only its own
top-level ``*-cache`` and ``*-atime`` files there), and its programs are the files ``<key><suffix>``
(a key: 64 hex digits). ``PPL_SUITE_XLA_CACHE=off`` turns them off with the compilation cache. A
folder is bounded to a number of bytes of programs, least recently used dropped first; only files
named as this module names them are counted or removed, and deleting a folder is always safe.
``write`` never raises: a folder that cannot be written costs a tracing next time, nothing else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from ppl_suite.compilation_cache import cache_dir

PARTIAL = ".partial-"  # a program being written; one left by a killed process is removed once stale
STALE_SECONDS = 3600.0


def file_key(payload: dict[str, Any]) -> str:
    """sha256 (hex) of a JSON-able description of what a program was traced from."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def folder(name: str) -> Path | None:
    """The folder of the programs of kind ``name``, or None when the compilation cache is off."""
    root = cache_dir()
    return None if root is None else root / name


def read(name: str, key: str, suffix: str) -> bytes | None:
    """The bytes kept under ``key`` in folder ``name``, or None (none kept, the cache off, a link or
    an unreadable file). Reading marks the program recently used."""
    place = folder(name)
    if place is None:
        return None
    path = place / f"{key}{suffix}"
    try:
        if path.is_symlink() or not path.is_file():
            return None
        payload = path.read_bytes()
    except OSError:
        return None
    with contextlib.suppress(OSError):  # a read-only folder: the program is still used
        os.utime(path)
    return payload


def write(name: str, key: str, suffix: str, payload: bytes, max_bytes: int) -> None:
    """Keep ``payload`` under ``key`` in folder ``name`` (written whole or not at all), then drop the
    least recently used programs past ``max_bytes``. Never raises."""
    place = folder(name)
    if place is None or len(payload) > max_bytes:  # one that would push out every other, then itself
        return
    try:
        place.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=place, prefix=PARTIAL, suffix=suffix)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(payload)
            os.replace(temporary, place / f"{key}{suffix}")
        finally:
            Path(temporary).unlink(missing_ok=True)
        _bound(place, suffix, max_bytes)
    except Exception:  # a read-only or full disk: the next process traces again
        return


def _bound(place: Path, suffix: str, max_bytes: int) -> None:
    """Remove the least recently used programs until ``place`` holds at most ``max_bytes`` of them,
    and partial files left by killed processes; nothing else in the folder is touched."""
    program = re.compile(r"[0-9a-f]{64}" + re.escape(suffix))
    now, kept = time.time(), []
    for path in place.iterdir():
        if path.is_symlink() or not path.is_file():
            continue
        status = path.stat()
        if path.name.startswith(PARTIAL) and path.name.endswith(suffix):
            if now - status.st_mtime > STALE_SECONDS:
                path.unlink(missing_ok=True)
        elif program.fullmatch(path.name):
            kept.append((status.st_mtime, status.st_size, path))
    total = sum(size for _, size, _ in kept)
    for _, size, path in sorted(kept):
        if total <= max_bytes:
            break
        path.unlink(missing_ok=True)
        total -= size
