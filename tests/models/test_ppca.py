"""ppca: the oracle against dense Gaussian algebra for any theta, the closed-form maximum likelihood,
and fits that learn theta: along the training trajectory log p_theta(x) = ELBO + KL holds at every
checkpoint, log p_theta(x) rises, the KL falls, and the learned log p_theta(X) ends at the maximum
likelihood (Tipping and Bishop, 1999) within the suite's convergence criterion."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from models.ppca.posterior import log_evidence, maximum_likelihood, theta
from ppl_suite import backends, schema
from ppl_suite.backends import SVIConfig
from ppl_suite.backends.jax_loop import checkpoint_steps
from ppl_suite.execute import CONVERGED_GAP
from ppl_suite.problem import Problem
from tests.fitted_cells import DEFAULT_SVI, fitted_record

MODEL = "ppca"
EPS = np.finfo(np.float64).eps
CURVE_COLUMNS = ("elbo", "elbo_se", "log_evidence", "kl", "kl_se")  # the stored curve's, after "step"


def random_theta(rng: np.random.Generator, d: int, k: int) -> dict[str, np.ndarray]:
    return {
        "W": rng.normal(size=(d, k)),
        "mu": rng.normal(size=d),
        "log_sigma": np.asarray(rng.normal(-0.5, 0.3)),
    }


def rounding_bound(value: float, cov: np.ndarray, terms: int) -> float:
    """Float64 error bound of a Gaussian log density: terms * cond(cov) * eps * |value|
    (each of ``terms`` summands carries a relative error of at most cond(cov) * eps)."""
    return terms * np.linalg.cond(cov) * EPS * abs(value)


@pytest.mark.parametrize("data_seed", [0, 1, 2])
def test_log_evidence_equals_the_dense_density_of_the_stacked_data(data_seed):
    """vec(X) ~ N(1_N (x) mu, I_N (x) (W W^T + sigma^2 I)): one (N d)-dimensional Gaussian, at theta_0
    and at a random theta (the oracle must be right for every theta SVI passes through)."""
    problem = Problem.build(MODEL, data_seed)
    x = problem.data["x"]
    n, d = x.shape
    rng = np.random.default_rng(data_seed)
    for params in (problem.params, {**problem.params, **random_theta(rng, d, 2)}):
        W, mu, sigma = theta(params)
        cov = W @ W.T + sigma**2 * np.eye(d)
        dense = stats.multivariate_normal(np.tile(mu, n), np.kron(np.eye(n), cov)).logpdf(x.ravel())
        exact = problem.with_params(params).exact()
        assert abs(exact.log_evidence - dense) <= rounding_bound(dense, cov, n * d)


def test_posterior_equals_gaussian_conditioning_of_the_joint():
    """Conditioning the joint Gaussian of (z_n, x_n) directly: E[z_n | x_n] = W^T C^-1 (x_n - mu) and
    Cov[z_n | x_n] = I - W^T C^-1 W, C = W W^T + sigma^2 I; the oracle's M^-1 forms must agree."""
    problem = Problem.build(MODEL, 3)
    x = problem.data["x"]
    for params in (problem.params, {**problem.params, **random_theta(np.random.default_rng(3), 5, 2)}):
        W, mu, sigma = theta(params)
        C = W @ W.T + sigma**2 * np.eye(5)
        exact = problem.with_params(params).exact()
        gain = np.linalg.solve(C, W).T  # W^T C^-1
        bound = 10 * np.linalg.cond(C) * EPS * max(1.0, np.abs(x - mu).max() * np.abs(W).max())
        np.testing.assert_allclose(exact.mean()["z"], (x - mu) @ gain.T, rtol=0, atol=bound)
        np.testing.assert_allclose(exact.cov, np.eye(2) - gain @ W, rtol=0, atol=bound)


def test_mean_field_family_minimum_equals_the_generic_block_formula():
    """N/2 (sum_j log M_jj - log det M) = 0.5 (sum_i log Lambda_ii - log det Lambda) over all N k
    coordinates, Lambda the inverse of the oracle's block-diagonal covariance; zero for orthogonal W."""
    problem = Problem.build(MODEL, 0)
    for params in (problem.params, {**problem.params, **random_theta(np.random.default_rng(0), 5, 2)}):
        at = problem.with_params(params)
        precision = np.linalg.inv(at.exact().covariance())
        generic = 0.5 * (np.log(np.diag(precision)).sum() - np.linalg.slogdet(precision)[1])
        closed = problem.spec.kl_family_min("mean_field", at.data, at.params)
        assert closed == pytest.approx(generic, rel=1e-9, abs=1e-9)
    assert problem.spec.kl_family_min("mean_field", problem.data, problem.params) == 0.0  # W_0 orthogonal


@pytest.mark.parametrize("data_seed", [0, 1])
def test_maximum_likelihood_is_the_maximum(data_seed):
    """The closed form equals the oracle's evidence at (W_ML, mu_ML, sigma_ML), is invariant to W -> W R,
    and no perturbed theta does better: the log-likelihood's gradient vanishes there and it is concave
    along each probed direction, so small steps lose to second order."""
    problem = Problem.build(MODEL, data_seed)
    x = problem.data["x"]
    ml = maximum_likelihood(x, 2)
    cov = ml.W @ ml.W.T + ml.sigma**2 * np.eye(5)
    tol = rounding_bound(ml.log_likelihood, cov, x.size)
    assert log_evidence(x, ml.W, ml.mu, ml.sigma) == pytest.approx(ml.log_likelihood, abs=tol)
    angle = 0.7
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    assert log_evidence(x, ml.W @ rotation, ml.mu, ml.sigma) == pytest.approx(ml.log_likelihood, abs=tol)
    rng = np.random.default_rng(data_seed)
    for _ in range(20):
        step = 1e-3
        W = ml.W + step * rng.normal(size=ml.W.shape)
        mu = ml.mu + step * rng.normal(size=5)
        sigma = ml.sigma * np.exp(step * rng.normal())
        assert log_evidence(x, W, mu, sigma) < ml.log_likelihood + tol


@pytest.fixture(scope="module", params=[("numpyro", "amortized"), ("numpyro", "mean_field")], ids="/".join)
def fitted(request):
    """The cell fitted with the suite's default SVI settings (shared with test_fit: one fit per session),
    its learned theta, and the training curve it stores (start + 20 checkpoints, ``execute``'s
    ``training_curve`` at TRAINING_CURVE_SAMPLES draws per estimate)."""
    backend, guide = request.param
    record = fitted_record(MODEL, backend, guide)
    assert record.ok, record.row["error"]
    curve = pd.DataFrame({c: record.artifacts[schema.training_artifact(c)] for c in ("step", *CURVE_COLUMNS)})
    return Problem.build(MODEL, 0), schema.split_fitted(record.artifacts)[1], curve


def test_training_curve_has_the_start_and_every_checkpoint(fitted):
    _, _, curve = fitted
    assert curve["step"].tolist() == [0, *checkpoint_steps(DEFAULT_SVI.steps).tolist()]
    assert curve[list(CURVE_COLUMNS)].notna().all().all()


def test_identity_holds_within_4_se_at_every_checkpoint(fitted):
    """log p_theta(x) - ELBO - KL is Monte Carlo noise only: |residual| < 4 sqrt(se_ELBO^2 + se_KL^2)."""
    _, _, curve = fitted
    residual = curve["log_evidence"] - curve["elbo"] - curve["kl"]
    noise = np.hypot(curve["elbo_se"], curve["kl_se"])
    assert (residual.abs() < 4 * noise).all(), curve.assign(residual=residual, noise=noise).to_string()


def test_elbo_rises_through_both_terms(fitted):
    """From theta_0 to the learned theta: log p_theta(x) goes up and KL(q || p_theta(z | x)) goes down."""
    _, _, curve = fitted
    start, end = curve.iloc[0], curve.iloc[-1]
    assert end["log_evidence"] > start["log_evidence"]
    assert end["kl"] < start["kl"]
    assert end["elbo"] > start["elbo"]


def test_learned_evidence_reaches_the_maximum_likelihood(fitted, record_property):
    """log p_theta(X) <= max_theta log p_theta(X) (closed form) up to float64 rounding, and within
    CONVERGED_GAP nats of it, the same criterion the suite uses to call a fit converged: both families
    reach the maximum (amortized: exact family; mean_field: W rotates to orthogonal columns)."""
    problem, fitted_theta, curve = fitted
    x = problem.data["x"]
    ml = maximum_likelihood(x, 2)
    learned = problem.with_params(fitted_theta).exact().log_evidence
    W, _, sigma = theta(problem.with_params(fitted_theta).params)
    tol = rounding_bound(learned, W @ W.T + sigma**2 * np.eye(5), x.size)
    gap = ml.log_likelihood - learned
    record_property("maximum_likelihood_gap_nats", gap)
    assert learned == pytest.approx(curve["log_evidence"].iloc[-1], abs=tol)
    assert learned <= ml.log_likelihood + tol
    assert gap < CONVERGED_GAP, f"learned log p_theta(X) is {gap:.4g} nats below the maximum likelihood"


@pytest.mark.parametrize("fitted", [("numpyro", "mean_field")], indirect=True, ids="/".join)
def test_mean_field_learning_picks_the_rotation_where_its_family_is_exact(fitted):
    """The likelihood cannot tell W from W R; the mean-field KL can, and is minimal (0) for orthogonal
    columns, so the mean-field fit ends with a diagonal posterior covariance: best KL < CONVERGED_GAP."""
    problem, fitted_theta, _ = fitted
    at = problem.with_params(fitted_theta)
    assert problem.spec.kl_family_min("mean_field", at.data, at.params) < CONVERGED_GAP


def test_fits_leave_the_initial_parameters_untouched():
    """Backends update learned parameters in place (Pyro's optimizer does); the arrays the model was
    given as theta_0 must not change."""
    base = Problem.build(MODEL, 0)
    theta0 = {name: np.array(base.params[name], dtype=float) for name in base.spec.learned}
    problem = base.with_params({name: value.copy() for name, value in theta0.items()})
    for backend in backends.names():
        fit = backends.get(backend).fit(problem, "amortized", SVIConfig(steps=20, eval_particles=2), seed=0)
        assert not np.allclose(fit.theta["W"], theta0["W"]), backend
        for name, value in theta0.items():
            np.testing.assert_array_equal(problem.params[name], value, err_msg=backend)
    assert math.isfinite(problem.exact().log_evidence)
