"""References taken from another parametrization of the same model, mapped into this one.

Some parametrizations defeat NUTS: the centered eight schools' funnel (theta_j ~ N(mu, tau)) gives
divergent transitions for any step size, while the non-centered form (theta_j = mu + tau eta_j,
eta_j ~ N(0, 1)) samples cleanly (Betancourt and Girolami 2015, "Hamiltonian Monte Carlo for
hierarchical models", in Current Trends in Bayesian Methodology). Both define one joint distribution
of the data, so their posteriors are images of each other under the change of variables and their
evidence p(x) is the same. A ``ReferenceFrom`` says: run NUTS on ``model`` (same data and parameters)
and map its draws with ``latents``; the gates are checked on the mapped draws.

The registry is keyed by the name of the model whose reference is mapped; a plug-in registers its own
with ``register_reference_from``, as it registers models with ``ppl_suite.registry.register``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ppl_suite.plugin_registry import Registry
from ppl_suite.spec import Latents, Params


@dataclass(frozen=True)
class ReferenceFrom:
    """Sample ``model`` and map its draws: ``latents(draws, params)`` takes its latent draws (each site
    (n, *shape)) to this model's; ``why`` says why direct NUTS is not used (one sentence)."""

    model: str
    latents: Callable[[Latents, Params], Latents]
    why: str


def _eight_schools_centered(draws: Latents, params: Params) -> Latents:
    """theta_j = mu + tau eta_j."""
    mu, tau = np.asarray(draws["mu"]), np.asarray(draws["tau"])
    return {"mu": mu, "tau": tau, "theta": mu[:, None] + tau[:, None] * np.asarray(draws["eta"])}


SOURCES: Registry[ReferenceFrom] = Registry("reference source")  # keyed by the model it serves
SOURCES.register(
    ReferenceFrom(
        "eight_schools_noncentered",
        _eight_schools_centered,
        "the centered funnel (theta ~ N(mu, tau)) makes NUTS diverge where tau is small; the "
        "non-centered form (theta = mu + tau eta) has no funnel",
    ),
    name="eight_schools_centered",
)


def register_reference_from(model: str, source: ReferenceFrom) -> None:
    """Take ``model``'s reference from ``source``; registering a model twice is an error."""
    if model in SOURCES:
        raise ValueError(f"model {model!r} already takes its reference from {SOURCES.get(model).model!r}")
    SOURCES.register(source, name=model)


def reference_from(model: str) -> ReferenceFrom | None:
    """Where ``model``'s reference comes from, or None: NUTS on the model itself."""
    return SOURCES.get(model) if model in SOURCES else None
