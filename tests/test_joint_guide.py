"""full_rank is one Gaussian over every unconstrained coordinate of every site (as AutoMultivariateNormal):
on a linear Gaussian model whose posterior correlates a global site with a plated one it holds the exact
posterior, so the ELBO of that guide is log p(x) at every draw, in the suite's rendering and in Pyro's,
NumPyro's and the hand-rolled ELBO; its closed-form KL is the Gaussian one over all coordinates; and on
eight schools it fits better than mean_field."""

import jax
import numpy as np
import numpyro
import numpyro.distributions as ndist
import pyro
import pyro.distributions as pdist
import pytest
from pyro.infer import Trace_ELBO
from scipy import stats

from ppl_suite import guides, registry
from ppl_suite.backends import handrolled, pyro_draws
from ppl_suite.backends import numpyro as numpyro_backend
from ppl_suite.backends import pyro as pyro_backend
from ppl_suite.backends.base import SVIConfig
from ppl_suite.backends.programs import data_arguments
from ppl_suite.estimators.elbo import elbo
from ppl_suite.estimators.kl import kl_family_minimum, kl_monte_carlo
from ppl_suite.gaussian_posterior import JointGaussianPosterior
from ppl_suite.problem import Problem
from ppl_suite.spec import DistSpec, ModelSpec, Site
from ppl_suite.targets.exact_guide import exact_guide, gaussian_family, gaussian_guide
from ppl_suite.targets.fitted_guide import FittedGuide
from ppl_suite.targets.numpyro_target import NumPyroTarget

GROUPS, REPEATS, SCALE_A, SCALE_B, NOISE = 3, 2, 2.0, 1.0, 0.5
Y = np.random.default_rng(4).normal(1.0, 1.0, size=(REPEATS, GROUPS))
ROUNDING = 1e-9  # float64 sums of a few dozen terms of size ~10


def pyro_linked(data, params):
    """a ~ N(0, 2^2); b_j ~ N(0, 1) in plate J; y_kj ~ N(a + b_j, 0.5^2) in plates (repeats, J)."""
    a = pyro.sample("a", pdist.Normal(0.0, SCALE_A))
    with pyro.plate("J", GROUPS):
        b = pyro.sample("b", pdist.Normal(0.0, SCALE_B))
        with pyro.plate("repeats", REPEATS, dim=-2):
            pyro.sample("y", pdist.Normal(a.unsqueeze(-1) + b, NOISE), obs=data["y"])


def numpyro_linked(data, params):
    a = numpyro.sample("a", ndist.Normal(0.0, SCALE_A))
    with numpyro.plate("J", GROUPS):
        b = numpyro.sample("b", ndist.Normal(0.0, SCALE_B))
        with numpyro.plate("repeats", REPEATS, dim=-2):
            numpyro.sample("y", ndist.Normal(a[..., None] + b, NOISE), obs=data["y"])


def linked_posterior(data, params) -> JointGaussianPosterior:
    """z = (a, b_1..b_J), y = A z + noise with A[(k, j)] = e_a + e_bj: Lambda = P^-1 + A^T A / s^2,
    m = Lambda^-1 A^T y / s^2, log p(y) = log N(y; 0, s^2 I + A P A^T) (P the prior covariance)."""
    design = np.zeros((REPEATS * GROUPS, 1 + GROUPS))
    design[:, 0] = 1.0
    design[np.arange(REPEATS * GROUPS), 1 + np.tile(np.arange(GROUPS), REPEATS)] = 1.0
    prior = np.diag([SCALE_A**2, *[SCALE_B**2] * GROUPS])
    y = data["y"].reshape(-1)
    cov = np.linalg.inv(np.linalg.inv(prior) + design.T @ design / NOISE**2)
    loc = cov @ design.T @ y / NOISE**2
    marginal = NOISE**2 * np.eye(len(y)) + design @ prior @ design.T
    log_evidence = stats.multivariate_normal(np.zeros(len(y)), marginal).logpdf(y)
    return JointGaussianPosterior((("a", ()), ("b", (GROUPS,))), loc, cov, float(log_evidence))


@pytest.fixture(scope="module")
def linked() -> Problem:
    spec = ModelSpec(
        name="linked_groups",
        description="global and plated Gaussian sites, correlated in the posterior",
        defaults={},
        sites=lambda params: (Site("a"), Site("b", (GROUPS,))),
        generate_data=lambda rng, params: {"y": Y},
        guides=("mean_field", "full_rank"),
        oracle=linked_posterior,
        problem_size=lambda params: Y.size + 1 + GROUPS,
        fixed_data=True,
    )
    registry.register(spec, pyro_model=pyro_linked, numpyro_model=numpyro_linked, replace=True)
    return Problem.build("linked_groups", 0)


def test_the_posterior_correlates_the_sites_so_only_full_rank_holds_it(linked):
    cov = linked.exact().covariance()
    assert abs(cov[0, 1]) / np.sqrt(cov[0, 0] * cov[1, 1]) > 0.3  # a and b_1: strongly correlated
    assert gaussian_family(linked) == "full_rank"
    with pytest.raises(ValueError, match="cannot hold its posterior"):
        gaussian_guide(linked, "mean_field")
    precision = np.linalg.inv(cov)
    mean_field = 0.5 * (np.log(np.diag(precision)).sum() - np.linalg.slogdet(precision)[1])
    assert kl_family_minimum(linked.sites, "full_rank", linked.exact()) == 0.0
    found = kl_family_minimum(linked.sites, "mean_field", linked.exact())
    assert found == pytest.approx(mean_field, rel=1e-12)
    assert mean_field > 0.1


def test_the_exact_full_rank_guide_has_elbo_log_evidence_at_every_draw(linked):
    """q = p(z | x): log p(x, z) - log q(z) = log p(x) for every z, so the ELBO is exact with SE 0 and
    the Monte Carlo KL is 0 (the suite's torch rendering against the NumPyro log joint)."""
    guide = exact_guide(linked)
    assert guide is not None and guide.family == "full_rank"
    z = guide.sample(0, 200)
    terms = NumPyroTarget(linked).log_joint(z) - guide.log_q(z)
    np.testing.assert_allclose(terms, linked.exact().log_evidence, rtol=0, atol=ROUNDING)
    estimate = elbo(NumPyroTarget(linked), guide, 200, seed=1)
    assert abs(estimate.value - linked.exact().log_evidence) < ROUNDING and estimate.se < ROUNDING
    assert abs(kl_monte_carlo(guide, linked.exact(), 200).value) < ROUNDING


@pytest.mark.parametrize("library", ["pyro", "numpyro"])
def test_the_librarys_elbo_of_the_exact_full_rank_guide_is_the_evidence(linked, library):
    """Pyro's and NumPyro's Trace_ELBO of the guide program (u at _joint, a in no plate, b in plate J):
    log p(x) with SE 0, so log q(z) is counted once and the correlation across sites is the posterior's."""
    phi = gaussian_guide(linked, "full_rank").params
    backend = pyro_backend if library == "pyro" else numpyro_backend
    estimate = backend.library_elbo(linked, "full_rank", phi, 200, seed=1)
    assert abs(estimate.value - linked.exact().log_evidence) < ROUNDING and estimate.se < ROUNDING


def test_pyros_elbo_one_particle_at_a_time_of_the_exact_full_rank_guide_is_the_evidence(linked):
    """The guide program without the particle axis (Pyro's loop over particles, for models written for
    one draw) gives the same exact ELBO."""
    phi = gaussian_guide(linked, "full_rank").params
    pyro.get_param_store().clear()
    guide, data = pyro_backend.make_guide(linked, "full_rank", phi), pyro_backend.as_torch(linked.data)
    one_at_a_time = pyro_draws.Draws(pyro_draws.LOOP, 2)
    estimate = pyro_backend.PyroBackend._library_elbo(
        pyro_linked, guide, Trace_ELBO, data, {}, 40, one_at_a_time
    )
    pyro.get_param_store().clear()
    assert abs(estimate.value - linked.exact().log_evidence) < ROUNDING and estimate.se < ROUNDING


def test_the_handrolled_elbo_terms_of_the_exact_full_rank_guide_are_the_evidence(linked):
    phi = gaussian_guide(linked, "full_rank").params
    arrays, static = data_arguments(linked)
    terms = handrolled.elbo_terms(linked, "full_rank", {}, static)
    draw = jax.jit(lambda weights, arrays, key: terms(weights, arrays, key, 100))
    values = draw((numpyro_backend.as_jax(phi), {}), arrays, jax.random.PRNGKey(0))
    np.testing.assert_allclose(np.asarray(values), linked.exact().log_evidence, rtol=0, atol=ROUNDING)


def test_full_rank_has_one_parameter_block_over_every_coordinate(linked):
    phi = guides.get("full_rank").init_params(linked.sites, linked.data, linked.params)
    assert {k: v.shape for k, v in phi.items()} == {
        "_joint.loc": (4,),
        "_joint.log_diag": (4,),
        "_joint.tril": (4, 4),
    }


def _gaussian_kl(loc_q, cov_q, loc_p, cov_p) -> float:
    """KL(N(loc_q, cov_q) || N(loc_p, cov_p)) = 0.5 (tr(S_p^-1 S_q) + d_m^T S_p^-1 d_m - d
    + log det S_p - log det S_q)."""
    inverse, diff = np.linalg.inv(cov_p), loc_p - loc_q
    log_det = np.linalg.slogdet(cov_p)[1] - np.linalg.slogdet(cov_q)[1]
    return 0.5 * (np.trace(inverse @ cov_q) + diff @ inverse @ diff - len(loc_q) + log_det)


def test_the_closed_form_kl_of_full_rank_is_the_gaussian_kl_over_every_coordinate():
    problem = Problem.build("bayes_linreg", 0, {"n": 20, "d": 3})
    rng = np.random.default_rng(0)
    tril = np.tril(rng.normal(0.0, 0.3, (3, 3)), -1)
    phi = {"_joint.loc": rng.normal(size=3), "_joint.log_diag": rng.uniform(-1, 0, 3), "_joint.tril": tril}
    guide = FittedGuide(problem, "full_rank", phi)
    scale_tril = tril + np.diag(np.exp(phi["_joint.log_diag"]))
    exact = problem.exact()
    expected = _gaussian_kl(phi["_joint.loc"], scale_tril @ scale_tril.T, exact.loc, exact.cov)
    assert guide.kl_to(exact.factors()) == pytest.approx(expected, rel=1e-10)
    # against independent Normal factors, with a diagonal L: mean_field's KL (Pyro's Normal pair)
    log_sd = phi["_joint.log_diag"]
    diagonal = FittedGuide(problem, "full_rank", {**phi, "_joint.tril": np.zeros((3, 3))})
    mean_field = FittedGuide(problem, "mean_field", {"w.loc": phi["_joint.loc"], "w.log_scale": log_sd})
    normals = {"w": DistSpec("Normal", {"loc": exact.loc, "scale": np.sqrt(np.diag(exact.cov))}, 1)}
    assert diagonal.kl_to(normals) == pytest.approx(mean_field.kl_to(normals), rel=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["eight_schools_noncentered", "eight_schools_centered"])
def test_full_rank_fits_eight_schools_better_than_mean_field(model):
    """NumPyro fits of both families, the same steps and seed: full_rank's ELBO (the same 20 000 draws'
    estimator) is higher by more than 4 combined SE (it holds the tau-theta correlation)."""
    problem = Problem.build(model, 0)
    config = SVIConfig(steps=8000, particles=4, eval_particles=100)
    target, found = NumPyroTarget(problem), {}
    for family in ("mean_field", "full_rank"):
        fit = numpyro_backend.NumPyroBackend().fit(problem, family, config, 0)
        found[family] = elbo(target, FittedGuide(problem, family, fit.phi), 20_000, seed=3)
    gain = found["full_rank"].value - found["mean_field"].value
    combined = np.hypot(found["full_rank"].se, found["mean_field"].se)
    print(f"{model}: mean_field {found['mean_field']}, full_rank {found['full_rank']}, gain {gain:.4f}")
    assert gain > 4 * combined, found


def test_full_rank_on_a_simplex_site_is_the_stick_breaking_image_of_its_gaussian():
    """One simplex site (K = 4, three free coordinates): the joint family's log q at its own draws is
    torch's TransformedDistribution(MultivariateNormal, StickBreakingTransform).log_prob, a density the
    library computes by its own change of variables."""
    import torch
    from torch.distributions import MultivariateNormal, StickBreakingTransform, TransformedDistribution

    problem = Problem.build("dirichlet_categorical", 0, {"k": 4})
    rng = np.random.default_rng(1)
    tril = np.tril(rng.normal(0.0, 0.3, (3, 3)), -1)
    phi = {"_joint.loc": rng.normal(size=3), "_joint.log_diag": rng.uniform(-1, 0, 3), "_joint.tril": tril}
    guide = FittedGuide(problem, "full_rank", phi)
    draws = guide.sample(seed=2, n=50)
    assert np.allclose(draws["pi"].sum(-1), 1.0) and np.all(draws["pi"] > 0)
    scale_tril = torch.as_tensor(tril + np.diag(np.exp(phi["_joint.log_diag"])))
    gaussian = MultivariateNormal(torch.as_tensor(phi["_joint.loc"]), scale_tril=scale_tril)
    library = TransformedDistribution(gaussian, StickBreakingTransform())
    expected = library.log_prob(torch.as_tensor(draws["pi"])).numpy()
    np.testing.assert_allclose(guide.log_q(draws), expected, rtol=0, atol=ROUNDING)
