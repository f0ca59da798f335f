"""A model given only in Pyro gets the InferenceData groups the NumPyro route gets
(``references.pyro_log_likelihood``): observed data, the pointwise log-likelihood log p(x_i | z) of each
observed site per draw, deterministic sites, dims named after plates; so ``az.loo`` runs on q's file
and on the reference's. Each of the three ways draws reach a Pyro model (vectorized, vmap, loop) gives
the closed form, and the NumPyro twin's groups, to 1e-9."""

from __future__ import annotations

import arviz as az
import numpy as np
import numpyro
import numpyro.distributions as ndist
import pyro
import pyro.distributions as dist
import pytest
from scipy.stats import norm

from ppl_suite import registry
from ppl_suite.backends import pyro_draws
from ppl_suite.problem import Problem
from ppl_suite.references import NUTSSettings, nuts
from ppl_suite.references.gates import GateResult
from ppl_suite.references.inference_data import CHAINS, draws_data, reference_data
from ppl_suite.spec import ModelSpec, Site
from ppl_suite.targets.pyro_target import PyroTarget

GROUPS, N, DRAWS = 3, 12, 40
GROUP = np.arange(N) % GROUPS
Y = np.random.default_rng(3).normal(GROUP - 1.0, 1.0)
SITES = (Site("mu"), Site("a", (GROUPS,)))


def one_draw(data, params):
    """Written for one draw: a[group] reads a's leftmost axis (the vmap path)."""
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    with pyro.plate("group", GROUPS):
        a = pyro.sample("a", dist.Normal(mu, 1.0))
        pyro.deterministic("a_centered", a - mu)
    with pyro.plate("observation", N):
        pyro.sample("y", dist.Normal(a[data["group"]], 1.0), obs=data["y"])


def broadcasting(data, params):
    """The same model written to broadcast: a[..., group] (the vectorized path)."""
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    with pyro.plate("group", GROUPS):
        a = pyro.sample("a", dist.Normal(mu, 1.0))
        pyro.deterministic("a_centered", a - mu)
    with pyro.plate("observation", N):
        pyro.sample("y", dist.Normal(a[..., data["group"]], 1.0), obs=data["y"])


def numpyro_twin(data, params):
    mu = numpyro.sample("mu", ndist.Normal(0.0, 5.0))
    with numpyro.plate("group", GROUPS):
        a = numpyro.sample("a", ndist.Normal(mu, 1.0))
        numpyro.deterministic("a_centered", a - mu)
    with numpyro.plate("observation", N):
        numpyro.sample("y", ndist.Normal(a[data["group"]], 1.0), obs=data["y"])


def _problem(name: str, pyro_model=None, numpyro_model=None) -> Problem:
    spec = ModelSpec(
        name=name,
        description="a test model with a plate, a deterministic site and an observed site",
        defaults={},
        sites=lambda params: SITES,
        generate_data=lambda rng, params: {"group": GROUP, "y": Y},
        guides=("mean_field",),
        problem_size=lambda params: 2 * N + 1 + GROUPS,
        fixed_data=True,
    )
    registry.register(spec, pyro_model=pyro_model, numpyro_model=numpyro_model, replace=True)
    return Problem.build(name, 0)


def _latents(n: int = DRAWS) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(4)
    return {"mu": rng.normal(0.0, 0.5, n), "a": rng.normal(np.array([-1.0, 0.0, 1.0]), 0.5, (n, GROUPS))}


def _closed_form(latents: dict[str, np.ndarray]) -> np.ndarray:
    """log N(y_i; a[group_i], 1) per draw and observation: (n, N)."""
    return norm.logpdf(Y, latents["a"][:, GROUP], 1.0)


def _by_draw(values) -> np.ndarray:
    values = np.asarray(values)
    return values.reshape(-1, *values.shape[2:])  # (chain, draw, ...) -> (n, ...): chains split in order


@pytest.mark.parametrize(
    "model, path",
    [(broadcasting, pyro_draws.VECTORIZED), (one_draw, pyro_draws.VMAP), (one_draw, pyro_draws.LOOP)],
)
def test_q_files_of_a_pyro_only_model_hold_the_closed_form_log_likelihood_by_every_draws_path(
    model, path, monkeypatch
):
    problem = _problem(f"pyro_only_{model.__name__}", pyro_model=model)
    found_path = PyroTarget(problem).draws_path
    assert found_path == (pyro_draws.VECTORIZED if model is broadcasting else pyro_draws.VMAP)
    monkeypatch.setattr(PyroTarget, "draws_path", path)  # LOOP: the fallback for a model vmap cannot run
    latents = _latents()
    q = draws_data(problem, latents)
    np.testing.assert_allclose(_by_draw(q.log_likelihood["y"]), _closed_form(latents), rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(q.observed_data["y"], Y)
    np.testing.assert_allclose(
        _by_draw(q.posterior["a_centered"]), latents["a"] - latents["mu"][:, None], rtol=1e-12, atol=1e-12
    )
    assert q.log_likelihood["y"].dims == ("chain", "draw", "observation")
    assert q.observed_data["y"].dims == ("observation",)
    assert q.posterior["a"].dims == q.posterior["a_centered"].dims == ("chain", "draw", "group")
    assert np.isfinite(az.loo(q).elpd_loo)


def broadcasting_with_a_mean(data, params):
    """Its log density broadcasts over draws on the left, its deterministic ``a.mean()`` does not (a
    batch of draws would give the mean over every draw)."""
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    with pyro.plate("group", GROUPS):
        a = pyro.sample("a", dist.Normal(mu, 1.0))
    pyro.deterministic("a_mean", a.mean())
    with pyro.plate("observation", N):
        pyro.sample("y", dist.Normal(a[..., data["group"]], 1.0), obs=data["y"])


def test_a_deterministic_site_that_does_not_broadcast_is_computed_per_draw_on_the_vectorized_path():
    problem = _problem("pyro_only_a_mean", pyro_model=broadcasting_with_a_mean)
    assert PyroTarget(problem).draws_path == pyro_draws.VECTORIZED
    latents = _latents()
    q = draws_data(problem, latents)
    np.testing.assert_allclose(_by_draw(q.posterior["a_mean"]), latents["a"].mean(-1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_by_draw(q.log_likelihood["y"]), _closed_form(latents), rtol=1e-9, atol=1e-9)


def test_a_pyro_only_models_groups_equal_its_numpyro_twins_and_loo_runs_on_both_files(tmp_path):
    pyro_problem = _problem("pyro_only_groups", pyro_model=one_draw)
    numpyro_problem = _problem("numpyro_only_groups", numpyro_model=numpyro_twin)
    latents = _latents()
    # A reference run built from given draws (no sampler: NUTS through the torch bridge compiles for 15 s
    # or more, and the groups depend on the draws alone): 4 chains, statistics as NUTS keeps them.
    chains = {k: v.reshape(CHAINS, -1, *v.shape[1:]) for k, v in latents.items()}
    stats = {"diverging": np.zeros((CHAINS, DRAWS // CHAINS), bool)}
    coordinates = {"mu": {"r_hat": 1.0, "ess_bulk": float(DRAWS), "ess_tail": float(DRAWS)}}
    run = nuts.NUTSRun(
        chains, {}, stats, coordinates, GateResult.of(coordinates, 0, NUTSSettings()), 0.0, 0.0
    )
    builders = {"q": lambda p: draws_data(p, latents), "reference": lambda p: reference_data(p, run, {})}
    for kind, build in builders.items():
        written = {}
        for problem in (pyro_problem, numpyro_problem):
            written[problem.spec.name] = path = tmp_path / f"{kind}-{problem.spec.name}.nc"
            build(problem).to_netcdf(str(path))
        pyro_data, numpyro_data = (az.from_netcdf(path) for path in written.values())
        for group in ("posterior", "observed_data", "log_likelihood"):
            expected = getattr(numpyro_data, group)
            found = getattr(pyro_data, group)
            assert set(found) == set(expected), (kind, group)
            for name in expected:
                assert found[name].dims == expected[name].dims, (kind, group, name)
                np.testing.assert_allclose(found[name], expected[name], rtol=1e-9, atol=1e-9)
        assert np.isfinite(az.loo(pyro_data).elpd_loo)
    assert set(az.compare({"q": pyro_data, "numpyro": numpyro_data}).index) == {"q", "numpyro"}


def test_no_log_likelihood_beyond_its_size_limit_as_on_the_numpyro_route(monkeypatch):
    from ppl_suite.references import inference_data

    problem = _problem("pyro_only_limit", pyro_model=broadcasting)
    monkeypatch.setattr(inference_data, "MAX_LOG_LIKELIHOOD", DRAWS * N - 1)
    q = draws_data(problem, _latents())
    assert "log_likelihood" not in q.groups() and "y" in q.observed_data
    assert "a_centered" in q.posterior


def users_model(group, y=None):
    """The one-draw model as a user writes it: arguments, not a data dict."""
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    with pyro.plate("group", GROUPS):
        a = pyro.sample("a", dist.Normal(mu, 1.0))
    with pyro.plate("observation", N):
        pyro.sample("y", dist.Normal(a[group], 1.0), obs=y)


@pytest.fixture
def pyro_state_restored():
    """Pyro's parameter store and the torch, NumPy and ``random`` generators as they were before the
    test (it fits and seeds them): under xdist the files that follow in a worker depend on scheduling."""
    generators = pyro.util.get_rng_state()
    with pyro.get_param_store().scope():  # an empty store, the former one restored after
        yield
    pyro.util.set_rng_state(generators)


def test_diagnose_gives_q_of_a_pyro_fit_the_observed_data_and_log_likelihood(
    monkeypatch, pyro_state_restored
):
    import torch
    from pyro.infer import SVI, Trace_ELBO
    from pyro.infer.autoguide import AutoNormal

    import ppl_suite
    from ppl_suite.diagnosing import api

    # no NUTS reference (a minute through the torch bridge): q's file is what is checked here
    monkeypatch.setattr(api, "_nuts_reference", lambda *arguments: (None, "", "", None))
    arguments, y = (torch.tensor(GROUP),), torch.tensor(Y)
    pyro.set_rng_seed(0)
    guide = AutoNormal(users_model)
    SVI(users_model, guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO()).step(*arguments, y=y)
    found = ppl_suite.diagnose(
        users_model, guide, pyro.get_param_store(), args=arguments, kwargs={"y": y}, draws=200
    )
    q = found.q
    latents = {name: _by_draw(q.posterior[name]) for name in ("mu", "a")}
    np.testing.assert_allclose(_by_draw(q.log_likelihood["y"]), _closed_form(latents), rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(q.observed_data["y"], Y)
    assert q.log_likelihood["y"].dims == ("chain", "draw", "observation")
    assert q.posterior["a"].dims == ("chain", "draw", "group") and q.posterior.sizes["chain"] == api.Q_CHAINS
    assert (q.posterior.attrs["elbo"], q.posterior.attrs["elbo_se"]) == (found.elbo, found.elbo_se)
    assert np.isfinite(az.loo(q).elpd_loo)


@pytest.mark.slow  # NumPyro compiles NUTS' program anew for the torch bridge's host callback: 15 s or more
def test_a_nuts_run_on_a_pyro_only_model_gives_a_reference_file_loo_runs_on(tmp_path):
    problem = _problem("pyro_only_nuts", pyro_model=one_draw)
    short = NUTSSettings(chains=2, warmup=100, draws=100, max_draws=100, max_tree_depth=4)  # the groups only
    run = nuts.run(problem, short, extend=False)
    reference_data(problem, run, {}).to_netcdf(str(tmp_path / "reference.nc"))
    reference = az.from_netcdf(tmp_path / "reference.nc")
    latents = {name: _by_draw(values) for name, values in run.draws.items()}
    found = _by_draw(reference.log_likelihood["y"])
    np.testing.assert_allclose(found, _closed_form(latents), rtol=1e-9, atol=1e-9)
    assert reference.log_likelihood["y"].dims == ("chain", "draw", "observation")
    assert {"energy", "diverging"} <= set(reference.sample_stats) and "a_centered" in reference.posterior
    assert np.isfinite(az.loo(reference).elpd_loo)
