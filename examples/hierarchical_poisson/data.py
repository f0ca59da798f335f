"""Simulated counts for the hierarchical Poisson example: 8 sites (e.g. hospitals), 5 periods each,
with known exposures; ``simulate()`` is what ``ppl-suite check --data data.py:simulate`` calls.

    mu = 0.5, tau = 0.6, theta_j ~ N(mu, tau^2)
    y_i ~ Poisson(exposure_i exp(theta_{site_i}))
"""

import numpy as np

SITES, PERIODS, SEED = 8, 5, 20240601


def simulate() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)
    site = np.repeat(np.arange(SITES), PERIODS)
    exposure = rng.uniform(0.5, 3.0, size=site.size)
    log_rate = 0.5 + 0.6 * rng.normal(size=SITES)
    y = rng.poisson(exposure * np.exp(log_rate[site]))
    return {"sites": SITES, "site": site, "exposure": exposure, "y": y.astype(float)}
