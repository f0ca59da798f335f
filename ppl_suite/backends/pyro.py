"""Pyro backend: SVI with ``Trace_ELBO`` (vectorized particles), torch Adam with exponential decay."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyro
import torch
from pyro.infer import SVI, Trace_ELBO

from ppl_suite import guides, registry
from ppl_suite.backends.base import ADAM_BETAS, ADAM_EPS, Fit, SVIConfig, unsupported_reason
from ppl_suite.estimate import Estimate
from ppl_suite.problem import Problem

ELBO_EVAL_BATCH = 500


def as_torch(values: Mapping[str, Any]) -> dict[str, Any]:
    """NumPy arrays to torch (floats as float64, integers kept); Python scalars stay as they are."""
    out = {}
    for key, value in values.items():
        if isinstance(value, np.ndarray):
            value = torch.as_tensor(value)
            if value.is_floating_point():
                value = value.to(torch.float64)
        out[key] = value
    return out


def make_guide(problem: Problem, guide: str, phi0: Mapping[str, np.ndarray]):
    """The guide family as a Pyro guide with ``pyro.param`` sites named as in ``phi``."""
    family, sites, ops = guides.get(guide), problem.sites, guides.torch_ops()

    def pyro_guide(data, params):
        phi = {name: pyro.param(name, lambda v=value: torch.as_tensor(v)) for name, value in phi0.items()}
        for name, q in family.distributions(phi, sites, data, ops).items():
            pyro.sample(name, q)

    return pyro_guide


class PyroBackend:
    name = "pyro"

    def unsupported(self, problem: Problem, guide: str) -> str | None:
        return unsupported_reason(problem, guide, "pyro")

    def fit(self, problem: Problem, guide: str, config: SVIConfig, seed: int) -> Fit:
        model = registry.implementation(problem.spec.name, "pyro")
        phi0 = guides.get(guide).init_params(problem.sites, problem.data, problem.params)
        pyro_guide = make_guide(problem, guide, phi0)
        data, params = as_torch(problem.data), as_torch(problem.params)

        pyro.enable_validation(False)
        pyro.set_rng_seed(seed)
        store = pyro.get_param_store()
        store.clear()
        optimizer = pyro.optim.ExponentialLR(
            {
                "optimizer": torch.optim.Adam,
                "optim_args": {"lr": config.lr, "betas": ADAM_BETAS, "eps": ADAM_EPS},
                "gamma": config.lr_decay,
            }
        )
        svi = SVI(
            model,
            pyro_guide,
            optimizer,
            Trace_ELBO(num_particles=config.particles, vectorize_particles=True),
        )
        losses = np.empty(config.steps)
        start = time.perf_counter()
        losses[0] = svi.step(data, params)
        optimizer.step()
        compile_seconds = time.perf_counter() - start  # first step: tracing and shape discovery
        start = time.perf_counter()
        for step in range(1, config.steps):
            losses[step] = svi.step(data, params)
            optimizer.step()
        run_seconds = time.perf_counter() - start

        phi = {name: store[name].detach().numpy().copy() for name in phi0}
        theta = {name: store[name].detach().numpy().copy() for name in problem.spec.learned}
        library_elbo = self._library_elbo(model, pyro_guide, data, params, config.eval_particles)
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
            library_elbo=library_elbo,
        )

    @staticmethod
    def _library_elbo(model, guide, data, params, n: int) -> Estimate:
        """Pyro's own Trace_ELBO of the final guide: -loss averaged over batches of particles;
        SE from the spread of the batch means (each batch is ELBO_EVAL_BATCH particles)."""
        batches = max(n // ELBO_EVAL_BATCH, 2)
        elbo = Trace_ELBO(num_particles=ELBO_EVAL_BATCH, vectorize_particles=True)
        start = time.perf_counter()
        with torch.no_grad():
            means = np.array([-elbo.loss(model, guide, data, params) for _ in range(batches)])
        seconds = time.perf_counter() - start
        return Estimate(
            value=float(means.mean()),
            se=float(means.std(ddof=1) / np.sqrt(batches)),
            n_evals=batches * ELBO_EVAL_BATCH,
            seconds=seconds,
        )
