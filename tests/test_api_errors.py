"""The Python API's errors: one type per kind of failure, exported from ``ppl_suite``. A reference
that fails its gates is a ``CheckFailed`` from ``check`` and from ``diagnose`` alike (the reference is
faked: nothing here samples)."""

from __future__ import annotations

import numpy as np
import psutil
import pytest

import ppl_suite
from ppl_suite import references
from tests.processes import below

DESIGN = np.column_stack([np.ones(6), np.linspace(-1.0, 1.0, 6)])
Y = np.linspace(0.0, 1.0, 6)


def model(design, y=None):
    import numpyro
    import numpyro.distributions as dist

    with numpyro.plate("coefficients", design.shape[1]):
        w = numpyro.sample("w", dist.Normal(0.0, 1.0))
    with numpyro.plate("data", design.shape[0]):
        numpyro.sample("y", dist.Normal(design @ w, 0.5), obs=y)


@pytest.fixture
def failing_reference(monkeypatch):
    def reference_for(*args, **kwargs):
        raise references.ReferenceGateError("gate failed: R-hat 1.2 > 1.01")

    monkeypatch.setattr(references, "reference_for", reference_for)


def test_the_errors_are_exported_and_a_failed_gate_is_a_check_failure():
    assert issubclass(ppl_suite.ReferenceGateError, ppl_suite.CheckFailed)
    assert ppl_suite.CheckFailed is ppl_suite.checking.CheckFailed
    assert issubclass(ppl_suite.CheckStopped, KeyboardInterrupt)
    assert not issubclass(ppl_suite.InputProblem, ppl_suite.CheckFailed)


def test_check_and_diagnose_raise_check_failed_for_a_reference_that_fails_its_gates(
    failing_reference, tmp_path, monkeypatch
):
    """The check's workers start while its reference is built (``Plan.preparing``): the failed gate
    stops them, and nothing is written."""
    from numpyro.infer.autoguide import AutoNormal

    from ppl_suite.executors.local import LocalExecutor

    started: list[int] = []
    start_ahead = LocalExecutor.start_ahead
    monkeypatch.setattr(
        LocalExecutor, "start_ahead", lambda self, count: (started.append(count), start_ahead(self, count))
    )
    with pytest.raises(ppl_suite.CheckFailed, match=r"R-hat 1\.2"):
        ppl_suite.check(numpyro=model, args=(DESIGN,), kwargs={"y": Y}, out=tmp_path / "r", report=False)
    assert started and not (tmp_path / "r").exists() and below(psutil.Process()) == []
    params = {"w_auto_loc": np.zeros(2), "w_auto_scale": np.ones(2)}
    with pytest.raises(ppl_suite.CheckFailed, match=r"R-hat 1\.2"):
        ppl_suite.diagnose(model, AutoNormal(model), params, args=(DESIGN,), kwargs={"y": Y}, cache=tmp_path)
