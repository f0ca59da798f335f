"""A user's model as a registered ModelSpec, built on the fly from its code and data.

A ``UserModel`` is plain JSON data: the model's name, its NumPyro and/or Pyro function
(``FILE.py:NAME``, absolute paths, or a function kept in this process: ``sources.function_text``), how
it is called (``form``: ``model(*args, **kwargs)`` or ``model(data[, params])``, and the arguments
given None: ``calls.calling``), the file holding its data (``.npz``: the numeric arguments by name),
its fixed ``params`` (the other arguments, and ``--set`` values), the
guide families to fit, the user's own guides among them (``checking.user_guide``: name -> {library:
``FILE.py:NAME``}) and NUTS settings for its reference. ``register`` turns it into a spec and
registers it; the latent sites come from one trace of the model (``checking.sites``), there is no
oracle and no NumPy log joint (the target is the NumPyro model's), and the data set is fixed.

Cells run in worker processes, which register the same models from the environment variable
``PPL_SUITE_CHECK_MODELS`` (a JSON list of UserModels) when they import the plug-in module
``ppl_suite.checking.plugin``; ``ppl_suite.check`` and ``ppl-suite check`` set both.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ppl_suite import registry
from ppl_suite.checking import sites as sites_module
from ppl_suite.checking import user_guide
from ppl_suite.checking.calls import DATA_FORM, calling
from ppl_suite.checking.sources import (
    InputProblem,
    data_digest,
    in_process,
    load_data,
    load_function,
    shown,
)
from ppl_suite.spec import MAX_PROBLEM_SIZE, Domain, ModelSpec, Site

ENVIRONMENT = "PPL_SUITE_CHECK_MODELS"
PLUGIN = "ppl_suite.checking.plugin"


@dataclass(frozen=True)
class UserModel:
    """What ``register`` needs to rebuild a checked model in any process (module docstring)."""

    name: str
    data: str
    numpyro: str | None = None
    pyro: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    guides: tuple[str, ...] = ("mean_field", "full_rank")
    own_guides: dict[str, dict[str, str]] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    form: str = DATA_FORM
    nones: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> UserModel:
        return cls(**{**values, "guides": tuple(values["guides"]), "nones": tuple(values.get("nones", ()))})

    def texts(self) -> list[str]:
        """The texts naming its models and own guides."""
        return [
            text
            for text in (self.numpyro, self.pyro, *(t for g in self.own_guides.values() for t in g.values()))
            if text
        ]

    def in_process(self) -> bool:
        """Whether some model or guide of it is kept in this process (never imported: its cells run
        here, not in worker processes)."""
        return any(in_process(text) for text in self.texts())


def domain_of(name: str, value: Any) -> Domain:
    """The domain of a fixed parameter, read from its value: a flag, an integer, a real number, one
    string, or an array of its shape."""
    if isinstance(value, bool):
        return Domain.flag()
    if isinstance(value, int):
        return Domain.integer()
    if isinstance(value, float):
        return Domain.real()
    if isinstance(value, str):
        return Domain.choice(value)
    shape = np.shape(value)
    return Domain.array(lambda params: shape, f"{shape}")


def _size(data: Mapping[str, Any], sites: tuple[Site, ...]) -> int:
    return int(sum(np.size(v) for v in data.values()) + sum(site.size for site in sites))


class _FixedData:
    """The data set of a checked model: every seed gives the same arrays (copies)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = dict(data)

    def __call__(self, rng: np.random.Generator, params: Mapping[str, Any]) -> dict[str, Any]:
        return {k: np.array(v) if isinstance(v, np.ndarray) else v for k, v in self.data.items()}


def build(user: UserModel) -> tuple[ModelSpec, dict[str, Any]]:
    """(spec, implementations by backend) of a UserModel; raises InputProblem listing every problem
    (missing data names, sites that cannot be handled, Pyro and NumPyro versions whose sites differ)."""
    data = load_data(user.data)
    user_guide.register(user.own_guides, user.form, user.nones)
    implementations, traced, problems = {}, {}, []
    for library in sites_module.LIBRARIES:
        text = getattr(user, library)
        if text is None:
            continue
        try:
            model = calling(load_function(text, f"--{library}"), user.form, user.nones)
            if in_process(text):  # its content, for the reference's key: it has no file of its own
                model.content_digest = text
            traced[library] = sites_module.trace_sites(
                model, library, data, user.params, f"{library} model {shown(text)}"
            )
            implementations[library] = model
        except InputProblem as error:
            problems += error.problems
    if not problems and len(traced) == 2:
        problems += site_mismatch(traced["numpyro"], traced["pyro"])
    if not problems and not traced:
        problems.append("no model given: pass a NumPyro and/or a Pyro model (FILE.py:NAME)")
    if problems:
        raise InputProblem(*problems)
    sites = traced.get("numpyro") or traced["pyro"]
    for name, programs in user.own_guides.items():
        for library, text in programs.items():
            problems += user_guide.site_problems(
                name, library, text, data, user.params, traced.get(library, sites)
            )
    if problems:
        raise InputProblem(*problems)
    size = _size(data, sites)
    if size > MAX_PROBLEM_SIZE:
        raise InputProblem(
            f"model {user.name!r}: {size:,} numbers of data and latents, "
            f"more than the limit of {MAX_PROBLEM_SIZE:,}"
        )
    spec = ModelSpec(
        name=user.name,
        description=user.description or f"user model ({', '.join(filter(None, (user.numpyro, user.pyro)))})",
        defaults=dict(user.params),
        domains={name: domain_of(name, value) for name, value in user.params.items()},
        problem_size=lambda params: size,
        sites=lambda params: sites,
        generate_data=_FixedData(data),
        guides=tuple(user.guides),
        fixed_data=True,
        reference_settings=dict(user.reference),
    )
    return spec, implementations


def site_mismatch(numpyro_sites: tuple[Site, ...], pyro_sites: tuple[Site, ...]) -> list[str]:
    """One problem per latent site the NumPyro and Pyro versions do not share with the same shape and
    support."""
    left, right = {s.name: s for s in numpyro_sites}, {s.name: s for s in pyro_sites}
    problems = []
    for name in sorted(set(left) ^ set(right)):
        has, lacks = ("NumPyro", "Pyro") if name in left else ("Pyro", "NumPyro")
        problems.append(
            f"latent site {name!r} is in the {has} model but not in the {lacks} model; "
            f"the {lacks} model's latent sites: {', '.join(sorted(right if has == 'NumPyro' else left))}"
        )
    for name in sorted(set(left) & set(right)):
        a, b = left[name], right[name]
        if (a.shape, a.support) != (b.shape, b.support):
            problems.append(
                f"latent site {name!r}: shape {a.shape} and support {a.support} in the NumPyro model, "
                f"shape {b.shape} and support {b.support} in the Pyro model"
            )
    return problems


_registered: dict[str, UserModel] = {}


def register(user: UserModel) -> ModelSpec:
    """Build and register a UserModel (again, when its declaration changed); returns its spec."""
    if _registered.get(user.name) == user:
        return registry.get(user.name)
    spec, implementations = build(user)
    registry.register(
        spec,
        pyro_model=implementations.get("pyro"),
        numpyro_model=implementations.get("numpyro"),
        replace=True,
    )
    _registered[user.name] = user
    return spec


def user_names() -> set[str]:
    """The names of the user models registered in this process."""
    return set(_registered)


def registered(user: UserModel) -> bool:
    """Whether this process registered the same declaration (wherever its data file lay)."""
    found = _registered.get(user.name)
    return found is not None and replace(found, data="") == replace(user, data="")


def register_from_environment() -> list[ModelSpec]:
    """Register every UserModel listed in ``PPL_SUITE_CHECK_MODELS`` (what worker processes do)."""
    text = os.environ.get(ENVIRONMENT, "").strip()
    return [register(UserModel.from_json(values)) for values in (json.loads(text) if text else [])]


def environment_value(users: list[UserModel]) -> str:
    return json.dumps([user.to_json() for user in users])


def fingerprint(user: UserModel) -> dict[str, Any]:
    """What a check's cells are computed from: the declaration (a function kept in this process is named
    with its content digest), the sha256 of its model files and the digest of its data
    (``sources.data_digest``), not where the data lie."""
    files = [Path(text.rpartition(":")[0]) for text in user.texts() if not in_process(text)]
    values = {
        **user.to_json(),
        "data": data_digest(load_data(user.data)),
        "sources": {str(file): hashlib.sha256(file.read_bytes()).hexdigest() for file in files},
    }
    return json.loads(json.dumps(values))  # as stored: tuples read back as lists
