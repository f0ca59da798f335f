"""The VQ-VAE study: train the digits VQ-VAE with each backend and objective from the same start,
evaluate every checkpoint exactly (``ppl_suite.vqvae.evaluation``), compare the estimators of log p(x)
with the exact value, measure the score-function gradient against the enumerated one
(``ppl_suite.vqvae.gradients``), and write the tables of ``ppl_suite.vqvae.results``.

Run by run (backend x objective): train, keep the trained weights, evaluate, keep the rows
(``ppl_suite.vqvae.stored``), so a study stopped part way, or run again, redoes only what is missing
or changed. A run that fails is a ``failed`` row of ``vqvae_runs`` with its error; the others go on.
The tables are written after every backend.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ppl_suite.vae.training import minibatches
from ppl_suite.vqvae import results as r
from ppl_suite.vqvae import stored
from ppl_suite.vqvae.settings import VQVAEStudySettings

MODEL_MODULES = ("models.vqvae_digits.network", "models.vae_digits.data")
EVALUATION_MODULES = (
    "ppl_suite.vqvae.evaluation", "ppl_suite.vqvae.exact", "ppl_suite.estimators.importance",
    "ppl_suite.estimators.weights", *MODEL_MODULES,
)  # fmt: skip
GRADIENT_MODULES = (
    "ppl_suite.vqvae.gradients", "ppl_suite.vqvae.losses", "models.vqvae_digits.pyro_impl",
    "models.vqvae_digits.numpyro_impl", *MODEL_MODULES,
)  # fmt: skip


def training_code(backend: str) -> tuple[str, ...]:
    """The modules a backend's training runs (the source hash follows their imports from here)."""
    from ppl_suite.vqvae.training import BACKEND_MODULES

    return ("ppl_suite.vqvae.training", BACKEND_MODULES[backend], "ppl_suite.vqvae.losses", *MODEL_MODULES)


def _error(error: Exception) -> str:
    return f"{type(error).__name__}: {error}\n" + traceback.format_exc(limit=-3)


def run_study(
    settings: VQVAEStudySettings,
    folder: str | Path,
    *,
    data: Any = None,
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, pd.DataFrame]:
    """Run every backend and objective of ``settings`` into the results folder ``folder`` (module
    docstring); returns the tables. ``data`` defaults to the digits (``models.vae_digits.data``)."""
    from ppl_suite.numerics import enable_float64
    from ppl_suite.store import ResultsStore

    enable_float64()
    settings = settings.checked()
    if data is None:
        from models.vae_digits import data as digits

        data = digits.load()
    study = _Study(settings, ResultsStore(folder), data, log)
    rows: dict[str, list[dict]] = {name: [] for name in r.TABLES}
    tables: dict[str, pd.DataFrame] = {}
    for backend in settings.backends:
        enumerated = None
        for objective in settings.objectives:
            out, trained = study.run_rows(backend, objective)
            for name, new in out.items():
                rows[name] += new
            if objective == "enumerated":
                enumerated = trained
        rows["vqvae_gradients"] += study.backend_gradients(backend, enumerated)
        tables = _tables(rows)
        for name, frame in tables.items():
            study.store.write_study_table("vqvae", name, frame)
    return tables


def _tables(rows: dict[str, list[dict]]) -> dict[str, pd.DataFrame]:
    """Every table from the runs' rows, with the estimators' calibration."""
    from ppl_suite.vqvae.evaluation import calibration_rows

    tables = {name: r.frame(name, rows[name]) for name in r.TABLES if name != "vqvae_calibration"}
    estimators = tables["vqvae_estimators"]
    tables["vqvae_calibration"] = r.frame(
        "vqvae_calibration", calibration_rows(estimators) if not estimators.empty else []
    )
    return tables


class _Study:
    """One study's settings, folder, images and log, and its steps: a run trained (or its kept
    training read), evaluated (or its kept rows read), a backend's gradients."""

    def __init__(self, settings: VQVAEStudySettings, store: Any, data: Any, log: Callable[[str], None]):
        self.settings, self.store, self.data, self.log = settings, store, data, log
        self.training = settings.training_settings()
        self.train_images = np.asarray(data.train, dtype=np.float64)
        self.test = np.asarray(data.test, dtype=np.float64)[: settings.n_test]
        self.batch = minibatches(self.training, len(self.train_images))[0]

    def kept(self, label: str, read: Callable[[], Any]) -> Any:
        """``read()``, or None (said) when the kept part is unreadable."""
        try:
            return read()
        except stored.Unreadable as error:
            self.log(f"{label}: a kept part is unreadable, redoing it ({error})")
            return None

    def trained_run(self, backend: str, objective: str) -> tuple[str, Any]:
        """The run's training digest and its trained weights (kept, else trained and kept)."""
        from ppl_suite.vae import stored as vae_stored
        from ppl_suite.vqvae.training import train

        training = self.training
        key = stored.training_digest(backend, objective, training, self.train_images, training_code(backend))
        label = f"vqvae {backend} {objective}"
        found = self.kept(
            label, lambda: vae_stored.load_trained(self.store, key, backend, training, r.TRAINED)
        )
        if found is None:
            found = train(backend, objective, self.data, training)
            vae_stored.save_trained(self.store, key, found, r.TRAINED)
            self.log(f"{label}: trained in {found.seconds:.1f} s (+ {found.compile_seconds:.1f} s set-up)")
        else:
            self.log(f"{label}: its stored training reused (vae/parts/{key}.{r.TRAINED})")
        return key, found

    def run_rows(self, backend: str, objective: str) -> tuple[dict[str, list[dict]], tuple[str, Any] | None]:
        """The run's rows of each per-run table (kept, else evaluated and kept) and its training; a
        failed run is one ``failed`` row of ``vqvae_runs`` (no training)."""
        label = f"vqvae {backend} {objective}"
        try:
            key, trained = self.trained_run(backend, objective)
            evaluated = stored.evaluation_digest(
                key, self.settings, self.test, self.train_images, EVALUATION_MODULES
            )
            found = self.kept(label, lambda: stored.load_rows(self.store, evaluated, r.PER_RUN))
            if found is not None:
                self.log(f"{label}: its stored evaluation reused")
                return found, (key, trained)
            start = time.perf_counter()
            out = self.evaluate(backend, objective, trained)
            stored.save_rows(self.store, evaluated, out, r.PER_RUN)
            self.log(f"{label}: evaluated in {time.perf_counter() - start:.1f} s")
            return out, (key, trained)
        except Exception as error:  # a failed run is recorded; the others go on
            self.log(f"{label}: failed: {type(error).__name__}: {error}")
            failed = {r.BACKEND: backend, r.OBJECTIVE: objective, r.STATUS: r.FAILED, r.ERROR: _error(error)}
            return {"vqvae_runs": [failed]}, None

    def evaluate(self, backend: str, objective: str, trained: Any) -> dict[str, list[dict]]:
        """A trained run's rows: its checkpoints evaluated exactly, its estimators, its summary row."""
        from ppl_suite.vqvae.evaluation import checkpoint_rows, estimator_rows

        training, settings, test = self.training, self.settings, self.test
        out = checkpoint_rows(backend, objective, trained, test, self.train_images, training.temperature)
        out["vqvae_estimators"] = estimator_rows(
            backend, objective, trained.weights, test, training.temperature, settings.draws,
            settings.iwae_ks, settings.seed,
        )  # fmt: skip
        final = [row for row in out["vqvae_checkpoints"] if row[r.IMAGES] == r.TEST][-1]
        losses = np.asarray(trained.losses)
        out["vqvae_runs"] = [
            {r.BACKEND: backend, r.OBJECTIVE: objective, r.STATUS: r.OK, r.ERROR: ""}
            | {r.CODES: training.codes, r.POSITIONS: training.positions, r.N_IMAGES: test.shape[0]}
            | {name: final[name] for name in r.TERMS}
            | {r.FINAL_LOSS: float(np.mean(losses[-min(100, losses.size) :]))}
            | {r.TRAINING_SECONDS: trained.seconds, r.COMPILE_SECONDS: trained.compile_seconds}
        ]
        return out

    def backend_gradients(self, backend: str, enumerated: tuple[str, Any] | None) -> list[dict]:
        """A backend's gradient rows at the start and, when its enumerated run trained, at its end."""
        from ppl_suite.vqvae.gradients import gradient_rows

        training, settings = self.training, self.settings
        label = f"vqvae {backend} gradients"
        start_key = stored.training_digest(backend, "start", training, self.train_images, ())
        points = {r.START: (0, training.init_weights())}
        digests = {r.START: start_key}
        if enumerated is not None:
            points[r.END] = (training.steps, enumerated[1].weights)
            digests[r.END] = enumerated[0]
        key = stored.gradient_digest(digests, settings, self.batch, GRADIENT_MODULES)
        found = self.kept(label, lambda: stored.load_rows(self.store, key, ("vqvae_gradients",)))
        if found is not None:
            return found["vqvae_gradients"]
        try:
            out = gradient_rows(
                backend, points, self.train_images, self.batch, training.temperature,
                settings.gradient_draws, settings.seed,
            )  # fmt: skip
        except Exception as error:
            self.log(f"{label}: failed: {type(error).__name__}: {error}")
            return []
        stored.save_rows(self.store, key, {"vqvae_gradients": out}, ("vqvae_gradients",))
        self.log(f"{label}: {settings.gradient_draws} draws per point")
        return out
