"""Normal-inverse-gamma: the factorized optima behind ``kl_family_min`` (models/normal_inverse_gamma/spec.py).

- coordinate ascent (CAVI) converges to the closed-form fixed point used for ``conjugate``;
- the closed-form factorized KL matches two-dimensional quadrature at both optima;
- each optimum is stationary, and the LogNormal family cannot beat the best factorized q;
- fitted ``mean_field`` guides stay above the CAVI optimum (within the KL estimate's 4 SE) on every backend.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, optimize, stats

import models
from models.normal_inverse_gamma.spec import inverse_gamma_moments, lognormal_moments
from ppl_suite import backends
from ppl_suite.problem import Problem
from tests.fitted_cells import fitted_row

MODEL = "normal_inverse_gamma"


@pytest.fixture(scope="module")
def problem() -> Problem:
    return Problem.build(MODEL, 0)


def cavi(posterior, iterations: int = 200) -> tuple[float, float, float]:
    """Alternate q(mu) = N(m, 1 / (k E[1 / sigma2])) and q(sigma2) = InvGamma(a + 1/2, b + k v / 2)."""
    a, b, k = posterior.concentration, posterior.rate, posterior.kappa
    alpha, beta = a + 0.5, b  # any start
    for _ in range(iterations):
        v = 1.0 / (k * alpha / beta)
        beta = b + 0.5 * k * v
    return v, alpha, beta


def kl_by_quad(posterior, v: float, log_q_u) -> float:
    """int int N(mu; m, v) q_u(u) [log q(mu) + log q_u(u) - u - log p(mu, exp(u) | x)] dmu du,
    with u = log sigma2 and q_u its density (sigma2's density times sigma2)."""
    m, sd = posterior.loc, np.sqrt(v)
    mode = np.log(posterior.rate / posterior.concentration)
    width = 16 / np.sqrt(posterior.concentration)

    def integrand(points: np.ndarray) -> np.ndarray:
        """At each row (u, mu) of ``points``."""
        u, mu = points[:, 0], points[:, 1]
        log_q = stats.norm.logpdf(mu, m, sd) + log_q_u(u)
        log_p = posterior.log_density({"mu": mu, "sigma2": np.exp(u)}) + u
        return np.exp(log_q) * (log_q - log_p)

    # adaptive Gauss-Kronrod on the product rule, a region's points evaluated at once
    result = integrate.cubature(
        integrand, [mode - width, m - 14 * sd], [mode + width, m + 14 * sd], atol=1e-11, rtol=1e-10
    )
    assert result.status == "converged", result.error
    return float(result.estimate)


def test_cavi_converges_to_the_closed_form_fixed_point(problem):
    posterior = problem.exact()
    np.testing.assert_allclose(cavi(posterior), posterior.cavi_optimum(), rtol=1e-12)


def test_conjugate_optimum_kl_matches_quadrature(problem):
    posterior = problem.exact()
    v, alpha, beta = posterior.cavi_optimum()
    closed = problem.spec.kl_family_min("conjugate", problem.data, problem.params)
    assert closed == posterior.factorized_kl(v, *inverse_gamma_moments(alpha, beta))
    log_q_u = lambda u: stats.invgamma.logpdf(np.exp(u), alpha, scale=beta) + u  # noqa: E731
    assert closed > 0
    assert closed == pytest.approx(kl_by_quad(posterior, v, log_q_u), abs=1e-8)


def test_mean_field_optimum_kl_matches_quadrature(problem):
    posterior = problem.exact()
    v, loc, scale = posterior.lognormal_optimum()
    closed = problem.spec.kl_family_min("mean_field", problem.data, problem.params)
    assert closed == posterior.factorized_kl(v, *lognormal_moments(loc, scale))
    log_q_u = lambda u: stats.norm.logpdf(u, loc, scale)  # noqa: E731
    assert closed == pytest.approx(kl_by_quad(posterior, v, log_q_u), abs=1e-8)


@pytest.mark.parametrize("family", ["conjugate", "mean_field"])
def test_each_optimum_is_stationary_and_a_minimum(problem, family):
    """The closed-form KL in (log v, log concentration, log rate) or (log v, l, log t) has zero gradient
    at the optimum, and a quasi-Newton search started away from it comes back to the same value."""
    posterior = problem.exact()

    def kl(w: np.ndarray) -> float:
        if family == "conjugate":
            return posterior.factorized_kl(np.exp(w[0]), *inverse_gamma_moments(np.exp(w[1]), np.exp(w[2])))
        return posterior.factorized_kl(np.exp(w[0]), *lognormal_moments(w[1], np.exp(w[2])))

    if family == "conjugate":
        v, alpha, beta = posterior.cavi_optimum()
        w_star = np.log([v, alpha, beta])
    else:
        v, loc, scale = posterior.lognormal_optimum()
        w_star = np.array([np.log(v), loc, np.log(scale)])
    best = problem.spec.kl_family_min(family, problem.data, problem.params)
    assert kl(w_star) == pytest.approx(best, abs=1e-12)  # exp(log(.)) round trip
    assert np.abs(optimize.approx_fprime(w_star, kl, 1e-7)).max() < 1e-5
    search = optimize.minimize(kl, w_star + 0.3, method="BFGS", options={"gtol": 1e-9})
    assert search.fun == pytest.approx(best, abs=1e-9)


def test_lognormal_optimum_is_no_better_than_the_best_factorized_q(problem):
    kl_min = problem.spec.kl_family_min
    assert kl_min("mean_field", problem.data, problem.params) >= kl_min(
        "conjugate", problem.data, problem.params
    )


@pytest.mark.parametrize(
    "backend",
    [
        b
        for b in backends.names()
        if backends.get(b).unsupported(models.get(MODEL), Problem.build(MODEL, 0).sites, "mean_field") is None
    ],
)
def test_fitted_mean_field_kl_stays_above_the_cavi_optimum(problem, backend):
    """Normal x LogNormal guides are factorized, so no fit can go below the best factorized q (CAVI)."""
    row = fitted_row(MODEL, backend, "mean_field")
    assert row["status"] == "ok", row["error"]
    cavi_kl = problem.spec.kl_family_min("conjugate", problem.data, problem.params)
    assert row["kl"] >= cavi_kl - 4 * row["kl_mc_se"]
