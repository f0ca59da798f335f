"""Laplace approximation of log p(x) on the unconstrained space.

    u* = argmax_u log p(x, u),   H = -grad^2 log p(x, u*)         (log p(x, u) includes log |det dT/du|)
    log p(x) ~= log p(x, u*) + (d / 2) log(2 pi) - (1/2) log det H

Exact when p(x, u) is Gaussian in u (e.g. conjugate Gaussian models with real latents); otherwise a
deterministic approximation with an error of order 1/n. Laplace (1774); Tierney and Kadane (1986),
"Accurate approximations for posterior moments and marginal densities", JASA 81.

The mode is found by BFGS (``scipy.optimize.minimize`` with JAX gradients), from the coordinate-wise
median of prior draws, then polished by Newton steps with the autodiff Hessian, all on the Target's
JAX log joint (``log_joint_u``). The value has no Monte Carlo noise and its error is not a standard
error: reliability "approximation", SE NaN (never "± 0"), and where the exact log p(x) is known
``extras["error"]`` is the approximation's error in nats (the diagnostic says it too).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize

from ppl_suite.estimate import Estimate
from ppl_suite.estimators import need_continuous, need_positive_int
from ppl_suite.estimators.cache import EvaluationCache
from ppl_suite.estimators.streams import stream_seed
from ppl_suite.targets import GuideDensity, Target

NEWTON_STEPS = 5
PRIOR_DRAWS = 256


STREAM = "laplace"


def laplace_log_evidence(target: Target, seed: int = 0, max_iterations: int = 1000) -> Estimate:
    """The Laplace approximation, started from prior draws of the ``laplace`` stream of ``seed``;
    extras: the mode (unconstrained), gradient norm there, log det H, the error where known."""
    need_positive_int("laplace", "max_iterations", max_iterations)
    need_continuous("laplace", target)
    start = time.perf_counter()
    d = target.dim
    value_and_grad = jax.jit(jax.value_and_grad(lambda u: -target.log_joint_u(u)))
    hessian = jax.jit(jax.hessian(lambda u: -target.log_joint_u(u)))

    def fun(u):
        value, grad = value_and_grad(jnp.asarray(u))
        return float(value), np.asarray(grad)

    u0 = np.median(
        np.asarray(target.sample_prior(jax.random.PRNGKey(stream_seed(seed, STREAM)), PRIOR_DRAWS)), axis=0
    )
    result = optimize.minimize(fun, u0, jac=True, method="BFGS", options={"maxiter": max_iterations})
    u = result.x
    for _ in range(NEWTON_STEPS):
        h = np.asarray(hessian(jnp.asarray(u)))
        _, g = fun(u)
        try:
            u = u - np.linalg.solve(h, g)
        except np.linalg.LinAlgError:
            break
    neg_log_joint, grad = fun(u)
    h = np.asarray(hessian(jnp.asarray(u)))
    sign, log_det = np.linalg.slogdet(h)
    if sign <= 0 or not np.all(np.linalg.eigvalsh(h) > 0):
        raise ValueError(
            f"laplace: the Hessian of -log p(x, u) at the optimum is not positive definite "
            f"(eigenvalues {np.linalg.eigvalsh(h)}); no Gaussian approximation there"
        )
    value = float(-neg_log_joint + 0.5 * d * np.log(2 * np.pi) - 0.5 * log_det)
    error = value - target.exact.log_evidence if target.exact is not None else math.nan
    return Estimate(
        value,
        math.nan,
        n_evals=int(result.nfev) + NEWTON_STEPS,
        seconds=time.perf_counter() - start,
        reliability="approximation",
        diagnostic=(
            f"Laplace approximation: error {error:+.3g} nats against the exact log p(x)"
            if target.exact is not None
            else "Laplace approximation: error unknown (no exact log p(x))"
        ),
        extras={
            "error": error,
            "mode": u.tolist(),
            "grad_norm": float(np.linalg.norm(grad)),
            "log_det_hessian": float(log_det),
            "log_joint_at_mode": float(-neg_log_joint),
            "optimizer_message": str(result.message),
        },
    )


@dataclass(frozen=True)
class Laplace:
    """Plug-in: the Laplace approximation of log p(x) (deterministic, not a bound)."""

    max_iterations: int = 1000
    name: ClassVar[str] = "laplace"
    quantity: ClassVar[str] = "log_evidence"
    kind: ClassVar[str] = "approximation"
    uses_guide: ClassVar[bool] = False

    def __post_init__(self) -> None:
        need_positive_int(self.name, "max_iterations", self.max_iterations)

    def applies(self, target: Target, guide: GuideDensity | None) -> str | None:
        reason = target.continuous_reason()
        if reason is None:
            try:  # traced, not run: a density with first derivatives only (a torch bridge) raises
                jax.eval_shape(
                    jax.hessian(target.log_joint_u), jax.ShapeDtypeStruct((target.dim,), "float64")
                )
            except (TypeError, ValueError) as error:  # JAX: no forward mode through the callback
                return f"no Hessian of the log density ({error})"
        return reason

    def estimate(
        self, target: Target, guide: GuideDensity | None, seed: int, cache: EvaluationCache | None = None
    ) -> Estimate:
        return laplace_log_evidence(target, seed, self.max_iterations)


ESTIMATORS = (Laplace(),)
