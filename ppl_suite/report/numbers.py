"""The few derived numbers a sentence and a figure of the report both show, computed once here.

Nothing here draws. Each is arithmetic on stored values (differences and their SEs added in quadrature,
a maximum, a correlation of stored draws, normal quantiles for a QQ plot, ArviZ's density of draws), so
that a sentence and the figure beside it read the same numbers and a test can check them against the
store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from ppl_suite import checks, schema
from ppl_suite.report.rows import cell_labels, column, in_display_order, model_labels, ok_rows


@dataclass(frozen=True)
class Residuals:
    """The identity's residuals z = (log p(x) − ELBO − KL) / SE of the cells that have one."""

    frame: pd.DataFrame  # model, cell (label), z: one line per cell with a finite residual
    without: int  # ok cells with no residual (KL against a reference, or an ELBO without a valid SE)

    @property
    def count(self) -> int:
        return len(self.frame)

    @property
    def largest(self) -> float:
        """The largest |z| (NaN when there is none)."""
        return float(self.frame["z"].abs().max()) if self.count else float("nan")

    @property
    def worst(self) -> str:
        """The cell with the largest |z|, as ``model: backend / guide / seed s``."""
        return str(self.frame.loc[self.frame["z"].abs().idxmax(), "cell"]) if self.count else ""

    @property
    def beyond(self) -> int:
        """How many |z| exceed checks.FLAG_SE."""
        return int((self.frame["z"].abs() > checks.FLAG_SE).sum())


def residuals(rows: pd.DataFrame) -> Residuals:
    """The stored residual (``residual_se``) of every ok cell that has a finite one."""
    ok = in_display_order(ok_rows(rows))
    z = column(ok, schema.RESIDUAL_SE)
    finite = np.isfinite(z.to_numpy(dtype=float))
    frame = pd.DataFrame({"model": model_labels(ok), "cell": cell_labels(ok, with_model=True), "z": z})[
        finite
    ]
    return Residuals(frame.reset_index(drop=True), int((~finite).sum()))


def normal_quantiles(n: int) -> np.ndarray:
    """The expected order statistics of n standard normal draws (Blom's positions (i − 3/8) / (n + 1/4)),
    against which sorted residuals are plotted in a QQ plot."""
    return np.array([NormalDist().inv_cdf((i - 0.375) / (n + 0.25)) for i in range(1, n + 1)])


GAIN_COLUMNS = ("gain", "gain_se", "evidence", "evidence_se", "kl_drop", "kl_drop_se", "start", "end")


def gain_split(curve: Mapping[str, np.ndarray]) -> dict[str, float]:
    """How the ELBO rose from the first to the last checkpoint of a training curve (artifacts
    ``training.*``, as ``training_curve.COLUMNS``): since ELBO = log p_θ(x) − KL(q || p_θ(z|x)) at every
    checkpoint,

        ELBO_end − ELBO_start = (log p_θend(x) − log p_θstart(x)) + (KL_start − KL_end)
                      gain    =          Δlog p_θ(x)              +       (−ΔKL)

    Each difference's SE is its two ends' SEs in quadrature (an exact log p_θ(x) or closed-form KL has
    SE 0; the two checkpoints' estimates use independent draws or are exact)."""

    def ends(name: str) -> tuple[float, float]:
        values = np.asarray(curve.get(name, np.full(2, np.nan)), dtype=float)
        return float(values[0]), float(values[-1])

    def se(name: str) -> float:
        first, last = ends(name) if name in curve else (0.0, 0.0)
        return float(np.hypot(np.nan_to_num(first), np.nan_to_num(last)))

    elbo, evidence, kl, step = ends("elbo"), ends("log_evidence"), ends("kl"), ends("step")
    return {
        "gain": elbo[1] - elbo[0],
        "gain_se": se("elbo_se"),
        "evidence": evidence[1] - evidence[0],
        "evidence_se": se("log_evidence_se"),
        "kl_drop": kl[0] - kl[1],
        "kl_drop_se": se("kl_se"),
        "start": step[0],
        "end": step[1],
    }


def curve_of(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A cell's training curve (the artifacts ``training.<column>``) by column name; {} when it has none."""
    return {
        name.removeprefix(schema.TRAINING_PREFIX): np.asarray(value)
        for name, value in arrays.items()
        if name.startswith(schema.TRAINING_PREFIX)
    }


def strongest_pair(draws: np.ndarray) -> tuple[int, int, float]:
    """The two coordinates of ``draws`` (draws x coordinates) with the largest absolute correlation, and
    that correlation: where a mean-field q, which has none, loses the most."""
    if draws.ndim != 2 or draws.shape[1] < 2:
        return 0, 0, float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = np.corrcoef(draws, rowvar=False)
    np.fill_diagonal(correlation, 0.0)
    correlation = np.nan_to_num(correlation)
    i, j = np.unravel_index(np.argmax(np.abs(correlation)), correlation.shape)
    i, j = sorted((int(i), int(j)))
    return i, j, float(correlation[i, j])


def correlation(draws: np.ndarray, i: int, j: int) -> float:
    """The correlation of coordinates i and j of ``draws``."""
    return float(np.corrcoef(draws[:, i], draws[:, j])[0, 1])


@dataclass(frozen=True)
class Density:
    """A marginal density of draws as ArviZ's ``plot_dist`` draws it: ``kind`` "kde", the density ``y``
    at the points ``x``; or "hist" (integer-valued draws), the bin edges ``x`` and each bin's density
    ``y``, bins aligned on their left edges."""

    kind: str
    x: np.ndarray
    y: np.ndarray


def marginal_density(draws: np.ndarray) -> Density:
    """The density ArviZ's ``plot_dist`` shows for one coordinate's ``draws``, computed by ArviZ's own
    functions: integer-valued draws as a histogram normalized to density, bin width the larger of
    Sturges' and Freedman–Diaconis' (``get_bins``); others as ArviZ's linear KDE (``kde``, bandwidth
    "experimental": Silverman's rule refined by the improved Sheather–Jones fixed point, Botev et al.
    2010), at the points ``plot_kde`` draws it at."""
    import warnings

    from arviz.stats.density_utils import get_bins, kde  # deferred: ArviZ is heavy

    draws = np.asarray(draws)
    if np.all(np.isfinite(draws)) and np.array_equal(draws, np.round(draws)):
        values = draws.astype(int)
        edges = get_bins(values)
        heights, _ = np.histogram(values, bins=edges, density=True)
        return Density("hist", edges, heights)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ warns on constant draws; the figure shows them as they are
        grid, density = kde(draws, False, bw="experimental", adaptive=False, cumulative=False)
    return Density("kde", np.linspace(grid[0], grid[-1], len(density)), density)
