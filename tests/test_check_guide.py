"""A user's own guide (`--guide FILE.py:GUIDE`, `ppl_suite.check(guides=[guide])`): its density is the
library's, it is refused naming the site when its sites are not the model's latent sites, and a whole
check fits and evaluates it like a built-in family of the same form; the draws files a check writes,
the report naming them, and a re-check that reuses every fit."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from ppl_suite import draws_files, matrix
from ppl_suite.checking.sources import InputProblem
from ppl_suite.checking.user_model import UserModel, build, register

NUMPYRO_MODEL = """
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints


def model(data):
    tau = numpyro.sample("tau", dist.HalfNormal(1.0))
    theta = numpyro.sample("theta", dist.Normal(0.0, tau).expand([3]).to_event(1))
    numpyro.sample("x", dist.Normal(theta.sum(), 1.0), obs=data["x"])


def {name}(data):
    a = numpyro.param("a", 0.0)
    b = numpyro.param("b", 0.5, constraint=constraints.positive)
    loc = numpyro.param("loc", numpyro.util.jnp.zeros(3))
    scale = numpyro.param("scale", numpyro.util.jnp.ones(3), constraint=constraints.positive)
    tau = numpyro.sample("tau", dist.LogNormal(a, b))
    numpyro.sample("theta", dist.Normal(loc * tau[..., None], scale).to_event(1))
"""
PYRO_MODEL = """
import pyro
import pyro.distributions as dist
import torch
from torch.distributions import constraints


def model(data):
    tau = pyro.sample("tau", dist.HalfNormal(1.0))
    theta = pyro.sample("theta", dist.Normal(torch.zeros(3), tau.unsqueeze(-1)).to_event(1))
    pyro.sample("x", dist.Normal(theta.sum(), 1.0), obs=data["x"])


def {name}(data):
    a = pyro.param("a", torch.tensor(0.0))
    b = pyro.param("b", torch.tensor(0.5), constraint=constraints.positive)
    loc = pyro.param("loc", torch.zeros(3))
    scale = pyro.param("scale", torch.ones(3), constraint=constraints.positive)
    tau = pyro.sample("tau", dist.LogNormal(a, b))
    pyro.sample("theta", dist.Normal(loc * tau.unsqueeze(-1), scale).to_event(1))  # vectorizable
"""
PHI = {
    "a": np.array(0.3),
    "b": np.array(0.4),
    "loc": np.array([1.0, -1.0, 0.5]),
    "scale": np.array([0.5, 1.0, 2.0]),
}


def write(folder: Path, name: str, source: str) -> str:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return str(path)


@pytest.fixture(autouse=True)
def registrations_leave_with_their_test(monkeypatch):
    """Models a test registers are forgotten after it: profiles expand over every registered model, and
    these take only their own guides."""
    from ppl_suite import registry
    from ppl_suite.checking import user_model

    registry.names()  # the zoo is discovered first, so the restored registry still holds it
    monkeypatch.setattr(registry, "MODELS", registry.MODELS.copy())
    monkeypatch.setattr(registry, "_implementations", dict(registry._implementations))
    monkeypatch.setattr(user_model, "_registered", dict(user_model._registered))


@pytest.fixture
def data_file(tmp_path: Path) -> str:
    path = tmp_path / "data.npz"
    np.savez(path, x=np.random.default_rng(0).normal(1.0, 1.0, 20))
    return str(path)


def _exact_log_q(latents: dict[str, np.ndarray]) -> np.ndarray:
    """log q(tau) + log q(theta | tau) of the guide above at PHI, by SciPy."""
    tau, theta = latents["tau"], latents["theta"]
    log_tau = stats.lognorm(s=PHI["b"], scale=np.exp(PHI["a"])).logpdf(tau)
    return log_tau + stats.norm(PHI["loc"] * tau[:, None], PHI["scale"]).logpdf(theta).sum(1)


def test_a_guide_programs_density_and_draws_are_its_librarys_in_both_libraries(tmp_path, data_file):
    from ppl_suite.problem import Problem
    from ppl_suite.targets.fitted_guide import FittedGuide

    numpyro_file = write(tmp_path, "np_density.py", NUMPYRO_MODEL.format(name="density_guide"))
    pyro_file = write(tmp_path, "py_density.py", PYRO_MODEL.format(name="density_guide"))
    register(
        UserModel(
            name="guide_density",
            data=data_file,
            numpyro=f"{numpyro_file}:model",
            pyro=f"{pyro_file}:model",
            guides=("density_guide",),
            own_guides={
                "density_guide": {
                    "numpyro": f"{numpyro_file}:density_guide",
                    "pyro": f"{pyro_file}:density_guide",
                }
            },
        )
    )
    problem = Problem.build("guide_density", 0)
    mean_tau = np.exp(PHI["a"] + PHI["b"] ** 2 / 2)
    for library in ("numpyro", "pyro"):
        q = FittedGuide(problem, "density_guide", {f"{library}.{k}": v for k, v in PHI.items()})
        draws = q.sample(1, 4000)
        assert draws["tau"].shape == (4000,) and draws["theta"].shape == (4000, 3)
        np.testing.assert_allclose(q.log_q(draws), _exact_log_q(draws), rtol=0, atol=1e-10)
        se = draws["tau"].std() / np.sqrt(4000)
        assert abs(draws["tau"].mean() - mean_tau) <= 4 * se
        np.testing.assert_array_equal(q.sample(1, 5)["tau"], q.sample(1, 5)["tau"])  # seeded


def test_a_guide_whose_sites_are_not_the_models_latent_sites_is_refused_naming_each(tmp_path, data_file):
    source = NUMPYRO_MODEL.format(name="unused") + textwrap.dedent(
        """
        def wrong_sites(data):
            numpyro.sample("tau", dist.LogNormal(0.0, 1.0))
            numpyro.sample("thetas", dist.Normal(0.0, 1.0).expand([3]).to_event(1))


        def wrong_shape(data):
            numpyro.sample("tau", dist.LogNormal(0.0, 1.0))
            numpyro.sample("theta", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        """
    )
    file = write(tmp_path, "wrong_guides.py", source)
    with pytest.raises(InputProblem) as raised:
        build(
            UserModel(
                name="wrong_guides",
                data=data_file,
                numpyro=f"{file}:model",
                guides=("wrong_sites", "wrong_shape"),
                own_guides={
                    "wrong_sites": {"numpyro": f"{file}:wrong_sites"},
                    "wrong_shape": {"numpyro": f"{file}:wrong_shape"},
                },
            )
        )
    found = raised.value.problems
    assert len(found) == 3
    assert "guide 'wrong_sites'" in found[0] and "does not sample the model's latent site 'theta'" in found[0]
    assert "samples 'thetas' (did you mean 'theta'?), which is not a latent site of the model" in found[1]
    assert (
        "guide 'wrong_shape'" in found[2]
        and "'theta' with shape (2,); the model's has shape (3,)" in found[2]
    )


def test_check_command_exits_2_on_a_guide_missing_a_latent_site_naming_it(tmp_path, data_file):
    from ppl_suite.checking.command import command
    from tests.test_check import _check_arguments

    file = write(
        tmp_path,
        "missing_site.py",
        NUMPYRO_MODEL.format(name="unused")
        + "\n\ndef tau_only(data):\n    numpyro.sample('tau', dist.LogNormal(0.0, 1.0))\n",
    )
    out = tmp_path / "results"
    args = _check_arguments(
        [f"{file}:model", "--data", data_file, "--guide", f"{file}:tau_only", "--out", str(out)]
    )
    with pytest.raises(matrix.ConfigError) as raised:  # the runner's exit code 2
        command(args)
    (problem,) = raised.value.problems
    assert "guide 'tau_only'" in problem and "does not sample the model's latent site 'theta'" in problem
    assert not out.exists()


def test_a_guide_for_one_library_is_refused_with_a_backend_of_the_other(tmp_path, data_file):
    from ppl_suite.checking.api import prepare

    numpyro_file = write(tmp_path, "np_one.py", NUMPYRO_MODEL.format(name="numpyro_only_guide"))
    pyro_file = write(tmp_path, "py_one.py", PYRO_MODEL.format(name="unused"))
    with pytest.raises(InputProblem) as raised:
        prepare(
            None,
            data_file,
            numpyro=f"{numpyro_file}:model",
            pyro=f"{pyro_file}:model",
            guides=["mean_field", f"{numpyro_file}:numpyro_only_guide"],
            data_file=tmp_path / "kept.npz",
        )
    (problem,) = raised.value.problems
    assert "'numpyro_only_guide' is written for numpyro only: the pyro backend cannot fit it" in problem


def test_a_guide_given_as_a_function_is_declared_by_its_file_and_name(tmp_path, data_file):
    from ppl_suite.checking.api import prepare
    from ppl_suite.checking.sources import load_function

    file = write(tmp_path, "np_callable.py", NUMPYRO_MODEL.format(name="callable_guide"))
    function = load_function(f"{file}:callable_guide", "guide")
    user, backends = prepare(f"{file}:model", data_file, guides=[function], data_file=tmp_path / "kept.npz")
    assert user.guides == ("callable_guide",) and backends == ["numpyro"]
    assert user.own_guides == {"callable_guide": {"numpyro": f"{Path(file).resolve()}:callable_guide"}}


# ------------------------------------------------------------------------------ a whole check (slow)
MEAN_FIELD_MODEL = """
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints


def model(data):
    mu = numpyro.sample("mu", dist.Normal(0.0, 2.0))
    with numpyro.plate("n", data["x"].shape[0]):
        numpyro.sample("x", dist.Normal(mu, 1.0), obs=data["x"])


def normal_guide(data):
    loc = numpyro.param("loc", 0.0)
    scale = numpyro.param("scale", 0.1, constraint=constraints.positive)
    numpyro.sample("mu", dist.Normal(loc, scale))
"""


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """A NumPyro model checked with the user's mean-field Normal guide beside ``mean_field``, then
    checked again with nothing changed."""
    import ppl_suite

    folder = tmp_path_factory.mktemp("own_guide")
    file = write(folder, "own_model.py", MEAN_FIELD_MODEL)
    np.savez(folder / "data.npz", x=np.random.default_rng(0).normal(1.0, 1.0, 20))
    arguments = dict(
        data=str(folder / "data.npz"), guides=["mean_field", f"{file}:normal_guide"], name="own_guide",
        steps=1000, nuts={"draws": 500, "ess_min": 400}, out=folder / "results", report=folder / "report",
        jobs=1,
    )  # fmt: skip
    first = ppl_suite.check(f"{file}:model", **arguments)
    manifest = json.loads((folder / "results" / "manifest.json").read_text())
    stamps = {p: p.stat().st_mtime_ns for p in (folder / "results" / draws_files.RELATIVE).rglob("*.nc")}
    again = ppl_suite.check(f"{file}:model", **arguments, recheck=True)  # in full, not from the memo
    return first, manifest, stamps, again, folder


@pytest.mark.slow
def test_a_users_mean_field_guide_agrees_with_mean_field_within_its_standard_errors(checked):
    first, *_ = checked
    assert first.exit_code == 0
    table = first.table.set_index("guide")
    own, built_in = table.loc["normal_guide"], table.loc["mean_field"]
    assert abs(own["elbo"] - built_in["elbo"]) <= 4 * np.hypot(own["elbo_se"], built_in["elbo_se"])
    assert own["kl"] == pytest.approx(own["log_evidence"] - own["elbo"], abs=1e-12)  # KL by the identity
    assert abs(own["kl"]) <= 4 * own["kl_se"]  # the family holds the exact Normal posterior


@pytest.mark.slow
def test_the_draws_files_open_with_arviz_and_the_report_names_each(checked):
    import arviz as az

    first, _, stamps, _, _ = checked
    keys = list(first.table["key"])
    assert len(stamps) == 2 * len(keys) == 4
    for key in keys:
        folder = first.folder / draws_files.RELATIVE / key
        assert set(az.from_netcdf(folder / "q.nc").posterior.data_vars) == {"mu"}
        assert az.from_netcdf(folder / "reference.nc").posterior["mu"].shape[0] >= 1
        text = first.report_files["md"].read_text()  # named under their folder, not linked
        assert f"| {key} | q.nc, reference.nc |" in text and draws_files.RELATIVE in text


@pytest.mark.slow
def test_a_recheck_reuses_every_fit_and_draws_file(checked):
    first, manifest, stamps, again, _ = checked
    assert manifest["reused"] == 0
    second = json.loads((first.folder / "manifest.json").read_text())
    assert second["reused"] == len(first.table) == 2
    assert again.table[["key", "elbo", "kl"]].equals(first.table[["key", "elbo", "kl"]])
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # not drawn again
