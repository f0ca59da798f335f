"""How every command stops on SIGINT (Ctrl-C) and SIGTERM: the signal becomes a KeyboardInterrupt in
the main thread, so the command unwinds through its ``with`` blocks and ``finally`` clauses (workers
stopped, finished work kept, temporary files removed) instead of dying where it stood, and exits
128 + the signal's number: 130 for SIGINT, 143 for SIGTERM. A signal that comes while it unwinds is
not raised again, so the clean-up runs to its end.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any


class StopSignals:
    """Within ``with``, the first SIGINT or SIGTERM raises KeyboardInterrupt in this (the main)
    thread and ``received`` says which came; later ones are let pass. The previous handlers come back
    on exit. Nested uses are fine: the inner one handles the signals while it is entered."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            return  # already stopping: let the clean-up finish
        self.received = signum
        raise KeyboardInterrupt

    def ignore(self) -> None:
        """Ignore both signals until ``with`` ends (a clean-up that must not be broken)."""
        if self._previous:
            for sig in self.SIGNALS:
                signal.signal(sig, signal.SIG_IGN)

    def exit_code(self) -> int:
        """128 + the signal received (SIGINT when the KeyboardInterrupt came from elsewhere)."""
        return 128 + (self.received or signal.SIGINT)

    def name(self) -> str:
        """SIGINT or SIGTERM: what stopped the command."""
        return signal.Signals(self.received or signal.SIGINT).name

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
