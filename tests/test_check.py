"""`ppl-suite check` and `ppl_suite.check`: a user's model and data, refused with every problem named
when they cannot be checked, and evaluated like a zoo model when they can; models found through the
entry-point group; discovery unaffected by a stray `models` module in the working directory."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ppl_suite import matrix, registry
from ppl_suite.checking.sources import InputProblem
from ppl_suite.checking.user_model import UserModel, build
from ppl_suite.checks import LOG_JOINT_TOLERANCE

ROOT = Path(__file__).resolve().parent.parent
NORMAL_NORMAL = ROOT / "models" / "normal_normal"
NN_PARAMS = {"n": 100, "prior_loc": 0.0, "prior_scale": 2.0, "noise_scale": 1.0}

NUMPYRO_HEADER = "import numpy as np\nimport numpyro\nimport numpyro.distributions as dist\n\n"
PYRO_HEADER = "import pyro\nimport pyro.distributions as dist\n\n"


def write(folder: Path, name: str, source: str) -> str:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return str(path)


@pytest.fixture
def data_file(tmp_path: Path) -> str:
    path = tmp_path / "data.npz"
    np.savez(path, x=np.random.default_rng(0).normal(1.0, 1.0, 20))
    return str(path)


def problems_of(tmp_path: Path, data: str, **models: str) -> list[str]:
    with pytest.raises(InputProblem) as raised:
        build(UserModel(name="user", data=data, **models))
    return raised.value.problems


def test_discrete_latent_site_is_refused_naming_it_and_the_valid_supports(tmp_path, data_file):
    model = write(
        tmp_path,
        "discrete.py",
        NUMPYRO_HEADER
        + """
def model(data):
    k = numpyro.sample("k", dist.Bernoulli(0.5))
    numpyro.sample("x", dist.Normal(k, 1.0), obs=data["x"])
""",
    )
    (problem,) = problems_of(tmp_path, data_file, numpyro=f"{model}:model")
    assert "'k'" in problem and "discrete" in problem and "valid: real, positive" in problem


PLATED = (
    NUMPYRO_HEADER
    + """
def model(data):
    with numpyro.plate("groups", 3):
        theta = numpyro.sample("theta", dist.Normal(0.0, 1.0))
    numpyro.sample("x", dist.Normal(theta.sum(), 1.0), obs=data["x"])
"""
)


def test_latent_site_inside_a_plate_is_taken_by_the_suites_families(tmp_path, data_file):
    model = write(tmp_path, "plated.py", PLATED)
    spec, _ = build(UserModel(name="plated", data=data_file, numpyro=f"{model}:model"))
    assert spec.guides == ("mean_field", "full_rank")
    assert [(s.name, s.shape) for s in spec.sites(spec.params())] == [("theta", (3,))]


def test_latent_site_inside_a_plate_is_a_site_of_the_plates_shape_for_the_autoguides(tmp_path, data_file):
    model = write(tmp_path, "plated_auto.py", PLATED)
    spec, _ = build(
        UserModel(name="plated", data=data_file, numpyro=f"{model}:model", guides=("auto_normal",))
    )
    assert [(s.name, s.shape, s.support) for s in spec.sites(spec.params())] == [("theta", (3,), "real")]


def test_model_that_fails_to_trace_is_refused_with_its_error(tmp_path, data_file):
    model = write(
        tmp_path, "broken.py", NUMPYRO_HEADER + "def model(data):\n    raise RuntimeError('oops')\n"
    )
    (problem,) = problems_of(tmp_path, data_file, numpyro=f"{model}:model")
    assert "fails to trace" in problem and "RuntimeError: oops" in problem


@pytest.mark.parametrize("library, header", [("numpyro", NUMPYRO_HEADER), ("pyro", PYRO_HEADER)])
def test_data_missing_a_name_the_model_reads_names_it_and_the_data_keys(tmp_path, data_file, library, header):
    model = write(
        tmp_path,
        f"reads_y_{library}.py",
        header
        + f"""
def model(data):
    mu = {library}.sample("mu", dist.Normal(0.0, 1.0))
    {library}.sample("y", dist.Normal(mu, 1.0), obs=data["y"])
""",
    )
    (problem,) = problems_of(tmp_path, data_file, **{library: f"{model}:model"})
    assert "reads data 'y'" in problem and "the data have: x" in problem


def test_site_name_mismatch_between_pyro_and_numpyro_names_the_site(tmp_path, data_file):
    numpyro_model = write(
        tmp_path,
        "np_model.py",
        NUMPYRO_HEADER
        + """
def model(data):
    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    numpyro.sample("x", dist.Normal(mu, 1.0), obs=data["x"])
""",
    )
    pyro_model = write(
        tmp_path,
        "py_model.py",
        PYRO_HEADER
        + """
def model(data):
    m = pyro.sample("m", dist.Normal(0.0, 1.0))
    pyro.sample("x", dist.Normal(m, 1.0), obs=data["x"])
""",
    )
    found = problems_of(tmp_path, data_file, numpyro=f"{numpyro_model}:model", pyro=f"{pyro_model}:model")
    assert len(found) == 2
    assert "'m' is in the Pyro model but not in the NumPyro model" in found[0]
    assert "'mu' is in the NumPyro model but not in the Pyro model" in found[1]


def test_sites_shapes_and_supports_come_from_the_trace(tmp_path, data_file):
    model = write(
        tmp_path,
        "shapes.py",
        NUMPYRO_HEADER
        + """
def model(data, params):
    tau = numpyro.sample("tau", dist.HalfNormal(params["scale"]))
    theta = numpyro.sample("theta", dist.Normal(0.0, tau).expand([3]).to_event(1))
    w = numpyro.sample("w", dist.Dirichlet(np.ones(4)))
    p = numpyro.sample("p", dist.Beta(2.0, 2.0))
    numpyro.sample("x", dist.Normal(theta.sum() + w[0] + p, 1.0), obs=data["x"])
""",
    )
    spec, implementations = build(
        UserModel(name="shapes", data=data_file, numpyro=f"{model}:model", params={"scale": 1.5})
    )
    sites = {site.name: (site.shape, site.support) for site in spec.sites(spec.params())}
    assert sites == {
        "tau": ((), "positive"),
        "theta": ((3,), "real"),
        "w": ((4,), "simplex"),
        "p": ((), "unit_interval"),
    }
    assert spec.oracle is None and spec.log_joint is None and spec.fixed_data
    assert set(implementations) == {"numpyro"}


def _check_arguments(argv: list[str]) -> argparse.Namespace:
    from ppl_suite.checking.command import add_parser

    top = argparse.ArgumentParser(prog="ppl-suite")
    add_parser(top.add_subparsers(dest="command"))
    return top.parse_args(["check", *argv])


def test_check_command_lists_every_bad_input_at_once_and_starts_nothing(tmp_path):
    from ppl_suite.checking.command import command

    out = tmp_path / "results"
    args = _check_arguments(
        [
            str(tmp_path / "missing.py:model"),
            "--data",
            str(tmp_path / "missing.npz"),
            "--guides",
            "no_such_guide",
            "--out",
            str(out),
        ]
    )
    with pytest.raises(matrix.ConfigError) as raised:  # the runner's exit code 2
        command(args)
    found = raised.value.problems
    assert any("no such file" in p and "missing.py" in p for p in found)
    assert any("missing.npz" in p for p in found)
    assert any("unknown guide 'no_such_guide'; valid:" in p for p in found)
    assert not out.exists()


def test_log_joint_mismatch_names_the_largest_difference_and_its_site(tmp_path):
    from ppl_suite.checking.agreement import compare
    from ppl_suite.checking.sources import load_function

    numpyro_model = load_function(f"{NORMAL_NORMAL / 'numpyro_impl.py'}:model", "--numpyro")
    right = load_function(f"{NORMAL_NORMAL / 'pyro_impl.py'}:model", "--pyro")
    wrong = load_function(
        write(
            tmp_path,
            "wrong_scale.py",
            PYRO_HEADER
            + """
def model(data, params):
    mu = pyro.sample("mu", dist.Normal(params["prior_loc"], params["prior_scale"]))
    with pyro.plate("data", data["x"].shape[0]):
        pyro.sample("x", dist.Normal(mu, 1.1 * params["noise_scale"]), obs=data["x"])
""",
        )
        + ":model",
        "--pyro",
    )
    data = {"x": np.random.default_rng(1).normal(0.5, 1.0, 30)}
    latents = {"mu": np.linspace(-1.0, 1.0, 8)}
    agreeing = compare(numpyro_model, right, data, NN_PARAMS, latents)
    assert agreeing.ok and agreeing.max_difference <= LOG_JOINT_TOLERANCE
    differing = compare(numpyro_model, wrong, data, NN_PARAMS, latents)
    assert not differing.ok and differing.worst_site == "x"
    assert differing.worst_site_difference == pytest.approx(differing.max_difference)
    assert "'x'" in differing.problem() and f"{differing.max_difference:.6g}" in differing.problem()


# --------------------------------------------------------------------------------- discovery
FAKE_SPEC = """
from dataclasses import replace
from models.normal_normal.spec import SPEC as NORMAL_NORMAL
SPEC = replace(NORMAL_NORMAL, name="entry_point_model", module=__package__)
"""


def test_a_model_of_an_installed_package_is_found_through_the_entry_point_group(tmp_path, monkeypatch):
    package = tmp_path / "fake_suite_models" / "my_model"
    package.mkdir(parents=True)
    (tmp_path / "fake_suite_models" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "spec.py").write_text(FAKE_SPEC)
    (package / "numpyro_impl.py").write_text("from models.normal_normal.numpyro_impl import model\n")
    info = tmp_path / "fake_suite_models-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-suite-models\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[{registry.ENTRY_POINT_GROUP}]\nmy_model = fake_suite_models.my_model.spec\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "MODELS", registry.MODELS.fresh())
    monkeypatch.setattr(registry, "_implementations", {})
    assert "entry_point_model" in registry.names() and "normal_normal" in registry.names()
    assert registry.implementation("entry_point_model", "numpyro") is not None
    assert registry.implementation("entry_point_model", "pyro") is None


@pytest.mark.parametrize("stray", ["models.py", "models/__init__.py"])
def test_a_stray_models_module_in_the_working_directory_does_not_break_discovery(tmp_path, stray):
    (tmp_path / stray).parent.mkdir(exist_ok=True)
    (tmp_path / stray).write_text("raise ImportError('the user\\'s own models module')\n")
    listed = subprocess.run(
        [sys.executable, "-c", "from ppl_suite import registry; print(' '.join(registry.names()))"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "normal_normal" in listed.stdout.split()


# ------------------------------------------------------------------------- whole checks (slow)
@pytest.fixture(scope="module")
def hidden_oracle(tmp_path_factory):
    """normal_normal's NumPyro model checked as a user model (its oracle hidden), mean-field guide."""
    import ppl_suite
    from models.normal_normal.spec import SPEC

    folder = tmp_path_factory.mktemp("check")
    data = SPEC.data(0, SPEC.params())
    np.savez(folder / "data.npz", **data)
    result = ppl_suite.check(
        numpyro=f"{NORMAL_NORMAL / 'numpyro_impl.py'}:model",
        data=str(folder / "data.npz"),
        params=NN_PARAMS,
        guides=["mean_field"],
        name="hidden_normal_normal",
        steps=1000,
        out=folder / "results",
        report=folder / "report",
        jobs=1,
    )
    return result, SPEC.oracle(data, SPEC.params()), folder


@pytest.mark.slow
def test_check_reproduces_the_oracles_log_evidence_and_kl_within_their_standard_errors(hidden_oracle):
    from ppl_suite import results
    from ppl_suite.problem import Problem
    from ppl_suite.targets.fitted_guide import FittedGuide

    result, exact, _ = hidden_oracle
    assert result.exit_code == 0
    (row,) = result.table.to_dict("records")
    assert abs(row["log_evidence"] - exact.log_evidence) <= 4 * row["log_evidence_se"]
    phi, _ = results.fitted_params(result.folder, row["key"])
    problem = Problem.build("hidden_normal_normal", 0)
    true_kl = FittedGuide(problem, "mean_field", phi).kl_to(exact.factors())
    assert abs(row["kl"] - true_kl) <= 4 * row["kl_se"]
    assert abs(row["mean_error"]) <= 4 * row["mean_error_se"]


@pytest.mark.slow
def test_cell_draws_are_inference_data_saved_as_netcdf(hidden_oracle):
    import arviz as az

    result, _, folder = hidden_oracle
    draws = result.draws(result.table["key"][0], n=2000)
    written = draws.to_netcdf(folder / "draws")
    q = az.from_netcdf(written["q"]).posterior["mu"].values.ravel()
    reference = az.from_netcdf(written["reference"]).posterior["mu"].values.ravel()
    ess = float(az.ess(draws.reference)["mu"])  # NUTS draws are correlated: their effective number
    se = math.sqrt(q.var() / q.size + reference.var() / ess)
    assert q.size == 2000 and abs(q.mean() - reference.mean()) <= 4 * se
    assert (
        json.loads((folder / "results" / "kept" / "check" / "model.json").read_text())["name"]
        == "hidden_normal_normal"
    )


@pytest.mark.slow
def test_the_examples_of_docs_api_run(tmp_path, monkeypatch):
    """Every ```python block of docs/api.md, in order, in one namespace (``scratch``: a temporary folder)."""
    text = (ROOT / "docs" / "api.md").read_text()
    blocks = [block.split("```", 1)[0] for block in text.split("```python\n")[1:]]
    assert len(blocks) == 4
    monkeypatch.chdir(ROOT)
    namespace = {"scratch": tmp_path}
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), namespace)
    assert set(namespace["files"]) == {"q", "reference"}


@pytest.mark.slow
def test_a_plated_latent_site_is_checked_with_an_autoguide_in_both_libraries(tmp_path):
    """theta_j ~ N(0, 1), x_j ~ N(theta_j, 1) in one plate: the posterior is independent Normals, which
    AutoNormal holds exactly, so its KL is 0 within its SE in both libraries."""
    import ppl_suite

    body = """
def model(data):
    with {lib}.plate("groups", 3):
        theta = {lib}.sample("theta", dist.Normal(0.0, 1.0))
        {lib}.sample("x", dist.Normal(theta, 1.0), obs=data["x"])
"""
    numpyro_model = write(tmp_path, "plated_np.py", NUMPYRO_HEADER + body.format(lib="numpyro"))
    pyro_model = write(tmp_path, "plated_py.py", PYRO_HEADER + body.format(lib="pyro"))
    result = ppl_suite.check(
        numpyro=f"{numpyro_model}:model", pyro=f"{pyro_model}:model", data={"x": np.array([0.5, -1.0, 2.0])},
        guides=["auto_normal"], name="plated_check", steps=1000, nuts={"draws": 500, "ess_min": 400},
        out=tmp_path / "results", report=False, jobs=1,
    )  # fmt: skip
    assert result.exit_code == 0
    table = result.table
    assert sorted(table["backend"]) == ["numpyro", "pyro"]
    assert all(abs(row.kl) <= 4 * row.kl_se for row in table.itertuples())
