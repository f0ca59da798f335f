"""The Target the evaluation pipeline uses for a problem: the fastest adapter that can serve it.

1. the NumPyro model (``NumPyroTarget``): a compiled, vectorized log joint and every unconstrained
   method, so every estimator applies;
2. else the NumPy oracle's ``log_joint`` (``OracleTarget``): guide-based estimators only;
3. else the Pyro model (``PyroTarget``): one trace per batch of draws, and the unconstrained density
   through a torch bridge (AIS, BDMC, NUTS; no second derivatives).

A ``reference`` (NUTS draws and AIS evidence, for a model without an oracle) rides along on the
Target, so the estimators that compare a guide with it need nothing else.
"""

from __future__ import annotations

from ppl_suite import registry
from ppl_suite.problem import Problem
from ppl_suite.targets import PosteriorReference, Target


def target_for(problem: Problem, reference: PosteriorReference | None = None) -> Target:
    """The Target of ``problem`` (see the module docstring for the order), carrying ``reference``."""
    name = problem.spec.name
    if registry.implementation(name, "numpyro") is not None:
        from ppl_suite.targets.numpyro_target import NumPyroTarget

        return NumPyroTarget(problem, reference)
    if problem.spec.log_joint is not None:
        from ppl_suite.targets.oracle_target import OracleTarget

        return OracleTarget(problem, reference)
    if registry.implementation(name, "pyro") is not None:
        from ppl_suite.targets.pyro_target import PyroTarget

        return PyroTarget(problem, reference)
    raise ValueError(f"model {name!r} has neither a NumPyro or Pyro implementation nor a NumPy log joint")
