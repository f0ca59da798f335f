"""Do a model's log joints agree? The NumPy oracle's, the NumPyro model's and the Pyro model's
log p(x, z), evaluated at the same latents.

    max_i max_{a, b} |log p_a(x, z_i) - log p_b(x, z_i)|   over implementations a, b and draws z_i

A model is written once per library (and once in NumPy where it has an oracle); the estimators use
one of them (``ppl_suite.targets.build``), the libraries' own ELBOs use theirs. Every cell checks
the ones its numbers come from: the NumPy log joint, the NumPyro one (the estimators' and the
NumPyro and hand-rolled backends'), and Pyro's in Pyro cells, at a few draws of its fitted guide
(or of the exact posterior when the guide samples nothing). A wrong implementation fails the run's
correctness checks (``ppl_suite.checks``) instead of passing unnoticed, and a broken Pyro model
fails the Pyro cells only. The tolerance is the project's: 1e-6 nats (``checks.LOG_JOINT_TOLERANCE``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ppl_suite import backends, registry
from ppl_suite.checks import LOG_JOINT_TOLERANCE
from ppl_suite.problem import Problem
from ppl_suite.spec import Latents

DRAWS = 16  # latents per check: the Pyro route traces the model once per draw


@dataclass(frozen=True)
class Conformance:
    """The largest disagreement between two implementations, which two, and how many were compared."""

    max_difference: float
    pair: str
    implementations: int

    @property
    def ok(self) -> bool:
        return self.max_difference <= LOG_JOINT_TOLERANCE


SOURCES = ("numpy", "numpyro", "pyro")


def implementations(problem: Problem, sources: tuple[str, ...] = SOURCES) -> dict[str, object]:
    """The model's log-joint implementations among ``sources``, as Targets keyed by their source."""
    found: dict[str, object] = {}
    name = problem.spec.name
    if "numpy" in sources and problem.spec.log_joint is not None:
        from ppl_suite.targets.oracle_target import OracleTarget

        found["numpy"] = OracleTarget(problem)
    if "numpyro" in sources and registry.implementation(name, "numpyro") is not None:
        from ppl_suite.targets.numpyro_target import NumPyroTarget

        found["numpyro"] = NumPyroTarget(problem)
    if "pyro" in sources and registry.implementation(name, "pyro") is not None:
        from ppl_suite.targets.pyro_target import PyroTarget

        found["pyro"] = PyroTarget(problem)
    return found


def sources_for(backend: str) -> tuple[str, ...]:
    """The implementations a cell of ``backend`` relies on: the NumPy oracle, and those the backend
    declares (``BackendInfo.implementations``: NumPyro's always, Pyro's in Pyro cells)."""
    return tuple(
        source for source in SOURCES if source == "numpy" or source in backends.info(backend).implementations
    )


def log_joint_conformance(
    problem: Problem, latents: Latents, sources: tuple[str, ...] = SOURCES
) -> Conformance:
    """Compare the implementations' log p(x, z) at ``latents`` (the first DRAWS of them)."""
    latents = {site: np.asarray(value)[:DRAWS] for site, value in latents.items()}
    values = {
        source: np.asarray(t.log_joint(latents), float)
        for source, t in implementations(problem, sources).items()
    }
    worst, pair = 0.0, ""  # a single implementation has nothing to disagree with
    for (a, va), (b, vb) in itertools.combinations(values.items(), 2):
        difference = np.abs(va - vb)
        difference = float(np.inf if np.isnan(difference).any() else difference.max())  # NaN fails
        if difference > worst or not pair:
            worst, pair = difference, f"{a} vs {b}"
    return Conformance(worst, pair, len(values))
