"""What each shipped backend can fit, answered without importing its library: the reasons a cell is
skipped at expansion (``BackendInfo.unsupported``), so that validating a config or a rerun of stored
cells imports no torch, Pyro or JAX. Each backend's ``unsupported`` method says the same (it calls
these)."""

from __future__ import annotations

from ppl_suite import guides
from ppl_suite.backends.base import unsupported_reason
from ppl_suite.spec import ModelSpec, Site


def pyro(spec: ModelSpec, sites: tuple[Site, ...], guide: str) -> str | None:
    """Pyro fits any declared guide of a model with a Pyro implementation."""
    return unsupported_reason(spec, sites, guide, "pyro")


def numpyro(spec: ModelSpec, sites: tuple[Site, ...], guide: str) -> str | None:
    """NumPyro fits any declared guide of a model with a NumPyro implementation."""
    return unsupported_reason(spec, sites, guide, "numpyro")


def handrolled(spec: ModelSpec, sites: tuple[Site, ...], guide: str) -> str | None:
    """The hand-rolled backend fits the suite's own pathwise families of continuous latents."""
    if guides.is_autoguide(guide):
        return (
            f"guide {guide!r} is a library autoguide: Pyro or NumPyro builds, fits and renders it; "
            "the hand-rolled backend fits the suite's own families"
        )
    if guides.get(guide).elbo != "trace":
        return (
            f"guide {guide!r} is trained with TraceEnum_ELBO (enumeration or score-function "
            "gradients of discrete latents); the hand-rolled ELBO is pathwise only"
        )
    if any(site.support == "integer" for site in sites):
        return "discrete latents have no reparameterized (pathwise) gradient"
    return unsupported_reason(spec, sites, guide, "numpyro")
