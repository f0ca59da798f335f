"""The backend contract: fit a guide family to a problem with SVI and hand back plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ppl_suite import guides, registry
from ppl_suite.estimate import Estimate
from ppl_suite.problem import Problem


@dataclass(frozen=True)
class SVIConfig:
    """Settings shared by every backend, so fits differ only in the library that runs them.

    Adam(betas=(0.9, 0.999), eps=1e-8) with an exponentially decaying step size
    lr_t = lr * (final_lr / lr)^(t / steps), t = 0..steps-1; ``particles`` reparameterized samples per
    gradient step; ``eval_particles`` samples for the backend's own ELBO evaluation after the fit.
    """

    steps: int = 3000
    lr: float = 0.05
    final_lr: float = 1e-4
    particles: int = 16
    eval_particles: int = 10_000

    def __post_init__(self) -> None:
        problems = []
        if self.steps < 1:
            problems.append(f"steps must be >= 1, got {self.steps}")
        if self.particles < 1:
            problems.append(f"particles must be >= 1, got {self.particles}")
        if self.eval_particles < 2:
            problems.append(f"eval_particles must be >= 2, got {self.eval_particles}")
        if not (self.lr > 0 and self.final_lr > 0):
            problems.append(f"lr and final_lr must be > 0, got {self.lr} and {self.final_lr}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def lr_decay(self) -> float:
        """Per-step factor gamma with lr_t = lr * gamma^t."""
        return (self.final_lr / self.lr) ** (1.0 / self.steps)


ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


@dataclass
class Fit:
    """A fitted guide in backend-neutral form.

    ``phi``: the guide family's parameters (same names and parametrization in every backend);
    ``theta``: learned model parameters (empty for models without); ``losses``: the training loss
    (-ELBO estimate) at every step; ``library_elbo``: the backend's own ELBO of the final guide.
    ``compile_seconds`` is tracing/compilation (for Pyro: the first step); ``run_seconds`` times the
    remaining ``timed_steps`` steps. ``trajectory`` holds parameter snapshots during training:
    {"step": (C,), "phi": {name: (C, ...)}, "theta": {name: (C, ...)}}, C about 20.
    """

    backend: str
    guide: str
    phi: dict[str, np.ndarray]
    theta: dict[str, np.ndarray]
    losses: np.ndarray
    compile_seconds: float
    run_seconds: float
    timed_steps: int
    library_elbo: Estimate | None = None
    trajectory: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, float] = field(default_factory=dict)

    @property
    def steps_per_second(self) -> float:
        return self.timed_steps / self.run_seconds if self.run_seconds > 0 else float("nan")


class Backend(Protocol):
    name: str

    def unsupported(self, problem: Problem, guide: str) -> str | None:
        """Why this backend cannot fit ``guide`` on this problem, or None when it can."""

    def fit(self, problem: Problem, guide: str, config: SVIConfig, seed: int) -> Fit:
        """Run SVI from the guide family's initial parameters; deterministic given ``seed``."""


def unsupported_reason(problem: Problem, guide: str, implementation: str) -> str | None:
    """Shared skip reasons: the model lacks the ``implementation`` (pyro or numpyro) or the guide."""
    spec = problem.spec
    if guide not in spec.guides:
        return f"model {spec.name!r} does not declare guide {guide!r} (it has {', '.join(spec.guides)})"
    if registry.implementation(spec.name, implementation) is None:
        return f"model {spec.name!r} has no {implementation} implementation"
    return guides.get(guide).unsupported(problem.sites)
