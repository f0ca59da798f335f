"""What a reference reports while it builds: each attempt's start, a heartbeat while NUTS runs, the
draws' gates, and the evidence; a front end shows them (``ppl-suite reference`` and ``check`` print
``ReferenceProgress.text``), the library prints nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ppl_suite.references.gates import GateResult

STARTED = "started"  # an attempt starts: warmup and draws
RUNNING = "running"  # NUTS or AIS is still running (told every HEARTBEAT_SECONDS)
DRAWN = "drawn"  # draws were kept; ``gates`` holds their gates
EVIDENCE = "evidence"  # the gates passed: AIS (and BDMC) start
HEARTBEAT_SECONDS = 10.0
STOPPED = "stopped"  # no further attempt: none left, or the budget would be overrun (``note`` says which)


@dataclass(frozen=True)
class ReferenceProgress:
    """One step of building a reference: attempt ``attempt`` (its ``remedy``: ``"as given"``,
    ``"non-centered theta"``, ...), ``phase`` (a constant above), ``chains`` x ``draws_per_chain``
    (drawn or being drawn), ``elapsed`` seconds since the reference started, ``eta`` seconds the
    running phase is expected to take in all (None when unknown: the first run's compilation and
    speed are not known before it ends), the gates after a ``drawn`` phase, and a ``note``."""

    model: str
    attempt: int
    remedy: str
    phase: str
    chains: int
    draws_per_chain: int
    elapsed: float
    eta: float | None = None
    gates: GateResult | None = None
    note: str = ""

    @property
    def text(self) -> str:
        """One line for a person."""
        head = f"reference {self.model}, attempt {self.attempt} ({self.remedy}): "
        eta = f", about {self.eta:.0f} s" if self.eta is not None else ""
        if self.phase == STARTED:
            body = f"NUTS warmup and {self.draws_per_chain} draws per chain, {self.chains} chains{eta}"
        elif self.phase == RUNNING:
            body = "still running" + (f" (about {self.eta:.0f} s expected)" if self.eta is not None else "")
        elif self.phase == DRAWN:
            failures = self.gates.failures() if self.gates is not None else []
            verdict = "gates passed" if not failures else "gates failed: " + "; ".join(failures)
            body = f"{self.chains} chains x {self.draws_per_chain} draws, {verdict}"
        elif self.phase == EVIDENCE:
            body = f"AIS evidence{eta}"
        else:
            body = self.note
        return f"{head}{body}{f'; {self.note}' if self.note and self.phase != STOPPED else ''} " + (
            f"[{self.elapsed:.0f} s]"
        )


OnProgress = Callable[[ReferenceProgress], None]


def ignore(progress: ReferenceProgress) -> None:
    """The default: nothing is shown."""


@contextmanager
def heartbeat(beat: Callable[[], None], seconds: float = HEARTBEAT_SECONDS) -> Iterator[None]:
    """Within: ``beat()`` every ``seconds``, from a helper thread (NUTS and AIS hold this one in
    compiled code for minutes)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(seconds):
            beat()

    thread = threading.Thread(target=loop, name="reference-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
