"""How a batch of draws reaches a Pyro model: on a batch axis left of every latent, or one at a time.

Pyro's vectorized particles (``Trace_ELBO(vectorize_particles=True)``) and a vectorized log joint put
n draws on a new batch axis at dim -(N + 1), N the model's plate nesting, so every latent of the
model carries the draws on its left: mu (n, 1), a (n, 6) for ``a`` in a plate of 6 groups. A model
written for one draw may not broadcast that way: ``a[group]`` inside ``pyro.plate("data", 60)``
indexes the draw axis, and fails ("The size of tensor a (6) must match the size of tensor b (60)")
or, worse, silently computes something else. So a model is vectorized only where it is shown to
work: ``check_draws`` evaluates the log joint of a few prior draws both ways,

    vectorized:  one trace of the model, conditioned on the n draws, inside plate("_draws", n)
    one by one:  n traces, one per draw (each draw's log p(x, z) = trace.log_prob_sum())

and answers VECTORIZED when the vectorized trace runs and gives the n one-by-one values (to
``AGREEMENT``, float64 rounding), LOOP otherwise. On LOOP the backend fits with
``Trace_ELBO(vectorize_particles=False)`` (Pyro's loop over particles) and the Pyro target evaluates
draws with ``torch.func.vmap`` over one-draw traces where that runs and agrees, else in a loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyro
import pyro.poutine as poutine
import torch

VECTORIZED, VMAP, LOOP = "vectorized", "vmap", "loop"
CHECK_DRAWS = 3  # prior draws compared both ways
AGREEMENT = 1e-9  # relative and absolute: float64 rounding of sums over a model's terms
DRAW_PLATE = "_draws"
NUMBERS_PER_CHUNK = 10**7  # draws evaluated together hold at most this many numbers (80 MB of float64)


def _latents(trace: poutine.Trace) -> dict[str, dict[str, Any]]:
    """The latent sample sites of a trace (Pyro's plate sites and observed sites left out)."""
    return {
        name: site
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"] and type(site["fn"]).__name__ != "_Subsample"
    }


def plate_nesting(trace: poutine.Trace) -> int:
    """N: how many batch dimensions the model's plates use (Pyro's max_plate_nesting)."""
    dims = [
        -frame.dim
        for site in trace.nodes.values()
        if site["type"] == "sample"
        for frame in site["cond_indep_stack"]
        if frame.vectorized
    ]
    return max(dims, default=0)


def one_draw(model: Callable, data: Any, params: Any, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """log p(x, z) of one draw z (values keyed by site): one trace of the conditioned model."""
    return poutine.trace(poutine.condition(model, data=dict(values))).get_trace(data, params).log_prob_sum()


def one_draw_parts(
    model: Callable, data: Any, params: Any, values: Mapping[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(z), log p(x, z)) of one draw z from one trace of the conditioned model: the prior sums
    the latent (unobserved) sample sites, the joint every sample site."""
    trace = poutine.trace(poutine.condition(model, data=dict(values))).get_trace(data, params)
    names = set(values)
    return trace.log_prob_sum(lambda name, site: name in names), trace.log_prob_sum()


def vectorized(
    model: Callable,
    data: Any,
    params: Any,
    values: Mapping[str, torch.Tensor],
    event_dims: Mapping[str, int],
    nesting: int,
) -> torch.Tensor:
    """log p(x, z_i) of n draws (values (n, *site shape)) from one trace, the draws on a batch axis at
    dim -(nesting + 1), each site's value reshaped so its plate axes meet their plates. Raises
    ValueError when a site's log density does not carry the draws there (the model does not broadcast)."""
    return vectorized_parts(model, data, params, values, event_dims, nesting)[1]


def vectorized_parts(
    model: Callable,
    data: Any,
    params: Any,
    values: Mapping[str, torch.Tensor],
    event_dims: Mapping[str, int],
    nesting: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(z_i), log p(x, z_i)) of n draws from one trace, as ``vectorized``: the prior sums the
    latent sites ``values`` names, the joint every sample site."""
    n = next(iter(values.values())).shape[0]
    placed = {}
    for name, value in values.items():
        shape = tuple(value.shape[1:])
        batch_dims = len(shape) - event_dims[name]
        placed[name] = value.reshape((n, *(1,) * (nesting - batch_dims), *shape))
    with pyro.plate(DRAW_PLATE, n, dim=-(nesting + 1)):
        trace = poutine.trace(poutine.condition(model, data=placed)).get_trace(data, params)
    trace.compute_log_prob()
    prior = total = torch.zeros(n, dtype=torch.float64)
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or type(site["fn"]).__name__ == "_Subsample":
            continue
        if site["infer"].get("_deterministic"):  # pyro.deterministic: density 0, whatever its shape
            continue
        log_prob = site["log_prob"]
        if log_prob.dim() != nesting + 1 or log_prob.shape[0] != n:
            raise ValueError(f"site {name!r}: log density of shape {tuple(log_prob.shape)} for {n} draws")
        term = log_prob.reshape(n, -1).sum(-1)
        total = total + term
        if name in values:
            prior = prior + term
    return prior, total


@dataclass(frozen=True)
class Draws:
    """How a model takes a batch of draws: ``path`` (VECTORIZED or LOOP) and its plate nesting N."""

    path: str
    nesting: int

    def elbo_options(self) -> dict[str, Any]:
        """Pyro ELBO arguments: particles vectorized or in a loop, and max_plate_nesting given (so the
        ELBO does not trace the guide once to guess it: both paths then draw the same numbers)."""
        return {"vectorize_particles": self.path == VECTORIZED, "max_plate_nesting": self.nesting}


def check_draws(model: Callable, data: Any, params: Any, seed: int = 0) -> Draws:
    """VECTORIZED when the model evaluates a batch of draws on the left of every latent, LOOP when not
    (module docstring); the check draws are taken from the prior with torch's generator forked."""
    with (
        pyro.get_param_store().scope(),
        torch.no_grad(),
        pyro.validation_enabled(False),
        torch.random.fork_rng(devices=[]),
    ):
        pyro.get_param_store().clear()
        torch.manual_seed(seed)
        traces = [poutine.trace(model).get_trace(data, params) for _ in range(CHECK_DRAWS)]
        sites, nesting = _latents(traces[0]), plate_nesting(traces[0])
        expected = np.array([float(t.log_prob_sum()) for t in traces])
        try:
            values = {name: torch.stack([_latents(t)[name]["value"] for t in traces]) for name in sites}
            event_dims = {name: site["fn"].event_dim for name, site in sites.items()}
            found = vectorized(model, data, params, values, event_dims, nesting).numpy()
        except Exception:  # any failure to broadcast: the model is written for one draw
            return Draws(LOOP, nesting)
    agree = np.allclose(found, expected, rtol=AGREEMENT, atol=AGREEMENT)
    return Draws(VECTORIZED if agree else LOOP, nesting)
