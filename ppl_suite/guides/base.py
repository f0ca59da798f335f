"""The guide-family contract, written once and rendered in Pyro (torch), NumPyro (JAX) or by hand.

A guide family turns a dict of unconstrained parameters into one distribution per latent site, or
(a family that correlates sites) one joint distribution over all of them (``guides.joint``). The
same parameter names and parametrization are used by every backend, so fitted parameters from Pyro,
NumPyro and the hand-rolled optimizer are directly comparable and any of them can be re-rendered in
torch by the estimators.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from ppl_suite.spec import Data, Params, Site


@dataclass(frozen=True)
class ArrayOps:
    """What a guide needs from an array library: its distributions module, bijections to supports,
    conversion of NumPy constants, exp, ``reshape(in_shape, out_shape)``, the transform that
    reshapes an event, and ``concatenate(arrays)`` along the last axis."""

    name: str
    dist: ModuleType
    biject_to: Callable[[Any], Any]
    asarray: Callable[[np.ndarray], Any]
    exp: Callable[[Any], Any]
    reshape: Callable[[tuple[int, ...], tuple[int, ...]], Any]
    concatenate: Callable[[list[Any]], Any]


def torch_ops() -> ArrayOps:
    import pyro.distributions as dist
    import torch
    from torch.distributions import biject_to
    from torch.distributions.transforms import ReshapeTransform

    def asarray(a: np.ndarray) -> Any:
        return torch.as_tensor(a, dtype=torch.float64)

    def concatenate(arrays: list[Any]) -> Any:
        return torch.cat(arrays, dim=-1)

    return ArrayOps("torch", dist, biject_to, asarray, torch.exp, ReshapeTransform, concatenate)


def jax_ops() -> ArrayOps:
    import jax.numpy as jnp
    import numpyro.distributions as dist
    from numpyro.distributions.transforms import ReshapeTransform, biject_to

    def asarray(a: np.ndarray) -> Any:
        return jnp.asarray(a, dtype=jnp.float64)

    def reshape(in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Any:
        return ReshapeTransform(forward_shape=out_shape, inverse_shape=in_shape)

    def concatenate(arrays: list[Any]) -> Any:
        return jnp.concatenate(arrays, axis=-1)

    return ArrayOps("jax", dist, biject_to, asarray, jnp.exp, reshape, concatenate)


def unconstrained_shape(site: Site) -> tuple[int, ...]:
    """Shape of a site's value in unconstrained space: a K-simplex has K - 1 free coordinates."""
    if site.support == "simplex":
        return (*site.shape[:-1], site.shape[-1] - 1)
    return site.shape


def constraint(site: Site, ops: ArrayOps) -> Any:
    """The library constraint object of a site's support."""
    return getattr(ops.dist.constraints, site.support)


class GuideFamily(Protocol):
    """A parametric family q_phi(z) over a model's latent sites.

    ``elbo`` declares the loss its backends train it with: "trace" (pathwise gradients of
    E_q[log p(x, z) - log q(z)]) or "trace_enum" (discrete latents enumerated or scored).
    """

    name: str
    description: str
    elbo: str

    def unsupported(self, sites: tuple[Site, ...]) -> str | None:
        """Why this family cannot be used for these sites, or None when it can."""

    def init_params(self, sites: tuple[Site, ...], data: Data, params: Params) -> dict[str, np.ndarray]:
        """Initial unconstrained parameters phi_0, identical for every backend."""

    def distributions(
        self, phi: Mapping[str, Any], sites: tuple[Site, ...], data: Mapping[str, Any], ops: ArrayOps
    ) -> Any:
        """q(z_site) for every site (a dict), each with the whole site as its event (log_prob is a
        scalar); or, for a family that correlates sites, q(z) as one ``guides.joint.JointQ`` (a
        distribution over the flat unconstrained vector of every site; not named in the annotation:
        that module builds on this one)."""


def per_point(q: Any, ops: ArrayOps) -> Any:
    """A guide distribution over a whole local site, with its leading (data) axis made a batch axis,
    for sampling inside the model's data plate (discrete local sites must sit in the plate to match
    the model's enumeration dimensions)."""
    inner = q.reinterpreted_batch_ndims - 1
    return q.base_dist if inner == 0 else ops.dist.Independent(q.base_dist, inner)


def plated_sites(sites: tuple[Site, ...]) -> dict[str, Site]:
    """Sites a guide samples inside the data plate: the discrete local ones."""
    return {s.name: s for s in sites if s.local and s.support == "integer"}
