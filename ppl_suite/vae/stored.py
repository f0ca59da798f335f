"""Each backend's finished work in the results folder, so that a stopped or repeated study reuses it.

A backend's work is kept in two parts (``ResultsStore.write_vae_part``, under vae/parts/), each named by
a digest of everything that can change it:

    <digest>.trained.npz       the trained weights, checkpoints, losses and times (``TrainedVAE``); the
                               digest covers the backend, the training settings, the training images,
                               the numerical packages' versions and the training code's source;
    <digest>.<table>.parquet   the backend's rows of each per-backend table (``results``); the digest
                               covers the training digest, the evaluation's settings, the test
                               images, the versions and the evaluation code's source. The ``backends``
                               table is written last: a part without it is not whole and is redone.
                               Another training run of the backend (another noise seed) keeps its
                               trained weights the same way, and its one ``runs`` row under a digest
                               of its training, its run index, the draws (seed, K), the test images,
                               versions and code.

A study whose digests match reads a part instead of training or evaluating again: a run stopped during
the third backend's evaluation keeps the first two backends and the third one's training. A backend
whose evaluation failed keeps its training; what failed runs again. A part that cannot be read (a
damaged file) raises ``Unreadable``, and the study redoes it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ppl_suite.store import ResultsStore, package_versions, source_hash
from ppl_suite.vae import results as r
from ppl_suite.vae.settings import VAEStudySettings
from ppl_suite.vae.training import TrainedVAE, TrainingSettings

TRAINED = r.TRAINED
# the tables written per backend, ``backends`` last (it marks the part whole)
PER_BACKEND = ("images", "checkpoints", "intervals", "bdmc", "losses", "runs", "backends")
_CHECKPOINT = "checkpoint"
_TIMES = ("seconds", "compile_seconds", "cpu_seconds")


class Unreadable(Exception):
    """A kept part exists but cannot be read (a damaged or foreign file)."""


def _digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def array_digest(values: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes."""
    array = np.ascontiguousarray(values)
    return hashlib.sha256(f"{array.dtype.str}{array.shape}".encode() + array.tobytes()).hexdigest()


def training_digest(
    backend: str, settings: TrainingSettings, train_images: np.ndarray, code: tuple[str, ...]
) -> str:
    """The digest of one backend's training (module docstring); ``code``: the training's modules. A
    noise seed equal to the seed is the default (None): the same training, the same digest."""
    training = dataclasses.asdict(settings)
    if settings.noise_seed == settings.seed:
        training["noise_seed"] = None
    return _digest(
        {
            "backend": backend,
            "training": training,
            "train_images": array_digest(train_images),
            "versions": package_versions(),
            "code": source_hash(code),
        }
    )


def evaluation_digest(
    trained: str, settings: VAEStudySettings, test_images: np.ndarray, code: tuple[str, ...]
) -> str:
    """The digest of one trained backend's evaluation; the study's backend list, training settings and
    number of training runs do not enter (the training digest ``trained`` holds what matters)."""
    left_out = ("backends", "training", "training_runs")
    evaluation = {k: v for k, v in dataclasses.asdict(settings).items() if k not in left_out}
    return _digest(
        {
            "trained": trained,
            "evaluation": evaluation,
            "test_images": array_digest(test_images),
            "versions": package_versions(),
            "code": source_hash(code),
        }
    )


def run_digest(
    trained: str, run: int, settings: VAEStudySettings, test_images: np.ndarray, code: tuple[str, ...]
) -> str:
    """The digest of another training run's ``runs`` row: its training, its index (which names its
    draws' stream), the draws (the study's seed and K) and the test images."""
    return _digest(
        {
            "trained": trained,
            "run": run,
            "seed": settings.seed,
            "iwae_k": settings.iwae_k,
            "test_images": array_digest(test_images),
            "versions": package_versions(),
            "code": source_hash(code),
        }
    )


def save_trained(store: ResultsStore, digest: str, trained: TrainedVAE, kind: str = TRAINED) -> None:
    """Keep a trained backend as part ``<digest>.<kind>``: final weights, the weights at every
    checkpoint, losses and times."""
    arrays = {f"weights.{name}": value for name, value in trained.weights.items()}
    for step, weights in trained.checkpoints.items():
        arrays |= {f"{_CHECKPOINT}.{int(step)}.{name}": value for name, value in weights.items()}
    arrays["losses"] = np.asarray(trained.losses)
    arrays |= {name: np.float64(getattr(trained, name)) for name in _TIMES}
    buffer = io.BytesIO()
    np.savez(buffer, **{key: np.asarray(value) for key, value in arrays.items()})
    store.write_vae_part(digest, kind, buffer.getvalue())


def load_trained(
    store: ResultsStore, digest: str, backend: str, settings: TrainingSettings, kind: str = TRAINED
) -> TrainedVAE | None:
    """The trained backend kept as part ``<digest>.<kind>``, or None."""
    payload = store.vae_part(digest, kind)
    if payload is None:
        return None
    try:
        with np.load(io.BytesIO(payload)) as stored:
            arrays = {key: stored[key] for key in stored.files}
        checkpoints: dict[int, dict[str, np.ndarray]] = {}
        weights = {}
        for key, value in arrays.items():
            kind, _, rest = key.partition(".")
            if kind == "weights":
                weights[rest] = value
            elif kind == _CHECKPOINT:
                step, _, name = rest.partition(".")
                checkpoints.setdefault(int(step), {})[name] = value
        times = {name: float(arrays[name]) for name in _TIMES}
        losses = arrays["losses"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise Unreadable(f"vae/parts/{digest}.{kind}: {type(error).__name__}: {error}") from error
    return TrainedVAE(backend, settings, weights, dict(sorted(checkpoints.items())), losses, **times)


def save_rows(
    store: ResultsStore,
    digest: str,
    rows: dict[str, list[dict]],
    tables: tuple[str, ...] = PER_BACKEND,
    frame: Callable[[str, list[dict]], pd.DataFrame] = r.frame,
) -> None:
    """Keep an evaluated backend's rows of ``tables`` (every per-backend table, ``backends`` last), each
    as ``frame`` makes it (the study's ``results.frame``)."""
    for name in tables:
        buffer = io.BytesIO()
        frame(name, rows[name]).to_parquet(buffer, index=False)
        store.write_vae_part(digest, f"{name}.parquet", buffer.getvalue())


def load_rows(
    store: ResultsStore,
    digest: str,
    tables: tuple[str, ...] = PER_BACKEND,
    columns: Mapping[str, tuple[str, ...]] = r.TABLES,
) -> dict[str, list[dict]] | None:
    """The rows of ``tables`` kept under ``digest``, or None when the part is missing or not whole;
    each table must have its ``columns`` (the study's ``results.TABLES``)."""
    payloads = {name: store.vae_part(digest, f"{name}.parquet") for name in tables}
    if any(payload is None for payload in payloads.values()):
        return None
    rows = {}
    for name, payload in payloads.items():
        try:
            frame = pd.read_parquet(io.BytesIO(payload))
        except (OSError, ValueError) as error:  # pyarrow's errors derive from these
            raise Unreadable(f"vae/parts/{digest}.{name}.parquet: {type(error).__name__}: {error}") from error
        if list(frame.columns) != list(columns[name]):
            raise Unreadable(f"vae/parts/{digest}.{name}.parquet: not the columns of table {name!r}")
        rows[name] = frame.to_dict("records")
    return rows
