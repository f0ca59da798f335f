"""The coordinate table of a reference: per latent coordinate mean, sd, MCSE of the mean and of the sd,
R-hat, bulk and tail ESS, by ArviZ (``az.summary``: rank-normalized split R-hat, bulk and tail ESS and
the MCSEs of Vehtari et al. 2021, Bayesian Analysis 16)."""

from __future__ import annotations

import arviz as az

STATISTICS = ("mean", "sd", "mcse_mean", "mcse_sd", "r_hat", "ess_bulk", "ess_tail")


def coordinate_table(idata: az.InferenceData) -> dict[str, dict[str, float]]:
    """{coordinate name ("mu", "theta[0]", "W[0, 1]"): {statistic: value}} over every posterior
    variable, statistics as in STATISTICS."""
    table = az.summary(idata, kind="all", round_to="none")
    return {str(name): {stat: float(row[stat]) for stat in STATISTICS} for name, row in table.iterrows()}
