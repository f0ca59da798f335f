"""PPCA for calibration (``ppl_suite.calibrate``): the model at its closed-form maximum-likelihood theta
(Tipping and Bishop 1999, section 3.2), where its exact posterior is the one calibration checks against."""

from __future__ import annotations

import numpy as np

from models.ppca.posterior import maximum_likelihood
from ppl_suite.problem import Problem


def at_maximum_likelihood(problem: Problem) -> Problem:
    """``problem`` with theta = (W, mu, log sigma) at its maximum-likelihood value."""
    ml = maximum_likelihood(problem.data["x"], np.shape(problem.params["W"])[1])
    return problem.with_params({"W": ml.W, "mu": ml.mu, "log_sigma": float(np.log(ml.sigma))})
