"""The VQ-VAE study's tables and their columns (``ppl_suite.results.vae_tables`` reads them with the
VAE study's: the names do not overlap, so both studies can share a results folder).

The study writes one parquet file per table under ``<results>/vae/`` through ``ResultsStore``:

    exact              one row per backend, objective, training checkpoint and test image: log p(x),
                       the ELBO and KL(q || p(z | x)) of the encoder's q, and the ELBO and KL
                       (= -log p(z* | x)) of the one-hot q at the nearest codes; every value exact
    vqvae_runs         one row per backend and objective: status (ok | failed, with the error), the
                       final test averages, the training's cost and last loss
    vqvae_checkpoints  one row per backend, objective, image set (test | train) and checkpoint: the
                       averages of the exact terms over the set's images, and the largest identity
                       residual |log p - ELBO - KL| over them
    vqvae_split        one row per backend, objective, image set and span (interval between
                       consecutive checkpoints | whole training): the ELBO's gain = Delta log p +
                       (-Delta KL), each exact, and the residual of that sum
    vqvae_gradients    one row per backend, point (start: the initial weights; end: the enumerated
                       run's trained weights) and weight (each weight array, and "all"): the
                       score-function gradient's variance against the enumerated (exact) gradient
    vqvae_estimators   one row per backend, objective, test image, estimator (importance | iwae) and K:
                       the estimate of log p(x) from the encoder's q at the trained weights, its SE,
                       the exact log p(x), z = (estimate - exact) / SE, PSIS k-hat and reliability
    vqvae_calibration  one row per backend, objective, estimator and K: over the images k-hat finds
                       reliable (n_images), the z-scores' mean, sd and count above 4 in size; and the
                       count of images labelled unreliable
"""

from __future__ import annotations

import pandas as pd

from ppl_suite.vae import results as vae_results

FOLDER = vae_results.FOLDER  # its tables lie beside the VAE study's
MANIFEST_VQVAE = "vqvae_study"
TRAINED = "vqvae_trained.npz"  # the kind of a kept run's trained weights (the VAE's: trained.npz)
BACKEND, OBJECTIVE, STATUS, ERROR = "backend", "objective", "status", "error"
OK, FAILED = "ok", "failed"
STEP, IMAGE, IMAGES = "step", "image", "images"
TEST, TRAIN = "test", "train"
LOG_EVIDENCE, ELBO, KL = "log_evidence", "elbo", "kl"
ELBO_NEAREST, KL_NEAREST = "elbo_nearest", "kl_nearest"
TERMS = (LOG_EVIDENCE, ELBO, KL, ELBO_NEAREST, KL_NEAREST)
IDENTITY_RESIDUAL = "identity_residual"  # max over images of |log p - (ELBO + KL)|
N_IMAGES = "n_images"
CODES, POSITIONS = "codes", "positions"
TRAINING_SECONDS, COMPILE_SECONDS, FINAL_LOSS = "training_seconds", "compile_seconds", "final_loss"
SPAN, INTERVAL, WHOLE = "span", "interval", "whole"
STEP_FROM, STEP_TO = "step_from", "step_to"
ELBO_GAIN, LOG_EVIDENCE_GAIN, KL_FALL, RESIDUAL = "elbo_gain", "log_evidence_gain", "kl_fall", "residual"
POINT, START, END = "point", "start", "end"
WEIGHT, ALL = "weight", "all"
DRAWS, COORDINATES = "draws", "coordinates"
EXACT_SQUARED_NORM = "exact_squared_norm"  # |g|^2 of the enumerated gradient
VARIANCE = "variance"  # sum over coordinates of the per-draw variance of the score-function gradient
RELATIVE_VARIANCE = "relative_variance"  # variance / |g|^2
Z_ALONG = "z_along"  # (mean - exact) projected on g / |g|, in SEs of that projection
Z_RMS, Z_MAX = "z_rms", "z_max"  # over coordinates: root mean square and largest |z|
ESTIMATOR, K, VALUE, SE, EXACT, Z, KHAT, RELIABLE = (
    "estimator",
    "k",
    "value",
    "se",
    "exact",
    "z",
    "khat",
    "reliable",
)
IMPORTANCE, IWAE = "importance", "iwae"
Z_MEAN, Z_SD, ABOVE_4, UNRELIABLE = "z_mean", "z_sd", "above_4", "unreliable"

TABLES = {
    "exact": (BACKEND, OBJECTIVE, STEP, IMAGE, *TERMS),
    "vqvae_runs": (
        BACKEND, OBJECTIVE, STATUS, ERROR, CODES, POSITIONS, N_IMAGES, *TERMS, FINAL_LOSS,
        TRAINING_SECONDS, COMPILE_SECONDS,
    ),
    "vqvae_checkpoints": (BACKEND, OBJECTIVE, IMAGES, STEP, N_IMAGES, *TERMS, IDENTITY_RESIDUAL),
    "vqvae_split": (
        BACKEND, OBJECTIVE, IMAGES, SPAN, STEP_FROM, STEP_TO, ELBO_GAIN, LOG_EVIDENCE_GAIN, KL_FALL, RESIDUAL,
    ),
    "vqvae_gradients": (
        BACKEND, POINT, STEP, WEIGHT, DRAWS, COORDINATES, EXACT_SQUARED_NORM, VARIANCE, RELATIVE_VARIANCE,
        Z_ALONG, Z_RMS, Z_MAX,
    ),
    "vqvae_estimators": (BACKEND, OBJECTIVE, IMAGE, ESTIMATOR, K, VALUE, SE, EXACT, Z, KHAT, RELIABLE),
    "vqvae_calibration": (BACKEND, OBJECTIVE, ESTIMATOR, K, N_IMAGES, Z_MEAN, Z_SD, ABOVE_4, UNRELIABLE),
}  # fmt: skip
PER_RUN = ("exact", "vqvae_checkpoints", "vqvae_split", "vqvae_estimators", "vqvae_runs")  # runs last


def frame(table: str, rows: list[dict]) -> pd.DataFrame:
    """The rows as table ``table``'s DataFrame, its columns in their declared order."""
    return vae_results.frame(table, rows, TABLES, "vqvae")
