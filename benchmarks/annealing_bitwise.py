"""Bit patterns of AIS, BDMC and the VAE's per-image AIS and BDMC on small settings, one line each, so
that two versions of the annealing code can be compared bitwise:

    PYTHONPATH=OLD python benchmarks/annealing_bitwise.py > old.txt
    PYTHONPATH=NEW python benchmarks/annealing_bitwise.py > new.txt && diff old.txt new.txt

Each line: what ran, then the SHA-1 of the float64 bytes of every number it returned (value, SE,
log weights), and the value itself for a reader.
"""

from __future__ import annotations

import hashlib

import jax
import jax.numpy as jnp
import numpy as np

from ppl_suite.numerics import enable_float64

enable_float64()

from ppl_suite.estimators.ais import AISConfig, Annealer, forward_ais  # noqa: E402
from ppl_suite.estimators.bdmc import sandwich  # noqa: E402
from ppl_suite.problem import Problem  # noqa: E402
from ppl_suite.targets.build import target_for  # noqa: E402
from ppl_suite.vae import image_bdmc  # noqa: E402
from ppl_suite.vae.image_ais import ImageAnnealer, ais_per_image  # noqa: E402
from ppl_suite.vae.latent import LatentModel  # noqa: E402

CONFIG = AISConfig(temperatures=300, chains=16, leapfrog_steps=3)
PIXELS, HIDDEN = 8, 3


def digest(*arrays: object) -> str:
    hashed = hashlib.sha1()
    for array in arrays:
        hashed.update(np.ascontiguousarray(np.asarray(array, dtype=np.float64)).tobytes())
    return hashed.hexdigest()[:16]


def line(what: str, value: float, *arrays: object) -> None:
    print(f"{what:40s} {digest(*arrays)}  {value!r}")


def suite_estimators() -> None:
    for model in ("normal_normal", "gamma_poisson"):
        problem = Problem.build(model, 0)
        annealer = Annealer(target_for(problem), CONFIG)
        for seed in (0, 1, 2):
            estimate = forward_ais(annealer, seed)
            line(f"ais {model} seed {seed}", estimate.value, estimate.value, estimate.se, estimate.n_evals)
        estimate = sandwich(annealer, problem.exact(), 3)
        extras = estimate.extras
        line(
            f"bdmc {model} seed 3",
            estimate.value,
            estimate.value,
            estimate.se,
            extras["lower"],
            extras["lower_se"],
        )


def logits(theta, z):
    return jnp.tanh(z @ theta["w1"] + theta["b1"]) @ theta["w2"] + theta["b2"]


def log_likelihood(theta, z, x):
    value = logits(theta, z)
    return jnp.sum(x * value - jnp.logaddexp(0.0, value), axis=-1)


def simulate(theta, key, z):
    return (jax.random.uniform(key, (*z.shape[:-1], PIXELS)) < jax.nn.sigmoid(logits(theta, z))).astype(float)


def per_image() -> None:
    rng = np.random.default_rng(0)
    theta = {
        "w1": jnp.asarray(3.0 * rng.normal(size=(1, HIDDEN))),
        "b1": jnp.asarray(rng.normal(size=HIDDEN)),
        "w2": jnp.asarray(3.0 * rng.normal(size=(HIDDEN, PIXELS))),
        "b2": jnp.asarray(rng.normal(size=PIXELS)),
    }
    annealer = ImageAnnealer(LatentModel(1, log_likelihood, simulate), CONFIG.leapfrog_steps)
    z, x = image_bdmc.simulate(annealer, theta, 6, jax.random.PRNGKey(7))
    for seed in (0, 1):
        evidence = ais_per_image(annealer, theta, x, CONFIG, jax.random.PRNGKey(seed), pilot_images=1)
        e = evidence.estimates
        line(f"vae ais per image seed {seed}", float(e.value.mean()), e.value, e.se, evidence.temperatures)
    result = image_bdmc.sandwich(
        annealer, theta, x, z, evidence.schedule, CONFIG.chains, jax.random.PRNGKey(5)
    )
    line(
        "vae bdmc per image",
        float(result.upper.value.mean()),
        result.lower.value,
        result.upper.value,
        result.upper.se,
    )


if __name__ == "__main__":
    suite_estimators()
    per_image()
