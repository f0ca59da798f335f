"""What a reference reports while it builds: each attempt, each phase of NUTS (warmup, draws), the gates
after each, and the evidence; a front end shows them (``ppl-suite reference`` and ``check`` print
``ReferenceProgress.text``), the library prints nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ppl_suite.references.gates import GateResult

STARTED = "started"  # an attempt starts (its warmup with it)
WARMED_UP = "warmed up"  # the warmup is over: the draws start
DRAWN = "drawn"  # draws were kept; ``gates`` holds their gates
EVIDENCE = "evidence"  # the gates passed: AIS (and BDMC) start
STOPPED = "stopped"  # no further attempt: none left, or the budget would be overrun (``note`` says which)


@dataclass(frozen=True)
class ReferenceProgress:
    """One step of building a reference: attempt ``attempt`` (its ``remedy``: ``"as given"``,
    ``"non-centered theta"``, ...), ``phase`` (a constant above), ``chains`` x ``draws_per_chain``
    kept so far, ``elapsed`` seconds since the reference started, ``eta`` seconds the next phase is
    expected to take (None when unknown: the first warmup compiles), the gates after a ``drawn``
    phase, and a ``note``."""

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
            body = f"NUTS warmup, {self.chains} chains{eta}"
        elif self.phase == WARMED_UP:
            body = f"warmed up; drawing {self.draws_per_chain} per chain{eta}"
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
