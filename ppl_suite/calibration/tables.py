"""The calibration study's tables: their names and columns, the files ``ppl-suite calibrate`` exports
beside them, and what a failed verdict reads. Light to import (no torch, no JAX)."""

from __future__ import annotations

DEFAULT_REPLICATES = 200
LEVEL = 0.99
EXIT_FAILED = 3  # ppl-suite calibrate's exit code when a row or a k-hat bin fails

REPLICATE_COLUMNS = (
    "model", "estimator", "regime", "seed", "value", "se", "k_hat", "reliable", "exact", "z", "z_about",
)  # fmt: skip
KHAT_COLUMNS = (
    "model", "estimator", "khat_bin", "z_about", "count", "z_mean", "z_sd", "fraction_reliable",
    "reliable_count", "reliable_z_mean", "reliable_z_sd", "error_nats", "verdict",
)  # fmt: skip
COLUMNS = (
    "model", "estimator", "regime", "replicates", "z_mean", "z_sd", "frac_abs_z_gt_2", "frac_abs_z_gt_3",
    "khat", "verdict", "judged", "fraction_unreliable", "z_sd_low", "z_sd_high", "z_mean_limit",
    "exact", "mean_estimate", "mean_se", "error_nats", "seconds",
)  # fmt: skip

CALIBRATION = "calibration"  # one row per model x estimator x regime
REPLICATES = "calibration_replicates"  # one row per replicate of an estimator with z's
BY_KHAT = "calibration_by_khat"  # the replicates' z's by k-hat bin
TABLES = {CALIBRATION: COLUMNS, REPLICATES: REPLICATE_COLUMNS, BY_KHAT: KHAT_COLUMNS}
FOLDER = "calibration"  # <results>/calibration/<table>.parquet
FIGURE = "calibration.png"
# what ppl-suite calibrate writes at the top of --out, as it always has: each table as CSV, the figure
EXPORTS = (*(f"{name}.csv" for name in (CALIBRATION, BY_KHAT, REPLICATES)), FIGURE)


def failed(verdict: str) -> bool:
    """Whether a verdict of the calibration or k-hat table is a failure."""
    return verdict.startswith("fail")
