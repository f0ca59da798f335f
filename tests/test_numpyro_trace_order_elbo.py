"""The NumPyro backend's ELBO (``backends.numpyro_elbo.TraceOrderELBO``): NumPyro's Trace_ELBO to float64
rounding, and a compiled program whose text does not depend on the process's string-hash seed."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from numpyro.infer import Trace_ELBO

from ppl_suite import guides, registry
from ppl_suite.backends.numpyro import as_jax, make_guide
from ppl_suite.backends.numpyro_elbo import TraceOrderELBO
from ppl_suite.problem import Problem

ROOT = Path(__file__).resolve().parent.parent
EPS = np.finfo(np.float64).eps


def fitted_guide(model_name: str):
    """The model, the mean-field guide at perturbed parameters, and its arguments."""
    problem = Problem.build(model_name, 0)
    phi = guides.get("mean_field").init_params(problem.sites, problem.data, problem.params)
    rng = np.random.default_rng(1)
    phi = {
        name: np.asarray(value) + 0.3 * rng.standard_normal(np.shape(value)) for name, value in phi.items()
    }
    model = registry.implementation(model_name, "numpyro")
    return model, make_guide(problem, "mean_field", phi), as_jax(phi), (problem.data, as_jax(problem.params))


@pytest.mark.parametrize(
    ("model_name", "particles"), [("normal_normal", 1), ("eight_schools_noncentered", 16)]
)
def test_trace_order_elbo_is_numpyros_trace_elbo_to_rounding(model_name, particles):
    """Same keys, same draws, same terms: value and gradient differ only by the order of a sum, i.e.
    by a few ulps of the largest term (bounded by n_terms * eps * sum of |terms|, taken as the
    magnitude of the loss times the number of sites; here n_terms < 100). Both compiled, as the
    backend runs its loss (run eagerly, each of the model's operations was compiled on its own)."""
    model, guide, phi, args = fitted_guide(model_name)

    def loss(elbo):
        return jax.jit(jax.value_and_grad(lambda p: elbo.loss(jax.random.PRNGKey(3), p, model, guide, *args)))

    value, grad = loss(TraceOrderELBO(num_particles=particles))(phi)
    expected, expected_grad = loss(Trace_ELBO(num_particles=particles))(phi)
    bound = 100 * EPS * (abs(float(expected)) + 1.0)
    assert abs(float(value) - float(expected)) <= bound
    for name in phi:
        scale = 100 * EPS * (np.abs(np.asarray(expected_grad[name])).max() + abs(float(expected)) + 1.0)
        np.testing.assert_allclose(np.asarray(grad[name]), np.asarray(expected_grad[name]), atol=scale)


def lowered_loss_digest() -> str:
    """sha256 of the text of the backend's loss and gradient, lowered for eight_schools_noncentered."""
    from ppl_suite.backends.numpyro import ELBO_CLASSES

    model, guide, phi, args = fitted_guide("eight_schools_noncentered")
    elbo = ELBO_CLASSES["trace"](num_particles=4)
    loss = jax.value_and_grad(lambda p, k: elbo.loss(k, p, model, guide, *args))
    text = jax.jit(loss).lower(phi, jax.random.PRNGKey(0)).as_text(debug_info=False)
    return hashlib.sha256(text.encode()).hexdigest()


def test_the_backends_loss_lowers_to_the_same_program_whatever_the_hash_seed():
    """The persistent compilation cache's key is the program's text: a process with another
    PYTHONHASHSEED must lower the same text as this one (NumPyro's own Trace_ELBO does not: its
    sites' order follows string hashes)."""
    other = str(int(os.environ.get("PYTHONHASHSEED", "0") or 0) + 1)
    env = {**os.environ, "PYTHONHASHSEED": other, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    script = (
        "from ppl_suite.numerics import setup; setup()\n"
        "from tests.test_numpyro_trace_order_elbo import lowered_loss_digest; print(lowered_loss_digest())"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == lowered_loss_digest()
