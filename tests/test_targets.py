"""The Target adapters agree with each other: NumPyro (compiled, the pipeline's route), the NumPy
oracle (the cross-check) and Pyro (conformance), and the estimators import no PPL."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import models
from ppl_suite import registry
from ppl_suite.estimators.draws import guide_draws
from ppl_suite.problem import Problem
from ppl_suite.targets.numpyro_target import NumPyroTarget
from ppl_suite.targets.oracle_target import OracleTarget
from ppl_suite.targets.pyro_target import PyroTarget
from tests.latents import random_latents
from tests.test_estimators_support import imperfect_guide

BOTH = [n for n in models.names() if registry.implementation(n, "numpyro") is not None]
CONTINUOUS = [n for n in BOTH if models.get(n).oracle is not None and not any(
    s.support == "integer" for s in models.get(n).sites(models.get(n).defaults))]  # fmt: skip
PYRO = [n for n in BOTH if registry.implementation(n, "pyro") is not None]


@pytest.mark.parametrize("model", CONTINUOUS)
def test_importance_weights_through_jax_equal_the_numpy_oracle_route_to_1e_9(model):
    """The same guide draws, log p(x, z) by the compiled NumPyro target and by the model's NumPy
    formula: every log weight agrees to 1e-9."""
    problem = Problem.build(model, 0)
    guide = imperfect_guide(problem)
    jax_route = guide_draws(NumPyroTarget(problem), guide, 3000, seed=1)
    numpy_route = guide_draws(OracleTarget(problem), guide, 3000, seed=1)
    np.testing.assert_array_equal(jax_route.log_q, numpy_route.log_q)  # same draws, same q
    np.testing.assert_allclose(jax_route.log_w, numpy_route.log_w, rtol=0, atol=1e-9)


@pytest.mark.parametrize("model", BOTH)
def test_numpyro_and_oracle_log_joints_agree_at_any_latents_discrete_included(model):
    problem = Problem.build(model, 0)
    latents = random_latents(problem.sites, np.random.default_rng(2), 700, spread=0.5)  # two batches
    jax_route, numpy_route = (
        NumPyroTarget(problem).log_joint(latents),
        OracleTarget(problem).log_joint(latents),
    )
    scale = 1.0 + np.abs(numpy_route).max()
    np.testing.assert_allclose(jax_route, numpy_route, rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("model", PYRO)
def test_pyro_target_log_joint_agrees_with_numpyro(model):
    problem = Problem.build(model, 1)
    latents = random_latents(problem.sites, np.random.default_rng(3), 6, spread=0.5)
    pyro_route, numpyro_route = (
        PyroTarget(problem).log_joint(latents),
        NumPyroTarget(problem).log_joint(latents),
    )
    scale = 1.0 + np.abs(numpyro_route).max()
    np.testing.assert_allclose(pyro_route, numpyro_route, rtol=0, atol=1e-12 * scale)


def test_pyro_target_sees_learned_theta_and_says_why_a_discrete_model_has_no_gradients():
    problem = Problem.build("gaussian_mixture", 0).with_params({"logits": np.array([2.0, 0.0, -2.0])})
    target = PyroTarget(problem)
    latents = random_latents(problem.sites, np.random.default_rng(4), 3)
    np.testing.assert_allclose(target.log_joint(latents), problem.spec.log_joint(latents, problem.data,
                               problem.params), rtol=0, atol=1e-10)  # fmt: skip
    assert PyroTarget(Problem.build("normal_normal", 0)).continuous_reason() is None  # the torch bridge
    assert "discrete latent sites" in target.continuous_reason()
    with pytest.raises(ValueError, match="no unconstrained space"):
        target.sample_prior(None, 2)


def test_oracle_target_delegates_the_unconstrained_space_to_the_numpyro_target():
    problem = Problem.build("beta_bernoulli", 0)
    oracle, numpyro_target = OracleTarget(problem), NumPyroTarget(problem)
    latents = problem.exact().sample(np.random.default_rng(5), 4)
    assert oracle.dim == numpyro_target.dim
    np.testing.assert_array_equal(oracle.unconstrain(latents), numpyro_target.unconstrain(latents))
    discrete = OracleTarget(Problem.build("gaussian_mixture", 0))
    with pytest.raises(ValueError, match="discrete latent sites"):
        discrete.unconstrain({"z": np.zeros((1, 50))})


BLOCKED_IMPORT = """
import importlib, pkgutil, sys
for name in ("torch", "pyro", "numpyro"):
    sys.modules[name] = None  # "import torch" now raises ImportError
import ppl_suite.estimators as package
names = [info.name for info in pkgutil.iter_modules(package.__path__)]
for name in names:
    importlib.import_module(f"ppl_suite.estimators.{name}")
print(len(names), sorted(package.names()))
"""


def test_every_estimator_module_imports_with_torch_pyro_and_numpyro_blocked():
    """In a clean interpreter (nothing imported yet), with the three libraries made unimportable,
    every module of ppl_suite.estimators imports and discovery finds every plug-in."""
    result = subprocess.run(
        [sys.executable, "-c", BLOCKED_IMPORT], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    count, _, found = result.stdout.strip().partition(" ")
    assert int(count) >= 10 and "'importance'" in found and "'laplace'" in found
