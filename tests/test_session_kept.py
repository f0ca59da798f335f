"""``check`` and ``diagnose`` leave the caller's session as they found it: torch's default dtype and
thread count, JAX's x64 flag, ``XLA_FLAGS`` and NumPyro's validation, after a run and after an error
(the settings they need are set for the call only, ``numerics.kept_session``)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import ppl_suite
from ppl_suite.errors import InputProblem
from ppl_suite.executors.worker import configured_here
from tests.test_diagnose import (
    numpyro_autonormal,
    numpyro_model,
    pyro_autonormal,
    pyro_model,
    regression_data,
)


def session() -> dict:
    import jax
    import torch
    from numpyro.distributions.distribution import Distribution

    return {
        "dtype": torch.get_default_dtype(),
        "threads": torch.get_num_threads(),
        "x64": jax.config.jax_enable_x64,
        "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
        "numpyro validation": Distribution._validate_args,
    }


@pytest.fixture
def users_session():
    """A user's session unlike the suite's (float32, two threads, x64 off, no XLA_FLAGS, validation
    on); the tests' own set-up restored afterwards."""
    import jax
    import torch
    from numpyro.distributions.distribution import Distribution

    suites = session()
    torch.set_default_dtype(torch.float32)
    torch.set_num_threads(2)
    jax.config.update("jax_enable_x64", False)
    os.environ.pop("XLA_FLAGS", None)
    Distribution.set_default_validate_args(True)
    users = session()
    yield users
    torch.set_default_dtype(suites["dtype"])
    torch.set_num_threads(suites["threads"])
    jax.config.update("jax_enable_x64", suites["x64"])
    if suites["XLA_FLAGS"] is not None:
        os.environ["XLA_FLAGS"] = suites["XLA_FLAGS"]
    Distribution.set_default_validate_args(suites["numpyro validation"])


def test_the_in_process_set_up_is_the_suites_inside_and_the_users_after_even_after_an_error(users_session):
    with pytest.raises(RuntimeError, match="inside"), configured_here():
        inside = session()
        raise RuntimeError("inside")
    assert inside["x64"] and inside["threads"] == 1 and not inside["numpyro validation"]
    assert inside["XLA_FLAGS"] is None  # only a worker process of the suite's own sets it
    assert session() == users_session


@pytest.fixture(scope="module")
def fits():
    """A NumPyro AutoNormal with parameters set by hand and a Pyro AutoNormal after one step (made in
    the tests' float64 session, before the user's session is set)."""
    design, y = regression_data()
    numpyro_guide, numpyro_params = numpyro_autonormal(0, design, y)
    pyro_guide, store = pyro_autonormal(1, design, y)
    pyro_params = {k: v.detach().clone() for k, v in store.items()}
    return (numpyro_guide, numpyro_params), (pyro_guide, pyro_params), design, y


def test_diagnose_leaves_the_session_as_it_found_it_after_an_error_and_after_a_result(
    fits, users_session, monkeypatch
):
    import torch

    from ppl_suite.diagnosing import api

    # the Pyro model's NUTS reference (a minute through the torch bridge) is not what this test checks
    monkeypatch.setattr(api, "_nuts_reference", lambda *arguments: (None, "", "", None))

    (guide, params), (pyro_guide, store), design, y = fits
    torch.set_default_dtype(torch.float64)  # as a user fitting the Pyro model in float64 has it
    before = session()
    wrong = {**params, "w_auto_loc": np.zeros(3)}
    with pytest.raises(InputProblem, match=r"\(3,\)"):
        ppl_suite.diagnose(numpyro_model, guide, wrong, args=(design,), kwargs={"y": y})
    assert session() == before
    found = ppl_suite.diagnose(
        pyro_model, pyro_guide, store, args=(torch.tensor(design),), kwargs={"y": torch.tensor(y)}, draws=100
    )
    assert np.isfinite(found.elbo)
    assert session() == before
