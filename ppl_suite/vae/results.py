"""The VAE study's results: its tables and their columns (``ppl_suite.results.vae_tables`` reads them).

The study writes one parquet file per table under ``<results>/vae/`` through ``ResultsStore``:

    backends     one row per backend: status (ok | failed, with the error), costs, and the test-set
                 averages over the evaluated images, each with its Monte Carlo SE (``*_se``:
                 sqrt(sum_i SE_i^2) / n, the error for these images) and, for log p, the between-image
                 SE (``log_p_spread_se``: sd_i / sqrt(n), the error as an estimate over test images)
    images       one row per backend and test image: the per-image numbers behind the averages
    checkpoints  one row per backend and training checkpoint: log p, ELBO and KL on the checkpoint subset
    intervals    one row per backend and interval between consecutive checkpoints (span "interval"),
                 and one from the first checkpoint to the last (span "whole"): the ELBO's gain,
                 Delta log p and -Delta KL (``ppl_suite.vae.training_split``)
    bdmc         one row per backend and schedule length: the BDMC sandwich on simulated images
    agreement    one row per quantity and pair of backends: difference, SE, z, flagged (|z| > 4)
    losses       one row per backend and training step: the training loss (-ELBO per image)
    runs         one row per backend and training run (runs differ only in their reparametrization
                 noise; run 0 is the one evaluated in full): status, the encoder's test ELBO and IWAE-K,
                 the seconds of its training and of that evaluation
    procedures   one row per quantity and pair of backends: the difference of their run means, Welch's
                 t, its degrees of freedom and p-value, flagged (p below |z| > 4's), and the smallest
                 difference the test flags: whether the backends differ as training procedures,
                 beyond the training runs' spread
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

FOLDER = "vae"
MANIFEST_VAE = "vae_study"  # the manifest's entry of the study: command, config, start and end
TRAINED = "trained.npz"  # the kind of a backend's kept trained weights (``ppl_suite.vae.stored``)

BACKEND = "backend"
STATUS = "status"
ERROR = "error"
OK, FAILED = "ok", "failed"

# backends
LATENT_DIM = "latent_dim"
N_IMAGES = "n_images"
TRAINING_SECONDS = "training_seconds"
AIS_SECONDS = "ais_seconds"
AIS_TUNING_SECONDS = "ais_tuning_seconds"
IWAE_SECONDS = "iwae_seconds"
FIT_SECONDS = "fit_seconds"
CHECKPOINT_SECONDS = "checkpoint_seconds"  # the evaluation at the training checkpoints (AIS and ELBO)
COMPILE_SECONDS = "compile_seconds"  # the training's set-up: JAX's compilation, Pyro's first step
AIS_TEMPERATURES = "ais_temperatures"  # per backend: the tuned schedule; per image: its run's (reruns)
AIS_CHAINS = "ais_chains"
AIS_UNRELIABLE = "ais_unreliable"  # images whose AIS SE is not valid (low chain ESS)
LOG_P = "log_p"
LOG_P_SPREAD_SE = "log_p_spread_se"
IWAE = "iwae"
IWAE_K = "iwae_k"
ELBO = "elbo"
ELBO_BEST = "elbo_best"  # ELBO[q*]
KL = "kl"
APPROXIMATION = "approximation_gap"
AMORTIZATION = "amortization_gap"
KHAT_MEDIAN = "khat_median"
KHAT_ABOVE = "khat_above_threshold"  # fraction of images with k-hat above the threshold for K draws
QSTAR_CONVERGED = "qstar_converged"  # per image: converged; per backend: the fraction that did
QSTAR_STEPS = "qstar_steps"
FINAL_LOSS = "final_loss"


def se(column: str) -> str:
    """The name of ``column``'s standard-error column."""
    return f"{column}_se"


ESTIMATED = (LOG_P, IWAE, ELBO, ELBO_BEST, KL, APPROXIMATION, AMORTIZATION)
BACKEND_COLUMNS = (
    BACKEND, STATUS, ERROR, LATENT_DIM, N_IMAGES,
    *[c for q in ESTIMATED for c in (q, se(q))], LOG_P_SPREAD_SE, IWAE_K,
    KHAT_MEDIAN, KHAT_ABOVE, QSTAR_CONVERGED, QSTAR_STEPS, AIS_TEMPERATURES, AIS_CHAINS, AIS_UNRELIABLE,
    FINAL_LOSS, TRAINING_SECONDS, COMPILE_SECONDS, AIS_SECONDS, AIS_TUNING_SECONDS, IWAE_SECONDS,
    FIT_SECONDS, CHECKPOINT_SECONDS,
)  # fmt: skip

# images
IMAGE = "image"
KHAT = "khat"
AIS_ESS = "ais_ess"
AIS_UNRELIABLE_IMAGE = "ais_unreliable"
IMAGE_COLUMNS = (
    BACKEND, IMAGE, *[c for q in ESTIMATED for c in (q, se(q))], KHAT, AIS_ESS, AIS_UNRELIABLE_IMAGE,
    QSTAR_CONVERGED, AIS_TEMPERATURES,
)  # fmt: skip

# checkpoints and intervals
STEP = "step"
CHECKPOINT_COLUMNS = (BACKEND, STEP, N_IMAGES, LOG_P, se(LOG_P), ELBO, se(ELBO), KL, se(KL), AIS_UNRELIABLE)
STEP_FROM, STEP_TO = "step_from", "step_to"
ELBO_GAIN, LOG_P_GAIN, KL_FALL = "elbo_gain", "log_p_gain", "kl_fall"
SPAN = "span"  # INTERVAL: between consecutive checkpoints; WHOLE: from the first to the last
INTERVAL, WHOLE = "interval", "whole"
INTERVAL_COLUMNS = (
    BACKEND,
    SPAN,
    STEP_FROM,
    STEP_TO,
    ELBO_GAIN,
    se(ELBO_GAIN),
    LOG_P_GAIN,
    se(LOG_P_GAIN),
    KL_FALL,
    se(KL_FALL),
)

# bdmc
TEMPERATURES = "temperatures"
LOWER, UPPER, GAP = "lower", "upper", "gap"
BDMC_COLUMNS = (
    BACKEND, TEMPERATURES, N_IMAGES, LOWER, se(LOWER), UPPER, se(UPPER), GAP, se(GAP),
    "unreliable_lower", "unreliable_upper", "seconds",
)  # fmt: skip

# agreement
QUANTITY = "quantity"
BACKEND_A, BACKEND_B = "backend_a", "backend_b"
DIFFERENCE, Z, FLAGGED = "difference", "z", "flagged"
AGREEMENT_COLUMNS = (QUANTITY, BACKEND_A, BACKEND_B, DIFFERENCE, "se", Z, FLAGGED)
AGREEMENT_QUANTITIES = (ELBO, LOG_P, KL, APPROXIMATION, AMORTIZATION)

# losses
LOSS = "loss"
LOSS_COLUMNS = (BACKEND, STEP, LOSS)

# runs and procedures
RUN = "run"  # the run's index: its noise seed is the study's plus this; 0: the run evaluated in full
NOISE_SEED = "noise_seed"  # TrainingSettings.noise of the run
RUN_COLUMNS = (
    BACKEND, RUN, NOISE_SEED, STATUS, ERROR, ELBO, se(ELBO), IWAE, se(IWAE), FINAL_LOSS, TRAINING_SECONDS,
    IWAE_SECONDS,
)  # fmt: skip
RUN_QUANTITIES = (ELBO, IWAE)
RUNS_A, RUNS_B = "runs_a", "runs_b"
MEAN_A, MEAN_B, SD_A, SD_B = "mean_a", "mean_b", "sd_a", "sd_b"
T, DF, P = "t", "df", "p"
DETECTABLE = "detectable"  # the smallest |difference| the test flags: t_crit(df) x SE
PROCEDURE_COLUMNS = (
    QUANTITY, BACKEND_A, BACKEND_B, RUNS_A, RUNS_B, MEAN_A, SD_A, MEAN_B, SD_B, DIFFERENCE, "se", T, DF, P,
    FLAGGED, DETECTABLE,
)  # fmt: skip

TABLES = {
    "backends": BACKEND_COLUMNS,
    "images": IMAGE_COLUMNS,
    "checkpoints": CHECKPOINT_COLUMNS,
    "intervals": INTERVAL_COLUMNS,
    "bdmc": BDMC_COLUMNS,
    "agreement": AGREEMENT_COLUMNS,
    "losses": LOSS_COLUMNS,
    "runs": RUN_COLUMNS,
    "procedures": PROCEDURE_COLUMNS,
}


def frame(
    table: str, rows: list[dict], tables: Mapping[str, tuple[str, ...]] = TABLES, study: str = "vae"
) -> pd.DataFrame:
    """The rows as table ``table``'s DataFrame (of ``study``'s ``tables``), its columns in their declared
    order."""
    columns = tables[table]
    unknown = {key for row in rows for key in row} - set(columns)
    if unknown:
        raise ValueError(f"{study} table {table!r} has no columns {sorted(unknown)}")
    return pd.DataFrame(rows, columns=list(columns))
