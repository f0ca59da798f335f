"""ppl-suite: what SVI optimizes, checked across Pyro, NumPyro and hand-rolled estimators.

log p(x) = ELBO(q) + KL(q(z) || p(z | x))
"""

__version__ = "0.1.0"
