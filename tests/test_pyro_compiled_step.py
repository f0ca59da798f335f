"""The Pyro backend's step (``backends.pyro_compiled_step.CompiledELBOStep``) is JitTrace_ELBO's
``loss_and_grads``: at the same random state, the same loss and the same gradients, as fused Adam
reads them (the parameters after one Adam step); its recorded whole step
(``backends.pyro_recorded_step.RecordedAdamSteps``) gives the eager steps' losses and parameters, or
steps eagerly, saying why, when it cannot be recorded."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import JitTrace_ELBO

from ppl_suite import guides, registry
from ppl_suite.backends.base import ADAM_BETAS, ADAM_EPS
from ppl_suite.backends.pyro import as_torch, make_guide
from ppl_suite.backends.pyro_compiled_step import CompiledELBOStep
from ppl_suite.backends.pyro_draws import Draws, check_draws
from ppl_suite.backends.pyro_recorded_step import RECORD_MIN_STEPS, AdamSteps, RecordedAdamSteps
from ppl_suite.problem import Problem
from ppl_suite.targets.torch_compiled import COMPILED, EAGER, FROZEN_REASON

EPS = np.finfo(np.float64).eps


@pytest.mark.parametrize("model_name", ["normal_normal", "eight_schools_noncentered", "ppca"])
def test_the_compiled_step_gives_jit_trace_elbos_loss_and_adam_step(model_name):
    traced_model, traced_guide, data, draws = _mean_field(model_name)
    pyro.clear_param_store()
    elbo = JitTrace_ELBO(num_particles=4, ignore_jit_warnings=True, **draws.elbo_options())
    step = CompiledELBOStep(elbo, traced_model, traced_guide, dict(data))
    step()  # compiles, creates the parameters
    store = pyro.get_param_store()
    start = {name: value.detach().clone() for name, value in store.named_parameters()}

    def adam_step_from_start(loss_and_grads: Callable[[], object], seed: int):
        """The loss and the parameters after one fused Adam step from ``start`` (as the backend's loop)."""
        with torch.no_grad():
            for name, value in store.named_parameters():
                value.copy_(start[name])
                value.grad = None
        torch.manual_seed(seed)
        loss = float(loss_and_grads())
        optimizer = torch.optim.Adam([v for _, v in store.named_parameters()], lr=0.1, fused=True)
        optimizer.step()
        return loss, {name: value.detach().clone() for name, value in store.named_parameters()}

    for seed in range(3):
        loss, stepped = adam_step_from_start(step, seed)
        expected, expected_stepped = adam_step_from_start(
            lambda: elbo.loss_and_grads(traced_model, traced_guide, dict(data)), seed
        )
        assert loss == pytest.approx(expected, rel=100 * EPS, abs=100 * EPS)
        for name, value in expected_stepped.items():
            np.testing.assert_allclose(stepped[name], value, rtol=100 * EPS, atol=100 * EPS)
    pyro.clear_param_store()


def _mean_field(model_name: str, data_seed: int = 0) -> tuple[Callable, Callable, dict, Draws]:
    """The model and its mean-field guide as functions of the data's tensors (as the backend traces
    them), the data and the model's draws path, for ``model_name``'s data set ``data_seed``."""
    problem = Problem.build(model_name, data_seed)
    model = registry.implementation(model_name, "pyro")
    data, params = as_torch(problem.data), as_torch(problem.params)
    phi0 = guides.get("mean_field").init_params(problem.sites, problem.data, problem.params)
    guide = make_guide(problem, "mean_field", phi0)

    def traced_model(tensors):
        return model(tensors, params)

    def traced_guide(tensors):
        return guide(tensors, params)

    return traced_model, traced_guide, dict(data), check_draws(model, data, params)


def _family_steps(
    model_name: str,
    steps_class: type,
    particles: int = 4,
    steps: int = RECORD_MIN_STEPS,
    key: str | None = None,
    data_seed: int = 0,
):
    """The backend's steps of the mean-field family on ``model_name``'s data set ``data_seed`` (fresh
    param store); ``key``: the recorded step's key in the program cache (None: not kept)."""
    traced_model, traced_guide, data, draws = _mean_field(model_name, data_seed)
    pyro.clear_param_store()
    elbo = JitTrace_ELBO(num_particles=particles, ignore_jit_warnings=True, **draws.elbo_options())
    return _steps(steps_class, elbo, traced_model, traced_guide, data, steps, key)


def _steps(
    steps_class: type,
    elbo: JitTrace_ELBO,
    model: Callable,
    guide: Callable,
    tensors: dict,
    steps: int = RECORD_MIN_STEPS,
    key: str | None = None,
):
    """``steps_class``'s steps (the recorded ones, or the eager loop of CompiledELBOStep and torch's
    Adam) of ``elbo`` on ``model`` and ``guide``, functions of ``tensors``."""
    if steps_class is RecordedAdamSteps:
        return RecordedAdamSteps(elbo, model, guide, tensors, ADAM_BETAS, ADAM_EPS, steps, key)
    forward = CompiledELBOStep(elbo, model, guide, tensors)
    return AdamSteps(forward, lambda: list(forward.parameters), ADAM_BETAS, ADAM_EPS)


def _run(steps, rates: list[float], seed: int) -> tuple[list[float], dict[str, np.ndarray]]:
    """The losses of ``steps`` at ``rates`` from ``seed``, and the parameters after the last."""
    torch.manual_seed(seed)
    losses = [float(steps(rate)) for rate in rates]
    steps.write_back()
    parameters = {
        name: value.detach().numpy().copy() for name, value in pyro.get_param_store().named_parameters()
    }
    pyro.clear_param_store()
    return losses, parameters


@pytest.mark.parametrize("model_name", ["normal_normal", "eight_schools_noncentered", "ppca"])
def test_the_recorded_step_gives_the_eager_steps_losses_and_adam_steps(model_name):
    # the first step is eager and records; the others replay the recording, drawing the same particles
    rates = [0.1, 0.05, 0.02, 0.01]
    recorded = _family_steps(model_name, RecordedAdamSteps)
    losses, parameters = _run(recorded, rates, seed=3)
    assert recorded.path == COMPILED
    expected_losses, expected = _run(_family_steps(model_name, AdamSteps), rates, seed=3)
    np.testing.assert_allclose(losses, expected_losses, rtol=100 * EPS, atol=100 * EPS)
    assert parameters.keys() == expected.keys()
    for name, value in expected.items():
        np.testing.assert_allclose(parameters[name], value, rtol=100 * EPS, atol=100 * EPS)


def test_the_replays_run_in_inference_mode_and_write_back_trainable_parameters():
    # the replayed state is inference tensors; what reaches the param store is copied into its own
    # leaves, which stay trainable: the eager step (the loop's fallback) differentiates and moves them
    recorded = _family_steps("normal_normal", RecordedAdamSteps)
    torch.manual_seed(0)
    for rate in (0.1, 0.05, 0.02):
        recorded(rate)
    assert recorded.path == COMPILED
    assert all(value.is_inference() for value in recorded.state)
    recorded.write_back()
    parameters = dict(pyro.get_param_store().named_parameters())
    assert parameters
    for value in parameters.values():
        assert not value.is_inference() and value.is_leaf and value.requires_grad
    before = {name: value.detach().clone() for name, value in parameters.items()}
    assert np.isfinite(float(recorded.eager(0.1)))
    for name, value in parameters.items():
        assert not torch.equal(value.detach(), before[name]), name
    pyro.clear_param_store()


def test_after_a_replay_that_raises_the_eager_step_goes_on_from_the_replayed_state():
    rates = [0.1, 0.05, 0.02, 0.01, 0.005]
    recorded = _family_steps("eight_schools_noncentered", RecordedAdamSteps)

    def broken_replay(*inputs):
        raise RuntimeError("broken")

    def steps_then_break(lr: float):
        if recorded.count == 3:
            recorded.replay = broken_replay
        return recorded(lr)

    steps_then_break.write_back = recorded.write_back
    losses, parameters = _run(steps_then_break, rates, seed=5)
    assert recorded.path == f"{EAGER}: a replay failed (RuntimeError: broken)"
    expected_losses, expected = _run(_family_steps("eight_schools_noncentered", AdamSteps), rates, seed=5)
    np.testing.assert_allclose(losses, expected_losses, rtol=100 * EPS, atol=100 * EPS)
    for name, value in expected.items():
        np.testing.assert_allclose(parameters[name], value, rtol=100 * EPS, atol=100 * EPS)


def test_a_step_that_reads_a_value_into_python_is_not_recorded_and_steps_eagerly():
    x = torch.tensor([0.5, 1.5, -0.3])

    def model(tensors):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        scale = 1.0 if float(z) > 0 else 2.0  # control flow on a drawn value
        with pyro.plate("data", 3):
            pyro.sample("x", dist.Normal(z, scale), obs=tensors["x"])

    def guide(tensors):
        pyro.sample("z", dist.Normal(pyro.param("loc", torch.tensor(0.0)), 1.0))

    pyro.clear_param_store()
    elbo = JitTrace_ELBO(ignore_jit_warnings=True)
    steps = _steps(RecordedAdamSteps, elbo, model, guide, {"x": x})
    losses = [float(steps(0.1)) for _ in range(3)]
    assert steps.path.startswith(f"{EAGER}: {FROZEN_REASON}")
    assert np.all(np.isfinite(losses))
    pyro.clear_param_store()


def test_a_run_shorter_than_the_recordings_break_even_is_not_recorded():
    steps = _family_steps("normal_normal", RecordedAdamSteps, steps=RECORD_MIN_STEPS - 1)
    steps(0.1)
    assert steps.path.startswith(f"{EAGER}: {RECORD_MIN_STEPS - 1} steps, fewer than")
    pyro.clear_param_store()


def test_the_recorded_step_keeps_the_score_function_term_of_a_site_without_rsample():
    # z's guide has no rsample: its gradient is the score-function (surrogate) term
    x = torch.tensor([1.0, 0.0, 1.0, 1.0])

    def model(tensors):
        z = pyro.sample("z", dist.Bernoulli(0.3))
        with pyro.plate("data", 4):
            pyro.sample("x", dist.Normal(2.0 * z, 1.0), obs=tensors["x"])

    def guide(tensors):
        pyro.sample("z", dist.Bernoulli(logits=pyro.param("logit", torch.tensor(0.0))))

    def steps(steps_class: type):
        pyro.clear_param_store()
        elbo = JitTrace_ELBO(
            num_particles=8, vectorize_particles=True, max_plate_nesting=1, ignore_jit_warnings=True
        )
        return _steps(steps_class, elbo, model, guide, {"x": x})

    rates = [0.1, 0.1, 0.1, 0.1]
    recorded = steps(RecordedAdamSteps)
    losses, parameters = _run(recorded, rates, seed=7)
    assert recorded.path == COMPILED
    expected_losses, expected = _run(steps(AdamSteps), rates, seed=7)
    np.testing.assert_allclose(losses, expected_losses, rtol=100 * EPS, atol=100 * EPS)
    np.testing.assert_allclose(parameters["logit"], expected["logit"], rtol=100 * EPS, atol=100 * EPS)
    assert parameters["logit"] != 0.0  # the score-function term moved the parameter


def test_a_gradient_that_is_a_broadcast_view_is_stepped_as_the_eager_loop_steps_it():
    # d/dw of w.sum() is a tensor of ones expanded to w's shape (stride 0), which fused Adam misreads
    # unless it is made contiguous
    x = torch.tensor([0.5, 1.5, -0.3])

    def model(tensors):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        with pyro.plate("data", 3):
            pyro.sample("x", dist.Normal(z, 1.0), obs=tensors["x"])

    def guide(tensors):
        w = pyro.param("w", torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]))
        pyro.sample("z", dist.Normal(0.1 * w.sum(), 1.0))

    def steps(steps_class: type):
        pyro.clear_param_store()
        elbo = JitTrace_ELBO(
            num_particles=2, vectorize_particles=True, max_plate_nesting=1, ignore_jit_warnings=True
        )
        return _steps(steps_class, elbo, model, guide, {"x": x})

    recorded = steps(RecordedAdamSteps)
    losses, parameters = _run(recorded, [0.1] * 5, seed=1)
    assert recorded.path == COMPILED
    expected_losses, expected = _run(steps(AdamSteps), [0.1] * 5, seed=1)
    np.testing.assert_allclose(losses, expected_losses, rtol=100 * EPS, atol=100 * EPS)
    np.testing.assert_allclose(parameters["w"], expected["w"], rtol=100 * EPS, atol=100 * EPS)


def test_the_training_curves_snapshots_on_the_recorded_path_are_the_eager_loops(monkeypatch):
    from ppl_suite import backends
    from ppl_suite.backends import pyro_recorded_step
    from ppl_suite.backends.base import SVIConfig

    problem, config = (
        Problem.build("normal_normal", 0),
        SVIConfig(steps=RECORD_MIN_STEPS, eval_particles=1000),
    )
    recorded = backends.get("pyro").fit(problem, "mean_field", config, seed=2)
    monkeypatch.setattr(pyro_recorded_step, "RECORD_MIN_STEPS", RECORD_MIN_STEPS + 1)  # eager throughout
    eager = backends.get("pyro").fit(problem, "mean_field", config, seed=2)
    np.testing.assert_allclose(recorded.losses, eager.losses, rtol=1e-12, atol=1e-12)
    for name, value in eager.trajectory["phi"].items():
        assert len(value) > 2 and not np.all(value[-1] == value[0])
        np.testing.assert_allclose(recorded.trajectory["phi"][name], value, rtol=1e-12, atol=1e-12)
