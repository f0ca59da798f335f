"""The light commands load no numerical library: ``ppl-suite list`` imports neither JAX, torch, Pyro,
NumPyro, SciPy, pandas, ArviZ nor matplotlib (as ``--help``), and the estimators' descriptors say
what their modules declare."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ppl_suite import estimators
from ppl_suite.plugin_registry import import_modules

ROOT = Path(__file__).resolve().parent.parent
NUMERICAL = ("jax", "torch", "pyro", "numpyro", "scipy", "pandas", "arviz", "matplotlib")
LOADED = f"""
import contextlib, io, json, sys
from ppl_suite import cli
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = cli.main(sys.argv[1:])
loaded = sorted({{name.split(".")[0] for name in sys.modules}} & set({NUMERICAL!r}))
print(json.dumps({{"code": code, "out": out.getvalue(), "loaded": loaded}}))
"""


def command_loads(*argv: str) -> dict:
    """Run ``ppl-suite ARGV`` in a fresh interpreter: its exit code, output and the numerical
    libraries it imported."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", LOADED, *argv], env=env, capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(done.stdout.splitlines()[-1])


def test_list_imports_no_numerical_library():
    listed = command_loads("list")
    assert listed["code"] == 0 and "normal_normal" in listed["out"] and "kl_analytic" in listed["out"]
    assert listed["loaded"] == []


def test_a_dry_run_and_bad_input_import_no_fitting_or_drawing_library(tmp_path):
    """Validation and expansion ask the backends' and estimators' descriptors, not their libraries.
    Left: the results store's pandas and numerics' scipy.special (imported by the runner's modules)."""
    fitting_or_drawing = {"jax", "torch", "pyro", "numpyro", "arviz", "matplotlib"}
    planned = command_loads("run", "--dry-run", "--out", str(tmp_path / "results"))
    assert planned["code"] == 0 and "normal_normal/pyro/mean_field" in planned["out"]
    assert not fitting_or_drawing & set(planned["loaded"])
    refused = command_loads("run", "--models", "nope", "--out", str(tmp_path / "results"))
    assert refused["code"] == 2 and not fitting_or_drawing & set(refused["loaded"])


def test_a_model_named_in_list_still_computes_with_scipy_when_used():
    from ppl_suite.problem import Problem

    problem = Problem.build("bayes_linreg", 0)
    assert (
        type(problem.exact()).__name__ == "GaussianPosterior"
    )  # the oracle ran (scipy.linalg, loaded on first use)


def test_every_shipped_estimator_is_described_as_its_module_declares_it():
    declared = {
        e.name: (e.quantity, e.kind, e.uses_guide, module.__name__.rsplit(".", 1)[1])
        for module in import_modules(estimators.__name__)
        for e in vars(module).get("ESTIMATORS", ())
    }
    described = {i.name: (i.quantity, i.kind, i.uses_guide, i.module) for i in estimators.SHIPPED}
    assert described == declared
    for info in estimators.SHIPPED:
        assert estimators.get(info.name).name == info.name
