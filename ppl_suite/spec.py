"""The contract models are written against: latent sites, exact posteriors, the model spec.

A model is data, two implementations (Pyro, NumPyro) and, where tractable, an oracle. This module
imports neither Pyro nor NumPyro, so oracles can be built and tested with NumPy/SciPy alone.

Conventions:
- ``Params`` holds every non-latent quantity a density depends on: fixed hyperparameters and sizes
  (``prior_scale``, ``n``), and, for models with learned parameters, the values of those (``W``).
- ``Latents`` maps a site name to its constrained value with one leading batch axis:
  a site of event shape S is an array of shape (n, *S).
- Every parameter has a ``Domain`` (its type and bounds), and every model a ``problem_size``, so a
  bad or oversized value is refused, with its domain named, before any data exist.
"""

from __future__ import annotations

import math
import numbers
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

Params = Mapping[str, Any]
Data = Mapping[str, np.ndarray]
Latents = dict[str, np.ndarray]

SUPPORTS = ("real", "positive", "unit_interval", "simplex", "integer")
LOCAL_PLATE = "data"  # models sample local sites inside plate(LOCAL_PLATE, n), leading axis = data


# One data set and one draw of its latents may hold at most this many numbers (80 MB of float64), so
# that a worker holds the problem beside its vectorized particles and the estimators' batches.
MAX_PROBLEM_SIZE = 10**7
DOMAIN_KINDS = ("int", "real", "bool", "str", "array")


def _is_integer(value: Any) -> bool:
    """An integer that is not a boolean (True and False are not numbers here)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def _is_finite_real(value: Any) -> bool:
    """A real number that is not a boolean and is finite in float64 (10**400 is not)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool | np.bool_):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _entries(value: Any) -> list[Any] | None:
    """The scalars of a nested list/tuple or NumPy array, or None when ``value`` is not one."""
    if isinstance(value, np.ndarray):
        return value.ravel().tolist() if value.dtype.kind in "iuf" else None
    if not isinstance(value, list | tuple):
        return None
    out: list[Any] = []
    for item in value:
        if isinstance(item, list | tuple | np.ndarray):
            inner = _entries(item)
            if inner is None:
                return None
            out += inner
        else:
            out.append(item)
    return out


def _is_regular(value: Any) -> bool:
    """Whether a nested list has a shape (no rows of unequal length)."""
    try:
        np.shape(value)
    except ValueError:
        return False
    return True


def _number(x: float) -> str:
    return str(int(x)) if math.isfinite(x) and x == int(x) else str(x)


@dataclass(frozen=True)
class Domain:
    """The values one parameter may take.

    - ``int``: an integer in the interval (a boolean is not an integer);
    - ``real``: a finite real number in the interval (integers included, booleans not);
    - ``bool``: true or false; ``str``: one of ``choices``;
    - ``array``: a non-empty (nested) array of finite real numbers, each in the interval, whose shape is
      ``shape(params)``: one entry per axis, a length or None for any length. ``shape_rule`` says the
      same in words, e.g. "(d,), d = the rows of W". The shape may depend on other parameters, so it is
      checked (``shape_problem``) once every parameter lies in its own domain.

    The interval runs from ``low`` to ``high``, each end closed unless ``low_open``/``high_open``.
    Build domains with the constructors: ``Domain.integer(low=1)``, ``Domain.real()``,
    ``Domain.positive()``, ``Domain.flag()``, ``Domain.choice("a", "b")``, ``Domain.array(shape, rule)``.
    """

    kind: str
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    shape: Callable[[Params], tuple[int | None, ...]] | None = field(default=None, compare=False)
    shape_rule: str = ""

    def __post_init__(self) -> None:
        if self.kind not in DOMAIN_KINDS:
            raise ValueError(f"unknown domain kind {self.kind!r}; valid: {', '.join(DOMAIN_KINDS)}")
        if not self.low <= self.high:
            raise ValueError(f"domain bounds must satisfy low <= high, got {self.low} and {self.high}")
        if (self.kind == "str") != bool(self.choices):
            raise ValueError("a str domain, and only a str domain, lists its choices")
        if (self.kind == "array") != (self.shape is not None):
            raise ValueError("an array domain, and only an array domain, has a shape")

    @classmethod
    def integer(cls, low: float = -math.inf, high: float = math.inf) -> Domain:
        return cls("int", low, high)

    @classmethod
    def real(
        cls, low: float = -math.inf, high: float = math.inf, low_open: bool = False, high_open: bool = False
    ) -> Domain:
        return cls("real", low, high, low_open, high_open)

    @classmethod
    def positive(cls) -> Domain:
        """A real number in (0, inf): scales, rates, concentrations."""
        return cls.real(0.0, low_open=True)

    @classmethod
    def flag(cls) -> Domain:
        return cls("bool")

    @classmethod
    def choice(cls, *choices: str) -> Domain:
        return cls("str", choices=tuple(choices))

    @classmethod
    def array(
        cls,
        shape: Callable[[Params], tuple[int | None, ...]],
        shape_rule: str,
        low: float = -math.inf,
        high: float = math.inf,
        low_open: bool = False,
        high_open: bool = False,
    ) -> Domain:
        return cls("array", low, high, low_open, high_open, shape=shape, shape_rule=shape_rule)

    @property
    def bounds(self) -> str:
        """The interval in words: ``>= 1``, ``> 0``, ``in [0, 1)``, or "" when unbounded."""
        low, high = self.low > -math.inf, self.high < math.inf
        if low and high:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"in {left}{_number(self.low)}, {_number(self.high)}{right}"
        if low:
            return f"{'>' if self.low_open else '>='} {_number(self.low)}"
        if high:
            return f"{'<' if self.high_open else '<='} {_number(self.high)}"
        return ""

    def __str__(self) -> str:
        within = f" {self.bounds}" if self.bounds else ""
        if self.kind == "int":
            return f"an integer{within}"
        if self.kind == "real":
            return f"a finite real number{within}"
        if self.kind == "bool":
            return "true or false"
        if self.kind == "str":
            return f"one of {', '.join(map(repr, self.choices))}"
        return f"an array of finite real numbers{within} of shape {self.shape_rule}"

    def contains(self, x: float) -> bool:
        """Whether the number ``x`` lies in the interval."""
        above = x > self.low if self.low_open else x >= self.low
        below = x < self.high if self.high_open else x <= self.high
        return above and below

    def problem(self, name: str, value: Any) -> str | None:
        """``None`` when ``value`` lies in the domain, else one sentence naming ``name``, the value and
        the domain. Checks type and bounds only (an array's shape: ``shape_problem``)."""
        if self.kind == "bool":
            ok = isinstance(value, bool | np.bool_)
        elif self.kind == "str":
            ok = isinstance(value, str) and value in self.choices
        elif self.kind == "array":
            entries = _entries(value)
            ok = bool(entries) and _is_regular(value)
            ok = ok and all(_is_finite_real(x) and self.contains(x) for x in entries)
        else:
            number = _is_integer(value) if self.kind == "int" else _is_finite_real(value)
            ok = number and self.contains(value)
        if ok:
            return None
        numeric = self.kind in ("int", "real", "array")
        note = " (a boolean is not a number)" if numeric and isinstance(value, bool) else ""
        return f"{name} must be {self}, got {reprlib.repr(value)}{note}"

    def shape_problem(self, name: str, value: Any, params: Params) -> str | None:
        """For an array domain, ``None`` when ``value`` has the shape ``params`` call for, else a sentence
        naming both shapes; call it once ``params`` lie in their domains."""
        if self.shape is None:
            return None
        expected, actual = self.shape(params), np.shape(value)
        if len(expected) == len(actual) and all(
            e is None or e == a for e, a in zip(expected, actual, strict=True)
        ):
            return None
        lengths = ["any" if e is None else str(e) for e in expected]
        wanted = f"({', '.join(lengths)}{',' if len(lengths) == 1 else ''})"
        return f"{name} must have shape {self.shape_rule}, here {wanted}; got shape {actual}"


@dataclass(frozen=True)
class DistSpec:
    """A library-neutral distribution: a class name shared by ``pyro.distributions`` and
    ``numpyro.distributions`` (``Normal``, ``Beta``, ``Gamma``, ``Dirichlet``, ``MultivariateNormal``...),
    its keyword parameters as NumPy arrays, and how many batch axes count as event axes.

    Rendered in either library with ``getattr(dist_module, family)(**params).to_event(event_dims)``,
    which gives the KL registries of both libraries something to dispatch on.
    """

    family: str
    params: Mapping[str, np.ndarray]
    event_dims: int = 0


@dataclass(frozen=True)
class Site:
    """One latent sample site: its name, event shape, and support.

    ``support`` is one of SUPPORTS; for ``integer`` sites ``cardinality`` is the number of states.
    ``local`` marks a site whose leading event axis runs over data points (a local latent).
    ``prior`` is the site's prior as a library-neutral distribution, when it has a standard form: the
    ``conjugate`` guide family learns a member of that family, initialised at the prior.
    """

    name: str
    shape: tuple[int, ...] = ()
    support: str = "real"
    cardinality: int = 0
    local: bool = False
    prior: DistSpec | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.support not in SUPPORTS:
            raise ValueError(
                f"site {self.name!r}: unknown support {self.support!r}; valid: {', '.join(SUPPORTS)}"
            )
        if self.support == "integer" and self.cardinality < 1:
            raise ValueError(f"site {self.name!r}: an integer site needs cardinality >= 1")

    @property
    def size(self) -> int:
        """Number of scalars in one constrained value."""
        return int(np.prod(self.shape, dtype=int))


class ExactPosterior(Protocol):
    """Closed-form truth for one (model, data, params): evidence and posterior.

    log_evidence = log p(x) = log p(x, z) - log p(z | x) for every z.
    """

    log_evidence: float

    def log_density(self, latents: Latents) -> np.ndarray:
        """log p(z | x) for a batch of latents, shape (n,)."""

    def sample(self, rng: np.random.Generator, n: int) -> Latents:
        """n exact posterior draws."""

    def mean(self) -> dict[str, np.ndarray]:
        """Posterior mean of each site (event shape)."""

    def covariance(self) -> np.ndarray:
        """Posterior covariance of the flattened latents, sites concatenated in declaration order."""

    def factors(self) -> dict[str, DistSpec] | None:
        """The posterior as independent per-site library distributions, or None when it does not factor
        that way (then KL to it is computed by Monte Carlo, not a registered closed form)."""


@dataclass(frozen=True)
class ModelSpec:
    """A generative model declared once.

    - ``defaults``: hyperparameters and sizes; any of them can be overridden per run.
    - ``domains``: the ``Domain`` of every parameter in ``defaults``.
    - ``problem_size(params)``: how many numbers one data set and one draw of its latents hold (e.g.
      n (d + 1) + d for a regression), computed from the sizes alone; at most MAX_PROBLEM_SIZE.
    - ``sites(params)``: the latent sites, in a fixed order.
    - ``generate_data(rng, params)``: simulated observations (NumPy, so every backend sees the same arrays).
    - ``log_joint(latents, data, params)``: log p(x, z) in NumPy/SciPy, batched over latents, shape (n,);
      optional (None): a third implementation, beside Pyro's and NumPyro's, that conformance checks use
      where it exists.
    - ``oracle(data, params)``: the exact posterior and evidence, or None when intractable.
    - ``fixed_data``: the data set is fixed (a classic or real data set shipped with the model):
      ``generate_data`` ignores its generator, so every data seed gives the same arrays.
    - ``guides``: names of the guide families this model supports (see ``ppl_suite.guides``).
    - ``learned``: names of entries of ``params`` that SVI learns (model parameters theta); their
      values in ``params`` are the initial values. Learned parameters are unconstrained reals
      (learn ``log_sigma``, not ``sigma``), so every backend optimizes them the same way.
    - ``kl_family_min(guide, data, params)``: the smallest KL(q || p(z | x)) reachable in a guide
      family, for families where the model knows it and the generic rules of
      ``ppl_suite.estimators.kl.kl_family_minimum`` do not (e.g. by coordinate ascent); None otherwise.
    - ``reference_settings``: fields of ``ppl_suite.references.NUTSSettings`` that this model's NUTS
      reference uses instead of the defaults (e.g. fewer draws for a quick ``ppl-suite check``);
      empty: the defaults.

    The Pyro and NumPyro implementations live beside the spec in ``pyro_impl.py`` and
    ``numpyro_impl.py``, each with ``model(data, params)``; a missing file means that backend does
    not support the model.
    """

    name: str
    description: str
    defaults: Mapping[str, Any]
    sites: Callable[[Params], tuple[Site, ...]]
    generate_data: Callable[[np.random.Generator, Params], dict[str, np.ndarray]]
    guides: tuple[str, ...]
    log_joint: Callable[[Latents, Data, Params], np.ndarray] | None = None
    oracle: Callable[[Data, Params], ExactPosterior] | None = None
    fixed_data: bool = False
    learned: tuple[str, ...] = ()
    kl_family_min: Callable[[str, Data, Params], float | None] | None = None
    module: str = field(default="", compare=False)
    domains: Mapping[str, Domain] = field(default_factory=dict)
    problem_size: Callable[[Params], int] | None = None
    reference_settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """A spec whose parameters lack domains, or whose defaults lie outside them, is refused."""
        problems = []
        missing = [name for name in self.defaults if name not in self.domains]
        if missing:
            problems.append(f"parameter {', '.join(missing)} has no domain (declare it in domains)")
        extra = [name for name in self.domains if name not in self.defaults]
        if extra:
            problems.append(f"domains name {', '.join(extra)}, which are not parameters")
        if self.problem_size is None:
            problems.append("no problem_size (numbers in one data set and its latents) is declared")
        if problems:
            raise ValueError(f"model {self.name!r}: " + "; ".join(problems))
        invalid = self.check_params()
        if invalid:
            raise ValueError(f"model {self.name!r} has invalid defaults: " + "; ".join(invalid))

    def check_params(self, overrides: Mapping[str, Any] | None = None) -> list[str]:
        """One message per problem of the defaults updated by ``overrides``, each naming the parameter,
        its value and its domain: unknown names, values outside their domains (type and bounds), array
        shapes that do not fit the other parameters, and a problem larger than MAX_PROBLEM_SIZE. Needs
        no data, so an oversized problem is refused without allocating it."""
        overrides = dict(overrides or {})
        problems = []
        unknown = [name for name in overrides if name not in self.defaults]
        if unknown:
            problems.append(
                f"model {self.name!r} has no parameter {', '.join(map(repr, unknown))}; "
                f"valid: {', '.join(sorted(self.defaults))}"
            )
        params = {**self.defaults, **{k: v for k, v in overrides.items() if k in self.defaults}}
        invalid = [
            f"model {self.name!r}: {problem}"
            for name, domain in self.domains.items()
            if (problem := domain.problem(name, params[name]))
        ]
        if not invalid:  # shapes and size may depend on every parameter: checked once each is valid
            invalid = [
                f"model {self.name!r}: {problem}"
                for name, domain in self.domains.items()
                if (problem := domain.shape_problem(name, params[name], params))
            ]
        if not invalid and self.problem_size is not None:
            size = int(self.problem_size(params))
            if size > MAX_PROBLEM_SIZE:
                invalid.append(
                    f"model {self.name!r}: {self._sizes(params)}: {size:,} numbers of data and latents, more "
                    f"than the limit of {MAX_PROBLEM_SIZE:,} (80 MB of float64)"
                )
        return problems + invalid

    def _sizes(self, params: Params) -> str:
        """The integer parameters and array shapes, e.g. "n = 1000, W of shape (5, 2)"."""
        parts = []
        for name, domain in self.domains.items():
            if domain.kind == "int":
                parts.append(f"{name} = {params[name]}")
            elif domain.kind == "array":
                parts.append(f"{name} of shape {np.shape(params[name])}")
        return ", ".join(parts)

    def params(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults updated by ``overrides``; every problem ``check_params`` finds is one ValueError."""
        problems = self.check_params(overrides)
        if problems:
            raise ValueError("; ".join(problems))
        return {**self.defaults, **dict(overrides or {})}

    def data(self, seed: int, params: Params) -> dict[str, np.ndarray]:
        """The observations for a data seed: same seed, same arrays."""
        return self.generate_data(np.random.default_rng(seed), params)
