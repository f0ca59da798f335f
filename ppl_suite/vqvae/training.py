"""Training the VQ-VAE: one set of settings, one initial weight set, the VAE study's minibatch order,
three objectives, three backends.

    enumerated      the ELBO summed exactly over q: (N / B) sum_{n in batch} sum_z q(z | x_n)
                    [log p(x_n, z) - log q(z | x_n)]; Pyro and NumPyro: ``TraceEnum_ELBO`` with the
                    guide's sites enumerated in parallel; hand-rolled: the sum written out.
    score_function  the ELBO estimated from z ~ q (``particles`` draws), its gradient by the score
                    function (REINFORCE): grad f + f grad log q, f = log p(x, z) - log q(z | x)
                    (Williams 1992; Ranganath, Gerrish and Blei 2014); Pyro: ``Trace_ELBO``;
                    NumPyro: ``TraceGraph_ELBO`` (its ``Trace_ELBO`` does not take discrete latent
                    sites; TraceGraph keeps only each site's downstream costs, the same expectation);
                    hand-rolled: the surrogate f + stop_gradient(f) log q, Pyro's estimator.
    vq              the VQ-VAE's deterministic limit: ``network.vq_loss`` (straight-through
                    reconstruction at the nearest codes, codebook and commitment losses, beta),
                    (N / B) summed over the batch; no ELBO class computes it, so each backend writes
                    it in its array library (torch, JAX) with its Adam.

Every backend and objective starts at ``network.init_weights(seed, codes, positions, code_dim,
hidden)`` and takes the minibatches of ``ppl_suite.vae.training.minibatches``; Adam at the constant
step ``lr`` (``ADAM_BETAS``, ``ADAM_EPS``).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.vae_digits.data import VAEData
from models.vqvae_digits import network
from ppl_suite.spec import Domain
from ppl_suite.vae.training import (
    SeededTraining,
    TrainedVAE,
    checkpoint_problems,
    minibatches,
    setting_problems,
    trainer_backends,
)

# a backend's index seeds its draws (``evaluation``): ``backends.names()`` keeps new backends last
BACKENDS = trainer_backends("ppl_suite.vqvae")
BACKEND_MODULES = {name: f"ppl_suite.vqvae.train_{name}" for name in BACKENDS}
OBJECTIVES = ("enumerated", "score_function", "vq")
TRAINING_DOMAINS = {
    "codes": Domain.integer(low=2),
    "positions": Domain.integer(low=1),
    "code_dim": Domain.integer(low=1),
    "hidden": Domain.integer(low=1),
    "temperature": Domain.positive(),
    "beta": Domain.positive(),
    "steps": Domain.integer(low=1),
    "batch_size": Domain.integer(low=1),
    "lr": Domain.positive(),
    "seed": Domain.integer(low=0),
    "particles": Domain.integer(low=1),
    "noise_seed": Domain.integer(low=0),  # or None: the seed
}
MAX_CODES = 65_536  # K^L: the enumeration's size, kept to what a sum over every code does cheaply


@dataclass(frozen=True)
class VQTrainingSettings(SeededTraining):
    """What a VQ-VAE training run depends on, besides the data, the backend and the objective.

    ``codes`` K and ``positions`` L (K^L codes in all, at most ``MAX_CODES``), ``code_dim`` d of each
    code vector, ``hidden`` units of both networks, ``temperature`` T of q's logits, ``beta`` the
    commitment weight of the vq objective; ``seed`` draws the initial weights and the minibatch order,
    ``noise_seed`` the draws of the score-function objective (``noise``: the seed when None);
    ``checkpoints`` as in ``ppl_suite.vae.training.TrainingSettings`` (log-spaced by default, 0 and
    ``steps`` always added).
    """

    codes: int = 16
    positions: int = 2
    code_dim: int = 2
    hidden: int = 64
    temperature: float = 1.0
    beta: float = 0.25
    steps: int = 3000
    batch_size: int = 100
    lr: float = 1e-3
    seed: int = 0
    particles: int = 1
    noise_seed: int | None = None
    checkpoints: tuple[int, ...] = field(default=())

    @staticmethod
    def problems(settings: Mapping[str, Any]) -> list[str]:
        """One message per setting outside its domain or unknown, naming the valid ones."""
        out = setting_problems(settings, TRAINING_DOMAINS)
        codes, positions = settings.get("codes", 16), settings.get("positions", 2)
        if not out and codes**positions > MAX_CODES:
            out.append(f"codes ** positions must be at most {MAX_CODES}, got {codes}**{positions}")
        return [*out, *checkpoint_problems(settings, VQTrainingSettings.steps)]

    def init_weights(self) -> dict[str, np.ndarray]:
        """The initial weights every backend and objective starts from."""
        return network.init_weights(self.seed, self.codes, self.positions, self.code_dim, self.hidden)


def train(
    backend: str,
    objective: str,
    data: VAEData,
    settings: VQTrainingSettings,
    init: Mapping[str, np.ndarray] | None = None,
) -> TrainedVAE:
    """Train on ``data.train`` with ``backend`` and ``objective`` from ``init`` (default:
    ``settings.init_weights()``) over the VAE study's shared ``minibatches``; the weights come back
    named as in ``network`` (the codebook with the decoder)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; valid: {', '.join(OBJECTIVES)}")
    init = settings.init_weights() if init is None else init
    init = {name: np.asarray(value, dtype=np.float64) for name, value in init.items()}
    batches = minibatches(settings, len(data.train))
    fit = importlib.import_module(BACKEND_MODULES[backend]).fit
    return fit(np.asarray(data.train, dtype=np.float64), init, batches, settings, objective)
