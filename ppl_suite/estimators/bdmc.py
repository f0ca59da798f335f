"""Bidirectional Monte Carlo (BDMC): AIS forwards from the prior and backwards from exact posterior
draws, which sandwich log p(x).

    forward:  u_0 ~ p(u), beta 0 -> 1,  E[w_f] = p(x)      =>  E[log mean w_f] <= log p(x)
    reverse:  u_T ~ p(u | x) exactly, the same kernels in reverse order, beta 1 -> 0,
              log w_r = sum_t (beta_{t-1} - beta_t) log p(x | u_t),  E[w_r] = 1 / p(x)
              =>  log p(x)_upper = -log mean w_r,  E[log p(x)_upper] >= log p(x)

Grosse, Ghahramani and Adams (2015), "Sandwiching the marginal likelihood using bidirectional Monte
Carlo", arXiv:1511.02543. The exact posterior draws come from the model's oracle (in practice BDMC
is run on data simulated from the model, where the simulating latents are such a draw).

Both passes share one schedule tuned by its own pilot (``ppl_suite.estimators.ais``: adaptive
tempering, temperature count checked against the target chain ESS, then frozen), all on the "bdmc"
random stream: the forward pass is a run independent of the ``ais`` estimator's. The value is the
upper bound with the delta-method SE over reverse chains, sd(w_r) / (sqrt(C) mean(w_r)); extras hold
the forward (lower) bound, both passes' chain ESS, the gap and its SE.

Reliability: unreliable when either pass's chain ESS is below the threshold of ``ais``, or when the
sandwich is inverted, upper < lower, by more than INVERSION_SE combined standard errors
sqrt(SE_lower^2 + SE_upper^2). With valid SEs, upper - lower has mean >= 0 (the true gap, plus the
bounds' Jensen biases, which widen it) and sd the combined SE, so an inversion beyond 3 of them has
probability <= 0.13 % (one-sided normal): it says the SEs cannot be trusted.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import ClassVar

import jax
import numpy as np

from ppl_suite.estimate import Estimate
from ppl_suite.estimators import need_continuous, need_exact
from ppl_suite.estimators.ais import AISConfig, Annealer, stream_key, transitions_of
from ppl_suite.estimators.cache import EvaluationCache
from ppl_suite.estimators.streams import stream_seed
from ppl_suite.spec import ExactPosterior
from ppl_suite.targets import GuideDensity, Target

STREAM = "bdmc"
INVERSION_SE = 3.0  # an inversion beyond this many combined SEs makes the sandwich unreliable


def sandwich(annealer: Annealer, exact: ExactPosterior, seed: int) -> Estimate:
    """Upper bound by reverse AIS (value, SE); extras: ``lower``/``lower_se`` by forward AIS, ``gap``,
    ``gap_se``, each pass's chain ESS; labelled unreliable as the module docstring says."""
    start = time.perf_counter()
    config = annealer.config
    key_tune, key_prior, key_forward, key_reverse = jax.random.split(stream_key(seed, STREAM), 4)
    rng = np.random.default_rng(stream_seed(seed, f"{STREAM}.posterior"))

    def posterior(n: int) -> np.ndarray:
        return annealer.target.unconstrain(exact.sample(rng, n))

    tuning = annealer.tune(key_tune, posterior)
    forward = annealer.run(
        tuning.schedule, annealer.target.sample_prior(key_prior, config.chains), key_forward
    )
    reverse = annealer.run(tuning.schedule.reversed(), posterior(config.chains), key_reverse)
    lower, lower_se = forward.log_mean_exp_se()
    inverse, upper_se = reverse.log_mean_exp_se()
    upper = -inverse
    gap, gap_se = upper - lower, math.hypot(lower_se, upper_se)
    reasons = [
        f"{name} {r}"
        for name, r in (("reverse", reverse.unreliable_reason()), ("forward", forward.unreliable_reason()))
        if r
    ]
    if gap < -INVERSION_SE * gap_se:
        reasons.append(f"sandwich inverted by {-gap:.3g} nats ({-gap / gap_se:.1f} SE)")
    diagnostic = tuning.explain("; ".join(reasons), config.temperatures)
    transitions = transitions_of(tuning, 2, config.chains)
    return Estimate(
        upper,
        upper_se,
        n_evals=transitions * (config.leapfrog_steps + 1),
        seconds=time.perf_counter() - start,
        extras={
            "lower": lower,
            "lower_se": lower_se,
            "gap": gap,
            "gap_se": gap_se,
            "transitions": transitions,
            **tuning.extras(),
            **forward.extras("lower_"),
            **reverse.extras(),
        },
        reliability="unreliable" if diagnostic else "reliable",
        diagnostic=diagnostic,
    )


def bdmc_bounds(
    target: Target, exact: ExactPosterior, config: AISConfig | None = None, seed: int = 0
) -> Estimate:
    """BDMC on ``target`` with exact posterior draws from ``exact`` (module docstring)."""
    config = config or AISConfig()
    config.check("bdmc")
    need_exact("bdmc", exact)
    need_continuous("bdmc", target)
    return sandwich(Annealer(target, config), exact, seed)


@dataclass(frozen=True)
class BDMC(AISConfig):
    """Plug-in: the BDMC upper bound on log p(x) (reverse AIS from exact posterior draws)."""

    name: ClassVar[str] = "bdmc"
    quantity: ClassVar[str] = "log_evidence"
    kind: ClassVar[str] = "upper_bound"
    uses_guide: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self.check(self.name)

    def applies(self, target: Target, guide: GuideDensity | None) -> str | None:
        if target.exact is None:
            return "reverse AIS starts from exact posterior draws, and the model has no oracle"
        return target.continuous_reason()

    def estimate(
        self, target: Target, guide: GuideDensity | None, seed: int, cache: EvaluationCache | None = None
    ) -> Estimate:
        return bdmc_bounds(target, target.exact, self, seed)


ESTIMATORS = (BDMC(),)
