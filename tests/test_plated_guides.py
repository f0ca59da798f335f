"""The suite's guide families on latent sites sampled inside plates: every element gets its own
parameters, the guide programs sample each site in the model's plates, and the libraries' ELBOs of
those programs count log q(z) once, against a plated conjugate Gaussian model's exact evidence."""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as ndist
import pyro
import pyro.distributions as pdist
import pyro.poutine as poutine
import pytest
import torch
from numpyro import handlers
from numpyro.infer.util import log_density

import models
from ppl_suite import guides, registry
from ppl_suite.backends import numpyro as numpyro_backend
from ppl_suite.backends import pyro as pyro_backend
from ppl_suite.backends.base import SVIConfig
from ppl_suite.checking.sites import trace_sites
from ppl_suite.checking.sources import InputProblem
from ppl_suite.gaussian_posterior import GaussianPosterior
from ppl_suite.guides.joint import JOINT_SITE, draw_with_log_q
from ppl_suite.guides.plates import auxiliary_name, read_plates
from ppl_suite.problem import Problem
from ppl_suite.spec import Domain, ModelSpec, Site
from ppl_suite.targets.fitted_guide import FittedGuide

GROUPS, REPEATS, PRIOR_SCALE = 4, 3, 2.0
Y = np.random.default_rng(2).normal(1.0, 1.5, size=(REPEATS, GROUPS))


def pyro_conjugate(data, params):
    """theta_j ~ N(0, 2^2) in plate J; y_kj ~ N(theta_j, 1) in plates (repeats, J)."""
    with pyro.plate("J", GROUPS):
        theta = pyro.sample("theta", pdist.Normal(0.0, PRIOR_SCALE))
        with pyro.plate("repeats", REPEATS, dim=-2):
            pyro.sample("y", pdist.Normal(theta, 1.0), obs=data["y"])


def numpyro_conjugate(data, params):
    with numpyro.plate("J", GROUPS):
        theta = numpyro.sample("theta", ndist.Normal(0.0, PRIOR_SCALE))
        with numpyro.plate("repeats", REPEATS, dim=-2):
            numpyro.sample("y", ndist.Normal(theta, 1.0), obs=data["y"])


def exact(data, params) -> GaussianPosterior:
    """p(theta_j | y) = N(sum_k y_kj / (1/s^2 + K), 1 / (1/s^2 + K)); p(y_.j) = N(0, I + s^2 1 1^T)."""
    precision = 1 / PRIOR_SCALE**2 + REPEATS
    marginal = np.eye(REPEATS) + PRIOR_SCALE**2
    _, log_det = np.linalg.slogdet(marginal)
    y = data["y"]
    quadratic = np.einsum("kj,kl,lj->", y, np.linalg.inv(marginal), y)
    log_evidence = -0.5 * (quadratic + GROUPS * (log_det + REPEATS * np.log(2 * np.pi)))
    cov = np.eye(GROUPS) / precision
    return GaussianPosterior("theta", y.sum(0) / precision, cov, float(log_evidence))


def pyro_mixed(data, params):
    """A positive site and a vector site in one plate, beside a global site."""
    mu = pyro.sample("mu", pdist.Normal(0.0, 1.0))
    with pyro.plate("J", 3):
        s = pyro.sample("s", pdist.LogNormal(0.0, 1.0))
        w = pyro.sample("w", pdist.Normal(0.0, 1.0).expand([2]).to_event(1))
        pyro.sample("y", pdist.Normal(mu + w.sum(-1), s), obs=data["y"])


def numpyro_mixed(data, params):
    mu = numpyro.sample("mu", ndist.Normal(0.0, 1.0))
    with numpyro.plate("J", 3):
        s = numpyro.sample("s", ndist.LogNormal(0.0, 1.0))
        w = numpyro.sample("w", ndist.Normal(0.0, 1.0).expand([2]).to_event(1))
        numpyro.sample("y", ndist.Normal(mu + w.sum(-1), s), obs=data["y"])


def _register(name, sites, pyro_model, numpyro_model, data, oracle=None) -> Problem:
    spec = ModelSpec(
        name=name,
        description="plated test model",
        defaults={},
        sites=lambda params: sites,
        generate_data=lambda rng, params: data,
        guides=("mean_field", "full_rank"),
        oracle=oracle,
        problem_size=lambda params: 30,
        fixed_data=True,
    )
    registry.register(spec, pyro_model=pyro_model, numpyro_model=numpyro_model, replace=True)
    return Problem.build(name, 0)


@pytest.fixture(scope="module")
def conjugate() -> Problem:
    sites = (Site("theta", (GROUPS,)),)
    return _register("plated_conjugate", sites, pyro_conjugate, numpyro_conjugate, {"y": Y}, exact)


@pytest.fixture(scope="module")
def mixed() -> Problem:
    sites = (Site("mu"), Site("s", (3,), "positive"), Site("w", (3, 2)))
    data = {"y": np.array([0.3, -1.2, 2.0])}
    return _register("plated_mixed", sites, pyro_mixed, numpyro_mixed, data)


def _phi(problem: Problem, family: str) -> dict[str, np.ndarray]:
    """Parameters away from the start: distinct locs and scales, correlations for full_rank."""
    rng = np.random.default_rng(5)
    phi = guides.get(family).init_params(problem.sites, problem.data, problem.params)
    out = {}
    for name, value in phi.items():
        if name.endswith("tril"):
            out[name] = np.tril(rng.normal(0.0, 0.2, value.shape), -1)
        elif "scale" in name or "diag" in name:
            out[name] = rng.uniform(-1.5, -0.5, value.shape)
        else:
            out[name] = rng.normal(1.0, 0.5, value.shape)
    return out


def _gaussian_kl(loc_q, cov_q, loc_p, cov_p) -> float:
    """KL(N(loc_q, cov_q) || N(loc_p, cov_p)) in closed form."""
    inverse = np.linalg.inv(cov_p)
    diff = loc_p - loc_q
    d = len(loc_q)
    _, log_det_p = np.linalg.slogdet(cov_p)
    _, log_det_q = np.linalg.slogdet(cov_q)
    return 0.5 * (np.trace(inverse @ cov_q) + diff @ inverse @ diff - d + log_det_p - log_det_q)


def _q_moments(family: str, phi) -> tuple[np.ndarray, np.ndarray]:
    if family == "mean_field":
        return phi["theta.loc"], np.diag(np.exp(2 * phi["theta.log_scale"]))
    scale_tril = phi["_joint.tril"] + np.diag(np.exp(phi["_joint.log_diag"]))
    return phi["_joint.loc"], scale_tril @ scale_tril.T


@pytest.mark.parametrize(
    ("library", "family"),
    [
        ("pyro", "mean_field"),
        ("pyro", "full_rank"),
        ("numpyro", "full_rank"),
        pytest.param("numpyro", "mean_field", marks=pytest.mark.slow),  # the same program: compiles again
    ],
)
def test_the_librarys_elbo_of_a_plated_guide_is_the_exact_evidence_less_the_exact_kl(
    conjugate, family, library
):
    """log p(x) - KL(q || p), both exact, is what the guide program's Trace_ELBO estimates: log q is
    counted once per element, with no plate scaling."""
    phi, posterior = _phi(conjugate, family), conjugate.exact()
    kl = _gaussian_kl(*_q_moments(family, phi), posterior.loc, posterior.cov)
    backend = pyro_backend if library == "pyro" else numpyro_backend
    estimate = backend.library_elbo(conjugate, family, phi, 2000, seed=1)
    truth = posterior.log_evidence - kl
    assert abs(estimate.value - truth) < 4 * estimate.se, (estimate, truth)
    assert kl > 10 * estimate.se  # the check has power: a wrong log q would show


def _guide_draws(family: str, fitted: FittedGuide, latents) -> dict[str, np.ndarray]:
    """What the guide programs are conditioned on to take the draws ``latents``: the global site and
    each plated site's auxiliary draw (mean_field), or the joint draw u = T^-1(z) (full_rank)."""
    if family == "mean_field":
        return {(k if k == "mu" else auxiliary_name(k)): np.asarray(v) for k, v in latents.items()}
    q, n = fitted.distributions, len(latents["mu"])
    u = q.unconstrain({k: torch.as_tensor(v) for k, v in latents.items()}, n)
    return {JOINT_SITE: u.numpy()}


@pytest.mark.parametrize("family", ["mean_field", "full_rank"])
def test_pyro_numpyro_and_handrolled_guides_give_the_suites_log_q(mixed, family):
    """log q(z) of the two libraries' guide programs and of the hand-rolled ELBO's draws, at the same z
    (drawn by the hand-rolled code), equals the suite's torch rendering to float64 rounding, each site's
    value included (a positive site in a plate, a vector site in a plate, a global site)."""
    phi = _phi(mixed, family)
    fitted = FittedGuide(mixed, family, phi)
    family_q, ops = guides.get(family).distributions, guides.jax_ops()
    draw = jax.jit(lambda phi, key: draw_with_log_q(family_q(phi, mixed.sites, {}, ops), key, 4))
    drawn, handrolled_log_q = draw(numpyro_backend.as_jax(phi), jax.random.PRNGKey(0))
    latents = {k: np.asarray(v) for k, v in drawn.items()}
    expected = fitted.log_q(latents)
    np.testing.assert_allclose(np.asarray(handrolled_log_q), expected, rtol=0, atol=1e-9)
    data, params = pyro_backend.as_torch(mixed.data), {}
    pyro_guide = pyro_backend.make_guide(mixed, family, phi)
    numpyro_guide = numpyro_backend.make_guide(mixed, family, phi)
    fixed = _guide_draws(family, fitted, latents)

    def numpyro_trace(z):
        guide = handlers.substitute(handlers.seed(numpyro_guide, 0), data=z)
        trace = handlers.trace(guide).get_trace(mixed.data, {})
        return log_density(numpyro_guide, (mixed.data, {}), {}, z)[0], {k: trace[k]["value"] for k in latents}

    numpyro_log_q, numpyro_values = jax.jit(jax.vmap(numpyro_trace))(fixed)
    np.testing.assert_allclose(numpyro_log_q, expected, rtol=0, atol=1e-9)
    for name, value in latents.items():
        np.testing.assert_allclose(numpyro_values[name], value, rtol=1e-12, atol=1e-12)
    for i in range(len(expected)):
        pyro.get_param_store().clear()
        draw = pyro_backend.as_torch({k: np.asarray(v[i]) for k, v in fixed.items()})
        with torch.no_grad():
            traced = poutine.trace(poutine.condition(pyro_guide, data=draw)).get_trace(data, params)
        assert float(traced.log_prob_sum()) == pytest.approx(expected[i], abs=1e-9)
        for name, value in latents.items():
            np.testing.assert_allclose(traced.nodes[name]["value"].numpy(), value[i], rtol=1e-12, atol=1e-12)
    pyro.get_param_store().clear()


def test_every_plated_site_gets_one_parameter_per_element(mixed):
    mean_field = guides.get("mean_field").init_params(mixed.sites, mixed.data, mixed.params)
    assert mean_field["s.loc"].shape == (3,) and mean_field["w.log_scale"].shape == (3, 2)
    full_rank = guides.get("full_rank").init_params(mixed.sites, mixed.data, mixed.params)
    assert full_rank["_joint.tril"].shape == (10, 10)  # one joint Gaussian over mu (1), s (3) and w (6)


def test_a_plated_model_is_fitted_by_pyro_in_its_plates(mixed):
    fit = pyro_backend.PyroBackend().fit(mixed, "full_rank", SVIConfig(steps=40, particles=4), 0)
    assert np.isfinite(fit.losses).all() and fit.losses[-10:].mean() < fit.losses[:10].mean()
    assert FittedGuide(mixed, "full_rank", fit.phi).sample(0, 2)["w"].shape == (2, 3, 2)


def numpyro_scaled(data, params):
    """theta in plate J under a scale computed with jnp: a value the abstract trace does not have."""
    with numpyro.plate("J", GROUPS), handlers.scale(scale=jnp.exp(jnp.asarray(params["log_scale"]))):
        numpyro.sample("theta", ndist.Normal(0.0, PRIOR_SCALE))


def _register_scaled() -> None:
    spec = ModelSpec(
        name="jnp_scaled", description="a scale computed with jnp", defaults={"log_scale": 0.0},
        domains={"log_scale": Domain.real()},
        sites=lambda params: (Site("theta", (GROUPS,)),), generate_data=lambda rng, params: {},
        guides=("mean_field",), oracle=None, problem_size=lambda params: GROUPS, fixed_data=True,
    )  # fmt: skip
    registry.register(spec, numpyro_model=numpyro_scaled, replace=True)


def _compiling_events(during: Callable[[], Any]) -> tuple[Any, list[str]]:
    """``during()``'s value and the lowerings and XLA compilations it ran, after every in-memory
    cache of compiled operations is cleared (an operation compiled before would otherwise be reused
    without either)."""
    events: list[str] = []
    watched = (
        "/jax/core/compile/jaxpr_to_mlir_module_duration",
        "/jax/core/compile/backend_compile_duration",
    )

    def on_duration(event: str, seconds: float, **_) -> None:
        if event in watched:
            events.append(event)

    jax.clear_caches()
    jax.monitoring.register_event_duration_secs_listener(on_duration)
    try:
        return during(), events
    finally:
        jax.monitoring.unregister_event_duration_listener(on_duration)


@pytest.mark.parametrize("name", ["plated_mixed", "plated_conjugate", "jnp_scaled", *models.names()])
def test_numpyro_plates_are_read_without_compiling_and_equal_an_eager_traces(name, mixed, conjugate):
    """``numpyro_backend.model_plates`` (each site's plates, read before a NumPyro guide is built) equals
    ``read_plates`` of one eager trace of the model, and lowers and compiles nothing: its trace is
    abstract (``jax.eval_shape``), where an eager one compiles each of the model's operations. A
    model with a scale computed with jnp is traced eagerly (the abstract trace has no value to compare
    with 1)."""
    _register_scaled()
    problem = Problem.build(name, 0)
    model = registry.implementation(name, "numpyro")
    plates, events = _compiling_events(lambda: numpyro_backend.model_plates(problem, model))
    assert (events == []) == (name != "jnp_scaled")
    eager = handlers.trace(handlers.seed(model, 0)).get_trace(
        problem.data, numpyro_backend.as_jax(problem.params)
    )
    assert plates == read_plates(eager.items(), name)
    assert set(plates) == {site.name for site in problem.sites}


@pytest.mark.parametrize("log_scale", [0.5, None], ids=["scale-from-jnp", "subsample_size"])
def test_a_scaled_numpyro_site_is_refused_naming_it_by_model_plates(log_scale):
    """The message of ``read_plates`` for a scaled site, whether the abstract trace reads the scale
    (a subsampled plate's, a Python float) or the eager one does (a scale computed with jnp)."""

    def subsampled(data, params):
        with numpyro.plate("J", 10, subsample_size=5):
            numpyro.sample("theta", ndist.Normal(0.0, 1.0))

    _register_scaled()
    spec = ModelSpec(
        name="subsampled", description="a subsampled plate", defaults={},
        sites=lambda params: (Site("theta", (5,)),), generate_data=lambda rng, params: {},
        guides=("mean_field",), oracle=None, problem_size=lambda params: 5, fixed_data=True,
    )  # fmt: skip
    registry.register(spec, numpyro_model=subsampled, replace=True)
    problem = (
        Problem.build("subsampled", 0)
        if log_scale is None
        else Problem.build("jnp_scaled", 0, {"log_scale": log_scale})
    )
    model = registry.implementation(problem.spec.name, "numpyro")
    with pytest.raises(ValueError, match=r"'theta' is scaled \(in 'J'\): subsampled plates are not"):
        numpyro_backend.model_plates(problem, model)


def test_a_subsampled_plate_is_refused_naming_the_site():
    def model(data, params):
        with pyro.plate("J", 10, subsample_size=5):
            pyro.sample("theta", pdist.Normal(0.0, 1.0))

    trace = poutine.trace(model).get_trace({}, {})
    with pytest.raises(ValueError, match=r"'theta' is scaled.*subsampled plates are not supported"):
        read_plates(trace.nodes.items(), "model")


def test_a_subsampled_plate_in_a_checked_model_is_refused_before_anything_runs():
    def model(data, params):
        with numpyro.plate("J", 10, subsample_size=5):
            numpyro.sample("theta", ndist.Normal(0.0, 1.0))

    with pytest.raises(InputProblem) as refused:
        trace_sites(model, "numpyro", {}, {}, "model")
    (problem,) = refused.value.problems
    assert "'theta' is scaled (plate 'J'): subsampled plates are not supported" in problem
