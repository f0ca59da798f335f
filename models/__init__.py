"""Model definitions of ppl-suite: one folder per model (spec, Pyro and NumPyro implementations).

import models
models.names()                # ['normal_normal', ...]
spec = models.get("normal_normal")
data = spec.data(seed=0, params=spec.params())
"""

from ppl_suite.registry import get, names, register

__all__ = ["get", "names", "register"]
