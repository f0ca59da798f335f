"""NumPyro's ``Trace_ELBO`` with its sites summed in trace order, so its compiled program is the same in
every process.

    ELBO = E_q[log p(x, z) - log q(z)],  one particle: log p(x, z) - log q(z), z ~ q (reparameterized)

(Wingate & Weber 2013, Ranganath et al. 2014.) NumPyro's ``Trace_ELBO.loss_with_mutable_state``
forms ``log p - log q`` per site over a ``set`` of the site names, in Python's string-hash order:
the order of the operations in the traced program, hence its text and the persistent compilation
cache's key, changes with ``PYTHONHASHSEED`` from one process to the next, and a new process never
finds its SVI loop or ELBO evaluation in the cache. Here each trace's log density is summed in its
own order (``numpyro.infer.util.log_density``, as NumPyro's Trace_ELBO did before per-site terms):
the same estimator, the same keys split the same way (model key, guide key), the same draws; the
values agree with NumPyro's to float64 rounding (only the order of a sum differs).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from numpyro.handlers import replay, seed
from numpyro.infer import Trace_ELBO
from numpyro.infer.util import log_density


class TraceOrderELBO(Trace_ELBO):
    """``Trace_ELBO`` (reparameterized guides, no mutable state, one sample per guide call) whose
    per-particle value is log p(x, z) - log q(z), each summed over its trace in trace order."""

    def __init__(self, num_particles: int = 1, vectorize_particles: bool = True):
        super().__init__(num_particles=num_particles, vectorize_particles=vectorize_particles)

    def loss_with_mutable_state(
        self, rng_key: jax.Array, param_map: dict[str, jax.Array], model, guide, *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        def particle(key: jax.Array) -> jax.Array:
            model_key, guide_key = jax.random.split(key)
            log_q, guide_trace = log_density(seed(guide, guide_key), args, kwargs, param_map)
            log_p, _ = log_density(replay(seed(model, model_key), guide_trace), args, kwargs, param_map)
            return log_p - log_q

        if self.num_particles == 1:
            return {"loss": -particle(rng_key), "mutable_state": None}
        elbos = self.vectorize_particles_fn(particle, jax.random.split(rng_key, self.num_particles))
        return {"loss": -jnp.mean(elbos), "mutable_state": None}
