"""A model that exists only in Pyro gets the NumPyro route's reference: its unconstrained log density
reaches JAX through a torch bridge (``targets.torch_density``), so NUTS (``references.nuts``) and AIS
run on it. The bridge gives the NumPyro target's values and gradients at the same u, takes a batch of
points in one torch call, and works for a model written for one draw (``a[group]``); a Pyro-only
conjugate model's reference evidence and a diagnosed Pyro AutoNormal fit's log p(x) lie within 4 SE
of the closed form."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from scipy.stats import multivariate_normal

from ppl_suite import registry
from ppl_suite.annealing import hmc_step
from ppl_suite.backends import pyro_draws
from ppl_suite.numerics import enable_float64
from ppl_suite.problem import Problem
from ppl_suite.references import NUTSSettings, nuts, reference_for
from ppl_suite.references.settings import settings_for
from ppl_suite.spec import ModelSpec, Site
from ppl_suite.targets.numpyro_target import NumPyroTarget
from ppl_suite.targets.pyro_target import PyroTarget
from ppl_suite.targets.torch_compiled import FROZEN_REASON
from ppl_suite.targets.torch_density import PYRO_STATE_LOCK

GROUPS, N = 4, 12
GROUP = np.arange(N) % GROUPS
Y = np.random.default_rng(1).normal(np.arange(GROUPS)[GROUP] * 0.3, 1.0)
PRIOR_SD, NOISE_SD = 2.0, 1.0
CONJUGATE_Y = np.random.default_rng(2).normal(1.0, NOISE_SD, 8)
# small NUTS sizes for a 1-latent model: the gates stay (R-hat, ESS over 4 chains, no divergence)
SMALL_NUTS = NUTSSettings(chains=4, warmup=300, draws=300, max_draws=600, ess_min=400)


def one_draw(data, params):
    """Written for one draw: a[group] reads a's leftmost axis."""
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(2.0))
    with pyro.plate("groups", GROUPS):
        a = pyro.sample("a", dist.Normal(mu, sigma))
    with pyro.plate("data", N):
        pyro.sample("y", dist.Normal(a[data["group"]], 1.0), obs=data["y"])


def broadcasting(data, params):
    """The same model written to broadcast: a[..., group]."""
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(2.0))
    with pyro.plate("groups", GROUPS):
        a = pyro.sample("a", dist.Normal(mu, sigma))
    with pyro.plate("data", N):
        pyro.sample("y", dist.Normal(a[..., data["group"]], 1.0), obs=data["y"])


def conjugate(data, params):
    """mu ~ N(0, PRIOR_SD^2), y_i ~ N(mu, NOISE_SD^2): p(y) = N(y; 0, PRIOR_SD^2 1 1^T + NOISE_SD^2 I)."""
    mu = pyro.sample("mu", dist.Normal(0.0, PRIOR_SD))
    with pyro.plate("data", len(data["y"])):
        pyro.sample("y", dist.Normal(mu, NOISE_SD), obs=data["y"])


def conjugate_log_evidence() -> float:
    n = len(CONJUGATE_Y)
    cov = PRIOR_SD**2 * np.ones((n, n)) + NOISE_SD**2 * np.eye(n)
    return float(multivariate_normal(np.zeros(n), cov).logpdf(CONJUGATE_Y))


def _pyro_only(name: str, model, sites: tuple[Site, ...], data: dict) -> Problem:
    spec = ModelSpec(
        name=name,
        description="a Pyro-only test model",
        defaults={},
        sites=lambda params: sites,
        generate_data=lambda rng, params: dict(data),
        guides=("mean_field",),
        problem_size=lambda params: 2 * sum(np.size(v) for v in data.values()) + sum(s.size for s in sites),
        fixed_data=True,
    )
    registry.register(spec, pyro_model=model, replace=True)
    return Problem.build(name, 0)


def _points(dim: int, n: int = 6) -> jax.Array:
    """n points u ~ N(0, 0.8^2 I) in R^dim, drawn by NumPy: no sampler compiled for each shape."""
    enable_float64()
    return jnp.asarray(np.random.default_rng(7).normal(0.0, 0.8, (n, dim)))


def test_the_pyro_bridge_gives_the_numpyro_targets_log_density_and_gradient_at_the_same_u():
    """On a simplex site (stick-breaking, d = K - 1): the positive sites' exp is checked below."""
    problem = Problem.build("dirichlet_categorical", 0)
    numpyro_target, pyro_target = NumPyroTarget(problem), PyroTarget(problem)
    assert pyro_target.dim == numpyro_target.dim
    u = _points(pyro_target.dim)
    for function in (lambda t: jax.value_and_grad(t.log_joint_u), lambda t: t.prior_and_likelihood):
        expected, found = (jax.jit(jax.vmap(function(t)))(u) for t in (numpyro_target, pyro_target))
        for a, b in zip(jax.tree.leaves(found), jax.tree.leaves(expected), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-9)
    expected = jax.jit(jax.vmap(jax.grad(numpyro_target.log_joint_u)))(u)
    one = jax.grad(lambda v: sum(pyro_target.prior_and_likelihood(v)))(u[0])  # the pair's, not vmapped
    np.testing.assert_allclose(np.asarray(one), np.asarray(expected[0]), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(pyro_target.unconstrain(pyro_target.constrain(u)), np.asarray(u), atol=1e-12)


def test_a_one_draw_model_through_the_bridge_equals_its_broadcasting_twin():
    sites = (Site("mu"), Site("sigma", (), "positive"), Site("a", (GROUPS,)))
    data = {"group": GROUP, "y": Y}
    left = PyroTarget(_pyro_only("bridge_left", one_draw, sites, data))
    right = PyroTarget(_pyro_only("bridge_right", broadcasting, sites, data))
    assert (left.draws_path, right.draws_path) == (pyro_draws.VMAP, pyro_draws.VECTORIZED)
    u = _points(left.dim)
    for function in (lambda t: t.log_joint_u, lambda t: jax.grad(t.log_joint_u)):
        found, expected = (np.asarray(jax.jit(jax.vmap(function(t)))(u)) for t in (left, right))
        np.testing.assert_allclose(found, expected, rtol=1e-9, atol=1e-9)
    # log p(x, u) = log p(x, T(u)) + log |det dT/du|: sigma = exp(u_sigma), so its Jacobian is u_sigma
    latents = left.constrain(np.asarray(u))
    np.testing.assert_allclose(
        np.asarray(jax.vmap(left.log_joint_u)(u)), left.log_joint(latents) + np.asarray(u[:, 1]), rtol=1e-12
    )


def test_a_batch_of_points_reaches_torch_in_one_call_under_vmap(monkeypatch):
    calls = []
    parts = PyroTarget._unconstrained_parts

    def counted(self, u: torch.Tensor):
        calls.append(u.shape[0])
        return parts(self, u)

    monkeypatch.setattr(PyroTarget, "_unconstrained_parts", counted)
    # eager: every call runs the model (the compiled path replays a recording without calling it)
    target = PyroTarget(Problem.build("eight_schools_centered", 0), compiled=False)
    u = _points(target.dim, 16)
    jax.jit(jax.vmap(jax.value_and_grad(target.log_joint_u)))(u)[1].block_until_ready()
    assert calls == [16]  # NUTS' chains vectorized: one call per leapfrog step for every chain
    calls.clear()
    move = jax.jit(jax.vmap(hmc_step(target.prior_and_likelihood, 3), in_axes=(0, 0, None, None, None)))
    move(jax.random.split(jax.random.PRNGKey(0), 16), u, 0.5, 0.1, 1.0)[0].block_until_ready()
    assert calls == [16] * 4  # AIS' HMC move on 16 chains: the start and 3 leapfrog steps, each one call


def branching(data, params):
    """Python control flow on a latent's value: no recording can stand for both branches."""
    mu = pyro.sample("mu", dist.Normal(0.0, PRIOR_SD))
    scale = NOISE_SD if mu.detach() > 0 else 2 * NOISE_SD
    with pyro.plate("data", len(data["y"])):
        pyro.sample("y", dist.Normal(mu, scale), obs=data["y"])


def test_the_compiled_density_gives_the_eager_numbers_on_the_vectorized_and_vmap_paths():
    """Each batch shape is recorded the second time it is met and replayed after (``torch_compiled``):
    the values and gradients of NUTS' joint and AIS' two parts equal the eager path's to 1e-12 at the
    recorded points and at others of the same shape, for a one-draw model (both) and its broadcasting
    twin (the joint); through JAX too (NUTS' value and gradient, vmapped)."""
    sites = (Site("mu"), Site("sigma", (), "positive"), Site("a", (GROUPS,)))
    data = {"group": GROUP, "y": Y}
    pair, joint = 1, 3  # TorchDensity.evaluations: (pair values, pair with gradients, joint values, ...)
    for name, model, path, which in (
        ("compiled_left", one_draw, pyro_draws.VMAP, (pair, joint)),
        ("compiled_right", broadcasting, pyro_draws.VECTORIZED, (joint,)),
    ):
        problem = _pyro_only(name, model, sites, data)
        eager, compiled = PyroTarget(problem, compiled=False), PyroTarget(problem)
        assert compiled.draws_path == path
        for i in which:
            for seed in range(4):  # recorded at the second call, replayed on the third and fourth
                u = torch.randn(
                    5, compiled.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)
                )
                found, expected = compiled._density.evaluations[i](u), eager._density.evaluations[i](u)
                assert len(found) == len(expected) == (4 if i == pair else 2)  # values, gradients
                for a, b in zip(found, expected, strict=True):
                    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        assert compiled.density_path == "compiled" and eager.density_path == "eager: compilation off"
    nuts_callback = (jax.jit(jax.vmap(jax.value_and_grad(t.log_joint_u))) for t in (eager, compiled))
    u = _points(compiled.dim, 5)  # the shape recorded above: replayed
    for a, b in zip(*(jax.tree.leaves(f(u)) for f in nuts_callback), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-12)


def test_every_pyro_targets_torch_calls_share_one_lock_for_pyros_global_state():
    """Pyro's handler stack and parameter store are global: two targets (eager and compiled here)
    evaluated from JAX's callback threads serialize on one lock, the one ``PyroTarget``'s own traces
    take."""
    sites = (Site("mu"), Site("sigma", (), "positive"), Site("a", (GROUPS,)))
    problem = _pyro_only("shared_lock", one_draw, sites, {"group": GROUP, "y": Y})
    locks = {
        id(e._lock)
        for t in (PyroTarget(problem), PyroTarget(problem, compiled=False))
        for e in t._density.evaluations
    }
    assert locks == {id(PYRO_STATE_LOCK)}


def test_a_model_with_data_dependent_control_flow_stays_eager_and_says_why():
    problem = _pyro_only("compiled_branching", branching, (Site("mu"),), {"y": CONJUGATE_Y})
    eager, compiled = PyroTarget(problem, compiled=False), PyroTarget(problem)
    found_at, expected_at = (jax.jit(jax.vmap(jax.value_and_grad(t.log_joint_u))) for t in (compiled, eager))
    for u in ([[0.5], [1.0]], [[0.5], [1.0]], [[-0.5], [-1.0]]):  # both branches, same shape
        for a, b in zip(found_at(jnp.array(u)), expected_at(jnp.array(u)), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-12)
    assert compiled.density_path.startswith(f"eager: {FROZEN_REASON}")


@pytest.mark.slow  # NumPyro compiles NUTS' program anew for a host callback: 15 s or more
def test_nuts_runs_on_a_pyro_only_models_potential_and_keeps_its_sites_and_statistics():
    sites = (Site("mu"), Site("sigma", (), "positive"), Site("a", (GROUPS,)))
    problem = _pyro_only("nuts_left", one_draw, sites, {"group": GROUP, "y": Y})
    short = NUTSSettings(chains=2, warmup=30, draws=20, max_draws=20, max_tree_depth=3)  # shapes only
    run = nuts.run(problem, short, extend=False)
    shapes = {k: v.shape for k, v in run.draws.items()}
    assert shapes == {"mu": (2, 20), "sigma": (2, 20), "a": (2, 20, GROUPS)}
    assert run.deterministic == {} and np.all(run.draws["sigma"] > 0)
    assert run.density == "compiled"  # the leapfrog steps' batch shape was recorded and replayed
    assert set(run.stats) >= {"diverging", "energy", "n_steps", "tree_depth", "step_size", "lp"}
    assert all(v.shape[:2] == (2, 20) for v in run.stats.values())
    non_centered = nuts.run(problem, short, extend=False, non_centered=("a",))  # Pyro's LocScaleReparam
    assert {k: v.shape for k, v in non_centered.draws.items()} == shapes


@pytest.mark.slow
def test_a_pyro_only_conjugate_models_reference_matches_its_closed_form(tmp_path):
    problem = _pyro_only("pyro_only_conjugate", conjugate, (Site("mu"),), {"y": CONJUGATE_Y})
    reference = reference_for(problem, SMALL_NUTS, cache_dir=tmp_path)
    assert reference.gates.passed and reference.summary["mapped_from"] is None
    exact = conjugate_log_evidence()
    assert abs(reference.log_evidence - exact) <= 4 * reference.log_evidence_se
    precision = 1 / PRIOR_SD**2 + len(CONJUGATE_Y) / NOISE_SD**2
    mean = CONJUGATE_Y.sum() / NOISE_SD**2 / precision
    mu = reference.summary["mu"]
    assert abs(mu["mean"] - mean) <= 4 * mu["mcse_mean"]
    assert {"energy", "diverging", "tree_depth"} <= set(reference.idata.sample_stats)
    assert reference_for(problem, SMALL_NUTS, cache_dir=tmp_path).cached  # stored, then loaded


def test_the_laplace_estimator_does_not_apply_to_a_density_with_first_derivatives_only():
    from ppl_suite import estimators

    problem = Problem.build("normal_normal", 0)
    laplace = estimators.get("laplace")
    assert laplace.applies(NumPyroTarget(problem), None) is None
    assert "no Hessian" in laplace.applies(PyroTarget(problem), None)


def test_a_pyro_only_centered_site_is_sampled_non_centered_by_pyros_loc_scale_reparam():
    """Pyro's LocScaleReparam(0) on a: the sites are (mu, sigma, a_decentered), a = mu + sigma eta is
    read back exactly, and the density is the centered one in other coordinates:
    log p_nc(x, u_nc) = log p_c(x, u_c) + GROUPS log sigma (da/deta = sigma per group)."""
    from ppl_suite.references.remedies import centered_sites_of

    sites = (Site("mu"), Site("sigma", (), "positive"), Site("a", (GROUPS,)))
    problem = _pyro_only("pyro_only_centered", one_draw, sites, {"group": GROUP, "y": Y})
    assert centered_sites_of(problem) == ("a",)
    conjugate_problem = _pyro_only("pyro_only_plain", conjugate, (Site("mu"),), {"y": CONJUGATE_Y})
    assert centered_sites_of(conjugate_problem) == ()
    centered, non_centered = PyroTarget(problem), PyroTarget(problem, non_centered=("a",))
    assert [s.name for s in non_centered.sites] == ["mu", "sigma", "a_decentered"]
    assert non_centered.draws_path == pyro_draws.VMAP and non_centered.dim == centered.dim
    u = np.asarray(_points(non_centered.dim))
    eta = non_centered.constrain(u)
    latents = non_centered.original_sites(eta)
    np.testing.assert_array_equal(latents["mu"], eta["mu"])
    np.testing.assert_allclose(
        latents["a"], eta["mu"][:, None] + eta["sigma"][:, None] * eta["a_decentered"], rtol=1e-12, atol=1e-12
    )
    u_centered = centered.unconstrain(latents)
    found = np.asarray(jax.vmap(non_centered.log_joint_u)(u))
    expected = np.asarray(jax.vmap(centered.log_joint_u)(u_centered)) + GROUPS * np.log(eta["sigma"])
    np.testing.assert_allclose(found, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="not latent sites"):
        _ = PyroTarget(problem, non_centered=("b",)).sites


def test_a_pyro_only_models_divergences_lead_to_its_non_centered_form(monkeypatch):
    """NUTS replaced by runs with 4 divergent transitions: the second attempt samples the centered
    site a non-centered, as the NumPyro route's does."""
    from ppl_suite.references import progress
    from ppl_suite.references import reference as reference_module
    from ppl_suite.references.gates import GateResult, ReferenceGateError

    sites = (Site("mu"), Site("sigma", (), "positive"), Site("a", (GROUPS,)))
    problem = _pyro_only("pyro_only_failing", one_draw, sites, {"group": GROUP, "y": Y})
    coordinates = {"mu": {"r_hat": 1.0, "ess_bulk": 5000.0, "ess_tail": 5000.0}}
    failing = GateResult.of(coordinates, 4, SMALL_NUTS)
    calls = []

    def run(problem, settings, mapping=None, *, extend=True, non_centered=(), tell, expected=None):
        calls.append(non_centered)
        stats = {"diverging": np.zeros((settings.chains, settings.draws), bool)}
        return nuts.NUTSRun({}, {}, stats, {}, failing, 1.0, 1.0)

    monkeypatch.setattr(nuts, "run", run)
    with pytest.raises(ReferenceGateError) as raised:
        reference_module._sample(problem, SMALL_NUTS, progress.ignore, time.perf_counter())
    assert calls == [(), ("a",), ("a",)]  # as given, non-centered, then smaller steps as well
    assert "2. non-centered a (" in str(raised.value)


@pytest.mark.slow  # a default-size reference through the bridge: 10-30 minutes on a shared 2-core machine
def test_a_pyro_only_centered_eight_schools_passes_its_gates_with_defaults_by_going_non_centered(tmp_path):
    """The centered eight schools given only in Pyro: its funnel makes NUTS diverge as written, the
    remedy samples theta by Pyro's LocScaleReparam, and its log p(x) lies within 4 combined SE of the
    stored NumPyro reference's (the same p(x): ``models/eight_schools_centered/reference.json``).
    Default settings but the time budget: the funnel's deep trees make the first attempt alone take
    minutes through the bridge, past the default 300 s before the remedy could start."""
    import dataclasses
    import json
    import math
    from pathlib import Path

    shipped = registry.get("eight_schools_centered")  # its NumPy log joint left out: a Pyro model alone
    spec = dataclasses.replace(shipped, name="eight_schools_centered_pyro_only", log_joint=None)
    registry.register(
        spec, pyro_model=registry.implementation("eight_schools_centered", "pyro"), replace=True
    )
    problem = Problem.build(spec.name, 0)
    settings = dataclasses.replace(settings_for(problem.spec), budget_seconds=3600.0)
    reference = reference_for(problem, settings, cache_dir=tmp_path)
    assert reference.gates.passed
    assert reference.summary["non_centered"] == ["theta"]
    stored = Path(__file__).parents[1] / "models" / "eight_schools_centered" / "reference.json"
    expected = json.loads(stored.read_text())["evidence"]
    combined = math.hypot(reference.log_evidence_se, expected["se"])
    assert abs(reference.log_evidence - expected["log_evidence"]) <= 4 * combined
