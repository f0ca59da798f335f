"""A user model's latent sites, read from one trace of it (NumPyro's or Pyro's handlers).

Each latent (unobserved) sample site becomes a ``Site``: its name, the shape of its value (plate
axes included) and its support, read from the site's distribution:

    real, real_vector            -> "real"
    positive, nonnegative        -> "positive"   (greater_than(0), greater_than_eq(0): HalfNormal's)
    unit_interval, interval(0,1) -> "unit_interval"
    simplex                      -> "simplex"

A latent site sampled inside a plate (``with numpyro.plate("J", 8): theta = sample(...)``) is a site
of the plate's shape; every guide family takes it (the suite's own sample it in the model's plates,
``guides.plates``).
Anything else (discrete sites, other intervals, matrices with constraints such as Cholesky factors,
``param`` sites) cannot be checked: the NUTS reference and the guides need continuous latents on one
of these supports. Such a site, a model that fails to trace and a data name the model reads but the
data lack are each one problem naming the site or key and what is valid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ppl_suite.checking.sources import InputProblem, closest
from ppl_suite.spec import Site

LIBRARIES = ("numpyro", "pyro")
VALID_SUPPORTS = "real, positive, unit interval (0, 1), simplex"


class _ReadData(dict):
    """The data, remembering the names the model asked for and did not find."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        super().__init__(data)
        self.missing: list[str] = []

    def __missing__(self, key: str) -> Any:
        self.missing.append(key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:  # a .get of an absent name is a read too
        if key not in self:
            self.missing.append(key)
        return super().get(key, default)


def library_of(function: Callable[..., Any]) -> str | None:
    """``numpyro`` or ``pyro``: the library the function's module imports, None when not exactly one."""
    found = set()
    for value in getattr(function, "__globals__", {}).values():
        name = (
            getattr(value, "__name__", "") if hasattr(value, "__spec__") else getattr(value, "__module__", "")
        )
        top = (name or "").partition(".")[0]
        if top in LIBRARIES:
            found.add(top)
    return found.pop() if len(found) == 1 else None


def support_of(constraint: Any) -> str | None:
    """The suite's support of a NumPyro or torch constraint (module docstring), None when it has none."""
    while hasattr(constraint, "base_constraint"):  # independent(...) / real_vector: the base's support
        constraint = constraint.base_constraint
    if getattr(constraint, "is_discrete", False):
        return None
    kind = type(constraint).__name__.lstrip("_")
    low = float(np.asarray(getattr(constraint, "lower_bound", np.nan)).max(initial=-np.inf))
    high = float(np.asarray(getattr(constraint, "upper_bound", np.nan)).min(initial=np.inf))
    if kind == "Real":
        return "real"
    if kind in ("Positive", "Nonnegative") or (kind in ("GreaterThan", "GreaterThanEq") and low == 0.0):
        return "positive"
    if kind in ("UnitInterval", "Interval") and low == 0.0 and high == 1.0:
        return "unit_interval"
    if kind == "Simplex":
        return "simplex"
    return None


def _numpyro_trace(
    model: Callable[..., Any], data: Mapping[str, Any], params: Mapping[str, Any]
) -> list[dict]:
    import jax
    from numpyro.handlers import seed, trace

    sites = trace(seed(model, jax.random.PRNGKey(0))).get_trace(data, dict(params))
    return [
        {
            "name": name,
            "type": site["type"],
            "observed": site.get("is_observed", False),
            "value": np.asarray(site["value"]),
            "fn": site.get("fn"),
            "plates": [frame.name for frame in site.get("cond_indep_stack", [])],
            "scale": site.get("scale"),
        }
        for name, site in sites.items()
    ]


def _pyro_trace(model: Callable[..., Any], data: Mapping[str, Any], params: Mapping[str, Any]) -> list[dict]:
    import pyro
    import pyro.poutine as poutine
    import torch
    from pyro.poutine.util import site_is_subsample

    from ppl_suite.backends.pyro import as_torch

    tracked = _ReadData(as_torch(data))
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # as the Pyro backend runs it: priors in float64, as the data
    try:
        with pyro.get_param_store().scope():
            pyro.get_param_store().clear()
            sites = poutine.trace(model).get_trace(tracked, as_torch(dict(params)))
    finally:
        torch.set_default_dtype(previous)
        if isinstance(data, _ReadData):
            data.missing += tracked.missing
    return [
        {
            "name": name,
            "type": site["type"],
            "observed": site.get("is_observed", False),
            "value": np.asarray(site["value"].detach()),
            "fn": site.get("fn"),
            "plates": [frame.name for frame in site.get("cond_indep_stack", [])],
            "scale": site.get("scale"),
        }
        for name, site in sites.nodes.items()
        if site["type"] in ("sample", "param") and not site_is_subsample(site)
    ]


def trace_program(
    function: Callable[..., Any], library: str, data: Mapping[str, Any], params: Mapping[str, Any], what: str
) -> list[dict]:
    """The sites of one trace of a ``function(data, params)`` of ``library`` (a model or a guide), each
    a dict of name, type, observed, value, fn and plates; raises InputProblem naming the data keys the
    function reads and the data lack, or the error it fails with."""
    tracked = _ReadData(data)
    tracer = _numpyro_trace if library == "numpyro" else _pyro_trace
    try:
        return tracer(function, tracked, params)
    except Exception as error:
        if tracked.missing:
            names = ", ".join(f"{name!r}{closest(name, data)}" for name in dict.fromkeys(tracked.missing))
            raise InputProblem(
                f"{what} reads data {names}, which the data lack; the data have: "
                f"{', '.join(sorted(data)) or 'nothing'}"
            ) from None
        raise InputProblem(f"{what} fails to trace: {type(error).__name__}: {error}") from None


def trace_sites(
    model: Callable[..., Any],
    library: str,
    data: Mapping[str, Any],
    params: Mapping[str, Any],
    what: str,
) -> tuple[Site, ...]:
    """The latent sites of one trace of ``model`` (a ``model(data, params)`` of ``library``); raises
    InputProblem naming every site or data key that cannot be handled."""
    traced = trace_program(model, library, data, params, what)
    problems, sites = [], []
    for site in traced:
        if site["type"] == "param":
            problems.append(
                f"{what}: param site {site['name']!r}: learned model parameters are not checked; "
                "make it a latent sample site with a prior"
            )
            continue
        if site["type"] == "sample" and site["scale"] is not None and np.any(np.asarray(site["scale"]) != 1):
            problems.append(
                f"{what}: site {site['name']!r} is scaled (plate {', '.join(map(repr, site['plates']))}): "
                "subsampled plates are not supported; give every plate its whole size"
            )
            continue
        if site["type"] != "sample" or site["observed"]:
            continue
        distribution = site["fn"]
        support = support_of(distribution.support)
        if support is None:
            kind = "a discrete" if getattr(distribution.support, "is_discrete", False) else "an unsupported"
            problems.append(
                f"{what}: latent site {site['name']!r} ({type(distribution).__name__}) has {kind} support "
                f"{distribution.support}; valid: {VALID_SUPPORTS} "
                "(marginalize discrete sites out of the model)"
            )
            continue
        sites.append(Site(site["name"], tuple(site["value"].shape), support))
    if not sites and not problems:
        problems.append(f"{what} has no latent sample site: there is nothing to infer")
    if problems:
        raise InputProblem(*problems)
    return tuple(sites)
