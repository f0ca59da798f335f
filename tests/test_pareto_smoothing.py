"""The hand-written PSIS (``estimators.pareto_smoothing``) against ArviZ's public ``arviz.psislw`` (reff = 1,
unnormalized) on random log weights of light to very heavy tails, ties, constant and -inf entries, and
the properties PSIS promises whatever the reference.

Tolerance: relative 1e-12 (about 4 500 eps) on k-hat and on the smoothed log weights (relative to the
largest finite |log weight|). The two compute the same floating-point operations in the same order;
the rounding they could differ by is a few eps per operation, summed over the n <= 300 tail terms
(3 sqrt(10^4)) of the fit's means and weights, i.e. at most a few hundred eps. With ArviZ 0.23 they are
equal to the last bit (maximum difference 0). A different algorithm (prior weight, tail length,
quantile probabilities) changes k-hat by more than 1e-3.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ppl_suite.estimators.pareto_smoothing import generalized_pareto_quantile, tail_length
from ppl_suite.estimators.weights import pareto_smoothed

RTOL = 1e-12
REPLICATES = 6  # random vectors per (size, tail)


def arviz_psis(log_w: np.ndarray) -> tuple[np.ndarray, float]:
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ warns when k-hat is high
        smoothed, k_hat = az.psislw(log_w.copy(), reff=1.0, normalize=False)
    return np.asarray(smoothed), float(k_hat)


def assert_same_psis(log_w: np.ndarray) -> float:
    """The hand-written PSIS equals ArviZ's on ``log_w``; returns ArviZ's k-hat."""
    smoothed, k_hat = pareto_smoothed(log_w)
    reference, reference_k = arviz_psis(log_w)
    if np.isfinite(reference_k):
        assert k_hat == pytest.approx(reference_k, rel=RTOL, abs=RTOL)
    else:
        assert k_hat == reference_k or (np.isnan(k_hat) and np.isnan(reference_k))
    finite = log_w[np.isfinite(log_w)]
    scale = max(1.0, float(np.max(np.abs(finite)))) if finite.size else 1.0
    np.testing.assert_allclose(smoothed, reference, rtol=RTOL, atol=RTOL * scale)
    return reference_k


def light_tail(rng: np.random.Generator, size: int) -> np.ndarray:
    """log w ~ normal(0, sd): from nearly constant to lognormal weights (k-hat ~ 0 to ~0.7)."""
    return rng.normal(0.0, rng.uniform(0.01, 2.0), size)


def pareto_tail(rng: np.random.Generator, size: int) -> np.ndarray:
    """w - 1 ~ Pareto(alpha) (Lomax), tail shape k = 1 / alpha from 0.2 to 2."""
    return np.log1p(rng.pareto(1.0 / rng.uniform(0.2, 2.0), size))


@pytest.mark.parametrize("size", [10, 30, 100, 1000, 10_000])  # 10: a tail of 2, too short to fit
@pytest.mark.parametrize("tail", [light_tail, pareto_tail])
def test_psis_equals_arviz_psislw_on_random_weights(size, tail):
    rng = np.random.default_rng([size, tail is pareto_tail])
    k_hats = [assert_same_psis(tail(rng, size)) for _ in range(REPLICATES)]
    if tail is pareto_tail and size >= 1000:  # the replicates reach the very heavy tails PSIS flags
        assert max(k_hats) > 1.0
    if tail is light_tail and size >= 1000:
        assert min(k_hats) < 0.3


SPECIAL_CASES = {
    "constant": np.zeros(100),  # no tail above the cut-off: k-hat inf, nothing smoothed
    "ties-at-cut-off": np.r_[np.zeros(50), -np.ones(50)],  # ties at the cut-off leave no tail
    "ties-at-top": np.r_[np.zeros(3), -np.arange(1.0, 98.0)],
    "ties-in-tail": np.round(np.random.default_rng(1).normal(size=1000), 1),  # the tail's order of ties
    "minus-inf": np.where(np.random.default_rng(2).random(1000) < 0.3, -np.inf, np.arange(1000) / 100),
    "mostly-minus-inf": np.r_[np.full(990, -np.inf), np.arange(10.0)],  # the cut-off at exp(-708)
    "shortest": np.array([0.0, -np.inf]),
    "all-minus-inf": np.full(20, -np.inf),  # every weight zero: ArviZ's answer, NaN weights and k-hat inf
    "large-offset": np.random.default_rng(5).normal(size=100) * 1e-9 + 700.0,  # nearly equal, far from 0
}


@pytest.mark.parametrize("log_w", SPECIAL_CASES.values(), ids=SPECIAL_CASES.keys())
def test_psis_equals_arviz_psislw_on_ties_constants_and_zero_weights(log_w):
    assert_same_psis(log_w)


def test_psis_smooths_only_the_tail_keeps_its_ranking_and_truncates_at_the_largest_weight():
    log_w = np.log1p(np.random.default_rng(6).pareto(1.5, 1000))
    given = log_w.copy()
    smoothed, k_hat = pareto_smoothed(log_w)
    np.testing.assert_array_equal(log_w, given)  # the input is left alone
    assert np.isfinite(k_hat)
    order = np.argsort(log_w)
    tail, body = order[-tail_length(log_w.size) :], order[: -tail_length(log_w.size)]
    shift_rounding = 4 * np.finfo(float).eps * log_w.max()  # (l - max l) + max l
    np.testing.assert_allclose(smoothed[body], log_w[body], rtol=0, atol=shift_rounding)
    assert np.all(np.diff(smoothed[tail]) >= 0) and smoothed.max() <= log_w.max()


@pytest.mark.parametrize("k", [-0.4, 0.0, 1e-17, 0.3, 1.2])
def test_generalized_pareto_quantile_is_scipys_genpareto_ppf(k):
    from scipy.stats import genpareto

    p = (np.arange(50) + 0.5) / 50
    # a few eps per operation of log1p, expm1 and the products, relative to the quantile
    np.testing.assert_allclose(
        generalized_pareto_quantile(p, k, 2.5), genpareto.ppf(p, k, scale=2.5), rtol=64 * np.finfo(float).eps
    )
    assert np.all(np.isnan(generalized_pareto_quantile(p, k, 0.0)))
