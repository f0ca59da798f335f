"""Stopping worker processes from the parent: SIGTERM to each worker's process group, a short grace,
then SIGKILL, which nothing can ignore, not even a process hung in native code.

Workers lead their own process group (``worker.guard``), so signalling the group also reaches any
process a worker started. A worker that has not yet made its group is signalled by its PID.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Collection

GRACE_SECONDS = 1.0  # between SIGTERM and SIGKILL
_POLL_SECONDS = 0.02


def signal_group(pid: int, signum: int) -> None:
    """Send ``signum`` to the process group led by ``pid``, or to ``pid`` alone if it leads none."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def stop_groups(pids: Collection[int], alive: Callable[[int], bool], grace: float = GRACE_SECONDS) -> None:
    """SIGTERM every group, wait until none is ``alive`` or ``grace`` seconds pass, then SIGKILL every
    group (also those whose leader has exited, so its children go too).

    ``alive(pid)`` says whether the process still exists (an exited child must be reaped by it, e.g.
    ``multiprocessing.Process.is_alive``). A group outlives its leader while a member lives, and its
    number is not reused meanwhile, so signalling a group is always safe."""
    for pid in pids:
        signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(_POLL_SECONDS)
    for pid in pids:
        if alive(pid):
            signal_group(pid, signal.SIGKILL)
        else:  # the leader is gone (and reaped): its PID may be reused, only its group is signalled
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
