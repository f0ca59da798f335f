"""A SIGINT or SIGTERM during ``check``'s cells keeps the finished cells, then the Python API raises
``CheckStopped`` (a KeyboardInterrupt: a loop over models stops) while ``ppl-suite check`` exits 130
or 143. The runner's stopped Outcome is faked (what is tested is the API's answer to it; the runner's
own stop is tested in test_stop_signals and test_runner_library)."""

from __future__ import annotations

import signal

import numpy as np
import pytest

import ppl_suite
from ppl_suite import cli, runner
from ppl_suite.checking import api


def model(y=None):
    import numpyro
    import numpyro.distributions as dist

    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)


@pytest.fixture
def stopped_by(monkeypatch):
    """Make the runner's answer to the check a stop by the signal set in the returned dict."""
    signals = {"signum": signal.SIGINT}
    monkeypatch.setattr(
        api, "_run", lambda *args: runner.Outcome(runner.STOPPED, stopped_by=signals["signum"])
    )
    return signals


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stopped_check_raises_a_keyboard_interrupt_carrying_its_result(tmp_path, stopped_by, signum):
    stopped_by["signum"] = signum
    with pytest.raises(KeyboardInterrupt) as raised:
        ppl_suite.check(numpyro=model, kwargs={"y": 0.5}, out=tmp_path / "out", report=False)
    assert isinstance(raised.value, ppl_suite.CheckStopped)
    assert raised.value.result.exit_code == 128 + signum and raised.value.result.status == runner.STOPPED
    assert raised.value.result.folder == tmp_path / "out"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_check_command_still_exits_128_plus_the_signal(tmp_path, stopped_by, signum, monkeypatch):
    stopped_by["signum"] = signum
    (tmp_path / "model.py").write_text(
        "import numpyro\nimport numpyro.distributions as dist\n\n\n"
        "def model(y=None):\n"
        "    mu = numpyro.sample('mu', dist.Normal(0.0, 1.0))\n"
        "    numpyro.sample('y', dist.Normal(mu, 1.0), obs=y)\n"
    )
    np.savez(tmp_path / "data.npz", y=0.5)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["check", "model.py:model", "--data", "data.npz", "--no-report"]) == 128 + signum


def test_a_stopped_check_leaves_the_session_as_it_found_it(tmp_path, monkeypatch):
    """The fake run sets the suite's numerics in this process as the real one does, then stops."""
    from ppl_suite.numerics import setup
    from tests.test_session_kept import session

    def stopped_run(*args):
        setup(own_process=False)
        return runner.Outcome(runner.STOPPED, stopped_by=signal.SIGINT)

    monkeypatch.setattr(api, "_run", stopped_run)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        before = session()
        with pytest.raises(ppl_suite.CheckStopped):
            ppl_suite.check(numpyro=model, kwargs={"y": 0.5}, out=tmp_path / "out", report=False)
        assert session() == before
    finally:
        torch.set_num_threads(threads)
