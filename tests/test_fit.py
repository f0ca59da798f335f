"""Fit every (model, guide, backend) with default SVI settings and check what the suite reports.

- the identity log p(x) = ELBO + KL holds within 4 standard errors;
- the backend's own ELBO (Pyro's / NumPyro's Trace_ELBO) agrees with the hand-rolled one within 4 SE;
- where the family's best KL is closed-form, the fit reaches it (optimization gap < 0.01 nats) and
  never beats it by more than the KL's own noise; exact families reach KL < 1e-2. Guides of discrete
  latents learn from score-function gradients, which the shared default settings do not bring to
  0.01 nats: for those the test checks that the cell is honestly flagged instead.
"""

from __future__ import annotations

import math

import pytest

import models
from ppl_suite import backends, guides
from ppl_suite.checks import CONVERGED_GAP
from ppl_suite.problem import Problem
from tests.fitted_cells import fitted_row

CASES = [
    (name, guide, backend)
    for name in models.names()
    if models.get(name).oracle is not None
    for guide in models.get(name).guides
    if not guides.is_autoguide(guide)  # the libraries' autoguides: tests/test_autoguides.py
    for backend in backends.names()
    if backends.get(backend).unsupported(models.get(name), Problem.build(name, 0).sites, guide) is None
]


def score_function(row) -> bool:
    """Whether the guide samples discrete latents (no pathwise gradient)."""
    problem = Problem.build(row["model"], 0)
    phi = guides.get(row["guide"]).init_params(problem.sites, problem.data, problem.params)
    return bool(phi) and any(site.support == "integer" for site in problem.sites)


@pytest.fixture(scope="module", params=CASES, ids=["/".join(c) for c in CASES])
def row(request):
    name, guide, backend = request.param
    fitted = fitted_row(name, backend, guide)
    assert fitted["status"] == "ok", fitted["error"]
    return fitted


def test_identity_holds_within_4_se(row):
    assert abs(row["residual_se"]) < 4


def test_library_elbo_agrees_with_handrolled_elbo_within_4_se(row):
    if math.isnan(row["library_elbo"]):
        pytest.skip("the hand-rolled backend has no library ELBO")
    se = math.hypot(row["elbo_se"], row["library_elbo_se"])
    assert abs(row["library_elbo"] - row["elbo"]) < 4 * se + 1e-9


def test_kl_routes_agree_within_4_se(row):
    if row["kl_method"] == "enumerated":
        pytest.skip("enumeration: one KL route, summed exactly over the states")
    se = math.hypot(row["kl_mc_se"], row["elbo_se"])
    assert abs(row["kl_mc"] - row["kl_identity"]) < 4 * se + 1e-9
    if not math.isnan(row["kl_analytic"]):
        assert abs(row["kl_analytic"] - row["kl_mc"]) < 4 * row["kl_mc_se"] + 1e-9


def test_fit_reaches_the_family_optimum(row):
    if math.isnan(row["kl_family_min"]):
        pytest.skip("the family's best KL has no closed form for this model")
    noise = {"analytic": 0.0, "enumerated": 1e-8}.get(row["kl_method"], 4 * row["kl_mc_se"])
    assert row["kl"] >= row["kl_family_min"] - noise
    assert row["converged"] == (row["optimization_gap"] < CONVERGED_GAP)
    if score_function(row):
        pytest.skip(f"score-function fit, gap {row['optimization_gap']:.3f} nats, flagged accordingly")
    assert row["optimization_gap"] < CONVERGED_GAP + noise  # a Monte Carlo KL carries its own SE
    if row["kl_family_min"] == 0:
        assert row["kl"] < 1e-2


def test_normal_normal_fits_reach_kl_below_1e_3():
    for backend in backends.names():
        fitted = fitted_row("normal_normal", backend, "mean_field", data_seed=1, seed=1)
        assert fitted["status"] == "ok", fitted["error"]
        assert fitted["kl"] < 1e-3, backend
