"""A plug-in whose model's name is read from the environment when it is imported
(``PPL_SUITE_TEST_MODEL_NAME``): a worker that imports it registers that model only if it sees the
caller's environment as it was when the cell was given (``executors.local.started_ahead``)."""

import os
from dataclasses import replace

import models
from models.normal_normal import numpyro_impl, spec

NAME = os.environ.get("PPL_SUITE_TEST_MODEL_NAME")

if NAME and NAME not in models.names():
    models.register(
        replace(spec.SPEC, name=NAME, module="", guides=("mean_field",)), numpyro_model=numpyro_impl.model
    )
