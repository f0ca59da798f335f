"""The draws files as ArviZ users expect them (``ppl_suite.references.inference_data``): q's draws in
several chains, dims named after the model's plates, deterministic sites kept, observed data and
log-likelihood, the numbers as separate attributes, and the NUTS reference's sampler statistics, so
that ``az.loo``, ``az.compare``, ``az.rhat``, ``az.bfmi`` and ``az.plot_energy`` run on the files as
written; and the store's kept files, through which ``check`` writes them."""

from __future__ import annotations

import math
from pathlib import Path

import arviz as az
import matplotlib
import numpy as np
import pytest

from ppl_suite.checking.user_model import UserModel, register
from ppl_suite.paths import OutsideFolder
from ppl_suite.problem import Problem
from ppl_suite.references import NUTSSettings, nuts
from ppl_suite.references.inference_data import CHAINS, draws_data, reference_data
from ppl_suite.store import KEPT, ResultsStore

matplotlib.use("Agg")

GROUPS, OBSERVATIONS = 3, 12
MODEL = """
import numpyro
import numpyro.distributions as dist


def model(data):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    with numpyro.plate("group", 3):
        a = numpyro.sample("a", dist.Normal(mu, 1.0))
        numpyro.deterministic("a_centered", a - mu)
    with numpyro.plate("observation", 12):
        numpyro.sample("y", dist.Normal(a[data["g"]], 1.0), obs=data["y"])
"""
# A short run: the sampler statistics and chains are what is tested here, not the gates.
SHORT = NUTSSettings(warmup=100, draws=100, max_draws=100, rhat_max=1.5, ess_min=10.0, remedies=False)


@pytest.fixture(scope="module")
def problem(tmp_path_factory) -> Problem:
    folder = tmp_path_factory.mktemp("model")
    (folder / "varying.py").write_text(MODEL)
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(GROUPS), OBSERVATIONS // GROUPS)
    np.savez(folder / "data.npz", g=g, y=rng.normal(g - 1.0, 1.0))
    user = UserModel(
        name="varying_draws", data=str(folder / "data.npz"), numpyro=f"{folder}/varying.py:model",
        guides=("auto_normal",),
    )  # fmt: skip
    register(user)
    return Problem.build("varying_draws", 0)


@pytest.fixture(scope="module")
def files(problem, tmp_path_factory) -> dict[str, Path]:
    """q's draws (a Normal near the posterior) and a NUTS reference, written and read back."""
    rng = np.random.default_rng(1)
    n = 400
    latents = {"mu": rng.normal(0.0, 0.5, n), "a": rng.normal(np.array([-1.0, 0.0, 1.0]), 0.5, (n, GROUPS))}
    attrs = {"elbo": -20.5, "elbo_se": 0.01, "kl": 0.3, "kl_se": 0.02, "log_evidence": -20.2,
             "log_evidence_se": None, "guide": "mean_field"}  # fmt: skip
    folder = tmp_path_factory.mktemp("files")
    written = {"q": folder / "q.nc", "reference": folder / "reference.nc"}
    draws_data(problem, latents, attrs).to_netcdf(str(written["q"]))
    run = nuts.run(problem, SHORT)
    reference_data(problem, run, {"log_evidence": -20.2, "log_evidence_se": 0.05}).to_netcdf(
        str(written["reference"])
    )
    return written


def test_q_draws_come_in_chains_with_plate_dims_and_deterministic_sites(files):
    q = az.from_netcdf(files["q"])
    assert q.posterior.sizes["chain"] == CHAINS and q.posterior.sizes["draw"] == 400 // CHAINS
    assert q.posterior["a"].dims == ("chain", "draw", "group")
    assert q.posterior["a_centered"].dims == ("chain", "draw", "group")
    np.testing.assert_allclose(q.posterior["a_centered"], q.posterior["a"] - q.posterior["mu"])
    assert np.isfinite(az.rhat(q)["mu"]).all()  # defined: several chains


def test_numbers_are_separate_attributes_with_nan_where_unknown(files):
    attrs = az.from_netcdf(files["q"]).posterior.attrs
    assert (attrs["elbo"], attrs["elbo_se"], attrs["kl"], attrs["kl_se"]) == (-20.5, 0.01, 0.3, 0.02)
    assert math.isnan(attrs["log_evidence_se"]) and attrs["guide"] == "mean_field"


def test_observed_data_and_log_likelihood_let_loo_and_compare_run(files, problem):
    q, reference = (az.from_netcdf(files[kind]) for kind in ("q", "reference"))
    for data in (q, reference):
        assert data.observed_data["y"].dims == ("observation",)
        np.testing.assert_array_equal(data.observed_data["y"], problem.data["y"])
        assert data.log_likelihood["y"].dims == ("chain", "draw", "observation")
        assert np.isfinite(az.loo(data).elpd_loo)
    compared = az.compare({"q": q, "reference": reference})
    assert set(compared.index) == {"q", "reference"}


def test_the_reference_keeps_nuts_statistics_for_bfmi_and_the_energy_plot(files):
    reference = az.from_netcdf(files["reference"])
    stats = reference.sample_stats
    assert {"energy", "tree_depth", "step_size", "acceptance_rate", "diverging", "n_steps"} <= set(stats)
    assert stats["energy"].shape == (SHORT.chains, SHORT.draws)
    np.testing.assert_array_equal(stats["tree_depth"], np.floor(np.log2(stats["n_steps"])) + 1)
    assert (az.bfmi(reference) > 0).all()
    assert az.plot_energy(reference) is not None
    assert reference.posterior["a"].dims == ("chain", "draw", "group") and "a_centered" in reference.posterior


def test_kept_files_are_written_whole_inside_the_folder_and_never_through_a_link(tmp_path):
    store = ResultsStore(tmp_path / "results")
    path = store.write_kept("study", ("a", "b.json"), lambda temporary: temporary.write_text("whole"))
    assert path == tmp_path / "results" / KEPT / "study" / "a" / "b.json" and path.read_text() == "whole"
    assert store.kept_file("study", "a", "b.json") == path and store.kept_file("study", "none") is None
    assert sorted(p.name for p in path.parent.iterdir()) == ["b.json"]  # no temporary file left

    def killed(temporary: Path) -> None:
        temporary.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.write_kept("study", ("a", "b.json"), killed)
    assert path.read_text() == "whole" and sorted(p.name for p in path.parent.iterdir()) == ["b.json"]
    with pytest.raises(OutsideFolder):
        store.kept_path("study", "..", "x")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (store.path / KEPT / "linked").symlink_to(outside)
    with pytest.raises(OutsideFolder):
        store.write_kept("linked", ("c.json",), lambda temporary: temporary.write_text("no"))
    assert not list(outside.iterdir())
    assert store.remove_kept("study", "a", "b.json") and not path.exists()
