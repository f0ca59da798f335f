"""The two protocols between the estimators and the libraries: ``Target`` and ``GuideDensity``.

Estimators see a problem only through these (they import no torch, Pyro or NumPyro); adapters that
build them from a model's NumPy oracle, a NumPyro model or a Pyro model (``oracle_target``,
``numpyro_target``, ``pyro_target``; ``build.target_for`` picks the pipeline's), and from a fitted
guide of any backend (``fitted_guide``), live beside this module. A model without an oracle, a
user's own model and the zoo go through the same estimator code.

Latents are constrained values keyed by site name with one leading batch axis (``ppl_suite.spec``);
``u`` is a point of the unconstrained space R^d, sites flattened and concatenated in declaration order,
each mapped by the bijection of its support (z = T(u)).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

    from ppl_suite.spec import DistSpec, ExactPosterior, Latents, Site


class Target(Protocol):
    """The (unnormalized) posterior of one problem.

    - ``name``: the model's name, for messages; ``sites``: its latent sites; ``dim``: d.
    - ``exact``: the exact posterior and evidence where the model has an oracle, else None.
    - ``reference``: a ``PosteriorReference`` (NUTS draws and AIS evidence) for a model without an
      oracle, when the pipeline built one, else None.
    - ``log_joint(latents)``: log p(x, z) for a batch of constrained latents, shape (n,), float64.
    - ``log_joint_u(u)``: log p(x, T(u)) + log |det dT/du| at one u of shape (d,); a JAX function
      (traceable, differentiable). ``prior_and_likelihood(u)``: (log p(u) with its Jacobian,
      log p(x | T(u))) at one u, JAX, from one evaluation of the model.
    - ``sample_prior(key, n)``: n prior draws u ~ p(u), a JAX array (n, d).
    - ``constrain(u)`` (n, d) -> Latents and ``unconstrain(latents)`` -> (n, d), NumPy.
    - ``continuous_reason()``: why no unconstrained space exists (discrete sites...), or None.
    - ``family_minimum(family)``: the smallest KL(q || p(z | x)) a member of the guide family can
      reach, where the model or a closed form knows it; None otherwise (always without an oracle).
    """

    name: str
    sites: tuple[Site, ...]
    dim: int
    exact: ExactPosterior | None
    reference: PosteriorReference | None

    def log_joint(self, latents: Latents) -> np.ndarray: ...

    def log_joint_u(self, u: Any) -> Any: ...

    def prior_and_likelihood(self, u: Any) -> tuple[Any, Any]: ...

    def sample_prior(self, key: Any, n: int) -> Any: ...

    def constrain(self, u: Any) -> Latents: ...

    def unconstrain(self, latents: Latents) -> np.ndarray: ...

    def continuous_reason(self) -> str | None: ...

    def family_minimum(self, family: str) -> float | None: ...


class PosteriorReference(Protocol):
    """Where no closed form exists: draws of the posterior from a diagnosed sampler and an estimate of
    log p(x), each with its own uncertainty (``ppl_suite.references`` builds them).

    - ``draws``: constrained posterior draws per site, (n, *site.shape), chains concatenated;
    - ``ess``: the smallest bulk or tail effective sample size over latent coordinates (the draws
      are autocorrelated: n draws carry about this much information);
    - ``log_evidence``, ``log_evidence_se``: log p(x) and its standard error; the SE is None when
      the evidence is not reliable, and ``evidence_diagnostic`` then says why.
    """

    draws: Latents
    ess: float
    log_evidence: float
    log_evidence_se: float | None
    evidence_diagnostic: str


class GuideDensity(Protocol):
    """A fitted guide q, whichever backend fitted it.

    - ``family``: the guide family's name; ``params``: its parameters phi as NumPy arrays (the
      documented form of ``ppl_suite.guides``: loc and log-scale in unconstrained space...).
    - ``sample(seed, n)``: n independent draws z ~ q (Latents); the same seed gives the same draws.
    - ``log_q(latents)``: log q(z) for a batch of constrained latents, shape (n,).
    - ``samples_nothing``: True when q has no sampled site (every latent summed out by enumeration).
    - ``kl_to(factors)``: KL(q || p) in closed form against a posterior that factors over sites into
      library distributions (the libraries' KL registries), or None when no registered pair applies.
    """

    family: str
    params: dict[str, np.ndarray]

    @property
    def samples_nothing(self) -> bool: ...

    def sample(self, seed: int, n: int) -> Latents: ...

    def log_q(self, latents: Latents) -> np.ndarray: ...

    def kl_to(self, factors: dict[str, DistSpec]) -> float | None: ...
