"""Do the backends agree? Pairwise differences of their estimates, in units of the difference's SE.

    z_ab = (v_a - v_b) / sqrt(SE_a^2 + SE_b^2)      (independent estimates: own training, own draws)

The SEs are the evaluation's Monte Carlo errors (AIS, encoder and q* draws) for the same test images;
they do not contain the training's own randomness. The backends train from the same initial weights on
the same minibatch order, but each draws the reparametrization noise eps from its own random stream
(``ppl_suite.vae.training``), so their trained weights agree in distribution, not draw for draw: a
|z| beyond FLAG (4: two-sided normal probability 6e-5) says the two trained models differ, which
stochastic optimization alone can produce (besides summation order and the libraries' scaling of
subsampled plates), not that an evaluation is wrong. Telling the backends apart as training
procedures needs several training seeds per backend.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from ppl_suite.vae import results as r

FLAG = 4.0


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
