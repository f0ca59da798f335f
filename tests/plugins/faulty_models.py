"""User-registered models with injected faults, loaded with ``--plugins tests.plugins.faulty_models``.

- ``faulty_raises``: Normal-Normal whose Pyro implementation raises: its Pyro cells must fail, the
  NumPyro cells still run.
- ``faulty_nan``: Normal-Normal whose data are NaN for data seed 1: that cell must be recorded as
  diverged (or failed), the others ok.
- ``faulty_exits``: Normal-Normal whose Pyro implementation ends its process at once, as a worker
  killed by the system would: that cell must be recorded as failed, and the worker replaced.
"""

import os
from dataclasses import replace

import numpy as np

import models
from models.normal_normal import numpyro_impl, spec


def _raises(data, params):
    raise RuntimeError("injected fault")


def _exits(data, params):
    os._exit(70)


def _nan_for_seed_one(rng, params):
    data = spec.generate_data(rng, params)
    if rng.bit_generator.seed_seq.entropy == 1:
        data["x"] = np.full_like(data["x"], np.nan)
    return data


if "faulty_raises" not in models.names():
    models.register(
        replace(spec.SPEC, name="faulty_raises", module="", guides=("mean_field",)),
        pyro_model=_raises,
        numpyro_model=numpyro_impl.model,
    )
    models.register(
        replace(
            spec.SPEC, name="faulty_nan", module="", guides=("mean_field",), generate_data=_nan_for_seed_one
        ),
        numpyro_model=numpyro_impl.model,
    )
    models.register(
        replace(spec.SPEC, name="faulty_exits", module="", guides=("mean_field",)),
        pyro_model=_exits,
        numpyro_model=numpyro_impl.model,
    )
