"""A NUTS reference that fails a gate tries remedies (``ppl_suite.references.remedies``) within its time
budget, tells each step, and when every attempt fails names them all with their gates and the
``--nuts`` options that give NUTS more room. A centered eight-schools model as a user writes it
(``theta ~ Normal(mu, tau)`` in a plate) passes after its non-centered form, its draws mapped back to
the model as written and agreeing with the committed eight-schools reference."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

from ppl_suite.checking.user_model import UserModel, register
from ppl_suite.problem import Problem
from ppl_suite.references import NUTSSettings, ReferenceGateError, nuts, progress
from ppl_suite.references import reference as reference_module
from ppl_suite.references.gates import GateResult
from ppl_suite.references.remedies import (
    HIGH_TARGET_ACCEPT,
    LONGER,
    NON_CENTERED,
    SMALLER_STEPS,
    Attempt,
    centered_pyro_sites,
    centered_sites,
    next_attempt,
)

ROOT = Path(__file__).resolve().parent.parent
EFFECTS = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
STANDARD_ERRORS = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
CENTERED = """
import numpyro
import numpyro.distributions as dist


def model(data):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("school", 8):
        theta = numpyro.sample("theta", dist.Normal(mu, tau))
        numpyro.deterministic("shrinkage", (theta - mu) / tau)
        numpyro.sample("y", dist.Normal(theta, data["sigma"]), obs=data["y"])
"""
NON_CENTERED_MODEL = """
import numpyro
import numpyro.distributions as dist


def model(data):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("school", 8):
        eta = numpyro.sample("eta", dist.Normal(0.0, 1.0))
        numpyro.sample("y", dist.Normal(mu + tau * eta, data["sigma"]), obs=data["y"])
"""
# Small: the centered funnel diverges at seed 0 under them, the non-centered form passes its gates
# (lowered to what 4 x 300 draws give). The two real NUTS runs (two compilations, about 2 minutes on a
# busy 2-core machine) are slow tests; the loop itself is tested on stand-in runs.
SMALL = NUTSSettings(warmup=300, draws=300, max_draws=300, rhat_max=1.05, ess_min=100.0)


def user_model(tmp_path: Path, name: str, source: str) -> Problem:
    """A user's NumPyro model of eight schools, registered as ``ppl_suite.check`` registers it."""
    (tmp_path / f"{name}.py").write_text(source)
    np.savez(tmp_path / "data.npz", y=EFFECTS, sigma=STANDARD_ERRORS)
    register(
        UserModel(
            name=name, data=str(tmp_path / "data.npz"), numpyro=f"{tmp_path / name}.py:model",
            guides=("auto_normal",),
        )
    )  # fmt: skip
    return Problem.build(name, 0)


def gates(divergences: int = 0, ess: float = 2000.0, settings: NUTSSettings = SMALL) -> GateResult:
    row = {"r_hat": 1.001, "ess_bulk": ess, "ess_tail": ess}
    return GateResult.of({"mu": row, "tau": row}, divergences, settings)


@pytest.fixture(scope="module")
def centered(tmp_path_factory) -> Problem:
    return user_model(tmp_path_factory.mktemp("centered"), "centered_eight_schools", CENTERED)


def test_centered_sites_are_those_whose_loc_or_scale_depend_on_latents(centered, tmp_path):
    model = nuts.sampled_model(centered)
    assert centered_sites(model, dict(centered.data), dict(centered.params)) == ("theta",)
    plain = user_model(tmp_path, "non_centered_sites", NON_CENTERED_MODEL)
    model = nuts.sampled_model(plain)
    assert centered_sites(model, dict(plain.data), dict(plain.params)) == ()


def _numpyro_mixed_model(data, params):
    import numpyro
    import numpyro.distributions as dist

    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    s = numpyro.sample("s", dist.HalfNormal(1.0))
    with numpyro.plate("groups", 3):
        theta = numpyro.sample("theta", dist.LogNormal(mu, 1.0))
        g = numpyro.sample("g", dist.HalfNormal(s))
        h = numpyro.sample("h", dist.HalfCauchy(s))
        z = numpyro.sample("z", dist.Normal(mu, s))
    numpyro.sample("y", dist.Normal(theta + g + h + z, 1.0).to_event(1), obs=data["y"])


def _pyro_mixed_model(data, params):
    import pyro
    import pyro.distributions as dist

    mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
    s = pyro.sample("s", dist.HalfNormal(1.0))
    theta = pyro.sample("theta", dist.LogNormal(mu, 1.0).expand([3]).to_event(1))
    g = pyro.sample("g", dist.HalfNormal(s).expand([3]).to_event(1))
    h = pyro.sample("h", dist.HalfCauchy(s).expand([3]).to_event(1))
    z = pyro.sample("z", dist.Normal(mu, s).expand([3]).to_event(1))
    pyro.sample("y", dist.Normal(theta + g + h + z, 1.0).to_event(1), obs=data["y"])


def test_only_real_loc_scale_sites_are_centered_never_a_transformed_one():
    """LogNormal(mu, 1), HalfNormal(s), HalfCauchy(s) depend on latents but are transformed
    distributions: ``LocScaleReparam`` would build another model (LogNormal) or fail (HalfNormal), so
    only the Normal(mu, s) site is flagged, in either library."""
    import torch

    y = [1.0, 2.0, 3.0]
    assert centered_sites(_numpyro_mixed_model, {"y": np.array(y)}, {}) == ("z",)
    assert centered_pyro_sites(_pyro_mixed_model, {"y": torch.tensor(y, dtype=torch.float64)}, {}) == ("z",)


def test_divergences_take_the_non_centered_form_first_then_smaller_steps():
    first = Attempt(SMALL)
    second = next_attempt(first, gates(divergences=3), ("theta",))
    assert (second.remedies, second.non_centered, second.settings) == ((NON_CENTERED,), ("theta",), SMALL)
    third = next_attempt(second, gates(divergences=1), ("theta",))
    assert third.remedies == (NON_CENTERED, SMALLER_STEPS) and third.non_centered == ("theta",)
    assert (third.settings.target_accept, third.settings.warmup) == (HIGH_TARGET_ACCEPT, 2 * SMALL.warmup)
    assert next_attempt(third, gates(divergences=1), ("theta",)) is None  # nothing left for divergences


def test_short_ess_without_divergences_takes_longer_chains_before_the_non_centered_form():
    second = next_attempt(Attempt(SMALL), gates(ess=50.0), ("theta",))
    assert second.remedies == (LONGER,) and second.non_centered == ()
    assert (second.settings.warmup, second.settings.max_draws) == (2 * SMALL.warmup, 2 * SMALL.max_draws)
    third = next_attempt(second, gates(ess=50.0), ("theta",))
    assert third.remedies == (LONGER, NON_CENTERED)
    assert next_attempt(Attempt(SMALL), gates(ess=50.0), ()).remedies == (LONGER,)  # no centered site


def fake_runs(monkeypatch, failing: GateResult, seconds: float) -> list[dict]:
    """nuts.run replaced by runs that fail ``failing``'s gates in ``seconds`` each (wall and CPU); the
    calls."""
    calls = []

    def run(problem, settings, mapping=None, *, extend=True, non_centered=(), tell, expected=None):
        calls.append({"settings": settings, "non_centered": non_centered})
        stats = {"diverging": np.zeros((settings.chains, settings.draws), bool)}
        return nuts.NUTSRun({}, {}, stats, {}, failing, seconds, seconds)

    monkeypatch.setattr(nuts, "run", run)
    monkeypatch.setattr(reference_module, "_centered", lambda problem, settings: ("theta",))
    return calls


def test_when_every_remedy_fails_the_message_names_each_attempt_its_gates_and_the_nuts_options(
    centered, monkeypatch
):
    failing = gates(divergences=4)
    calls = fake_runs(monkeypatch, failing, seconds=1.0)
    with pytest.raises(ReferenceGateError) as raised:
        reference_module._sample(centered, SMALL, progress.ignore, time.perf_counter())
    message = str(raised.value)
    assert [call["non_centered"] for call in calls] == [(), ("theta",), ("theta",)]
    assert "failed its gates in 3 attempts: 1. as given" in message
    assert "2. non-centered theta" in message
    assert (
        f"3. non-centered theta + target_accept {HIGH_TARGET_ACCEPT:g}, warmup {2 * SMALL.warmup}" in message
    )
    assert message.count("4 divergent transitions > 0") == 3
    assert "stopped: no remedy left for what failed" in message and "nothing was stored" in message
    assert "--nuts budget_seconds=" in message and f"warmup={4 * SMALL.warmup}" in message


def test_no_attempt_starts_that_would_end_past_the_budget(centered, monkeypatch):
    calls = fake_runs(monkeypatch, gates(divergences=4), seconds=60.0)
    told = []
    settings = dataclasses.replace(SMALL, budget_seconds=50.0)
    with pytest.raises(
        ReferenceGateError,
        match=r"would take about 60 s \(the smaller of wall and CPU time\), past the budget of 50 s",
    ):
        reference_module._sample(centered, settings, told.append, time.perf_counter())
    assert len(calls) == 1 and told[-1].phase == progress.STOPPED
    assert "past the budget of 50 s" in told[-1].text  # the stop's line says why


@pytest.mark.parametrize(("wall", "cpu"), [(60.0, 10.0), (10.0, 60.0)], ids=["busy-machine", "threads"])
def test_the_budget_counts_the_smaller_of_wall_and_cpu_seconds(centered, monkeypatch, wall, cpu):
    """An attempt of 60 s of wall time but 10 s of CPU (a machine busy with other work), or of 10 s of
    wall time but 60 s of CPU (threads in parallel), leaves room in a 50 s budget for the next one."""
    calls = fake_runs(monkeypatch, gates(divergences=4), seconds=wall)
    faked = nuts.run

    def timed(*args, **kwargs):
        return dataclasses.replace(faked(*args, **kwargs), cpu_seconds=cpu)

    monkeypatch.setattr(nuts, "run", timed)
    settings = dataclasses.replace(SMALL, budget_seconds=50.0)
    with pytest.raises(ReferenceGateError, match="no remedy left"):
        reference_module._sample(centered, settings, progress.ignore, time.perf_counter())
    assert len(calls) == 3


def test_remedies_off_makes_one_attempt(centered, monkeypatch):
    calls = fake_runs(monkeypatch, gates(divergences=4), seconds=1.0)
    settings = dataclasses.replace(SMALL, remedies=False)
    with pytest.raises(ReferenceGateError, match=r"in 1 attempt: 1\. as given"):
        reference_module._sample(centered, settings, progress.ignore, time.perf_counter())
    assert len(calls) == 1


@pytest.fixture(scope="module")
def sampled(centered):
    """The user's centered eight schools through the remedies under SMALL: (run, attempt, records, steps)."""
    steps = []
    return (*reference_module._sample(centered, SMALL, steps.append, time.perf_counter()), steps)


@pytest.mark.slow
def test_users_centered_eight_schools_passes_in_its_non_centered_form(sampled):
    run, attempt, records, steps = sampled
    assert records[0]["divergences"] > 0 and records[0]["non_centered"] == []  # the funnel, as written
    assert run.gates.passed and attempt.non_centered == ("theta",) and len(records) == 2
    phases = [(step.attempt, step.phase) for step in steps if step.phase != progress.RUNNING]
    for number in (1, 2):
        assert [p for a, p in phases if a == number] == [progress.STARTED, progress.DRAWN]
    started = [step for step in steps if step.phase == progress.STARTED]
    assert started[0].eta is None and started[1].eta > 0  # the second attempt's time is foreseen
    assert steps[-1].gates.passed and "gates passed" in steps[-1].text


@pytest.mark.slow
def test_non_centered_draws_are_the_model_as_written(sampled):
    """theta (and the deterministic site) kept under their own names, the auxiliary site dropped; the
    posterior means agree with the committed eight-schools reference within 4 combined MCSEs."""
    run, _, _, _ = sampled
    assert set(run.draws) == {"mu", "tau", "theta"} and set(run.deterministic) == {"shrinkage"}
    assert run.draws["theta"].shape == (SMALL.chains, SMALL.draws, 8)
    committed = json.loads((ROOT / "models" / "eight_schools_centered" / "reference.json").read_text())
    for name in ("mu", "tau", *(f"theta[{j}]" for j in range(8))):
        ours, theirs = run.coordinates[name], committed[name]
        tolerance = 4 * math.hypot(ours["mcse_mean"], theirs["mcse_mean"])
        assert abs(ours["mean"] - theirs["mean"]) <= tolerance, name
