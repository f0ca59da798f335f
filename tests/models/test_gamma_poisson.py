"""Gamma-Poisson: the LogNormal family's best KL to the Gamma posterior (see models/gamma_poisson/spec.py).

The closed form KL(LogNormal || Gamma), its minimizer and Stirling's remainder as the minimum are
checked against adaptive quadrature and a numerical optimizer, at numerical-precision tolerances.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from models.gamma_poisson.spec import lognormal_kl, lognormal_optimum
from ppl_suite.problem import Problem

GAMMAS = [(396.0, 100.5), (2.0, 0.5), (51.0, 51.0), (1211.0, 100.5)]
NELDER_MEAD = {"xatol": 1e-9, "fatol": 1e-14, "maxiter": 4000}


def kl_by_quad(loc: float, scale: float, a: float, b: float) -> float:
    """int N(u; loc, scale) [log q(lambda) - log Gamma(lambda; a, b)] du, lambda = exp(u)."""

    def integrand(u: float) -> float:
        log_q_u = stats.norm.logpdf(u, loc, scale)
        return np.exp(log_q_u) * (log_q_u - u - stats.gamma.logpdf(np.exp(u), a, scale=1.0 / b))

    return integrate.quad(
        integrand, loc - 14 * scale, loc + 14 * scale, epsabs=1e-13, epsrel=1e-12, limit=200
    )[0]


@pytest.mark.parametrize(("a", "b"), GAMMAS)
@pytest.mark.parametrize(("shift", "scale_factor"), [(0.0, 1.0), (0.1, 0.7), (-0.2, 1.5)])
def test_lognormal_kl_closed_form_matches_quadrature(a, b, shift, scale_factor):
    _, loc, scale = lognormal_optimum(a, b)
    loc, scale = loc + shift * scale, scale * scale_factor
    assert lognormal_kl(loc, scale, a, b) == pytest.approx(kl_by_quad(loc, scale, a, b), abs=1e-9)


@pytest.mark.parametrize(("a", "b"), GAMMAS)
def test_stirling_remainder_is_the_minimum_of_the_lognormal_kl(a, b):
    kl, loc, scale = lognormal_optimum(a, b)
    assert kl > 0
    assert kl == pytest.approx(lognormal_kl(loc, scale, a, b), abs=1e-10)
    search = optimize.minimize(lambda w: lognormal_kl(w[0], np.exp(w[1]), a, b), [np.log(a / b), 0.0],
                               method="Nelder-Mead", options=NELDER_MEAD)  # fmt: skip
    assert kl <= search.fun + 1e-10
    assert search.fun - kl < 1e-8
    assert kl == pytest.approx(1 / (12 * a) - 1 / (360 * a**3), rel=1 / a**2)  # Stirling series


def test_kl_family_min_is_zero_for_the_gamma_family_and_stirling_for_the_lognormal():
    problem = Problem.build("gamma_poisson", 0)
    spec, exact = problem.spec, problem.exact()
    assert spec.kl_family_min("conjugate", problem.data, problem.params) == 0.0
    expected = lognormal_optimum(exact.concentration, exact.rate)[0]
    assert spec.kl_family_min("mean_field", problem.data, problem.params) == expected


def test_counts_are_whole_float64_numbers():
    x = Problem.build("gamma_poisson", 0).data["x"]
    assert x.dtype == np.float64 and np.all(x >= 0) and np.all(x == np.round(x))
