"""The VAE study: train the digits VAE with each backend, evaluate every trained model on the test
images (``ppl_suite.vae.evaluation``), and write the tables of ``ppl_suite.vae.results``.

Backend by backend: train, keep the trained weights, evaluate, keep the backend's rows
(``ppl_suite.vae.stored``); then its other training runs (``training_runs``: the same weights and
minibatches, other noise seeds), each trained, kept, and its encoder's ELBO and IWAE-K evaluated. So a
study stopped part way, or run again, redoes only what is missing or changed. A backend that fails is
recorded as failed, with its error, and the others go on. Then the backends' agreement (``agreement``:
first runs, in evaluation SEs; procedures: run means, against the runs' spread), and the tables are
written from every backend's rows.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ppl_suite.vae import results as r
from ppl_suite.vae import stored
from ppl_suite.vae.agreement import between_procedures, pairwise
from ppl_suite.vae.evaluation import Evaluator, digits_encode, digits_model
from ppl_suite.vae.latent import LatentModel
from ppl_suite.vae.settings import VAEStudySettings

Trainer = Callable[[str, Any, Any], Any]  # (backend, data, TrainingSettings) -> TrainedVAE
# the digits VAE's code, whose imports are inside functions (the source hash follows them from here)
DIGITS_MODULES = ("models.vae_digits.network", "models.vae_digits.data")


@dataclass
class _Study:
    """What every backend of one study shares: where it keeps its work, its data and its programs."""

    settings: VAEStudySettings
    store: Any  # ResultsStore
    trainer: Trainer
    training_code: Callable[[str], tuple[str, ...]]  # backend -> the modules its training runs
    evaluation_code: tuple[str, ...]
    evaluator: Evaluator
    data: Any
    test: np.ndarray
    decoder: tuple[str, ...]
    log: Callable[[str], None]

    def backend_rows(self, backend: str) -> dict[str, list[dict]]:
        """One backend's rows of the per-backend tables: its first training run evaluated in full (a
        failure there is one ``failed`` backends row), then the other runs' ``runs`` rows (a failed run
        is a ``failed`` runs row; the backend keeps the rest)."""
        start = time.perf_counter()
        try:
            rows = self._evaluated(
                backend,
                0,
                stored.PER_BACKEND,
                lambda trained: self.evaluator.evaluate(backend, trained, self.test, self.decoder),
            )
        except Exception as error:  # a failed backend is recorded; the others go on
            self.log(f"vae {backend}: failed: {type(error).__name__}: {error}")
            return {"backends": [{r.BACKEND: backend, r.STATUS: r.FAILED, r.ERROR: _error(error)}]}
        for run in range(1, self.settings.training_runs):
            try:
                rows["runs"] += self._evaluated(
                    backend,
                    run,
                    ("runs",),
                    lambda trained, run=run: {
                        "runs": [self.evaluator.run_row(backend, run, trained, self.test, self.decoder)]
                    },
                )["runs"]
            except Exception as error:  # a failed run is recorded; the backend keeps the others
                self.log(f"vae {backend} run {run}: failed: {type(error).__name__}: {error}")
                noise = self.training_settings(run).noise
                failed = {r.BACKEND: backend, r.RUN: run, r.NOISE_SEED: noise, r.STATUS: r.FAILED}
                rows["runs"].append(failed | {r.ERROR: _error(error)})
        self.log(f"vae {backend}: done in {time.perf_counter() - start:.1f} s")
        return rows

    def training_settings(self, run: int) -> Any:
        """Training run ``run``'s settings: the study's, with the noise seed moved on by ``run``."""
        settings = self.settings.training_settings()
        return settings if run == 0 else dataclasses.replace(settings, noise_seed=settings.noise + run)

    def _evaluated(
        self,
        backend: str,
        run: int,
        tables: tuple[str, ...],
        evaluate: Callable[[Any], dict[str, list[dict]]],
    ) -> dict[str, list[dict]]:
        """The rows of ``tables`` for one training run: kept ones when the digests match, else trained
        (or the kept training read) and evaluated, each part kept as soon as it is done. Run 0 is kept
        under the evaluation's digest, the others under ``stored.run_digest``."""
        label = f"vae {backend}" + (f" run {run}" if run else "")
        training = self.training_settings(run)
        trained_key = stored.training_digest(
            backend, training, np.asarray(self.data.train), self.training_code(backend)
        )
        if run == 0:
            evaluated_key = stored.evaluation_digest(
                trained_key, self.settings, self.test, self.evaluation_code
            )
        else:
            evaluated_key = stored.run_digest(
                trained_key, run, self.settings, self.test, self.evaluation_code
            )
        kept = self._kept(label, lambda: stored.load_rows(self.store, evaluated_key, tables))
        if kept is not None:
            self.log(f"{label}: its stored evaluation reused (vae/parts/{evaluated_key}.*)")
            return kept
        trained = self._kept(label, lambda: stored.load_trained(self.store, trained_key, backend, training))
        if trained is None:
            trained = self.trainer(backend, self.data, training)
            stored.save_trained(self.store, trained_key, trained)
            done = f"trained in {trained.seconds:.1f} s"
        else:
            done = f"its stored training reused (vae/parts/{trained_key}.{stored.TRAINED})"
        self.log(f"{label}: {done}; evaluating {self.test.shape[0]} test images")
        rows = evaluate(trained)
        for row in rows.get("runs", []):
            row |= {r.NOISE_SEED: training.noise, r.STATUS: r.OK, r.ERROR: ""}
        stored.save_rows(self.store, evaluated_key, rows, tables)
        return rows

    def _kept(self, label: str, read: Callable[[], Any]) -> Any:
        """What ``read`` finds kept; None when nothing is, or the part is damaged (said, then redone)."""
        try:
            return read()
        except stored.Unreadable as error:
            self.log(f"{label}: a kept part is unreadable, redoing it ({error})")
            return None


def _error(error: Exception) -> str:
    """The error's message and the last frames of its traceback, as recorded in a ``failed`` row."""
    return f"{type(error).__name__}: {error}\n" + traceback.format_exc(limit=-3)


def run_study(
    settings: VAEStudySettings,
    folder: str | Path,
    *,
    trainer: Trainer | None = None,
    data: Any = None,
    model: LatentModel | None = None,
    encode: Callable[..., Any] | None = None,
    decoder: tuple[str, ...] | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, pd.DataFrame]:
    """Train and evaluate every backend of ``settings`` (module docstring) and write the tables into
    the results folder ``folder`` (``ResultsStore.write_study_table``) after each backend; returns them.

    ``trainer``, ``data``, ``model``, ``encode`` and ``decoder`` default to the digits VAE
    (``ppl_suite.vae.training.train``, ``models.vae_digits``); tests pass small ones."""
    from ppl_suite.numerics import enable_float64
    from ppl_suite.store import ResultsStore
    from ppl_suite.vae.training import train

    enable_float64()  # a no-op where the caller set the numerics up already (the CLI, workers, tests)
    settings = settings.checked()
    latent_dim = settings.training_settings().latent_dim
    if data is None:
        from models.vae_digits import data as digits_data

        data = digits_data.load()
    if decoder is None:
        from models.vae_digits import network

        decoder = network.DECODER
    trainer = trainer or train
    model = model or digits_model(latent_dim)
    encode = encode or digits_encode
    evaluation_code = _evaluation_code(model, encode)
    test = np.asarray(data.test)[: settings.n_test]
    study = _Study(
        settings,
        ResultsStore(folder),
        trainer,
        functools.partial(_training_code, trainer),
        evaluation_code,
        Evaluator(model, settings, encode),
        data,
        test,
        decoder,
        log,
    )
    rows: dict[str, list[dict]] = {name: [] for name in r.TABLES}
    for backend in settings.backends:
        for name, new in study.backend_rows(backend).items():
            rows[name] += new
        tables = _tables(rows, latent_dim)
        for name, frame in tables.items():
            study.store.write_study_table("vae", name, frame)
    return tables


def _training_code(trainer: Trainer, backend: str) -> tuple[str, ...]:
    """The modules a backend's training runs: the default trainer imports its backend's module by
    name, where imports cannot be followed."""
    from ppl_suite.vae.training import BACKEND_MODULES, train

    chosen = [BACKEND_MODULES[backend]] if trainer is train else []
    return tuple(dict.fromkeys([trainer.__module__, *chosen, *DIGITS_MODULES]))


def _evaluation_code(model: LatentModel, encode: Callable[..., Any]) -> tuple[str, ...]:
    """The modules the evaluation runs: the evaluator's, the model's functions' and the digits'."""
    functions = (model.log_likelihood, model.simulate, encode)
    return tuple(dict.fromkeys([Evaluator.__module__, *(f.__module__ for f in functions), *DIGITS_MODULES]))


def _tables(rows: dict[str, list[dict]], latent_dim: int) -> dict[str, pd.DataFrame]:
    """Every table from the backends' rows, with their agreement."""
    backends = r.frame("backends", rows["backends"])
    backends[r.LATENT_DIM] = latent_dim
    tables = {
        name: r.frame(name, rows[name])
        for name in r.TABLES
        if name not in ("backends", "agreement", "procedures")
    }
    tables["backends"] = backends
    tables["agreement"] = pairwise(backends[backends[r.STATUS] == r.OK])
    tables["procedures"] = between_procedures(tables["runs"])
    return tables
