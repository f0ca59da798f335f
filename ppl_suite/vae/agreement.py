"""Do the backends agree? Pairwise differences of their estimates, in units of the difference's SE.

    z_ab = (v_a - v_b) / sqrt(SE_a^2 + SE_b^2)      (independent estimates: own training, own draws)

The SEs are the evaluation's Monte Carlo errors (AIS, encoder and q* draws) for the same test images;
they do not contain the training's own randomness. The backends train from the same initial weights on
the same minibatch order, but each draws the reparametrization noise eps from its own random stream
(``ppl_suite.vae.training``), so their trained weights agree in distribution, not draw for draw: a
|z| beyond FLAG (4: two-sided normal probability 6e-5) says the two trained models differ, which
stochastic optimization alone can produce (besides summation order and the libraries' scaling of
subsampled plates), not that an evaluation is wrong.

Telling the backends apart as training procedures takes several training runs per backend (the same
weights and minibatches, different noise seeds; ``runs``): Welch's t-test of their run means,

    t = (mean_a - mean_b) / sqrt(sd_a^2 / R_a + sd_b^2 / R_b),  df by Welch-Satterthwaite,

(Welch 1947, "The generalization of 'Student's' problem when several different population variances
are involved", Biometrika 34), its p-value from Student's t (``scipy.stats.ttest_ind``, not the normal:
with a few runs the sd is itself uncertain), flagged at the p-value of |z| > FLAG. With few runs the
test is weak (5 runs a side: |t| beyond about 7 flags), so each row also holds the smallest difference
it flags, t_crit(df) x SE: "not flagged" means "no difference that large", not "the same". A pair
without spread (no finite t) is not tested: its p is NaN and it is not flagged.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats

from ppl_suite.vae import results as r

FLAG = 4.0
FLAG_P = float(2 * stats.norm.sf(FLAG))  # the two-sided p-value of |z| > FLAG


def pairwise(values: pd.DataFrame, quantities: tuple[str, ...] = r.AGREEMENT_QUANTITIES) -> pd.DataFrame:
    """The ``agreement`` table: one row per (quantity, pair of backends) of ``values`` (a ``backends``
    table's rows): difference, its SE, z and flagged (|z| > FLAG)."""
    rows = []
    indexed = values.set_index(r.BACKEND)
    for quantity in quantities:
        for a, b in itertools.combinations(indexed.index, 2):
            difference = indexed.at[a, quantity] - indexed.at[b, quantity]
            se = float(np.hypot(indexed.at[a, r.se(quantity)], indexed.at[b, r.se(quantity)]))
            z = float(difference / se) if se > 0 else np.nan
            rows.append(
                {
                    r.QUANTITY: quantity,
                    r.BACKEND_A: a,
                    r.BACKEND_B: b,
                    r.DIFFERENCE: float(difference),
                    "se": se,
                    r.Z: z,
                    r.FLAGGED: bool(abs(z) > FLAG),
                }
            )
    return r.frame("agreement", rows)


def between_procedures(runs: pd.DataFrame, quantities: tuple[str, ...] = r.RUN_QUANTITIES) -> pd.DataFrame:
    """The ``procedures`` table: one row per (quantity, pair of backends with two or more ok runs each)
    of ``runs`` (a ``runs`` table): run means and sds, their difference, Welch's t, df, p, flagged,
    and the smallest difference flagged."""
    rows = []
    runs = runs[runs[r.STATUS] == r.OK]
    counts = runs.groupby(r.BACKEND, sort=False).size()
    compared = [backend for backend, count in counts.items() if count >= 2]
    for quantity in quantities:
        for a, b in itertools.combinations(compared, 2):
            va, vb = (runs.loc[runs[r.BACKEND] == k, quantity].to_numpy(float) for k in (a, b))
            se = float(np.sqrt(va.var(ddof=1) / va.size + vb.var(ddof=1) / vb.size))
            test = stats.ttest_ind(va, vb, equal_var=False)
            critical = stats.t.isf(FLAG_P / 2, test.df) if np.isfinite(test.df) else np.nan
            rows.append(
                {
                    r.QUANTITY: quantity,
                    r.BACKEND_A: a,
                    r.BACKEND_B: b,
                    r.RUNS_A: va.size,
                    r.RUNS_B: vb.size,
                    r.MEAN_A: float(va.mean()),
                    r.SD_A: float(va.std(ddof=1)),
                    r.MEAN_B: float(vb.mean()),
                    r.SD_B: float(vb.std(ddof=1)),
                    r.DIFFERENCE: float(va.mean() - vb.mean()),
                    "se": se,
                    r.T: float(test.statistic),
                    r.DF: float(test.df),
                    r.P: float(test.pvalue),
                    r.FLAGGED: bool(test.pvalue < FLAG_P),  # False for a NaN p
                    r.DETECTABLE: float(critical * se),
                }
            )
    return r.frame("procedures", rows)
