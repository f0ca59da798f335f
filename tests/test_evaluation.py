"""The evaluation pipeline: independent named streams, a per-cell cache, the cell's evaluation as
estimator rows with its columns derived from them (each checked against a closed form), the identity
residual with its rounding floor, the enumerated identity from independent terms, and determinism in
Pyro cells."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import models
from ppl_suite import estimators, schema
from ppl_suite.backends import SVIConfig
from ppl_suite.cell import Cell
from ppl_suite.cell_columns import EVALUATION, evaluation_columns
from ppl_suite.estimators.cache import EvaluationCache
from ppl_suite.estimators.enumerated import enumerated_terms
from ppl_suite.estimators.rounding import rounding_floor
from ppl_suite.estimators.streams import stream_seed
from ppl_suite.execute import cell_estimators, evaluate, execute, truth_columns
from ppl_suite.problem import Problem
from ppl_suite.targets.build import target_for
from ppl_suite.targets.exact_guide import exact_guide, gaussian_guide
from ppl_suite.targets.fitted_guide import FittedGuide
from ppl_suite.targets.reference_posterior import ReferencePosterior
from tests.test_estimators_support import imperfect_guide

EXACT = [name for name in models.names() if exact_guide(Problem.build(name, 0)) is not None]


def evaluated(target, guide, n: int, seed: int = 0, cache: EvaluationCache | None = None):
    """(columns, rows): a cell's truth and evaluation columns as a run derives them, and its rows of the
    estimates table (``execute.evaluate``)."""
    cell = Cell(target.problem.spec.name, "handrolled", guide.family, seed=seed, eval_samples=n)
    rows = evaluate(cell, target, guide, cache if cache is not None else EvaluationCache())
    return truth_columns(target) | evaluation_columns(rows), rows


def test_stream_seeds_are_stable_distinct_and_keyed_by_name():
    assert stream_seed(0, "elbo") == stream_seed(0, "elbo")  # no process-dependent hash()
    seeds = {stream_seed(seed, name) for seed in range(3) for name in ("elbo", "kl_monte_carlo", "psis")}
    assert len(seeds) == 9 and all(0 <= s < 2**63 for s in seeds)
    # not Python's per-process hash(): a fresh interpreter derives the same seed
    import subprocess
    import sys

    code = "from ppl_suite.estimators.streams import stream_seed; print(stream_seed(7, 'psis'))"
    assert int(subprocess.check_output([sys.executable, "-c", code], text=True)) == stream_seed(7, "psis")
    with pytest.raises(ValueError, match="integer >= 0"):
        stream_seed(-1, "elbo")


@pytest.fixture(scope="module")
def normal_normal():
    problem = Problem.build("normal_normal", 0)
    return problem, target_for(problem), imperfect_guide(problem)


def test_importance_iwae_and_psis_share_one_set_of_weights_per_cell(normal_normal):
    _, target, guide = normal_normal
    cache = EvaluationCache()
    importance = estimators.get("importance", n=2000, ks=(1, 10, 100)).estimate(target, guide, 3, cache)
    psis = estimators.get("psis", n=2000).estimate(target, guide, 3, cache)
    iwae = estimators.get("iwae", k=100, repeats=20).estimate(target, guide, 3, cache)
    # one draw of 2000 weights served all three; a second, independent, gives importance its label
    assert len(cache) == 2
    assert importance.extras["k_hat"] == psis.value == iwae.extras["k_hat"]
    assert iwae.value == importance.extras["iwae"][2]  # K = 100 from the same weights
    uncached = estimators.get("psis", n=2000).estimate(target, guide, 3)
    assert uncached.value == psis.value  # the cache changes the cost, never the numbers


def test_the_cells_evaluation_draws_the_elbo_once_and_its_monte_carlo_kl_independently(normal_normal):
    """The ELBO's draws serve elbo, kl_identity, identity and optimization_gap (one cache entry); the
    Monte Carlo KL has its own stream, so the two KL routes are independent."""
    _, target, guide = normal_normal
    cache = EvaluationCache()
    columns, rows = evaluated(target, guide, 4000, seed=5, cache=cache)
    assert [row[schema.ESTIMATOR] for row in rows] == list(EVALUATION)
    assert len(cache) == 2  # the ELBO's draws and the Monte Carlo KL's
    assert columns["kl_identity"] == columns["log_evidence"] - columns["elbo"]
    assert columns["kl_mc"] != columns["kl_identity"]


def test_the_evaluation_columns_do_not_depend_on_the_cache_or_the_order(normal_normal):
    """Each plug-in alone, uncached, in reverse order, gives its row's numbers bit for bit: streams are
    keyed by name, and the cache changes the cost only."""
    _, target, guide = normal_normal
    _, rows = evaluated(target, guide, 2000, seed=4)
    cell = Cell("normal_normal", "handrolled", guide.family, seed=4, eval_samples=2000)
    for estimator, row in reversed(list(zip(cell_estimators(cell), rows, strict=True))):
        if row[schema.STATUS] == schema.ESTIMATE_OK:
            alone = estimator.estimate(target, guide, 4)
            assert (alone.value, alone.se, alone.extras) == (
                row["value"],
                row["se"],
                schema.extras(row["extras"]),
            )


def test_evaluation_columns_of_a_narrowed_gaussian_are_its_closed_forms(normal_normal):
    """q = N(m, (kappa s)^2) against the posterior N(m, s^2) of normal_normal (one coordinate), in the
    mean-field family, which holds the posterior (smallest KL 0): KL = log(1 / kappa) + (kappa^2 - 1) / 2
    and ELBO = log p(x) - KL exactly, so every derived column has a known value."""
    problem, target, _ = normal_normal
    kappa = 0.5
    truth = math.log(1 / kappa) + (kappa**2 - 1) / 2
    columns, _ = evaluated(target, gaussian_guide(problem, "mean_field", kappa), 10_000, seed=2)
    assert columns["log_evidence"] == problem.exact().log_evidence and columns["log_evidence_se"] == 0.0
    # closed form against closed form: float64 rounding of terms of the sizes of log kappa^2, kappa^2 and 1
    floor = rounding_floor(2 * math.log(kappa), kappa**2, 1.0)
    assert columns["kl_method"] == "analytic" and abs(columns["kl"] - truth) <= 4 * floor
    assert columns["kl_analytic"] == columns["kl"] and columns["kl_se"] == 0.0
    assert columns["kl_reliability"] == "reliable"
    assert abs(columns["elbo"] - (columns["log_evidence"] - truth)) <= 4 * columns["elbo_se"]
    assert columns["elbo_reliability"] == "reliable" and columns["elbo_seconds"] > 0
    assert abs(columns["kl_mc"] - truth) <= 4 * columns["kl_mc_se"]
    assert abs(columns["kl_identity"] - truth) <= 4 * columns["elbo_se"]
    assert abs(columns["residual_se"]) <= 4 and 0 < columns["residual_floor"] < columns["elbo_se"]
    assert columns["kl_family_min"] == 0.0 and columns["optimization_gap"] == columns["kl"]
    assert columns["converged"] is False  # a gap of 0.32 nats


def test_kl_by_reference_is_the_reference_evidence_less_the_elbo(normal_normal):
    """normal_normal without its oracle, measured against a reference whose evidence is the exact
    log p(x) with an SE: KL = log p(x)_ref - ELBO within 4 SE of the closed form, SE sqrt(SE_ELBO^2 +
    SE_ref^2); an unreliable evidence leaves the KL without an SE."""
    problem, _, _ = normal_normal
    exact, kappa = problem.exact(), 0.5
    truth = math.log(1 / kappa) + (kappa**2 - 1) / 2
    blind = Problem(dataclasses.replace(problem.spec, oracle=None), problem.params, problem.data, 0)
    guide = gaussian_guide(problem, "mean_field", kappa)
    for se, diagnostic in ((0.05, ""), (None, "AIS unreliable: chain ESS 3")):
        reference = ReferencePosterior({}, 1000.0, exact.log_evidence, se, diagnostic)
        columns, _ = evaluated(target_for(blind, reference), guide, 10_000, seed=3)
        assert columns["kl_method"] == schema.KL_BY_REFERENCE and math.isnan(columns["kl_mc"])
        assert columns["log_evidence"] == exact.log_evidence
        if se is None:
            assert columns["kl_reliability"] == "unreliable" and math.isnan(columns["kl_se"])
            assert math.isnan(columns["log_evidence_se"])
        else:
            assert columns["kl_se"] == math.sqrt(columns["elbo_se"] ** 2 + se**2)
            assert abs(columns["kl"] - truth) <= 4 * columns["kl_se"]
        assert math.isnan(columns["residual_se"]) and columns["converged"] is None


def test_a_configured_evaluation_estimator_runs_once_with_its_settings():
    """[estimators] elbo = {n = 500} sets the cell's ELBO's draws; the others keep the evaluation
    samples; an estimator outside the evaluation runs after it."""
    cell = Cell("normal_normal", "handrolled", "mean_field", eval_samples=3000,
                estimators=(("psis", (("n", 700),)), ("elbo", (("n", 500),))))  # fmt: skip
    chosen = cell_estimators(cell)
    assert [e.name for e in chosen] == [*EVALUATION, "psis"]
    settings = {e.name: estimators.settings_of(e) for e in chosen}
    assert settings["elbo"] == {"n": 500} and settings["psis"]["n"] == 700
    assert settings["identity"] == {"n": 3000} and settings["kl_analytic"] == {}


def test_optimization_gap_of_a_narrowed_gaussian_is_its_closed_form_kl(normal_normal):
    """q = N(m, (kappa s)^2) against the posterior N(m, s^2) in the mean-field family, whose minimum is
    0 (it holds the posterior): gap = KL = log(1 / kappa) + (kappa^2 - 1) / 2, exactly."""
    from ppl_suite.targets.exact_guide import gaussian_guide

    problem, target, _ = normal_normal
    kappa = 0.5
    guide = gaussian_guide(problem, "mean_field", kappa)
    estimate = estimators.get("optimization_gap").estimate(target, guide, 0)
    assert estimate.se == 0.0  # the closed-form KL: no Monte Carlo
    assert estimate.value == pytest.approx(math.log(1 / kappa) + (kappa**2 - 1) / 2, rel=1e-12)


@pytest.mark.parametrize("model", EXACT)
def test_identity_residual_of_an_exact_guide_is_within_4_with_the_rounding_floor(model):
    """q = p(z | x): every ELBO term is log p(x) up to rounding, the SE collapses to ~1e-16 and the
    KL is 0; the residual is float64 rounding only, which the floor accounts for."""
    problem = Problem.build(model, 0)
    columns, _ = evaluated(target_for(problem), exact_guide(problem), 10_000, seed=0)
    assert columns["elbo_se"] < 1e-12 and abs(columns["kl"]) < 1e-11
    assert abs(columns["residual_se"]) <= 4, (columns["residual_se"], columns["residual_floor"])
    assert columns["elbo_reliability"] == "unreliable"  # its SE is below rounding: it says so


def test_identity_residual_without_the_floor_would_raise_the_false_alarm():
    """The floor matters: on beta_bernoulli (data 0) the residual exceeds 4 ELBO standard errors."""
    problem = Problem.build("beta_bernoulli", 0)
    columns, _ = evaluated(target_for(problem), exact_guide(problem), 10_000, seed=0)
    residual = columns["log_evidence"] - columns["elbo"] - columns["kl"]
    assert abs(residual) > 4 * columns["elbo_se"]
    assert columns["residual_floor"] > columns["elbo_se"]


def test_enumerated_identity_from_independent_terms():
    """gaussian_mixture: ELBO summed over the states with the model's log joint, KL over the states
    with the oracle's posterior; they add up to the oracle's log p(x), and a wrong model shows."""
    problem = Problem.build("gaussian_mixture", 0)
    exact = problem.exact()
    terms = enumerated_terms(target_for(problem))
    assert abs(terms.kl.value) < 1e-10 and terms.elbo.se == 0.0
    floor = np.finfo(float).eps * (abs(exact.log_evidence) + terms.magnitude)
    assert abs(exact.log_evidence - terms.elbo.value - terms.kl.value) <= 4 * floor
    # the model at other mixing weights, the oracle left at the original ones: the identity breaks
    shifted = target_for(problem.with_params({"logits": np.array([1.0, 0.0, -1.0])}))
    object.__setattr__(shifted, "exact", exact)  # overrides the cached oracle of the shifted weights
    mismatch = enumerated_terms(shifted)
    assert mismatch.kl.value > 0.1
    assert abs(exact.log_evidence - mismatch.elbo.value - mismatch.kl.value) > 1.0


def test_enumerated_cells_report_the_suite_terms_with_the_library_elbo_as_cross_check():
    record = execute(Cell("gaussian_mixture", "numpyro", "enumerate", svi=SVIConfig(steps=200)))
    row = record.row
    assert record.ok, row["error"]
    assert row["kl_method"] == "enumerated" and abs(row["residual_se"]) <= 4
    assert row["library_elbo"] == pytest.approx(row["elbo"], abs=1e-9)
    assert row["kl_identity"] == row["log_evidence"] - row["elbo"] and row["elbo_se"] == 0.0
    assert row == row | evaluation_columns(record.estimates)  # the row's columns are its estimates'


def test_pyro_cells_evaluate_deterministically():
    """Two runs of the same Pyro cell give the same row, bit for bit, although torch's global
    generator has moved in between: every evaluation stream seeds its own fork."""
    import torch

    settings = (("importance", (("n", 2000), ("ks", (1, 10)))), ("psis", (("n", 2000),)))
    cell = Cell(
        "normal_normal", "pyro", "mean_field", svi=SVIConfig(steps=50), eval_samples=2000, estimators=settings
    )
    first = execute(cell)
    torch.rand(7)
    second = execute(cell)
    assert first.ok and second.ok, first.row["error"]
    skip = {"wall_seconds", "compile_seconds", "fit_seconds", "steps_per_second"}
    for key, value in first.row.items():
        if key in skip or key.endswith("seconds"):
            continue
        assert second.row[key] == value or (isinstance(value, float) and math.isnan(value)), key
    np.testing.assert_array_equal(first.artifacts["q_draws"], second.artifacts["q_draws"])


def test_fitted_guide_samples_deterministically_and_kl_to_matches_monte_carlo(normal_normal):
    problem, _, guide = normal_normal
    again = FittedGuide(problem, guide.family, dict(guide.params))
    np.testing.assert_array_equal(guide.sample(11, 50)["mu"], again.sample(11, 50)["mu"])
    assert not guide.samples_nothing
    exact = problem.exact()
    z = guide.sample(12, 20_000)
    terms = guide.log_q(z) - exact.log_density(z)
    se = terms.std(ddof=1) / np.sqrt(terms.size)
    assert abs(guide.kl_to(exact.factors()) - terms.mean()) < 4 * se
    assert guide.kl_to({}) is None  # a site without a factor: no closed form


def test_autoguide_families_have_the_minimum_of_the_covariance_they_can_hold():
    """AutoNormal and AutoDiagonalNormal are mean-field; AutoMultivariateNormal holds a Gaussian
    posterior (0); a flow or Laplace has no closed-form minimum."""
    from ppl_suite.estimators.kl import kl_family_minimum

    problem = Problem.build("bayes_linreg", 0)
    exact, sites = problem.exact(), problem.sites
    mean_field = kl_family_minimum(sites, "mean_field", exact)
    assert mean_field > 0
    for family in ("auto_normal", "auto_normal_matched", "auto_diagonal_normal"):
        assert kl_family_minimum(sites, family, exact) == mean_field
    assert kl_family_minimum(sites, "auto_multivariate_normal_matched", exact) == 0.0
    assert kl_family_minimum(sites, "auto_iaf_normal", exact) is None
