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

_families: dict[str, GuideFamily | AutoGuide] = {
    f.name: f for f in (MeanField(), FullRank(), Conjugate(), *AUTOGUIDES)
}


def register(family: GuideFamily) -> GuideFamily:
    """Add a guide family; re-registering the same object is allowed, another under a taken name is not."""
    if _families.get(family.name, family) is not family:
        raise ValueError(f"a guide family named {family.name!r} is already registered")
    _families[family.name] = family
    return family


def get(name: str) -> GuideFamily | AutoGuide:
    try:
        return _families[name]
    except KeyError:
        raise KeyError(f"unknown guide family {name!r}; valid: {', '.join(names())}") from None


def names() -> list[str]:
    return sorted(_families)


def is_autoguide(name: str) -> bool:
    """Whether the family ``name`` is a library autoguide (fitted and rendered by its library)."""
    return isinstance(get(name), AutoGuide)


__all__ = [
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
