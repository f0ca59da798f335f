"""`ppl_suite.diagnose` on fits the tests make themselves, as a user makes them: its log p(x) and KL
against closed forms (Bayesian linear regression with known noise: Gaussian posterior and evidence),
its agreement with `check` for the same guide family, and bad input refused with one sentence each."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pytest

import ppl_suite
from ppl_suite.errors import InputProblem

PRIOR_SCALE, NOISE = 1.0, 0.5
# tiny reference settings: the default run's NumPyro test builds one (chains vectorized)
QUICK_NUTS = {"chains": 2, "warmup": 300, "draws": 500, "ess_min": 200}


def regression_data(centre: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """X = [1, x] with x off centre (the posterior of (intercept, slope) is correlated, so a
    mean-field q has KL > 0), y from known weights."""
    rng = np.random.default_rng(1)
    x = rng.normal(centre, 1.0, 30)
    design = np.stack([np.ones_like(x), x], axis=1)
    return design, design @ np.array([0.5, -1.0]) + NOISE * rng.normal(size=x.size)


def exact_posterior(design: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(mean, covariance, log p(y)) of w ~ N(0, s0^2 I), y ~ N(X w, sigma^2 I): the Gaussian posterior
    and the evidence y ~ N(0, sigma^2 I + s0^2 X X^T)."""
    from scipy.stats import multivariate_normal

    precision = np.eye(design.shape[1]) / PRIOR_SCALE**2 + design.T @ design / NOISE**2
    covariance = np.linalg.inv(precision)
    mean = covariance @ design.T @ y / NOISE**2
    marginal = NOISE**2 * np.eye(len(y)) + PRIOR_SCALE**2 * design @ design.T
    return mean, covariance, float(multivariate_normal(np.zeros(len(y)), marginal).logpdf(y))


def gaussian_kl(loc: np.ndarray, scale: np.ndarray, mean: np.ndarray, covariance: np.ndarray) -> float:
    """KL(N(loc, diag(scale^2)) || N(mean, covariance)) in closed form:
    (tr(S^-1 Q) + (m - l)^T S^-1 (m - l) - d + log det S - log det Q) / 2."""
    inverse = np.linalg.inv(covariance)
    diff = mean - loc
    return 0.5 * float(
        np.trace(inverse @ np.diag(scale**2)) + diff @ inverse @ diff - len(loc)
        + np.linalg.slogdet(covariance)[1] - np.sum(np.log(scale**2))
    )  # fmt: skip


def numpyro_model(design, y=None):
    import numpyro
    import numpyro.distributions as dist

    with numpyro.plate("coefficients", design.shape[1]):
        w = numpyro.sample("w", dist.Normal(0.0, PRIOR_SCALE))
    with numpyro.plate("data", design.shape[0]):
        numpyro.sample("y", dist.Normal(design @ w, NOISE), obs=y)


def pyro_model(design, y=None):
    import pyro
    import pyro.distributions as dist

    with pyro.plate("coefficients", design.shape[1]):
        w = pyro.sample("w", dist.Normal(0.0, PRIOR_SCALE))
    with pyro.plate("data", design.shape[0]):
        pyro.sample("y", dist.Normal(design @ w, NOISE), obs=y)


def numpyro_autonormal(steps: int, design: np.ndarray, y: np.ndarray):
    """An AutoNormal of the NumPyro model and its parameters after ``steps`` SVI steps (0: parameters
    set by hand, as SVI names them: no compilation)."""
    import jax
    import numpyro
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoNormal

    jax.config.update("jax_enable_x64", True)
    guide = AutoNormal(numpyro_model)
    svi = SVI(numpyro_model, guide, numpyro.optim.Adam(0.02), Trace_ELBO())
    if steps == 0:
        return guide, {"w_auto_loc": np.array([0.3, -1.0]), "w_auto_scale": np.array([0.2, 0.1])}
    return guide, svi.run(jax.random.PRNGKey(0), steps, design, y=y, progress_bar=False).params


def pyro_autonormal(steps: int, design: np.ndarray, y: np.ndarray):
    """An AutoNormal of the Pyro model and Pyro's param store after ``steps`` SVI steps."""
    import pyro
    import torch
    from pyro.infer import SVI, Trace_ELBO
    from pyro.infer.autoguide import AutoNormal

    torch.set_default_dtype(torch.float64)
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    guide = AutoNormal(pyro_model)
    svi = SVI(pyro_model, guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(max(steps, 1)):
        svi.step(torch.tensor(design), y=torch.tensor(y))
    return guide, pyro.get_param_store()


@pytest.fixture(scope="module")
def numpyro_start():
    design, y = regression_data()
    return (*numpyro_autonormal(0, design, y), design, y)


@pytest.fixture(scope="module")
def pyro_start():
    """A Pyro AutoNormal after one step, and its parameters as a dict of tensors."""
    design, y = regression_data()
    guide, store = pyro_autonormal(1, design, y)
    return guide, {k: v.detach().clone() for k, v in store.items()}, design, y


def pyro_q(params) -> tuple[np.ndarray, np.ndarray]:
    return tuple(params[f"AutoNormal.{kind}.w"].detach().numpy().copy() for kind in ("locs", "scales"))


def test_the_elbo_of_a_pyro_autonormal_is_its_closed_form_within_4_se(pyro_start, monkeypatch):
    """ELBO = log p(x) - KL(q || p), both in closed form for a Gaussian q and posterior (the NUTS
    reference, a minute through the torch bridge, is not what this test checks: the slow test below)."""
    import torch

    from ppl_suite.diagnosing import api

    monkeypatch.setattr(api, "_nuts_reference", lambda *arguments: (None, "", "", None))
    guide, store, design, y = pyro_start
    found = ppl_suite.diagnose(
        pyro_model, guide, store, args=(torch.tensor(design),), kwargs={"y": torch.tensor(y)}, draws=200
    )
    mean, covariance, log_evidence = exact_posterior(design, y)
    exact = log_evidence - gaussian_kl(*pyro_q(store), mean, covariance)
    assert abs(found.elbo - exact) <= 4 * found.elbo_se
    assert found.library == "pyro" and found.guide == "AutoNormal"


@pytest.mark.slow
def test_a_numpyro_autonormal_fit_has_the_exact_log_evidence_and_kl_within_4_se(tmp_path):
    design, y = regression_data()
    guide, params = numpyro_autonormal(2000, design, y)
    found = ppl_suite.diagnose(
        numpyro_model, guide, params, args=(design,), kwargs={"y": y}, draws=4000, nuts=QUICK_NUTS,
        cache=tmp_path / "references",
    )  # fmt: skip
    mean, covariance, log_evidence = exact_posterior(design, y)
    kl = gaussian_kl(np.asarray(params["w_auto_loc"]), np.asarray(params["w_auto_scale"]), mean, covariance)
    assert kl > 0.05  # mean-field q of a correlated posterior: a KL the test can see
    assert abs(found.log_evidence - log_evidence) <= 4 * found.log_evidence_se
    assert abs(found.kl - kl) <= 4 * found.kl_se
    assert found.kl_se == pytest.approx(math.hypot(found.elbo_se, found.log_evidence_se))
    assert found.q.posterior["w"].shape == (4, 1000, 2) and found.reference is not None
    files = found.report(tmp_path / "report")
    assert {"md", "html", "q", "reference"} <= set(files)
    assert "KL(q || p(z | x))" in files["md"].read_text()


@pytest.mark.slow
def test_a_pyro_autonormal_fit_has_the_exact_log_evidence_and_kl_within_4_se(tmp_path):
    """log p(x) by AIS against the NUTS reference, both run on the Pyro model's density (the torch
    bridge), as for a NumPyro model; q's scales widened 1.5 times in the param store (any q can be
    diagnosed)."""
    import torch

    design, y = regression_data()
    guide, store = pyro_autonormal(1000, design, y)
    store["AutoNormal.scales.w"] = 1.5 * store["AutoNormal.scales.w"].detach()
    found = ppl_suite.diagnose(
        pyro_model, guide, store, args=(torch.tensor(design),), kwargs={"y": torch.tensor(y)}, draws=4000,
        nuts=QUICK_NUTS, cache=tmp_path / "references",
    )  # fmt: skip
    mean, covariance, log_evidence = exact_posterior(design, y)
    kl = gaussian_kl(*pyro_q(store), mean, covariance)
    assert kl > 0.05
    assert found.k_hat_verdict == "reliable"
    assert abs(found.log_evidence - log_evidence) <= 4 * found.log_evidence_se
    assert abs(found.kl - kl) <= 4 * found.kl_se
    assert found.reference is not None and found.log_evidence_method == "AIS against the NUTS reference"
    assert math.isfinite(found.mean_error) and math.isfinite(found.sd_error)  # against the reference


# ------------------------------------------------------------------- q from the guide's own trace
def test_log_q_of_a_hand_written_numpyro_guide_is_its_density_at_its_own_draws():
    import numpyro
    import numpyro.distributions as dist
    from scipy.stats import norm

    from ppl_suite.diagnosing.bound_model import bind
    from ppl_suite.diagnosing.traced_guide import numpyro_guide

    design, y = regression_data()

    def guide(design, y=None):
        loc = numpyro.param("loc", np.zeros(2))
        scale = numpyro.param("scale", np.ones(2), constraint=dist.constraints.positive)
        with numpyro.plate("coefficients", 2):
            numpyro.sample("w", dist.Normal(loc, scale))

    params = {"loc": np.array([0.3, -1.0]), "scale": np.array([0.2, 0.1])}
    bound = bind(numpyro_model, (design,), {"y": y}, library="numpyro")
    q = numpyro_guide(guide, params, *bound.arguments(), bound.sites)
    draws = q.sample(0, 2000)
    expected = norm(params["loc"], params["scale"]).logpdf(draws["w"]).sum(axis=1)
    np.testing.assert_allclose(q.log_q(draws), expected, rtol=1e-12, atol=1e-12)
    assert np.all(np.abs(draws["w"].mean(0) - params["loc"]) <= 4 * params["scale"] / np.sqrt(2000))
    with pytest.raises(ValueError, match="not drawn by this guide"):
        q.log_q({"w": draws["w"] + 1.0})


@pytest.mark.slow
def test_log_q_of_an_automultivariatenormal_sums_its_latent_and_delta_sites_to_its_density():
    """AutoMultivariateNormal samples a packed u and returns w as a Delta site: the trace's sum is
    log q(w), its MultivariateNormal's density at w (a real site: no Jacobian). Slow: an
    AutoContinuous sets itself up by compiling the model's potential (15-30 s on a busy machine; a
    fitted guide has done so already)."""
    from numpyro.infer.autoguide import AutoMultivariateNormal

    from ppl_suite.diagnosing.bound_model import bind
    from ppl_suite.diagnosing.traced_guide import numpyro_guide

    design, y = regression_data()
    guide = AutoMultivariateNormal(numpyro_model)
    params = {"auto_loc": np.array([0.3, -1.0]), "auto_scale_tril": np.array([[0.2, 0.0], [-0.05, 0.1]])}
    bound = bind(numpyro_model, (design,), {"y": y}, library="numpyro")
    q = numpyro_guide(guide, params, *bound.arguments(), bound.sites)
    draws = q.sample(1, 500)
    posterior = guide.get_posterior(params)
    np.testing.assert_allclose(q.log_q(draws), np.asarray(posterior.log_prob(draws["w"])), rtol=1e-10)


# ---------------------------------------------------------------------------------------- bad input
def problems(*args, **kwargs) -> list[str]:
    with pytest.raises(InputProblem) as raised:
        ppl_suite.diagnose(*args, **kwargs)
    return raised.value.problems


def test_params_of_another_fit_are_refused_naming_the_missing_and_unknown_parameters(numpyro_start):
    guide, params, design, y = numpyro_start
    wrong = {"theta_auto_loc": params["w_auto_loc"], "w_auto_scale": params["w_auto_scale"]}
    (missing, unused) = problems(numpyro_model, guide, wrong, args=(design,), kwargs={"y": y})
    assert "'w_auto_loc'" in missing and "params lack" in missing
    assert "'theta_auto_loc'" in unused and "not parameters of guide AutoNormal" in unused


def test_a_param_of_the_wrong_shape_is_refused_naming_both_shapes(numpyro_start):
    guide, params, design, y = numpyro_start
    wrong = {**params, "w_auto_loc": np.zeros(3)}
    (problem,) = problems(numpyro_model, guide, wrong, args=(design,), kwargs={"y": y})
    assert "(3,)" in problem and "(2,)" in problem


def test_a_guide_of_another_model_is_refused_naming_the_sites(numpyro_start):
    import numpyro
    import numpyro.distributions as dist

    _, _, design, y = numpyro_start

    def other_guide(design, y=None):
        loc = numpyro.param("loc", np.zeros(2))
        numpyro.sample("theta", dist.Normal(loc, 1.0).to_event(1))

    found = problems(numpyro_model, other_guide, {"loc": np.zeros(2)}, args=(design,), kwargs={"y": y})
    assert any("does not sample the model's latent site 'w'" in p for p in found)
    assert any("samples 'theta', which is not a latent site" in p for p in found)


def test_autodelta_is_refused_as_a_point_mass(numpyro_start):
    from numpyro.infer.autoguide import AutoDelta

    _, _, design, y = numpyro_start
    (problem,) = problems(numpyro_model, AutoDelta(numpyro_model), {}, args=(design,), kwargs={"y": y})
    assert "point mass" in problem and "AutoNormal" in problem


def test_arguments_the_model_cannot_take_are_refused_naming_its_parameters(numpyro_start):
    guide, params, design, y = numpyro_start
    (problem,) = problems(numpyro_model, guide, params, args=(design,), kwargs={"obs": y})
    assert "numpyro_model(design, y)" in problem and "obs" in problem


def test_pyro_params_of_another_guide_are_refused(pyro_start):
    import torch

    guide, _, design, y = pyro_start
    wrong = {"AutoNormal.locs.b": torch.zeros(2), "AutoNormal.scales.w": torch.ones(2)}
    (missing, unused) = problems(
        pyro_model, guide, wrong, args=(torch.tensor(design),), kwargs={"y": torch.tensor(y)}
    )
    assert "'AutoNormal.locs.w'" in missing and "'AutoNormal.locs.b'" in unused


def test_a_pyro_param_store_holding_another_fits_parameters_gives_the_guide_its_own(pyro_start):
    import pyro
    import torch

    from ppl_suite.diagnosing.bound_model import bind
    from ppl_suite.diagnosing.traced_guide import pyro_guide

    guide, params, design, y = pyro_start
    bound = bind(pyro_model, (torch.tensor(design),), {"y": torch.tensor(y)}, library="pyro")
    store = pyro.get_param_store()
    with store.scope():
        store.clear()
        pyro.param("another_fit.loc", torch.zeros(3))
        for name, value in params.items():
            pyro.param(name, value.clone())
        q = pyro_guide(guide, store, *bound.arguments(), bound.sites)
        draws = q.sample(0, 3)
    assert sorted(q.params) == sorted(params) and draws["w"].shape == (3, 2)


def test_bad_options_are_refused_together_before_anything_runs(numpyro_start):
    guide, params, design, _ = numpyro_start
    found = problems(numpyro_model, guide, [params], args=design, draws=10, nuts={"chains": 1})
    assert len(found) == 4 and any("draws" in p for p in found) and any("chains" in p for p in found)
    assert any("params: a list" in p for p in found) and any("args must be a tuple" in p for p in found)


# ------------------------------------------------------------------------------- against check (slow)
CHECKED_MODEL = """
import numpyro
import numpyro.distributions as dist


def model(data):
    with numpyro.plate("coefficients", 2):
        w = numpyro.sample("w", dist.Normal(0.0, {prior}))
    with numpyro.plate("data", data["design"].shape[0]):
        numpyro.sample("y", dist.Normal(data["design"] @ w, {noise}), obs=data["y"])
"""


@pytest.mark.slow
def test_diagnose_agrees_with_check_for_the_same_guide_family_within_4_combined_se(tmp_path, monkeypatch):
    """`check` fits AutoNormal itself; the user's AutoNormal fit, diagnosed, has the same KL and ELBO
    within 4 combined SE (both fits at the family's optimum; the same reference, from one cache)."""
    import importlib.util

    import jax
    import numpyro
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoNormal

    monkeypatch.setenv("PPL_SUITE_REFERENCE_CACHE", str(tmp_path / "references"))
    path = Path(tmp_path / "user_model.py")
    path.write_text(textwrap.dedent(CHECKED_MODEL.format(prior=PRIOR_SCALE, noise=NOISE)))
    design, y = regression_data()
    data = {"design": design, "y": y}
    nuts = {"draws": 1000, "ess_min": 400}
    checked = ppl_suite.check(
        f"{path}:model", data, guides=["auto_normal"], backend="numpyro", nuts=nuts,
        out=tmp_path / "results", report=False, jobs=1,
    )  # fmt: skip
    assert checked.exit_code == 0
    (row,) = checked.table.to_dict("records")
    spec = importlib.util.spec_from_file_location("user_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    jax.config.update("jax_enable_x64", True)
    guide = AutoNormal(module.model)
    svi = SVI(module.model, guide, numpyro.optim.Adam(0.01), Trace_ELBO(num_particles=16))
    params = svi.run(jax.random.PRNGKey(1), 4000, data, progress_bar=False).params
    found = ppl_suite.diagnose(module.model, guide, params, args=(data,), draws=10_000, nuts=nuts)
    assert abs(found.elbo - row["elbo"]) <= 4 * math.hypot(found.elbo_se, row["elbo_se"])
    assert abs(found.kl - row["kl"]) <= 4 * math.hypot(found.kl_se, row["kl_se"])
