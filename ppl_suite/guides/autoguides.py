"""The libraries' own autoguides as guide families, each fitted and rendered by the library that owns it.

Pyro (``pyro.infer.autoguide``) and NumPyro (``numpyro.infer.autoguide``) build these guides from the
model's trace. All but ``AutoNormal`` are ``AutoContinuous`` guides: the latent sites, each mapped to
R^d_site by the bijection of its support (u_site = T_site^-1(z_site)), are concatenated into one vector
u in R^d, and q_u is a distribution on u:

    AutoNormal, AutoDiagonalNormal   N(loc, diag(scale)^2)  (AutoNormal: one loc and scale per site)
    AutoMultivariateNormal           N(loc, L L^T), L lower-triangular
    AutoLowRankMultivariateNormal    N(loc, W W^T + diag(D)), W of rank about sqrt(d)
    AutoLaplaceApproximation         MAP of log p(x, T(u)) + log|det dT/du| by SVI, then
                                     N(u_MAP, H^-1), H the Hessian of the negative there
    AutoIAFNormal                    N(0, I) pushed through inverse autoregressive flows
                                     (Kingma et al., 2016, "Improved variational inference with
                                     inverse autoregressive flow")

and log q(z) = log q_u(u) - sum_sites log|det dT_site/du_site| at u = T^-1(z) (Kucukelbir et al., 2017,
"Automatic differentiation variational inference").

Each class comes as two families:

- ``auto_normal`` (and so on): the library's own defaults. Pyro starts ``AutoNormal`` at
  ``init_to_feasible`` and the ``AutoContinuous`` guides at ``init_to_median`` (the median of 15 prior
  draws); NumPyro starts every guide at ``init_to_uniform`` (u uniform in (-2, 2)); both use
  init_scale 0.1. The flows differ in architecture: Pyro one affine autoregressive transform with one
  ReLU hidden layer of 3d + 1 units, NumPyro three with two ELU layers of d units.
- ``auto_normal_matched``: the same start in both libraries: ``init_to_feasible`` (u = 0 at every
  site, z = T(0): the start of the suite's own families) and init_scale 0.1 (``mean_field.INIT_SCALE``);
  the low-rank factor starts at zero in both (Pyro draws it at random by default); the flows share one
  architecture (one transform, one ReLU layer of 3d + 1 units), their weights drawn by each
  library's own initializer. Where the two libraries still disagree from this start, the difference is
  the algorithm (parametrization, transforms), not the defaults.

Two names rather than a setting: a cell is (model, backend, guide, seed), so both variants run side
by side in one matrix, are cached, stored and reported like any family, and ``--guides auto_normal
auto_normal_matched`` compares them with no new configuration axis.

Parameters. A library creates its guide's parameters itself, at the first step, so there is no
suite-side phi_0 (``init_params`` is empty). The fitted phi is the library's own parameter set, each
name prefixed by the library: ``pyro.<key>`` for every entry of the guide module's ``state_dict``
(unconstrained values, buffers included, e.g. the flow's permutation), ``numpyro.<name>`` for every
parameter of ``SVI.get_params`` (constrained values; a pytree parameter, the flow's network, as
``numpyro.<name>.<i>`` for its i-th leaf). ``(family, phi)`` rebuilds the fitted guide
(``ppl_suite.targets.autoguide_density``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ppl_suite.guides.base import unconstrained_shape
from ppl_suite.guides.mean_field import INIT_SCALE
from ppl_suite.spec import Data, Params, Site

LIBRARIES = ("pyro", "numpyro")
MODULES = {"pyro": "pyro.infer.autoguide", "numpyro": "numpyro.infer.autoguide"}
INIT_MODULES = {"pyro": "pyro.infer.autoguide.initialization", "numpyro": "numpyro.infer.initialization"}
FLOWS = ("AutoIAFNormal",)
LAPLACE = "AutoLaplaceApproximation"
LOW_RANK = "AutoLowRankMultivariateNormal"
WITHOUT_INIT_SCALE = (LAPLACE, *FLOWS)


def latent_dim(sites: tuple[Site, ...]) -> int:
    """d: the number of unconstrained coordinates of all sites together."""
    return sum(int(np.prod(unconstrained_shape(s), dtype=int)) for s in sites)


def library_of(phi: dict[str, Any]) -> str:
    """The library that fitted an autoguide's phi (the prefix shared by its names)."""
    found = {name.split(".", 1)[0] for name in phi}
    if len(found) != 1 or not found <= set(LIBRARIES):
        raise ValueError(
            f"autoguide parameters must all be named '<library>.<name>' with one library of "
            f"{', '.join(LIBRARIES)}; got prefixes {sorted(found)}"
        )
    return found.pop()


@dataclass(frozen=True)
class FlatPosterior:
    """q_u of a fitted AutoContinuous guide on the flat unconstrained vector u, NumPy in and out:
    ``order`` the sites in the library's packing order, ``sample(seed, n)`` (n, d) draws,
    ``log_prob(u)`` (n,) densities of u (n, d)."""

    order: tuple[str, ...]
    sample: Callable[[int, int], np.ndarray]
    log_prob: Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class AutoGuide:
    """One library autoguide class with one initialization (see the module docstring)."""

    name: str
    description: str
    cls: str  # the class name, the same in both libraries
    matched: bool
    elbo: str = "trace"

    def unsupported(self, sites: tuple[Site, ...]) -> str | None:
        discrete = [s.name for s in sites if s.support == "integer"]
        if discrete:
            return f"discrete sites {discrete}: the libraries' autoguides need continuous latents"
        if self.cls in FLOWS and latent_dim(sites) < 2:
            return (
                "an autoregressive flow needs at least 2 unconstrained coordinates "
                "(NumPyro's AutoIAFNormal refuses latent_dim = 1)"
            )
        return None

    def init_params(self, sites: tuple[Site, ...], data: Data, params: Params) -> dict[str, np.ndarray]:
        """None on the suite's side: the library creates and initializes its guide's parameters."""
        return {}

    def build(self, library: str, model: Callable, sites: tuple[Site, ...]) -> Any:
        """The library's autoguide of ``model`` with this family's initialization."""
        module = importlib.import_module(MODULES[library])
        return getattr(module, self.cls)(model, **self.settings(library, sites))

    def settings(self, library: str, sites: tuple[Site, ...]) -> dict[str, Any]:
        """Constructor arguments: none for the library's defaults; the matched start otherwise."""
        if not self.matched:
            return {}
        d = latent_dim(sites)
        if self.cls in FLOWS:
            if library == "pyro":
                return {"hidden_dim": [3 * d + 1], "num_transforms": 1}
            from jax.example_libraries import stax

            return {"hidden_dims": [3 * d + 1], "num_flows": 1, "nonlinearity": stax.Relu}
        init = importlib.import_module(INIT_MODULES[library]).init_to_feasible
        scale = {} if self.cls in WITHOUT_INIT_SCALE else {"init_scale": INIT_SCALE}
        rank = {"rank": round(d**0.5)} if self.cls == LOW_RANK else {}
        return {"init_loc_fn": init, **scale, **rank}


# class name: (family name, what q is)
CLASSES = {
    "AutoNormal": ("auto_normal", "independent Normal per unconstrained coordinate, per-site parameters"),
    "AutoDiagonalNormal": ("auto_diagonal_normal", "independent Normal over the packed unconstrained vector"),
    "AutoMultivariateNormal": ("auto_multivariate_normal", "full-covariance Normal over the packed vector"),
    "AutoLowRankMultivariateNormal": (
        "auto_low_rank_multivariate_normal",
        "low-rank plus diagonal covariance Normal over the packed vector",
    ),
    "AutoLaplaceApproximation": (
        "auto_laplace_approximation",
        "MAP by SVI, then the Laplace Normal (inverse Hessian) at the MAP",
    ),
    "AutoIAFNormal": ("auto_iaf_normal", "standard Normal through inverse autoregressive flows"),
}

AUTOGUIDES: tuple[AutoGuide, ...] = tuple(
    AutoGuide(
        name=name + ("_matched" if matched else ""),
        description=f"the libraries' {cls}: {what} ("
        + ("initialization matched across libraries" if matched else "each library's defaults")
        + ")",
        cls=cls,
        matched=matched,
    )
    for cls, (name, what) in CLASSES.items()
    for matched in (False, True)
)


def autoguide_names(*, flows: bool = True, laplace: bool = True) -> tuple[str, ...]:
    """The autoguide families a model declares after its own: all of them, less the flows (for a model
    with one unconstrained coordinate) or the Laplace family (where the MAP does not exist) if asked."""
    left_out = (() if flows else FLOWS) + (() if laplace else (LAPLACE,))
    return tuple(g.name for g in AUTOGUIDES if g.cls not in left_out)


@dataclass(frozen=True)
class GuideProgram(AutoGuide):
    """A guide written as a program of a library (a user's own guide): the library fits it as it
    stands, like an autoguide, and its density is read from the library's trace of it
    (``targets.autoguide_density``): log q(z) = sum over the guide's sample sites of log q(z_site | ...)
    with its fitted parameters substituted.

    ``programs`` holds ``(library, guide)`` pairs, each ``guide(data, params)`` (one per library it is
    written for: a NumPyro guide is fitted by the numpyro backend only). Its parameters are the
    guide's ``param`` sites, stored constrained (their values as the program reads them), named
    ``numpyro.<name>`` or ``pyro.<name>`` as for the autoguides.
    """

    cls: str = "GuideProgram"
    matched: bool = False
    programs: tuple[tuple[str, Callable], ...] = ()

    def unsupported(self, sites: tuple[Site, ...]) -> str | None:
        discrete = [s.name for s in sites if s.support == "integer"]
        return f"discrete sites {discrete}: a guide program is fitted by Trace_ELBO" if discrete else None

    def program(self, library: str) -> Callable:
        """The guide ``guide(data, params)`` written for ``library``."""
        found = dict(self.programs)
        if library not in found:
            raise ValueError(
                f"guide {self.name!r} is written for {', '.join(found) or 'no library'}, not {library}"
            )
        return found[library]

    def build(self, library: str, model: Callable, sites: tuple[Site, ...]) -> Any:
        """The program as the backend drives an autoguide: NumPyro's as it is, Pyro's wrapped
        (``PyroGuideProgram``)."""
        program = self.program(library)
        return PyroGuideProgram(program) if library == "pyro" else program


class PyroGuideProgram:
    """A Pyro guide function with what the Pyro backend asks of an autoguide module: called as
    ``guide(data, params)``; ``parameters()`` its trainable tensors outside Pyro's param store (none:
    its ``pyro.param`` sites live in the store, which the backend optimizes); ``state_dict()`` its
    parameters' constrained values by name (read from the store, names found by tracing the first
    call)."""

    def __init__(self, function: Callable) -> None:
        self.function = function
        self.names: tuple[str, ...] | None = None

    def __call__(self, *args: Any) -> Any:
        if self.names is not None:
            return self.function(*args)
        from pyro import poutine

        traced = poutine.trace(self.function).get_trace(*args)
        self.names = tuple(name for name, site in traced.nodes.items() if site["type"] == "param")
        return traced.nodes["_RETURN"]["value"]

    def parameters(self) -> list[Any]:
        return []

    def state_dict(self) -> dict[str, Any]:
        import pyro

        return {name: pyro.get_param_store()[name] for name in self.names or ()}
