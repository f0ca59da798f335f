"""Pareto-smoothed importance sampling (PSIS) of one vector of log weights from independent draws.

Vehtari, Simpson, Gelman, Yao and Gabry (2024), "Pareto smoothed importance sampling", JMLR 25(72),
with relative efficiency reff = 1, for S log weights l_s (w_s = exp(l_s), computed shifted by max_s l_s):

    M = ceil(min(S / 5, 3 sqrt(S)))                      the tail length
    u = max(the (M + 1)-th largest w_s, smallest positive float);  the tail: the n <= M weights w_s > u
    fit a generalized Pareto GPD(k, sigma) to the tail's exceedances w_s - u (Zhang and Stephens, below)
    k-hat = (n k + 10 * 0.5) / (n + 10)                  a weakly informative prior towards k = 0.5
    the j-th smallest tail weight -> u + F^-1((j - 1/2) / n; k-hat, sigma),  j = 1..n
    smoothed weights truncated at the largest raw weight, max_s w_s
    F^-1(p; k, sigma) = sigma ((1 - p)^(-k) - 1) / k     (sigma (-log(1 - p)) when |k| < eps)

A tail of n <= 4 weights (ties at the cut-off, -inf log weights) is not fitted: k-hat = inf and the
weights are returned unsmoothed; so is a fit whose k-hat is not finite.

Zhang and Stephens (2009), "A new and efficient estimation method for the generalized Pareto
distribution", Technometrics 51(3), 316-325, for sorted exceedances x_1 <= ... <= x_n, with
b = -k / sigma:

    k(b) = mean_i log(1 - b x_i),  the profile log-likelihood L(b) = n (log(-b / k(b)) - k(b) - 1)
    b_j = 1 / x_n + (1 - sqrt(m / (j - 1/2))) / (3 x_q),  j = 1..m,  m = 30 + floor(sqrt(n)),
          x_q the first quartile (q = floor(n / 4 + 1/2))
    posterior weights v_j = 1 / sum_i exp(L(b_i) - L(b_j)) (those below 10 eps dropped, renormalized)
    b-hat = sum_j v_j b_j,  k = k(b-hat),  sigma = -k / b-hat

The steps, their order and their floating-point operations are those of ``arviz.psislw`` (ArviZ 0.23),
so the results are ArviZ's to the last bit (tests/test_pareto_smoothing.py) without its import cost.
"""

from __future__ import annotations

import math

import numpy as np

PRIOR_K = 0.5  # the prior's centre for k (Vehtari et al. 2024)
PRIOR_K_WEIGHT = 10  # the prior's weight, in tail draws
QUARTILE_SCALE = 3  # the grid of b's spread, in units of 1 / x_q (Zhang and Stephens 2009)
GRID_BASE = 30  # m = 30 + floor(sqrt(n)) grid points (Zhang and Stephens 2009)
SHORTEST_TAIL = 5  # fewer tail weights than this are not fitted
SMALLEST_WEIGHT = float(np.log(np.finfo(float).tiny))  # the cut-off u is at least exp(this)


def tail_length(samples: int) -> int:
    """M = ceil(min(S / 5, 3 sqrt(S))): the largest weights the generalized Pareto is fitted to
    (Vehtari et al. 2024, reff = 1)."""
    return math.ceil(min(samples / 5, 3 * math.sqrt(samples)))


def generalized_pareto_fit(exceedances: np.ndarray) -> tuple[float, float]:
    """(k-hat, sigma-hat) of a generalized Pareto fitted to n >= 5 sorted positive exceedances by
    Zhang and Stephens' posterior mean, k-hat shrunk towards 0.5 (module docstring); sigma-hat is
    computed from the unshrunk k, so the prior acts on k alone (as R's loo and ArviZ >= 0.12 do)."""
    x = exceedances
    n = len(x)
    m = GRID_BASE + int(n**0.5)
    b = 1 - np.sqrt(m / (np.arange(1, m + 1, dtype=float) - 0.5))
    b /= QUARTILE_SCALE * x[int(n / 4 + 0.5) - 1]
    b += 1 / x[-1]
    k = np.log1p(-b[:, None] * x).mean(axis=1)
    log_lik = n * (np.log(-(b / k)) - k - 1)
    weights = 1 / np.exp(log_lik - log_lik[:, None]).sum(axis=1)
    kept = weights >= 10 * np.finfo(float).eps
    if not np.all(kept):
        weights, b = weights[kept], b[kept]
    weights /= weights.sum()
    b_hat = np.sum(b * weights)
    k_hat = np.log1p(-b_hat * x).mean()
    sigma = -k_hat / b_hat
    return float((n * k_hat + PRIOR_K_WEIGHT * PRIOR_K) / (n + PRIOR_K_WEIGHT)), float(sigma)


def generalized_pareto_quantile(probabilities: np.ndarray, k: float, sigma: float) -> np.ndarray:
    """F^-1(p) = sigma ((1 - p)^(-k) - 1) / k (sigma (-log(1 - p)) when |k| < eps) for 0 < p < 1;
    NaN unless sigma > 0."""
    if not sigma > 0:
        return np.full_like(probabilities, np.nan)
    if abs(k) < np.finfo(float).eps:
        return -np.log1p(-probabilities) * sigma
    return np.expm1(-k * np.log1p(-probabilities)) / k * sigma


def pareto_smooth(log_w: np.ndarray) -> tuple[np.ndarray, float]:
    """(Pareto-smoothed unnormalized log weights, k-hat) of a 1-D float array of at least 2 log
    weights, none NaN or +inf (module docstring); ``log_w`` is not modified."""
    # overflow of exp(L(b_i) - L(b_j)) is a weight of 0; a failed fit or zero weights say so by value
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        top = np.max(log_w)
        x = log_w - top
        samples = x.size
        cut = samples - tail_length(samples) - 1
        cutoff = max(np.partition(x, cut)[cut], SMALLEST_WEIGHT)
        (tail,) = np.nonzero(x > cutoff)
        if tail.size < SHORTEST_TAIL:
            return x + top, math.inf
        order = tail[np.argsort(x[tail])]
        exp_cutoff = np.exp(cutoff)
        k_hat, sigma = generalized_pareto_fit(np.exp(x[order]) - exp_cutoff)
        if math.isfinite(k_hat):
            expected = generalized_pareto_quantile(np.arange(0.5, tail.size) / tail.size, k_hat, sigma)
            x[order] = np.log(expected + exp_cutoff)
            x[x > 0] = 0
        return x + top, k_hat
