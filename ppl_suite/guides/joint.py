"""q(z) as one distribution over every latent coordinate: a joint draw of the flat unconstrained vector
u, split into the sites (the change of variables of Pyro's and NumPyro's AutoContinuous guides;
Kucukelbir et al. 2017, "Automatic differentiation variational inference", section 2.3):

    u = concat over sites (declaration order) of u_site, each flattened in row-major order
    z_site = T_site(reshape(u[block_site]))          T_site = biject_to(site support)
    log q(z) = log q_u(u) - sum_site log |det dT_site/du_site|

A guide family that correlates sites (``full_rank``) gives its q as a ``JointQ`` instead of one
distribution per site (``GuideFamily.distributions``); its consumers (the guide programs of
``plates.sample_sites``, the hand-rolled ELBO through ``draw_with_log_q``, the fitted guide's torch
rendering) draw u from ``JointQ.u`` and read the sites with ``JointQ.split``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ppl_suite.guides.base import ArrayOps, constraint, unconstrained_shape
from ppl_suite.spec import Site

JOINT_SITE = "_joint"  # the guide-only sample site of u; the joint families' parameters are _joint.<name>


class Block(NamedTuple):
    """One site's coordinates u[start:stop] of the flat unconstrained vector."""

    site: Site
    start: int
    stop: int


def blocks(sites: tuple[Site, ...]) -> tuple[Block, ...]:
    """Each site's block of u, in declaration order."""
    out, offset = [], 0
    for site in sites:
        size = int(np.prod(unconstrained_shape(site), dtype=int))
        out.append(Block(site, offset, offset + size))
        offset += size
    return tuple(out)


def size(sites: tuple[Site, ...]) -> int:
    """d, the number of unconstrained coordinates of the sites."""
    return sum(b.stop - b.start for b in blocks(sites))


def sum_rightmost(x: Any, k: int) -> Any:
    """x summed over its k rightmost axes (torch or JAX)."""
    return x.reshape((*tuple(x.shape)[: x.ndim - k], -1)).sum(-1)


class SiteValue(NamedTuple):
    """One site's value z_site = T(u_site) (draw axes on the left of the site's shape) and
    log |det dT/du_site| per element of the transform's batch (the site's shape, less the simplex's
    last axis): ``sum_rightmost(log_det, log_det.ndim - draw axes)`` is the site's total."""

    value: Any
    log_det: Any


@dataclass(frozen=True)
class JointQ:
    """q(z) from q_u, a distribution over u (event shape (d,)), and the sites u is split into."""

    u: Any
    sites: tuple[Site, ...]
    ops: ArrayOps

    def _transform(self, site: Site) -> Any:
        return self.ops.biject_to(constraint(site, self.ops))

    def split(self, u: Any) -> dict[str, SiteValue]:
        """Every site's value and log-Jacobian at u (shape (*draw axes, d))."""
        lead, out = tuple(u.shape[:-1]), {}
        for site, start, stop in blocks(self.sites):
            chunk = u[..., start:stop].reshape((*lead, *unconstrained_shape(site)))
            transform = self._transform(site)
            value = transform(chunk)
            out[site.name] = SiteValue(value, transform.log_abs_det_jacobian(chunk, value))
        return out

    def log_q_at(self, u: Any) -> Any:
        """log q(z) at z = T(u): log q_u(u) - sum_site log |det dT_site/du_site|, shape u.shape[:-1]."""
        draw_axes = u.ndim - 1
        log_q = self.u.log_prob(u)
        for value in self.split(u).values():
            log_q = log_q - sum_rightmost(value.log_det, value.log_det.ndim - draw_axes)
        return log_q

    def unconstrain(self, latents: Mapping[str, Any], n: int) -> Any:
        """u = concat_site T_site^-1(z_site), shape (n, d), for n constrained draws (each (n, *shape))."""
        parts = [
            self._transform(site).inv(latents[site.name]).reshape((n, stop - start))
            for site, start, stop in blocks(self.sites)
        ]
        return self.ops.concatenate(parts)


def draw_with_log_q(q: Mapping[str, Any] | JointQ, key: Any, n: int) -> tuple[dict[str, Any], Any]:
    """n reparameterized draws z ~ q and log q(z), shape (n,), in JAX (the hand-rolled ELBO's):
    per site for a q given per site (one key each), through one draw of u for a ``JointQ``."""
    import jax

    if isinstance(q, JointQ):
        u = q.u.sample(key, (n,))
        return {name: site.value for name, site in q.split(u).items()}, q.log_q_at(u)
    keys = jax.random.split(key, len(q))
    z = {name: dist.sample(k, (n,)) for (name, dist), k in zip(q.items(), keys, strict=True)}
    return z, sum(dist.log_prob(z[name]) for name, dist in q.items())
