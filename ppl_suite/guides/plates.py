"""Where a guide program samples each latent site: inside the plates the model samples it in.

A suite family gives q(z_site) as one distribution over the whole site, plate axes included
(``GuideFamily.distributions``): mean_field one loc and scale per element, full_rank one joint
Gaussian over every unconstrained coordinate of the site. A model that samples a site inside plates
(``with plate("J", 8): theta = sample("theta", Normal(mu, tau))``) reads its value with the plates'
axes as batch axes, so the guide must sample it inside the same plates. A joint q cannot be split
over plate elements, so a plated site is sampled in two steps, as Pyro's and NumPyro's
AutoContinuous guides do:

    z ~ q(z_site)                                  auxiliary site "_<site>.joint", outside every plate
    sample(site, Delta(z, event_dim = e_site))     inside the site's plates, e_site its model event dims

The Delta's log density is 0 at z, so the guide's log q(z) is the auxiliary site's, counted once: no
plate scales it (a subsampled plate would, and is refused: the families hold one parameter per
element of the whole plate). Under Pyro's vectorized particles the auxiliary draw carries the
particle axis and one axis of size 1 per plate on its left; it is reshaped to the model's layout
(particles, then the site's shape, its plate axes in the plates' positions).

Discrete local sites (``base.plated_sites``) are sampled per point in the data plate instead: the
libraries enumerate them there.

A family that correlates sites gives one ``JointQ`` (``guides.joint``): as in the libraries'
AutoContinuous, u is drawn once at the auxiliary site "_joint" outside every plate, and each site is

    sample(site, Delta(T_site(u_site), log_density = -log |det dT_site/du_site|, event_dim = e_site))

inside its plates, the log density per element of the plates (summed over the site's event dims), so
the guide's log q(z) = log q_u(u) - sum_site log |det dT_site/du_site| (the sign of Pyro's and
NumPyro's ``AutoContinuous.__call__``). A site outside every plate takes its whole shape as event.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from ppl_suite.guides.base import ArrayOps, per_point, plated_sites
from ppl_suite.guides.joint import JOINT_SITE, JointQ, sum_rightmost
from ppl_suite.spec import LOCAL_PLATE, Site


@dataclass(frozen=True)
class Plate:
    """One plate a site is sampled in: its name, size and (negative) batch dimension."""

    name: str
    size: int
    dim: int


@dataclass(frozen=True)
class SitePlates:
    """The plates of one latent site (outermost first) and its event dimensions in the model."""

    plates: tuple[Plate, ...]
    event_dim: int


def auxiliary_name(site: str) -> str:
    """The guide-only site holding the joint draw of a plated site."""
    return f"_{site}.joint"


def read_plates(nodes: Iterable[tuple[str, Mapping[str, Any]]], what: str) -> dict[str, SitePlates]:
    """The plates of every latent sample site of one model trace (Pyro's ``trace.nodes.items()`` or
    NumPyro's ``trace.items()``: both give ``type``, ``is_observed``, ``fn``, ``cond_indep_stack`` and
    ``scale``). Raises ValueError naming each site in a subsampled or sequential plate."""
    found, problems = {}, []
    for name, site in nodes:
        if site["type"] != "sample" or type(site["fn"]).__name__ == "_Subsample":  # Pyro's plate sites
            continue
        frames = tuple(site.get("cond_indep_stack", ()))
        scale = site.get("scale")
        if scale is not None and not np.all(np.asarray(scale) == 1.0):
            plates = ", ".join(repr(f.name) for f in frames) or "no plate"
            problems.append(
                f"site {name!r} is scaled (in {plates}): subsampled plates are not supported; "
                "give every plate its whole size (no subsample or subsample_size)"
            )
        sequential = [f.name for f in frames if f.dim is None]
        if sequential:
            problems.append(
                f"site {name!r} is in sequential plate {', '.join(map(repr, sequential))}: "
                "give the plate a vectorized form (with plate(...) as a context)"
            )
        if site.get("is_observed"):
            continue
        plates = tuple(Plate(f.name, int(f.size), int(f.dim)) for f in frames if f.dim is not None)
        found[name] = SitePlates(tuple(sorted(plates, key=lambda p: p.dim)), int(site["fn"].event_dim))
    if problems:
        raise ValueError(f"{what}: " + "; ".join(problems))
    return found


def model_layout(site: Site, value_shape: tuple[int, ...], event_dim: int) -> tuple[int, ...]:
    """The shape a joint draw of ``site`` (``value_shape``: draw axes on the left of the site's shape)
    takes in the model: draw axes first, then the site's shape, its batch axes under their plates.

        broadcast(site shape, lead + (1,) * event_dim),   lead = the draw axes (size-1 plate axes)
    """
    lead = value_shape[: len(value_shape) - len(site.shape)]
    return np.broadcast_shapes(site.shape, (*lead, *(1,) * event_dim))


def _in_plates(ppl: ModuleType, plates: Mapping[Plate, Any], where: SitePlates, name: str, fn: Any) -> Any:
    with contextlib.ExitStack() as stack:
        for plate in where.plates:
            stack.enter_context(plates[plate])
        return ppl.sample(name, fn)


def _sample_joint(
    ppl: ModuleType, q: JointQ, layout: Mapping[str, SitePlates], plates: Mapping[Plate, Any]
) -> None:
    """u at the auxiliary site, then each site as a Delta with its -log |det J| (module docstring)."""
    u = ppl.sample(JOINT_SITE, q.u, infer={"is_auxiliary": True})
    for site, (value, log_det) in zip(q.sites, q.split(u).values(), strict=True):
        where = layout.get(site.name)
        if where is None or not where.plates:
            log_density = -sum_rightmost(log_det, log_det.ndim - value.ndim + len(site.shape))
            ppl.sample(site.name, q.ops.dist.Delta(value, log_density=log_density, event_dim=len(site.shape)))
            continue
        shape = model_layout(site, tuple(value.shape), where.event_dim)
        batch_shape = shape[: len(shape) - where.event_dim]
        log_density = -sum_rightmost(log_det, log_det.ndim - value.ndim + where.event_dim)
        delta = q.ops.dist.Delta(
            value.reshape(shape), log_density=log_density.reshape(batch_shape), event_dim=where.event_dim
        )
        _in_plates(ppl, plates, where, site.name, delta)


def sample_sites(
    ppl: ModuleType,
    ops: ArrayOps,
    q: Mapping[str, Any] | JointQ,
    sites: tuple[Site, ...],
    layout: Mapping[str, SitePlates],
) -> None:
    """Sample every site of a guide family's ``q`` with ``ppl`` (``pyro`` or ``numpyro``): outside
    plates where the model samples the site outside them, through a joint auxiliary draw where it
    samples it in plates, per point in the data plate for a discrete local site; a joint q through
    one draw of u for all sites (module docstring)."""
    by_name, discrete = {s.name: s for s in sites}, plated_sites(sites)
    used = {p for name in by_name if name in layout and name not in discrete for p in layout[name].plates}
    plates = {p: ppl.plate(p.name, p.size, dim=p.dim) for p in sorted(used, key=lambda p: p.dim)}  # once each
    if isinstance(q, JointQ):
        _sample_joint(ppl, q, layout, plates)
        return
    for name, q_site in q.items():
        where = layout.get(name)
        if name in discrete:
            with ppl.plate(LOCAL_PLATE, discrete[name].shape[0]):
                ppl.sample(name, per_point(q_site, ops))
        elif where is None or not where.plates:
            ppl.sample(name, q_site)
        else:
            joint = ppl.sample(auxiliary_name(name), q_site, infer={"is_auxiliary": True})
            value = joint.reshape(model_layout(by_name[name], tuple(joint.shape), where.event_dim))
            _in_plates(ppl, plates, where, name, ops.dist.Delta(value, event_dim=where.event_dim))
