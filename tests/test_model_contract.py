"""Contract tests run over every registered model: a new model is tested by being registered.

Per-model checks that need model-specific maths (evidence by dense integration or enumeration for
larger models) live in tests/models/.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import jax
import numpy as np
import pyro
import pyro.poutine as poutine
import pytest
import torch
from numpyro.infer.util import log_density
from scipy import integrate

import models
from ppl_suite import registry
from ppl_suite.backends.numpyro import as_jax
from ppl_suite.backends.pyro import as_torch
from ppl_suite.guides.base import unconstrained_shape
from ppl_suite.problem import Problem
from ppl_suite.spec import MAX_PROBLEM_SIZE
from tests.latents import random_latents, take, transform

MODELS = models.names()
WITH_ORACLE = [name for name in MODELS if models.get(name).oracle is not None]


def pyro_log_joint(problem: Problem, latents) -> float:
    model = registry.implementation(problem.spec.name, "pyro")
    pyro.get_param_store().clear()
    conditioned = poutine.condition(model, data=as_torch({k: np.asarray(v) for k, v in latents.items()}))
    trace = poutine.trace(conditioned).get_trace(as_torch(problem.data), as_torch(problem.params))
    return float(trace.log_prob_sum().detach())


def numpyro_log_joints(problem: Problem, draws: Sequence[Mapping[str, np.ndarray]]) -> np.ndarray:
    """NumPyro's log p(x, z) at each of ``draws``, through one compiled function of the latents (as
    NumPyro's inference evaluates it): one compilation serves every draw, where evaluating the model
    op by op compiles each of its operations."""
    model = registry.implementation(problem.spec.name, "numpyro")
    args = (as_jax(problem.data), as_jax(problem.params))
    log_joint = jax.jit(lambda values: log_density(model, args, {}, values)[0])
    return np.array([float(log_joint(as_jax({k: np.asarray(v) for k, v in z.items()}))) for z in draws])


@pytest.mark.parametrize("name", MODELS)
def test_pyro_numpyro_and_numpy_log_joints_agree(name):
    """Every implementation of log p(x, z) a model has (Pyro, NumPyro, the optional NumPy one) gives the
    same value, to 1e-6 nats, at random latents."""
    problem = Problem.build(name, data_seed=3)
    latents = random_latents(problem.sites, np.random.default_rng(0), 20)
    draws = [take(latents, i) for i in range(20)]
    values = {}
    if registry.implementation(name, "pyro") is not None:
        values["pyro"] = np.array([pyro_log_joint(problem, z) for z in draws])
    if registry.implementation(name, "numpyro") is not None:
        values["numpyro"] = numpyro_log_joints(problem, draws)
    if problem.spec.log_joint is not None:
        values["numpy"] = problem.spec.log_joint(latents, problem.data, problem.params)
    assert len(values) >= 2, f"{name} has one implementation of its log joint: nothing to compare"
    (first, reference), *others = values.items()
    assert reference.shape == (20,) and np.all(np.isfinite(reference))
    for source, value in others:
        np.testing.assert_allclose(value, reference, rtol=0, atol=1e-6, err_msg=f"{source} vs {first}")


@pytest.mark.parametrize("name", WITH_ORACLE)
def test_bayes_rule_log_evidence_is_log_joint_minus_log_posterior(name):
    problem = Problem.build(name, data_seed=1)
    exact = problem.exact()
    rng = np.random.default_rng(1)
    for latents in (exact.sample(rng, 20), random_latents(problem.sites, rng, 20, spread=0.5)):
        log_joint = problem.spec.log_joint(latents, problem.data, problem.params)
        implied = log_joint - exact.log_density(latents)
        np.testing.assert_allclose(implied, exact.log_evidence, rtol=1e-12, atol=1e-8)


@pytest.mark.parametrize("name", WITH_ORACLE)
def test_log_evidence_matches_numerical_integration_in_low_dimension(name):
    """log p(x) = log int p(x, T(u)) |det dT/du| du over the unconstrained space (adaptive quadrature,
    <= 2 dims)."""
    problem = Problem.build(name, data_seed=2)
    sites = problem.sites
    dims = sum(int(np.prod(unconstrained_shape(s), dtype=int)) for s in sites)
    if dims > 2 or any(s.support == "integer" for s in sites):
        pytest.skip(f"{dims} unconstrained dimensions: checked in tests/models/ instead")
    exact = problem.exact()
    mean = np.concatenate(
        [
            np.atleast_1d(transform(s).inv(np.asarray(m)))
            for s, m in zip(sites, exact.mean().values(), strict=True)
        ]
    )

    def log_integrand(u: np.ndarray) -> np.ndarray:
        """log p(x, T(u)) + log |det dT/du| at each row of ``u`` (points, dims)."""
        latents, log_jac, offset = {}, np.zeros(len(u)), 0
        for site in sites:
            shape = unconstrained_shape(site)
            size = int(np.prod(shape, dtype=int))
            chunk = u[:, offset : offset + size].reshape(len(u), *shape)
            offset += size
            t = transform(site)
            value = t(chunk)
            log_jac += np.asarray(t.log_abs_det_jacobian(chunk, value)).reshape(len(u), -1).sum(axis=1)
            latents[site.name] = np.asarray(value)
        return np.asarray(problem.spec.log_joint(latents, problem.data, problem.params)) + log_jac

    shift = float(log_integrand(mean[None])[0])
    width = 12 * np.sqrt(np.maximum(np.diag(exact.covariance()), 1e-12)).max() + 1.0
    box = [(m - width, m + width) for m in mean]
    if dims == 1:
        value, _ = integrate.quad(
            lambda a: np.exp(log_integrand(np.array([[a]]))[0] - shift), *box[0], points=[mean[0]], limit=200
        )
    else:  # adaptive Gauss-Kronrod on the product grid, the integrand evaluated a region's points at once
        result = integrate.cubature(
            lambda points: np.exp(log_integrand(points) - shift),
            *np.transpose(box),
            atol=1e-12,
            rtol=1e-10,
        )
        assert result.status == "converged", result.error
        value = float(result.estimate)
    assert np.log(value) + shift == pytest.approx(exact.log_evidence, abs=1e-6)


@pytest.mark.parametrize("name", WITH_ORACLE)
def test_posterior_moments_match_its_own_samples_within_4_se(name):
    problem = Problem.build(name, data_seed=4)
    exact = problem.exact()
    n = 20_000
    draws = exact.sample(np.random.default_rng(4), n)
    flat = np.concatenate([np.asarray(draws[s.name], float).reshape(n, -1) for s in problem.sites], axis=1)
    mean = np.concatenate([np.ravel(exact.mean()[s.name]) for s in problem.sites])
    cov = exact.covariance()
    assert np.all(np.abs(flat.mean(0) - mean) <= 4 * np.sqrt(np.diag(cov) / n))
    centred = flat - mean
    second = centred.T @ centred / n  # sample covariance about the exact mean
    fourth = (centred**2).T @ (centred**2) / n
    se = np.sqrt(np.maximum(fourth - second**2, 0.0) / (n - 1))
    assert np.all(np.abs(second - cov) <= 4 * se + 1e-12)


@pytest.mark.parametrize("name", MODELS)
def test_data_generator_is_seeded_and_fixed_data_ignore_the_seed(name):
    spec = models.get(name)
    params = spec.params()
    first, again, other = spec.data(5, params), spec.data(5, params), spec.data(6, params)
    assert first.keys() == again.keys() == other.keys() and first
    for key in first:
        assert isinstance(first[key], np.ndarray)
        np.testing.assert_array_equal(first[key], again[key])
    changed = any(not np.array_equal(first[k], other[k]) for k in first)
    assert changed != spec.fixed_data  # simulated data change with the seed, a fixed data set never does


@pytest.mark.parametrize("name", MODELS)
def test_every_declared_guide_family_exists_and_initialises(name):
    from ppl_suite import guides

    problem = Problem.build(name, 0)
    for guide in problem.spec.guides:
        family = guides.get(guide)
        assert family.unsupported(problem.sites) is None, guide
        phi = family.init_params(problem.sites, problem.data, problem.params)
        assert all(np.all(np.isfinite(v)) for v in phi.values())


@pytest.mark.parametrize("name", MODELS)
def test_defaults_lie_in_their_domains_and_problem_size_counts_data_and_latents(name):
    spec = models.get(name)
    assert list(spec.domains) == list(spec.defaults)
    assert spec.check_params() == []
    params = spec.params()
    data = spec.data(0, params)
    counted = sum(np.size(v) for v in data.values()) + sum(site.size for site in spec.sites(params))
    assert counted <= spec.problem_size(params) <= MAX_PROBLEM_SIZE


def _first_entry_replaced(value, new):
    """A nested tuple like ``value`` whose first scalar is ``new``."""
    if isinstance(value, tuple | list):
        return (_first_entry_replaced(value[0], new), *value[1:])
    return new


@pytest.mark.parametrize("name", MODELS)
def test_no_numeric_parameter_accepts_a_boolean_or_a_non_finite_value(name):
    spec = models.get(name)
    numeric = {p: d for p, d in spec.domains.items() if d.kind in ("int", "real", "array")}
    assert numeric
    for param, domain in numeric.items():
        for bad in (True, math.nan, math.inf):
            value = _first_entry_replaced(spec.defaults[param], bad)
            (problem,) = spec.check_params({param: value})
            assert problem.startswith(f"model {name!r}: {param} must be {domain}, got "), problem


def test_unknown_model_names_the_valid_ones():
    with pytest.raises(KeyError, match=r"valid: .*normal_normal"):
        models.get("no_such_model")


def test_unknown_parameter_override_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"valid: .*noise_scale"):
        models.get("normal_normal").params({"noise": 1.0})


def test_user_model_can_be_registered_without_editing_the_package():
    from dataclasses import replace

    from models.normal_normal import numpyro_impl, pyro_impl

    spec = replace(models.get("normal_normal"), name="my_normal", module="")
    models.register(spec, pyro_model=pyro_impl.model, numpyro_model=numpyro_impl.model)
    assert "my_normal" in models.names()
    assert registry.implementation("my_normal", "pyro") is pyro_impl.model
    with pytest.raises(ValueError, match="already registered"):
        models.register(spec)
    assert torch.get_default_dtype() == torch.float64
