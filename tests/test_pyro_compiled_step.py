"""The Pyro backend's step (``backends.pyro_compiled_step.CompiledELBOStep``) is JitTrace_ELBO's
``loss_and_grads``: at the same random state, the same loss and the same gradients, as fused Adam
reads them (the parameters after one Adam step)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyro
import pytest
import torch
from pyro.infer import JitTrace_ELBO

from ppl_suite import guides, registry
from ppl_suite.backends.pyro import as_torch, make_guide
from ppl_suite.backends.pyro_compiled_step import CompiledELBOStep
from ppl_suite.backends.pyro_draws import check_draws
from ppl_suite.problem import Problem

EPS = np.finfo(np.float64).eps


@pytest.mark.parametrize("model_name", ["normal_normal", "eight_schools_noncentered", "ppca"])
def test_the_compiled_step_gives_jit_trace_elbos_loss_and_adam_step(model_name):
    problem = Problem.build(model_name, 0)
    model = registry.implementation(model_name, "pyro")
    data, params = as_torch(problem.data), as_torch(problem.params)
    phi0 = guides.get("mean_field").init_params(problem.sites, problem.data, problem.params)
    guide = make_guide(problem, "mean_field", phi0)
    draws = check_draws(model, data, params)

    def traced_model(tensors):
        return model(tensors, params)

    def traced_guide(tensors):
        return guide(tensors, params)

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
