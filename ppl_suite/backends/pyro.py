"""Pyro backend: ``Trace_ELBO`` (vectorized particles), torch Adam, the shared schedule.

Each step is what ``pyro.infer.SVI.step`` does, written out: the ELBO's ``loss_and_grads`` fills the
parameters' gradients, then the optimizer steps. Three choices make it fast:

- the loss is Pyro's compiled form of the same estimator, ``JitTrace_ELBO`` (``JitTraceEnum_ELBO``
  for enumerated guides): model and guide are traced once with ``torch.jit.trace`` and the trace is
  replayed each step, as NumPyro's loop is compiled by XLA. The model's fixed parameters are bound
  before tracing, so only tensors reach the traced function;
- one fused Adam update (``torch.optim.Adam(fused=True)``'s kernel: one kernel per parameter,
  about 10% faster per step than ``foreach`` here) of all parameters at once, its step size set from
  the precomputed schedule; ``pyro.optim`` would wrap one optimizer and one scheduler per parameter,
  whose per-call overhead is a third of a step on these small models;
- for the suite's families (``Trace_ELBO`` and ``TraceEnum_ELBO`` alike), the whole step, loss,
  gradient and Adam update, is recorded after the first step and replayed as one TorchScript graph
  (``pyro_recorded_step``), with the parameters in the loop's own tensors, written back to the param
  store for the trajectory's snapshots and at the end; the losses stay in tensors until the end.
  Else (autoguides, a step that cannot be recorded) the step runs eagerly: Pyro's compiled loss
  (for ``Trace_ELBO`` called directly, ``pyro_compiled_step``, without Pyro's per-call wrapper),
  then the fused Adam update.

Same estimator, gradients and Adam as ``SVI`` with ``Trace_ELBO`` (``TraceEnum_ELBO``);
``benchmarks/pyro_steps.py`` measures the steps per second against a raw ``JitTrace_ELBO`` loop. The
evaluation of the fitted guide uses the plain ``Trace_ELBO``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.distributions import constraints
from pyro.infer import JitTrace_ELBO, JitTraceEnum_ELBO, Trace_ELBO, TraceEnum_ELBO
from torch.distributions import transform_to

from ppl_suite import guides, registry, schema
from ppl_suite.backends import kept_programs, torch_program_cache
from ppl_suite.backends.base import ADAM_BETAS, ADAM_EPS, Fit, SVIConfig, unsupported_reason
from ppl_suite.backends.jax_loop import checkpoint_steps
from ppl_suite.backends.pyro_draws import VECTORIZED, Draws, check_draws
from ppl_suite.backends.pyro_recorded_step import (
    RECORD_MIN_STEPS,
    AdamSteps,
    RecordedAdamSteps,
    trainable_parameters,
)
from ppl_suite.estimate import Estimate
from ppl_suite.guides.autoguides import LAPLACE, LOW_RANK, FlatPosterior
from ppl_suite.guides.mean_field import INIT_SCALE
from ppl_suite.guides.plates import SitePlates, read_plates, sample_sites
from ppl_suite.problem import Problem
from ppl_suite.spec import ModelSpec, Site

ELBO_EVAL_BATCH = 500
LOOP_EVAL_BATCH, LOOP_EVAL_PARTICLES = 50, 2000  # one model and guide trace per particle
ELBO_CLASSES = {"trace": Trace_ELBO, "trace_enum": TraceEnum_ELBO}
JIT_ELBO_CLASSES = {"trace": JitTrace_ELBO, "trace_enum": JitTraceEnum_ELBO}
logging.getLogger("pyro").setLevel(logging.WARNING)  # silence "Guessed max_plate_nesting" notes


def as_torch(values: Mapping[str, Any]) -> dict[str, Any]:
    """NumPy arrays to torch (floats as float64, integers kept); Python scalars stay as they are."""
    out = {}
    for key, value in values.items():
        if isinstance(value, np.ndarray):
            value = torch.tensor(value)  # a copy: pyro.param updates its initial tensor in place
            if value.is_floating_point():
                value = value.to(torch.float64)
        out[key] = value
    return out


def site_plates(model: Callable, data, params, what: str) -> dict[str, SitePlates]:
    """The plates of every latent site of one trace of ``model(data, params)`` (``guides.plates``),
    traced under a scoped parameter store (the model's ``pyro.param`` sites are left as they were)."""
    with pyro.get_param_store().scope(), torch.no_grad(), pyro.validation_enabled(False):
        pyro.get_param_store().clear()
        trace = poutine.trace(model).get_trace(data, params)
    return read_plates(trace.nodes.items(), what)


def make_guide(problem: Problem, guide: str, phi0: Mapping[str, np.ndarray]):
    """The guide family as a Pyro guide with ``pyro.param`` sites named as in ``phi``, each latent site
    sampled in the model's plates (``guides.plates``)."""
    family, sites, ops = guides.get(guide), problem.sites, guides.torch_ops()
    model = registry.implementation(problem.spec.name, "pyro")
    layout = site_plates(model, as_torch(problem.data), as_torch(problem.params), problem.spec.name)

    def pyro_guide(data, params):
        phi = {name: pyro.param(name, lambda v=value: torch.as_tensor(v)) for name, value in phi0.items()}
        sample_sites(pyro, ops, family.distributions(phi, sites, data, ops), sites, layout)

    return pyro_guide


@dataclass(frozen=True)
class _SVIRun:
    """What the SVI loop needs of a guide: its ``steps`` (``steps(lr)``: one Adam step at rate lr,
    returning the loss, -ELBO estimate; ``steps.write_back()`` before the param store is read), the
    current ``phi()``, and the model and guide whose Trace_ELBO is the library's ELBO of the final
    fit."""

    model: Callable
    steps: AdamSteps | RecordedAdamSteps
    phi: Callable[[], dict[str, np.ndarray]]
    evaluation_guide: Callable[[], Callable]


def _family_run(problem: Problem, guide: str, config: SVIConfig, data, params, draws: Draws) -> _SVIRun:
    """A suite family: its guide written in Pyro, the loss compiled (JitTrace_ELBO); particles
    vectorized, or one at a time for a model written for one draw (``pyro_draws``)."""
    model = registry.implementation(problem.spec.name, "pyro")
    phi0 = guides.get(guide).init_params(problem.sites, problem.data, problem.params)
    pyro_guide = make_guide(problem, guide, phi0)
    tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    fixed = {k: v for k, v in data.items() if k not in tensors}

    def traced_model(tensors):
        return model({**fixed, **tensors}, params)

    def traced_guide(tensors):
        return pyro_guide({**fixed, **tensors}, params)

    kind = guides.get(guide).elbo
    elbo = JIT_ELBO_CLASSES[kind](
        num_particles=config.particles, ignore_jit_warnings=True, **draws.elbo_options()
    )
    kept = config.steps >= RECORD_MIN_STEPS and torch_program_cache.folder() is not None
    key = recording_key(problem, guide, config, draws) if kept else None
    steps = RecordedAdamSteps(
        elbo, traced_model, traced_guide, tensors, ADAM_BETAS, ADAM_EPS, config.steps, key
    )
    store = pyro.get_param_store()
    return _SVIRun(
        model=model,
        steps=steps,
        phi=lambda: PyroBackend._read(store, phi0),
        evaluation_guide=lambda: pyro_guide,
    )


def recording_key(problem: Problem, guide: str, config: SVIConfig, draws: Draws) -> str:
    """The program cache's key (``torch_program_cache``) of the recorded SVI step of ``guide`` on
    ``problem``: the source the fit runs (the model's, the guide family's, every backend's:
    ``store.code_hash``), the ELBO (``trace`` or ``trace_enum``), the numerical packages' versions,
    the data and fixed parameters, the particles and how they are drawn, torch's default dtype."""
    from ppl_suite import store

    data = {name: _array_digest(value) for name, value in sorted(problem.data.items())}
    return kept_programs.file_key(
        {
            "model": problem.spec.name,
            "guide": guide,
            "elbo": guides.get(guide).elbo,
            "code": store.code_hash(problem.spec.name, guide),
            "versions": store.package_versions(),
            "data": data,
            "params": json.dumps(dict(problem.params), sort_keys=True, default=schema.plain),
            "particles": config.particles,
            "draws": json.dumps(draws.elbo_options(), sort_keys=True, default=str),
            "dtype": str(torch.get_default_dtype()),
        }
    )


def _array_digest(value: Any) -> str:
    array = np.ascontiguousarray(value)
    return hashlib.sha256(f"{array.dtype.str}{array.shape}".encode() + array.tobytes()).hexdigest()


def _autoguide_run(
    problem: Problem, family: guides.AutoGuide, config: SVIConfig, data, params, draws: Draws
) -> _SVIRun:
    """A Pyro autoguide with plain Trace_ELBO (its modules cannot be traced by JitTrace_ELBO: the
    compiled loss asserts on the parameters PyroModule creates)."""
    model = registry.implementation(problem.spec.name, "pyro")
    guide = build_autoguide(family, model, problem.sites, data, params)
    elbo = Trace_ELBO(num_particles=config.particles, **draws.elbo_options())

    def evaluation_guide():
        if family.cls == LAPLACE:  # the fitted guide is the Normal at the MAP, not the MAP's Delta
            return guide.laplace_approximation(data, params)
        return guide

    return _SVIRun(
        model=model,
        steps=AdamSteps(
            lambda: elbo.loss_and_grads(model, guide, data, params),
            lambda: trainable_parameters(guide),
            ADAM_BETAS,
            ADAM_EPS,
        ),
        phi=lambda: autoguide_phi(guide),
        evaluation_guide=evaluation_guide,
    )


def build_autoguide(family: guides.AutoGuide, model: Callable, sites, data, params) -> torch.nn.Module:
    """The family's Pyro autoguide with its parameters created (one call of the guide) and, for the
    matched low-rank family, started where NumPyro starts: factor 0, scale init_scale."""
    guide = family.build("pyro", model, sites)
    with poutine.block():
        guide(data, params)
    if family.matched and family.cls == LOW_RANK:
        scale = transform_to(constraints.softplus_positive).inv(torch.full_like(guide.loc, INIT_SCALE))
        with torch.no_grad():
            guide.cov_factor.zero_()
            guide.scale_unconstrained.copy_(scale)
    return guide


def autoguide_phi(guide: torch.nn.Module) -> dict[str, np.ndarray]:
    """phi of a Pyro autoguide: its ``state_dict`` (unconstrained values and buffers), named pyro.<key>."""
    return {f"pyro.{key}": value.detach().numpy().copy() for key, value in guide.state_dict().items()}


def autoguide_posterior(
    problem: Problem, family: guides.AutoGuide, phi: Mapping[str, np.ndarray]
) -> FlatPosterior:
    """q_u of the Pyro autoguide of ``family`` with parameters ``phi`` (``autoguide_phi``), on the
    sites packed in the guide's order (its prototype trace's). AutoNormal's q_u is its per-site
    Normals concatenated; the Laplace family's is the Normal at its MAP."""
    model = registry.implementation(problem.spec.name, "pyro")
    data, params = as_torch(problem.data), as_torch(problem.params)
    store = pyro.get_param_store()
    store.clear()
    try:
        # gradients on (the Laplace family's Hessian), whatever the caller's mode
        with torch.random.fork_rng(devices=[]), pyro.validation_enabled(False), torch.enable_grad():
            torch.manual_seed(0)  # the draws of the set-up call are discarded
            guide = build_autoguide(family, model, problem.sites, data, params)
            guide.load_state_dict({k.removeprefix("pyro."): torch.as_tensor(v) for k, v in phi.items()})
            order = tuple(name for name, _ in guide.prototype_trace.iter_stochastic_nodes())
            if family.cls == "AutoNormal":
                loc = torch.cat([getattr(guide.locs, name).reshape(-1) for name in order])
                scale = torch.cat([getattr(guide.scales, name).reshape(-1) for name in order])
                q = pyro.distributions.Normal(loc, scale).to_event(1)
            elif family.cls == LAPLACE:
                q = guide.laplace_approximation(data, params).get_posterior()
            else:
                q = guide.get_posterior()
    finally:
        store.clear()

    def sample(seed: int, n: int) -> np.ndarray:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            return q.sample((n,)).numpy()

    def log_prob(u: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return q.log_prob(torch.as_tensor(u)).numpy()

    return FlatPosterior(order, sample, log_prob)


class PyroBackend:
    name = "pyro"

    def unsupported(self, spec: ModelSpec, sites: tuple[Site, ...], guide: str) -> str | None:
        return unsupported_reason(spec, sites, guide, "pyro")

    def fit(self, problem: Problem, guide: str, config: SVIConfig, seed: int) -> Fit:
        data, params = as_torch(problem.data), as_torch(problem.params)
        pyro.enable_validation(False)
        pyro.set_rng_seed(seed)
        store = pyro.get_param_store()
        store.clear()
        family = guides.get(guide)
        draws = check_draws(registry.implementation(problem.spec.name, "pyro"), data, params)
        if isinstance(family, guides.AutoGuide):
            run = _autoguide_run(problem, family, config, data, params, draws)
        else:
            run = _family_run(problem, guide, config, data, params, draws)
        losses, compile_seconds, run_seconds, trajectory = self._train(run, store, problem, config)
        phi, theta = run.phi(), self._read(store, problem.spec.learned)
        library_elbo = self._library_elbo(
            run.model,
            run.evaluation_guide(),
            ELBO_CLASSES[family.elbo],
            data,
            params,
            config.eval_particles,
            draws,
        )
        store.clear()
        return Fit(
            backend=self.name,
            guide=guide,
            phi=phi,
            theta=theta,
            losses=losses,
            compile_seconds=compile_seconds,
            run_seconds=run_seconds,
            timed_steps=config.steps - 1,
            trajectory=trajectory,
            library_elbo=library_elbo,
            draws_path=draws.path,
        )

    def _train(
        self, run: _SVIRun, store, problem: Problem, config: SVIConfig
    ) -> tuple[np.ndarray, float, float, dict[str, Any]]:
        """Adam on ``run``: losses, first step's seconds, the other steps' seconds, the trajectory; lr_t =
        config.learning_rate(t) at step t."""
        snapshot_at = set(checkpoint_steps(config.steps).tolist())
        trajectory = {"step": checkpoint_steps(config.steps), "phi": [], "theta": []}
        losses = torch.empty(config.steps, dtype=torch.float64)  # read once, at the end
        learning_rates = config.learning_rate(np.arange(config.steps)).tolist()
        run_seconds = 0.0
        for step in range(config.steps):
            start = time.perf_counter()
            losses[step] = run.steps(learning_rates[step])
            elapsed = time.perf_counter() - start
            if step == 0:
                compile_seconds = elapsed  # first step: tracing, shape discovery, the step recorded
            else:
                run_seconds += elapsed
            if step + 1 in snapshot_at:
                run.steps.write_back()
                trajectory["phi"].append(run.phi())
                trajectory["theta"].append(self._read(store, problem.spec.learned))
        run.steps.write_back()  # the final parameters in the param store
        for part in ("phi", "theta"):
            trajectory[part] = {k: np.stack([s[k] for s in trajectory[part]]) for k in trajectory[part][0]}
        return losses.numpy(), compile_seconds, run_seconds, trajectory

    @staticmethod
    def _read(store, names) -> dict[str, np.ndarray]:
        return {name: store[name].detach().numpy().copy() for name in names}

    @staticmethod
    def _library_elbo(model, guide, elbo_class, data, params, n: int, draws: Draws | None = None) -> Estimate:
        """Pyro's own Trace_ELBO of the final guide: -loss averaged over batches of particles;
        SE from the spread of the batch means. Vectorized, each batch is ELBO_EVAL_BATCH particles;
        one at a time (a model written for one draw: one trace per particle), at most
        LOOP_EVAL_PARTICLES particles in batches of LOOP_EVAL_BATCH. ``draws``: the model's
        ``check_draws``, found here when not given. The time is the batches' arithmetic, not Python's
        tracing: Pyro's compiled ``JitTrace_ELBO`` replays the same operations and was slower on every
        model measured (``benchmarks/pyro_library_elbo.py``), so the plain estimator stays."""
        draws = draws or check_draws(model, data, params)
        per_batch = ELBO_EVAL_BATCH if draws.path == VECTORIZED else LOOP_EVAL_BATCH
        n = n if draws.path == VECTORIZED else min(n, LOOP_EVAL_PARTICLES)
        batches = max(n // per_batch, 2)
        elbo = elbo_class(num_particles=per_batch, **draws.elbo_options())
        start = time.perf_counter()
        with torch.no_grad():
            means = np.array([-elbo.loss(model, guide, data, params) for _ in range(batches)])
        seconds = time.perf_counter() - start
        return Estimate(
            value=float(means.mean()),
            se=float(means.std(ddof=1) / np.sqrt(batches)),
            n_evals=batches * per_batch,
            seconds=seconds,
        )


def library_elbo(problem: Problem, family: str, phi: Mapping[str, np.ndarray], n: int, seed: int) -> Estimate:
    """Pyro's own Trace_ELBO (TraceEnum_ELBO for enumerated families) of the guide of ``family`` with
    parameters ``phi``, at the model parameters of ``problem``: the number ``fit`` reports for its final
    guide, for any phi. Draws depend on ``seed`` alone (torch's global generator is forked)."""
    model = registry.implementation(problem.spec.name, "pyro")
    kind = guides.get(family).elbo
    data, params = as_torch(problem.data), as_torch(problem.params)
    draws = check_draws(model, data, params)
    store = pyro.get_param_store()
    store.clear()
    try:
        with torch.random.fork_rng(devices=[]), pyro.validation_enabled(False):
            torch.manual_seed(seed)
            return PyroBackend._library_elbo(
                model, make_guide(problem, family, phi), ELBO_CLASSES[kind], data, params, n, draws
            )
    finally:
        store.clear()
