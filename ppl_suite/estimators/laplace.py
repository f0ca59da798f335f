"""Laplace approximation of log p(x) on the unconstrained space.

    u* = argmax_u log p(x, u),   H = -grad^2 log p(x, u*)         (log p(x, u) includes log |det dT/du|)
    log p(x) ~= log p(x, u*) + (d / 2) log(2 pi) - (1/2) log det H

Exact when p(x, u) is Gaussian in u (e.g. conjugate Gaussian models with real latents); otherwise a
deterministic approximation with an error of order 1/n. Laplace (1774); Tierney and Kadane (1986),
"Accurate approximations for posterior moments and marginal densities", JASA 81.

The mode is found by BFGS (``scipy.optimize.minimize`` with JAX gradients), from the coordinate-wise
median of prior draws, then polished by Newton steps with the autodiff Hessian. The value has no
Monte Carlo noise: SE is reported as 0 and ``extras["deterministic_approximation"]`` is True, so the
SE must not be read as "exact".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize

from ppl_suite.estimate import Estimate
from ppl_suite.estimators import need_positive_int
from ppl_suite.estimators.target import Target, continuous_reason
from ppl_suite.fitted_guide import FittedGuide
from ppl_suite.problem import Problem
from ppl_suite.spec import ExactPosterior

NEWTON_STEPS = 5
PRIOR_DRAWS = 256


def laplace_log_evidence(problem: Problem, seed: int = 0, max_iterations: int = 1000) -> Estimate:
    """The Laplace approximation; extras: the mode (unconstrained), gradient norm there, log det H."""
    need_positive_int("laplace", "max_iterations", max_iterations)
    start = time.perf_counter()
    target = Target(problem)
    d = target.dim
    value_and_grad = jax.jit(jax.value_and_grad(lambda u: -target.log_joint(u)))
    hessian = jax.jit(jax.hessian(lambda u: -target.log_joint(u)))

    def fun(u):
        value, grad = value_and_grad(jnp.asarray(u))
        return float(value), np.asarray(grad)

    u0 = np.median(np.asarray(target.sample_prior(jax.random.PRNGKey(seed), PRIOR_DRAWS)), axis=0)
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
    value = -neg_log_joint + 0.5 * d * np.log(2 * np.pi) - 0.5 * log_det
    return Estimate(
        float(value),
        0.0,
        n_evals=int(result.nfev) + NEWTON_STEPS,
        seconds=time.perf_counter() - start,
        extras={
            "deterministic_approximation": True,
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

    def applies(self, problem: Problem, exact: ExactPosterior | None, guide: str | None = None) -> str | None:
        return continuous_reason(problem)

    def estimate(
        self, problem: Problem, guide: FittedGuide | None, exact: ExactPosterior | None, seed: int = 0
    ) -> Estimate:
        return laplace_log_evidence(problem, seed, self.max_iterations)


ESTIMATORS = (Laplace(),)
