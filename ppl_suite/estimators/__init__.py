"""Hand-rolled estimators of ELBO, KL(q || p(z | x)) and log p(x), each returning an Estimate.

Besides the functions of each module, every estimator is a plug-in found by discovery: a module of
this package that defines ``ESTIMATORS`` (a tuple of objects following ``Estimator``) adds them here,
so a new estimator is one new file. Settings (sample sizes, chains, temperatures) are dataclass fields
of the plug-in, validated on construction; ``get(name, **settings)`` makes a configured copy.

    from ppl_suite import estimators
    estimators.names()                               # ['ais', 'bdmc', 'elbo', ...]
    est = estimators.get("ais", chains=64, temperatures=1000)
    reason = est.applies(problem, exact, guide_family)
    if reason is None:
        result = est.estimate(problem, fitted_guide, exact, seed)
"""

from __future__ import annotations

import dataclasses
import importlib
import numbers
import pkgutil
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ppl_suite.estimate import Estimate
    from ppl_suite.fitted_guide import FittedGuide
    from ppl_suite.problem import Problem
    from ppl_suite.spec import ExactPosterior

QUANTITIES = {
    "log_evidence": "log p(x)",
    "elbo": "E_q[log p(x, z) - log q(z)]",
    "kl_to_posterior": "KL(q || p(z | x))",
    "kl_from_posterior": "KL(p(z | x) || q)",
    "pareto_k": "PSIS k-hat of q as importance proposal for p(z | x)",
}
KINDS = ("exact", "unbiased", "consistent", "lower_bound", "upper_bound", "approximation", "diagnostic")


class Estimator(Protocol):
    """One estimator: what it estimates, when it applies, and how.

    - ``name``: registry key; ``quantity``: a key of QUANTITIES; ``kind``: one of KINDS (a stochastic
      ``lower_bound``/``upper_bound`` holds in expectation, so within a few SE);
    - ``uses_guide``: False when the value does not depend on the fitted guide (AIS, Laplace...), so a
      runner may compute it once per problem and pass ``guide=None``;
    - ``applies(problem, exact, guide)``: why it cannot run (a sentence), or None; ``guide`` is the
      guide family's name when known;
    - ``estimate(problem, guide, exact, seed)``: the Estimate, deterministic given ``seed``.
    """

    name: str
    quantity: str
    kind: str
    uses_guide: bool

    def applies(
        self, problem: Problem, exact: ExactPosterior | None, guide: str | None = None
    ) -> str | None: ...

    def estimate(
        self, problem: Problem, guide: FittedGuide | None, exact: ExactPosterior | None, seed: int = 0
    ) -> Estimate: ...


_estimators: dict[str, Estimator] = {}
_discovered = False


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for estimator in getattr(module, "ESTIMATORS", ()):
            _estimators.setdefault(estimator.name, estimator)


def register(estimator: Estimator) -> Estimator:
    """Add an estimator defined outside this package; a taken name is an error."""
    _discover()
    if _estimators.get(estimator.name, estimator) is not estimator:
        raise ValueError(f"an estimator named {estimator.name!r} is already registered")
    for attribute, valid in (("quantity", QUANTITIES), ("kind", KINDS)):
        if getattr(estimator, attribute) not in valid:
            raise ValueError(
                f"estimator {estimator.name!r}: {attribute} {getattr(estimator, attribute)!r} is not one of "
                f"{', '.join(valid)}"
            )
    _estimators[estimator.name] = estimator
    return estimator


def names() -> list[str]:
    _discover()
    return sorted(_estimators)


def get(name: str, **settings: Any) -> Estimator:
    """The estimator ``name``, with ``settings`` replacing its defaults (unknown ones are an error)."""
    _discover()
    try:
        estimator = _estimators[name]
    except KeyError:
        raise KeyError(f"unknown estimator {name!r}; valid: {', '.join(names())}") from None
    if not settings:
        return estimator
    valid = settings_of(estimator)
    unknown = sorted(set(settings) - set(valid))
    if unknown:
        raise ValueError(
            f"estimator {name!r} has no setting {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(valid) or 'none'}"
        )
    return dataclasses.replace(estimator, **settings)


def settings_of(estimator: Estimator) -> dict[str, Any]:
    """The estimator's settings and their values (its dataclass fields)."""
    if not dataclasses.is_dataclass(estimator):
        return {}
    return {f.name: getattr(estimator, f.name) for f in dataclasses.fields(estimator)}


def need_guide(name: str, guide: Any) -> FittedGuide:
    """``guide`` when it is a FittedGuide; otherwise a clear error naming the estimator."""
    from ppl_suite.fitted_guide import FittedGuide

    if not isinstance(guide, FittedGuide):
        raise TypeError(f"estimator {name!r} needs a FittedGuide, got {type(guide).__name__}")
    return guide


def need_exact(name: str, exact: Any) -> ExactPosterior:
    """``exact`` when given; otherwise a clear error naming the estimator."""
    if exact is None or not hasattr(exact, "sample"):
        raise ValueError(f"estimator {name!r} needs the exact posterior (an oracle), got {exact!r}")
    return exact


def need_positive_int(name: str, setting: str, value: Any, minimum: int = 1) -> None:
    """A clear error when ``value`` is not an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}: {setting} must be an integer >= {minimum}, got {value!r}")
