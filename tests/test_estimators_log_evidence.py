"""Estimators of log p(x) and KL on every closed-form continuous model, against the exact answers.

Every Monte Carlo check is seeded and compares in units of the estimator's own standard error (4 SE);
deterministic ones compare at a tolerance derived from float64 precision.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppl_suite import estimators
from ppl_suite.estimators.elbo import elbo
from ppl_suite.estimators.harmonic_mean import harmonic_mean_log_evidence
from ppl_suite.estimators.importance import importance_log_evidence, iwae_bound, log_weights
from ppl_suite.estimators.inclusive_kl import inclusive_kl
from ppl_suite.estimators.kl import kl_analytic, kl_identity, kl_monte_carlo
from ppl_suite.estimators.laplace import PRIOR_DRAWS, laplace_log_evidence
from ppl_suite.estimators.psis import interpret, psis_diagnostic
from ppl_suite.estimators.psis_log_evidence import psis_log_evidence
from ppl_suite.estimators.weights import (
    finite_variance_khat,
    finite_variance_reliability,
    first_order_bias,
    khat_threshold,
    log_mean_exp_se,
    pareto_smoothed,
)
from ppl_suite.numerics import log_mean_exp
from ppl_suite.problem import Problem
from ppl_suite.targets.fitted_guide import FittedGuide
from ppl_suite.targets.numpyro_target import NumPyroTarget
from tests.latents import random_latents
from tests.test_estimators_support import continuous_models_with_oracle, imperfect_guide

MODELS = continuous_models_with_oracle()
IS_SAMPLES = 50_000
DRAWS = 16  # latents at which the target's densities are compared: one batch shape, compiled once
EPS = np.finfo(float).eps


@pytest.fixture(scope="module", params=MODELS)
def case(request):
    problem = Problem.build(request.param, data_seed=0)
    return NumPyroTarget(problem), problem.exact(), imperfect_guide(problem)


def within(estimate, truth, k=4.0):
    return abs(estimate.value - truth) <= k * estimate.se


# Target ------------------------------------------------------------------------------------------


def test_target_log_joint_is_spec_log_joint_plus_log_jacobian(case):
    target, exact, _ = case
    problem = target.problem
    rng = np.random.default_rng(0)
    log_jac_of = jax.jit(jax.vmap(lambda v: target.constrain_one(v)[1]))
    log_joint_u_of = jax.jit(jax.vmap(target.log_joint_u))  # compiled once for both batches
    for latents in (exact.sample(rng, DRAWS), random_latents(problem.sites, rng, DRAWS, spread=0.5)):
        u = target.unconstrain(latents)
        log_jac = np.asarray(log_jac_of(u))
        spec = problem.spec.log_joint(latents, problem.data, problem.params)
        scale = np.abs(spec).max() + 1
        log_joint_u = np.asarray(log_joint_u_of(u))
        np.testing.assert_allclose(log_joint_u - log_jac, spec, rtol=0, atol=1e3 * EPS * scale)
        # T(T^-1(z)) = z
        back = target.constrain(u)
        for name, value in latents.items():
            np.testing.assert_allclose(back[name], value, rtol=1e-9, atol=1e-12)


def test_target_prior_and_likelihood_add_up_to_the_log_joint(case):
    """log p(u) + log p(x | u) = log p(x, u): the likelihood is Jacobian-free, the prior carries it."""
    target, exact, _ = case
    u = target.unconstrain(exact.sample(np.random.default_rng(1), DRAWS))
    # as many prior draws as the Laplace approximation takes: its compiled sampler serves both tests
    prior_draws = np.asarray(target.sample_prior(jax.random.PRNGKey(0), PRIOR_DRAWS))
    prior_and_likelihood = jax.jit(jax.vmap(target.prior_and_likelihood))  # compiled, as AIS runs it
    log_prior_draws, _ = prior_and_likelihood(prior_draws)
    assert prior_draws.shape == (PRIOR_DRAWS, target.dim)
    assert np.all(np.isfinite(np.asarray(log_prior_draws)))
    log_prior, log_lik = (np.asarray(a) for a in prior_and_likelihood(u))
    log_joint_u = np.asarray(jax.jit(jax.vmap(target.log_joint_u))(u))
    np.testing.assert_allclose(log_prior + log_lik, log_joint_u, atol=1e-8)


# Importance sampling and IWAE ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def importance(case):
    target, _, guide = case
    return importance_log_evidence(target, guide, IS_SAMPLES, seed=3)


def test_importance_sampling_lands_within_4_se_of_log_evidence_when_k_hat_says_reliable(case, importance):
    label = importance.extras["label_k_hat"]
    assert (importance.reliability == "reliable") == (label < finite_variance_khat(IS_SAMPLES))
    assert importance.extras["bias_corrected"] == importance.value + importance.se**2 / 2
    if importance.reliability != "reliable":  # ppca's shifted guide in d = 60: k-hat 0.73
        pytest.skip(f"labelled unreliable ({importance.diagnostic}): its SE is not one")
    assert within(importance, case[1].log_evidence)


def test_psis_log_evidence_lands_within_4_se_when_k_hat_is_in_the_psis_range(case):
    target, exact, guide = case
    estimate = psis_log_evidence(target, guide, IS_SAMPLES, seed=3)
    label = estimate.extras["label_k_hat"]
    assert (estimate.reliability == "reliable") == (label < finite_variance_khat(IS_SAMPLES))
    if estimate.reliability != "reliable":
        pytest.skip(f"labelled unreliable ({estimate.diagnostic}): its SE is not one")
    assert within(estimate, exact.log_evidence)


def test_psis_log_evidence_is_the_log_mean_of_arviz_smoothed_weights():
    """The same number as ArviZ's own smoothing of the same weights, whose log-sum-exp it normalizes."""
    import arviz as az
    from scipy.special import logsumexp

    problem = Problem.build("bayes_linreg", 0)
    target, guide = NumPyroTarget(problem), imperfect_guide(problem)
    estimate = psis_log_evidence(target, guide, 5000, seed=2)
    log_w = log_weights(target, guide, 5000, seed=2)
    smoothed, k_hat = az.psislw(log_w.copy(), reff=1.0, normalize=False)
    assert estimate.extras["k_hat"] == pytest.approx(float(k_hat), abs=1e-12)
    assert estimate.value == pytest.approx(logsumexp(smoothed) - np.log(5000), abs=1e-9)


def test_the_label_k_hat_comes_from_draws_independent_of_the_weights_it_labels():
    """A k-hat from the labelled weights themselves selects underestimates (draws that missed the tail
    have a low k-hat and a low mean): the label's k-hat is the fit to n draws of another stream."""
    from ppl_suite.estimators.draws import guide_draws
    from ppl_suite.estimators.importance import LABEL_STREAM
    from ppl_suite.estimators.streams import stream_seed

    problem = Problem.build("bayes_linreg", 0)
    target, guide = NumPyroTarget(problem), imperfect_guide(problem)
    estimate = importance_log_evidence(target, guide, 5000, seed=2, ks=(1,))
    own = log_weights(target, guide, 5000, seed=2)
    other = guide_draws(target, guide, 5000, stream_seed(2, LABEL_STREAM))
    assert estimate.extras["k_hat"] == pareto_smoothed(own)[1]
    assert estimate.extras["label_k_hat"] == other.pareto[1] != estimate.extras["k_hat"]
    assert not np.any(np.isin(other.log_w, own))


@pytest.mark.parametrize(("k_hat", "label"), [(0.40, "reliable"), (0.408, "reliable"), (0.41, "unreliable"),
                                              (0.49, "unreliable"), (math.nan, "unreliable"),
                                              (-math.inf, "reliable")])  # fmt: skip
def test_a_plain_mean_of_weights_is_reliable_only_2_sd_of_k_hat_below_one_half(k_hat, label):
    """At S = 10^5 draws the tail fit takes M = 949 weights, sd(k-hat) = (1 + k) / sqrt(M), and the
    limit k + 2 sd(k) = 1/2 falls at k = 0.409."""
    assert finite_variance_reliability(k_hat, 100_000)[0] == label


def test_the_finite_variance_limit_is_two_sds_of_k_hat_below_one_half():
    for samples in (1000, 20_000, 100_000, 10**6):
        k, m = finite_variance_khat(samples), math.ceil(min(samples / 5, 3 * math.sqrt(samples)))
        assert k + 2 * (1 + k) / math.sqrt(m) == pytest.approx(0.5, abs=1e-12)
    assert finite_variance_khat(10**8) < 0.5


def test_the_first_order_bias_of_log_mean_weights_is_minus_se_squared_over_two():
    """log w ~ N(-s^2 / 2, s^2), so E[w] = 1: over 20 000 replicates of n = 20 weights, the mean of
    log w_bar sits Var(w) / (2 n) = (e^{s^2} - 1) / 40 = 0.0071 below 0 (8 of its SEs at s = 0.5), and
    the corrected log w_bar + SE^2 / 2 within 4 SE of 0 (the next order, about 0.3 SE, is left)."""
    rng = np.random.default_rng(0)
    s, n, replicates = 0.5, 20, 20_000
    pairs = np.array([log_mean_exp_se(rng.normal(-(s**2) / 2, s, n)) for _ in range(replicates)])
    value, se = pairs[:, 0], pairs[:, 1]
    corrected = value - first_order_bias(se)
    mc_se = value.std(ddof=1) / np.sqrt(replicates)
    assert abs(value.mean() + (np.exp(s**2) - 1) / (2 * n)) <= 4 * mc_se
    assert value.mean() < -4 * mc_se  # the bias is there to correct
    assert abs(corrected.mean()) <= 4 * mc_se


def test_iwae_bound_holds_and_increases_with_k(case, importance):
    truth = case[1].log_evidence
    ks, values, ses = (np.array(importance.extras[k]) for k in ("iwae_k", "iwae", "iwae_se"))
    assert list(ks) == [1, 10, 100, 1000, 10_000]
    assert np.all(values <= truth + 4 * ses)
    assert np.all(np.diff(values) >= -4 * np.hypot(ses[1:], ses[:-1]))
    assert values[-1] > values[0]  # K = 10^4 is strictly tighter than the ELBO on a non-exact guide


def test_iwae_at_k_1_is_the_elbo_of_the_same_draws(case):
    target, _, guide = case
    log_w = log_weights(target, guide, 1000, seed=5)
    assert iwae_bound(log_w, 1).value == pytest.approx(log_w.mean(), rel=1e-14)


def test_iwae_plugin_is_a_lower_bound_within_4_se(case):
    target, exact, guide = case
    estimate = estimators.get("iwae", k=100, repeats=50).estimate(target, guide, seed=4)
    assert estimate.value <= exact.log_evidence + 4 * estimate.se
    assert estimate.n_evals == 5000


# Laplace, harmonic mean --------------------------------------------------------------------------


def test_laplace_is_an_approximation_with_its_error_in_nats(case):
    target, exact, _ = case
    estimate = laplace_log_evidence(target, seed=0)
    assert (
        estimate.reliability == "approximation" and math.isnan(estimate.se) and math.isfinite(estimate.value)
    )
    assert estimate.extras["error"] == estimate.value - exact.log_evidence
    assert f"{estimate.extras['error']:+.3g} nats" in estimate.diagnostic
    gaussian = all(s.support == "real" for s in target.sites) and all(
        f.family in {"Normal", "MultivariateNormal"} for f in (exact.factors() or {"": _NotGaussian}).values()
    )
    if gaussian:
        # The error is second order in the mode's error; the log joint is a sum carrying ~|value| eps.
        tolerance = math.sqrt(EPS) * (1 + abs(estimate.extras["log_joint_at_mode"]))
        assert abs(estimate.value - exact.log_evidence) < tolerance
    print(f"laplace - exact = {estimate.value - exact.log_evidence:.3g} nats")


class _NotGaussian:
    family = "other"


def test_harmonic_mean_overestimates_log_evidence(case):
    target, exact, _ = case
    estimate = harmonic_mean_log_evidence(target, n=5000, seed=0)
    assert math.isfinite(estimate.value)
    # A stochastic upper bound (Jensen on an unbiased estimate of 1 / p(x)).
    assert estimate.value >= exact.log_evidence - 4 * estimate.se
    print(f"harmonic mean - exact = {(estimate.value - exact.log_evidence) / estimate.se:.1f} SE")


# KL routes, inclusive KL, PSIS ----------------------------------------------------------------------


def test_three_kl_routes_agree_within_se(case):
    target, exact, guide = case
    mc = kl_monte_carlo(guide, exact, n=20_000, seed=1)
    identity = kl_identity(elbo(target, guide, n=20_000, seed=1), exact.log_evidence)
    assert abs(mc.value - identity.value) <= 4 * math.hypot(mc.se, identity.se)
    analytic = kl_analytic(guide, exact)
    if analytic is not None:
        assert within(mc, analytic.value) and within(identity, analytic.value)
    assert mc.value > -4 * mc.se


def test_inclusive_kl_is_positive_and_differs_from_exclusive(case):
    _, exact, guide = case
    forward = inclusive_kl(guide, exact, n=20_000, seed=1)
    assert forward.value > 0 and forward.se > 0
    reverse = kl_monte_carlo(guide, exact, n=20_000, seed=1)
    print(f"KL(p||q) = {forward.value:.4f} +- {forward.se:.4f}, KL(q||p) = {reverse.value:.4f}")


def test_inclusive_kl_matches_the_closed_form_for_gaussians():
    import pyro.distributions as dist
    import torch
    from torch.distributions import kl_divergence

    problem = Problem.build("normal_normal", 0)
    exact, guide = problem.exact(), imperfect_guide(problem)
    spec = exact.factors()["mu"]
    p = dist.Normal(*(torch.as_tensor(spec.params[k], dtype=torch.float64) for k in ("loc", "scale")))
    closed = float(kl_divergence(p, guide.distributions["mu"]))  # the guide's torch rendering
    assert within(inclusive_kl(guide, exact, n=20_000, seed=3), closed)


def pyro_k_hat(log_w: np.ndarray) -> float:
    """k-hat as ``pyro.infer.importance.psis_diagnostic`` computes it (its tail rule and the public
    ``pyro.ops.stats.fit_generalized_pareto``), on the given weights."""
    import torch
    from pyro.ops.stats import fit_generalized_pareto

    log_w = torch.sort(torch.as_tensor(log_w - log_w.max(), dtype=torch.float64))[0]
    n = log_w.numel()
    cutoff = max(math.log(1.0e-15), float(log_w[-(math.ceil(min(0.2 * n, 3.0 * math.sqrt(n)))) - 1]))
    tail = log_w[log_w > cutoff]
    return float(fit_generalized_pareto(tail.exp() - math.exp(cutoff))[0])


def test_psis_k_hat_agrees_with_pyro_and_arviz_on_the_same_weights(case):
    target, _, guide = case
    estimate = psis_diagnostic(target, guide, n=5000, seed=0)
    k_hat = estimate.value
    assert math.isnan(estimate.se)
    assert estimate.extras["interpretation"] == interpret(k_hat, 5000)
    # Same tail, same Zhang-Stephens fit, same prior: differences are rounding only.
    log_w = log_weights(target, guide, 5000, seed=0)
    assert pareto_smoothed(log_w)[1] == k_hat  # ArviZ's psislw on the estimator's own weights
    assert pyro_k_hat(log_w) == pytest.approx(k_hat, abs=1e-8)
    print(f"k-hat = {k_hat:.2f} ({estimate.extras['interpretation']})")


def test_psis_flags_a_too_narrow_guide_as_unreliable():
    """q = N(m, (s/5)^2) against p = N(m, s^2): under q, w ~ exp((1 - 1/25) e^2 / 2) with e ~ N(0, 1), a
    Pareto tail of shape k = 1 - 1/25 = 0.96, far above the threshold for S draws (0.70); k-hat
    approaches it slowly (0.78 to 0.93 over six seeds at S = 40 000)."""
    problem = Problem.build("normal_normal", 0)
    exact = problem.exact()
    m, s = float(exact.mean()["mu"]), float(np.sqrt(exact.covariance()[0, 0]))
    narrow = FittedGuide(
        problem, "mean_field", {"mu.loc": np.array(m), "mu.log_scale": np.array(np.log(s / 5))}
    )
    target = NumPyroTarget(problem)
    estimate = psis_diagnostic(target, narrow, n=40_000, seed=0)
    assert estimate.value > 0.7 and estimate.extras["interpretation"] == "unreliable"
    assert estimate.reliability == "unreliable" and "> threshold 0.70" in estimate.diagnostic
    # Importance sampling from the same weights says it too, and its SE is not presented as valid.
    same = importance_log_evidence(target, narrow, n=40_000, seed=0, ks=(1, 10, 100))
    assert same.reliability == "unreliable" and same.extras["k_hat"] == estimate.value
    # IWAE's SE is that of the bound, whatever the k-hat: labelled reliable, and far below log p(x)
    # in units of that SE, which is not a distance to it
    bound = estimators.get("iwae", k=100, repeats=400).estimate(target, narrow, seed=0)
    assert bound.reliability == "reliable" and bound.extras["k_hat"] == estimate.value
    assert bound.value < exact.log_evidence - 4 * bound.se


# threshold min(1 - 1/log10 S, 0.7): 0.5 at S = 100, 2/3 at S = 1000, 0.7 from S = 10^(10/3)
K_HAT_LABELS = [(0.2, 1000, "good"), (0.5, 1000, "ok"), (0.66, 1000, "ok"), (0.67, 1000, "unreliable"),
                (0.69, 10_000, "ok"), (0.7, 10_000, "ok"), (0.71, 10**6, "unreliable"),
                (0.5, 100, "ok"), (0.51, 100, "unreliable"), (math.inf, 10_000, "unreliable"),
                (math.nan, 10_000, "unreliable"), (-1.0, 100, "good")]  # fmt: skip


@pytest.mark.parametrize(("k", "samples", "label"), K_HAT_LABELS)
def test_k_hat_thresholds_depend_on_the_sample_size(k, samples, label):
    assert interpret(k, samples) == label


def test_k_hat_threshold_formula():
    assert khat_threshold(100) == 0.5 and khat_threshold(1000) == pytest.approx(2 / 3)
    assert khat_threshold(10_000) == khat_threshold(10**8) == 0.7


# Log-mean-exp --------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(-700.0, 700.0), min_size=2, max_size=50),
    st.floats(-1e6, 1e6),
)
def test_log_mean_exp_is_stable_for_weights_spanning_1e300(log_w, shift):
    log_w = np.array(log_w)
    value, se = log_mean_exp_se(log_w + shift)
    assert math.isfinite(value) and math.isfinite(se) and se >= 0
    # Shift-equivariant, between max - log n and max.
    assert value - shift == pytest.approx(
        log_mean_exp(log_w), abs=1e-9 * (1 + abs(shift)) / (1 + abs(shift)) + 1e-9
    )
    assert log_w.max() - np.log(log_w.size) - 1e-9 <= value - shift <= log_w.max() + 1e-9


def test_log_mean_exp_of_weights_1e300_apart():
    log_w = np.array([np.log(1e300), np.log(1e-300), 0.0])
    value, se = log_mean_exp_se(log_w)
    assert value == pytest.approx(np.log(1e300 / 3), rel=1e-14)
    # Shifted weights (1, 0, 1e-300): sd = sqrt(1/3), mean = 1/3, SE = sqrt(1/3) / (sqrt(3) / 3) = 1.
    assert se == pytest.approx(1.0, rel=1e-12)


# Registry and bad inputs ---------------------------------------------------------------------------


def test_registry_lists_every_estimator_with_a_valid_quantity_and_kind():
    names = estimators.names()
    expected = {"ais", "bdmc", "elbo", "harmonic_mean", "importance", "inclusive_kl", "iwae",
                "kl_analytic", "kl_identity", "kl_monte_carlo", "laplace", "psis",
                "psis_log_evidence"}  # fmt: skip
    assert expected <= set(names)
    for name in names:
        est = estimators.get(name)
        assert est.quantity in estimators.QUANTITIES and est.kind in estimators.KINDS


def test_estimators_that_need_an_oracle_say_why_they_do_not_apply():
    problem = Problem.build("normal_normal", 0)
    target = dataclasses.replace(NumPyroTarget(problem), problem=Problem(
        dataclasses.replace(problem.spec, oracle=None), problem.params, problem.data, 0))  # fmt: skip
    assert target.exact is None
    guide = imperfect_guide(problem)
    for name in ("bdmc", "harmonic_mean", "inclusive_kl", "kl_monte_carlo", "kl_analytic"):
        assert "oracle" in estimators.get(name).applies(target, guide)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: estimators.get("iwae", k=0), r"K must be an integer >= 1"),
        (lambda: estimators.get("importance", n=10_000), r"K = 10000 needs n >= 2K = 20000"),
        (lambda: estimators.get("ais", chains=0), r"chains .* integer >= 2"),
        (lambda: estimators.get("ais", temperatures=0), r"temperatures must be an integer >= 1"),
        (lambda: estimators.get("ais", chain=3), r"no setting 'chain'; valid: .*chains"),
        (lambda: estimators.get("nope"), r"valid: .*importance"),
        (lambda: iwae_bound(np.zeros(10), 6), r"at least 2K = 12 weights"),
        (lambda: iwae_bound(np.zeros(10), 0), r"K >= 1"),
        (lambda: log_mean_exp_se(np.array([0.0, np.nan])), r"NaN or \+inf"),
        (lambda: log_mean_exp_se(np.zeros((2, 2))), r"1-D array"),
        (lambda: psis_diagnostic(None, None), r"'psis' needs a fitted guide"),
    ],
)
def test_bad_input_raises_a_clear_error(call, match):
    with pytest.raises((ValueError, KeyError, TypeError), match=match):
        call()


def test_bad_shapes_and_foreign_guides_are_rejected():
    problem = Problem.build("normal_normal", 0)
    target = NumPyroTarget(problem)
    with pytest.raises(ValueError, match=r"shape \(1,\), got \(2,\)"):
        target.log_joint_u(np.zeros(2))
    with pytest.raises(ValueError, match=r"shape \(n, 1\)"):
        target.constrain(np.zeros(3))
    with pytest.raises(ValueError, match=r"lack sites \['mu'\]"):
        target.unconstrain({"w": np.zeros((2, 3))})
    with pytest.raises(ValueError, match=r"do not fit guide"):
        FittedGuide(problem, "mean_field", {"w.loc": np.zeros(10), "w.log_scale": np.zeros(10)})
    with pytest.raises(TypeError, match=r"'importance' needs a fitted guide"):
        estimators.get("importance").estimate(target, None, seed=0)
    with pytest.raises(ValueError, match=r"integer >= 1"):
        log_weights(target, imperfect_guide(problem), 0, seed=0)


@pytest.mark.parametrize("model", ["normal_normal", "bayes_linreg", "gamma_poisson"])
def test_khat_of_an_exact_guide_is_minus_infinity_on_every_model(model):
    """q = p makes every log weight log p(x) up to float64 rounding: no tail to fit. The k-hat is the
    same on every model (-inf, "good"), not whatever a fit to rounding noise returns."""
    from ppl_suite.estimators.cache import EvaluationCache
    from ppl_suite.estimators.psis import psis_diagnostic
    from ppl_suite.targets.build import target_for
    from ppl_suite.targets.exact_guide import exact_guide

    problem = Problem.build(model, 0, {})
    target, guide, cache = target_for(problem), exact_guide(problem), EvaluationCache()
    estimate = psis_diagnostic(target, guide, 2000, seed=1, cache=cache)
    assert estimate.value == -math.inf and estimate.extras["interpretation"] == "good"
    assert estimate.reliability == "reliable"
    again = psis_diagnostic(target, guide, 2000, seed=1, cache=cache)  # the same draws, fitted once
    assert again.value == estimate.value and len(cache) == 1
