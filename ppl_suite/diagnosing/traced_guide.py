"""q from a user's fitted guide and its parameters, as a GuideDensity: draws and their log densities
read from the guide's own trace, whichever guide it is (a hand-written one with ``param`` sites, or a
library autoguide: AutoNormal, AutoMultivariateNormal, AutoLowRankMultivariateNormal...).

For one run of the guide with its fitted parameters phi substituted for its ``param`` sites,

    log q(z) = sum over the guide's sample sites of log q(site value | earlier sites; phi)

where an autoguide's latent sites are deterministic functions of its auxiliary draw u (z = T(u),
``Delta`` sites whose ``log_density`` is -log |det dT/du|), so the sum is log q_u(u) - log |det dT/du|
= log q(z) (Kucukelbir et al. 2017, "Automatic differentiation variational inference"). The density is
therefore known at the guide's own draws, which is all the ELBO, importance sampling, PSIS and the
moment errors ask for: ``log_q(latents)`` answers for latents this guide drew (a digest of their
bytes finds them) and refuses any other point.

NumPyro's guide runs under ``numpyro.infer.util.log_density`` (parameters substituted), vectorized
over draws with ``jax.vmap`` and compiled once; Pyro's runs once per draw (a guide written for one
draw stays correct) on a copy of the guide, under a scoped, emptied parameter store loaded with the
given parameters (a ``ParamStoreDict`` keeps its constraints, and other fits' parameters in it are
ignored; a dict of tensors takes the guide's constraints),
a forked and seeded torch generator, so the user's guide and store are left as they were.

A guide that cannot be a density is refused before anything runs: a point mass (``AutoDelta``, a
``Delta`` latent site with no auxiliary draw behind it), parameters the guide does not use or lacks,
or latent sites the guide does not sample as the model does.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ppl_suite.errors import InputProblem
from ppl_suite.spec import DistSpec, Latents, Site

Draw = Callable[[int, int], tuple[Latents, np.ndarray]]  # (seed, n) -> (latents, log q)
POINT_MASS = (
    "q is a point mass (MAP), which has no density: the ELBO, KL(q || p) and k-hat are undefined for it; "
    "fit a guide with a spread (AutoNormal, AutoMultivariateNormal) to diagnose"
)


def _digest(latents: Latents, names: list[str]) -> str:
    digest = hashlib.sha256()
    for name in names:
        digest.update(np.ascontiguousarray(latents[name], dtype=np.float64).tobytes())
    return digest.hexdigest()


@dataclass
class TracedGuide:
    """A GuideDensity whose log q is read from the trace that drew each point (module docstring)."""

    family: str
    params: dict[str, np.ndarray]
    sites: tuple[Site, ...]
    draw: Draw
    _drawn: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def samples_nothing(self) -> bool:
        return False

    def sample(self, seed: int, n: int) -> Latents:
        """n independent draws z ~ q; the same seed gives the same draws."""
        latents, log_q = self.draw(seed, n)
        latents = {
            s.name: np.asarray(latents[s.name], dtype=np.float64).reshape(n, *s.shape) for s in self.sites
        }
        self._drawn[_digest(latents, [s.name for s in self.sites])] = np.asarray(log_q, dtype=np.float64)
        return latents

    def log_q(self, latents: Latents) -> np.ndarray:
        """log q(z) of a batch this guide drew, shape (n,)."""
        found = self._drawn.get(_digest(latents, [s.name for s in self.sites]))
        if found is None:
            raise ValueError(
                f"guide {self.family!r}: log q is read from the trace that drew z, and these latents were "
                "not drawn by this guide"
            )
        return found

    def kl_to(self, factors: dict[str, DistSpec]) -> float | None:
        """None: no closed form is taken from a user's guide (KL by the identity)."""
        return None


def _site_problems(
    guide_name: str, sampled: dict[str, tuple[tuple[int, ...], bool, bool]], sites: tuple[Site, ...]
) -> list[str]:
    """One problem per latent site the guide lacks or samples with another shape, per guide site the
    model lacks, and per point-mass latent site. ``sampled``: name -> (shape, is Delta, is auxiliary)."""
    latent = {s.name: s.shape for s in sites}
    auxiliary = any(aux for _, _, aux in sampled.values())
    problems = [
        f"guide {guide_name} does not sample the model's latent site {name!r}; it samples "
        f"{', '.join(n for n, v in sampled.items() if not v[2]) or 'nothing'}"
        for name in latent
        if name not in sampled
    ]
    problems += [
        f"guide {guide_name} samples {name!r}, which is not a latent site of the model (the model's: "
        f"{', '.join(latent)}); is it the guide of this model?"
        for name, (_, _, aux) in sampled.items()
        if name not in latent and not aux
    ]
    problems += [
        f"guide {guide_name} samples {name!r} with shape {sampled[name][0]}; the model's has shape {shape}"
        for name, shape in latent.items()
        if name in sampled and tuple(sampled[name][0]) != tuple(shape)
    ]
    point = [name for name in latent if name in sampled and sampled[name][1] and not auxiliary]
    if point:
        problems.append(f"guide {guide_name}: sites {', '.join(map(repr, point))}: {POINT_MASS}")
    return problems


def _param_problems(guide_name: str, used: dict[str, tuple], given: dict[str, tuple]) -> list[str]:
    """One problem per parameter the guide uses and ``params`` lacks, per one it does not use, and per
    shape that differs."""
    problems = []
    missing = [name for name in used if name not in given]
    if missing:
        problems.append(
            f"params lack the guide's parameters {', '.join(map(repr, missing))} (params have "
            f"{', '.join(map(repr, given)) or 'nothing'}): pass the fitted parameters of this guide "
            "(SVIRunResult.params, svi.get_params(state), or Pyro's param store)"
        )
    unused = [name for name in given if name not in used]
    if unused:
        problems.append(
            f"params {', '.join(map(repr, unused))} are not parameters of guide {guide_name} (its "
            f"parameters: {', '.join(map(repr, used)) or 'none'}): were they fitted with another guide?"
        )
    problems += [
        f"param {name!r} has shape {given[name]}; guide {guide_name} uses shape {shape}"
        for name, shape in used.items()
        if name in given and tuple(given[name]) != tuple(shape)
    ]
    return problems


def _is_point_guide(guide: Any) -> bool:
    return any(cls.__name__ == "AutoDelta" for cls in type(guide).__mro__)


def guide_name(guide: Any) -> str:
    return getattr(guide, "__name__", None) or type(guide).__name__


def numpyro_guide(
    guide: Any, params: Mapping[str, Any], args: tuple, kwargs: Mapping[str, Any], sites: tuple[Site, ...]
) -> TracedGuide:
    """A NumPyro guide with its fitted ``params`` (constrained values, as ``SVIRunResult.params``)."""
    import jax
    import jax.numpy as jnp
    from numpyro import handlers
    from numpyro.infer.util import log_density

    from ppl_suite.numerics import enable_float64

    enable_float64()
    name = guide_name(guide)
    if _is_point_guide(guide):
        raise InputProblem(f"guide {name}: {POINT_MASS}")
    values = {k: jnp.asarray(np.asarray(v)) for k, v in params.items()}
    try:
        traced = handlers.trace(handlers.seed(guide, 0)).get_trace(*args, **kwargs)
    except Exception as error:
        raise InputProblem(
            f"guide {name} fails to run on the model's arguments: {type(error).__name__}: {error}"
        ) from None
    used = {k: tuple(np.shape(s["value"])) for k, s in traced.items() if s["type"] == "param"}
    problems = _param_problems(name, used, {k: tuple(np.shape(v)) for k, v in values.items()})
    sampled = {
        k: (
            tuple(np.shape(s["value"])),
            type(s["fn"]).__name__ == "Delta",
            bool(s["infer"].get("is_auxiliary")),
        )
        for k, s in traced.items()
        if s["type"] == "sample" and not s.get("is_observed", False)
    }
    problems += _site_problems(name, sampled, sites)
    if problems:
        raise InputProblem(*problems)
    names = [s.name for s in sites]

    def one(key):
        log_q, found = log_density(handlers.seed(guide, key), args, kwargs, values)
        return {n: found[n]["value"] for n in names}, log_q

    program = jax.jit(lambda key, n: jax.vmap(one)(jax.random.split(key, n)), static_argnums=1)

    def draw(seed: int, n: int) -> tuple[Latents, np.ndarray]:
        latents, log_q = program(jax.random.PRNGKey(seed), n)
        return {k: np.asarray(v) for k, v in latents.items()}, np.asarray(log_q)

    return TracedGuide(name, {k: np.asarray(v) for k, v in values.items()}, sites, draw)


def _pyro_given(params: Any, store: Any) -> tuple[dict | None, dict[str, Any]]:
    """A ParamStoreDict's state (None for a dict of tensors) and the given values as float64 tensors."""
    import torch

    if isinstance(params, type(store)):
        state, given = params.get_state(), {k: v.detach().clone() for k, v in params.items()}
    else:
        state = None
        given = {k: torch.as_tensor(np.asarray(v) if not torch.is_tensor(v) else v.detach()).clone()
                 for k, v in dict(params).items()}  # fmt: skip
    return state, {k: v.to(torch.float64) if v.is_floating_point() else v for k, v in given.items()}


def _pyro_trace(guide: Any, name: str, args: tuple, kwargs: Mapping[str, Any], store: Any) -> Any:
    """One trace of the guide under a scoped, emptied store and a forked torch generator seeded 0."""
    import torch
    from pyro import poutine

    with store.scope(), torch.random.fork_rng(devices=[]), torch.no_grad():
        store.clear()
        torch.manual_seed(0)
        try:
            return poutine.trace(guide).get_trace(*args, **kwargs)
        except Exception as error:
            raise InputProblem(
                f"guide {name} fails to run on the model's arguments: {type(error).__name__}: {error}"
            ) from None


def _pyro_sampled(traced: Any) -> dict[str, tuple[tuple[int, ...], bool, bool]]:
    """The guide trace's latent sample sites: name -> (shape, is Delta, is auxiliary)."""
    from pyro.poutine.util import site_is_subsample

    return {
        k: (tuple(s["value"].shape), type(s["fn"]).__name__ == "Delta", bool(s["infer"].get("is_auxiliary")))
        for k, s in traced.nodes.items()
        if s["type"] == "sample" and not s.get("is_observed", False) and not site_is_subsample(s)
    }


def pyro_guide(
    guide: Any, params: Any, args: tuple, kwargs: Mapping[str, Any], sites: tuple[Site, ...]
) -> TracedGuide:
    """A Pyro guide with its fitted parameters: Pyro's ``ParamStoreDict`` or a dict of tensors
    (constrained values)."""
    import pyro
    import torch
    from pyro import poutine

    name = guide_name(guide)
    if _is_point_guide(guide):
        raise InputProblem(f"guide {name}: {POINT_MASS}")
    with contextlib.suppress(Exception):  # a guide that cannot be copied holds no values of its own
        guide = copy.deepcopy(guide)  # the user's guide keeps its own values
    store = pyro.get_param_store()
    state, given = _pyro_given(params, store)

    def load() -> None:
        """Empty the (scoped) store, set up the guide's parameters, then the given values."""
        store.clear()
        if state is not None:
            store.set_state(state)
        else:
            poutine.trace(guide).get_trace(*args, **kwargs)  # registers each parameter's constraint
            for key, value in given.items():
                store[key] = value

    traced = _pyro_trace(guide, name, args, kwargs, store)
    used = {k: tuple(s["value"].shape) for k, s in traced.nodes.items() if s["type"] == "param"}
    if state is not None:  # a param store may hold other fits' parameters too: the guide's are read
        given = {k: v for k, v in given.items() if k in used}
    problems = _param_problems(name, used, {k: tuple(v.shape) for k, v in given.items()})
    problems += _site_problems(name, _pyro_sampled(traced), sites)
    if problems:
        raise InputProblem(*problems)

    def draw(seed: int, n: int) -> tuple[Latents, np.ndarray]:
        values = {s.name: np.empty((n, *s.shape)) for s in sites}
        log_q = np.empty(n)
        with (
            store.scope(),
            torch.random.fork_rng(devices=[]),
            torch.no_grad(),
            pyro.validation_enabled(False),
        ):
            load()
            torch.manual_seed(seed)
            for i in range(n):
                found = poutine.trace(guide).get_trace(*args, **kwargs)
                log_q[i] = float(found.log_prob_sum())
                for s in sites:
                    values[s.name][i] = found.nodes[s.name]["value"].numpy()
        return values, log_q

    return TracedGuide(name, {k: v.numpy() for k, v in given.items()}, sites, draw)
