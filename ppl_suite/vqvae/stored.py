"""The VQ-VAE study's finished work in the results folder, kept as the VAE study keeps its own
(``ppl_suite.vae.stored``: the same parts folder, digests and trained-weights format):

    <digest>.trained.npz            one backend and objective's trained weights, checkpoints, losses
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
import io

import numpy as np
import pandas as pd

from ppl_suite.store import ResultsStore, package_versions, source_hash
from ppl_suite.vae.stored import Unreadable, _digest, array_digest
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
    for name in tables:
        buffer = io.BytesIO()
        r.frame(name, rows[name]).to_parquet(buffer, index=False)
        store.write_vae_part(digest, f"{name}.parquet", buffer.getvalue())


def load_rows(store: ResultsStore, digest: str, tables: tuple[str, ...]) -> dict[str, list[dict]] | None:
    """The rows of ``tables`` kept under ``digest``, or None when the part is missing or not whole."""
    payloads = {name: store.vae_part(digest, f"{name}.parquet") for name in tables}
    if any(payload is None for payload in payloads.values()):
        return None
    rows = {}
    for name, payload in payloads.items():
        try:
            frame = pd.read_parquet(io.BytesIO(payload))
        except (OSError, ValueError) as error:
            raise Unreadable(f"vae/parts/{digest}.{name}.parquet: {type(error).__name__}: {error}") from error
        if list(frame.columns) != list(r.TABLES[name]):
            raise Unreadable(f"vae/parts/{digest}.{name}.parquet: not the columns of table {name!r}")
        rows[name] = frame.to_dict("records")
    return rows
