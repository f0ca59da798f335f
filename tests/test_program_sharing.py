"""Within a process, cells that differ only in data values share a compiled NumPyro SVI loop
(``backends.programs``), unless what the loop holds as a constant differs: the guide's initial values.
Either way a fit's numbers are those of a fit in a process that ran nothing before it."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

from ppl_suite import backends
from ppl_suite.backends import SVIConfig, programs
from ppl_suite.guides.mean_field import MeanField
from ppl_suite.problem import Problem

SVI = SVIConfig(steps=30, eval_particles=50)
MODEL, GUIDE = "normal_normal", "mean_field"


@pytest.fixture
def own_store(monkeypatch):
    """A program store of the test's own (the session's is put back after)."""
    monkeypatch.setattr(programs, "_programs", OrderedDict())


def fit(data_seed: int):
    return backends.get("numpyro").fit(Problem.build(MODEL, data_seed), GUIDE, SVI, seed=0)


def fit_in_an_empty_store(data_seed: int, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(programs, "_programs", OrderedDict())
        return fit(data_seed)


def test_two_data_sets_of_one_shape_share_the_svi_loop(own_store, monkeypatch):
    fit(0)
    second = fit(1)
    assert second.compile_seconds == 0.0  # the loop compiled for data set 0
    alone = fit_in_an_empty_store(1, monkeypatch)
    assert np.array_equal(second.losses, alone.losses)
    assert all(np.array_equal(second.phi[name], alone.phi[name]) for name in alone.phi)


def test_a_guide_starting_from_values_read_from_the_data_gets_a_loop_per_data_set(own_store, monkeypatch):
    """A family whose initial loc is the data's mean: the second data set's loop is its own, not the
    first's with the first data set's starting point baked in."""
    init_params = MeanField.init_params

    def from_the_data(self, sites, data, params):
        phi = init_params(self, sites, data, params)
        shift = data["x"].mean()
        return {name: value + shift if name.endswith(".loc") else value for name, value in phi.items()}

    monkeypatch.setattr(MeanField, "init_params", from_the_data)
    fit(0)
    second = fit(1)
    assert second.compile_seconds > 0.0
    alone = fit_in_an_empty_store(1, monkeypatch)
    assert np.array_equal(second.losses, alone.losses)
    assert all(np.array_equal(second.phi[name], alone.phi[name]) for name in alone.phi)
