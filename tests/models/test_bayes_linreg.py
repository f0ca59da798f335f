"""bayes_linreg: evidence against the dense n x n Gaussian density, and the closed-form best mean-field KL
0.5 (sum_i log Lambda_ii - log det Lambda) checked by optimization and reached by every backend."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

from ppl_suite import backends
from ppl_suite.estimators.kl import kl_family_minimum, kl_monte_carlo
from ppl_suite.execute import CONVERGED_GAP
from ppl_suite.problem import Problem
from ppl_suite.targets.fitted_guide import FittedGuide
from tests.fitted_cells import fitted_row

MODEL = "bayes_linreg"


def posterior_precision(problem: Problem) -> np.ndarray:
    """Lambda = I / prior_scale^2 + X^T X / noise_scale^2, straight from the data."""
    X, p = problem.data["X"], problem.params
    return np.eye(X.shape[1]) / p["prior_scale"] ** 2 + X.T @ X / p["noise_scale"] ** 2


def closed_form_mean_field_kl(precision: np.ndarray) -> float:
    return 0.5 * (np.log(np.diag(precision)).sum() - np.linalg.slogdet(precision)[1])


@pytest.mark.parametrize("data_seed", [0, 1, 2])
def test_log_evidence_equals_the_dense_multivariate_normal_density(data_seed):
    """log p(y) = log N(y; 0, noise_scale^2 I_n + prior_scale^2 X X^T), on a small instance."""
    problem = Problem.build(MODEL, data_seed, {"n": 50, "d": 3})
    X, y, p = problem.data["X"], problem.data["y"], problem.params
    cov = p["noise_scale"] ** 2 * np.eye(50) + p["prior_scale"] ** 2 * X @ X.T
    dense = stats.multivariate_normal(np.zeros(50), cov).logpdf(y)
    # Two routes to one float64 number: agreement to numerical precision.
    assert problem.exact().log_evidence == pytest.approx(dense, rel=1e-10)


def test_data_shapes_and_dtypes():
    problem = Problem.build(MODEL, 0)
    n, d = problem.params["n"], problem.params["d"]
    assert problem.data["X"].shape == (n, d) and problem.data["y"].shape == (n,)
    assert problem.data["X"].dtype == problem.data["y"].dtype == np.float64


def test_suite_family_minimum_is_the_closed_form_and_the_numerical_optimum():
    """The generic rule computes 0.5 (sum log Lambda_ii - log det Lambda); minimizing the Gaussian KL
    KL(N(mu, diag(s^2)) || N(m, Lambda^-1)) = 0.5 (sum Lambda_ii s_i^2 + (mu - m)^T Lambda (mu - m)
    - d - sum log s_i^2 - log det Lambda) numerically gives the same value."""
    problem = Problem.build(MODEL, 0)
    exact = problem.exact()
    precision = posterior_precision(problem)
    expected = closed_form_mean_field_kl(precision)
    d = precision.shape[0]
    fitted = FittedGuide(problem, "mean_field", {"w.loc": np.zeros(d), "w.log_scale": np.zeros(d)})
    assert kl_family_minimum(problem.sites, fitted.family, exact) == pytest.approx(expected, rel=1e-9)
    log_det = np.linalg.slogdet(precision)[1]

    def kl(theta):
        delta, log_s = theta[:d] - exact.loc, theta[d:]
        value = 0.5 * (np.diag(precision) @ np.exp(2 * log_s) + delta @ precision @ delta - d
                       - 2 * log_s.sum() - log_det)  # fmt: skip
        grad = np.concatenate([precision @ delta, np.diag(precision) * np.exp(2 * log_s) - 1.0])
        return value, grad

    result = optimize.minimize(kl, np.zeros(2 * d), jac=True, method="BFGS", options={"gtol": 1e-12})
    assert result.fun == pytest.approx(expected, rel=1e-8)
    # At the optimum the suite's own Monte Carlo KL measures no gap beyond its noise.
    optimal = FittedGuide(problem, "mean_field", {"w.loc": result.x[:d], "w.log_scale": result.x[d:]})
    measured = kl_monte_carlo(optimal, exact, 10_000)
    assert abs(measured.value - expected) < 4 * measured.se


@pytest.mark.parametrize("backend", backends.names())
def test_fitted_mean_field_guide_reaches_the_closed_form_optimal_kl(backend):
    problem = Problem.build(MODEL, 0)
    optimum = closed_form_mean_field_kl(posterior_precision(problem))
    row = fitted_row(MODEL, backend, "mean_field")
    assert row["status"] == "ok", row["error"]
    assert row["kl_family_min"] == pytest.approx(optimum, rel=1e-9)
    assert row["kl"] >= optimum - 4 * row["kl_mc_se"]
    assert row["kl"] - optimum < CONVERGED_GAP
