"""Hand-rolled backend: reparameterized Monte Carlo ELBO and Adam written out in JAX.

The model density is the NumPyro implementation's log joint; everything else is ours:

    ELBO(phi, theta) ~= (1/P) sum_p [log p_theta(x, z_p) - log q_phi(z_p)],  z_p = T_phi(eps_p)

differentiated through the samples (pathwise gradient, the same estimator as Trace_ELBO), and

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
    w <- w - lr_t * (m / (1 - b1^(t+1))) / (sqrt(v / (1 - b2^(t+1))) + eps)

(Kingma and Ba, 2015), with the step-size schedule lr_t of SVIConfig as in the other backends, run in
one ``lax.scan``.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.util import log_density

from ppl_suite import guides, registry
from ppl_suite.backends import support
from ppl_suite.backends.base import ADAM_BETAS, ADAM_EPS, Fit, SVIConfig
from ppl_suite.backends.jax_loop import checkpoint_steps, scan_with_checkpoints
from ppl_suite.backends.jax_program_cache import traced_from
from ppl_suite.backends.numpyro import as_jax
from ppl_suite.backends.programs import compiled, data_arguments, program_key
from ppl_suite.guides.joint import draw_with_log_q
from ppl_suite.numerics import enable_float64
from ppl_suite.problem import Problem
from ppl_suite.spec import ModelSpec, Site


def elbo_terms(problem: Problem, guide: str, params, static):
    """A function (weights, data, key, n) -> n single-sample ELBO terms log p(x, z) - log q(z), z ~ q;
    ``data`` holds the data arrays, ``static`` any other data values."""
    model = registry.implementation(problem.spec.name, "numpyro")
    family, sites, ops = guides.get(guide), problem.sites, guides.jax_ops()

    def terms(weights, arrays, key, n):
        phi, theta = weights
        data = {**static, **arrays}
        z, log_q = draw_with_log_q(family.distributions(phi, sites, data, ops), key, n)
        log_p = jax.vmap(lambda zz: log_density(model, (data, {**params, **theta}), {}, zz)[0])(z)
        return log_p - log_q

    return terms


def adam_step(config: SVIConfig):
    b1, b2 = ADAM_BETAS

    def step(weights, grads, m, v, t):
        m = jax.tree.map(lambda m_, g: b1 * m_ + (1 - b1) * g, m, grads)
        v = jax.tree.map(lambda v_, g: b2 * v_ + (1 - b2) * g**2, v, grads)
        lr = config.learning_rate(t, jnp)
        c1, c2 = 1 - b1 ** (t + 1), 1 - b2 ** (t + 1)
        weights = jax.tree.map(
            lambda w, m_, v_: w - lr * (m_ / c1) / (jnp.sqrt(v_ / c2) + ADAM_EPS), weights, m, v
        )
        return weights, m, v

    return step


class HandRolledBackend:
    name = "handrolled"

    def unsupported(self, spec: ModelSpec, sites: tuple[Site, ...], guide: str) -> str | None:
        return support.handrolled(spec, sites, guide)

    def fit(self, problem: Problem, guide: str, config: SVIConfig, seed: int) -> Fit:
        enable_float64()
        phi0 = guides.get(guide).init_params(problem.sites, problem.data, problem.params)
        theta0 = {name: np.asarray(problem.params[name], dtype=float) for name in problem.spec.learned}
        (arrays, static), params = data_arguments(problem), as_jax(problem.params)
        step = adam_step(config)

        def build():
            terms = elbo_terms(problem, guide, params, static)

            def train(carry, arrays):
                def loss(weights, key):
                    return -jnp.mean(terms(weights, arrays, key, config.particles))

                def body(carry, t):
                    weights, m, v, key = carry
                    key, sub = jax.random.split(key)
                    value, grads = jax.value_and_grad(loss)(weights, sub)
                    weights, m, v = step(weights, grads, m, v, t)
                    return (weights, m, v, key), value

                return scan_with_checkpoints(body, lambda carry: carry[0], config.steps)(carry)

            return train

        weights = jax.tree.map(jnp.asarray, (phi0, theta0))
        zeros = jax.tree.map(jnp.zeros_like, weights)
        carry = (weights, zeros, zeros, jax.random.PRNGKey(seed))
        key = program_key(problem, "handrolled.fit", guide, config)
        source = traced_from(problem, guide)
        train, compile_seconds = compiled(key, build, carry, arrays, source=source)
        start = time.perf_counter()
        ((phi, theta), *_), losses, (phi_snaps, theta_snaps) = jax.block_until_ready(train(carry, arrays))
        run_seconds = time.perf_counter() - start
        return Fit(
            backend=self.name,
            guide=guide,
            phi={k: np.asarray(v) for k, v in phi.items()},
            theta={k: np.asarray(v) for k, v in theta.items()},
            losses=np.asarray(losses),
            compile_seconds=compile_seconds,
            run_seconds=run_seconds,
            timed_steps=config.steps,
            trajectory={
                "step": checkpoint_steps(config.steps),
                "phi": {k: np.asarray(v) for k, v in phi_snaps.items()},
                "theta": {k: np.asarray(v) for k, v in theta_snaps.items()},
            },
        )
