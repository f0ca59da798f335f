"""The models without a closed form (eight schools, logistic and robust regression): their log joints
agree across Pyro, NumPyro and NumPy at prior draws and under Pyro's vectorized particles, their data
are what their specs declare, and the ``reference`` model set selects them."""

from __future__ import annotations

import jax
import numpy as np
import pyro
import pyro.poutine as poutine
import pytest
import torch
from numpyro import handlers
from pyro.poutine.util import site_is_subsample

from ppl_suite import backends, matrix, registry
from ppl_suite.backends.pyro import as_torch
from ppl_suite.problem import Problem
from tests.latents import random_latents, take
from tests.test_model_contract import numpyro_log_joints, pyro_log_joint

NEW_MODELS = [
    "eight_schools_centered",
    "eight_schools_noncentered",
    "logistic_regression",
    "robust_regression",
]
DRAWS = 5


def prior_draws(problem: Problem, n: int) -> list[dict[str, np.ndarray]]:
    """n draws of the latent sites from the NumPyro model's prior (the observed sites stay observed)."""
    model = registry.implementation(problem.spec.name, "numpyro")
    names = [site.name for site in problem.sites]
    draws = []
    for key in jax.random.split(jax.random.PRNGKey(0), n):
        trace = handlers.trace(handlers.seed(model, key)).get_trace(problem.data, problem.params)
        draws.append({name: np.asarray(trace[name]["value"]) for name in names})
    return draws


@pytest.mark.parametrize("name", NEW_MODELS)
def test_log_joints_agree_at_prior_draws(name):
    """Pyro, NumPyro and NumPy give log p(x, z) within 1e-6 nats at draws from the prior."""
    problem = Problem.build(name, data_seed=0)
    draws = prior_draws(problem, DRAWS)
    pyro_values = np.array([pyro_log_joint(problem, z) for z in draws])
    numpyro_values = numpyro_log_joints(problem, draws)
    batched = {site.name: np.stack([z[site.name] for z in draws]) for site in problem.sites}
    numpy_values = problem.spec.log_joint(batched, problem.data, problem.params)
    assert np.all(np.isfinite(numpy_values))
    np.testing.assert_allclose(pyro_values, numpy_values, rtol=0, atol=1e-6)
    np.testing.assert_allclose(numpyro_values, numpy_values, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", NEW_MODELS)
def test_pyro_model_under_vectorized_particles_gives_each_particle_its_own_log_joint(name):
    """Inside a particle plate at dim -2 (what Trace_ELBO(vectorize_particles=True) adds), each
    particle's log p(x, z) is the unbatched one: the model broadcasts batch axes correctly."""
    problem = Problem.build(name, data_seed=0)
    latents = random_latents(problem.sites, np.random.default_rng(1), DRAWS)
    expected = np.array([pyro_log_joint(problem, take(latents, i)) for i in range(DRAWS)])
    batched = {k: torch.tensor(v).unsqueeze(1) for k, v in latents.items()}  # (P, 1, *event shape)
    model = registry.implementation(name, "pyro")
    with pyro.plate("particles", DRAWS, dim=-2):
        trace = poutine.trace(poutine.condition(model, data=batched)).get_trace(
            as_torch(problem.data), as_torch(problem.params)
        )
    total = torch.zeros(DRAWS)
    for site in trace.nodes.values():
        if site["type"] == "sample" and not site_is_subsample(site):
            log_prob = site["fn"].log_prob(site["value"])
            assert log_prob.shape in ((DRAWS, 1), (DRAWS, log_prob.shape[-1])), (site["name"], log_prob.shape)
            total = total + log_prob.reshape(DRAWS, -1).sum(-1)
    np.testing.assert_allclose(total.detach().numpy(), expected, rtol=0, atol=1e-6)


def test_noncentered_eight_schools_is_the_centered_posterior_times_the_jacobian():
    """log p_nc(mu, tau, eta, y) = log p_c(mu, tau, mu + tau eta, y) + 8 log tau (the change of variables
    theta = mu + tau eta has Jacobian determinant tau^8): one posterior, one evidence."""
    centered, noncentered = (Problem.build(f"eight_schools_{p}", 0) for p in ("centered", "noncentered"))
    z = random_latents(noncentered.sites, np.random.default_rng(2), 50)
    theta = z["mu"][:, None] + z["tau"][:, None] * z["eta"]
    log_c = centered.spec.log_joint(
        {"mu": z["mu"], "tau": z["tau"], "theta": theta}, centered.data, centered.params
    )
    log_nc = noncentered.spec.log_joint(z, noncentered.data, noncentered.params)
    np.testing.assert_allclose(log_nc, log_c + 8 * np.log(z["tau"]), rtol=1e-12, atol=1e-9)


def test_noncentered_eight_schools_records_theta_as_a_deterministic_site():
    problem = Problem.build("eight_schools_noncentered", 0)
    model = registry.implementation(problem.spec.name, "numpyro")
    trace = handlers.trace(handlers.seed(model, 0)).get_trace(problem.data, problem.params)
    assert trace["theta"]["type"] == "deterministic"
    expected = trace["mu"]["value"] + trace["tau"]["value"] * trace["eta"]["value"]
    np.testing.assert_allclose(trace["theta"]["value"], expected, rtol=1e-15)
    assert [s.name for s in problem.sites] == ["mu", "tau", "eta"]


@pytest.mark.parametrize("name", ["eight_schools_centered", "eight_schools_noncentered"])
def test_eight_schools_data_are_rubins_effects_and_standard_errors(name):
    data = Problem.build(name, data_seed=7).data
    np.testing.assert_array_equal(data["y"], [28, 8, -3, 7, -1, 1, 18, 12])
    np.testing.assert_array_equal(data["sigma"], [15, 10, 16, 11, 9, 11, 10, 18])
    shapes = {s.name: (s.shape, s.support) for s in registry.get(name).sites(registry.get(name).params())}
    assert shapes["mu"] == ((), "real") and shapes["tau"] == ((), "positive")
    assert shapes.get("theta", shapes.get("eta")) == ((8,), "real")


def test_logistic_regression_data_load_with_their_documented_shape_and_standardized_columns():
    from models.logistic_regression.spec import feature_names

    problem = Problem.build("logistic_regression", data_seed=0)
    X, y = problem.data["X"], problem.data["y"]
    assert X.shape == (569, 10) and y.shape == (569,) and len(feature_names()) == 10
    np.testing.assert_allclose(X.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(X.std(axis=0), 1.0, rtol=1e-12)
    assert set(np.unique(y)) == {0.0, 1.0} and y.sum() == 212  # 212 malignant, 357 benign
    assert [s.shape for s in problem.sites] == [(11,)]  # intercept and 10 coefficients
    correlation = np.corrcoef(X.T)
    assert np.diag(np.linalg.inv(correlation)).max() < 5  # the variance inflation factors README.md cites


def test_robust_regression_data_contain_the_declared_outliers():
    """The first round(fraction n) points lie more than 5 noise sds off the least-squares line of the
    others, and none of the others does: a Normal residual exceeds 5 sd with probability 6e-7, and an
    outlier is 10 sds off, plus Normal noise and the fit's own error (sd about sqrt(d / n) = 0.24)."""
    spec = registry.get("robust_regression")
    for seed in range(3):
        problem = Problem.build("robust_regression", data_seed=seed)
        X, y = problem.data["X"], problem.data["y"]
        n, d, m = int(problem.params["n"]), int(problem.params["d"]), 10
        assert X.shape == (n, d) and y.shape == (n,)
        assert round(problem.params["outlier_fraction"] * n) == m
        beta, *_ = np.linalg.lstsq(X[m:], y[m:], rcond=None)
        distance = np.abs(y - X @ beta) / problem.params["noise_scale"]
        assert np.all(distance[:m] > 5) and np.all(distance[m:] < 5)
    assert spec.check_params({"outlier_fraction": 1.5})  # a fraction lies in [0, 1]


def models_of(config: dict) -> set[str]:
    """The models whose cells a config expands into."""
    return {cell.model for cell in matrix.expand(config).cells}


def test_reference_model_set_selects_the_models_without_an_oracle_and_quick_excludes_them():
    reference = models_of({"models": "reference", "backends": ["numpyro"]})
    closed_form = models_of({"models": "closed_form", "backends": ["numpyro"]})
    assert set(NEW_MODELS) <= reference
    assert all(registry.get(m).oracle is None for m in reference)
    assert reference.isdisjoint(closed_form) and reference | closed_form == set(registry.names())
    assert matrix.load("quick")["models"] == "closed_form"


def test_references_profile_covers_the_new_models_with_their_guides_and_two_seeds():
    config = matrix.load("references")
    cells = matrix.expand(config).cells
    covered = {(c.model, c.backend, c.guide) for c in cells}
    for name in NEW_MODELS:
        for guide in config["guides"]:  # every listed family, on every backend that fits it
            spec = registry.get(name)
            if guide not in spec.guides:
                continue
            fitting = {
                b
                for b in config["backends"]
                if backends.get(b).unsupported(spec, spec.sites(spec.params()), guide) is None
            }
            assert fitting and {(name, b, guide) for b in fitting} <= covered
    assert {c.seed for c in cells} == {0, 1}
    fixed = {c.data_seed for c in cells if registry.get(c.model).fixed_data}
    assert fixed == {0}  # a fixed data set is one problem, whatever the seed
    assert {c.data_seed for c in cells if c.model == "robust_regression"} == {0, 1}


def test_a_model_needs_no_numpy_log_joint():
    from dataclasses import replace

    spec = replace(registry.get("robust_regression"), log_joint=None)
    assert spec.log_joint is None and spec.check_params() == []


@pytest.mark.parametrize("name", NEW_MODELS)
def test_log_joints_agree_where_the_reference_posterior_lies(name):
    """At the committed NUTS reference's posterior mean and one sd either side of it (every
    coordinate, ``models/<name>/reference.json``): the region the fits and the estimators work in,
    not only the prior's. Pyro, NumPyro and NumPy agree within the contract's 1e-6 nats."""
    import json
    from importlib import resources

    from ppl_suite.conformance import log_joint_conformance
    from ppl_suite.estimators.coordinates import coordinate_names

    problem = Problem.build(name, data_seed=0)
    summary = json.loads(resources.files("models").joinpath(name, "reference.json").read_text())
    names = coordinate_names(problem.sites)
    assert set(names) == set(summary["latents"])  # the reference covers every latent coordinate
    points = []
    for shift in (-1.0, 0.0, 1.0):
        flat = [summary[c]["mean"] + shift * summary[c]["sd"] for c in names]
        latents, start = {}, 0
        for site in problem.sites:
            latents[site.name] = np.reshape(flat[start : start + site.size], (1, *site.shape))
            start += site.size
        points.append(latents)
    batch = {site.name: np.concatenate([p[site.name] for p in points]) for site in problem.sites}
    result = log_joint_conformance(problem, batch)
    assert result.implementations >= 2 and result.ok, result
