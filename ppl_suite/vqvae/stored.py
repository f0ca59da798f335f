"""The VQ-VAE study's finished work in the results folder, kept as the VAE study keeps its own
(``ppl_suite.vae.stored``: the same parts folder, digests and trained-weights format):

    <digest>.vqvae_trained.npz      one backend and objective's trained weights, checkpoints, losses
                                    and times; the digest covers the backend, the objective, the
                                    training settings, the training images, the versions and the
                                    training code's source
    <digest>.<table>.parquet        its rows of each per-run table (``results.PER_RUN``,
                                    ``vqvae_runs`` last: a part without it is not whole); the digest
                                    covers the training digest, the evaluation's settings, the
                                    images, the versions and the evaluation code
    <digest>.vqvae_gradients.parquet  one backend's gradient rows; the digest covers the weights'
                                    training digests, the draws, the minibatch and the code
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ppl_suite.store import ResultsStore, package_versions, source_hash
from ppl_suite.vae import stored as vae_stored
from ppl_suite.vae.stored import Unreadable as Unreadable  # the study catches stored.Unreadable
from ppl_suite.vae.stored import _digest, array_digest
from ppl_suite.vqvae import results as r
from ppl_suite.vqvae.settings import VQVAEStudySettings
from ppl_suite.vqvae.training import VQTrainingSettings


def training_digest(
    backend: str, objective: str, settings: VQTrainingSettings, train: np.ndarray, code: tuple[str, ...]
) -> str:
    """The digest of one backend and objective's training (module docstring)."""
    training = dataclasses.asdict(settings)
    if settings.noise_seed == settings.seed:
        training["noise_seed"] = None
    return _digest(
        {
            "model": "vqvae_digits",
            "backend": backend,
            "objective": objective,
            "training": training,
            "train_images": array_digest(train),
            "versions": package_versions(),
            "code": source_hash(code),
        }
    )


def evaluation_digest(
    trained: str, settings: VQVAEStudySettings, test: np.ndarray, train: np.ndarray, code: tuple[str, ...]
) -> str:
    """The digest of one trained run's evaluation: its draws and images, not the study's lists."""
    evaluation = {"draws": settings.draws, "iwae_ks": settings.iwae_ks, "seed": settings.seed}
    return _digest(
        {
            "trained": trained,
            "evaluation": evaluation,
            "test_images": array_digest(test),
            "train_images": array_digest(train),
            "versions": package_versions(),
            "code": source_hash(code),
        }
    )


def gradient_digest(points: dict[str, str], settings: VQVAEStudySettings, batch: np.ndarray, code) -> str:
    """The digest of one backend's gradient rows: the weights' training digests by point, the draws."""
    return _digest(
        {
            "points": points,
            "draws": settings.gradient_draws,
            "seed": settings.seed,
            "batch": array_digest(batch),
            "versions": package_versions(),
            "code": source_hash(code),
        }
    )


def save_rows(store: ResultsStore, digest: str, rows: dict[str, list[dict]], tables: tuple[str, ...]) -> None:
    """Keep rows of ``tables`` under ``digest`` (in order: the last one marks the part whole)."""
    vae_stored.save_rows(store, digest, rows, tables, r.frame)


def load_rows(store: ResultsStore, digest: str, tables: tuple[str, ...]) -> dict[str, list[dict]] | None:
    """The rows of ``tables`` kept under ``digest``, or None when the part is missing or not whole."""
    return vae_stored.load_rows(store, digest, tables, r.TABLES)
