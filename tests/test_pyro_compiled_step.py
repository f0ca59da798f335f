"""The Pyro backend's step (``backends.pyro_compiled_step.CompiledELBOStep``) is JitTrace_ELBO's
``loss_and_grads``: at the same random state, the same loss and the same gradients."""

from __future__ import annotations

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


@pytest.mark.parametrize("model_name", ["normal_normal", "eight_schools_noncentered"])
def test_the_compiled_step_gives_jit_trace_elbos_loss_and_gradients(model_name):
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
    for seed in range(3):
        torch.manual_seed(seed)
        loss = float(step())
        grads = {name: value.grad.clone() for name, value in store.named_parameters()}
        for value in step.parameters:
            value.grad = None
        torch.manual_seed(seed)
        expected = elbo.loss_and_grads(traced_model, traced_guide, dict(data))
        assert loss == pytest.approx(expected, rel=100 * EPS, abs=100 * EPS)
        for name, value in store.named_parameters():
            np.testing.assert_allclose(grads[name], value.grad, rtol=100 * EPS, atol=100 * EPS)
            value.grad = None
    pyro.clear_param_store()
