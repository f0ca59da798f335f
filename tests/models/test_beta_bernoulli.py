"""Beta-Bernoulli: the logit-Normal family's best KL to the Beta posterior (models/beta_bernoulli/spec.py).

The quadrature and the optimum behind ``kl_family_min("mean_field")`` are checked against adaptive
quadrature, at numerical-precision tolerances.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, special, stats

from models.beta_bernoulli.spec import logit_normal_kl, logit_normal_optimum
from ppl_suite.problem import Problem

BETAS = [(35.0, 69.0), (2.0, 2.0), (13.0, 91.0), (1.5, 40.0)]


def kl_by_quad(loc: float, scale: float, a: float, b: float) -> float:
    """int N(u; loc, scale) [log q(p) - log Beta(p; a, b)] du with p = sigmoid(u), by adaptive quadrature."""

    def integrand(u: float) -> float:
        p, log_q_u = special.expit(u), stats.norm.logpdf(u, loc, scale)
        log_q_p = log_q_u - np.log(p) - np.log1p(-p)
        return np.exp(log_q_u) * (log_q_p - stats.beta.logpdf(p, a, b))

    return integrate.quad(
        integrand, loc - 14 * scale, loc + 14 * scale, epsabs=1e-13, epsrel=1e-12, limit=200
    )[0]


@pytest.mark.parametrize(("a", "b"), BETAS)
@pytest.mark.parametrize(("loc", "scale"), [(0.0, 0.1), (-0.7, 0.2), (1.0, 1.5)])
def test_logit_normal_kl_by_gauss_hermite_matches_adaptive_quadrature(a, b, loc, scale):
    value, _ = logit_normal_kl(loc, np.log(scale), a, b)
    assert value == pytest.approx(kl_by_quad(loc, scale, a, b), abs=1e-9)


@pytest.mark.parametrize(("a", "b"), BETAS)
def test_logit_normal_kl_gradient_matches_central_differences(a, b):
    w, h = np.array([0.3, np.log(0.4)]), 1e-6
    _, grad = logit_normal_kl(*w, a, b)
    for i in range(2):
        step = np.eye(2)[i] * h
        numeric = (logit_normal_kl(*(w + step), a, b)[0] - logit_normal_kl(*(w - step), a, b)[0]) / (2 * h)
        assert grad[i] == pytest.approx(numeric, abs=1e-6)


@pytest.mark.parametrize(("a", "b"), BETAS)
def test_logit_normal_optimum_is_stationary_under_independent_quadrature(a, b):
    """In logit space the Beta target a log sigmoid(u) + b log sigmoid(-u) is concave, so the KL is convex in
    (loc, scale) (Challis and Barber, 2013): a stationary point is the global minimum."""
    kl, loc, scale = logit_normal_optimum(a, b)
    assert kl > 0
    assert kl == pytest.approx(kl_by_quad(loc, scale, a, b), abs=1e-9)
    h = 1e-4 * np.array([1.0, scale])
    for i in range(2):
        up, down = np.array([loc, scale]), np.array([loc, scale])
        up[i], down[i] = up[i] + h[i], down[i] - h[i]
        assert kl_by_quad(*up, a, b) > kl and kl_by_quad(*down, a, b) > kl
        assert abs(kl_by_quad(*up, a, b) - kl_by_quad(*down, a, b)) / (2 * h[i]) < 1e-5


def test_kl_family_min_is_zero_for_the_beta_family_and_the_logit_normal_optimum_otherwise():
    problem = Problem.build("beta_bernoulli", 0)
    spec, exact = problem.spec, problem.exact()
    assert spec.kl_family_min("conjugate", problem.data, problem.params) == 0.0
    expected = logit_normal_optimum(exact.concentration1, exact.concentration0)[0]
    assert spec.kl_family_min("mean_field", problem.data, problem.params) == expected
    assert spec.kl_family_min("full_rank", problem.data, problem.params) is None
