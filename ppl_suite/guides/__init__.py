"""Guide families by name. A model lists the names it supports in ``ModelSpec.guides``; a model with
a family of its own registers it here from its spec module.

Two kinds: the suite's own families (``GuideFamily``: written once, rendered by every backend with the
same parameters) and the libraries' autoguides (``AutoGuide``: built, fitted and rendered by Pyro or
NumPyro, ``autoguides``)."""

from __future__ import annotations

from ppl_suite.guides.autoguides import AUTOGUIDES, AutoGuide
from ppl_suite.guides.base import ArrayOps, GuideFamily, jax_ops, torch_ops
from ppl_suite.guides.conjugate import Conjugate
from ppl_suite.guides.full_rank import FullRank
from ppl_suite.guides.mean_field import MeanField
from ppl_suite.plugin_registry import Registry

ELBOS = ("trace", "trace_enum")  # what a family declares as ``elbo``: the loss its backends train it with


def _declares_its_elbo(family: GuideFamily | AutoGuide) -> str | None:
    """Why ``family`` does not declare an ELBO of ``ELBOS`` (its protocol's ``elbo``), or None."""
    elbo = family.elbo if hasattr(type(family), "elbo") or "elbo" in vars(family) else None
    if elbo not in ELBOS:
        return f"guide family {family.name!r} declares elbo {elbo!r}; declare one of {', '.join(ELBOS)}"
    return None


FAMILIES: Registry[GuideFamily | AutoGuide] = Registry(
    "guide family",
    discover=lambda: (MeanField(), FullRank(), Conjugate(), *AUTOGUIDES),
    entry_points="ppl_suite.guides",
    check=_declares_its_elbo,
)


def register(family: GuideFamily) -> GuideFamily:
    """Add a guide family; re-registering the same object is allowed, another under a taken name is not."""
    return FAMILIES.register(family)


def get(name: str) -> GuideFamily | AutoGuide:
    return FAMILIES.get(name)


def names() -> list[str]:
    return FAMILIES.names()


def is_autoguide(name: str) -> bool:
    """Whether the family ``name`` is a library autoguide (fitted and rendered by its library)."""
    return isinstance(get(name), AutoGuide)


__all__ = [
    "ELBOS",
    "FAMILIES",
    "ArrayOps",
    "AutoGuide",
    "GuideFamily",
    "get",
    "is_autoguide",
    "jax_ops",
    "names",
    "register",
    "torch_ops",
]
