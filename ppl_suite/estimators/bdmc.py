"""Bidirectional Monte Carlo (BDMC): AIS forwards from the prior and backwards from exact posterior
draws, which sandwich log p(x).

    forward:  u_0 ~ p(u), beta 0 -> 1,  E[w_f] = p(x)      =>  E[log mean w_f] <= log p(x)
    reverse:  u_T ~ p(u | x) exactly, the same kernels in reverse order, beta 1 -> 0,
              log w_r = sum_t (beta_{t-1} - beta_t) log p(x | u_t),  E[w_r] = 1 / p(x)
              =>  log p(x)_upper = -log mean w_r,  E[log p(x)_upper] >= log p(x)

Grosse, Ghahramani and Adams (2015), "Sandwiching the marginal likelihood using bidirectional Monte
Carlo", arXiv:1511.02543. The exact posterior draws come from the model's oracle (in practice BDMC
is run on data simulated from the model, where the simulating latents are such a draw).

Both passes share the temperatures, step sizes and scales of ``ppl_suite.estimators.ais`` (a pilot
run, then frozen), and one compiled runner. The value is the upper bound, with the delta-method SE
over chains, sd(w_r) / (sqrt(C) mean(w_r)); extras hold the forward (lower) bound and the gap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import jax
import numpy as np

from ppl_suite.estimate import Estimate
from ppl_suite.estimators import need_exact
from ppl_suite.estimators.ais import AISConfig, AISRun
from ppl_suite.estimators.target import Target, continuous_reason
from ppl_suite.estimators.weights import log_mean_exp_se
from ppl_suite.fitted_guide import FittedGuide
from ppl_suite.problem import Problem
from ppl_suite.spec import ExactPosterior


def bdmc_bounds(
    problem: Problem, exact: ExactPosterior, config: AISConfig | None = None, seed: int = 0
) -> Estimate:
    """Upper bound by reverse AIS (value, SE); extras: ``lower``/``lower_se`` by forward AIS, ``gap``."""
    config = config or AISConfig()
    config.check("bdmc")
    need_exact("bdmc", exact)
    start = time.perf_counter()
    run = AISRun(Target(problem), config)
    key_pilot, key_prior, key_fwd, key_rev = jax.random.split(jax.random.PRNGKey(seed), 4)
    schedule = run.schedule(key_pilot)
    log_w_fwd, _, acc_fwd = run.run(schedule, run.target.sample_prior(key_prior, config.chains), key_fwd)
    posterior = exact.sample(np.random.default_rng(seed), config.chains)
    log_w_rev, _, acc_rev = run.run(schedule.reversed(), run.target.unconstrain(posterior), key_rev)
    lower, lower_se = log_mean_exp_se(log_w_fwd)
    inverse, upper_se = log_mean_exp_se(log_w_rev)
    upper = -inverse
    transitions = 2 * config.chains * config.temperatures
    return Estimate(
        upper,
        upper_se,
        n_evals=transitions * (config.leapfrog_steps + 1),
        seconds=time.perf_counter() - start,
        extras={
            "lower": lower,
            "lower_se": lower_se,
            "gap": upper - lower,
            # Grosse et al.'s own stochastic bounds: mean log weights, each a bound in expectation.
            "lower_mean_log_weight": float(np.mean(log_w_fwd)),
            "upper_mean_log_weight": float(-np.mean(log_w_rev)),
            "acceptance_forward": float(np.mean(acc_fwd)),
            "acceptance_reverse": float(np.mean(acc_rev)),
            "transitions": transitions,
        },
    )


@dataclass(frozen=True)
class BDMC(AISConfig):
    """Plug-in: the BDMC upper bound on log p(x) (reverse AIS from exact posterior draws)."""

    name: ClassVar[str] = "bdmc"
    quantity: ClassVar[str] = "log_evidence"
    kind: ClassVar[str] = "upper_bound"
    uses_guide: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self.check(self.name)

    def applies(self, problem: Problem, exact: ExactPosterior | None, guide: str | None = None) -> str | None:
        if exact is None:
            return "reverse AIS starts from exact posterior draws, and the model has no oracle"
        return continuous_reason(problem)

    def estimate(
        self, problem: Problem, guide: FittedGuide | None, exact: ExactPosterior | None, seed: int = 0
    ) -> Estimate:
        return bdmc_bounds(problem, exact, self, seed)


ESTIMATORS = (BDMC(),)
