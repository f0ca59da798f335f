"""Recorded torch programs kept on disk between processes and runs, as JAX's persistent compilation
cache keeps XLA programs (``compilation_cache``).

The Pyro backend records its whole SVI step once per fit (``pyro_recorded_step``: make_fx and
TorchScript, 0.2-0.7 s of one core). The recording is saved with ``torch.jit.save`` under a key of
everything it was recorded from, and a later fit of the same model, guide, data and code loads it
instead (a few ms). A loaded program is used only after the checks a fresh recording passes (it
equals the eager step at two points of the fit's own state), so a stale or damaged file costs a
recording, never a wrong number. A program holds a copy of the model's data (its constants).

The programs are the files ``<key>.pt`` of the folder ``torch`` inside the compilation cache's
folder (``kept_programs``), at most MAX_BYTES of them; ``keep`` never raises.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch

from ppl_suite.backends import kept_programs

FOLDER = "torch"
SUFFIX = ".pt"
MAX_BYTES = 256 * 1024**2


def folder() -> Path | None:
    """The programs' folder, or None when the compilation cache is off."""
    return kept_programs.folder(FOLDER)


def load(key: str) -> torch.jit.ScriptModule | None:
    """The program kept under ``key``, or None (none kept, the cache off, or a file torch cannot
    load). Loading marks it recently used."""
    payload = kept_programs.read(FOLDER, key, SUFFIX)
    if payload is None:
        return None
    try:
        with warnings.catch_warnings():  # TorchScript's deprecation notice: the format is what it records
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(io.BytesIO(payload))
    except Exception:  # damaged, from another torch: record again
        return None


def keep(key: str, program: torch.jit.ScriptModule) -> None:
    """Save ``program`` under ``key`` (written whole or not at all). Never raises."""
    try:
        # serialized in memory: torch's own file writer aborts the process on a full disk
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.save(program, buffer)
    except Exception:  # a program torch cannot save: the next fit records again
        return
    kept_programs.write(FOLDER, key, SUFFIX, buffer.getvalue(), MAX_BYTES)
