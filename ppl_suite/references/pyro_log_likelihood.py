"""Pyro's counterpart of NumPyro's ``numpyro.infer.log_likelihood`` for a model given only in Pyro: the
InferenceData groups ``references.inference_data`` builds from NumPyro (deterministic sites, observed
data, pointwise log-likelihood, dims named after plates), from traces of the Pyro model.

    log_likelihood[site][i] = site.fn.log_prob(x_site | z_i)    per element of the site's batch shape

(event dimensions summed, no plate scale or mask applied: NumPyro's ``log_likelihood``), for each
observed site and each draw z_i, from the model traced with its latents conditioned on z_i. The draws
go through the model as the Pyro target's log joint sends them (``PyroTarget.draws_path``): on a batch
axis left of every latent where the model broadcasts, else ``torch.func.vmap`` of one-draw traces,
else one trace per draw; the sites are recorded by a ``poutine.trace`` around the very call
(``backends.pyro_draws``) that evaluates the log joint, except the deterministic sites on the
vectorized path: a value such as ``a.mean()`` need not broadcast where the log density does, so they
come from one-draw traces (``torch.func.vmap``, else one per draw). Dims: each sample or deterministic site's
plates, outermost first (ArviZ's ``infer_dims`` for NumPyro)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyro
import pyro.poutine as poutine
import torch

from ppl_suite import registry
from ppl_suite.backends import pyro_draws
from ppl_suite.backends.pyro import as_torch
from ppl_suite.problem import Problem
from ppl_suite.spec import Latents
from ppl_suite.targets.pyro_target import PyroTarget
from ppl_suite.targets.torch_density import PYRO_STATE_LOCK


@dataclass(frozen=True)
class _Layout:
    """What one trace of the model says: observed values and the shapes of their log densities, the
    deterministic sites' shapes, each latent's event dimensions, the plate nesting, and each site's
    plate names (outermost first)."""

    observed: dict[str, np.ndarray]
    log_prob_shapes: dict[str, tuple[int, ...]]
    deterministic_shapes: dict[str, tuple[int, ...]]
    event_dims: dict[str, int]
    nesting: int
    dims: dict[str, list[str]]


def _is_deterministic(site: dict[str, Any]) -> bool:
    return bool(site["infer"].get("_deterministic"))


def _sample_sites(trace: poutine.Trace) -> dict[str, dict[str, Any]]:
    """The sample sites of a trace, Pyro's subsample sites of plates left out."""
    return {
        name: site
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and type(site["fn"]).__name__ != "_Subsample"
    }


def _layout(model: Callable[..., Any], data: Any, params: Any, latents: list[str]) -> _Layout:
    """The ``_Layout`` of one trace of ``model(data, params)`` (``latents``: the latent sites' names)."""
    trace = _scoped(lambda: poutine.trace(model).get_trace(data, params))
    sites = _sample_sites(trace)
    observed = {n: s for n, s in sites.items() if s["is_observed"] and not _is_deterministic(s)}
    dims = {}
    for name, site in sites.items():
        frames = sorted((f for f in site["cond_indep_stack"] if f.vectorized), key=lambda f: f.dim)
        if frames:
            dims[name] = [frame.name for frame in frames]
    return _Layout(
        observed={n: torch.as_tensor(s["value"]).detach().numpy() for n, s in observed.items()},
        log_prob_shapes={n: tuple(s["fn"].log_prob(s["value"]).shape) for n, s in observed.items()},
        deterministic_shapes={n: tuple(s["value"].shape) for n, s in sites.items() if _is_deterministic(s)},
        event_dims={name: sites[name]["fn"].event_dim for name in latents},
        nesting=pyro_draws.plate_nesting(trace),
        dims=dims,
    )


def _scoped(call: Callable[[], Any]) -> Any:
    """``call()`` alone in the process (``PYRO_STATE_LOCK``) under an empty parameter store (the model's
    ``pyro.param`` sites from its params, never from a fit), without gradients or validation, torch's
    generator forked and seeded."""
    with (
        PYRO_STATE_LOCK,
        pyro.get_param_store().scope(),
        torch.no_grad(),
        pyro.validation_enabled(False),
        torch.random.fork_rng(devices=[]),
    ):
        pyro.get_param_store().clear()
        torch.manual_seed(0)
        return call()


def _site_values(
    trace: poutine.Trace, layout: _Layout, n: int | None, names: set[str]
) -> dict[str, torch.Tensor]:
    """Of ``names``, each observed site's log density per element and each deterministic site's value,
    from a trace of n draws on the left (or of one draw: n None), shaped (n, *shape) (or shape)."""
    out = {}
    for name, site in _sample_sites(trace).items():
        if name not in names:
            continue
        if name in layout.observed:
            out[name] = _per_draw(name, site["fn"].log_prob(site["value"]), layout.log_prob_shapes[name], n)
        elif name in layout.deterministic_shapes:
            out[name] = _per_draw(name, site["value"], layout.deterministic_shapes[name], n)
    return out


def _per_draw(name: str, value: torch.Tensor, shape: tuple[int, ...], n: int | None) -> torch.Tensor:
    """``value`` as (n, *shape): the draws' axis leftmost and the plates' singleton axes dropped; a log
    density the draws do not change (an observed site of data alone) repeated n times."""
    if n is None:
        return value.reshape(shape)
    size = math.prod(shape)
    if value.numel() == n * size:
        return value.reshape(n, *shape)
    if value.numel() == size:
        return value.reshape(shape).expand(n, *shape)
    raise ValueError(f"site {name!r}: {tuple(value.shape)} for {n} draws of shape {shape}")


def _evaluate(
    model: Callable[..., Any],
    data: Any,
    params: Any,
    values: dict[str, torch.Tensor],
    layout: _Layout,
    path: str,
    names: set[str],
) -> dict[str, torch.Tensor]:
    """The sites ``names`` of ``_site_values`` for the draws ``values`` (n, *site shape) along ``path``.
    On the vectorized path only the observed sites' log densities come from the batched trace (the
    path was chosen because the log density broadcasts); deterministic sites come from one-draw traces
    (``torch.func.vmap``, else one trace per draw), as a site like ``a.mean()`` does not broadcast."""
    n = next(iter(values.values())).shape[0]

    def one(draw: Mapping[str, torch.Tensor], names: set[str] = names) -> dict[str, torch.Tensor]:
        with poutine.trace() as tracer:
            pyro_draws.one_draw_parts(model, data, params, draw)
        return _site_values(tracer.trace, layout, None, names)

    def each(names: set[str]) -> dict[str, torch.Tensor]:
        found = [one({k: v[i] for k, v in values.items()}, names) for i in range(n)]
        return {name: torch.stack([f[name] for f in found]) for name in found[0]} if found else {}

    if path == pyro_draws.VMAP:
        return torch.func.vmap(one)(values)
    if path != pyro_draws.VECTORIZED:
        return each(names)
    with poutine.trace() as tracer:
        pyro_draws.vectorized_parts(model, data, params, values, layout.event_dims, layout.nesting)
    found = _site_values(tracer.trace, layout, n, names & set(layout.observed))
    deterministic = names & set(layout.deterministic_shapes)
    if deterministic:
        try:
            found |= torch.func.vmap(lambda draw: one(draw, deterministic))(values)
        except Exception:  # a model vmap cannot follow (the log joint's own check chose no vmap)
            found |= each(deterministic)
    return found


def pyro_groups(
    problem: Problem, flat: Latents, deterministic: Latents | None, max_log_likelihood: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray], dict[str, list[str]]]:
    """(deterministic sites, observed data, log-likelihood per draw, dims by site) of flat latent draws
    (n, *shape) of ``problem``'s Pyro model (module docstring); ``deterministic`` given (a NUTS run's)
    or computed from the traces; no log-likelihood where it would hold more than ``max_log_likelihood``
    numbers (draws x observed values)."""
    model = registry.implementation(problem.spec.name, "pyro")
    data, params = as_torch(problem.data), as_torch(problem.params)
    names = [site.name for site in problem.sites]
    layout = _layout(model, data, params, names)
    n = len(next(iter(flat.values())))
    size = n * sum(max(value.size, 1) for value in layout.observed.values())
    wanted = set(layout.observed) if layout.observed and size <= max_log_likelihood else set()
    if deterministic is None:
        wanted |= set(layout.deterministic_shapes)
    found: dict[str, np.ndarray] = {}
    if wanted and n:
        path = PyroTarget(problem).draws_path
        values = as_torch({name: np.asarray(flat[name]) for name in names})
        step = max(pyro_draws.NUMBERS_PER_CHUNK // max(int(problem.spec.problem_size(problem.params)), 1), 1)
        chunks = [
            _scoped(lambda chunk=chunk: _evaluate(model, data, params, chunk, layout, path, wanted))
            for chunk in ({k: v[i : i + step] for k, v in values.items()} for i in range(0, n, step))
        ]
        found = {name: np.concatenate([c[name].numpy() for c in chunks]) for name in wanted}
    computed = {name: found[name] for name in layout.deterministic_shapes if name in found}
    likelihood = {name: found[name] for name in layout.observed if name in found}
    return deterministic if deterministic is not None else computed, layout.observed, likelihood, layout.dims
