"""The ELBO's gain during training split into the gain of log p_theta(x) and the fall of the KL.

At checkpoints s_0 < s_1 < ... of training, on a fixed set of test images (averages over them):

    ELBO_k = log p_k - KL_k                                 (KL_k = KL(q_k(z|x) || p_k(z|x)))
    ELBO_{k+1} - ELBO_k = (log p_{k+1} - log p_k) + (-(KL_{k+1} - KL_k))
                          Delta log p                 -Delta KL

so maximizing the ELBO over (theta, phi) raises it through both terms, and the split says by how much
each interval owes to each. The estimates at different checkpoints are independent (own AIS runs, own
draws), so SE(Delta log p)^2 = SE(log p_k)^2 + SE(log p_{k+1})^2, likewise for the ELBO, and
SE(-Delta KL)^2 = the sum of all four squares (KL_k = log p_k - ELBO_k from independent estimates).
The two parts add up to the ELBO's change exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TrainingSplit:
    """Per interval (K - 1,): the steps it spans, the ELBO's gain, Delta log p and -Delta KL with SEs."""

    step_from: np.ndarray
    step_to: np.ndarray
    elbo_gain: np.ndarray
    elbo_gain_se: np.ndarray
    log_p_gain: np.ndarray
    log_p_gain_se: np.ndarray
    kl_fall: np.ndarray
    kl_fall_se: np.ndarray


def split(
    steps: np.ndarray, log_p: np.ndarray, log_p_se: np.ndarray, elbo: np.ndarray, elbo_se: np.ndarray
) -> TrainingSplit:
    """The split of the module docstring, from per-checkpoint averages (K,) in the order of ``steps``."""
    steps, log_p, log_p_se, elbo, elbo_se = map(np.asarray, (steps, log_p, log_p_se, elbo, elbo_se))
    if np.any(np.diff(steps) <= 0):
        raise ValueError(f"checkpoint steps must increase, got {steps.tolist()}")
    elbo_gain, log_p_gain = np.diff(elbo), np.diff(log_p)
    log_p_gain_se = np.hypot(log_p_se[1:], log_p_se[:-1])
    elbo_gain_se = np.hypot(elbo_se[1:], elbo_se[:-1])
    return TrainingSplit(
        step_from=steps[:-1],
        step_to=steps[1:],
        elbo_gain=elbo_gain,
        elbo_gain_se=elbo_gain_se,
        log_p_gain=log_p_gain,
        log_p_gain_se=log_p_gain_se,
        kl_fall=elbo_gain - log_p_gain,
        kl_fall_se=np.hypot(log_p_gain_se, elbo_gain_se),
    )
