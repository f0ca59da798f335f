"""Training the VAE: one set of settings, one initial weight set, one minibatch order, three backends.

Every backend maximizes the same minibatch ELBO estimate with Adam (``ADAM_BETAS``, ``ADAM_EPS``, the
constant step ``lr``),

    ELBO_B(theta, phi) = (N / B) sum_{n in batch} (1/P) sum_p [log p(x_n, z_np) - log q(z_np | x_n)],
    z_np = loc_phi(x_n) + scale_phi(x_n) eps_np,  eps_np ~ N(0, I),  p = p_theta, q = q_phi,

an unbiased estimate of the full-data ELBO sum_n E_q[log p_theta(x_n, z) - log q_phi(z | x_n)] when the
batch is a uniform draw of B of the N training images (Hoffman, Blei, Wang and Paisley, 2013,
"Stochastic variational inference", JMLR 14; Kingma and Welling, 2014). Pyro and NumPyro compute it
as ``Trace_ELBO`` over the data plate subsampled at the shared indices (``models/vae_digits``);
the hand-rolled backend writes it out with ``network.elbo_terms``. The backends draw eps from their
own random streams (torch, and two different JAX key schedules), so their trajectories agree in
distribution, not draw for draw.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from models.vae_digits import network
from models.vae_digits.data import VAEData
from ppl_suite import sizes
from ppl_suite.spec import Domain


def trainer_backends(package: str) -> tuple[str, ...]:
    """The backends (``ppl_suite.backends.names()``, in its order) that ``package`` has a trainer for:
    a module ``<package>.train_<backend>``."""
    from ppl_suite import backends

    return tuple(name for name in backends.names() if importlib.util.find_spec(f"{package}.train_{name}"))


BACKENDS = trainer_backends("ppl_suite.vae")
BACKEND_MODULES = {name: f"ppl_suite.vae.train_{name}" for name in BACKENDS}
MINIBATCH_STREAM = 1  # minibatch order: np.random.default_rng([MINIBATCH_STREAM, seed]); weights: seed
TRAINING_DOMAINS = {
    "latent_dim": Domain.integer(low=1),
    "hidden": Domain.integer(low=1),
    "steps": Domain.integer(low=1),
    "batch_size": Domain.integer(low=1),
    "lr": Domain.positive(),
    "seed": Domain.integer(low=0),
    "particles": Domain.integer(low=1),
    "noise_seed": Domain.integer(low=0),  # or None: the seed
}
TRAINING_SIZES = {  # what training keeps per unit, bounded by the memory budget (``sizes``)
    "steps": "per step (its loss)",
    "batch_size": "per image of a batch",
    "particles": "per particle",
}


def default_checkpoints(steps: int) -> tuple[int, ...]:
    """Log-spaced steps 0, 1, 2, 5, 10, 20, 50, ... up to and including ``steps``."""
    marks = {m * 10**k for k in range(len(str(steps))) for m in (1, 2, 5)}
    return tuple(sorted({0, steps} | {m for m in marks if m <= steps}))


class SeededTraining:
    """What the studies' frozen training settings share: checked when made (ValueError naming every
    problem of their ``problems``), ``checkpoints`` resolved (() the default, 0 and ``steps`` always
    added, sorted), and the seed of their training noise."""

    def __post_init__(self) -> None:
        problems = self.problems({f.name: getattr(self, f.name) for f in fields(self)})
        if problems:
            raise ValueError("; ".join(problems))
        steps = {0, self.steps} | set(self.checkpoints or default_checkpoints(self.steps))  # () = default
        object.__setattr__(self, "checkpoints", tuple(sorted(int(step) for step in steps)))

    @property
    def noise(self) -> int:
        """The seed of the training noise's stream (the reparametrization noise, the score function's
        draws): ``noise_seed``, or ``seed`` when None."""
        return self.seed if self.noise_seed is None else self.noise_seed


@dataclass(frozen=True)
class TrainingSettings(SeededTraining):
    """What a training run depends on, besides the data and the backend.

    ``seed`` draws the initial weights (``network.init_weights(seed, latent_dim, hidden)``) and the
    minibatch order (``minibatches``); ``noise_seed`` the reparametrization noise eps (``noise``: the
    seed when None), so runs that differ in it alone share weights and minibatches; ``particles``
    reparametrized draws per image per step;
    ``checkpoints`` the steps (numbers of updates done, 0 = the initial weights) at which the weights
    are kept: log-spaced by default (``default_checkpoints``); 0 and ``steps`` are always added. The
    field holds the resolved steps, so ``dataclasses.replace`` with a new ``steps`` keeps the old
    ones: pass ``checkpoints=()`` with it for the new defaults.

    The defaults (15 000 steps of 100 images, about 1 150 epochs, at lr 1e-3) stop near the peak of
    the test ELBO: measured with NumPyro at seeds 0 and 1 (100 draws per image, network.py), the test
    ELBO per image is -22.3, -20.2, -19.97 (seed 1: -22.2, -20.4, -20.26) after 2 500, 10 000 and
    15 000 steps, then falls (-20.24 and -20.59 after 30 000) while the training ELBO keeps rising
    (-18.6 after 15 000, -17.6 after 30 000): with 1 297 images longer training overfits. A backend
    trains in well under 2 minutes on one core (benchmarks/bench_vae_training.py).
    """

    latent_dim: int = 2
    hidden: int = 64
    steps: int = 15_000
    batch_size: int = 100
    lr: float = 1e-3
    seed: int = 0
    particles: int = 1
    noise_seed: int | None = None
    checkpoints: tuple[int, ...] = field(default=())

    @staticmethod
    def problems(settings: Mapping[str, Any]) -> list[str]:
        """One message per setting outside its domain or unknown, naming the valid ones."""
        return [
            *setting_problems(settings, TRAINING_DOMAINS),
            *checkpoint_problems(settings, TrainingSettings.steps),
        ]


def setting_problems(settings: Mapping[str, Any], domains: Mapping[str, Domain]) -> list[str]:
    """One message for the settings unknown (neither in ``domains`` nor checkpoints), naming the valid
    ones, and one per setting outside its domain or over the memory budget (``TRAINING_SIZES``);
    ``noise_seed`` may be None."""
    valid = (*domains, "checkpoints")
    unknown = [name for name in settings if name not in valid]
    out = [f"unknown training setting {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}"]
    out = out if unknown else []
    return out + [
        problem
        for name, value in settings.items()
        if name in domains
        and not (name == "noise_seed" and value is None)
        and (
            problem := domains[name].problem(name, value)
            or (sizes.over_budget(name, value, 1, TRAINING_SIZES[name]) if name in TRAINING_SIZES else None)
        )
    ]


def checkpoint_problems(settings: Mapping[str, Any], default_steps: int) -> list[str]:
    """One message per checkpoint outside 0..steps (``steps``: ``default_steps`` when not set), or one
    when ``checkpoints`` is not a tuple of steps."""
    marks = settings.get("checkpoints", ())
    if not isinstance(marks, tuple | list):
        return [f"checkpoints must be a tuple of steps, got {marks!r}"]
    steps = settings.get("steps", default_steps)
    if TRAINING_DOMAINS["steps"].problem("steps", steps) is not None:  # the range is unknown
        return []
    within = Domain.integer(0, steps)
    return [p for step in marks if (p := within.problem("each checkpoint", step))]


@dataclass
class TrainedVAE:
    """A trained VAE in backend-neutral form: weights named as in ``network`` (NumPy, float64).

    ``checkpoints`` maps a step (updates done) to the weights then, 0 and the last step included;
    ``losses[t]`` is the loss of update t + 1, -ELBO_B at the weights after t updates, scaled by the
    library to the whole training set (N / B); ``seconds`` the training loop's wall time, set-up
    excluded: ``compile_seconds`` holds the JAX backends' ahead-of-time compilation, and for eager
    Pyro its first step (parameter creation, torch.optim's lazy imports), ``seconds`` the other
    steps - 1. ``cpu_seconds``: the process's CPU time over the same steps as ``seconds`` (all
    threads; one thread when run under ``numerics.setup``), the steadier measure of the cost on a
    machine whose cores are shared.
    """

    backend: str
    settings: TrainingSettings
    weights: dict[str, np.ndarray]
    checkpoints: dict[int, dict[str, np.ndarray]]
    losses: np.ndarray
    seconds: float
    compile_seconds: float = 0.0
    cpu_seconds: float = 0.0


def minibatches(settings: TrainingSettings, n_train: int) -> np.ndarray:
    """Indices (steps, batch_size) of the training images of every step, shared by every backend.

    Epoch by epoch, one permutation of the n_train images from one NumPy generator, cut into
    n_train // batch_size batches (the remainder of a permutation is dropped, so each batch is a
    uniform draw of batch_size distinct images, as the subsampled plate's N / B scaling assumes).
    """
    size = settings.batch_size
    if not 1 <= size <= n_train:
        raise ValueError(f"batch_size must be at most the training set's size {n_train}, got {size}")
    rng = np.random.default_rng([MINIBATCH_STREAM, settings.seed])
    per_epoch = n_train // size
    epochs = -(-settings.steps // per_epoch)
    cut = [rng.permutation(n_train)[: per_epoch * size].reshape(per_epoch, size) for _ in range(epochs)]
    return np.concatenate(cut)[: settings.steps]


def train(
    backend: str, data: VAEData, settings: TrainingSettings, init: Mapping[str, np.ndarray] | None = None
) -> TrainedVAE:
    """Train on ``data.train`` with ``backend`` (one of ``BACKENDS``) from ``init`` (default:
    ``network.init_weights(settings.seed, settings.latent_dim, settings.hidden)``) over the shared
    ``minibatches``."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if init is None:
        init = network.init_weights(settings.seed, settings.latent_dim, settings.hidden)
    expected = network.shapes(settings.latent_dim, settings.hidden)
    shapes = {name: np.shape(value) for name, value in init.items()}
    if shapes != expected:
        raise ValueError(f"initial weights must have the shapes {expected}, got {shapes}")
    init = {name: np.asarray(value, dtype=np.float64) for name, value in init.items()}
    batches = minibatches(settings, len(data.train))
    fit = importlib.import_module(BACKEND_MODULES[backend]).fit
    return fit(np.asarray(data.train, dtype=np.float64), init, batches, settings)
