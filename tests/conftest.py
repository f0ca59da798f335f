"""Shared test set-up: float64 everywhere, one thread, a compilation cache and a reference cache of the
session's own (shared with the runs the tests start), and helpers over the model registry."""

import os
import tempfile

if "PPL_SUITE_XLA_CACHE" not in os.environ:  # set once by the controlling process, shared by its workers
    os.environ["PPL_SUITE_XLA_CACHE"] = tempfile.mkdtemp(prefix="ppl-suite-tests-xla-")
if "PYTEST_XDIST_WORKER" not in os.environ:  # the controlling process: its workers share its folder
    # NUTS references built by the tests (checks of their models) stay in the session's own folder:
    # never written to the user's cache, and never found there by a test that needs none stored
    os.environ["PPL_SUITE_REFERENCE_CACHE"] = tempfile.mkdtemp(prefix="ppl-suite-tests-references-")

from ppl_suite.compilation_cache import enable_compilation_cache
from ppl_suite.numerics import setup

setup()  # the numerics of every worker: float64 in torch and JAX, one thread
enable_compilation_cache()


import pytest  # noqa: E402

# test files that read the session's fitted cells (``tests/fitted_cells.py``): one pytest-xdist
# worker runs them all, so each cell is fitted once per session, not once per worker
FITTED_CELLS_FILES = tuple(
    f"tests/{name}.py"
    for name in (
        "test_fit", "models/test_bayes_linreg", "models/test_dirichlet_categorical",
        "models/test_gaussian_mixture", "models/test_normal_inverse_gamma", "models/test_ppca",
    )
)  # fmt: skip


FITTED_CELLS = "fitted cells"

# the units of work that take longest, longest first (summed `--durations=0` seconds of a `-n 2` run;
# only the order matters): handed out first, so that no long file is left to one worker at the end
LONGEST_FIRST = (
    FITTED_CELLS, "tests/test_runner.py", "tests/test_estimators_log_evidence.py", "tests/test_vae_study.py",
    "tests/test_ais_calibration.py", "tests/test_report.py", "tests/test_vae_training.py",
    "tests/test_runner_library.py", "tests/test_autoguides.py", "tests/test_numpyro_trace_order_elbo.py",
    "tests/test_vae_evaluation.py", "tests/test_calibrate.py", "tests/test_check_speed.py",
    "tests/test_reliability.py", "tests/test_references.py", "tests/test_reliability_stops.py",
    "tests/test_vqvae_model.py", "tests/test_compilation_cache.py", "tests/test_estimators_ais.py",
    "tests/test_vae_model.py",
)  # fmt: skip


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """With ``--dist loadfile``: a file per worker, the files of FITTED_CELLS_FILES together, the units
    of LONGEST_FIRST handed out first and in its order, then the others as pytest-xdist orders them."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class FilesSharingFittedCells(LoadFileScheduling):
        def __init__(self, config, log=None) -> None:
            super().__init__(config, log)
            self._longest_first = False  # whether the queue was put in LONGEST_FIRST's order

        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return FITTED_CELLS if scope in FITTED_CELLS_FILES else scope

        def _assign_work_unit(self, node) -> None:
            if not self._longest_first:  # the first unit handed out: order the queue
                rank = {scope: i for i, scope in enumerate(LONGEST_FIRST)}
                queued = sorted(self.workqueue.items(), key=lambda unit: rank.get(unit[0], len(rank)))
                self.workqueue.clear()
                self.workqueue.update(queued)
                self._longest_first = True
            super()._assign_work_unit(node)

    return FilesSharingFittedCells(config, log)


@pytest.fixture(autouse=True, scope="module")
def _registries_as_they_were():
    """The models and guide families a test module registers (a user's model through ``check`` or
    ``diagnose``, a stand-in model) are gone after it, so a later module that lists every registered
    model (the references profile, ``ppl-suite list``) sees the suite's own."""
    from ppl_suite import guides, registry
    from ppl_suite.checking import user_guide, user_model

    registry.names()  # the zoo found first: its models register guide families, which must be kept
    kept = [(registry, "MODELS", registry.MODELS.copy()), (guides, "FAMILIES", guides.FAMILIES.copy())]
    tables = [registry._implementations, user_model._registered, user_guide._registered]
    saved = [dict(table) for table in tables]
    yield
    for module, name, registry_copy in kept:
        setattr(module, name, registry_copy)
    for table, before in zip(tables, saved, strict=True):
        table.clear()
        table.update(before)
