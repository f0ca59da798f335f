"""Stable reductions of log importance weights shared by the importance-sampling estimators.

For weights w_i = exp(l_i), i = 1..n, the estimate of log E[w] is log((1/n) sum_i w_i), computed
max-shifted (``ppl_suite.numerics.log_mean_exp``). Its standard error by the delta method,

    SE[log w_bar] ~= SE[w_bar] / w_bar = sd(w) / (sqrt(n) w_bar),

is scale-free, so it is computed on the shifted weights w_i / max_j w_j, which lie in (0, 1].
It is only meaningful when w has finite variance (see the PSIS k-hat diagnostic). The log of the
mean is biased low: by the delta method to second order,

    E[log w_bar] ~= log E[w] - Var(w) / (2 n E[w]^2) = log E[w] - SE^2 / 2,

so log w_bar + SE^2 / 2 corrects the first-order bias (``first_order_bias``). Both the SE and the
correction need Var(w) finite, which the generalized Pareto tail of w with shape k has iff k < 1/2.
"""

from __future__ import annotations

import math

import numpy as np

from ppl_suite.estimators.pareto_smoothing import pareto_smooth, tail_length
from ppl_suite.numerics import log_mean_exp


def check_log_weights(log_w: np.ndarray, what: str = "log weights") -> np.ndarray:
    """A 1-D float array of at least 2 entries, none NaN or +inf; anything else is a clear error."""
    log_w = np.asarray(log_w, dtype=float)
    if log_w.ndim != 1 or log_w.size < 2:
        raise ValueError(f"{what} must be a 1-D array of at least 2 entries, got shape {log_w.shape}")
    bad = int(np.sum(np.isnan(log_w) | (log_w == np.inf)))
    if bad:
        raise ValueError(f"{what}: {bad} of {log_w.size} entries are NaN or +inf (valid: finite or -inf)")
    return log_w


def log_mean_exp_se(log_w: np.ndarray) -> tuple[float, float]:
    """(log mean exp(l), its delta-method standard error) for n >= 2 log weights l."""
    log_w = check_log_weights(log_w)
    top = log_w.max()
    if top == -np.inf:
        return -np.inf, np.nan
    w = np.exp(log_w - top)
    return float(log_mean_exp(log_w)), float(w.std(ddof=1) / (np.sqrt(w.size) * w.mean()))


def effective_sample_size(log_w: np.ndarray) -> float:
    """Kish's ESS = (sum w)^2 / sum w^2, between 1 and n."""
    log_w = check_log_weights(log_w)
    w = np.exp(log_w - log_w.max())
    return float(w.sum() ** 2 / np.sum(w**2))


def khat_threshold(samples: int) -> float:
    """The largest k-hat at which an importance-sampling estimate from S draws is reliable:
    min(1 - 1 / log10 S, 0.7) (Vehtari et al. 2024, "Pareto smoothed importance sampling", JMLR 25,
    section 3.2.4: beyond it the pre-asymptotic error decreases too slowly for S draws to help)."""
    if samples < 2:
        raise ValueError(f"a k-hat threshold needs at least 2 draws, got {samples}")
    return float(min(1.0 - 1.0 / np.log10(samples), 0.7))


def pareto_smoothed(log_w: np.ndarray) -> tuple[np.ndarray, float]:
    """(Pareto-smoothed unnormalized log weights, k-hat) with reff = 1 (independent draws): the
    generalized Pareto fit of Zhang and Stephens (2009), weakly regularized towards 0.5, to the
    M = ceil(min(S / 5, 3 sqrt(S))) largest weights (``pareto_smoothing``, equal to ``arviz.psislw``)."""
    return pareto_smooth(check_log_weights(log_w))


FINITE_VARIANCE_KHAT = 0.5  # a generalized Pareto tail of shape k has a finite variance iff k < 1/2
KHAT_MARGIN_SD = 2.0  # the k-hat of a reliable plain mean lies this many of its sds below 1/2


def first_order_bias(se: float) -> float:
    """-SE^2 / 2: the first-order (delta-method) bias of log w_bar as an estimate of log E[w], with SE
    its delta-method standard error (module docstring)."""
    return -0.5 * se**2


def finite_variance_khat(samples: int) -> float:
    """The largest k-hat at which a plain mean of S weights is reliable: the k with k + 2 sd(k) = 1/2,
    sd(k) = (1 + k) / sqrt(M) the asymptotic sd of the generalized Pareto shape fitted to
    M = ``tail_length(S)`` exceedances (maximum likelihood, Hosking and Wallis 1987, Technometrics 29;
    Zhang and Stephens' fit is as efficient): k = (sqrt(M) / 2 - 2) / (sqrt(M) + 2), 0.41 at
    S = 10^5, 0.37 at 2 10^4."""
    if samples < 2:
        raise ValueError(f"a k-hat threshold needs at least 2 draws, got {samples}")
    root = math.sqrt(tail_length(samples))
    return (FINITE_VARIANCE_KHAT * root - KHAT_MARGIN_SD) / (root + KHAT_MARGIN_SD)


def finite_variance_reliability(k_hat: float, samples: int) -> tuple[str, str]:
    """("reliable", "") when k-hat < ``finite_variance_khat(S)``, else ("unreliable", the diagnostic):
    the rule for a plain mean of importance weights, whose delta-method SE assumes a finite weight
    variance, which a tail of Pareto shape k has only for k < 1/2 (Vehtari et al. 2024, "Pareto
    smoothed importance sampling", JMLR 25, section 3). The margin of two sds of k-hat asks the
    diagnostic to show k < 1/2, not only to fail to refute it: at k-hat near 1/2 the delta-method z
    is biased low (in calibration, z mean -0.47 over 80 replicates of a guide whose tail shape is
    0.51, normal_normal at S = 10^4). ``k_hat`` must come from draws independent of the weights
    whose mean it labels (``importance.label_khat``)."""
    limit = finite_variance_khat(samples)
    if k_hat < limit:  # False for NaN: no fit, no trust
        return "reliable", ""
    return "unreliable", (
        f"k-hat {k_hat:.2f} >= {limit:.2f}, 1/2 less 2 of its sds (S = {samples}): the weights' variance "
        "may be infinite, no SE"
    )


def khat_reliability(k_hat: float, samples: int) -> tuple[str, str]:
    """("reliable", "") when k-hat <= khat_threshold(samples), else ("unreliable", the diagnostic): the
    rule for Pareto-smoothed estimates (PSIS), not for a plain mean of weights
    (``finite_variance_reliability``)."""
    threshold = khat_threshold(samples)
    if k_hat <= threshold:  # False for NaN: no fit, no trust
        return "reliable", ""
    return "unreliable", f"k-hat {k_hat:.2f} > threshold {threshold:.2f} (S = {samples})"
