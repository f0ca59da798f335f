"""NumPyro backend: SVI with ``Trace_ELBO`` (its sites summed in trace order: ``numpyro_elbo``), the whole
optimization compiled once with ``lax.scan``."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.infer import SVI, TraceEnum_ELBO, autoguide, init_to_feasible

from ppl_suite import guides, registry
from ppl_suite.backends.base import ADAM_BETAS, ADAM_EPS, Fit, SVIConfig, unsupported_reason
from ppl_suite.backends.jax_loop import checkpoint_steps, scan_with_checkpoints
from ppl_suite.backends.jax_program_cache import fixed_value, traced_from
from ppl_suite.backends.numpyro_elbo import TraceOrderELBO
from ppl_suite.backends.programs import compiled, data_arguments, program_key
from ppl_suite.estimate import Estimate
from ppl_suite.guides.autoguides import LAPLACE, FlatPosterior
from ppl_suite.guides.plates import SitePlates, read_plates, sample_sites
from ppl_suite.numerics import enable_float64
from ppl_suite.problem import Problem
from ppl_suite.spec import ModelSpec, Site

ELBO_EVAL_BATCH = 1000
VMAP = "vmap"  # the fit's draws path (schema.DRAWS_PATH): Trace_ELBO vmaps one-particle code
ELBO_CLASSES = {"trace": TraceOrderELBO, "trace_enum": TraceEnum_ELBO}  # TraceOrderELBO: numpyro_elbo


def as_jax(values: Mapping[str, Any]) -> dict[str, Any]:
    """NumPy arrays to JAX arrays; Python scalars stay as they are (static under jit)."""
    return {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in values.items()}


def model_plates(problem: Problem, model: Callable[..., Any]) -> dict[str, SitePlates]:
    """The plates of the model's latent sites (``guides.plates.read_plates``), read from one trace of
    the model run abstractly (``jax.eval_shape``: shapes and plates, nothing compiled or computed). Run
    eagerly, the trace compiled each of the model's operations on its first call: 0.4-1.8 s per
    model in a new process. A model whose trace needs a concrete value (a scale computed with
    ``jnp``, which ``read_plates`` compares with 1; Python control flow on a computed value) is
    traced eagerly, as before."""
    data, params, found = problem.data, as_jax(problem.params), {}

    def read() -> None:
        trace = handlers.trace(handlers.seed(model, 0)).get_trace(data, params)
        found.update(read_plates(trace.items(), problem.spec.name))

    try:
        jax.eval_shape(read)
    except jax.errors.JAXTypeError:  # a value the abstract trace does not have
        read()
    return found


def make_guide(problem: Problem, guide: str, phi0: Mapping[str, np.ndarray]):
    """The guide family as a NumPyro guide with ``numpyro.param`` sites named as in ``phi``, each
    latent site sampled in the model's plates (``guides.plates``, read from one trace of the model)."""
    family, sites, ops = guides.get(guide), problem.sites, guides.jax_ops()
    model = registry.implementation(problem.spec.name, "numpyro")
    layout = model_plates(problem, model)

    def numpyro_guide(data, params):
        phi = {name: numpyro.param(name, jnp.asarray(value)) for name, value in phi0.items()}
        sample_sites(numpyro, ops, family.distributions(phi, sites, data, ops), sites, layout)

    return numpyro_guide


def adam(config: SVIConfig) -> numpyro.optim.Adam:
    return numpyro.optim.Adam(
        step_size=lambda t: config.learning_rate(t, jnp), b1=ADAM_BETAS[0], b2=ADAM_BETAS[1], eps=ADAM_EPS
    )


def autoguide_phi(values: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """phi of a NumPyro autoguide: its parameters (constrained, as ``SVI.get_params`` gives them)
    named numpyro.<name>, the leaves of a pytree parameter (a flow's network) numpyro.<name>.<i>."""
    phi = {}
    for name, value in values.items():
        leaves, _ = jax.tree.flatten(value)
        if len(leaves) == 1 and leaves[0] is value:
            phi[f"numpyro.{name}"] = np.asarray(value)
        else:
            phi |= {f"numpyro.{name}.{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)}
    return phi


def set_up_autoguide(problem: Problem, family: guides.AutoGuide, model) -> tuple[Any, dict[str, Any]]:
    """A fresh NumPyro autoguide of ``family``, set up by one call outside any compiled program, and
    its initial parameters (the structure phi is unflattened into).

    Set up eagerly, an AutoContinuous guide packs the sites in trace order; set up inside a compiled
    program (``SVI.init`` under jit) it packs them in sorted order. Training and evaluation both use
    guides set up here, so phi always means the same packing."""
    guide = family.build("numpyro", model, problem.sites)
    trace = handlers.trace(handlers.seed(guide, 0)).get_trace(problem.data, as_jax(problem.params))
    return guide, {name: site["value"] for name, site in trace.items() if site["type"] == "param"}


def unflatten_phi(phi: Mapping[str, np.ndarray], initial: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of ``autoguide_phi``, given parameters of the same structure."""
    out = {}
    for name, value in initial.items():
        if f"numpyro.{name}" in phi:
            out[name] = jnp.asarray(phi[f"numpyro.{name}"])
            continue
        leaves, tree = jax.tree.flatten(value)
        out[name] = jax.tree.unflatten(
            tree, [jnp.asarray(phi[f"numpyro.{name}.{i}"]) for i in range(len(leaves))]
        )
    return out


def autoguide_evaluation(
    problem: Problem, family: guides.AutoGuide, model, guide, fitted: Mapping[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """The guide and parameters whose Trace_ELBO is the library's ELBO of the fitted autoguide
    ``guide``: itself, except for the Laplace family: an AutoMultivariateNormal holding the Normal at
    the MAP (the fitted guide is that Normal, not the MAP's Delta)."""
    if family.cls != LAPLACE:
        return guide, fitted
    q = guide.get_posterior(fitted)
    mvn = autoguide.AutoMultivariateNormal(model, init_loc_fn=init_to_feasible)
    learned = {name: fitted[name] for name in problem.spec.learned}
    return mvn, {**learned, "auto_loc": q.loc, "auto_scale_tril": q.scale_tril}


def autoguide_posterior(
    problem: Problem, family: guides.AutoGuide, phi: Mapping[str, np.ndarray]
) -> FlatPosterior:
    """q_u of the NumPyro autoguide of ``family`` with parameters ``phi`` (``autoguide_phi``), on the
    sites in the guide's packing order (read from its unpacking of 0..d-1: NumPyro exposes the order
    no other way). AutoNormal's q_u is its per-site Normals concatenated in trace order."""
    enable_float64()
    model = registry.implementation(problem.spec.name, "numpyro")
    guide, initial = set_up_autoguide(problem, family, model)
    params = unflatten_phi(phi, initial)
    if family.cls == "AutoNormal":
        order = tuple(
            name
            for name, site in guide.prototype_trace.items()
            if site["type"] == "sample" and not site["is_observed"]
        )
        loc = jnp.concatenate([jnp.ravel(params[f"{name}_{guide.prefix}_loc"]) for name in order])
        scale = jnp.concatenate([jnp.ravel(params[f"{name}_{guide.prefix}_scale"]) for name in order])
        q = dist.Normal(loc, scale).to_event(1)
    else:
        unpacked = guide._unpack_latent(jnp.arange(guide.latent_dim, dtype=jnp.float64))
        order = tuple(sorted(unpacked, key=lambda name: float(jnp.ravel(unpacked[name])[0])))
        q = guide.get_posterior(params)
        q = q.to_event(1) if q.event_shape == () else q
    draw = jax.jit(lambda key, n: q.sample(key, (n,)), static_argnums=1)
    density = jax.jit(q.log_prob)

    def sample(seed: int, n: int) -> np.ndarray:
        return np.array(draw(jax.random.PRNGKey(seed), n))  # writable, for torch

    def log_prob(u: np.ndarray) -> np.ndarray:
        return np.asarray(density(jnp.asarray(u)))

    return FlatPosterior(order, sample, log_prob)


def guide_to_fit(problem: Problem, guide: str, model) -> tuple[Any, Any, dict[str, Any]]:
    """The guide program SVI fits for family ``guide``, the function reading phi from its parameters,
    and the parameters' initial values: a library autoguide's own (``autoguide_phi``; its values as
    set up), or the suite family's (its names; ``init_params``). The compiled SVI loop holds them as
    constants (a flow's networks aside: they start from the loop's key)."""
    family = guides.get(guide)
    if isinstance(family, guides.AutoGuide):
        numpyro_guide, initial = set_up_autoguide(problem, family, model)
        return numpyro_guide, autoguide_phi, initial
    phi0 = family.init_params(problem.sites, problem.data, problem.params)

    def phi_of(values: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return {name: np.asarray(values[name]) for name in phi0}

    return make_guide(problem, guide, phi0), phi_of, phi0


def initial_values_key(initial: Mapping[str, Any]) -> tuple:
    """The initial parameter values as a program's key spells them (``fixed_value`` of each leaf): two
    data sets of one shape share an SVI loop only when the guide starts from the same values on both."""
    return tuple(
        (name, tuple(fixed_value(leaf) for leaf in jax.tree.leaves(value)))
        for name, value in sorted(initial.items())
    )


class NumPyroBackend:
    name = "numpyro"

    def unsupported(self, spec: ModelSpec, sites: tuple[Site, ...], guide: str) -> str | None:
        return unsupported_reason(spec, sites, guide, "numpyro")

    def fit(self, problem: Problem, guide: str, config: SVIConfig, seed: int) -> Fit:
        enable_float64()
        model = registry.implementation(problem.spec.name, "numpyro")
        family = guides.get(guide)
        numpyro_guide, phi_of, initial = guide_to_fit(problem, guide, model)
        (arrays, static), params = data_arguments(problem), as_jax(problem.params)
        elbo = ELBO_CLASSES[family.elbo]
        init_key, eval_key = jax.random.split(jax.random.PRNGKey(seed))

        def build():
            svi = SVI(model, numpyro_guide, adam(config), elbo(num_particles=config.particles))

            def train(init_key, arrays):
                def step(state, _):
                    return svi.update(state, {**static, **arrays}, params)

                state = svi.init(init_key, {**static, **arrays}, params)
                state, losses, snapshots = scan_with_checkpoints(step, svi.get_params, config.steps)(state)
                return svi.get_params(state), losses, snapshots

            return train

        key = program_key(problem, "numpyro.fit", guide, config, initial_values_key(initial))
        source = traced_from(problem, guide)
        train, compile_seconds = compiled(key, build, init_key, arrays, source=source)
        start = time.perf_counter()
        fitted, losses, snapshots = jax.block_until_ready(train(init_key, arrays))
        run_seconds = time.perf_counter() - start

        learned = problem.spec.learned
        phi = phi_of({name: value for name, value in fitted.items() if name not in learned})
        theta = {name: np.asarray(fitted[name]) for name in learned}
        trajectory = {
            "step": checkpoint_steps(config.steps),
            "phi": phi_of({name: value for name, value in snapshots.items() if name not in learned}),
            "theta": {name: np.asarray(snapshots[name]) for name in learned},
        }
        if isinstance(family, guides.AutoGuide):
            numpyro_guide, fitted = autoguide_evaluation(problem, family, model, numpyro_guide, fitted)
        library_elbo = self._library_elbo(
            problem, guide, model, numpyro_guide, fitted, config.eval_particles, eval_key
        )
        return Fit(
            backend=self.name,
            guide=guide,
            phi=phi,
            theta=theta,
            losses=np.asarray(losses),
            compile_seconds=compile_seconds,
            run_seconds=run_seconds,
            timed_steps=config.steps,
            library_elbo=library_elbo,
            draws_path=VMAP,
            trajectory=trajectory,
        )

    @staticmethod
    def _library_elbo(problem: Problem, guide_name: str, model, guide, fitted, n: int, key) -> Estimate:
        """NumPyro's own single-particle Trace_ELBO at n keys: ELBO = mean(-loss), SE = sd / sqrt(n)."""
        (arrays, static), params = data_arguments(problem), as_jax(problem.params)

        def build():
            elbo = ELBO_CLASSES[guides.get(guide_name).elbo](num_particles=1)

            def terms(fitted, arrays, key):
                def one(k):
                    return -elbo.loss(k, fitted, model, guide, {**static, **arrays}, params)

                return jax.lax.map(one, jax.random.split(key, n), batch_size=ELBO_EVAL_BATCH)

            return terms

        start = time.perf_counter()
        key_parts = ("numpyro.library_elbo", guide_name, n)
        source = traced_from(problem, guide_name)
        program, _ = compiled(
            program_key(problem, *key_parts), build, fitted, arrays, key, optimize=False, source=source
        )
        terms = np.asarray(jax.block_until_ready(program(fitted, arrays, key)))
        return Estimate.from_samples(terms, seconds=time.perf_counter() - start)


def library_elbo(problem: Problem, family: str, phi: Mapping[str, np.ndarray], n: int, seed: int) -> Estimate:
    """NumPyro's own Trace_ELBO (TraceEnum_ELBO for enumerated families) of the guide of ``family`` with
    parameters ``phi``, at the model parameters of ``problem`` (passed as ``fit`` passes its fitted
    theta): the number ``fit`` reports for its final guide, for any phi; n particles keyed by ``seed``."""
    enable_float64()
    model = registry.implementation(problem.spec.name, "numpyro")
    fitted = as_jax({**{name: np.asarray(problem.params[name]) for name in problem.spec.learned}, **phi})
    return NumPyroBackend._library_elbo(
        problem, family, model, make_guide(problem, family, phi), fitted, n, jax.random.PRNGKey(seed)
    )
