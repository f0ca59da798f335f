"""The score-function gradient against the exact one, per backend, at fixed weights and one minibatch.

At weights w and the first minibatch (scale N / B), each backend computes the gradient of its loss
(-ELBO) two ways with its own machinery: exactly, by enumerating q (the enumerated objective: Pyro's
and NumPyro's ``TraceEnum_ELBO``, the hand-rolled sum), and ``draws`` times by the score-function
estimator (Pyro's ``Trace_ELBO``, NumPyro's ``TraceGraph_ELBO``, the hand-rolled surrogate), one draw
of z per image each. Over the draws g_1..g_M, against the exact gradient g (per weight array, and
over all of them):

    variance          = sum_i Var_m(g_mi)                    (one draw's total variance)
    relative variance = variance / |g|^2                     (draws needed for a relative SE of 1 is
                                                              about this number)
    z_along           = (mean_m(g_m . u) - g . u) / SE,  u = g / |g|   (the bias along g, in SEs)
    z_rms, z_max      over coordinates of (mean_m g_mi - g_i) / (sd_m(g_mi) / sqrt(M))

An unbiased estimator has z_along ~ N(0, 1) and z_rms near 1 (Williams 1992; Mohamed, Rosca, Figurnov
and Mnih 2020, "Monte Carlo gradient estimation in machine learning", JMLR 21).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from models.vqvae_digits import network
from ppl_suite.vqvae import results as r

NAMES = (*network.DECODER, *network.ENCODER)
CHUNK = 100  # draws per compiled call


def handrolled_gradients(weights, x, batch, temperature: float, draws: int, seed: int):
    """(exact gradient, score-function draws (draws, ...) per weight) of the hand-rolled losses."""
    import jax
    import jax.numpy as jnp

    from ppl_suite.vqvae import losses

    w = {name: jnp.asarray(weights[name]) for name in NAMES}
    x, batch = jnp.asarray(x), jnp.asarray(batch)
    exact = jax.jit(jax.grad(losses.enumerated_loss), static_argnums=3)(w, x, batch, temperature)
    one = jax.grad(losses.score_function_loss)
    chunk = jax.jit(jax.vmap(lambda key: one(w, x, batch, key, temperature, 1)))
    keys = jax.random.split(jax.random.PRNGKey(seed), draws)
    parts = [chunk(keys[i : i + CHUNK]) for i in range(0, draws, CHUNK)]
    return _numpy(exact), {name: np.concatenate([np.asarray(p[name]) for p in parts]) for name in NAMES}


def numpyro_gradients(weights, x, batch, temperature: float, draws: int, seed: int):
    """(exact gradient by ``TraceEnum_ELBO``, draws by ``TraceGraph_ELBO``) of NumPyro's losses."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer import TraceEnum_ELBO, TraceGraph_ELBO

    from models.vqvae_digits import numpyro_impl

    params = {name: jnp.asarray(weights[name]) for name in NAMES}
    x, batch = jnp.asarray(x), jnp.asarray(batch)
    model = numpyro_impl.make_model(weights)

    def loss(elbo, enumerated):
        guide = numpyro_impl.make_guide(weights, temperature, enumerated)
        return lambda p, key: elbo.loss(key, p, model, guide, x, batch)

    exact = jax.grad(loss(TraceEnum_ELBO(max_plate_nesting=1), True))(params, jax.random.PRNGKey(0))
    one = jax.grad(loss(TraceGraph_ELBO(), False))
    chunk = jax.jit(jax.vmap(lambda key: one(params, key)))
    keys = jax.random.split(jax.random.PRNGKey(seed), draws)
    parts = [chunk(keys[i : i + CHUNK]) for i in range(0, draws, CHUNK)]
    return _numpy(exact), {name: np.concatenate([np.asarray(p[name]) for p in parts]) for name in NAMES}


def pyro_gradients(weights, x, batch, temperature: float, draws: int, seed: int):
    """(exact gradient by ``TraceEnum_ELBO``, draws by ``Trace_ELBO``) of Pyro's losses, eager."""
    import pyro
    import torch
    from pyro.infer import Trace_ELBO, TraceEnum_ELBO

    from models.vqvae_digits import pyro_impl

    store = pyro.get_param_store()
    images, indices = torch.tensor(np.asarray(x), dtype=torch.float64), torch.as_tensor(np.asarray(batch))
    model = pyro_impl.make_model(weights)

    def gradient(elbo, guide) -> dict[str, np.ndarray]:
        store.clear()  # the weights are made again from ``weights`` by the first call
        elbo.loss_and_grads(model, guide, images, indices)
        return {name: store[name].grad.detach().numpy().copy() for name in NAMES}

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]), pyro.validation_enabled(False):
            torch.manual_seed(seed)
            exact = gradient(
                TraceEnum_ELBO(max_plate_nesting=1), pyro_impl.make_guide(weights, temperature, True)
            )
            guide = pyro_impl.make_guide(weights, temperature, False)
            score = Trace_ELBO(max_plate_nesting=1)
            samples = [gradient(score, guide) for _ in range(draws)]
    finally:
        store.clear()
        torch.set_num_threads(threads)
    return exact, {name: np.stack([s[name] for s in samples]) for name in NAMES}


GRADIENTS = {"handrolled": handrolled_gradients, "numpyro": numpyro_gradients, "pyro": pyro_gradients}


def _numpy(tree) -> dict[str, np.ndarray]:
    return {name: np.asarray(tree[name], dtype=np.float64) for name in NAMES}


def summary(exact: Mapping[str, np.ndarray], draws: Mapping[str, np.ndarray]) -> list[dict]:
    """One row per weight array and one for all of them (module docstring's statistics)."""
    rows = []
    groups = [(name, (name,)) for name in NAMES] + [(r.ALL, NAMES)]
    for label, names in groups:
        g = np.concatenate([np.ravel(exact[name]) for name in names])
        samples = np.concatenate([np.reshape(draws[name], (len(draws[name]), -1)) for name in names], axis=1)
        m = samples.shape[0]
        mean, var = samples.mean(0), samples.var(0, ddof=1)
        norm2 = float(g @ g)
        varying = var > 0
        z = (mean[varying] - g[varying]) / np.sqrt(var[varying] / m)
        along = samples @ (g / np.sqrt(norm2)) if norm2 > 0 else np.zeros(m)
        z_along = (along.mean() - np.sqrt(norm2)) / (along.std(ddof=1) / np.sqrt(m))
        rows.append(
            {r.WEIGHT: label, r.DRAWS: m, r.COORDINATES: g.size, r.EXACT_SQUARED_NORM: norm2}
            | {r.VARIANCE: float(var.sum()), r.RELATIVE_VARIANCE: float(var.sum() / norm2)}
            | {
                r.Z_ALONG: float(z_along),
                r.Z_RMS: float(np.sqrt(np.mean(z**2))),
                r.Z_MAX: float(np.abs(z).max()),
            }
        )
    return rows


def gradient_rows(
    backend: str, points: Mapping[str, tuple[int, Mapping[str, np.ndarray]]], x, batch, temperature: float,
    draws: int, seed: int,
) -> list[dict]:  # fmt: skip
    """The ``vqvae_gradients`` rows of ``backend`` at each point (name -> (step, weights))."""
    rows = []
    for point, (step, weights) in points.items():
        weights = {name: np.asarray(value, dtype=np.float64) for name, value in weights.items()}
        exact, samples = GRADIENTS[backend](weights, x, batch, temperature, draws, seed)
        base = {r.BACKEND: backend, r.POINT: point, r.STEP: step}
        rows += [base | row for row in summary(exact, samples)]
    return rows
