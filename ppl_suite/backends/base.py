"""The backend contract: fit a guide family to a problem with SVI and hand back plain data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import numpy as np

from ppl_suite import guides, registry, sizes
from ppl_suite.estimate import Estimate
from ppl_suite.problem import Problem
from ppl_suite.spec import Domain, ModelSpec, Site

SVI_DOMAINS = {
    "steps": Domain.integer(low=1),
    "lr": Domain.positive(),
    "final_lr": Domain.positive(),
    "hold": Domain.real(0.0, 1.0, high_open=True),
    "particles": Domain.integer(low=1),
    "eval_particles": Domain.integer(low=2),
}
# what the suite keeps per unit of each size, bounded by the memory budget (``sizes``); particles are
# bounded again with the problem's size by ``matrix.expand``
SVI_SIZES = {
    "steps": "per step (its loss)",
    "particles": "per particle",
    "eval_particles": "per particle",
}


@dataclass(frozen=True)
class SVIConfig:
    """Settings shared by every backend, so fits differ only in the library that runs them.

    Adam(betas=(0.9, 0.999), eps=1e-8) with the step size held at ``lr`` for the first ``hold``
    fraction of the steps, then decaying exponentially to ``final_lr`` at the last step:

        lr_t = lr * (final_lr / lr)^clip((t - hold * steps) / ((1 - hold) * steps), 0, 1)

    The hold lets Adam's second-moment memory (beta2 = 0.999) forget the large gradients of a distant
    start before the step shrinks; the decay removes the jitter a constant step leaves around the
    optimum. ``particles`` reparameterized samples per gradient step; ``eval_particles`` samples for
    the backend's own ELBO evaluation after the fit.
    """

    steps: int = 3000
    lr: float = 0.05
    final_lr: float = 2e-5
    hold: float = 0.5
    particles: int = 16
    eval_particles: int = 10_000

    def __post_init__(self) -> None:
        problems = self.problems({f.name: getattr(self, f.name) for f in fields(self)})
        if problems:
            raise ValueError("; ".join(problems))

    @staticmethod
    def problems(settings: Mapping[str, Any]) -> list[str]:
        """One message per setting outside its domain (SVI_DOMAINS) or unknown, naming the valid ones."""
        unknown = [name for name in settings if name not in SVI_DOMAINS]
        out = [f"unknown svi setting {', '.join(map(repr, unknown))}; valid: {', '.join(SVI_DOMAINS)}"]
        out = out if unknown else []
        return out + [
            problem
            for name, value in settings.items()
            if name in SVI_DOMAINS
            and (
                problem := SVI_DOMAINS[name].problem(name, value)
                or (sizes.over_budget(name, value, 1, SVI_SIZES[name]) if name in SVI_SIZES else None)
            )
        ]

    def learning_rate(self, t, xp=np):
        """lr_t for step t = 0..steps-1; ``xp`` is numpy or jax.numpy (t may be traced)."""
        start = self.hold * self.steps
        progress = xp.clip((t - start) / max(self.steps - start, 1.0), 0.0, 1.0)
        return self.lr * (self.final_lr / self.lr) ** progress


ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


@dataclass
class Fit:
    """A fitted guide in backend-neutral form.

    ``phi``: the guide family's parameters (same names and parametrization in every backend);
    ``theta``: learned model parameters (empty for models without); ``losses``: the training loss
    (-ELBO estimate) at every step; ``library_elbo``: the backend's own ELBO of the final guide.
    ``compile_seconds`` is the tracing and compilation this fit paid (for Pyro: the first step; for the
    JAX backends near 0 when a program compiled for the same shapes in this process was reused, see
    ``programs``); ``run_seconds`` times the remaining ``timed_steps`` steps. ``draws_path``: how the
    backend put a batch of particles through the model (``schema.DRAWS_PATH``). ``trajectory`` holds
    parameter snapshots during training:
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
    draws_path: str = ""
    trajectory: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, float] = field(default_factory=dict)

    @property
    def steps_per_second(self) -> float:
        return self.timed_steps / self.run_seconds if self.run_seconds > 0 else float("nan")


class Backend(Protocol):
    name: str

    def unsupported(self, spec: ModelSpec, sites: tuple[Site, ...], guide: str) -> str | None:
        """Why this backend cannot fit ``guide`` to the model ``spec`` with latent ``sites``
        (``spec.sites(params)``), or None when it can; needs no data."""

    def fit(self, problem: Problem, guide: str, config: SVIConfig, seed: int) -> Fit:
        """Run SVI from the guide family's initial parameters; deterministic given ``seed``."""


def unsupported_reason(
    spec: ModelSpec, sites: tuple[Site, ...], guide: str, implementation: str
) -> str | None:
    """Shared skip reasons: the model lacks the ``implementation`` (pyro or numpyro) or the guide."""
    if guide not in spec.guides:
        return f"model {spec.name!r} does not declare guide {guide!r} (it has {', '.join(spec.guides)})"
    if not registry.has_implementation(spec.name, implementation):  # imports no library
        return f"model {spec.name!r} has no {implementation} implementation"
    return guides.get(guide).unsupported(sites)
