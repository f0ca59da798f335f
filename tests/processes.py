"""The processes a test started, found by their command lines (psutil)."""

from __future__ import annotations

import psutil

SPAWNED = "spawn_main"  # in the command line of every process started by multiprocessing's spawn


def below(process: psutil.Process, marker: str = SPAWNED) -> list[psutil.Process]:
    """The processes below ``process`` whose command line holds ``marker`` (those that ended while
    being looked at are left out)."""
    found = []
    for child in process.children(recursive=True):
        try:
            if marker in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found
