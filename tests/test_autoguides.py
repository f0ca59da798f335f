"""The libraries' autoguides as guide families: fitted by Pyro and NumPyro, evaluated by the suite.

- every family fits and evaluates in both libraries (normal_normal; the flows, which need two
  coordinates, on bayes_linreg), and the library's own ELBO of its fit agrees with the suite's;
- log q of the suite's rendering equals the library's own density of the guide's draws (to 1e-8);
- matched initialization: Pyro's and NumPyro's AutoNormal reach the same ELBO within its SEs;
- full_rank with a diagonal Cholesky factor is mean_field's q (scalar and vector sites alike).
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pyro
import pytest
import torch
from numpyro import handlers
from pyro import poutine

from ppl_suite import backends, guides, registry
from ppl_suite.backends.base import SVIConfig
from ppl_suite.backends.numpyro import as_jax, autoguide_evaluation, set_up_autoguide, unflatten_phi
from ppl_suite.backends.numpyro import autoguide_phi as autoguide_phi_numpyro
from ppl_suite.backends.pyro import as_torch, build_autoguide
from ppl_suite.backends.pyro import autoguide_phi as autoguide_phi_pyro
from ppl_suite.cell import Cell
from ppl_suite.estimators.elbo import elbo
from ppl_suite.execute import execute
from ppl_suite.guides.autoguides import AUTOGUIDES, FLOWS, LAPLACE
from ppl_suite.problem import Problem
from ppl_suite.targets.build import target_for
from ppl_suite.targets.fitted_guide import FittedGuide

LIBRARIES = ("pyro", "numpyro")
TINY = SVIConfig(steps=30, eval_particles=1000)
FAST_CASES = [("auto_normal_matched", "pyro"), ("auto_multivariate_normal", "numpyro")]


def _model_for(family: guides.AutoGuide) -> str:
    return "bayes_linreg" if family.cls in FLOWS else "normal_normal"


def _fits_and_evaluates(family: guides.AutoGuide, library: str) -> None:
    record = execute(Cell(_model_for(family), library, family.name, svi=TINY, eval_samples=2000))
    row = record.row
    assert record.ok, row["error"]
    assert math.isfinite(row["elbo"]) and math.isfinite(row["kl"])
    se = math.hypot(row["elbo_se"], row["library_elbo_se"])
    assert abs(row["library_elbo"] - row["elbo"]) < 4 * se


@pytest.mark.parametrize(("name", "library"), FAST_CASES)
def test_autoguide_fits_and_its_library_elbo_agrees_with_the_suites(name, library):
    _fits_and_evaluates(guides.get(name), library)


@pytest.mark.slow
@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("family", AUTOGUIDES, ids=[g.name for g in AUTOGUIDES])
def test_every_autoguide_family_fits_and_evaluates_in_both_libraries(family, library):
    _fits_and_evaluates(family, library)


def _library_draws(problem: Problem, family: guides.AutoGuide, library: str, phi, draws: int):
    """Draws z of the library's own fitted guide and the library's log density of each draw (the sum
    of the guide trace's log probabilities: q_u and the bijections' Jacobians)."""
    if library == "pyro":
        model = registry.implementation(problem.spec.name, "pyro")
        data, params = as_torch(problem.data), as_torch(problem.params)
        pyro.get_param_store().clear()
        guide = build_autoguide(family, model, problem.sites, data, params)
        guide.load_state_dict({k.removeprefix("pyro."): torch.as_tensor(v) for k, v in phi.items()})
        if family.cls == LAPLACE:
            guide = guide.laplace_approximation(data, params)
        traces = [poutine.trace(guide).get_trace(data, params) for _ in range(draws)]
        pyro.get_param_store().clear()
        latents = {
            s.name: np.stack([t.nodes[s.name]["value"].detach().numpy() for t in traces])
            for s in problem.sites
        }
        return latents, np.array([t.log_prob_sum().item() for t in traces])
    model = registry.implementation(problem.spec.name, "numpyro")
    guide, initial = set_up_autoguide(problem, family, model)
    guide, params = autoguide_evaluation(problem, family, model, guide, unflatten_phi(phi, initial))
    traces = [
        handlers.trace(handlers.seed(handlers.substitute(guide, data=params), k)).get_trace(
            problem.data, as_jax(problem.params)
        )
        for k in jax.random.split(jax.random.PRNGKey(1), draws)
    ]
    latents = {s.name: np.stack([np.asarray(t[s.name]["value"]) for t in traces]) for s in problem.sites}
    densities = [
        sum(
            float(site["fn"].log_prob(site["value"]).sum()) for site in t.values() if site["type"] == "sample"
        )
        for t in traces
    ]
    return latents, np.array(densities)


# the variants share the density code; the Laplace family's q is a Normal like AutoMultivariateNormal's
# (its own path is checked through its library ELBO above: at a start that is not a MAP its Hessian
# need not be positive definite)
FAST_LOG_Q = {
    ("normal_inverse_gamma", "auto_multivariate_normal", "pyro"),
    ("normal_inverse_gamma", "auto_multivariate_normal", "numpyro"),
    ("dirichlet_categorical", "auto_normal", "pyro"),
}
LOG_Q_CASES = [
    pytest.param(
        model,
        family,
        library,
        id="/".join((model, family.name, library)),
        marks=() if (model, family.name, library) in FAST_LOG_Q else pytest.mark.slow,
    )
    for model in ("normal_inverse_gamma", "dirichlet_categorical")
    for family in AUTOGUIDES
    if (not family.matched or family.cls in FLOWS) and family.cls != LAPLACE
    for library in LIBRARIES
]


def _initial_phi(problem: Problem, family: guides.AutoGuide, library: str) -> dict[str, np.ndarray]:
    """The library's starting parameters (random locations and weights under its defaults)."""
    if library == "pyro":
        model = registry.implementation(problem.spec.name, "pyro")
        pyro.set_rng_seed(0)
        data, params = as_torch(problem.data), as_torch(problem.params)
        guide = build_autoguide(family, model, problem.sites, data, params)
        phi = autoguide_phi_pyro(guide)
        pyro.get_param_store().clear()
        return phi
    model = registry.implementation(problem.spec.name, "numpyro")
    return autoguide_phi_numpyro(set_up_autoguide(problem, family, model)[1])


@pytest.mark.parametrize(("model", "family", "library"), LOG_Q_CASES)
def test_log_q_equals_the_librarys_density_of_its_own_draws(model, family, library):
    problem = Problem.build(model, 0)
    phi = _initial_phi(problem, family, library)
    latents, library_log_q = _library_draws(problem, family, library, phi, draws=5)
    log_q = FittedGuide(problem, family.name, phi).log_q(latents)
    np.testing.assert_allclose(log_q, library_log_q, rtol=0, atol=1e-8 * max(1.0, np.max(np.abs(log_q))))


def _matched_elbos(model: str, config: SVIConfig) -> list:
    problem = Problem.build(model, 0)
    target = target_for(problem)
    out = []
    for library in LIBRARIES:
        fit = backends.get(library).fit(problem, "auto_normal_matched", config, 0)
        out.append(elbo(target, FittedGuide(problem, "auto_normal_matched", dict(fit.phi)), 20_000, 1))
    return out


def _agree_within_4_se(pyro_elbo, numpyro_elbo) -> None:
    se = math.hypot(pyro_elbo.se, numpyro_elbo.se)
    assert abs(pyro_elbo.value - numpyro_elbo.value) < 4 * se


def test_matched_auto_normal_agrees_across_libraries_on_normal_normal():
    _agree_within_4_se(*_matched_elbos("normal_normal", SVIConfig(steps=1500)))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["normal_normal", "bayes_linreg"])
def test_matched_auto_normal_agrees_across_libraries_at_the_default_steps(model):
    _agree_within_4_se(*_matched_elbos(model, SVIConfig()))


def test_full_rank_with_a_diagonal_factor_is_mean_field():
    """One Gaussian over (mu, tau, eta) with L diagonal: mean_field's q, sites concatenated in order."""
    problem = Problem.build("eight_schools_noncentered", 0)
    assert guides.get("full_rank").unsupported(problem.sites) is None
    rng = np.random.default_rng(0)
    loc = {s.name: np.asarray(rng.normal(size=s.shape)) for s in problem.sites}
    log_scale = {s.name: np.asarray(0.3 * rng.normal(size=s.shape)) for s in problem.sites}
    mean_field = FittedGuide(
        problem,
        "mean_field",
        {f"{n}.{k}": v[n] for n in loc for k, v in (("loc", loc), ("log_scale", log_scale))},
    )
    flat_loc = np.concatenate([np.atleast_1d(loc[s.name]) for s in problem.sites])
    flat_log_scale = np.concatenate([np.atleast_1d(log_scale[s.name]) for s in problem.sites])
    full_rank = FittedGuide(
        problem,
        "full_rank",
        {"_joint.loc": flat_loc, "_joint.log_diag": flat_log_scale, "_joint.tril": np.zeros((10, 10))},
    )
    z = mean_field.sample(0, 100)
    np.testing.assert_allclose(full_rank.log_q(z), mean_field.log_q(z), rtol=1e-12)
    assert full_rank.sample(0, 3)["tau"].shape == (3,)
