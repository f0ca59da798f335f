"""A fitted library autoguide as a GuideDensity: q_u from the library that fitted it, each site's
bijection in torch.

An autoguide is a distribution q_u on the packed unconstrained vector u (``guides.autoguides``); the
latents are z_site = T_site(u_site), T_site the bijection of the site's support, so (Kucukelbir et al.,
2017, "Automatic differentiation variational inference")

    log q(z) = log q_u(u) - sum_sites log |det dT_site/du_site|,   u = T^-1(z).

q_u is rebuilt by the library that fitted the guide (``backends.pyro.autoguide_posterior``,
``backends.numpyro.autoguide_posterior``) from the family and phi alone, so a stored fit can be
evaluated again. The transforms are torch's, the same functions of u as the libraries' (identity, exp,
sigmoid, stick-breaking); the tests check log q against each library's own density of its guide.

A guide program (``guides.autoguides.GuideProgram``, a user's own guide) is no q_u: its density is
read from a trace of the program by the library that fitted it, with the fitted parameters
substituted for its ``param`` sites,

    log q(z) = sum over the guide's sample sites of log q(z_site | z_earlier sites; phi),

NumPyro's by ``numpyro.infer.util.log_density`` (vectorized with ``jax.vmap``), Pyro's by
``poutine.trace(...).compute_log_prob()`` under one plate over the draws; draws are the program run
under a seed (``ProgramDensity``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch
from torch.distributions import biject_to, constraints

from ppl_suite import guides
from ppl_suite.guides.autoguides import FlatPosterior, GuideProgram, library_of
from ppl_suite.guides.base import unconstrained_shape
from ppl_suite.problem import Problem
from ppl_suite.spec import DistSpec, Latents, Site


@dataclass(frozen=True)
class ProgramDensity:
    """q of a fitted guide program on constrained latents: ``sample(seed, n)`` and ``log_q(latents)``."""

    sample: Callable[[int, int], Latents]
    log_q: Callable[[Latents], np.ndarray]


def numpyro_program(problem: Problem, family: GuideProgram, phi: dict[str, np.ndarray]) -> ProgramDensity:
    """A NumPyro guide program with parameters phi: draws by ``seed`` + ``trace``, log q by
    ``log_density``, each vectorized over draws with ``jax.vmap`` and compiled once."""
    import jax
    from numpyro import handlers
    from numpyro.infer.util import log_density

    from ppl_suite import registry
    from ppl_suite.backends.numpyro import as_jax, set_up_autoguide, unflatten_phi
    from ppl_suite.numerics import enable_float64

    enable_float64()
    model = registry.implementation(problem.spec.name, "numpyro")
    guide, initial = set_up_autoguide(problem, family, model)
    values, data, fixed = unflatten_phi(phi, initial), problem.data, as_jax(problem.params)
    names = [site.name for site in problem.sites]

    def one_draw(key):
        program = handlers.substitute(handlers.seed(guide, key), data=values)
        traced = handlers.trace(program).get_trace(data, fixed)
        return {name: traced[name]["value"] for name in names}

    draw = jax.jit(lambda key, n: jax.vmap(one_draw)(jax.random.split(key, n)), static_argnums=1)
    density = jax.jit(jax.vmap(lambda z: log_density(guide, (data, fixed), {}, {**values, **z})[0]))

    def sample(seed: int, n: int) -> Latents:
        return {name: np.array(value) for name, value in draw(jax.random.PRNGKey(seed), n).items()}

    def log_q(latents: Latents) -> np.ndarray:
        return np.asarray(density({name: np.asarray(latents[name], dtype=float) for name in names}))

    return ProgramDensity(sample, log_q)


def pyro_program(problem: Problem, family: GuideProgram, phi: dict[str, np.ndarray]) -> ProgramDensity:
    """A Pyro guide program with parameters phi (substituted for its ``param`` sites): n draws at once
    under a plate over draws outside the program's own plates; log q from the trace conditioned on
    the latents. Each call under an empty, restored param store and a forked, seeded generator."""
    import pyro
    from pyro import poutine

    from ppl_suite.backends.pyro import as_torch

    guide = family.program("pyro")
    values = {name.removeprefix("pyro."): torch.as_tensor(value) for name, value in phi.items()}
    data, fixed = as_torch(problem.data), as_torch(problem.params)
    store = pyro.get_param_store()

    def traced(seed: int, n: int | None, latents: dict[str, torch.Tensor] | None = None):
        """The program's trace (n draws under a plate; None: one, unplated) with its log-probabilities."""
        with (
            store.scope(),
            torch.random.fork_rng(devices=[]),
            torch.no_grad(),
            pyro.validation_enabled(False),
        ):
            store.clear()
            torch.manual_seed(seed)
            program = poutine.substitute(guide, data=values)
            if latents is not None:
                program = poutine.condition(program, data=latents)
            if n is None:
                return poutine.trace(program).get_trace(data, fixed)
            with pyro.plate("ppl_suite_draws", n, dim=-(nesting + 1)):
                found = poutine.trace(program).get_trace(data, fixed)
            found.compute_log_prob()
            return found

    frames = (frame for site in traced(0, None).nodes.values() for frame in site.get("cond_indep_stack", ()))
    nesting = max((-frame.dim for frame in frames if frame.vectorized), default=0)  # the program's plates
    sites = problem.sites

    def sample(seed: int, n: int) -> Latents:
        found = traced(seed, n)
        return {s.name: found.nodes[s.name]["value"].reshape(n, *s.shape).numpy() for s in sites}

    def log_q(latents: Latents) -> np.ndarray:
        n = len(next(iter(latents.values())))
        drawn = traced(0, n).nodes
        shapes = {s.name: drawn[s.name]["value"].shape for s in sites}
        given = {s.name: torch.as_tensor(np.asarray(latents[s.name], dtype=float)).reshape(shapes[s.name])
                 for s in sites}  # fmt: skip
        found = traced(0, n, given).nodes  # the guide samples the latents alone (checked when declared)
        return sum(found[s.name]["log_prob"].reshape(n, -1).sum(1) for s in sites).numpy()

    return ProgramDensity(sample, log_q)


PROGRAM_DENSITIES = {"numpyro": numpyro_program, "pyro": pyro_program}


@dataclass(frozen=True)
class AutoGuideDensity:
    """q of the autoguide family ``family`` with the library's fitted parameters ``params`` (phi)."""

    problem: Problem
    family: str
    params: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        if not guides.is_autoguide(self.family):
            raise ValueError(f"guide family {self.family!r} is not a library autoguide")
        library_of(self.params)

    @cached_property
    def program(self) -> ProgramDensity | None:
        """The density of a guide program, read from its library's trace; None for an autoguide."""
        family = guides.get(self.family)
        if not isinstance(family, GuideProgram):
            return None
        return PROGRAM_DENSITIES[library_of(self.params)](self.problem, family, dict(self.params))

    @cached_property
    def posterior(self) -> FlatPosterior:
        """q_u, rebuilt by the library named in phi."""
        backend = importlib.import_module(f"ppl_suite.backends.{library_of(self.params)}")
        return backend.autoguide_posterior(self.problem, guides.get(self.family), dict(self.params))

    @cached_property
    def _layout(self) -> list[tuple[Site, Any, slice]]:
        """Each site with its bijection T and its slice of u, in the library's packing order."""
        by_name = {site.name: site for site in self.problem.sites}
        layout, start = [], 0
        for name in self.posterior.order:
            site = by_name[name]
            size = int(np.prod(unconstrained_shape(site), dtype=int))
            layout.append((site, biject_to(getattr(constraints, site.support)), slice(start, start + size)))
            start += size
        return layout

    @property
    def samples_nothing(self) -> bool:
        return False

    def sample(self, seed: int, n: int) -> Latents:
        """n independent draws z = T(u), u ~ q_u; the same seed gives the same draws."""
        if self.program is not None:
            return self.program.sample(seed, n)
        u = torch.as_tensor(self.posterior.sample(seed, n))
        with torch.no_grad():
            return {
                site.name: transform(u[:, part].reshape(n, *unconstrained_shape(site))).numpy()
                for site, transform, part in self._layout
            }

    def log_q(self, latents: Latents) -> np.ndarray:
        """log q(z) = log q_u(T^-1(z)) - sum_sites log|det dT/du| for a batch of latents, shape (n,)."""
        if self.program is not None:
            return self.program.log_q(latents)
        parts, log_det = [], 0.0
        with torch.no_grad():
            for site, transform, _ in self._layout:
                z = torch.as_tensor(np.asarray(latents[site.name], dtype=float))
                u = transform.inv(z)
                log_det = log_det + transform.log_abs_det_jacobian(u, z).reshape(len(z), -1).sum(1)
                parts.append(u.reshape(len(z), -1))
            u = torch.cat(parts, dim=1)
        return self.posterior.log_prob(u.numpy()) - np.asarray(log_det)

    def kl_to(self, factors: dict[str, DistSpec]) -> float | None:
        """None: q_u couples the sites, so no per-site closed form applies (KL by Monte Carlo)."""
        return None
