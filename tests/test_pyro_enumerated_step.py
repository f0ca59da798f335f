"""The Pyro backend's step under ``JitTraceEnum_ELBO`` (``backends.pyro_recorded_step``), recorded
whole after its first step, gives the eager loop's numbers bit for bit: losses, trajectory, final
parameters and Pyro's ELBO of the fitted guide, for the enumerated mixture (no draws) and the
categorical family (score-function draws); kept in the program cache, it is loaded by a fresh
process, which gives the same numbers without importing ``torch._dynamo``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ppl_suite import backends
from ppl_suite.backends import pyro as pyro_backend
from ppl_suite.backends import pyro_recorded_step
from ppl_suite.backends.base import Fit, SVIConfig
from ppl_suite.problem import Problem
from ppl_suite.targets.torch_compiled import COMPILED, EAGER

ROOT = Path(__file__).resolve().parent.parent
CONFIG = SVIConfig(steps=30, eval_particles=1000)
RECORD_AT = 2  # the recording threshold in these tests: production runs record from RECORD_MIN_STEPS
FIT = f"""
import json, sys
from ppl_suite import backends
from ppl_suite.backends import pyro, pyro_recorded_step
from ppl_suite.backends.base import SVIConfig
from ppl_suite.numerics import setup
from ppl_suite.problem import Problem
setup()  # as the tests and the workers
pyro.RECORD_MIN_STEPS = pyro_recorded_step.RECORD_MIN_STEPS = {RECORD_AT}
loaded = []
class Spied(pyro_recorded_step.RecordedAdamSteps):
    def write_back(self):
        loaded.append(self.loaded)
        super().write_back()
pyro.RecordedAdamSteps = Spied
fit = backends.get("pyro").fit(Problem.build("gaussian_mixture", 0), "enumerate", SVIConfig(
    steps={CONFIG.steps}, eval_particles={CONFIG.eval_particles}), seed=0)
print(json.dumps({{"losses": fit.losses.tolist(), "loaded": loaded[-1],
                   "dynamo": "torch._dynamo" in sys.modules}}))
"""


def _fit(guide: str, monkeypatch, record_from: int, seed: int = 0) -> tuple[Fit, list[str], list[bool]]:
    """The backend's fit of ``guide`` on the mixture, recording from step ``record_from`` on (also
    kept in the program cache, if on); the paths of its steps and whether they were loaded."""
    monkeypatch.setattr(pyro_recorded_step, "RECORD_MIN_STEPS", record_from)
    monkeypatch.setattr(pyro_backend, "RECORD_MIN_STEPS", record_from)
    made: list[pyro_recorded_step.RecordedAdamSteps] = []

    class Spied(pyro_recorded_step.RecordedAdamSteps):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(pyro_backend, "RecordedAdamSteps", Spied)
    fit = backends.get("pyro").fit(Problem.build("gaussian_mixture", 0), guide, CONFIG, seed=seed)
    return fit, [steps.path for steps in made], [steps.loaded for steps in made]


def _same_fit(fit: Fit, expected: Fit) -> None:
    np.testing.assert_array_equal(fit.losses, expected.losses)
    for part in ("phi", "theta"):
        assert getattr(fit, part).keys() == getattr(expected, part).keys()
        for name, value in getattr(expected, part).items():
            np.testing.assert_array_equal(getattr(fit, part)[name], value)
            np.testing.assert_array_equal(fit.trajectory[part][name], expected.trajectory[part][name])
    assert fit.library_elbo.value == expected.library_elbo.value


@pytest.mark.parametrize("guide", ["enumerate", "categorical"])
def test_the_recorded_enumerated_step_gives_the_eager_loops_numbers_bit_for_bit(guide, monkeypatch):
    monkeypatch.setenv("PPL_SUITE_XLA_CACHE", "off")
    recorded, paths, _ = _fit(guide, monkeypatch, record_from=RECORD_AT)
    assert paths == [COMPILED]
    eager, paths, _ = _fit(guide, monkeypatch, record_from=CONFIG.steps + 1)
    assert paths[0].startswith(f"{EAGER}: {CONFIG.steps} steps, fewer than")
    _same_fit(recorded, eager)
    assert not np.all(recorded.theta["logits"] == recorded.trajectory["theta"]["logits"][0])  # it moved


@pytest.mark.slow  # a fresh interpreter: ~3 s of imports (torch, Pyro, JAX), then the fit
def test_a_kept_enumerated_step_is_loaded_by_a_fresh_process_without_torch_dynamo(tmp_path, monkeypatch):
    monkeypatch.setenv("PPL_SUITE_XLA_CACHE", str(tmp_path / "cache"))
    recorded, paths, loaded = _fit("enumerate", monkeypatch, record_from=RECORD_AT)
    assert paths == [COMPILED] and loaded == [False]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", FIT], env=env, capture_output=True, text=True, check=True, cwd=ROOT
    )
    fresh = json.loads(done.stdout.splitlines()[-1])
    assert fresh["loaded"] and not fresh["dynamo"], done.stdout[-300:]
    np.testing.assert_array_equal(fresh["losses"], recorded.losses)
