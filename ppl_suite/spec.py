"""The contract models are written against: latent sites, exact posteriors, the model spec.

A model is data, two implementations (Pyro, NumPyro) and, where tractable, an oracle. This module
imports neither Pyro nor NumPyro, so oracles can be built and tested with NumPy/SciPy alone.

Conventions:
- ``Params`` holds every non-latent quantity a density depends on: fixed hyperparameters and sizes
  (``prior_scale``, ``n``), and, for models with learned parameters, the values of those (``W``).
- ``Latents`` maps a site name to its constrained value with one leading batch axis:
  a site of event shape S is an array of shape (n, *S).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

Params = Mapping[str, Any]
Data = Mapping[str, np.ndarray]
Latents = dict[str, np.ndarray]

SUPPORTS = ("real", "positive", "unit_interval", "simplex", "integer")
LOCAL_PLATE = "data"  # models sample local sites inside plate(LOCAL_PLATE, n), leading axis = data


@dataclass(frozen=True)
class DistSpec:
    """A library-neutral distribution: a class name shared by ``pyro.distributions`` and
    ``numpyro.distributions`` (``Normal``, ``Beta``, ``Gamma``, ``Dirichlet``, ``MultivariateNormal``...),
    its keyword parameters as NumPy arrays, and how many batch axes count as event axes.

    Rendered in either library with ``getattr(dist_module, family)(**params).to_event(event_dims)``,
    which gives the KL registries of both libraries something to dispatch on.
    """

    family: str
    params: Mapping[str, np.ndarray]
    event_dims: int = 0


@dataclass(frozen=True)
class Site:
    """One latent sample site: its name, event shape, and support.

    ``support`` is one of SUPPORTS; for ``integer`` sites ``cardinality`` is the number of states.
    ``local`` marks a site whose leading event axis runs over data points (a local latent).
    ``prior`` is the site's prior as a library-neutral distribution, when it has a standard form: the
    ``conjugate`` guide family learns a member of that family, initialised at the prior.
    """

    name: str
    shape: tuple[int, ...] = ()
    support: str = "real"
    cardinality: int = 0
    local: bool = False
    prior: DistSpec | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.support not in SUPPORTS:
            raise ValueError(
                f"site {self.name!r}: unknown support {self.support!r}; valid: {', '.join(SUPPORTS)}"
            )
        if self.support == "integer" and self.cardinality < 1:
            raise ValueError(f"site {self.name!r}: an integer site needs cardinality >= 1")

    @property
    def size(self) -> int:
        """Number of scalars in one constrained value."""
        return int(np.prod(self.shape, dtype=int))


class ExactPosterior(Protocol):
    """Closed-form truth for one (model, data, params): evidence and posterior.

    log_evidence = log p(x) = log p(x, z) - log p(z | x) for every z.
    """

    log_evidence: float

    def log_density(self, latents: Latents) -> np.ndarray:
        """log p(z | x) for a batch of latents, shape (n,)."""

    def sample(self, rng: np.random.Generator, n: int) -> Latents:
        """n exact posterior draws."""

    def mean(self) -> dict[str, np.ndarray]:
        """Posterior mean of each site (event shape)."""

    def covariance(self) -> np.ndarray:
        """Posterior covariance of the flattened latents, sites concatenated in declaration order."""

    def factors(self) -> dict[str, DistSpec] | None:
        """The posterior as independent per-site library distributions, or None when it does not factor
        that way (then KL to it is computed by Monte Carlo, not a registered closed form)."""


@dataclass(frozen=True)
class ModelSpec:
    """A generative model declared once.

    - ``defaults``: hyperparameters and sizes; any of them can be overridden per run.
    - ``sites(params)``: the latent sites, in a fixed order.
    - ``generate_data(rng, params)``: simulated observations (NumPy, so every backend sees the same arrays).
    - ``log_joint(latents, data, params)``: log p(x, z) in NumPy/SciPy, batched over latents, shape (n,).
    - ``oracle(data, params)``: the exact posterior and evidence, or None when intractable.
    - ``guides``: names of the guide families this model supports (see ``ppl_suite.guides``).
    - ``learned``: names of entries of ``params`` that SVI learns (model parameters theta); their
      values in ``params`` are the initial values. Learned parameters are unconstrained reals
      (learn ``log_sigma``, not ``sigma``), so every backend optimizes them the same way.
    - ``kl_family_min(guide, data, params)``: the smallest KL(q || p(z | x)) reachable in a guide
      family, for families where the model knows it and the generic rules of
      ``ppl_suite.estimators.kl.kl_family_minimum`` do not (e.g. by coordinate ascent); None otherwise.

    The Pyro and NumPyro implementations live beside the spec in ``pyro_impl.py`` and
    ``numpyro_impl.py``, each with ``model(data, params)``; a missing file means that backend does
    not support the model.
    """

    name: str
    description: str
    defaults: Mapping[str, Any]
    sites: Callable[[Params], tuple[Site, ...]]
    generate_data: Callable[[np.random.Generator, Params], dict[str, np.ndarray]]
    log_joint: Callable[[Latents, Data, Params], np.ndarray]
    guides: tuple[str, ...]
    oracle: Callable[[Data, Params], ExactPosterior] | None = None
    learned: tuple[str, ...] = ()
    kl_family_min: Callable[[str, Data, Params], float | None] | None = None
    module: str = field(default="", compare=False)

    def params(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults updated by ``overrides``; an unknown key is an error naming the valid ones."""
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"model {self.name!r} has no parameter {', '.join(map(repr, unknown))}; "
                f"valid: {', '.join(sorted(self.defaults))}"
            )
        return {**self.defaults, **overrides}

    def data(self, seed: int, params: Params) -> dict[str, np.ndarray]:
        """The observations for a data seed: same seed, same arrays."""
        return self.generate_data(np.random.default_rng(seed), params)
