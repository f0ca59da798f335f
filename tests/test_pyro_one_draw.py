"""Pyro models written for one draw (``a[group]`` inside a plate): the Pyro backend and target detect
that draws on the left of every latent do not broadcast and go one draw at a time; where both paths
run, they give the same numbers."""

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from ppl_suite import registry
from ppl_suite.backends import pyro_draws
from ppl_suite.backends.base import SVIConfig
from ppl_suite.backends.pyro import PyroBackend, as_torch, make_guide
from ppl_suite.problem import Problem
from ppl_suite.spec import ModelSpec, Site
from ppl_suite.targets.pyro_target import PyroTarget

GROUPS, N = 6, 24
GROUP = np.arange(N) % GROUPS
Y = np.random.default_rng(1).normal(np.arange(GROUPS)[GROUP] * 0.3, 1.0)
SITES = (Site("mu"), Site("sigma", (), "positive"), Site("a", (GROUPS,)))


def indexed_from_the_left(data, params):
    """The varying-intercept model as Pyro's docs write it: a[group] reads a's leftmost axis."""
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(2.0))
    with pyro.plate("groups", GROUPS):
        a = pyro.sample("a", dist.Normal(mu, sigma))
    with pyro.plate("data", N):
        pyro.sample("y", dist.Normal(a[data["group"]], 1.0), obs=data["y"])


def indexed_from_the_right(data, params):
    """The same model written to broadcast: a[..., group] reads a's rightmost axis."""
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(2.0))
    with pyro.plate("groups", GROUPS):
        a = pyro.sample("a", dist.Normal(mu, sigma))
    with pyro.plate("data", N):
        pyro.sample("y", dist.Normal(a[..., data["group"]], 1.0), obs=data["y"])


def with_a_deterministic_site(data, params):
    """Broadcasts, and records a deterministic summary that mixes the draws when vectorized."""
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    with pyro.plate("groups", GROUPS):
        a = pyro.sample("a", dist.Normal(mu, 1.0))
    pyro.deterministic("a_mean", a.mean())
    with pyro.plate("data", N):
        pyro.sample("y", dist.Normal(a[..., data["group"]], 1.0), obs=data["y"])


def _problem(name: str, model) -> Problem:
    spec = ModelSpec(
        name=name,
        description="varying intercepts",
        defaults={},
        sites=lambda params: SITES,
        generate_data=lambda rng, params: {"group": GROUP, "y": Y},
        guides=("mean_field", "full_rank", "auto_normal"),
        problem_size=lambda params: 2 * N + GROUPS + 2,
        fixed_data=True,
    )
    registry.register(spec, pyro_model=model, replace=True)
    return Problem.build(name, 0)


@pytest.fixture(scope="module")
def left() -> Problem:
    return _problem("one_draw_left", indexed_from_the_left)


@pytest.fixture(scope="module")
def right() -> Problem:
    return _problem("one_draw_right", indexed_from_the_right)


def _draws(problem: Problem, n: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"mu": rng.normal(size=n), "sigma": rng.uniform(0.5, 2, n), "a": rng.normal(size=(n, GROUPS))}


def test_the_vectorized_draws_of_a_left_indexing_model_are_detected_as_not_broadcasting(left, right):
    data = as_torch(left.data)
    assert pyro_draws.check_draws(indexed_from_the_left, data, {}) == pyro_draws.Draws(pyro_draws.LOOP, 1)
    assert pyro_draws.check_draws(indexed_from_the_right, data, {}).path == pyro_draws.VECTORIZED
    # a deterministic site has density 0: its shape does not stop vectorization
    assert pyro_draws.check_draws(with_a_deterministic_site, data, {}).path == pyro_draws.VECTORIZED


def test_every_path_gives_the_log_joint_of_one_trace_per_draw(left, right, monkeypatch):
    draws = _draws(right)
    target = PyroTarget(right)
    assert target.draws_path == pyro_draws.VECTORIZED
    values = as_torch(draws)
    by_path = {path: target._evaluate(values, path) for path in (pyro_draws.VECTORIZED, pyro_draws.VMAP)}
    loop = target._evaluate(values, pyro_draws.LOOP)
    for found in by_path.values():
        np.testing.assert_allclose(found, loop, rtol=1e-12, atol=1e-12)
    left_target = PyroTarget(left)
    assert left_target.draws_path == pyro_draws.VMAP
    np.testing.assert_allclose(left_target.log_joint(draws), loop, rtol=1e-12, atol=1e-12)
    monkeypatch.setattr(pyro_draws, "NUMBERS_PER_CHUNK", 3 * right.spec.problem_size(right.params))
    for found in (target.log_joint(draws), left_target.log_joint(draws)):  # in chunks of 3 draws
        np.testing.assert_allclose(found, loop, rtol=1e-12, atol=1e-12)


def test_the_library_elbo_one_particle_at_a_time_equals_the_vectorized_one(right):
    """One particle per batch: both paths draw the same numbers from the same seed."""
    phi = {
        "mu.loc": np.array(0.5),
        "mu.log_scale": np.array(-1.0),
        "sigma.loc": np.array(0.1),
        "sigma.log_scale": np.array(-1.0),
        "a.loc": np.linspace(-1.0, 1.0, GROUPS),
        "a.log_scale": np.full(GROUPS, -1.0),
    }
    guide, data, estimates = make_guide(right, "mean_field", phi), as_torch(right.data), {}
    for path in (pyro_draws.VECTORIZED, pyro_draws.LOOP):
        pyro.get_param_store().clear()
        with torch.random.fork_rng(devices=[]), pytest.MonkeyPatch.context() as patch:
            torch.manual_seed(3)
            patch.setattr("ppl_suite.backends.pyro.ELBO_EVAL_BATCH", 1)
            patch.setattr("ppl_suite.backends.pyro.LOOP_EVAL_BATCH", 1)
            draws = pyro_draws.Draws(path, 1)
            estimates[path] = PyroBackend._library_elbo(
                indexed_from_the_right, guide, pyro.infer.Trace_ELBO, data, {}, 40, draws
            )
    vectorized, loop = estimates[pyro_draws.VECTORIZED], estimates[pyro_draws.LOOP]
    assert loop.value == pytest.approx(vectorized.value, rel=1e-12, abs=1e-12)
    assert loop.se == pytest.approx(vectorized.se, rel=1e-9)


@pytest.mark.parametrize("guide", ["mean_field", "auto_normal"])
def test_a_left_indexing_model_is_fitted_one_particle_at_a_time_and_says_so(left, guide):
    fit = PyroBackend().fit(left, guide, SVIConfig(steps=30, particles=2, eval_particles=40), 0)
    assert fit.draws_path == pyro_draws.LOOP
    assert np.isfinite(fit.losses).all() and fit.losses[-10:].mean() < fit.losses[:10].mean()
    assert np.isfinite(fit.library_elbo.value)


def test_fitting_one_particle_at_a_time_follows_the_vectorized_fit(right, monkeypatch):
    """One particle per step: the loop and the vectorized loss see the same draws, so the same fit."""
    config = SVIConfig(steps=10, particles=1, eval_particles=4)
    vectorized = PyroBackend().fit(right, "mean_field", config, 0)
    assert vectorized.draws_path == pyro_draws.VECTORIZED
    monkeypatch.setattr(
        "ppl_suite.backends.pyro.check_draws", lambda *args: pyro_draws.Draws(pyro_draws.LOOP, 1)
    )
    loop = PyroBackend().fit(right, "mean_field", config, 0)
    np.testing.assert_allclose(loop.losses, vectorized.losses, rtol=1e-12, atol=1e-12)
    for name, value in vectorized.phi.items():
        np.testing.assert_allclose(loop.phi[name], value, rtol=1e-12, atol=1e-12)
